//! The `pods/eviction` subresource: a delete that PodDisruptionBudgets may refuse.
//!
//! No disruption controller runs here, so a budget's allowance is computed at eviction time from
//! the pods it currently selects, instead of read from the `status` a controller would maintain.
//! Reading the budget, counting the pods and deleting the pod happen under one lock, so two
//! evictions cannot both spend the last allowed disruption.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{
    Inner, State, Target,
    objects::{self, Propagation},
    status::ApiStatus,
    store::{StorageKey, meta_str},
};

/// The real server's words for a refused eviction (pkg/registry/core/pod/storage/eviction.go).
pub const BUDGET_VIOLATED: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";

/// How long the real server tells a refused client to wait before retrying.
const RETRY_AFTER_SECONDS: u64 = 10;

fn pdb_storage() -> StorageKey {
    ("policy".to_owned(), "poddisruptionbudgets".to_owned())
}

/// Answer `POST …/pods/{name}/eviction`: the success `Status` (201), or why not.
pub fn evict(
    state: &State,
    t: &Target,
    name: &str,
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<Value, ApiStatus> {
    let eviction: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiStatus::bad_request(format!("error decoding request body: {e}")))?
    };
    if meta_str(&eviction, "name").is_some_and(|n| n != name) {
        return Err(ApiStatus::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options = &eviction["deleteOptions"];
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All")
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let policy = Propagation::parse(options["propagationPolicy"].as_str())?;

    let mut inner = state.lock();
    let storage = t.def.storage_key();
    let key = objects::key_of(t, name);
    let pod = inner
        .store
        .get(&storage, &key)
        .cloned()
        .ok_or_else(|| ApiStatus::not_found("", "pods", name))?;
    let precondition_failed = options["preconditions"]["uid"]
        .as_str()
        .is_some_and(|u| Some(u) != meta_str(&pod, "uid"))
        || options["preconditions"]["resourceVersion"]
            .as_str()
            .is_some_and(|r| Some(r) != meta_str(&pod, "resourceVersion"));
    if precondition_failed {
        return Err(ApiStatus::conflict("", "pods", name));
    }
    if !can_ignore_budget(&pod) {
        check_budget(&inner, &pod)?;
    }
    if !dry_run {
        // Deleted as a DELETE would: finalizers hold it with a deletionTimestamp (grace periods
        // are ignored, as everywhere in this server).
        objects::delete_locked(&mut inner, &storage, &key, policy);
    }
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// As the real server: pods that are not running, or already going, need no budget.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Pending" | "Succeeded" | "Failed") | None
    ) || pod["metadata"].get("deletionTimestamp").is_some()
}

fn is_ready(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// What the disruption controller would have written into a budget's status.
#[derive(Debug, PartialEq, Eq)]
struct Budget {
    current_healthy: i64,
    desired_healthy: i64,
    disruptions_allowed: i64,
}

fn check_budget(inner: &Inner, pod: &Value) -> Result<(), ApiStatus> {
    let namespace = meta_str(pod, "namespace");
    let labels = &pod["metadata"]["labels"];
    let pdbs: Vec<&Value> = inner
        .store
        .range(&pdb_storage(), namespace, None)
        .map(|(_, v)| v)
        .filter(|pdb| selects(&pdb["spec"]["selector"], labels))
        .collect();
    let pdb = match pdbs.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => {
            return Err(ApiStatus::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let pods: Vec<&Value> = inner
        .store
        .range(&(String::new(), "pods".to_owned()), namespace, None)
        .map(|(_, v)| v)
        .filter(|p| selects(&pdb["spec"]["selector"], &p["metadata"]["labels"]))
        .collect();
    let budget = compute(&pdb["spec"], &pods);
    if !is_ready(pod) {
        // An unready pod does not count as healthy, so evicting it costs the budget nothing.
        let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        if always
            || (budget.current_healthy >= budget.desired_healthy && budget.desired_healthy > 0)
        {
            return Ok(());
        }
    }
    if budget.disruptions_allowed >= 1 {
        return Ok(());
    }
    let pdb_name = meta_str(pdb, "name").unwrap_or_default();
    let mut refused = ApiStatus::new(429, "TooManyRequests", BUDGET_VIOLATED);
    refused.details = Some(Box::new(json!({
        "retryAfterSeconds": RETRY_AFTER_SECONDS,
        "causes": [{"reason": "DisruptionBudget", "message": format!(
            "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
            budget.desired_healthy, budget.current_healthy)}],
    })));
    Err(refused)
}

/// The budget over the pods its selector matches now: they are all "expected" (there are no
/// controllers whose scale the real disruption controller would read instead).
fn compute(spec: &Value, pods: &[&Value]) -> Budget {
    let live = |p: &&&Value| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    let expected = i64::try_from(pods.iter().filter(live).count()).unwrap_or(i64::MAX);
    let current_healthy =
        i64::try_from(pods.iter().filter(|p| is_ready(p)).count()).unwrap_or(i64::MAX);
    let desired_healthy = if let Some(max) = scaled(&spec["maxUnavailable"], expected) {
        (expected - max).max(0)
    } else {
        scaled(&spec["minAvailable"], expected).unwrap_or(0)
    };
    Budget {
        current_healthy,
        desired_healthy,
        disruptions_allowed: (current_healthy - desired_healthy).max(0),
    }
}

/// An IntOrString against a total: `2` is 2, `"50%"` rounds up, as the controller does.
fn scaled(v: &Value, total: i64) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?;
    match s.strip_suffix('%') {
        Some(p) => {
            let percent: i64 = p.trim().parse().ok()?;
            Some((percent * total + 99) / 100)
        }
        None => s.trim().parse().ok(),
    }
}

/// A metav1.LabelSelector as policy/v1 reads it: null selects nothing, `{}` every pod.
fn selects(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    match_labels
        && selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let key = e["key"].as_str().unwrap_or_default();
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match (e["operator"].as_str(), label(key)) {
                    (Some("In"), Some(v)) => values.contains(&v),
                    (Some("NotIn"), v) => v.is_none_or(|v| !values.contains(&v)),
                    (Some("Exists"), v) => v.is_some(),
                    (Some("DoesNotExist"), v) => v.is_none(),
                    _ => false,
                }
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: Value, ready: bool) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn selectors_follow_policy_v1() {
        let labels = json!({"app": "a", "tier": "web"});
        assert!(!selects(&Value::Null, &labels));
        assert!(selects(&json!({}), &labels));
        assert!(selects(&json!({"matchLabels": {"app": "a"}}), &labels));
        assert!(!selects(&json!({"matchLabels": {"app": "b"}}), &labels));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]},
                {"key": "x", "operator": "DoesNotExist"}]}),
            &labels
        ));
        assert!(!selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}),
            &labels
        ));
    }

    #[test]
    fn budgets_are_computed_over_matching_pods() {
        let (a, b, c) = (
            pod(json!({}), true),
            pod(json!({}), true),
            pod(json!({}), false),
        );
        let pods = [&a, &b, &c];
        assert_eq!(
            compute(&json!({"minAvailable": 2}), &pods).disruptions_allowed,
            0
        );
        assert_eq!(
            compute(&json!({"minAvailable": "34%"}), &pods).desired_healthy,
            2
        );
        let max = compute(&json!({"maxUnavailable": 2}), &pods);
        assert_eq!((max.desired_healthy, max.disruptions_allowed), (1, 1));
        assert_eq!(compute(&json!({}), &pods).disruptions_allowed, 2);
    }
}
