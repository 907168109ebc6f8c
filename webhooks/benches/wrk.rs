//! The issue's benchmark: the release `multus-webhook` process on loopback HTTPS, its NAD cache
//! filled with 10,000 NADs by its own watch of the `fake-apiserver` process, driven by `wrk`
//! (2 threads, keep-alive) posting one AdmissionReview body from a Lua script.
//!
//! ```text
//! cargo bench -p multus-webhooks --bench wrk -- [nad|pod|all] [concurrency ...] [--seconds N]
//! ```
//!
//! Defaults: `all 16 64 --seconds 10`. For each kind and concurrency it prints wrk's throughput
//! and p50/p99, the server's CPU time per review (utime+stime from `/proc/PID/stat`, which
//! stays meaningful when the machine is shared) and its peak RSS (`VmHWM`), plus the load
//! average. `MULTUS_WEBHOOK_BIN` runs another build of the server (to compare two versions with
//! the same generator); `FAKE_APISERVER_BIN` another API server (default: the debug
//! `fake-apiserver`, built here if missing). `wrk` is installed with apt-get when missing, like
//! scripts/test.sh does for its tools.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use multus_crds::NetworkAttachmentDefinition;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};

const NADS: usize = 10_000;
const NAMESPACES: usize = 100;

/// A child process killed when dropped, so a failed run leaves nothing behind.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn ensure_wrk() {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return;
    }
    eprintln!("installing wrk with apt-get");
    let ok = Command::new("sh")
        .args(["-c", "apt-get update -q && apt-get install -y -q wrk"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "wrk is missing and apt-get could not install it");
}

fn fake_apiserver() -> PathBuf {
    if let Ok(path) = std::env::var("FAKE_APISERVER_BIN") {
        return path.into();
    }
    // The bench binary lives in <target>/release/deps; the debug build is enough for a server
    // that only answers one list and one watch.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "-q",
            "-p",
            "multus-tests",
            "--bin",
            "fake-apiserver",
        ])
        .current_dir(workspace())
        .status()
        .unwrap();
    assert!(status.success(), "building fake-apiserver failed");
    target.join("debug/fake-apiserver")
}

/// Spawn `cmd` and return the first line of `stream` (stdout or stderr) containing `marker`;
/// every later line is drained on a thread so the child never blocks on a full pipe.
fn spawn_until(mut cmd: Command, stderr: bool, marker: &'static str) -> (Process, String) {
    if stderr {
        cmd.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = cmd.spawn().unwrap();
    let reader: Box<dyn std::io::Read + Send> = if stderr {
        Box::new(child.stderr.take().unwrap())
    } else {
        Box::new(child.stdout.take().unwrap())
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let process = Process(child);
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no line with {marker:?}"));
        if line.contains(marker) {
            // Keep draining in the background.
            std::thread::spawn(move || rx.into_iter().for_each(drop));
            return (process, line);
        }
    }
}

async fn seed(kubeconfig: &Path) {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.create(&PostParams::default(), &multus_crds::crdgen::nad_crd())
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for i in 0..NAMESPACES {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("ns-{i}")}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    futures::stream::iter(0..NADS)
        .map(|i| {
            let client = client.clone();
            async move {
                let ns = format!("ns-{}", i % NAMESPACES);
                let name = format!("net-{i}");
                let config = json!({"cniVersion": "1.0.0", "name": name, "plugins": [
                    {"type": "macvlan", "master": format!("eth{}", i % 8),
                     "ipam": {"type": "host-local", "subnet": format!("10.{}.{}.0/24", i / 256 % 256, i % 256)}}]});
                let nad = NetworkAttachmentDefinition::from_value(json!({
                    "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                    "metadata": {"name": name, "namespace": ns,
                        "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}},
                    "spec": {"config": config.to_string()}}))
                .unwrap();
                let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client, &ns);
                api.create(&PostParams::default(), &nad).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<()>()
        .await;
}

/// The AdmissionReview wrk posts: a new NAD, or a pod in `ns-1` naming three cached NADs.
fn review(kind: &str) -> (&'static str, String) {
    let (path, group, resource, object) = if kind == "nad" {
        let config = json!({"cniVersion": "1.0.0", "name": "new-net", "plugins": [
            {"type": "macvlan", "master": "eth99", "mode": "bridge",
             "ipam": {"type": "host-local", "subnet": "192.168.0.0/24"}}]});
        (
            "/validate/nads",
            "k8s.cni.cncf.io",
            "network-attachment-definitions",
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "new-net", "namespace": "ns-1"},
                "spec": {"config": config.to_string()}}),
        )
    } else {
        (
            "/validate/pods",
            "",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p-1", "namespace": "ns-1",
                    "annotations": {"k8s.v1.cni.cncf.io/networks": "net-1, net-101, net-201"}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
        )
    };
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "kind": {"group": group, "version": "v1", "kind": object["kind"]},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "name": object["metadata"]["name"], "namespace": "ns-1", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": object, "oldObject": null, "dryRun": false}});
    (path, body.to_string())
}

