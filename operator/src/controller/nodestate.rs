//! Policies + Nodes + discovered NICs → every node's `SriovNetworkNodeState.spec`, as one
//! debounced cluster-wide sync (as upstream): any change to a policy, a node or a NodeState
//! schedules a sync after `debounce`; a full resync runs every `resync`. The merge itself is the
//! pure `multus_crds::sriov::merge::merge_cluster`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use multus_crds::constants::{SRIOV_KEEP_STATE_UNTIL_ANNOTATION, field_manager};
use multus_crds::sriov::merge::{ClusterMerge, NodeView, PolicyOutcome, VfConflict, merge_cluster};
use multus_crds::sriov::{
    SriovNetworkNodePolicy, SriovNetworkNodeState, SriovNetworkNodeStateSpec,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{Context, ControllerError, status};

const NAME: &str = "nodestate";
const STATE: &str = "SriovNetworkNodeState";
const POLICY: &str = "SriovNetworkNodePolicy";
/// Policy condition types and reasons.
pub const READY: &str = "Ready";
pub const DEGRADED: &str = "Degraded";
pub const REASON_APPLIED: &str = "Applied";
pub const REASON_NO_NODE: &str = "NoNodeSelected";
pub const REASON_NO_NIC: &str = "NoNicSelected";
pub const REASON_OVERLAP: &str = "VfRangeOverlap";
pub const REASON_NO_CONFLICT: &str = "NoConflict";

struct Stores {
    policies: Store<SriovNetworkNodePolicy>,
    nodes: Store<Node>,
    states: Store<SriovNetworkNodeState>,
}

/// Run the policy → NodeState sync until shutdown.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let client = ctx.client.clone();
    let ns = ctx.config.namespace.clone();
    let (policies, pw) = reflector::store();
    let (nodes, nw) = reflector::store();
    let (states, sw) = reflector::store();
    let wc = || watcher::Config::default().any_semantic();
    let streams: Vec<BoxStream<'static, ()>> = vec![
        reflector(
            pw,
            watcher(
                Api::<SriovNetworkNodePolicy>::namespaced(client.clone(), &ns),
                wc(),
            ),
        )
        .default_backoff()
        .touched_objects()
        .map(|_| ())
        .boxed(),
        reflector(nw, watcher(Api::<Node>::all(client.clone()), wc()))
            .default_backoff()
            .touched_objects()
            .map(|_| ())
            .boxed(),
        reflector(
            sw,
            watcher(Api::<SriovNetworkNodeState>::namespaced(client, &ns), wc()),
        )
        .default_backoff()
        .touched_objects()
        .map(|_| ())
        .boxed(),
    ];
    let mut changes = futures::stream::select_all(streams);
    let stores = Stores {
        policies,
        nodes,
        states,
    };
    tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        r = async {
            let _ = stores.policies.wait_until_ready().await;
            let _ = stores.nodes.wait_until_ready().await;
            stores.states.wait_until_ready().await
        } => if r.is_err() { return Ok(()) },
        // keep the watches flowing while waiting
        () = async { while changes.next().await.is_some() {} } => return Ok(()),
    }
    ctx.readiness.set(true);
    let mut leadership = ctx.leadership();
    let mut next_deadline: Option<Duration> = None;
    loop {
        if ctx.is_leader() {
            next_deadline = sync(&ctx, &stores).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "NodeState sync failed");
                ctx.metrics.error(NAME, &error);
                Some(Duration::from_secs(15))
            });
        }
        let wait = next_deadline.map_or(ctx.config.resync, |d| d.min(ctx.config.resync));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
            r = leadership.changed() => if r.is_err() { return Ok(()) },
            c = changes.next() => {
                if c.is_none() { return Ok(()) }
                // debounce: gather the burst
                let quiet = tokio::time::sleep(ctx.config.debounce);
                tokio::pin!(quiet);
                loop {
                    tokio::select! {
                        () = &mut quiet => break,
                        c = changes.next() => if c.is_none() { return Ok(()) },
                    }
                }
            }
        }
    }
}

