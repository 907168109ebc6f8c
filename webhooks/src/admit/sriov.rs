//! The SR-IOV kinds: the static rules and policy defaults of `multus-crds::rules::sriov`, and the
//! cluster-state rules of `multus-crds::rules::sriov_cluster` over the watched nodes, node states
//! and policies.

use multus_crds::rules::sriov::{
    default_policy, validate_network as network_rules, validate_node_state as node_state_rules,
    validate_policy as policy_rules,
};
use multus_crds::rules::sriov_cluster::validate_policy_in_cluster;
use multus_crds::sriov::{SriovNetwork, SriovNetworkNodePolicy, SriovNetworkNodeState};
use serde_json::json;

use super::{unreadable, verdict_from};
use crate::context::Context;
use crate::review::{PatchOp, ReviewRequest, Verdict};

const POLICY: &str = "SriovNetworkNodePolicy";

fn read<T: serde::de::DeserializeOwned>(
    req: &ReviewRequest<'_>,
) -> Option<Result<T, serde_json::Error>> {
    let raw = req.object.filter(|_| !req.is_delete())?;
    Some(serde_json::from_str(raw.get()))
}

pub fn validate_policy(ctx: &Context, req: &ReviewRequest<'_>) -> Verdict {
    let mut policy: SriovNetworkNodePolicy = match read(req) {
        None => return Verdict::allow(),
        Some(Ok(p)) => p,
        Some(Err(e)) => return unreadable(POLICY, &e),
    };
    if policy.metadata.namespace.is_none() {
        policy.metadata.namespace = req.namespace.as_deref().map(str::to_owned);
    }
    // Judge the policy as it will be stored, whether or not the mutating webhook ran first.
    default_policy(&mut policy);
    let settings = &ctx.settings;
    let nics = settings.supported_nics.as_ref();
    let mut found = policy_rules(&policy, nics, &settings.operator_namespace);
    if !found.has_errors() {
        // Judged against caches that have not listed yet, a good policy would be refused for
        // selecting no node; say why and let the user retry instead.
        if !ctx.sriov_readiness.is_ready() {
            return Verdict::deny(format!(
                "{POLICY} {}: the webhook has not yet listed the cluster's Nodes, SriovNetworkNodeStates and policies (the SR-IOV CRDs were just installed, or the webhook just started); retry in a few seconds",
                req.object_ref()
            ));
        }
        found.extend(validate_policy_in_cluster(
            &policy,
            &ctx.read_sriov(),
            nics,
            &settings.operator_namespace,
        ));
    }
    verdict_from(POLICY, &req.object_ref(), &found)
}

pub fn mutate_policy(req: &ReviewRequest<'_>) -> Verdict {
    let Some(Ok(mut policy)) = read::<SriovNetworkNodePolicy>(req) else {
        return Verdict::allow();
    };
    let before = (policy.spec.priority, policy.spec.is_rdma);
    if !default_policy(&mut policy) {
        return Verdict::allow();
    }
    let mut verdict = Verdict::allow();
    if before.0 != policy.spec.priority
        && let Some(p) = policy.spec.priority
    {
        verdict
            .patch
            .push(PatchOp::add("/spec/priority".into(), json!(p)));
    }
    if before.1 != policy.spec.is_rdma
        && let Some(r) = policy.spec.is_rdma
    {
        verdict
            .patch
            .push(PatchOp::add("/spec/isRdma".into(), json!(r)));
    }
    verdict
}

pub fn validate_network(ctx: &Context, req: &ReviewRequest<'_>) -> Verdict {
    let mut net: SriovNetwork = match read(req) {
        None => return Verdict::allow(),
        Some(Ok(n)) => n,
        Some(Err(e)) => return unreadable("SriovNetwork", &e),
    };
    if net.metadata.namespace.is_none() {
        net.metadata.namespace = req.namespace.as_deref().map(str::to_owned);
    }
    let found = network_rules(&net, &ctx.settings.operator_namespace);
    verdict_from("SriovNetwork", &req.object_ref(), &found)
}

pub fn validate_node_state(req: &ReviewRequest<'_>) -> Verdict {
    let state: SriovNetworkNodeState = match read(req) {
        None => return Verdict::allow(),
        Some(Ok(s)) => s,
        Some(Err(e)) => return unreadable("SriovNetworkNodeState", &e),
    };
    verdict_from(
        "SriovNetworkNodeState",
        &req.object_ref(),
        &node_state_rules(&state),
    )
}
