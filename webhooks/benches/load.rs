//! Load generator: the server in-process on 127.0.0.1 with 10,000 NADs cached, driven over TLS
//! by N keep-alive HTTP/1.1 connections, each posting reviews back to back.
//!
//! `cargo bench -p multus-webhooks --bench load -- [nad|pod] [concurrency] [seconds]`
//!
//! Prints throughput, p50/p99 latency and the process's peak RSS (server and client together,
//! so an upper bound for the server alone).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::rules::sriov_cluster::SriovClusterIndex;
use multus_webhooks::context::{Context, NadCache, Settings};
use multus_webhooks::server::{Limits, serve};
use multus_webhooks::tls::{ReloadingCertificate, server_config};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::ServerName;
use serde_json::json;

const NADS: usize = 10_000;

fn nads() -> NadCache {
    (0..NADS)
        .map(|i| {
            let ns = format!("ns-{}", i % 100);
            let name = format!("net-{i}");
            let config = json!({"cniVersion": "1.0.0", "name": name, "plugins": [
                {"type": "macvlan", "master": format!("eth{}", i % 8),
                 "ipam": {"type": "host-local", "subnet": format!("10.{}.{}.0/24", i / 256 % 256, i % 256)}}]});
            NetworkAttachmentDefinition::from_value(json!({
                "metadata": {"name": name, "namespace": ns,
                    "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}},
                "spec": {"config": config.to_string()}}))
            .unwrap()
        })
        .collect()
}

fn body(kind: &str, i: usize) -> Vec<u8> {
    let (path_resource, object) = if kind == "nad" {
        let name = format!("new-{i}");
        let config = json!({"cniVersion": "1.0.0", "name": name, "plugins": [
            {"type": "macvlan", "master": "eth99", "mode": "bridge",
             "ipam": {"type": "host-local", "subnet": "192.168.0.0/24"}}]});
        (
            ("k8s.cni.cncf.io", "network-attachment-definitions"),
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": "ns-1"}, "spec": {"config": config.to_string()}}),
        )
    } else {
        let ns = i % 100;
        let nets = format!("net-{}, net-{}, net-{}", ns, ns + 100, ns + 200);
        (
            ("", "pods"),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("p-{i}"), "namespace": format!("ns-{ns}"),
                    "annotations": {"k8s.v1.cni.cncf.io/networks": nets}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
        )
    };
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": format!("uid-{i}"), "kind": {"group": path_resource.0, "version": "v1", "kind": "X"},
            "resource": {"group": path_resource.0, "version": "v1", "resource": path_resource.1},
            "namespace": object["metadata"]["namespace"], "operation": "CREATE", "object": object}}))
    .unwrap()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let kind = args.first().cloned().unwrap_or_else(|| "nad".into());
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let path = if kind == "nad" {
        "/validate/nads"
    } else {
        "/validate/pods"
    };

    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("c"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("k"), key.serialize_pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = Arc::new(
        ReloadingCertificate::load(
            &dir.path().join("c"),
            &dir.path().join("k"),
            provider.clone(),
        )
        .unwrap(),
    );
    let tls = Arc::new(server_config(resolver, provider.clone()).unwrap());
    let ctx = Arc::new(Context::with_contents(
        Settings::default(),
        nads(),
        SriovClusterIndex::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        tls,
        ctx,
        Limits::default(),
        std::future::pending(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let bodies: Arc<Vec<Bytes>> =
        Arc::new((0..1000).map(|i| Bytes::from(body(&kind, i))).collect());

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let warmup = Instant::now() + Duration::from_secs(1);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let connector = connector.clone();
        let bodies = bodies.clone();
        workers.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let tls = connector
                .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut i = w;
            while Instant::now() < deadline {
                let req = Request::post(path)
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(bodies[i % bodies.len()].clone()))
                    .unwrap();
                let start = Instant::now();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let out = resp.into_body().collect().await.unwrap().to_bytes();
                assert!(
                    out.windows(14).any(|w| w == b"\"allowed\":true"),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
                if start >= warmup {
                    latencies.push(start.elapsed());
                }
                i += concurrency;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    let measured = seconds.saturating_sub(1).max(1) as f64;
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{kind} reviews, concurrency {concurrency}, {NADS} NADs cached: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, peak RSS {:.1} MiB (client included)",
        all.len() as f64 / measured,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        peak_rss_kib() as f64 / 1024.0
    );
}