/// One cluster-wide sync. Returns when the next one is due for a pending NodeState removal.
#[instrument(skip_all)]
async fn sync(ctx: &Context, stores: &Stores) -> Result<Option<Duration>, ControllerError> {
    let _timer = ctx.metrics.reconcile(NAME);
    let policies = stores.policies.state();
    let nodes = stores.nodes.state();
    let states: BTreeMap<String, Arc<SriovNetworkNodeState>> = stores
        .states
        .state()
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    let selected: Vec<&Arc<Node>> = nodes
        .iter()
        .filter(|n| is_selected(n.labels(), &ctx.config.node_selector))
        .collect();
    let names: Vec<String> = selected.iter().map(|n| n.name_any()).collect();
    let views = selected.iter().zip(&names).map(|(n, name)| NodeView {
        name,
        labels: n.labels(),
        interfaces: states
            .get(name)
            .and_then(|s| s.status.as_ref())
            .map(|s| s.interfaces.as_slice())
            .unwrap_or_default(),
    });
    let merged = merge_cluster(policies.iter().map(|p| &**p), views);

    let api: Api<SriovNetworkNodeState> =
        Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    for name in &names {
        let desired = merged
            .nodes
            .get(name)
            .map(|m| m.spec.clone())
            .unwrap_or_default();
        match states.get(name) {
            None => {
                apply_state(ctx, &api, name, &SriovNetworkNodeStateSpec::default(), None).await?
            }
            Some(s) => {
                let reported = s
                    .status
                    .as_ref()
                    .is_some_and(|st| !st.interfaces.is_empty());
                let marked = s
                    .annotations()
                    .contains_key(SRIOV_KEEP_STATE_UNTIL_ANNOTATION);
                // Upstream leaves a NodeState alone until its node reported NICs.
                let spec = if reported { &desired } else { &s.spec };
                if marked || s.spec != *spec {
                    apply_state(ctx, &api, name, spec, None).await?;
                }
            }
        }
    }
    // NodeStates of nodes that are gone (or no longer selected): mark, then remove after the delay.
    let wanted: BTreeSet<&String> = names.iter().collect();
    let mut next: Option<Duration> = None;
    let now = Timestamp::now();
    for (name, state) in &states {
        if wanted.contains(name) {
            continue;
        }
        let until = state
            .annotations()
            .get(SRIOV_KEEP_STATE_UNTIL_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok());
        match until {
            None => {
                let delay =
                    SignedDuration::try_from(ctx.config.state_removal_delay).unwrap_or_default();
                let until = now.checked_add(delay).unwrap_or(now);
                apply_state(ctx, &api, name, &state.spec, Some(until.to_string())).await?;
                next = Some(next.map_or(ctx.config.state_removal_delay, |d| {
                    d.min(ctx.config.state_removal_delay)
                }));
            }
            Some(until) if until <= now => {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(source) => {
                        return Err(ControllerError::Delete {
                            kind: STATE,
                            name: name.clone(),
                            source,
                        });
                    }
                }
                ctx.metrics.write(STATE);
                tracing::info!(node = %name, "removed the NodeState of a vanished node");
            }
            Some(until) => {
                let left = Duration::try_from(until.duration_since(now)).unwrap_or_default();
                next = Some(next.map_or(left, |d| d.min(left)));
            }
        }
    }
    for policy in policies.iter() {
        policy_status(ctx, policy, &merged).await?;
    }
    Ok(next)
}

/// Whether a node with `labels` gets a NodeState (every selector label present with its value).
pub fn is_selected(labels: &BTreeMap<String, String>, selector: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A policy's standing after a merge: what its `Ready` and `Degraded` conditions say. Pure, for
/// the reconciler and the offline run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVerdict {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
    /// One sentence per VF range this policy lost to a policy that takes precedence.
    pub conflicts: Vec<String>,
}

