//! The cluster-state rules for an SR-IOV policy (sriov-spec §2.2 steps 10–13): which nodes the
//! policy selects, whether it selects a supported NIC on them with a feasible VF count, and
//! whether it collides with the other policies on those nodes.
//!
//! Pure: the caller keeps a [`SriovClusterIndex`] up to date from its watches (the webhook from
//! reflectors, the controller from its sources) and calls [`validate_policy_in_cluster`]. The
//! static rules of steps 1–9 are [`crate::rules::sriov::validate_policy`]; call both.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Diagnostics, FieldPath};
use crate::sriov::merge;
use crate::sriov::{
    DEFAULT_POLICY_NAME, InterfaceStatus, PfNameSelector, SriovNetworkNicSelector,
    SriovNetworkNodePolicy, SriovNetworkNodePolicySpec, SriovNetworkNodeState, SupportedNics,
    VfRange,
};

/// Intel's vendor ID: its PFs report their VF capacity in `totalvfs`.
const VENDOR_INTEL: &str = "8086";
/// NVIDIA (Mellanox) vendor ID: firmware-limited to 128 VFs per PF upstream, vDPA capable.
const VENDOR_MELLANOX: &str = "15b3";
/// Upstream's ceiling for Mellanox PFs, whose `totalvfs` reflects the firmware setting only.
const MELLANOX_MAX_VFS: i32 = 128;

/// What the rules need from a Node: its labels (for `nodeSelector`) and `spec.providerID` (cloud
/// nodes, where the "PF" is itself a VF).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub labels: BTreeMap<String, String>,
    pub provider_id: String,
}

impl NodeFacts {
    /// A node on a cloud whose SR-IOV devices are VFs given to the VM (sriov-spec §2.2 step 11).
    fn is_cloud_vm(&self) -> bool {
        let id = self.provider_id.to_ascii_lowercase();
        id.contains("openstack") || id.contains("aws")
    }
}

/// Nodes, NodeStates and the policies of the operator namespace, by name.
#[derive(Clone, Debug, Default)]
pub struct SriovClusterIndex {
    nodes: BTreeMap<String, NodeFacts>,
    states: BTreeMap<String, SriovNetworkNodeState>,
    policies: BTreeMap<String, SriovNetworkNodePolicy>,
}

impl SriovClusterIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_node(&mut self, name: impl Into<String>, facts: NodeFacts) {
        self.nodes.insert(name.into(), facts);
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Add or replace a NodeState; it is filed under its name, which is its node's name.
    pub fn insert_state(&mut self, state: SriovNetworkNodeState) {
        let name = state.metadata.name.clone().unwrap_or_default();
        self.states.insert(name, state);
    }

    pub fn remove_state(&mut self, name: &str) {
        self.states.remove(name);
    }

    /// Add or replace a policy of the operator namespace (others are never applied).
    pub fn insert_policy(&mut self, policy: SriovNetworkNodePolicy) {
        let name = policy.metadata.name.clone().unwrap_or_default();
        self.policies.insert(name, policy);
    }

    pub fn remove_policy(&mut self, name: &str) {
        self.policies.remove(name);
    }

    /// Replace every node (after a full list).
    pub fn replace_nodes(&mut self, nodes: impl IntoIterator<Item = (String, NodeFacts)>) {
        self.nodes = nodes.into_iter().collect();
    }

    /// Replace every NodeState (after a full list).
    pub fn replace_states(&mut self, states: impl IntoIterator<Item = SriovNetworkNodeState>) {
        self.states.clear();
        states.into_iter().for_each(|s| self.insert_state(s));
    }

    /// Replace every policy (after a full list).
    pub fn replace_policies(&mut self, policies: impl IntoIterator<Item = SriovNetworkNodePolicy>) {
        self.policies.clear();
        policies.into_iter().for_each(|p| self.insert_policy(p));
    }

