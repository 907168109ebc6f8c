//! The SR-IOV side of the node agent end to end: the real `multus-operator agent` binary, as a
//! separate process, against the fake API server, a fake kubelet and a fake sysfs tree.
//!
//! Why the real binary and not the engine in-process: the simulated kernel reacts to writes with
//! inotify, which sees writes from any process, so it runs here in the test process while the
//! agent writes `sriov_numvfs`, `unbind`, `driver_override`, `drivers_probe` into the same
//! directory from its own process. The fake kubelet (unix sockets) and the fake API server (HTTPS
//! with a kubeconfig) are reachable from another process just as well. So what runs is what ships:
//! the command line, the kube client with its default retry policy, the device-plugin sockets.
//!
//! The story: a NodeState spec is applied (VFs created, vfio-pci bound, status `Succeeded`, pools
//! registered with kubelet); then one PF's `numVfs` changes while pods hold VFs of it, a pod holds
//! a VF of another PF and a pod holds nothing. Only the pods holding VFs of the changed PF are
//! evicted; one of them is protected by a PodDisruptionBudget, so the apply fails after the
//! eviction timeout with the pod named in `lastSyncError` and the PF untouched; once the budget
//! is gone the retry evicts it and the new VF count is applied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use multus_crds::sriov::{SriovNetworkNodePolicy, SriovNetworkNodeState, SyncStatus};
use multus_kubelet::deviceplugin::v1beta1::{AllocateRequest, ContainerAllocateRequest, Empty};
use multus_operator::agent::sriov::fakesys::{FakeHost, FakePf, SimulatedKernel};
use multus_tests::apiserver::FakeApiServer;
use multus_tests::harness::process::{Process, workspace_binary};
use multus_tests::harness::wait::wait_for;
use multus_tests::kubelet::{FakeKubelet, next_list, pod_with_devices};
use serde_json::{Value, json};

const NS: &str = "sriov-network-operator";
const APP: &str = "app";
const NODE: &str = "node-1";
const INTEL: &str = "0000:3b:00.0";
const MLX: &str = "0000:5e:00.0";
const PLAIN: &str = "0000:02:00.0";
const T: Duration = Duration::from_secs(30);

fn intel() -> FakePf {
    FakePf::intel(INTEL, "ens1f0", 64, 0x3c)
}

fn mellanox() -> FakePf {
    FakePf::mellanox(MLX, "ens2f0", 8, 0x5f)
}

fn interfaces(intel_vfs: u32) -> Value {
    let last = intel_vfs - 1;
    json!([
        {"pciAddress": INTEL, "numVfs": intel_vfs, "mtu": 9000, "vfGroups": [
            {"resourceName": "fastnic", "deviceType": "netdevice", "vfRange": "0-3", "mtu": 9000},
            {"resourceName": "dpdk", "deviceType": "vfio-pci", "vfRange": format!("4-{last}")},
        ]},
        {"pciAddress": MLX, "numVfs": 4, "vfGroups": [
            {"resourceName": "rdma", "deviceType": "netdevice", "vfRange": "0-3", "isRdma": true},
        ]},
    ])
}

async fn cluster(server: &FakeApiServer) -> kube::Client {
    let client = server.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in multus_crds::crdgen::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    for ns in [NS, APP] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
    client
}