/// The verdict on the policy whose merge outcome is `outcome` and whose conflicts are `conflicts`.
pub fn policy_verdict<'a>(
    outcome: &PolicyOutcome,
    conflicts: impl Iterator<Item = &'a VfConflict>,
) -> PolicyVerdict {
    let (ready, reason, message) = if outcome.nodes.is_empty() {
        (
            false,
            REASON_NO_NODE,
            "the nodeSelector matches no SR-IOV node".to_owned(),
        )
    } else if outcome.pfs.is_empty() {
        (
            false,
            REASON_NO_NIC,
            format!(
                "the nicSelector matches no NIC on the {} selected node(s)",
                outcome.nodes.len()
            ),
        )
    } else {
        (
            true,
            REASON_APPLIED,
            format!(
                "{} NIC(s) on {} node(s)",
                outcome.pfs.len(),
                outcome.nodes.len()
            ),
        )
    };
    let conflicts = conflicts
        .map(|c| {
            format!(
                "node {} PF {}: VFs {} of policy {} overlap VFs {} of policy {}, which takes precedence",
                c.node, c.pf, c.loser_range, c.loser, c.winner_range, c.winner
            )
        })
        .collect();
    PolicyVerdict {
        ready,
        reason,
        message,
        conflicts,
    }
}

/// The `Degraded` message: the first three conflicts and how many more.
pub fn degraded_message(conflicts: &[String]) -> String {
    match conflicts.len() {
        0 => String::new(),
        n if n <= 3 => conflicts.join("; "),
        n => format!("{}; and {} more", conflicts[..3].join("; "), n - 3),
    }
}

async fn apply_state(
    ctx: &Context,
    api: &Api<SriovNetworkNodeState>,
    name: &str,
    spec: &SriovNetworkNodeStateSpec,
    keep_until: Option<String>,
) -> Result<(), ControllerError> {
    let mut body = json!({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": STATE,
        "metadata": {"name": name, "namespace": ctx.config.namespace},
        "spec": spec,
    });
    if let Some(until) = keep_until {
        body["metadata"]["annotations"] = json!({SRIOV_KEEP_STATE_UNTIL_ANNOTATION: until});
    }
    api.patch(
        name,
        &PatchParams::apply(field_manager::CONTROLLER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ControllerError::Apply {
        kind: STATE,
        name: name.to_owned(),
        source,
    })?;
    ctx.metrics.write(STATE);
    Ok(())
}

/// The policy's `Ready` and `Degraded` conditions from the merge; written, with a Warning Event
/// for a new conflict, only when they changed.
async fn policy_status(
    ctx: &Context,
    policy: &SriovNetworkNodePolicy,
    merged: &ClusterMerge,
) -> Result<(), ControllerError> {
    let name = policy.name_any();
    let Some(outcome) = merged.policies.get(&name) else {
        return Ok(());
    };
    let generation = policy.meta().generation;
    let current = policy
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let PolicyVerdict {
        ready,
        reason,
        message,
        conflicts,
    } = policy_verdict(outcome, merged.conflicts_of(&name));
    let degraded_msg = degraded_message(&conflicts);
    let desired = vec![
        status::condition(READY, ready, reason, message, generation, current),
        if conflicts.is_empty() {
            status::condition(
                DEGRADED,
                false,
                REASON_NO_CONFLICT,
                String::new(),
                generation,
                current,
            )
        } else {
            status::condition(
                DEGRADED,
                true,
                REASON_OVERLAP,
                degraded_msg.clone(),
                generation,
                current,
            )
        },
    ];
    if status::same(current, &desired) {
        return Ok(());
    }
    let was = |t: &str| {
        current
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    if !conflicts.is_empty() && was(DEGRADED) != Some(("True".to_owned(), degraded_msg.clone())) {
        event(
            ctx,
            policy,
            EventType::Warning,
            REASON_OVERLAP,
            degraded_msg,
        )
        .await;
    }
    if !ready && was(READY).map(|(s, _)| s) != Some("False".to_owned()) {
        event(
            ctx,
            policy,
            EventType::Warning,
            reason,
            desired[0].message.clone(),
        )
        .await;
    }
    let api: Api<SriovNetworkNodePolicy> =
        Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    super::apply_conditions(ctx, &api, POLICY, name, &desired).await
}

async fn event(
    ctx: &Context,
    policy: &SriovNetworkNodePolicy,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let note: String = note.chars().take(1000).collect();
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Merge".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&ev, &policy.object_ref(&())).await {
        tracing::debug!(%error, "publishing an Event");
    }
}
