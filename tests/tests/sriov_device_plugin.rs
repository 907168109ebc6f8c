//! The built-in device plugin against a fake kubelet over real unix sockets, with pools built by
//! the real discovery from a fake sysfs tree that the simulated kernel configured.

use std::time::Duration;

use multus_crds::sriov::{DeviceType, Interface, VfGroup};
use multus_kubelet::deviceplugin::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest, Empty,
    PreferredAllocationRequest,
};
use multus_operator::agent::sriov::apply::{Applier, Timeouts};
use multus_operator::agent::sriov::discovery::{StaticAltNames, discover};
use multus_operator::agent::sriov::fakesys::{FakeHost, FakePf, SimulatedKernel};
use multus_operator::agent::sriov::sysfs::Sysfs;
use multus_operator::deviceplugin::{PluginSettings, Pools, build_pools, manager};
use multus_tests::kubelet::{FakeKubelet, next_list};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);
const INTEL: &str = "0000:3b:00.0";
const MLX: &str = "0000:5e:00.0";

fn spec() -> Vec<Interface> {
    let g = |r: &str, range: &str, t: DeviceType, rdma: bool| VfGroup {
        resource_name: r.into(),
        device_type: t,
        vf_range: range.into(),
        is_rdma: rdma,
        ..Default::default()
    };
    vec![
        Interface {
            pci_address: INTEL.into(),
            num_vfs: 8,
            vf_groups: vec![
                g("fastnic", "0-3", DeviceType::Netdevice, false),
                g("dpdk", "4-7", DeviceType::VfioPci, false),
            ],
            ..Default::default()
        },
        Interface {
            pci_address: MLX.into(),
            num_vfs: 4,
            vf_groups: vec![g("rdma", "0-3", DeviceType::Netdevice, true)],
            ..Default::default()
        },
    ]
}

