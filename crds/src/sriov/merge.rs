//! SriovNetworkNodePolicies + a node's labels + its discovered PFs → that node's
//! `SriovNetworkNodeState.spec`, with upstream's ordering and VF-group merge (sriov-spec §3.1),
//! and a report of what each policy did: nodes and PFs selected, VF ranges it lost or took.
//!
//! Pure and deterministic: the result does not depend on the order policies are given in (they
//! are sorted first), and no two VF groups of one PF overlap in any output.
//!
//! The selection helpers ([`node_selected`], [`selects_interface`], [`pf_vf_range`]) are the
//! ones the webhook's cluster-state rules use too.

use std::collections::{BTreeMap, BTreeSet};

use super::DEFAULT_POLICY_NAME;
use super::nodestate::{Interface, InterfaceStatus, SriovNetworkNodeStateSpec, VfGroup};
use super::policy::{SriovNetworkNicSelector, SriovNetworkNodePolicy, SriovNetworkNodePolicySpec};
use super::vfrange::{PfNameSelector, VfRange};

/// Whether every `nodeSelector` pair is among the node's labels (exact equality).
pub fn node_selected(spec: &SriovNetworkNodePolicySpec, labels: &BTreeMap<String, String>) -> bool {
    spec.node_selector
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

/// Whether the selector picks this PF: every non-empty field must match; `pfNames` entries match
/// the PF's name or any alternative name, ignoring a `#range` suffix. An empty selector picks
/// nothing (upstream skips such a policy).
pub fn selects_interface(selector: &SriovNetworkNicSelector, iface: &InterfaceStatus) -> bool {
    if selector.is_empty() {
        return false;
    }
    (selector.vendor.is_empty() || selector.vendor == iface.vendor)
        && (selector.device_id.is_empty() || selector.device_id == iface.device_id)
        && (selector.root_devices.is_empty() || selector.root_devices.contains(&iface.pci_address))
        && (selector.pf_names.is_empty()
            || selector
                .pf_names
                .iter()
                .any(|e| iface.has_name(PfNameSelector::name_of(e))))
        && (selector.net_filter.is_empty() || selector.net_filter == iface.net_filter)
}

/// The VF range a policy gives a PF it selects: the `#first-last` of the `pfNames` entry naming
/// the PF's **primary** name, else all `numVfs` VFs (upstream quirk kept: a range written on an
/// alternative name is not looked up, see docs/decisions.md). `None` when the policy
/// asks for no VFs; `Err` carries the unparsable entry.
pub fn pf_vf_range(
    spec: &SriovNetworkNodePolicySpec,
    iface: &InterfaceStatus,
) -> Result<Option<VfRange>, String> {
    for entry in &spec.nic_selector.pf_names {
        if PfNameSelector::name_of(entry) != iface.name {
            continue;
        }
        let parsed = PfNameSelector::parse(entry).map_err(|e| e.to_string())?;
        if let Some(range) = parsed.range {
            return Ok(Some(range));
        }
    }
    Ok(u32::try_from(spec.num_vfs).ok().and_then(VfRange::all))
}

/// Sort policies into upstream's application order: higher `priority` number first, ties by name
/// ascending. The last policy applied wins, so precedence grows along the returned order.
pub fn application_order<'a, I>(policies: I) -> Vec<&'a SriovNetworkNodePolicy>
where
    I: IntoIterator<Item = &'a SriovNetworkNodePolicy>,
{
    let mut sorted: Vec<_> = policies
        .into_iter()
        .filter(|p| policy_name(p) != DEFAULT_POLICY_NAME)
        .collect();
    sorted.sort_by(|a, b| {
        b.spec
            .effective_priority()
            .cmp(&a.spec.effective_priority())
            .then_with(|| policy_name(a).cmp(policy_name(b)))
    });
    sorted
}

fn policy_name(p: &SriovNetworkNodePolicy) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

/// One node as the merge sees it.
#[derive(Clone, Copy, Debug)]
pub struct NodeView<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// The PFs the node agent reported (`SriovNetworkNodeState.status.interfaces`).
    pub interfaces: &'a [InterfaceStatus],
}

/// Two policies wanted overlapping VFs of the same PF; the one applied later won.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VfConflict {
    pub node: String,
    pub pf: String,
    /// The policy whose VF group was dropped (lower precedence).
    pub loser: String,
    pub loser_range: String,
    /// The policy that took the VFs.
    pub winner: String,
    pub winner_range: String,
}