    /// Counts of nodes, node states and policies (for readiness and metrics).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.states.len(), self.policies.len())
    }

    /// The nodes the policy's `nodeSelector` picks, decided as the controller's merge decides.
    fn nodes_selected_by<'a>(
        &'a self,
        spec: &'a SriovNetworkNodePolicySpec,
    ) -> impl Iterator<Item = (&'a String, &'a NodeFacts)> + 'a {
        self.nodes
            .iter()
            .filter(move |(_, node)| merge::node_selected(spec, &node.labels))
    }
}

/// The rules of sriov-spec §2.2 steps 10–13 for `policy` against the cluster.
///
/// `nics` is the supported-NIC list; `None` (dev mode) treats every model as supported. Like the
/// static rules, the policy named `default` and policies outside `operator_namespace` are not
/// checked (they are never applied). A policy without a namespace is checked.
pub fn validate_policy_in_cluster(
    policy: &SriovNetworkNodePolicy,
    cluster: &SriovClusterIndex,
    nics: Option<&SupportedNics>,
    operator_namespace: &str,
) -> Diagnostics {
    let mut d = Diagnostics::new();
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    if name == DEFAULT_POLICY_NAME
        || policy
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != operator_namespace)
    {
        return d;
    }
    let spec_path = FieldPath::new("spec");

    // Step 10: a policy that selects no node configures nothing; that is always a mistake.
    let selected: Vec<(&String, &NodeFacts)> = cluster.nodes_selected_by(&policy.spec).collect();
    if selected.is_empty() {
        d.error(
            spec_path.field("nodeSelector"),
            format!(
                "no node matches nodeSelector {}; the policy would configure nothing",
                describe_selector(&policy.spec.node_selector)
            ),
        );
        return d;
    }

    // Step 11: per selected node, every PF the selector picks must be able to carry the policy.
    let mut nic_selected = false;
    let mut reported = BTreeSet::new();
    for (node_name, node) in &selected {
        let Some(state) = cluster.states.get(*node_name) else {
            continue;
        };
        let Some(status) = &state.status else {
            continue;
        };
        for pf in &status.interfaces {
            if !selects_supported_nic(&policy.spec.nic_selector, pf, node, nics) {
                continue;
            }
            nic_selected = true;
            for (field, message) in pf_capacity_problems(policy, pf) {
                // The same PF model on many nodes gives the same finding; say it once per field.
                if reported.insert((field, message.clone())) {
                    d.error(
                        spec_path.field(field),
                        format!("{message} (PF {} on node {node_name})", pf.name),
                    );
                }
            }
        }
    }

    // Step 12.
    if !nic_selected {
        let nodes: Vec<&str> = selected.iter().map(|(n, _)| n.as_str()).collect();
        d.error(
            spec_path.field("nicSelector"),
            format!(
                "no supported NIC is selected by the nicSelector on the selected nodes ({}); check vendor, deviceID, pfNames and rootDevices against the nodes' SriovNetworkNodeState status",
                summarize(&nodes)
            ),
        );
    }

    // Step 13: collisions with other policies on the same nodes, each other policy reported once.
    let mut compared = BTreeSet::new();
    for (node_name, node) in &selected {
        let state = cluster.states.get(*node_name);
        for (other_name, other) in &cluster.policies {
            if other_name == name
                || other_name == DEFAULT_POLICY_NAME
                || !merge::node_selected(&other.spec, &node.labels)
                || !compared.insert(other_name.as_str())
            {
                continue;
            }
            check_against_other(policy, other, other_name, state, &spec_path, &mut d);
        }
    }
    d
}

/// Upstream's `Selected` — the very function the controller's merge uses — plus its
/// supported-model test (sriov-spec §2.2 step 11).
fn selects_supported_nic(
    sel: &SriovNetworkNicSelector,
    pf: &InterfaceStatus,
    node: &NodeFacts,
    nics: Option<&SupportedNics>,
) -> bool {
    if !merge::selects_interface(sel, pf) {
        return false;
    }
    let Some(nics) = nics else {
        return true;
    };
    if nics.has_pf(&pf.vendor, &pf.device_id) {
        return true;
    }
    node.is_cloud_vm()
        && !pf.net_filter.is_empty()
        && pf.net_filter == sel.net_filter
        && nics.has_vf(&pf.vendor, &pf.device_id)
}

