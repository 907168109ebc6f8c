//! The thin `multus` binary as a cluster runs it: with a kubeconfig, so each ADD builds a
//! client, sets up TLS, GETs the pod and writes its network-status. One network namespace
//! stands in for the pod, the fake API server (HTTPS, in this process) holds it, and the cluster
//! network is Debian's bridge + host-local. Reports p50/p90 of ADD and of DEL as the runtime
//! waits for them, the ADD's first plugin's start-up overlapping the pod's lookup or not
//! (docs/decisions.md, "Plugins started ahead").
//!
//! Run (root): `cargo build --release -p multus-cni --bin multus &&
//! cargo bench -p multus-tests --bench thin_with_api`. `MULTUS_BIN` picks another `multus`
//! binary (to compare builds, interleaved); `ROUNDS` (default 60) the sample size; `TUNING=1`
//! makes the cluster network a chain, bridge then tuning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use multus_tests::apiserver::{FakeApiServer, ServerConfig};
use multus_tests::harness::netns::Netns;
use multus_tests::harness::process::{run_plugin, workspace_binary};
use serde_json::json;

const PLUGINS: &str = "/usr/lib/cni";
const NETNS: &str = "twa-pod";
const BRIDGE: &str = "twabr0";

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(60);
    let binary = std::env::var_os("MULTUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(release_multus);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = rt
        .block_on(FakeApiServer::start_with(ServerConfig {
            tls: true,
            ..ServerConfig::default()
        }))
        .unwrap();
    let uid = rt.block_on(async {
        let client = server.client().await.unwrap();
        multus_tests::harness::seed::nad_crd_and_namespaces(&client, &["team"])
            .await
            .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "team"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        let created = Api::<Pod>::namespaced(client, "team")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        created.metadata.uid.unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("10-cluster.conflist");
    let mut plugins = vec![json!({"type":"bridge","bridge":BRIDGE,"isGateway":true,
        "ipam":{"type":"host-local","dataDir":dir.path().join("ipam"),
                "ranges":[[{"subnet":"10.231.1.0/24"}]]}})];
    // `TUNING=1`: a chain, as clusters' lists usually are (flannel + portmap, calico +
    // bandwidth + portmap): tuning after the bridge, passing its result on.
    if std::env::var("TUNING").is_ok_and(|v| v == "1") {
        plugins.push(json!({"type":"tuning"}));
    }
    let label: Vec<&str> = plugins.iter().filter_map(|p| p["type"].as_str()).collect();
    let label = label.join(" + ");
    std::fs::write(
        &cluster,
        json!({"cniVersion":"1.0.0","name":"twa-cluster","plugins":plugins}).to_string(),
    )
    .unwrap();
    let config = json!({"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",
        "kubeconfig":server.kubeconfig_path(),"clusterNetwork":cluster,
        "confDir":dir.path().join("multus.d"),"cniDir":dir.path().join("cache"),"binDir":PLUGINS})
    .to_string();
    // A namespace an interrupted run left goes first (its bridge the plugin takes over); from
    // here on both go however the bench ends.
    let _bridge = BridgeCleanup;
    let _ = Command::new("ip").args(["netns", "del", NETNS]).output();
    let _netns = Netns::create(NETNS).unwrap();
    let args = format!(
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=twa-cid;K8S_POD_UID={uid}"
    );
    let call = |command: &str| {
        let start = Instant::now();
        run(&binary, command, &args, config.as_bytes());
        start.elapsed().as_secs_f64() * 1e3
    };
    // One round first: host-local's directory, the bridge and the cache exist before timing.
    call("ADD");
    call("DEL");
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        adds.push(call("ADD"));
        dels.push(call("DEL"));
    }
    println!("{} ({label})", binary.display());
    for (command, v) in [("ADD", &mut adds), ("DEL", &mut dels)] {
        v.sort_by(f64::total_cmp);
        println!(
            "thin {command} with the API (TLS, pod GET, network-status): p50 {:.2} ms  p90 {:.2} ms",
            pct(v, 0.5),
            pct(v, 0.9)
        );
    }
}

/// The release `multus` of this workspace (`target/release`, beside this bench's `deps/`).
fn release_multus() -> PathBuf {
    let built = workspace_binary("multus").unwrap();
    assert!(
        built.parent().is_some_and(|d| d.ends_with("release")),
        "{} is not a release build: cargo build --release -p multus-cni --bin multus",
        built.display()
    );
    built
}

fn run(binary: &Path, command: &str, args: &str, config: &[u8]) {
    let netns = format!("/var/run/netns/{NETNS}");
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "twa-cid"),
        ("CNI_NETNS", &netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args),
        ("CNI_PATH", PLUGINS),
    ];
    let out = run_plugin(binary, &env, config).unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

/// The bridge the cluster network made, removed however the bench ends.
struct BridgeCleanup;

impl Drop for BridgeCleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }
}
