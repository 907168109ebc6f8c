//! The SR-IOV side of the agent on a node with 8 PFs × 128 VFs (a fake sysfs tree):
//!
//! 1. discovery of every PF and VF (target ≤ 50 ms), wall and CPU time per discovery;
//! 2. `Allocate` latency through the real device-plugin gRPC servers over unix sockets, with all
//!    16 pools served and registered (a minimal kubelet `Registration` server stands in for
//!    kubelet, and every pool's `ListAndWatch` stream is held open as kubelet does) (target p99
//!    ≤ 1 ms);
//! 3. the process's peak RSS (VmHWM) with all pools served (target ≤ 32 MiB for this part). The
//!    process also holds the kubelet side (16 client channels and streams) and the bench's own
//!    runtime, so the figure is an upper bound of the agent's SR-IOV part.
//!
//! Run: `cargo bench -p multus-operator --bench sriov --features fake-sysfs`
//! (`SRIOV_BENCH_DIR` picks the filesystem of the fake tree; default a temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use multus_crds::sriov::{DeviceType, Interface, VfGroup};
use multus_kubelet::deviceplugin::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, Empty, RegisterRequest, registration_server,
};
use multus_kubelet::{KUBELET_SOCKET_NAME, unix};
use multus_operator::agent::sriov::discovery::{StaticAltNames, discover};
use multus_operator::agent::sriov::fakesys::{FakeHost, FakePf};
use multus_operator::agent::sriov::sysfs::Sysfs;
use multus_operator::deviceplugin::{PluginSettings, build_pools, manager};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const PFS: u32 = 8;
const VFS: u32 = 128;
const DISCOVERIES: usize = 30;
const ALLOCATES: usize = 5_000;

fn pf(k: u32) -> FakePf {
    let mut pf = FakePf::intel(
        &format!("0000:{:02x}:00.0", 0x10 + k),
        &format!("ens{k}f0"),
        VFS,
        u8::try_from(0x80 + k).unwrap(),
    );
    pf.numa_node = i32::try_from(k % 2).unwrap();
    pf
}