/// What the merge did with one policy, over all nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// Nodes whose labels the policy selected.
    pub nodes: BTreeSet<String>,
    /// `(node, pf name)` of every PF the selector picked on those nodes.
    pub pfs: BTreeSet<(String, String)>,
    /// `pfNames` entries that did not parse, per node.
    pub invalid: BTreeSet<String>,
}

/// The merge result of one node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMerge {
    pub spec: SriovNetworkNodeStateSpec,
    pub conflicts: Vec<VfConflict>,
}

/// Merge the policies, already in [`application_order`], for one node.
pub fn merge_node(ordered: &[&SriovNetworkNodePolicy], node: &NodeView<'_>) -> NodeMerge {
    let mut outcomes = BTreeMap::new();
    merge_node_into(ordered, node, &mut outcomes)
}

fn merge_node_into<'p>(
    ordered: &[&'p SriovNetworkNodePolicy],
    node: &NodeView<'_>,
    outcomes: &mut BTreeMap<&'p str, PolicyOutcome>,
) -> NodeMerge {
    let mut out = NodeMerge::default();
    let mut previous_priority: Option<i32> = None;
    for policy in ordered {
        if !node_selected(&policy.spec, node.labels) {
            continue;
        }
        let name = policy_name(policy);
        let outcome = outcomes.entry(name).or_default();
        outcome.nodes.insert(node.name.to_owned());
        let priority = policy.spec.effective_priority();
        let equal_priority = previous_priority == Some(priority);
        previous_priority = Some(priority);
        for iface in node.interfaces {
            if !selects_interface(&policy.spec.nic_selector, iface) {
                continue;
            }
            outcome
                .pfs
                .insert((node.name.to_owned(), iface.name.clone()));
            let range = match pf_vf_range(&policy.spec, iface) {
                Ok(Some(range)) => range,
                Ok(None) => continue, // numVfs == 0 adds nothing
                Err(e) => {
                    outcome.invalid.insert(format!("{}: {e}", node.name));
                    continue;
                }
            };
            let fresh = fresh_interface(policy, name, iface, range);
            apply(&mut out, node.name, fresh, equal_priority);
        }
    }
    out
}

fn fresh_interface(
    policy: &SriovNetworkNodePolicy,
    name: &str,
    iface: &InterfaceStatus,
    range: VfRange,
) -> Interface {
    let spec = &policy.spec;
    let mtu = spec.mtu.unwrap_or(0);
    Interface {
        pci_address: iface.pci_address.clone(),
        name: iface.name.clone(),
        num_vfs: spec.num_vfs,
        mtu,
        link_type: spec.link_type.clone().unwrap_or_default(),
        e_switch_mode: spec.e_switch_mode,
        externally_managed: spec.externally_managed,
        vf_groups: vec![VfGroup {
            resource_name: spec.resource_name.clone(),
            device_type: spec.device_type,
            vf_range: range.to_string(),
            policy_name: name.to_owned(),
            mtu,
            is_rdma: spec.effective_is_rdma(),
            vdpa_type: spec.vdpa_type,
        }],
    }
}

/// Upstream's `mergeConfigs`: the new group first, then every old group that neither shares its
/// resource name nor overlaps its range; `mtu`/`numVfs` are the maxima when priorities are equal
/// or an old group was kept, else the new policy's.
fn apply(out: &mut NodeMerge, node: &str, mut fresh: Interface, equal_priority: bool) {
    let Some(existing) = out
        .spec
        .interfaces
        .iter_mut()
        .find(|i| i.pci_address == fresh.pci_address)
    else {
        out.spec.interfaces.push(fresh);
        return;
    };
    let Some(new_group) = fresh.vf_groups.first().cloned() else {
        return;
    };
    let new_range = new_group.range().ok();
    let mut kept = false;
    for old in std::mem::take(&mut existing.vf_groups) {
        let overlaps = match (old.range().ok(), new_range) {
            (Some(a), Some(b)) => a.overlaps(&b),
            _ => true,
        };
        if overlaps && old.policy_name != new_group.policy_name {
            out.conflicts.push(VfConflict {
                node: node.to_owned(),
                pf: fresh.name.clone(),
                loser: old.policy_name.clone(),
                loser_range: old.vf_range.clone(),
                winner: new_group.policy_name.clone(),
                winner_range: new_group.vf_range.clone(),
            });
        }
        if old.resource_name != new_group.resource_name && !overlaps {
            fresh.vf_groups.push(old);
            kept = true;
        }
    }
    if equal_priority || kept {
        fresh.mtu = fresh.mtu.max(existing.mtu);
        fresh.num_vfs = fresh.num_vfs.max(existing.num_vfs);
    }
    *existing = fresh;
}