/// A running, ready pod (so that a PodDisruptionBudget counts it).
async fn running_pod(pods: &Api<Pod>, name: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "busybox"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn exists(pods: &Api<Pod>, name: &str) -> bool {
    pods.get_opt(name).await.unwrap().is_some()
}

/// The NodeState once its status satisfies `done`.
async fn wait_status(
    states: &Api<SriovNetworkNodeState>,
    what: &str,
    done: impl Fn(&SriovNetworkNodeState) -> bool,
) -> SriovNetworkNodeState {
    let done = &done;
    wait_for(what, T, || async move {
        states.get(NODE).await.ok().filter(|s| done(s))
    })
    .await
    .unwrap()
}

fn synced(s: &SriovNetworkNodeState, status: SyncStatus, intel_vfs: i32) -> bool {
    let Some(st) = &s.status else { return false };
    st.sync_status == Some(status)
        && st
            .interfaces
            .iter()
            .any(|i| i.pci_address == INTEL && i.num_vfs == intel_vfs)
}

fn free_port() -> u16 {
    multus_tests::harness::process::free_port().unwrap()
}

/// `GET http://127.0.0.1:<port><path>`: status and body.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Wait until `/metrics` has every line of `lines`.
async fn wait_metrics(port: u16, lines: &[&str]) -> String {
    wait_for("metrics", T, || async move {
        let (_, body) = http_get(port, "/metrics").await?;
        lines
            .iter()
            .all(|l| body.lines().any(|b| b == *l))
            .then_some(body)
    })
    .await
    .unwrap()
}

fn driver(sys: &Path, pci: &str) -> String {
    std::fs::read_link(sys.join("bus/pci/devices").join(pci).join("driver"))
        .map(|l| l.file_name().unwrap().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn numvfs(sys: &Path, pci: &str) -> String {
    std::fs::read_to_string(sys.join("bus/pci/devices").join(pci).join("sriov_numvfs"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_state_is_applied_and_only_pods_holding_vfs_of_a_changed_pf_are_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("host");
    std::fs::create_dir_all(&root).unwrap();
    let host = FakeHost::new(&root).unwrap();
    host.add_pf(&intel()).unwrap();
    host.add_pf(&mellanox()).unwrap();
    host.add_pf(&FakePf::plain(PLAIN, "eno1")).unwrap();
    let _kernel = SimulatedKernel::start(&host).unwrap();
    let sys = host.sys();
    let kubelet = FakeKubelet::start(
        root.join("var/lib/kubelet/device-plugins"),
        root.join("var/lib/kubelet/pod-resources/kubelet.sock"),
    )
    .await
    .unwrap();

    let server = FakeApiServer::start().await.unwrap();
    let client = cluster(&server).await;
    let states: Api<SriovNetworkNodeState> = Api::namespaced(client.clone(), NS);
    let state: SriovNetworkNodeState = serde_json::from_value(json!({
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
        "metadata": {"name": NODE, "namespace": NS},
        "spec": {"interfaces": interfaces(8)}}))
    .unwrap();
    states.create(&PostParams::default(), &state).await.unwrap();
    // Two options live only in the policies: the agent reads them from there.
    let policies: Api<SriovNetworkNodePolicy> = Api::namespaced(client.clone(), NS);
    for (name, option) in [("fastnic", "needVhostNet"), ("rdma", "excludeTopology")] {
        let policy: SriovNetworkNodePolicy = serde_json::from_value(json!({
            "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"resourceName": name, "nodeSelector": {}, "numVfs": 8,
                     "nicSelector": {"pfNames": ["ens1f0"]}, option: true}}))
        .unwrap();
        policies
            .create(&PostParams::default(), &policy)
            .await
            .unwrap();
    }

    let binary = workspace_binary("multus-operator")
        .expect("multus-operator is built by `cargo test --workspace`");
    let root_arg = root.to_str().unwrap();
    let kubeconfig = server.kubeconfig_path().to_str().unwrap();
    let health_port = free_port();
    let health_addr = format!("127.0.0.1:{health_port}");
    let _agent = Process::spawn(
        &binary,
        &[
            "agent",
            "--node-name",
            NODE,
            "--host-root",
            root_arg,
            "--kubeconfig",
            kubeconfig,
            "--cni-mode",
            "off",
            "--resync-seconds",
            "1",
            "--eviction-timeout-seconds",
            "2",
            "--health-addr",
            &health_addr,
        ],
        None,
    )
    .unwrap();

    // 1. The spec is applied: VFs exist, vfio-pci is bound where asked, the status says so.
    let s = wait_status(&states, "syncStatus Succeeded with 8 Intel VFs", |s| {
        synced(s, SyncStatus::Succeeded, 8)
    })
    .await;
    let status = s.status.unwrap();
    assert_eq!(status.last_sync_error, "");
    let nic = |pci: &str| {
        status
            .interfaces
            .iter()
            .find(|i| i.pci_address == pci)
            .unwrap()
            .clone()
    };
    let i = nic(INTEL);
    assert_eq!(
        (i.name.as_str(), i.total_vfs, i.vfs.len()),
        ("ens1f0", 64, 8)
    );
    for vf in &i.vfs {
        let want = if vf.vf_id < 4 { "iavf" } else { "vfio-pci" };
        assert_eq!(vf.driver, want, "VF {} in status", vf.vf_id);
        assert_eq!(
            driver(&sys, &vf.pci_address),
            want,
            "VF {} in sysfs",
            vf.vf_id
        );
        if vf.vf_id < 4 {
            assert_eq!(vf.mtu, 9000, "VF {} MTU", vf.vf_id);
        }
    }
    let m = nic(MLX);
    assert_eq!((m.num_vfs, m.vfs.len()), (4, 4));
    assert!(m.vfs.iter().all(|v| v.driver == "mlx5_core"));
    let plain = nic(PLAIN);
    assert_eq!((plain.total_vfs, plain.vfs.len()), (0, 0));
    assert_eq!(numvfs(&sys, INTEL), "8");
    for resource in ["fastnic", "dpdk", "rdma"] {
        kubelet
            .wait_registered(&format!("openshift.io/{resource}"), 1, T)
            .await
            .unwrap_or_else(|| panic!("{resource} registered with kubelet"));
    }
    // With the CNI side off, the SR-IOV side serves the process's health endpoints itself.
    assert_eq!(http_get(health_port, "/healthz").await.unwrap().0, 200);
    assert_eq!(http_get(health_port, "/readyz").await.unwrap().0, 200);
    wait_metrics(
        health_port,
        &[
            "multus_sriov_sync_status{status=\"Succeeded\"} 1",
            "multus_sriov_sync_status{status=\"InProgress\"} 0",
            "multus_sriov_pool_devices{resource=\"dpdk\",health=\"healthy\"} 4",
            "multus_sriov_pool_devices{resource=\"fastnic\",health=\"healthy\"} 4",
            "multus_sriov_pool_devices{resource=\"rdma\",health=\"healthy\"} 4",
            "multus_sriov_applies_total{result=\"succeeded\"} 1",
        ],
    )
    .await;

    // The policies' options reach the pools: vhost-net for fastnic, no topology for rdma; every
    // allocated VF gets its device-info file under the host root.
    let fastnic = kubelet
        .wait_registered("openshift.io/fastnic", 1, T)
        .await
        .unwrap();
    let vf0 = intel().vf_pci(0);
    let plugin = kubelet.dial(&fastnic).await.unwrap();
    let devices = wait_for("vhost-net in fastnic's Allocate", T, || {
        let mut plugin = plugin.clone();
        let vf0 = vf0.clone();
        async move {
            let request = AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: vec![vf0],
                }],
            };
            let r = plugin.allocate(request).await.ok()?.into_inner();
            let paths: Vec<String> = r.container_responses[0]
                .devices
                .iter()
                .map(|d| d.host_path.clone())
                .collect();
            paths.iter().any(|p| p == "/dev/vhost-net").then_some(paths)
        }
    })
    .await
    .unwrap();
    assert!(devices.iter().any(|p| p == "/dev/net/tun"), "{devices:?}");
    let file = root.join(format!(
        "var/run/k8s.cni.cncf.io/devinfo/dp/openshift.io-fastnic-{vf0}-device.json"
    ));
    let info: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(info["pci"]["pci-address"], vf0.as_str());
    assert_eq!(info["pci"]["pf-pci-address"], INTEL);
    assert_eq!(info["pci"]["vhost-net"], "/dev/vhost-net");
    let rdma = kubelet
        .wait_registered("openshift.io/rdma", 1, T)
        .await
        .unwrap();
    let mut plugin = kubelet.dial(&rdma).await.unwrap();
    let mut stream = plugin.list_and_watch(Empty {}).await.unwrap().into_inner();
    let list = next_list(&mut stream, T).await.unwrap();
    assert_eq!(list.devices.len(), 4);
    assert!(
        list.devices.iter().all(|d| d.topology.is_none()),
        "{list:?}"
    );
    drop(stream);

    // 2. Pods: two hold VFs of the Intel PF (one behind a budget), one a VF of the Mellanox PF,
    //    one holds nothing. Kubelet knows who holds what.
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP);
    for name in ["holder", "guarded", "other-pf", "bystander"] {
        running_pod(&pods, name).await;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "guarded"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))
    .unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), APP);
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let intel_vf = |n| intel().vf_pci(n);
    kubelet.set_pod_resources(vec![
        pod_with_devices(APP, "holder", "openshift.io/fastnic", &[&intel_vf(0)]),
        pod_with_devices(APP, "guarded", "openshift.io/dpdk", &[&intel_vf(5)]),
        pod_with_devices(
            APP,
            "other-pf",
            "openshift.io/rdma",
            &[&mellanox().vf_pci(1)],
        ),
    ]);

    // 3. The Intel PF goes from 8 to 12 VFs. The budget blocks one eviction: the apply fails
    //    after the eviction timeout, naming the pod, and the PF is not touched.
    let patch = json!({"spec": {"interfaces": interfaces(12)}});
    states
        .patch(NODE, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = wait_status(&states, "syncStatus Failed (eviction blocked)", |s| {
        synced(s, SyncStatus::Failed, 8)
    })
    .await;
    let error = s.status.unwrap().last_sync_error;
    assert!(error.contains("app/guarded"), "lastSyncError: {error}");
    assert!(!error.contains("holder"), "lastSyncError: {error}");
    assert!(!exists(&pods, "holder").await, "holder was evicted");
    assert!(
        exists(&pods, "guarded").await,
        "the budget protects guarded"
    );
    assert_eq!(
        numvfs(&sys, INTEL),
        "8",
        "nothing applied while a pod holds VFs"
    );

    // 4. The budget goes: the retry evicts the pod and applies the new VF count.
    pdbs.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    let s = wait_status(&states, "syncStatus Succeeded with 12 Intel VFs", |s| {
        synced(s, SyncStatus::Succeeded, 12)
    })
    .await;
    assert_eq!(s.status.unwrap().last_sync_error, "");
    assert_eq!(numvfs(&sys, INTEL), "12");
    assert!(!exists(&pods, "guarded").await, "guarded was evicted");
    assert!(exists(&pods, "other-pf").await, "a VF of another PF");
    assert!(exists(&pods, "bystander").await, "no VF at all");
    assert_eq!(numvfs(&sys, MLX), "4", "the Mellanox PF was left alone");
    for n in 4..12 {
        assert_eq!(driver(&sys, &intel_vf(n)), "vfio-pci", "VF {n}");
    }

    // The dpdk pool now streams its 8 VFs to kubelet, without a restart of anything.
    let dpdk = kubelet
        .wait_registered("openshift.io/dpdk", 1, T)
        .await
        .unwrap();
    let mut plugin = kubelet.dial(&dpdk).await.unwrap();
    let mut stream = plugin.list_and_watch(Empty {}).await.unwrap().into_inner();
    let mut devices = 0;
    for _ in 0..20 {
        let list = next_list(&mut stream, T)
            .await
            .expect("a ListAndWatch message");
        devices = list.devices.len();
        if devices == 8 {
            assert!(list.devices.iter().all(|d| d.health == "Healthy"));
            break;
        }
    }
    assert_eq!(devices, 8, "dpdk pool size");

    let text = wait_metrics(
        health_port,
        &[
            "multus_sriov_sync_status{status=\"Succeeded\"} 1",
            "multus_sriov_sync_status{status=\"Failed\"} 0",
            "multus_sriov_pool_devices{resource=\"dpdk\",health=\"healthy\"} 8",
            "multus_sriov_pods_evicted_total 2",
        ],
    )
    .await;
    let failed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("multus_sriov_applies_total{result=\"failed\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        failed >= 1,
        "the blocked eviction counted as a failed apply"
    );
    assert!(text.contains("multus_sriov_errors_total{operation=\"eviction\"}"));
    assert!(text.contains("multus_sriov_discovery_duration_seconds_count"));
    // Every request the agent made is granted by its role in config/.
    multus_tests::rbac::check_server(&server, &[multus_crds::constants::user_agent::AGENT])
        .unwrap();
}