/// The step-11 checks of one selected PF: (field under `spec`, message).
fn pf_capacity_problems(
    policy: &SriovNetworkNodePolicy,
    pf: &InterfaceStatus,
) -> Vec<(&'static str, String)> {
    let spec = &policy.spec;
    let mut found = Vec::new();
    if spec.num_vfs == 0 {
        found.push((
            "numVfs",
            "must be greater than 0 for a policy that selects a NIC".to_owned(),
        ));
    } else if pf.vendor == VENDOR_INTEL && spec.num_vfs > pf.total_vfs {
        found.push((
            "numVfs",
            format!(
                "{} is more than the {} VFs the PF supports",
                spec.num_vfs, pf.total_vfs
            ),
        ));
    } else if pf.vendor == VENDOR_MELLANOX && spec.num_vfs > MELLANOX_MAX_VFS {
        found.push((
            "numVfs",
            format!(
                "{} is more than the {MELLANOX_MAX_VFS} VFs a Mellanox PF supports",
                spec.num_vfs
            ),
        ));
    }
    if spec.externally_managed {
        if spec.num_vfs > pf.num_vfs {
            found.push((
                "numVfs",
                format!(
                    "{} is more than the {} VFs created on the externally managed PF; create them first or lower numVfs",
                    spec.num_vfs, pf.num_vfs
                ),
            ));
        }
        if let Some(mtu) = spec.mtu
            && mtu > pf.mtu
        {
            found.push((
                "mtu",
                format!(
                    "{mtu} is more than the externally managed PF's MTU {}",
                    pf.mtu
                ),
            ));
        }
        if let Some(link) = spec.link_type.as_deref()
            && !link.is_empty()
            && !link.eq_ignore_ascii_case(&pf.link_type)
        {
            found.push((
                "linkType",
                format!(
                    "{link:?} differs from the externally managed PF's link type {:?}",
                    pf.link_type
                ),
            ));
        }
    }
    if spec.vdpa_type.is_some() && pf.vendor != VENDOR_MELLANOX {
        found.push((
            "vdpaType",
            format!(
                "vDPA needs a Mellanox (15b3) NIC; the PF's vendor is {}",
                pf.vendor
            ),
        ));
    }
    found
}

/// Step 13 against one other policy that also applies to a node this one selects.
fn check_against_other(
    policy: &SriovNetworkNodePolicy,
    other: &SriovNetworkNodePolicy,
    other_name: &str,
    state: Option<&SriovNetworkNodeState>,
    spec_path: &FieldPath,
    d: &mut Diagnostics,
) {
    let sel_path = spec_path.field("nicSelector");
    let mine = &policy.spec.nic_selector;
    let theirs = &other.spec.nic_selector;

    'pf_names: for (i, entry) in mine.pf_names.iter().enumerate() {
        for their_entry in &theirs.pf_names {
            if !same_pf(
                PfNameSelector::name_of(entry),
                PfNameSelector::name_of(their_entry),
                state,
            ) {
                continue;
            }
            let path = sel_path.field("pfNames").index(i);
            if policy.spec.externally_managed != other.spec.externally_managed {
                d.error(
                    path,
                    format!(
                        "PF {entry:?} is also used by policy {other_name:?} with externallyManaged {}; both policies must agree",
                        other.spec.externally_managed
                    ),
                );
            } else if ranges_overlap(entry, their_entry) {
                d.error(
                    path,
                    format!(
                        "VF range of {entry:?} overlaps {their_entry:?} of policy {other_name:?}; give each policy a disjoint #first-last range"
                    ),
                );
            }
            // Upstream stops at the first PF both policies name.
            break 'pf_names;
        }
    }

    for (i, root) in mine.root_devices.iter().enumerate() {
        if theirs.root_devices.contains(root) {
            d.error(
                sel_path.field("rootDevices").index(i),
                format!(
                    "PCI address {root} is also selected by policy {other_name:?}; rootDevices cannot be shared"
                ),
            );
        }
    }

    if policy.spec.resource_name == other.spec.resource_name
        && policy.spec.exclude_topology != other.spec.exclude_topology
    {
        d.error(
            spec_path.field("excludeTopology"),
            format!(
                "is {} but policy {other_name:?} exposes the same resource {:?} with {}; one resource has one topology setting",
                policy.spec.exclude_topology,
                policy.spec.resource_name,
                other.spec.exclude_topology
            ),
        );
    }
}

