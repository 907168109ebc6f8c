//! The real discovery and apply code on fake sysfs trees with the simulated kernel.

use std::collections::HashMap;
use std::time::Duration;

use multus_crds::sriov::{DeviceType, Interface, VfGroup};

use super::apply::{Applier, Timeouts, disruptive_pfs};
use super::discovery::{StaticAltNames, discover};
use super::fakesys::{FakeHost, FakePf, SimulatedKernel};
use super::sysfs::Sysfs;

const INTEL: &str = "0000:3b:00.0";
const MLX: &str = "0000:5e:00.0";
const PLAIN: &str = "0000:02:00.0";
const ALT: &str = "0000:3b:00.1";

struct Node {
    _dir: tempfile::TempDir,
    host: FakeHost,
    _kernel: SimulatedKernel,
    applier: Applier,
    alt: StaticAltNames,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::new(dir.path()).unwrap();
    host.add_pf(&FakePf::intel(INTEL, "ens1f0", 64, 0x3c))
        .unwrap();
    host.add_pf(&FakePf::intel(ALT, "ens1f1", 8, 0x3d)).unwrap();
    host.add_pf(&FakePf::mellanox(MLX, "ens2f0", 8, 0x5f))
        .unwrap();
    host.add_pf(&FakePf::plain(PLAIN, "eno1")).unwrap();
    let kernel = SimulatedKernel::start(&host).unwrap();
    let applier = Applier {
        sysfs: Sysfs::new(host.sys()),
        state_dir: dir.path().join("state"),
        timeouts: Timeouts {
            create_vfs: Duration::from_secs(10),
            bind: Duration::from_secs(10),
        },
    };
    let alt = StaticAltNames(HashMap::from([(
        "ens1f1".to_owned(),
        vec!["enp59s0f1".to_owned()],
    )]));
    Node {
        _dir: dir,
        host,
        _kernel: kernel,
        applier,
        alt,
    }
}

fn group(resource: &str, range: &str, device_type: DeviceType, mtu: i32) -> VfGroup {
    VfGroup {
        resource_name: resource.into(),
        device_type,
        vf_range: range.into(),
        policy_name: format!("p-{resource}"),
        mtu,
        ..Default::default()
    }
}

fn spec() -> Vec<Interface> {
    vec![
        Interface {
            pci_address: INTEL.into(),
            name: "ens1f0".into(),
            num_vfs: 64,
            mtu: 9000,
            vf_groups: vec![
                group("fastnic", "0-31", DeviceType::Netdevice, 9000),
                group("dpdk", "32-63", DeviceType::VfioPci, 0),
            ],
            ..Default::default()
        },
        Interface {
            pci_address: MLX.into(),
            name: "ens2f0".into(),
            num_vfs: 8,
            vf_groups: vec![VfGroup {
                is_rdma: true,
                ..group("rdma", "0-7", DeviceType::Netdevice, 0)
            }],
            ..Default::default()
        },
    ]
}

#[test]
fn discovery_reports_every_pf_and_no_vf_as_pf() {
    let n = node();
    n.host.create_vfs(INTEL, 4).unwrap();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    let addrs: Vec<&str> = nics.iter().map(|n| n.status.pci_address.as_str()).collect();
    assert_eq!(addrs, [PLAIN, INTEL, ALT, MLX]);
    let intel = &nics[1].status;
    assert_eq!(
        (
            intel.vendor.as_str(),
            intel.device_id.as_str(),
            intel.driver.as_str()
        ),
        ("8086", "159b", "ice")
    );
    assert_eq!((intel.total_vfs, intel.num_vfs, intel.mtu), (64, 4, 1500));
    assert_eq!(intel.name, "ens1f0");
    assert_eq!(intel.link_type, "ETH");
    assert_eq!(intel.link_speed, "25000 Mb/s");
    assert_eq!(intel.link_admin_state, "up");
    assert_eq!(intel.vfs.len(), 4);
    let vf = &intel.vfs[3];
    assert_eq!(vf.vf_id, 3);
    assert_eq!(vf.pci_address, "0000:3c:00.3");
    assert_eq!(
        (vf.driver.as_str(), vf.device_id.as_str()),
        ("iavf", "1889")
    );
    assert_eq!(vf.name, "ens1f0v3");
    assert_eq!(vf.mtu, 1500);
    assert!(!vf.mac.is_empty());
    assert_eq!(nics[2].status.alt_names, ["enp59s0f1"]);
    assert_eq!(nics[0].status.total_vfs, 0);
    assert!(nics[0].status.vfs.is_empty());
    assert_eq!(nics[3].numa_node, Some(1));
    assert!(nics.iter().all(|n| n.link_up));
}