/// The merge of every node, and what each policy did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterMerge {
    /// Node name → desired spec, for every node given (nodes no policy touches get an empty spec).
    pub nodes: BTreeMap<String, NodeMerge>,
    /// Policy name → outcome, for every policy given (except `default`).
    pub policies: BTreeMap<String, PolicyOutcome>,
}

impl ClusterMerge {
    /// Every VF-range conflict, across nodes, sorted.
    pub fn conflicts(&self) -> Vec<&VfConflict> {
        let mut all: Vec<_> = self.nodes.values().flat_map(|n| &n.conflicts).collect();
        all.sort();
        all
    }

    /// Conflicts in which `policy` took part, as loser or winner.
    pub fn conflicts_of<'a>(&'a self, policy: &'a str) -> impl Iterator<Item = &'a VfConflict> {
        self.nodes
            .values()
            .flat_map(|n| &n.conflicts)
            .filter(move |c| c.loser == policy || c.winner == policy)
    }
}

/// Merge all policies for all nodes. Policy order in `policies` does not matter.
pub fn merge_cluster<'a, P, N>(policies: P, nodes: N) -> ClusterMerge
where
    P: IntoIterator<Item = &'a SriovNetworkNodePolicy>,
    N: IntoIterator<Item = NodeView<'a>>,
{
    let ordered = application_order(policies);
    let mut outcomes: BTreeMap<&str, PolicyOutcome> = ordered
        .iter()
        .map(|p| (policy_name(p), PolicyOutcome::default()))
        .collect();
    let mut result = ClusterMerge::default();
    for node in nodes {
        let merged = merge_node_into(&ordered, &node, &mut outcomes);
        result.nodes.insert(node.name.to_owned(), merged);
    }
    result.policies = outcomes
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, json: serde_json::Value) -> SriovNetworkNodePolicy {
        let mut p = SriovNetworkNodePolicy::new(name, serde_json::from_value(json).unwrap());
        p.metadata.namespace = Some("sriov-network-operator".into());
        p
    }

    fn pf(name: &str, pci: &str) -> InterfaceStatus {
        InterfaceStatus {
            name: name.into(),
            pci_address: pci.into(),
            vendor: "8086".into(),
            device_id: "159b".into(),
            total_vfs: 64,
            ..Default::default()
        }
    }

    fn groups(i: &Interface) -> Vec<(String, String)> {
        i.vf_groups
            .iter()
            .map(|g| (g.resource_name.clone(), g.vf_range.clone()))
            .collect()
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("sriov".to_owned(), "true".to_owned())])
    }

    fn p(
        name: &str,
        prio: i32,
        pf_name: &str,
        num_vfs: i32,
        mtu: i32,
        res: &str,
    ) -> SriovNetworkNodePolicy {
        policy(
            name,
            serde_json::json!({"resourceName": res, "nodeSelector": {"sriov": "true"}, "priority": prio,
                "numVfs": num_vfs, "mtu": mtu, "nicSelector": {"pfNames": [pf_name]}}),
        )
    }

    #[test]
    fn worked_merge_keeps_both_disjoint_groups() {
        let p1 = p("p1", 20, "eno1#0-3", 8, 1500, "a");
        let p2 = p("p2", 10, "eno1#4-7", 8, 9000, "b");
        let l = labels();
        let ifaces = [pf("eno1", "0000:3b:00.0")];
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&p2, &p1], [node]);
        let spec = &m.nodes["w0"].spec;
        assert_eq!(spec.interfaces.len(), 1);
        let i = &spec.interfaces[0];
        assert_eq!((i.num_vfs, i.mtu), (8, 9000));
        assert_eq!(
            groups(i),
            [("b".into(), "4-7".into()), ("a".into(), "0-3".into())]
        );
        assert!(m.conflicts().is_empty());
        assert_eq!(m.policies["p1"].pfs.len(), 1);
    }

    #[test]
    fn overlapping_group_is_dropped_and_reported() {
        let p1 = p("p1", 20, "eno1#0-3", 8, 1500, "a");
        let p2 = p("p2", 10, "eno1#2-5", 6, 9000, "b");
        let l = labels();
        let ifaces = [pf("eno1", "0000:3b:00.0")];
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&p1, &p2], [node]);
        let i = &m.nodes["w0"].spec.interfaces[0];
        // priorities differ and nothing was kept: numVfs/mtu come from p2 alone
        assert_eq!((i.num_vfs, i.mtu), (6, 9000));
        assert_eq!(groups(i), [("b".into(), "2-5".into())]);
        let c = m.conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].loser.as_str(), c[0].winner.as_str()), ("p1", "p2"));
        assert_eq!(m.conflicts_of("p1").count(), 1);
    }

    #[test]
    fn equal_priority_takes_maxima_and_later_name_wins() {
        let a = p("a", 10, "eno1#0-1", 4, 1500, "ra");
        let b = p("b", 10, "eno1#0-1", 2, 9000, "rb");
        let l = labels();
        let ifaces = [pf("eno1", "0000:3b:00.0")];
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&b, &a], [node]);
        let i = &m.nodes["w0"].spec.interfaces[0];
        assert_eq!((i.num_vfs, i.mtu), (4, 9000));
        assert_eq!(groups(i), [("rb".into(), "0-1".into())]);
    }

    #[test]
    fn same_resource_name_replaces_without_conflict() {
        let a = p("a", 20, "eno1#0-1", 8, 1500, "r");
        let b = p("b", 10, "eno1#4-7", 8, 1500, "r");
        let l = labels();
        let ifaces = [pf("eno1", "0000:3b:00.0")];
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&a, &b], [node]);
        assert_eq!(
            groups(&m.nodes["w0"].spec.interfaces[0]),
            [("r".into(), "4-7".into())]
        );
        assert!(m.conflicts().is_empty());
    }

    #[test]
    fn selection_by_labels_vendor_root_device_and_alt_name() {
        let mut l = labels();
        let mut eno2 = pf("eno2", "0000:3b:00.1");
        eno2.alt_names = vec!["enp59s0f1".into()];
        eno2.vendor = "15b3".into();
        let ifaces = [pf("eno1", "0000:3b:00.0"), eno2];
        let by_vendor = policy(
            "v",
            serde_json::json!({"resourceName": "v", "nodeSelector": {"sriov": "true"},
            "numVfs": 4, "nicSelector": {"vendor": "15b3"}}),
        );
        let by_alt = policy(
            "alt",
            serde_json::json!({"resourceName": "alt", "nodeSelector": {"sriov": "true"},
            "priority": 1, "numVfs": 4, "nicSelector": {"pfNames": ["enp59s0f1#2-3"]}}),
        );
        let by_root = policy(
            "root",
            serde_json::json!({"resourceName": "root", "nodeSelector": {},
            "numVfs": 2, "nicSelector": {"rootDevices": ["0000:3b:00.0"]}}),
        );
        let elsewhere = policy(
            "else",
            serde_json::json!({"resourceName": "e", "nodeSelector": {"zone": "b"},
            "numVfs": 2, "nicSelector": {"vendor": "8086"}}),
        );
        let zero = policy(
            "zero",
            serde_json::json!({"resourceName": "z", "nodeSelector": {},
            "numVfs": 0, "nicSelector": {"vendor": "8086"}}),
        );
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&by_vendor, &by_alt, &by_root, &elsewhere, &zero], [node]);
        let spec = &m.nodes["w0"].spec;
        let eno1 = spec.interfaces.iter().find(|i| i.name == "eno1").unwrap();
        assert_eq!(groups(eno1), [("root".into(), "0-1".into())]);
        let eno2 = spec.interfaces.iter().find(|i| i.name == "eno2").unwrap();
        // range on an alt name is not looked up: the full range, which overlaps and wins
        assert_eq!(groups(eno2), [("alt".into(), "0-3".into())]);
        assert!(m.policies["else"].nodes.is_empty());
        assert_eq!(m.policies["zero"].pfs.len(), 1);
        assert_eq!(spec.interfaces.len(), 2);
        l.insert("zone".into(), "b".into());
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&elsewhere], [node]);
        assert_eq!(m.policies["else"].nodes.len(), 1);
    }

    #[test]
    fn default_policy_and_empty_selector_are_ignored() {
        let d = p("default", 1, "eno1", 4, 1500, "d");
        let empty = policy(
            "empty",
            serde_json::json!({"resourceName": "e", "nodeSelector": {},
            "numVfs": 2, "nicSelector": {}}),
        );
        let l = labels();
        let ifaces = [pf("eno1", "0000:3b:00.0")];
        let node = NodeView {
            name: "w0",
            labels: &l,
            interfaces: &ifaces,
        };
        let m = merge_cluster([&d, &empty], [node]);
        assert!(m.nodes["w0"].spec.interfaces.is_empty());
        assert!(!m.policies.contains_key("default"));
        assert!(m.policies["empty"].pfs.is_empty());
    }
}
