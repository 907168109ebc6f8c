//! The pure SR-IOV policy merge at cluster scale: 100 SriovNetworkNodePolicies against 1,000
//! nodes, each with the PFs its agent reported in `SriovNetworkNodeState.status.interfaces`
//! (4 PFs of two vendors, 64 VFs each, VFs listed), computing every node's desired
//! `SriovNetworkNodeState.spec` plus the per-policy outcome — the work the controller redoes on
//! a full resync. Target: one whole-cluster merge in at most 1 s on one core.
//!
//! Policies select by node labels (rack and role), by `pfNames` with disjoint and overlapping VF
//! ranges, by `pfNames` without range, and by vendor/deviceID, across several priorities, so the
//! group-merge, conflict and maxima paths are all exercised.
//!
//! Run: `cargo bench -p multus-crds --bench merge`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multus_crds::sriov::merge::{NodeView, merge_cluster};
use multus_crds::sriov::{InterfaceStatus, SriovNetworkNodePolicy, VirtualFunction};

const NODES: usize = 1_000;
const POLICIES: usize = 100;
const RACKS: usize = 10;
const PFS: [(&str, &str, &str, u8); 4] = [
    // (name, vendor, deviceID, PCI bus)
    ("ens1f0", "8086", "159b", 0x3b),
    ("ens1f1", "8086", "159b", 0x3b),
    ("ens2f0np0", "15b3", "101d", 0x86),
    ("ens2f1np1", "15b3", "101d", 0x86),
];
const TOTAL_VFS: i32 = 64;

struct Node {
    name: String,
    labels: BTreeMap<String, String>,
    interfaces: Vec<InterfaceStatus>,
}

fn node(n: usize) -> Node {
    let name = format!("worker-{n:04}");
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("node-role.kubernetes.io/worker".to_owned(), String::new()),
        (
            "feature.node.kubernetes.io/network-sriov.capable".to_owned(),
            "true".to_owned(),
        ),
        (
            "topology.kubernetes.io/zone".to_owned(),
            format!("zone-{}", n % 3),
        ),
        ("example.com/rack".to_owned(), format!("rack-{}", n % RACKS)),
        (
            "example.com/role".to_owned(),
            if n.is_multiple_of(4) { "dpdk" } else { "cnf" }.to_owned(),
        ),
    ]);
    let interfaces = PFS
        .iter()
        .enumerate()
        .map(|(i, (pf, vendor, device, bus))| {
            let func = i % 2;
            let pci = format!("0000:{bus:02x}:00.{func}");
            let vfs = (0..TOTAL_VFS)
                .map(|vf| VirtualFunction {
                    name: format!("{pf}v{vf}"),
                    mac: format!("02:00:{n:02x}:{i:02x}:00:{vf:02x}", n = n % 256),
                    driver: if *vendor == "8086" {
                        "iavf"
                    } else {
                        "mlx5_core"
                    }
                    .to_owned(),
                    pci_address: format!("0000:{:02x}:{:02x}.{}", bus + 1, vf / 8, vf % 8),
                    vendor: (*vendor).to_owned(),
                    device_id: if *vendor == "8086" { "1889" } else { "101e" }.to_owned(),
                    mtu: 1500,
                    vf_id: vf,
                    ..Default::default()
                })
                .collect();
            InterfaceStatus {
                name: (*pf).to_owned(),
                alt_names: vec![format!("enp{bus}s0f{func}")],
                mac: format!("b8:59:9f:{:02x}:{:02x}:{i:02x}", n / 256, n % 256),
                driver: if *vendor == "8086" {
                    "ice"
                } else {
                    "mlx5_core"
                }
                .to_owned(),
                pci_address: pci,
                vendor: (*vendor).to_owned(),
                device_id: (*device).to_owned(),
                mtu: 1500,
                num_vfs: TOTAL_VFS,
                link_speed: "25000 Mb/s".to_owned(),
                link_type: "ETH".to_owned(),
                link_admin_state: "up".to_owned(),
                e_switch_mode: "legacy".to_owned(),
                total_vfs: TOTAL_VFS,
                vfs,
                ..Default::default()
            }
        })
        .collect();
    Node {
        name,
        labels,
        interfaces,
    }
}

