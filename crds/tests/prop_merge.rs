#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Properties of the SR-IOV policy merge (sriov-spec §3.1): the result does not depend on the
//! order policies are listed in, no PF ever gets overlapping VF groups, every group fits in the
//! PF's `numVfs`, and the highest-precedence policy's group comes first.

use std::collections::BTreeMap;

use multus_crds::sriov::merge::{NodeView, application_order, merge_cluster, selects_interface};
use multus_crds::sriov::{InterfaceStatus, SriovNetworkNodePolicy, VfRange};
use proptest::prelude::*;

const PFS: [&str; 3] = ["eno0", "eno1", "eno2"];

fn interfaces() -> Vec<InterfaceStatus> {
    PFS.iter()
        .enumerate()
        .map(|(i, name)| InterfaceStatus {
            name: (*name).into(),
            pci_address: format!("0000:3b:00.{i}"),
            vendor: if i == 2 { "15b3" } else { "8086" }.into(),
            device_id: "159b".into(),
            total_vfs: 64,
            ..Default::default()
        })
        .collect()
}

#[derive(Clone, Debug)]
struct Gen {
    priority: i32,
    num_vfs: i32,
    selector: u8,
    pf: usize,
    range: Option<(u32, u32)>,
    resource: u8,
    mtu: Option<i32>,
    zone: bool,
}

fn gen_policy() -> impl Strategy<Value = Gen> {
    (
        0..4i32,
        0..12i32,
        0..3u8,
        0..PFS.len(),
        proptest::option::of((0..12u32, 0..12u32)),
        0..4u8,
        proptest::option::of(prop_oneof![Just(1500), Just(9000), Just(4000)]),
        any::<bool>(),
    )
        .prop_map(
            |(priority, num_vfs, selector, pf, range, resource, mtu, zone)| Gen {
                priority,
                num_vfs,
                selector,
                pf,
                range,
                resource,
                mtu,
                zone,
            },
        )
}

fn build(i: usize, g: &Gen) -> SriovNetworkNodePolicy {
    let pf_entry = match g.range {
        // a valid range: first <= last < numVfs
        Some((a, b)) if g.num_vfs > 0 => {
            let max = (g.num_vfs - 1) as u32;
            let (lo, hi) = (a.min(b).min(max), a.max(b).min(max));
            format!("{}#{lo}-{hi}", PFS[g.pf])
        }
        _ => PFS[g.pf].to_owned(),
    };
    let selector = match g.selector {
        0 => serde_json::json!({"pfNames": [pf_entry]}),
        1 => serde_json::json!({"vendor": "8086"}),
        _ => serde_json::json!({"rootDevices": [format!("0000:3b:00.{}", g.pf)]}),
    };
    let mut node_selector = serde_json::json!({"sriov": "true"});
    if g.zone {
        node_selector["zone"] = "a".into();
    }
    let mut spec = serde_json::json!({
        "resourceName": format!("res{}", g.resource),
        "nodeSelector": node_selector,
        "priority": g.priority,
        "numVfs": g.num_vfs,
        "nicSelector": selector,
    });
    if let Some(mtu) = g.mtu {
        spec["mtu"] = mtu.into();
    }
    let mut p = SriovNetworkNodePolicy::new(
        &format!("policy-{i:02}"),
        serde_json::from_value(spec).expect("generated spec deserialises"),
    );
    p.metadata.namespace = Some("sriov-network-operator".into());
    p
}

fn policies_and_shuffle() -> impl Strategy<Value = (Vec<SriovNetworkNodePolicy>, Vec<usize>)> {
    proptest::collection::vec(gen_policy(), 0..10).prop_flat_map(|gens| {
        let policies: Vec<_> = gens.iter().enumerate().map(|(i, g)| build(i, g)).collect();
        let n = policies.len();
        (
            Just(policies),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

fn node_labels() -> [BTreeMap<String, String>; 2] {
    [
        BTreeMap::from([("sriov".into(), "true".into())]),
        BTreeMap::from([("sriov".into(), "true".into()), ("zone".into(), "a".into())]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_independent_of_policy_order((policies, perm) in policies_and_shuffle()) {
        let ifaces = interfaces();
        let labels = node_labels();
        let nodes = || [
            NodeView { name: "w0", labels: &labels[0], interfaces: &ifaces },
            NodeView { name: "w1", labels: &labels[1], interfaces: &ifaces },
        ];
        let shuffled: Vec<_> = perm.iter().map(|&i| &policies[i]).collect();
        let a = merge_cluster(&policies, nodes());
        let b = merge_cluster(shuffled, nodes());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn no_output_has_overlapping_or_out_of_range_vf_groups((policies, _perm) in policies_and_shuffle()) {
        let ifaces = interfaces();
        let labels = node_labels();
        let m = merge_cluster(&policies, [
            NodeView { name: "w0", labels: &labels[0], interfaces: &ifaces },
            NodeView { name: "w1", labels: &labels[1], interfaces: &ifaces },
        ]);
        for node in m.nodes.values() {
            let mut seen = std::collections::BTreeSet::new();
            for iface in &node.spec.interfaces {
                prop_assert!(seen.insert(iface.pci_address.clone()), "one entry per PF");
                prop_assert!(iface.num_vfs > 0);
                prop_assert!(!iface.vf_groups.is_empty());
                let ranges: Vec<VfRange> = iface.vf_groups.iter().map(|g| g.range().unwrap()).collect();
                for (i, a) in ranges.iter().enumerate() {
                    prop_assert!(a.end < iface.num_vfs as u32, "{a} beyond numVfs {}", iface.num_vfs);
                    for b in &ranges[i + 1..] {
                        prop_assert!(!a.overlaps(b), "{a} overlaps {b} on {}", iface.name);
                    }
                }
                let mut names: Vec<_> = iface.vf_groups.iter().map(|g| &g.resource_name).collect();
                names.sort();
                names.dedup();
                prop_assert_eq!(names.len(), iface.vf_groups.len(), "resource names unique per PF");
            }
        }
    }

    #[test]
    fn the_highest_precedence_policy_owns_the_first_group((policies, _perm) in policies_and_shuffle()) {
        let ifaces = interfaces();
        let labels = node_labels();
        let node = NodeView { name: "w1", labels: &labels[1], interfaces: &ifaces };
        let m = merge_cluster(&policies, [node]);
        let ordered = application_order(&policies);
        for iface in &m.nodes["w1"].spec.interfaces {
            let status = ifaces.iter().find(|i| i.pci_address == iface.pci_address).unwrap();
            let last = ordered
                .iter()
                .rev()
                .find(|p| p.spec.num_vfs > 0 && selects_interface(&p.spec.nic_selector, status))
                .unwrap();
            prop_assert_eq!(
                iface.vf_groups[0].policy_name.as_str(),
                last.metadata.name.as_deref().unwrap()
            );
        }
    }
}