/// Two `pfNames` entries name the same PF: equal, or one is an alternative name of the other on
/// the node.
fn same_pf(a: &str, b: &str, state: Option<&SriovNetworkNodeState>) -> bool {
    if a == b {
        return true;
    }
    let Some(state) = state else {
        return false;
    };
    match (state.pf_by_name(a), state.pf_by_name(b)) {
        (Some(x), Some(y)) => x.pci_address == y.pci_address,
        _ => false,
    }
}

/// Upstream encodes a missing range as −1..−1, so two range-less entries overlap and a ranged vs
/// range-less pair does not. Unparsable ranges are the static rules' business: no finding here.
fn ranges_overlap(a: &str, b: &str) -> bool {
    let range = |entry: &str| PfNameSelector::parse(entry).map(|p| p.range);
    match (range(a), range(b)) {
        (Ok(None), Ok(None)) => true,
        (Ok(Some(x)), Ok(Some(y))) => VfRange::overlaps(&x, &y),
        _ => false,
    }
}

fn describe_selector(selector: &BTreeMap<String, String>) -> String {
    if selector.is_empty() {
        return "{} (all nodes), and the cluster has no nodes".to_owned();
    }
    let pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// At most five names, then a count.
fn summarize(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sriov::{SriovNetworkNodePolicySpec, SriovNetworkNodeStateStatus, VdpaType};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const NS: &str = "sriov-network-operator";

    fn policy(
        name: &str,
        edit: impl FnOnce(&mut SriovNetworkNodePolicySpec),
    ) -> SriovNetworkNodePolicy {
        let mut spec = SriovNetworkNodePolicySpec {
            resource_name: "intelnics".into(),
            num_vfs: 8,
            node_selector: [("sriov".to_owned(), "true".to_owned())].into(),
            ..Default::default()
        };
        spec.nic_selector.vendor = "8086".into();
        spec.nic_selector.pf_names = vec!["ens1f0".into()];
        edit(&mut spec);
        SriovNetworkNodePolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            spec,
            status: None,
        }
    }

    fn pf(name: &str, pci: &str, vendor: &str, device: &str, total: i32) -> InterfaceStatus {
        InterfaceStatus {
            name: name.into(),
            pci_address: pci.into(),
            vendor: vendor.into(),
            device_id: device.into(),
            total_vfs: total,
            mtu: 1500,
            link_type: "ETH".into(),
            ..Default::default()
        }
    }

    fn cluster(pfs: Vec<InterfaceStatus>, provider: &str) -> SriovClusterIndex {
        let mut c = SriovClusterIndex::new();
        c.insert_node(
            "worker-0",
            NodeFacts {
                labels: [("sriov".to_owned(), "true".to_owned())].into(),
                provider_id: provider.into(),
            },
        );
        c.insert_node("worker-1", NodeFacts::default());
        c.insert_state(SriovNetworkNodeState {
            metadata: ObjectMeta {
                name: Some("worker-0".into()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            spec: Default::default(),
            status: Some(SriovNetworkNodeStateStatus {
                interfaces: pfs,
                ..Default::default()
            }),
        });
        c
    }

    fn intel() -> SriovClusterIndex {
        cluster(vec![pf("ens1f0", "0000:3b:00.0", "8086", "158b", 64)], "")
    }

    fn paths(d: &Diagnostics) -> Vec<String> {
        d.errors().map(|e| e.path.to_string()).collect()
    }

    fn check(p: &SriovNetworkNodePolicy, c: &SriovClusterIndex) -> Diagnostics {
        validate_policy_in_cluster(p, c, Some(&SupportedNics::builtin()), NS)
    }

    #[test]
    fn a_policy_selecting_a_supported_nic_passes() {
        let d = check(&policy("p", |_| {}), &intel());
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn no_matching_node_is_rejected() {
        let p = policy("p", |s| {
            s.node_selector = [("gpu".to_owned(), "yes".to_owned())].into();
        });
        let d = check(&p, &intel());
        assert_eq!(paths(&d), ["spec.nodeSelector"]);
        assert!(d.iter().any(|e| e.message.contains("gpu=yes")));
    }

    #[test]
    fn no_selected_supported_nic_is_rejected() {
        let p = policy("p", |s| s.nic_selector.pf_names = vec!["ens9".into()]);
        assert_eq!(paths(&check(&p, &intel())), ["spec.nicSelector"]);
        // An unsupported model is not selected, unless dev mode.
        let c = cluster(vec![pf("ens1f0", "0000:3b:00.0", "8086", "ffff", 64)], "");
        assert_eq!(
            paths(&check(&policy("p", |_| {}), &c)),
            ["spec.nicSelector"]
        );
        assert!(validate_policy_in_cluster(&policy("p", |_| {}), &c, None, NS).is_empty());
        // A node without a NodeState selects nothing.
        let mut bare = SriovClusterIndex::new();
        bare.insert_node(
            "n",
            NodeFacts {
                labels: [("sriov".to_owned(), "true".to_owned())].into(),
                ..Default::default()
            },
        );
        assert_eq!(
            paths(&check(&policy("p", |_| {}), &bare)),
            ["spec.nicSelector"]
        );
    }

    #[test]
    fn cloud_vms_match_supported_vf_models_through_the_net_filter() {
        let mut vf = pf("ens5", "0000:00:05.0", "1d0f", "ec20", 0);
        vf.net_filter = "aws/NetworkID:net-1".into();
        let p = policy("p", |s| {
            s.nic_selector = SriovNetworkNicSelector {
                net_filter: "aws/NetworkID:net-1".into(),
                ..Default::default()
            };
            s.num_vfs = 1;
        });
        // ec20 is both PF and VF device; use a VF-only model to see the cloud path.
        vf.device_id = "154c".into();
        vf.vendor = "8086".into();
        let on_metal = cluster(vec![vf.clone()], "");
        assert_eq!(paths(&check(&p, &on_metal)), ["spec.nicSelector"]);
        let on_aws = cluster(vec![vf], "aws:///us-east-1a/i-0abc");
        let d = check(&p, &on_aws);
        // Intel's totalvfs check still applies to the selected device (0 VFs reported).
        assert_eq!(paths(&d), ["spec.numVfs"]);
    }

    #[test]
    fn vf_counts_are_checked_per_vendor() {
        let d = check(&policy("p", |s| s.num_vfs = 65), &intel());
        assert_eq!(paths(&d), ["spec.numVfs"]);
        assert!(d.iter().any(|e| e.message.contains("64 VFs")));
        let mlx = cluster(vec![pf("ens1f0", "0000:3b:00.0", "15b3", "1017", 8)], "");
        let p = |n| {
            policy("p", move |s| {
                s.nic_selector.vendor = "15b3".into();
                s.num_vfs = n;
            })
        };
        assert!(check(&p(127), &mlx).is_empty());
        assert_eq!(paths(&check(&p(129), &mlx)), ["spec.numVfs"]);
        assert_eq!(paths(&check(&p(0), &mlx)), ["spec.numVfs"]);
    }

    #[test]
    fn externally_managed_pfs_bound_vfs_mtu_and_link_type() {
        let mut pf0 = pf("ens1f0", "0000:3b:00.0", "8086", "158b", 64);
        pf0.num_vfs = 4;
        let c = cluster(vec![pf0], "");
        let p = policy("p", |s| {
            s.externally_managed = true;
            s.num_vfs = 8;
            s.mtu = Some(9000);
            s.link_type = Some("ib".into());
        });
        assert_eq!(
            paths(&check(&p, &c)),
            ["spec.numVfs", "spec.mtu", "spec.linkType"]
        );
        let ok = policy("p", |s| {
            s.externally_managed = true;
            s.num_vfs = 4;
            s.link_type = Some("eth".into());
        });
        assert!(check(&ok, &c).is_empty());
    }

    #[test]
    fn vdpa_needs_mellanox() {
        let p = policy("p", |s| {
            s.vdpa_type = Some(VdpaType::Virtio);
        });
        assert_eq!(paths(&check(&p, &intel())), ["spec.vdpaType"]);
    }

    #[test]
    fn pf_name_ranges_must_not_overlap_other_policies() {
        let mut c = intel();
        c.insert_policy(policy("a", |s| {
            s.nic_selector.pf_names = vec!["ens1f0#0-3".into()]
        }));
        let disjoint = policy("b", |s| s.nic_selector.pf_names = vec!["ens1f0#4-7".into()]);
        assert!(check(&disjoint, &c).is_empty());
        let overlapping = policy("b", |s| s.nic_selector.pf_names = vec!["ens1f0#3-7".into()]);
        let d = check(&overlapping, &c);
        assert_eq!(paths(&d), ["spec.nicSelector.pfNames[0]"]);
        assert!(d.iter().any(|e| e.message.contains("\"a\"")));
        // Ranged vs range-less is accepted (upstream quirk); two range-less entries overlap.
        assert!(check(&policy("b", |_| {}), &c).is_empty());
        c.insert_policy(policy("r", |_| {}));
        assert_eq!(
            paths(&check(&policy("b", |_| {}), &c)),
            ["spec.nicSelector.pfNames[0]"]
        );
        // Updating a policy does not compare it with its stored self.
        let mut alone = intel();
        alone.insert_policy(policy("r", |_| {}));
        assert!(check(&policy("r", |_| {}), &alone).is_empty());
    }

    #[test]
    fn alternative_names_resolve_to_the_same_pf() {
        let mut pf0 = pf("ens1f0", "0000:3b:00.0", "8086", "158b", 64);
        pf0.alt_names = vec!["enp59s0f0".into()];
        let mut c = cluster(vec![pf0], "");
        c.insert_policy(policy("a", |s| {
            s.nic_selector.pf_names = vec!["ens1f0#0-3".into()]
        }));
        let p = policy("b", |s| {
            s.nic_selector.pf_names = vec!["enp59s0f0#2-5".into()]
        });
        assert_eq!(paths(&check(&p, &c)), ["spec.nicSelector.pfNames[0]"]);
        let managed = policy("b", |s| {
            s.nic_selector.pf_names = vec!["enp59s0f0#4-5".into()];
            s.externally_managed = true;
        });
        let d = check(&managed, &c);
        assert!(
            d.iter().any(|e| e.message.contains("externallyManaged")),
            "{d:?}"
        );
    }

    #[test]
    fn root_devices_and_topology_settings_are_not_shared() {
        let mut c = intel();
        c.insert_policy(policy("a", |s| {
            s.nic_selector.pf_names = vec![];
            s.nic_selector.root_devices = vec!["0000:3b:00.0".into()];
            s.resource_name = "shared".into();
        }));
        let p = policy("b", |s| {
            s.nic_selector.pf_names = vec![];
            s.nic_selector.root_devices = vec!["0000:3b:00.0".into()];
            s.resource_name = "shared".into();
            s.exclude_topology = true;
        });
        assert_eq!(
            paths(&check(&p, &c)),
            ["spec.nicSelector.rootDevices[0]", "spec.excludeTopology"]
        );
    }

    #[test]
    fn other_policies_on_other_nodes_and_unapplied_policies_are_ignored() {
        let mut c = intel();
        c.insert_policy(policy("a", |s| {
            s.node_selector = [("other".to_owned(), "x".to_owned())].into();
        }));
        assert!(check(&policy("b", |_| {}), &c).is_empty());
        let mut elsewhere = policy("p", |s| s.num_vfs = 1000);
        elsewhere.metadata.namespace = Some("default".into());
        assert!(check(&elsewhere, &c).is_empty());
        let default = policy(DEFAULT_POLICY_NAME, |s| s.num_vfs = 1000);
        assert!(check(&default, &c).is_empty());
    }
}
