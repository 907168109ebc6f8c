//! The controller's half of a pass, through the controller's own pure decisions: each
//! SriovNetwork → its NAD ([`network::desired_nad`]), and all policies + the selected nodes +
//! their discovered NICs → every node's NodeState spec (`merge_cluster`, judged by
//! [`nodestate::policy_verdict`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::sriov::merge::{ClusterMerge, NodeView, merge_cluster};
use multus_crds::sriov::network::{REASON_NAD_INVALID, REASON_NAMESPACE_NOT_FOUND};
use multus_crds::sriov::render::owner_ref_value;
use multus_crds::sriov::{InterfaceStatus, SriovNetworkNodeStateSpec};

use super::cluster::Cluster;
use crate::controller::network::{self, DesiredNad};
use crate::controller::nodestate::{self, PolicyVerdict};

/// What became of one SriovNetwork.
#[derive(Debug, Clone)]
pub struct NetworkResult {
    /// `namespace/name` of the network.
    pub network: String,
    pub outcome: NetworkOutcome,
}

#[derive(Debug, Clone)]
pub enum NetworkOutcome {
    /// The NAD it renders to (`namespace/name`).
    Rendered(String),
    /// `Ready=False` with this reason and message.
    NotReady {
        reason: &'static str,
        message: String,
    },
}

/// The NADs a cluster would hold once the controller ran: the folder's, plus (or in place of a
/// hand-written copy) the ones rendered from SriovNetworks. Also the rendered ones alone.
pub struct Networks {
    pub all: Vec<NetworkAttachmentDefinition>,
    pub rendered: Vec<NetworkAttachmentDefinition>,
    pub results: Vec<NetworkResult>,
}

pub fn networks(cluster: &Cluster, operator_ns: &str, resource_prefix: &str) -> Networks {
    let key = |n: &NetworkAttachmentDefinition| (n.namespace().unwrap_or_default(), n.name_any());
    let mut all: BTreeMap<(String, String), NetworkAttachmentDefinition> =
        cluster.nads.iter().map(|n| (key(n), n.clone())).collect();
    let mut rendered = Vec::new();
    let mut results = Vec::new();
    for net in &cluster.networks {
        let own_ns = net.namespace().unwrap_or_default();
        let name = net.name_any();
        let not_ready = |reason, message| NetworkResult {
            network: format!("{own_ns}/{name}"),
            outcome: NetworkOutcome::NotReady { reason, message },
        };
        let (target, nad) = match network::desired_nad(net, operator_ns, resource_prefix) {
            DesiredNad::Refused(message) => {
                results.push(not_ready(REASON_NAD_INVALID, message));
                continue;
            }
            DesiredNad::NoTarget => continue,
            DesiredNad::Nad { target, nad, .. } => (target, nad),
        };
        // The reconciler's order: the namespace must exist before the NAD is rendered.
        if !cluster.namespaces.contains(&target) {
            results.push(not_ready(
                REASON_NAMESPACE_NOT_FOUND,
                network::namespace_missing(&target),
            ));
            continue;
        }
        let nad = match nad {
            Ok(nad) => *nad,
            Err(message) => {
                results.push(not_ready(REASON_NAD_INVALID, message));
                continue;
            }
        };
        let k = key(&nad);
        if let Some(message) = all
            .get(&k)
            .and_then(|cur| network::foreign_owner(cur, &owner_ref_value(&own_ns, &name)))
        {
            results.push(not_ready(REASON_NAD_INVALID, message));
            continue;
        }
        results.push(NetworkResult {
            network: format!("{own_ns}/{name}"),
            outcome: NetworkOutcome::Rendered(format!("{}/{}", k.0, k.1)),
        });
        all.insert(k, nad.clone());
        rendered.push(nad);
    }
    Networks {
        all: all.into_values().collect(),
        rendered,
        results,
    }
}

/// The merge over the nodes the selector picks, and each policy's verdict.
pub struct Policies {
    pub merged: ClusterMerge,
    /// Names of the selected nodes (they get a NodeState).
    pub selected: Vec<String>,
    /// Policies of the operator namespace, by name.
    pub verdicts: BTreeMap<String, PolicyVerdict>,
    /// Policies outside the operator namespace (`namespace/name`): not used, as in a cluster.
    pub ignored: Vec<String>,
}

impl Policies {
    /// The spec of a selected node.
    pub fn spec(&self, node: &str) -> SriovNetworkNodeStateSpec {
        self.merged
            .nodes
            .get(node)
            .map(|m| m.spec.clone())
            .unwrap_or_default()
    }
}

/// Merge the policies of `operator_ns` over the nodes `selector` picks; `nics` gives each node's
/// discovered PFs (what its agent would have reported in the NodeState status).
pub fn policies(
    cluster: &Cluster,
    operator_ns: &str,
    selector: &BTreeMap<String, String>,
    nics: &BTreeMap<String, Vec<InterfaceStatus>>,
) -> Policies {
    let (used, ignored): (Vec<_>, Vec<_>) = cluster
        .policies
        .iter()
        .partition(|p| p.namespace().as_deref() == Some(operator_ns));
    let selected: Vec<&Node> = cluster
        .nodes
        .iter()
        .filter(|n| nodestate::is_selected(n.labels(), selector))
        .collect();
    let names: Vec<String> = selected.iter().map(|n| n.name_any()).collect();
    let views = selected.iter().zip(&names).map(|(n, name)| NodeView {
        name,
        labels: n.labels(),
        interfaces: nics.get(name).map(Vec::as_slice).unwrap_or_default(),
    });
    let merged = merge_cluster(used.iter().copied(), views);
    let verdicts = used
        .iter()
        .filter_map(|p| {
            let name = p.name_any();
            let outcome = merged.policies.get(&name)?;
            Some((
                name.clone(),
                nodestate::policy_verdict(outcome, merged.conflicts_of(&name)),
            ))
        })
        .collect();
    Policies {
        merged,
        selected: names,
        verdicts,
        ignored: ignored
            .iter()
            .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
            .collect(),
    }
}