/// Policy `i`: a rack-scoped `pfNames` range policy, a rack+role-scoped whole-PF policy, or a
/// vendor/deviceID policy; ranges of neighbouring policies overlap now and then.
fn policy(i: usize) -> SriovNetworkNodePolicy {
    let rack = format!("rack-{}", i % RACKS);
    let (pf, _, _, _) = PFS[i % PFS.len()];
    let spec = match i % 3 {
        0 => {
            // 8 VFs per group, sliding by 6 so that some groups overlap the next one
            let first = (i / 3 * 6) % 56;
            serde_json::json!({
                "resourceName": format!("res_range_{i}"),
                "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true",
                                 "example.com/rack": rack},
                "priority": (i % 7) * 10,
                "numVfs": TOTAL_VFS,
                "mtu": 1500 + (i % 5) * 1000,
                "nicSelector": {"pfNames": [format!("{pf}#{first}-{}", first + 7)]},
                "deviceType": if i.is_multiple_of(2) { "netdevice" } else { "vfio-pci" },
            })
        }
        1 => serde_json::json!({
            "resourceName": format!("res_pf_{i}"),
            "nodeSelector": {"example.com/rack": rack, "example.com/role": "dpdk"},
            "priority": 50,
            "numVfs": 16,
            "nicSelector": {"pfNames": [pf, format!("enp{}s0f{}", PFS[i % PFS.len()].3, i % 2)]},
            "deviceType": "vfio-pci",
        }),
        _ => {
            let (_, vendor, device, _) = PFS[(i / 3) % PFS.len()];
            serde_json::json!({
                "resourceName": format!("res_vendor_{i}"),
                "nodeSelector": {"example.com/rack": rack},
                "priority": 99,
                "numVfs": 32,
                "mtu": 9000,
                "nicSelector": {"vendor": vendor, "deviceID": device},
                "isRdma": vendor == "15b3",
            })
        }
    };
    let mut p = SriovNetworkNodePolicy::new(
        &format!("policy-{i:03}"),
        serde_json::from_value(spec).unwrap(),
    );
    p.metadata.namespace = Some("sriov-network-operator".to_owned());
    p
}

fn bench(c: &mut Criterion) {
    let nodes: Vec<Node> = (0..NODES).map(node).collect();
    let policies: Vec<SriovNetworkNodePolicy> = (0..POLICIES).map(policy).collect();
    let views = || {
        nodes.iter().map(|n| NodeView {
            name: &n.name,
            labels: &n.labels,
            interfaces: &n.interfaces,
        })
    };

    // sanity: every node gets a spec, most nodes get interfaces, and the overlaps are reported
    let merged = merge_cluster(&policies, views());
    assert_eq!(merged.nodes.len(), NODES);
    let configured = merged
        .nodes
        .values()
        .filter(|m| !m.spec.interfaces.is_empty())
        .count();
    let groups: usize = merged
        .nodes
        .values()
        .flat_map(|m| &m.spec.interfaces)
        .map(|i| i.vf_groups.len())
        .sum();
    assert_eq!(
        configured, NODES,
        "every node should be selected by some policy"
    );
    assert!(
        !merged.conflicts().is_empty(),
        "the set-up should produce VF-range conflicts"
    );
    eprintln!(
        "merge: {NODES} nodes x {POLICIES} policies -> {configured} configured nodes, {groups} VF groups, {} conflicts",
        merged.conflicts().len()
    );

    let mut g = c.benchmark_group("sriov_merge");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(NODES as u64));
    g.bench_function("merge_cluster_1000_nodes_100_policies", |b| {
        b.iter(|| black_box(merge_cluster(black_box(&policies), views())));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
