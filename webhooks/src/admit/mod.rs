//! What the webhook decides: one module per family of objects, each calling the rules of
//! `multus-crds` (the same functions `multusctl` and the controllers call).
//!
//! | path | reviews | handler |
//! |---|---|---|
//! | `/validate/nads` | NetworkAttachmentDefinitions | [`nad`] |
//! | `/validate/pods` | Pods and the pod templates of workloads | [`pod`] |
//! | `/mutate/pods` | Pods: SR-IOV resource requests | [`inject`] |
//! | `/validate/sriov` | SriovNetworkNodePolicies, SriovNetworks, SriovNetworkNodeStates | [`sriov`] |
//! | `/mutate/sriov` | SriovNetworkNodePolicies: defaults | [`sriov`] |

pub mod inject;
pub mod ipam;
pub mod nad;
pub mod pod;
pub mod sriov;

use std::collections::BTreeSet;

use multus_crds::rules::pod::NetworkLookup;
use multus_crds::{Diagnostics, NetworkAttachmentDefinition};

use crate::context::{Context, NadCache};
use crate::metrics::ReviewKind;
use crate::review::{ReviewRequest, Verdict};

/// The review paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ValidateNads,
    ValidatePods,
    MutatePods,
    ValidateSriov,
    MutateSriov,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::ValidateNads,
        Endpoint::ValidatePods,
        Endpoint::MutatePods,
        Endpoint::ValidateSriov,
        Endpoint::MutateSriov,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ValidateNads => "/validate/nads",
            Endpoint::ValidatePods => "/validate/pods",
            Endpoint::MutatePods => "/mutate/pods",
            Endpoint::ValidateSriov => "/validate/sriov",
            Endpoint::MutateSriov => "/mutate/sriov",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }
}

/// The kind of the reviewed object, from the resource the API server names.
pub fn review_kind(req: &ReviewRequest<'_>) -> ReviewKind {
    let r = &req.resource;
    match (r.group.as_ref(), r.resource.as_ref()) {
        ("k8s.cni.cncf.io", "network-attachment-definitions") => {
            ReviewKind::NetworkAttachmentDefinition
        }
        ("", "pods") => ReviewKind::Pod,
        ("", "replicationcontrollers") => ReviewKind::ReplicationController,
        ("apps", "deployments") => ReviewKind::Deployment,
        ("apps", "statefulsets") => ReviewKind::StatefulSet,
        ("apps", "daemonsets") => ReviewKind::DaemonSet,
        ("apps", "replicasets") => ReviewKind::ReplicaSet,
        ("batch", "jobs") => ReviewKind::Job,
        ("batch", "cronjobs") => ReviewKind::CronJob,
        ("sriovnetwork.openshift.io", "sriovnetworknodepolicies") => {
            ReviewKind::SriovNetworkNodePolicy
        }
        ("sriovnetwork.openshift.io", "sriovnetworks") => ReviewKind::SriovNetwork,
        ("sriovnetwork.openshift.io", "sriovnetworknodestates") => {
            ReviewKind::SriovNetworkNodeState
        }
        _ => ReviewKind::Other,
    }
}

/// Decide one review.
pub async fn admit(
    ctx: &Context,
    endpoint: Endpoint,
    req: &ReviewRequest<'_>,
) -> (ReviewKind, Verdict) {
    let kind = review_kind(req);
    // Subresources (status, scale, ...) never change what the rules look at.
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return (kind, Verdict::allow());
    }
    let verdict = match (endpoint, kind) {
        (Endpoint::ValidateNads, ReviewKind::NetworkAttachmentDefinition) => {
            nad::validate(ctx, req)
        }
        (Endpoint::ValidatePods, ReviewKind::Pod) => pod::validate_pod(ctx, req).await,
        (Endpoint::ValidatePods, k) if pod::template_path(k).is_some() => {
            pod::validate_workload(ctx, req, k).await
        }
        (Endpoint::MutatePods, ReviewKind::Pod) => inject::mutate(ctx, req).await,
        (Endpoint::ValidateSriov, ReviewKind::SriovNetworkNodePolicy) => {
            sriov::validate_policy(ctx, req)
        }
        (Endpoint::ValidateSriov, ReviewKind::SriovNetwork) => sriov::validate_network(ctx, req),
        (Endpoint::ValidateSriov, ReviewKind::SriovNetworkNodeState) => {
            sriov::validate_node_state(req)
        }
        (Endpoint::MutateSriov, ReviewKind::SriovNetworkNodePolicy) => sriov::mutate_policy(req),
        // A webhook configuration that sends us something else is a deployment mistake; refusing
        // would block that kind cluster-wide, so it is let through with a warning the user sees.
        _ => {
            let mut v = Verdict::allow();
            v.warnings.push(format!(
                "multus-webhook: {} does not review {}/{}; check the webhook configuration",
                endpoint.path(),
                req.resource.group,
                req.resource.resource
            ));
            v
        }
    };
    (kind, verdict)
}

/// The verdict for an object's findings: denied when there is an error, with every error in the
/// message; warnings are returned either way.
pub fn verdict_from(what: &str, object: &str, found: &Diagnostics) -> Verdict {
    let warnings: Vec<String> = found.warnings().map(ToString::to_string).collect();
    let errors: Vec<String> = found.errors().map(ToString::to_string).collect();
    let mut verdict = if errors.is_empty() {
        Verdict::allow()
    } else {
        let object = if object.is_empty() {
            String::new()
        } else {
            format!(" {object}")
        };
        Verdict::deny(format!("{what}{object} is invalid: {}", errors.join("; ")))
    };
    verdict.warnings = warnings;
    verdict
}

/// A verdict for an object that could not be read as its kind.
pub fn unreadable(what: &str, error: &serde_json::Error) -> Verdict {
    Verdict::deny(format!("cannot read the {what}: {error}"))
}

/// Fetch, from the API server, the referenced NADs the cache does not have: a NAD created a
/// moment ago may not have reached the watch yet, and refusing a pod for that would be wrong.
/// Returns the NADs found; misses and errors leave the rules to report the NAD as missing.
pub async fn fetch_missing(ctx: &Context, refs: BTreeSet<(String, String)>) -> NadCache {
    let missing: Vec<(String, String)> = {
        let cache = ctx.read_nads();
        refs.into_iter()
            .filter(|(ns, name)| !cache.contains(ns, name))
            .collect()
    };
    let mut fetched = NadCache::default();
    let Some(client) = ctx.client.as_ref().filter(|_| !missing.is_empty()) else {
        return fetched;
    };
    let lookups = missing.iter().map(|(ns, name)| {
        ctx.metrics.live_lookup();
        let api: kube::Api<NetworkAttachmentDefinition> = kube::Api::namespaced(client.clone(), ns);
        async move {
            match tokio::time::timeout(ctx.settings.live_lookup_timeout, api.get_opt(name)).await {
                Ok(Ok(found)) => found,
                Ok(Err(error)) => {
                    tracing::warn!(%error, namespace = %ns, name = %name, "live NAD lookup failed");
                    None
                }
                Err(_) => {
                    tracing::warn!(namespace = %ns, name = %name, "live NAD lookup timed out");
                    None
                }
            }
        }
    });
    for nad in futures::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
    {
        fetched.insert_nad(&nad);
    }
    fetched
}