/// `(utime + stime)` in clock ticks, and VmHWM in KiB, of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().unwrap();
    match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        other => panic!("unit {other}"),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 10u64;
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        seconds = args[i + 1].parse().unwrap();
        args.drain(i..=i + 1);
    }
    args.retain(|a| !a.starts_with("--"));
    let kinds: Vec<&str> = match args.first().map(String::as_str) {
        Some("nad") => vec!["nad"],
        Some("pod") => vec!["pod"],
        _ => vec!["nad", "pod"],
    };
    let mut concurrencies: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if concurrencies.is_empty() {
        concurrencies = vec![16, 64];
    }

    ensure_wrk();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut api = Command::new(fake_apiserver());
    api.arg("--kubeconfig-out").arg(&kubeconfig);
    let (_api, _) = spawn_until(api, false, "serving");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seed(&kubeconfig));

    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let binary = std::env::var("MULTUS_WEBHOOK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_multus-webhook").to_owned());
    let mut webhook = Command::new(&binary);
    webhook
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sriov=false",
            "--log-format",
            "json",
        ])
        .arg("--tls-cert-file")
        .arg(&cert_file)
        .arg("--tls-key-file")
        .arg(&key_file)
        .env("KUBECONFIG", &kubeconfig);
    let (server, line) = spawn_until(webhook, true, "serving admission reviews");
    let addr = serde_json::from_str::<Value>(&line).unwrap()["fields"]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = server.0.id();
    // Ready means every cache listed: the 10,000 NADs are in.
    let ready = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        Command::new("curl")
            .args(["-sfk", &format!("https://{addr}/readyz")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(ready, "the webhook never became ready");
    let metrics = Command::new("curl")
        .args(["-sk", &format!("https://{addr}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let cached = metrics
        .lines()
        .find(|l| l.contains("cached_objects") && l.contains("NetworkAttachmentDefinition"))
        .unwrap_or_default()
        .to_owned();
    assert!(cached.ends_with(&format!(" {NADS}")), "cache: {cached:?}");
    println!(
        "server {binary} (pid {pid}), {NADS} NADs cached, RSS after sync {:.1} MiB",
        status_kib(pid, "VmRSS:") as f64 / 1024.0
    );

    let ticks_per_second = 100.0; // USER_HZ on Linux
    for kind in kinds {
        let (path, body) = review(kind);
        let body_file = dir.path().join(format!("{kind}.json"));
        std::fs::write(&body_file, &body).unwrap();
        // The body wrk posts is answered "allowed" (not a fast 400).
        let check = Command::new("curl")
            .args([
                "-sk",
                "-H",
                "content-type: application/json",
                "--data-binary",
            ])
            .arg(format!("@{}", body_file.display()))
            .arg(format!("https://{addr}{path}"))
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&check.stdout);
        assert!(answer.contains("\"allowed\":true"), "{answer}");
        let script = dir.path().join(format!("{kind}.lua"));
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = {}\n",
                serde_json::to_string(&body).unwrap()
            ),
        )
        .unwrap();
        for &c in &concurrencies {
            let before = cpu_ticks(pid);
            let out = Command::new("wrk")
                .args([
                    "-t2",
                    &format!("-c{c}"),
                    &format!("-d{seconds}s"),
                    "--latency",
                    "-s",
                ])
                .arg(&script)
                .arg(format!("https://{addr}{path}"))
                .output()
                .unwrap();
            let cpu = (cpu_ticks(pid) - before) as f64 / ticks_per_second;
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            assert!(!text.contains("Non-2xx"), "{text}");
            let field = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(prefix))
                    .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
                    .trim()
                    .to_owned()
            };
            let rps: f64 = field("Requests/sec:").parse().unwrap();
            let total = rps * seconds as f64;
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            println!(
                "{kind} reviews, c{c}, wrk -t2 {seconds}s: {rps:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.1} µs/review, server VmHWM {:.1} MiB, loadavg {}",
                ms(&field("50%")),
                ms(&field("99%")),
                cpu * 1e6 / total.max(1.0),
                status_kib(pid, "VmHWM:") as f64 / 1024.0,
                load.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
}
