//! Pods and the pod templates of workloads: the pod network rules of `multus-crds` against the
//! NAD cache, with a live lookup of NADs the cache does not have yet.

use std::collections::{BTreeMap, BTreeSet};

use multus_crds::FieldPath;
use multus_crds::annotations::{parse_default_network, parse_networks};
use multus_crds::constants::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use multus_crds::rules::pod::validate_pod_networks_at;
use serde::Deserialize;
use serde_json::Value;

use super::{fetch_missing, unreadable, verdict_from};
use crate::context::{Context, WithFetched};
use crate::metrics::ReviewKind;
use crate::review::{ReviewRequest, Verdict};

/// The part of an object's metadata the rules read.
#[derive(Debug, Default, Deserialize)]
pub struct MetaView {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl MetaView {
    /// Whether the object asks for any network.
    pub fn has_networks(&self) -> bool {
        self.annotations.contains_key(NETWORKS_ANNOTATION)
            || self.annotations.contains_key(DEFAULT_NETWORK_ANNOTATION)
    }

    fn network_annotations(&self) -> (Option<&String>, Option<&String>) {
        (
            self.annotations.get(NETWORKS_ANNOTATION),
            self.annotations.get(DEFAULT_NETWORK_ANNOTATION),
        )
    }
}

#[derive(Debug, Default, Deserialize)]
struct ObjectView {
    #[serde(default)]
    metadata: MetaView,
}

/// Where a workload kind keeps its pod template (the table is shared with `multusctl`).
pub fn template_path(kind: ReviewKind) -> Option<&'static [&'static str]> {
    let kind = match kind {
        ReviewKind::Deployment => "Deployment",
        ReviewKind::StatefulSet => "StatefulSet",
        ReviewKind::DaemonSet => "DaemonSet",
        ReviewKind::ReplicaSet => "ReplicaSet",
        ReviewKind::ReplicationController => "ReplicationController",
        ReviewKind::Job => "Job",
        ReviewKind::CronJob => "CronJob",
        _ => return None,
    };
    multus_crds::workloads::pod_template_path(kind)
}

/// The namespace the pod will live in: the request's, else the object's, else `default`.
pub fn pod_namespace<'a>(req: &'a ReviewRequest<'_>, meta: &'a MetaView) -> &'a str {
    req.namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .or(meta.namespace.as_deref())
        .unwrap_or("default")
}

/// The NADs the annotations name, as the rules will resolve them. Unparsable annotations name
/// none (the rules report them).
pub fn referenced_nads(
    ctx: &Context,
    pod_namespace: &str,
    meta: &MetaView,
) -> BTreeSet<(String, String)> {
    let mut refs = BTreeSet::new();
    let (networks, default) = meta.network_annotations();
    for s in networks
        .and_then(|v| parse_networks(v).ok())
        .unwrap_or_default()
    {
        refs.insert((
            s.namespace_or(pod_namespace).to_owned(),
            s.name.into_owned(),
        ));
    }
    if let Some(s) = default.and_then(|v| parse_default_network(v).ok()) {
        let ns = s
            .namespace_or(&ctx.settings.pod_rules.multus_namespace)
            .to_owned();
        refs.insert((ns, s.name.into_owned()));
    }
    refs
}

pub async fn validate_pod(ctx: &Context, req: &ReviewRequest<'_>) -> Verdict {
    let Some(raw) = req.object.filter(|_| !req.is_delete()) else {
        return Verdict::allow();
    };
    let pod: ObjectView = match serde_json::from_str(raw.get()) {
        Ok(p) => p,
        Err(e) => return unreadable("Pod", &e),
    };
    if req.is_update() && annotations_unchanged(req, &[], &pod.metadata) {
        return Verdict::allow();
    }
    let ns = pod_namespace(req, &pod.metadata).to_owned();
    check(
        ctx,
        "Pod",
        &req.object_ref(),
        &FieldPath::new("metadata"),
        &ns,
        &pod.metadata,
    )
    .await
}

pub async fn validate_workload(
    ctx: &Context,
    req: &ReviewRequest<'_>,
    kind: ReviewKind,
) -> Verdict {
    let (Some(raw), Some(path)) = (req.object.filter(|_| !req.is_delete()), template_path(kind))
    else {
        return Verdict::allow();
    };
    let what = format!("{kind:?}");
    let object: Value = match serde_json::from_str(raw.get()) {
        Ok(v) => v,
        Err(e) => return unreadable(&what, &e),
    };
    let meta = template_meta(&object, path);
    if req.is_update() && annotations_unchanged(req, path, &meta) {
        return Verdict::allow();
    }
    let object_meta: MetaView = object
        .get("metadata")
        .and_then(|m| MetaView::deserialize(m).ok())
        .unwrap_or_default();
    let ns = pod_namespace(req, &object_meta).to_owned();
    let mut at = FieldPath::root();
    for seg in path {
        at = at.field(seg);
    }
    check(
        ctx,
        &what,
        &req.object_ref(),
        &at.field("metadata"),
        &ns,
        &meta,
    )
    .await
}

fn template_meta(object: &Value, path: &[&str]) -> MetaView {
    path.iter()
        .try_fold(object, |v, seg| v.get(seg))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| MetaView::deserialize(m).ok())
        .unwrap_or_default()
}

/// On UPDATE, a pod or template whose network annotations did not change is let through: a NAD
/// deleted since must not block scaling a Deployment or the kubelet's status updates.
fn annotations_unchanged(req: &ReviewRequest<'_>, path: &[&str], new: &MetaView) -> bool {
    let Some(old) = req
        .old_object
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
    else {
        return false;
    };
    let old = if path.is_empty() {
        old.get("metadata")
            .and_then(|m| MetaView::deserialize(m).ok())
            .unwrap_or_default()
    } else {
        template_meta(&old, path)
    };
    old.network_annotations() == new.network_annotations()
}

async fn check(
    ctx: &Context,
    what: &str,
    object: &str,
    metadata_path: &FieldPath,
    ns: &str,
    meta: &MetaView,
) -> Verdict {
    if !meta.has_networks() {
        return Verdict::allow();
    }
    let fetched = fetch_missing(ctx, referenced_nads(ctx, ns, meta)).await;
    let cache = ctx.read_nads();
    let lookup = WithFetched {
        cached: &cache,
        fetched: &fetched,
    };
    let found = validate_pod_networks_at(
        metadata_path,
        ns,
        &meta.annotations,
        &lookup,
        &ctx.settings.pod_rules,
    );
    verdict_from(what, object, &found)
}
