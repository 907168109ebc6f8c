//! The real `multus-operator agent` process with 10,000 NADs: cold start until every NAD file is
//! written (the agent turns `/readyz` 200 only after the first full set is on disk and its
//! directory fsynced), its peak RSS (`VmHWM`), its CPU time, then its CPU time and context
//! switches over an idle period with nothing changing (there should be no periodic work beyond
//! the watches), then one NAD change to its file written, p50/p99, through the API server.
//! Twice: against the fake API server (`--source kube`) and from a directory of manifests
//! (`--source dir:`).
//!
//! Run: `cargo build --release -p multus-operator --bin multus-operator &&
//! cargo bench -p multus-tests --bench agent_cold_start`. The agent binary is the release one next
//! to this bench (or `AGENT_BIN`); `AGENT_BENCH_DIR` puts the host root on a given filesystem;
//! `AGENT_IDLE_SECONDS` (default 10) sets the idle period.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, PostParams};
use multus_crds::NetworkAttachmentDefinition;
use multus_tests::apiserver::FakeApiServer;
use multus_tests::harness::process::workspace_binary;
use serde_json::{Value, json};

const NADS: usize = 10_000;
const NAMESPACES: usize = 100;
const CHANGES: usize = 100;
const SUFFIX: &str = ".nad.conflist";

fn config(i: usize, master: &str) -> String {
    json!({"cniVersion":"1.0.0","name":format!("net-{i}"),"plugins":[{"type":"macvlan","master":master,"mode":"bridge",
        "ipam":{"type":"host-local","ranges":[[{"subnet":format!("10.{}.{}.0/24", i / 256 % 256, i % 256)}]]}}]})
    .to_string()
}

fn nad(i: usize, master: &str) -> NetworkAttachmentDefinition {
    let mut n = NetworkAttachmentDefinition::new(&format!("net-{i}"), Default::default());
    n.metadata.namespace = Some(format!("ns-{}", i % NAMESPACES));
    n.spec.config = Some(config(i, master));
    n
}

/// The agent's counters from /proc.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Voluntary + involuntary context switches of every thread: each is a wake-up.
    switches: u64,
    peak_rss_kib: u64,
    threads: u64,
}