#[tokio::test]
async fn plugin_registers_streams_health_allocates_and_survives_kubelet_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::new(dir.path().join("host")).unwrap();
    std::fs::create_dir_all(dir.path().join("host")).unwrap();
    host.add_pf(&FakePf::intel(INTEL, "ens1f0", 64, 0x3c))
        .unwrap();
    host.add_pf(&FakePf::mellanox(MLX, "ens2f0", 8, 0x5f))
        .unwrap();
    let _kernel = SimulatedKernel::start(&host).unwrap();
    let sysfs = Sysfs::new(host.sys());
    let alt = StaticAltNames::default();
    let applier = Applier {
        sysfs: sysfs.clone(),
        state_dir: dir.path().join("state"),
        timeouts: Timeouts::default(),
    };
    let nics = discover(&sysfs, &alt).unwrap();
    applier.apply(&spec(), &nics).await.unwrap();
    let nics = discover(&sysfs, &alt).unwrap();

    let mut kubelet = FakeKubelet::start(
        dir.path().join("device-plugins"),
        dir.path().join("pod-resources/kubelet.sock"),
    )
    .await
    .unwrap();
    let (pools_tx, pools_rx) = watch::channel(build_pools(&spec(), &nics));
    let shutdown = CancellationToken::new();
    let settings = PluginSettings {
        prefix: "openshift.io".into(),
        plugin_dir: kubelet.plugin_dir().to_owned(),
        kubelet_check: Duration::from_millis(20),
        sysfs: sysfs.clone(),
        devinfo_dir: Some(dir.path().join("devinfo")),
    };
    let plugins = tokio::spawn(manager::run(settings, pools_rx, shutdown.clone()));

    // One endpoint per pool, named <prefix>/<resource>.
    for resource in ["dpdk", "fastnic", "rdma"] {
        let r = kubelet
            .wait_registered(&format!("openshift.io/{resource}"), 1, WAIT)
            .await
            .unwrap();
        assert_eq!(r.endpoint, format!("openshift.io_{resource}.sock"));
        assert!(r.options.unwrap().get_preferred_allocation_available);
    }
    let fastnic = kubelet
        .wait_registered("openshift.io/fastnic", 1, WAIT)
        .await
        .unwrap();
    let mut client = kubelet.dial(&fastnic).await.unwrap();
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    let first = next_list(&mut stream, WAIT).await.unwrap();
    let ids: Vec<&str> = first.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "0000:3c:00.0",
            "0000:3c:00.1",
            "0000:3c:00.2",
            "0000:3c:00.3"
        ]
    );
    assert!(first.devices.iter().all(|d| d.health == "Healthy"));
    assert_eq!(first.devices[0].topology.as_ref().unwrap().nodes[0].id, 0);

    // Pull the PF's cable: the next discovery makes its VFs Unhealthy, streamed without restart.
    host.set_carrier(INTEL, false).unwrap();
    let nics = discover(&sysfs, &alt).unwrap();
    pools_tx.send(build_pools(&spec(), &nics)).unwrap();
    let down = next_list(&mut stream, WAIT).await.unwrap();
    assert!(
        down.devices.iter().all(|d| d.health == "Unhealthy"),
        "{down:?}"
    );
    host.set_carrier(INTEL, true).unwrap();
    let nics = discover(&sysfs, &alt).unwrap();
    pools_tx.send(build_pools(&spec(), &nics)).unwrap();
    let up = next_list(&mut stream, WAIT).await.unwrap();
    assert!(up.devices.iter().all(|d| d.health == "Healthy"));

    // Allocate in upstream's conventions.
    let alloc = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:3c:00.1".into(), "0000:3c:00.3".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let envs = &alloc.container_responses[0].envs;
    assert_eq!(
        envs["PCIDEVICE_OPENSHIFT_IO_FASTNIC"],
        "0000:3c:00.1,0000:3c:00.3"
    );
    let info: serde_json::Value =
        serde_json::from_str(&envs["PCIDEVICE_OPENSHIFT_IO_FASTNIC_INFO"]).unwrap();
    assert_eq!(info["0000:3c:00.3"]["generic"]["deviceID"], "0000:3c:00.3");
    let bad = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:3c:00.7".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // vfio: /dev/vfio/<group>, the group read at allocation time.
    let dpdk = kubelet
        .wait_registered("openshift.io/dpdk", 1, WAIT)
        .await
        .unwrap();
    let mut dpdk_client = kubelet.dial(&dpdk).await.unwrap();
    let vf = "0000:3c:00.4";
    let group = sysfs.iommu_group(vf).unwrap();
    let alloc = dpdk_client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![vf.into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<&str> = alloc.container_responses[0]
        .devices
        .iter()
        .map(|d| d.host_path.as_str())
        .collect();
    assert_eq!(
        paths,
        [format!("/dev/vfio/{group}").as_str(), "/dev/vfio/vfio"]
    );

    // RDMA pool: the VF's verbs device is handed out.
    let rdma = kubelet
        .wait_registered("openshift.io/rdma", 1, WAIT)
        .await
        .unwrap();
    let mut rdma_client = kubelet.dial(&rdma).await.unwrap();
    let alloc = rdma_client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:5f:00.0".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<&str> = alloc.container_responses[0]
        .devices
        .iter()
        .map(|d| d.host_path.as_str())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/dev/infiniband/uverbs")),
        "{paths:?}"
    );
    assert!(paths.contains(&"/dev/infiniband/rdma_cm"));

    // Every allocated VF has its device-info file (multus-spec §1.6) for Multus to copy.
    let devinfo = |resource: &str, id: &str| -> serde_json::Value {
        let file = dir.path().join(format!(
            "devinfo/dp/openshift.io-{resource}-{id}-device.json"
        ));
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
    };
    let fast = devinfo("fastnic", "0000:3c:00.3");
    assert_eq!(fast["type"], "pci");
    assert_eq!(fast["version"], "1.1.0");
    assert_eq!(fast["pci"]["pci-address"], "0000:3c:00.3");
    assert_eq!(fast["pci"]["pf-pci-address"], INTEL);
    assert!(fast["pci"].get("rdma-device").is_none());
    assert_eq!(devinfo("dpdk", vf)["pci"]["pci-address"], vf);
    let rdma_info = devinfo("rdma", "0000:5f:00.0");
    assert_eq!(rdma_info["pci"]["pf-pci-address"], MLX);
    assert!(
        rdma_info["pci"]["rdma-device"]
            .as_str()
            .unwrap()
            .starts_with("mlx5_"),
        "{rdma_info}"
    );
    assert!(
        !dir.path()
            .join("devinfo/dp/openshift.io-fastnic-0000:3c:00.0-device.json")
            .exists(),
        "only allocated VFs get a file"
    );

    // Preferred allocation keeps required devices and fills up to the size.
    let pref = client
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: ids.iter().map(|s| (*s).to_owned()).collect(),
                must_include_device_i_ds: vec!["0000:3c:00.2".into()],
                allocation_size: 2,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pref.container_responses[0].device_i_ds,
        ["0000:3c:00.2", "0000:3c:00.0"]
    );

    // Kubelet restarts (all sockets deleted): every pool registers again.
    kubelet.restart().await.unwrap();
    for resource in ["dpdk", "fastnic", "rdma"] {
        assert!(
            kubelet
                .wait_registered(&format!("openshift.io/{resource}"), 2, WAIT)
                .await
                .is_some(),
            "{resource} did not re-register"
        );
    }
    let again = kubelet
        .wait_registered("openshift.io/fastnic", 2, WAIT)
        .await
        .unwrap();
    let mut client = kubelet.dial(&again).await.unwrap();
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    assert_eq!(next_list(&mut stream, WAIT).await.unwrap().devices.len(), 4);

    // A pool leaving the spec ends its stream and its socket.
    let mut fewer: Pools = build_pools(&spec(), &discover(&sysfs, &alt).unwrap());
    fewer.remove("fastnic");
    pools_tx.send(fewer).unwrap();
    assert!(next_list(&mut stream, WAIT).await.is_none());

    shutdown.cancel();
    plugins.await.unwrap();
}