#[tokio::test]
async fn apply_creates_vfs_binds_drivers_and_is_idempotent() {
    let n = node();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    let first = n.applier.apply(&spec(), &nics).await.unwrap();
    assert!(first.writes > 64, "{first:?}");

    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    let intel = &nics
        .iter()
        .find(|n| n.status.pci_address == INTEL)
        .unwrap()
        .status;
    assert_eq!(intel.num_vfs, 64);
    assert_eq!(intel.vfs.len(), 64);
    assert_eq!(intel.mtu, 9000);
    assert!(
        intel.vfs[..32]
            .iter()
            .all(|v| v.driver == "iavf" && v.mtu == 9000)
    );
    assert!(
        intel.vfs[32..]
            .iter()
            .all(|v| v.driver == "vfio-pci" && v.name.is_empty())
    );
    // Overrides are cleared once bound, so later probes follow the kernel default again.
    let over = std::fs::read_to_string(
        n.applier
            .sysfs
            .device("0000:3c:04.0")
            .join("driver_override"),
    )
    .unwrap();
    assert_eq!(over.trim(), "");
    let mlx = &nics
        .iter()
        .find(|n| n.status.pci_address == MLX)
        .unwrap()
        .status;
    assert_eq!(mlx.vfs.len(), 8);
    // Untouched PFs stay untouched.
    let alt = &nics
        .iter()
        .find(|n| n.status.pci_address == ALT)
        .unwrap()
        .status;
    assert_eq!(alt.num_vfs, 0);

    assert!(disruptive_pfs(&spec(), &nics, &n.applier.configured_pfs()).is_empty());
    let second = n.applier.apply(&spec(), &nics).await.unwrap();
    assert_eq!(second.writes, 0);
}

#[tokio::test]
async fn changing_the_vf_count_goes_through_zero_and_leaving_the_spec_resets() {
    let n = node();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    n.applier.apply(&spec(), &nics).await.unwrap();
    let mut smaller = spec();
    smaller[0].num_vfs = 16;
    smaller[0].vf_groups = vec![group("fastnic", "0-15", DeviceType::Netdevice, 0)];
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    assert_eq!(
        disruptive_pfs(&smaller, &nics, &n.applier.configured_pfs()),
        [INTEL]
    );
    n.applier.apply(&smaller, &nics).await.unwrap();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    assert_eq!(nics[1].status.vfs.len(), 16);

    // Mellanox leaves the spec: it was ours, so its VFs go.
    let only_intel = vec![smaller[0].clone()];
    assert_eq!(
        disruptive_pfs(&only_intel, &nics, &n.applier.configured_pfs()),
        [MLX]
    );
    n.applier.apply(&only_intel, &nics).await.unwrap();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    assert_eq!(nics[3].status.num_vfs, 0);
    assert_eq!(n.applier.configured_pfs(), [INTEL]);
}

#[tokio::test]
async fn externally_managed_pfs_are_checked_never_reset() {
    let n = node();
    n.host.create_vfs(ALT, 4).unwrap();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    let mut external = Interface {
        pci_address: ALT.into(),
        num_vfs: 4,
        externally_managed: true,
        vf_groups: vec![group("ext", "0-3", DeviceType::VfioPci, 0)],
        ..Default::default()
    };
    n.applier.apply(&[external.clone()], &nics).await.unwrap();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    assert!(nics[2].status.vfs.iter().all(|v| v.driver == "vfio-pci"));
    // Leaving the spec does not reset it: it was never ours.
    n.applier.apply(&[], &nics).await.unwrap();
    assert_eq!(
        discover(&n.applier.sysfs, &n.alt).unwrap()[2]
            .status
            .num_vfs,
        4
    );
    // Asking for more VFs than exist is an error, not a write.
    external.num_vfs = 8;
    let err = n.applier.apply(&[external], &nics).await.unwrap_err();
    assert!(err.to_string().contains("never creates VFs"), "{err}");
}

#[tokio::test]
async fn too_many_vfs_is_refused_before_any_write() {
    let n = node();
    let nics = discover(&n.applier.sysfs, &n.alt).unwrap();
    let mut s = spec();
    s[1].num_vfs = 9;
    let err = n.applier.apply(&s[1..], &nics).await.unwrap_err();
    assert!(err.to_string().contains("at most 8"), "{err}");
}