fn status_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let cpu_ticks = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("status")) {
            switches += status_field(&s, "voluntary_ctxt_switches:")
                + status_field(&s, "nonvoluntary_ctxt_switches:");
        }
    }
    Usage {
        cpu_ticks,
        switches,
        peak_rss_kib: status_field(&status, "VmHWM:"),
        threads: status_field(&status, "Threads:"),
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn agent_binary() -> PathBuf {
    std::env::var_os("AGENT_BIN")
        .map(PathBuf::from)
        .or_else(|| workspace_binary("multus-operator").ok())
        .expect(
            "no multus-operator binary next to this bench: \
             cargo build --release -p multus-operator --bin multus-operator (or set AGENT_BIN)",
        )
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /readyz` on the agent's health port: whether it answered 200.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

fn free_port() -> u16 {
    multus_tests::harness::process::free_port().unwrap()
}

fn our_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
                .count()
        })
        .unwrap_or(0)
}

/// A new directory for the bench's files: under `AGENT_BENCH_DIR` when set, else a new
/// top-level directory (`/multus-bench-*`, falling back to the temp dir when `/` is read-only).
///
/// Why not /tmp: ext4 skips inodes freed in the last one to six minutes when it allocates a new
/// one (`recently_deleted` in fs/ext4/ialloc.c), reading each from the inode table, so creating
/// 10,000 files in a block group where a previous run just deleted 10,000 costs seconds of kernel
/// CPU and made cold starts vary from 1 s to 7 s. A new top-level directory gets a block group
/// of its own (the Orlov allocator), like a node's fresh /etc/cni/multus.
fn fresh_dir() -> tempfile::TempDir {
    match std::env::var_os("AGENT_BENCH_DIR") {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::Builder::new()
            .prefix("multus-bench-")
            .tempdir_in("/")
            .or_else(|_| tempfile::tempdir())
            .unwrap(),
    }
}

/// A host root with a primary CNI config and a service account.
fn host_root() -> (tempfile::TempDir, PathBuf) {
    let root = fresh_dir();
    let conf = root.path().join("etc/cni/net.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-cluster.conflist"),
        json!({"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","bridge":"cni0"}]})
            .to_string(),
    )
    .unwrap();
    let sa = root.path().join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "token-1").unwrap();
    std::fs::write(sa.join("ca.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    (root, sa)
}

fn spawn_agent(
    root: &Path,
    sa: &Path,
    port: u16,
    extra: &[&str],
    kubeconfig: Option<&Path>,
) -> Agent {
    let log = root.join("agent.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(agent_binary());
    cmd.arg("agent")
        .args(["--node-name", "node-1", "--sriov=false"])
        .arg("--host-root")
        .arg(root)
        .arg("--service-account-dir")
        .arg(sa)
        .args(["--kubeconfig-server", "https://10.96.0.1:443"])
        .args(["--health-addr", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    Agent {
        child: cmd.spawn().unwrap(),
        log,
    }
}

fn wait_ready(agent: &mut Agent, port: u16) -> Duration {
    let started = Instant::now();
    while !ready(port) {
        if let Some(status) = agent.child.try_wait().unwrap() {
            panic!(
                "agent exited ({status}):\n{}",
                std::fs::read_to_string(&agent.log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "agent not ready after 300 s:\n{}",
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// Cold start, peak RSS, then idle; the agent is left running for what the caller measures next.
fn measure(label: &str, agent: &mut Agent, port: u16, nad_dir: &Path, tck: f64) {
    let took = wait_ready(agent, port);
    let at_ready = usage(agent.child.id());
    assert_eq!(
        our_files(nad_dir),
        NADS,
        "{label}: not every NAD file is there"
    );
    // One file read back: a whole config.
    let one: Value = serde_json::from_slice(
        &std::fs::read(nad_dir.join(format!("ns-7_net-7{SUFFIX}"))).unwrap(),
    )
    .unwrap();
    assert_eq!(one["plugins"][0]["master"], "eth1");
    println!(
        "{label}: cold start, {NADS} NADs to every file written (readyz 200): {:.3} s wall, \
         {:.2} s CPU of the agent; peak RSS (VmHWM) {:.1} MiB; {} threads",
        took.as_secs_f64(),
        at_ready.cpu_ticks as f64 / tck,
        at_ready.peak_rss_kib as f64 / 1024.0,
        at_ready.threads,
    );
    let idle: u64 = std::env::var("AGENT_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let before = usage(agent.child.id());
    std::thread::sleep(Duration::from_secs(idle));
    let after = usage(agent.child.id());
    println!(
        "{label}: idle {idle} s with nothing changing: {:.0} ms CPU, {} context switches \
         (all threads); RSS peak then {:.1} MiB",
        (after.cpu_ticks - before.cpu_ticks) as f64 * 1000.0 / tck,
        after.switches - before.switches,
        after.peak_rss_kib as f64 / 1024.0,
    );
}

fn percentiles(mut lat: Vec<Duration>) -> String {
    lat.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat[lat.len() / 2].as_secs_f64() * 1e3,
        lat[(lat.len() * 99 / 100).min(lat.len() - 1)].as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    )
}

/// Poll `path` every 0.5 ms until it holds `needle`; the time it took.
fn until_file_holds(path: &Path, needle: &str) -> Duration {
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} never held {needle}",
            path.display()
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Returns the host root, so its 10,000 files are deleted only after every run (see [`fresh_dir`]).
fn from_the_api_server(rt: &tokio::runtime::Runtime, tck: f64) -> tempfile::TempDir {
    let (server, client) = rt.block_on(async {
        let server = FakeApiServer::start().await.unwrap();
        let client = server.client().await.unwrap();
        let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("ns-{i}")).collect();
        let refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        multus_tests::harness::seed::nad_crd_and_namespaces(&client, &refs)
            .await
            .unwrap();
        let creates = (0..NADS).map(|i| {
            let client = client.clone();
            async move {
                let n = nad(i, "eth1");
                let api: Api<NetworkAttachmentDefinition> =
                    Api::namespaced(client, n.metadata.namespace.as_deref().unwrap());
                api.create(&PostParams::default(), &n).await.unwrap();
            }
        });
        futures::stream::iter(creates)
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        (server, client)
    });
    let (root, sa) = host_root();
    let nad_dir = root.path().join("etc/cni/multus/net.d");
    let port = free_port();
    let mut agent = spawn_agent(root.path(), &sa, port, &[], Some(server.kubeconfig_path()));
    measure("kube", &mut agent, port, &nad_dir, tck);

    // One change at a time: API write to file holding it.
    let lat: Vec<Duration> = (0..CHANGES)
        .map(|k| {
            let i = k * 97 % NADS;
            let master = format!("eth-chg{k}");
            let started = Instant::now();
            rt.block_on(async {
                let n = nad(i, &master);
                let api: Api<NetworkAttachmentDefinition> =
                    Api::namespaced(client.clone(), n.metadata.namespace.as_deref().unwrap());
                let mut current = api.get(&format!("net-{i}")).await.unwrap();
                current.spec.config = n.spec.config;
                api.replace(&format!("net-{i}"), &PostParams::default(), &current)
                    .await
                    .unwrap();
            });
            let path = nad_dir.join(format!("ns-{}_net-{i}{SUFFIX}", i % NAMESPACES));
            until_file_holds(&path, &format!("\"{master}\""));
            started.elapsed()
        })
        .collect();
    println!(
        "kube: NAD change (API replace) to file written, {CHANGES} changes one at a time: {}",
        percentiles(lat)
    );
    drop(agent);
    drop(server);
    root
}

fn from_a_directory(tck: f64) -> tempfile::TempDir {
    let (root, sa) = host_root();
    let manifests = root.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let items: Vec<Value> = (0..NADS)
        .map(|i| {
            let mut v = serde_json::to_value(nad(i, "eth1")).unwrap();
            v["apiVersion"] = json!("k8s.cni.cncf.io/v1");
            v["kind"] = json!("NetworkAttachmentDefinition");
            v
        })
        .collect();
    std::fs::write(
        manifests.join("nads.json"),
        json!({"apiVersion":"v1","kind":"List","items":items}).to_string(),
    )
    .unwrap();
    let nad_dir = root.path().join("etc/cni/multus/net.d");
    let port = free_port();
    let flag = format!("dir:{}", manifests.display());
    let mut agent = spawn_agent(root.path(), &sa, port, &["--source", &flag], None);
    measure("dir", &mut agent, port, &nad_dir, tck);
    drop(agent);
    root
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tck = clock_ticks_per_second();
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let api_root = from_the_api_server(&rt, tck);
    let dir_root = from_a_directory(tck);
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    drop((api_root, dir_root));
}
