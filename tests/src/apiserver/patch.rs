//! JSON patch, JSON merge patch and strategic merge patch.
//!
//! Strategic merge knows the merge keys of the pod and metadata fields our components touch
//! (containers by name, ports, env, volumes, ownerReferences by uid, finalizers as a set);
//! every other list is replaced, as for a field without a patch strategy.

use serde_json::{Map, Value};

use super::status::ApiStatus;

pub fn json_patch(target: &mut Value, body: &[u8]) -> Result<(), ApiStatus> {
    let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
        ApiStatus::bad_request(format!(
            "the server rejected our request due to an error in our request: {e}"
        ))
    })?;
    json_patch::patch(target, &patch).map_err(|e| ApiStatus::new(422, "Invalid", e.to_string()))
}

pub fn merge_patch(target: &mut Value, body: &[u8]) -> Result<(), ApiStatus> {
    let patch: Value = parse(body)?;
    json_patch::merge(target, &patch);
    Ok(())
}

fn parse(body: &[u8]) -> Result<Value, ApiStatus> {
    serde_json::from_slice(body)
        .map_err(|e| ApiStatus::bad_request(format!("error decoding patch: {e}")))
}

pub fn strategic_merge_patch(target: &mut Value, body: &[u8]) -> Result<(), ApiStatus> {
    let patch = parse(body)?;
    *target = strategic(target.take(), patch, "");
    Ok(())
}

/// The merge key of a list field, by the field's name, or None for a replaced list.
pub fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases"
        | "readinessGates"
        | "conditions" => match field {
            "hostAliases" => Some("ip"),
            "readinessGates" => Some("conditionType"),
            "conditions" => Some("type"),
            _ => Some("name"),
        },
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Lists merged as sets of primitives.
fn is_primitive_set(field: &str) -> bool {
    field == "finalizers"
}

fn strategic(target: Value, patch: Value, field: &str) -> Value {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => strategic_object(t, p),
        (Value::Array(t), Value::Array(p)) => {
            if let Some(key) = merge_key(field) {
                strategic_list(t, p, key)
            } else if is_primitive_set(field) {
                let mut out = t;
                for v in p {
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                Value::Array(out)
            } else {
                Value::Array(p)
            }
        }
        (_, p) => strip_directives(p),
    }
}

fn strategic_object(mut target: Map<String, Value>, patch: Map<String, Value>) -> Value {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch;
        p.remove("$patch");
        return Value::Object(p);
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (target.get_mut(field), &v) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            target.remove(&k);
            continue;
        }
        let merged = match target.remove(&k) {
            Some(existing) => strategic(existing, v, &k),
            None => strip_directives(v),
        };
        target.insert(k, merged);
    }
    Value::Object(target)
}

fn strategic_list(mut target: Vec<Value>, patch: Vec<Value>, key: &str) -> Value {
    for item in patch {
        let k = item.get(key).cloned();
        let position = k
            .as_ref()
            .and_then(|k| target.iter().position(|t| t.get(key) == Some(k)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let existing = target[i].take();
                target[i] = strategic(existing, item, "");
            }
            (None, false) => target.push(strip_directives(item)),
        }
    }
    Value::Array(target)
}

fn strip_directives(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strategic_merge_keys_containers_by_name_and_merges_resources() {
        let mut pod = json!({
            "metadata": {"annotations": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [
                {"name": "app", "image": "app:1", "resources": {"limits": {"cpu": "1"}}},
                {"name": "side", "image": "side:1"}
            ]}
        });
        let patch = json!({
            "metadata": {"annotations": {"b": "2", "a": null}, "finalizers": ["y"]},
            "spec": {"containers": [
                {"name": "app", "resources": {"limits": {"intel.com/sriov": "1"}}},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "new:1"}
            ]}
        });
        strategic_merge_patch(&mut pod, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            pod,
            json!({
                "metadata": {"annotations": {"b": "2"}, "finalizers": ["x", "y"]},
                "spec": {"containers": [
                    {"name": "app", "image": "app:1", "resources": {"limits": {"cpu": "1", "intel.com/sriov": "1"}}},
                    {"name": "new", "image": "new:1"}
                ]}
            })
        );
    }

    #[test]
    fn merge_patch_replaces_lists_and_json_patch_tests_paths() {
        let mut v = json!({"spec": {"list": [1, 2], "x": 1}});
        merge_patch(&mut v, br#"{"spec": {"list": [3], "x": null}}"#).unwrap();
        assert_eq!(v, json!({"spec": {"list": [3]}}));
        json_patch(
            &mut v,
            br#"[{"op": "add", "path": "/spec/list/-", "value": 4}]"#,
        )
        .unwrap();
        assert_eq!(v, json!({"spec": {"list": [3, 4]}}));
        assert_eq!(
            json_patch(
                &mut v,
                br#"[{"op": "test", "path": "/spec/list/0", "value": 9}]"#
            )
            .unwrap_err()
            .code,
            422
        );
    }
}