/// Per PF: VFs 0-63 a netdevice pool, 64-127 a vfio-pci pool: 16 pools of 64 VFs.
fn spec() -> Vec<Interface> {
    (0..PFS)
        .map(|k| Interface {
            pci_address: pf(k).pci,
            num_vfs: i32::try_from(VFS).unwrap(),
            vf_groups: vec![
                VfGroup {
                    resource_name: format!("net{k}"),
                    device_type: DeviceType::Netdevice,
                    vf_range: "0-63".into(),
                    ..Default::default()
                },
                VfGroup {
                    resource_name: format!("dpdk{k}"),
                    device_type: DeviceType::VfioPci,
                    vf_range: "64-127".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .collect()
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, ns on CPU).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

/// CPU time of the whole process (user + system, from `/proc/self/stat`, in clock ticks of
/// 10 ms).
fn process_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = text.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
    Duration::from_millis((f[11] + f[12]) * 10)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn build_tree(root: &Path) -> FakeHost {
    let host = FakeHost::new(root).unwrap();
    for k in 0..PFS {
        host.add_pf(&pf(k)).unwrap();
        host.create_vfs(&pf(k).pci, VFS).unwrap();
    }
    host
}

#[derive(Clone)]
struct Kubelet(mpsc::UnboundedSender<RegisterRequest>);

#[tonic::async_trait]
impl registration_server::Registration for Kubelet {
    async fn register(
        &self,
        request: tonic::Request<RegisterRequest>,
    ) -> Result<tonic::Response<Empty>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(Empty {}))
    }
}

fn main() {
    let base = std::env::var_os("SRIOV_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let started = Instant::now();
    let host = build_tree(tmp.path());
    println!(
        "fake sysfs tree: {PFS} PFs x {VFS} VFs built in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // 1. Discovery.
    let sysfs = Sysfs::new(host.sys());
    let alt = StaticAltNames::default();
    let nics = discover(&sysfs, &alt).unwrap();
    assert_eq!(nics.len(), PFS as usize);
    assert!(nics.iter().all(|n| n.status.vfs.len() == VFS as usize));
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..DISCOVERIES {
        let (t, c) = (Instant::now(), thread_cpu());
        let found = discover(&sysfs, &alt).unwrap();
        wall.push(t.elapsed());
        cpu.push(thread_cpu() - c);
        assert_eq!(found.len(), PFS as usize);
    }
    wall.sort();
    cpu.sort();
    println!(
        "discovery of {PFS} PFs x {VFS} VFs ({DISCOVERIES} runs): wall p50 {:.2} ms, min {:.2} ms, max {:.2} ms; CPU p50 {:.2} ms, min {:.2} ms (target <= 50 ms)",
        ms(percentile(&wall, 50)),
        ms(wall[0]),
        ms(wall[wall.len() - 1]),
        ms(percentile(&cpu, 50)),
        ms(cpu[0]),
    );

    // 2. and 3. All pools served to a stand-in kubelet; Allocate latency; peak RSS.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(serve_and_allocate(tmp.path(), &sysfs, &nics));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn serve_and_allocate(
    root: &Path,
    sysfs: &Sysfs,
    nics: &[multus_operator::agent::sriov::discovery::Nic],
) {
    let plugin_dir = root.join("device-plugins");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let (tx, mut registrations) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let kubelet_sock = plugin_dir.join(KUBELET_SOCKET_NAME);
    let listener = unix::bind(&kubelet_sock).unwrap();
    let router = tonic::transport::Server::builder()
        .add_service(registration_server::RegistrationServer::new(Kubelet(tx)));
    tokio::spawn(unix::serve(
        router,
        listener,
        kubelet_sock,
        stop.clone().cancelled_owned(),
    ));

    let pools = build_pools(&spec(), nics);
    let total: usize = pools.values().map(|p| p.devices.len()).sum();
    assert_eq!((pools.len(), total), (16, (PFS * VFS) as usize));
    let (_pools_tx, pools_rx) = watch::channel(pools);
    let settings = PluginSettings {
        prefix: "openshift.io".into(),
        plugin_dir: plugin_dir.clone(),
        kubelet_check: Duration::from_secs(5),
        sysfs: sysfs.clone(),
        devinfo_dir: Some(root.join("devinfo")),
    };
    let plugins = tokio::spawn(manager::run(settings, pools_rx, stop.child_token()));

    // Kubelet's side: dial every registered plugin and hold its ListAndWatch stream open.
    let mut clients = Vec::new();
    let mut streams = Vec::new();
    while clients.len() < 16 {
        let r = registrations.recv().await.unwrap();
        let mut c = unix::device_plugin_client(plugin_dir.join(&r.endpoint))
            .await
            .unwrap();
        let mut s = c.list_and_watch(Empty {}).await.unwrap().into_inner();
        assert_eq!(s.message().await.unwrap().unwrap().devices.len(), 64);
        streams.push(s);
        clients.push((r.resource_name, c));
    }
    let (_, mut dpdk) = clients
        .iter()
        .find(|(r, _)| r == "openshift.io/dpdk0")
        .cloned()
        .unwrap();
    let (_, mut net) = clients
        .iter()
        .find(|(r, _)| r == "openshift.io/net1")
        .cloned()
        .unwrap();
    let dpdk_ids: Vec<String> = (64..128).map(|i| pf(0).vf_pci(i)).collect();
    let net_ids: Vec<String> = (0..64).map(|i| pf(1).vf_pci(i)).collect();

    for (name, client, ids) in [
        ("vfio-pci", &mut dpdk, &dpdk_ids),
        ("netdevice", &mut net, &net_ids),
    ] {
        // Warm-up.
        for id in ids.iter().take(100) {
            allocate(client, id).await;
        }
        let cpu0 = process_cpu();
        let mut lat = Vec::with_capacity(ALLOCATES);
        for i in 0..ALLOCATES {
            let t = Instant::now();
            allocate(client, &ids[i % ids.len()]).await;
            lat.push(t.elapsed());
        }
        let cpu = process_cpu() - cpu0;
        lat.sort();
        println!(
            "Allocate of 1 {name} VF over the unix socket ({ALLOCATES} calls, sequential): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; process CPU {:.3} ms per call, client and server (target p99 <= 1 ms)",
            ms(percentile(&lat, 50)),
            ms(percentile(&lat, 99)),
            ms(lat[lat.len() - 1]),
            ms(cpu) / ALLOCATES as f64,
        );
    }
    println!(
        "peak RSS (VmHWM) with 16 pools ({} VFs) served and registered, streams open: {:.1} MiB (VmRSS now {:.1} MiB; target <= 32 MiB)",
        PFS * VFS,
        status_kib("VmHWM:") as f64 / 1024.0,
        status_kib("VmRSS:") as f64 / 1024.0,
    );
    drop(streams);
    stop.cancel();
    let _ = plugins.await;
}

async fn allocate(
    client: &mut multus_kubelet::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient<
        tonic::transport::Channel,
    >,
    id: &str,
) {
    let r = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![id.to_owned()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.container_responses.len(), 1);
}
