//! SR-IOV resource injection (what network-resources-injector does, sriov-spec §7.1): every NAD
//! a pod references that carries `k8s.v1.cni.cncf.io/resourceName` adds one of that resource to
//! the requests and limits of one container, so the scheduler places the pod on a node with a
//! free VF and the device plugin hands one over.
//!
//! - Repeated references count repeatedly (two attachments to one SR-IOV network need two VFs).
//! - The container is the first, or the one the `k8s.v1.cni.cncf.io/resource-container`
//!   annotation names.
//! - A resource that some container already requests or limits is left as the user wrote it, so
//!   nothing is counted twice and a second invocation changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use multus_crds::annotations::{parse_default_network, parse_networks};
use multus_crds::constants::RESOURCE_CONTAINER_ANNOTATION;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fetch_missing;
use super::pod::{MetaView, pod_namespace};
use crate::context::{Context, WithFetched};
use crate::review::{PatchOp, ReviewRequest, Verdict, pointer_segment};

#[derive(Debug, Default, Deserialize)]
struct PodView {
    #[serde(default)]
    metadata: MetaView,
    #[serde(default)]
    spec: SpecView,
}

#[derive(Debug, Default, Deserialize)]
struct SpecView {
    #[serde(default)]
    containers: Vec<ContainerView>,
}

#[derive(Debug, Default, Deserialize)]
struct ContainerView {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resources: Option<ResourcesView>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourcesView {
    #[serde(default)]
    requests: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    limits: Option<BTreeMap<String, Value>>,
}

impl ContainerView {
    fn mentions(&self, resource: &str) -> bool {
        self.resources.as_ref().is_some_and(|r| {
            r.requests
                .as_ref()
                .is_some_and(|m| m.contains_key(resource))
                || r.limits.as_ref().is_some_and(|m| m.contains_key(resource))
        })
    }
}

pub async fn mutate(ctx: &Context, req: &ReviewRequest<'_>) -> Verdict {
    // Only a new pod gets resources: a running pod's requests are immutable.
    let Some(raw) = req.object.filter(|_| req.operation == "CREATE") else {
        return Verdict::allow();
    };
    // An unreadable pod is the validating webhook's to refuse, with its field paths.
    let Ok(pod) = serde_json::from_str::<PodView>(raw.get()) else {
        return Verdict::allow();
    };
    if !pod.metadata.has_networks() || pod.spec.containers.is_empty() {
        return Verdict::allow();
    }
    let ns = pod_namespace(req, &pod.metadata).to_owned();
    let refs = selections(ctx, &ns, &pod.metadata);
    let fetched = fetch_missing(ctx, refs.iter().cloned().collect()).await;
    let counts = {
        let cache = ctx.read_nads();
        let lookup = WithFetched {
            cached: &cache,
            fetched: &fetched,
        };
        count_resources(&refs, &lookup)
    };
    if counts.is_empty() {
        return Verdict::allow();
    }
    let target = match target_container(&pod) {
        Ok(i) => i,
        Err(message) => return Verdict::deny(message),
    };
    let counts: BTreeMap<String, u32> = counts
        .into_iter()
        .filter(|(resource, _)| !pod.spec.containers.iter().any(|c| c.mentions(resource)))
        .collect();
    let mut verdict = Verdict::allow();
    verdict.patch = patch(target, &pod.spec.containers[target], &counts);
    verdict
}

/// Every reference of the networks annotation in order (repeats kept), then the default network.
fn selections(ctx: &Context, ns: &str, meta: &MetaView) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    if let Some(value) = meta
        .annotations
        .get(multus_crds::constants::NETWORKS_ANNOTATION)
        && let Ok(list) = parse_networks(value)
    {
        refs.extend(
            list.into_iter()
                .map(|s| (s.namespace_or(ns).to_owned(), s.name.into_owned())),
        );
    }
    if let Some(value) = meta
        .annotations
        .get(multus_crds::constants::DEFAULT_NETWORK_ANNOTATION)
        && let Ok(s) = parse_default_network(value)
    {
        let dns = s
            .namespace_or(&ctx.settings.pod_rules.multus_namespace)
            .to_owned();
        refs.push((dns, s.name.into_owned()));
    }
    refs
}

fn count_resources(refs: &[(String, String)], lookup: &WithFetched<'_>) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for (ns, name) in refs {
        if let Some(resource) = lookup.resource_name(ns, name) {
            *counts.entry(resource.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

fn target_container(pod: &PodView) -> Result<usize, String> {
    let Some(wanted) = pod.metadata.annotations.get(RESOURCE_CONTAINER_ANNOTATION) else {
        return Ok(0);
    };
    pod.spec
        .containers
        .iter()
        .position(|c| &c.name == wanted)
        .ok_or_else(|| {
            let names: BTreeSet<&str> = pod.spec.containers.iter().map(|c| c.name.as_str()).collect();
            format!(
                "metadata.annotations[{RESOURCE_CONTAINER_ANNOTATION}]: container {wanted:?} is not in the pod (containers: {})",
                names.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
}

/// Add the counts to both maps, creating `resources`, `requests` and `limits` when absent
/// (adding a key under a missing object is an error in JSON patch).
fn patch(index: usize, container: &ContainerView, counts: &BTreeMap<String, u32>) -> Vec<PatchOp> {
    if counts.is_empty() {
        return Vec::new();
    }
    let base = format!("/spec/containers/{index}/resources");
    let as_map = || -> serde_json::Map<String, Value> {
        counts
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.to_string())))
            .collect()
    };
    let Some(resources) = &container.resources else {
        return vec![PatchOp::add(
            base,
            json!({"requests": as_map(), "limits": as_map()}),
        )];
    };
    let mut ops = Vec::new();
    for (field, present) in [
        ("requests", resources.requests.is_some()),
        ("limits", resources.limits.is_some()),
    ] {
        if present {
            for (resource, count) in counts {
                ops.push(PatchOp::add(
                    format!("{base}/{field}/{}", pointer_segment(resource)),
                    json!(count.to_string()),
                ));
            }
        } else {
            ops.push(PatchOp::add(
                format!("{base}/{field}"),
                Value::Object(as_map()),
            ));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(resources: Option<Value>) -> ContainerView {
        serde_json::from_value(json!({"name": "app", "resources": resources})).unwrap_or_default()
    }

    #[test]
    fn missing_maps_are_created_and_present_ones_extended() {
        let counts: BTreeMap<String, u32> = [("intel.com/sriov".to_owned(), 2)].into();
        let ops = patch(0, &container(None), &counts);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].path, "/spec/containers/0/resources");
        assert_eq!(ops[0].value["limits"]["intel.com/sriov"], "2");
        let ops = patch(
            1,
            &container(Some(json!({"requests": {"cpu": "1"}}))),
            &counts,
        );
        let paths: Vec<&str> = ops.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/spec/containers/1/resources/requests/intel.com~1sriov",
                "/spec/containers/1/resources/limits"
            ]
        );
    }
}
