//! The server over real HTTPS on 127.0.0.1, with certificates from rcgen and a rustls client:
//! what the API server sees for good, bad and broken reviews, and certificate rotation.
// Test code: helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::rules::sriov_cluster::SriovClusterIndex;
use multus_webhooks::context::{Context, NadCache, Settings};
use multus_webhooks::server::{Limits, serve};
use multus_webhooks::tls::{ReloadingCertificate, server_config};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::sync::oneshot;

// === Certificates ===

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "webhook test CA");
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A serving certificate for 127.0.0.1 with `cn`, written to `dir` as tls.crt/tls.key.
    fn issue(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        // Written to temporary names and renamed, as a Secret volume update would swap them.
        std::fs::write(dir.join(".tls.crt.new"), cert.pem()).unwrap();
        std::fs::write(dir.join(".tls.key.new"), key.serialize_pem()).unwrap();
        std::fs::rename(dir.join(".tls.key.new"), &k).unwrap();
        std::fs::rename(dir.join(".tls.crt.new"), &c).unwrap();
        (c, k, cert.der().to_vec())
    }

    fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::pem::PemObject::from_pem_slice(self.ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

// === Server ===

struct Running {
    addr: SocketAddr,
    pki: Pki,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(nads: Vec<Value>, limits: Limits) -> Self {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = pki.issue(dir.path(), "first");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(ReloadingCertificate::load(&cert, &key, provider.clone()).unwrap());
        let tls = Arc::new(server_config(resolver, provider).unwrap());
        let cache: NadCache = nads
            .into_iter()
            .map(|v| NetworkAttachmentDefinition::from_value(v).unwrap())
            .collect();
        let ctx = Arc::new(Context::with_contents(
            Settings::default(),
            cache,
            SriovClusterIndex::default(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            serve(listener, tls, ctx, limits, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            pki,
            dir,
            stop: Some(stop),
            done,
        }
    }

    async fn connect(
        &self,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.pki.client_config(alpn)));
        connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// One request on a new HTTP/1.1 connection.
    async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let tls = self.connect(&[b"http/1.1"]).await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    async fn review(&self, path: &str, request: Value) -> Value {
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let (status, body) = self
            .request(
                "POST",
                path,
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let review: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(review["kind"], "AdmissionReview");
        review["response"].clone()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.await.unwrap();
    }
}

// === Fixtures ===

fn nad(ns: &str, name: &str, config: Value, annotations: Value) -> Value {
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"config": config.to_string()}})
}

fn macvlan(name: &str, subnet: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "macvlan", "master": "eth1", "ipam": {"type": "host-local", "subnet": subnet}}]})
}

fn sriov_nad(ns: &str, name: &str, resource: &str) -> Value {
    nad(
        ns,
        name,
        json!({"cniVersion": "1.0.0", "name": name, "type": "sriov", "ipam": {"type": "static"}}),
        json!({"k8s.v1.cni.cncf.io/resourceName": resource}),
    )
}

fn cached() -> Vec<Value> {
    vec![
        nad(
            "default",
            "macvlan-a",
            macvlan("macvlan-a", "10.10.0.0/16"),
            json!({}),
        ),
        sriov_nad("default", "fast", "intel.com/sriov_fast"),
        sriov_nad("net", "slow", "intel.com/sriov_slow"),
    ]
}

fn request(
    uid: &str,
    group: &str,
    resource: &str,
    operation: &str,
    ns: &str,
    object: Value,
) -> Value {
    json!({"uid": uid, "kind": {"group": group, "version": "v1", "kind": "X"},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "namespace": ns, "operation": operation, "object": object})
}

fn pod(annotations: Value, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "annotations": annotations},
        "spec": {"containers": containers}})
}

fn decode_patch(response: &Value) -> Value {
    let b64 = response["patch"].as_str().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

// === Tests ===

#[tokio::test]
async fn nad_reviews_allow_deny_with_the_field_and_warn() {
    let server = Running::start(cached(), Limits::default()).await;

    let good = nad(
        "default",
        "macvlan-b",
        macvlan("macvlan-b", "10.20.0.0/16"),
        json!({}),
    );
    let r = server
        .review(
            "/validate/nads",
            request(
                "u-good",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "CREATE",
                "default",
                good,
            ),
        )
        .await;
    assert_eq!(r["uid"], "u-good");
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "{r}");

    let bad = nad(
        "default",
        "broken",
        json!({"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "../bin/evil"}]}),
        json!({}),
    );
    let r = server
        .review(
            "/validate/nads",
            request(
                "u-bad",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "CREATE",
                "default",
                bad,
            ),
        )
        .await;
    assert_eq!(r["uid"], "u-bad");
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.config.plugins[0].type"), "{message}");

    // Another NAD on eth1 with an overlapping range, a different CNI name, and an old version.
    let overlapping = nad(
        "default",
        "macvlan-c",
        json!({"cniVersion": "0.3.1", "name": "other-name", "type": "macvlan", "master": "eth1",
            "ipam": {"type": "whereabouts", "range": "10.10.5.0/24"}}),
        json!({}),
    );
    let r = server
        .review(
            "/validate/nads",
            request(
                "u-warn",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "CREATE",
                "default",
                overlapping,
            ),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("overlaps") && w.contains("default/macvlan-a")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("spec.config.name")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("spec.config.cniVersion")),
        "{warnings:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn pods_and_workload_templates_must_name_existing_networks() {
    let server = Running::start(cached(), Limits::default()).await;
    let ok = pod(
        json!({"k8s.v1.cni.cncf.io/networks": "fast, net/slow"}),
        json!([{"name": "app"}]),
    );
    let r = server
        .review(
            "/validate/pods",
            request("p-ok", "", "pods", "CREATE", "default", ok),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");

    let missing = pod(
        json!({"k8s.v1.cni.cncf.io/networks": "fast, nope"}),
        json!([{"name": "app"}]),
    );
    let r = server
        .review(
            "/validate/pods",
            request("p-missing", "", "pods", "CREATE", "default", missing),
        )
        .await;
    assert_eq!(r["uid"], "p-missing");
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("metadata.annotations[k8s.v1.cni.cncf.io/networks][1]"),
        "{message}"
    );
    assert!(message.contains("nope"), "{message}");

    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "[{\"name\": \"fast\", \"interface\": \"net1\"}, {\"name\": \"fast\", \"interface\": \"net1\"}]"}},
        "spec": {"containers": [{"name": "app"}]}}}});
    let r = server
        .review(
            "/validate/pods",
            request(
                "d-1",
                "apps",
                "deployments",
                "CREATE",
                "default",
                deployment,
            ),
        )
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("Deployment default/"), "{message}");
    assert!(
        message.contains(
            "spec.template.metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface"
        ),
        "{message}"
    );

    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "gone"}}}}}}});
    let r = server
        .review(
            "/validate/pods",
            request("c-1", "batch", "cronjobs", "CREATE", "default", cron),
        )
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.jobTemplate.spec.template.metadata")
    );
    server.stop().await;
}

#[tokio::test]
async fn sriov_resources_are_injected_once_counting_repeats() {
    let server = Running::start(cached(), Limits::default()).await;
    let p = pod(
        json!({"k8s.v1.cni.cncf.io/networks": "fast, fast, net/slow"}),
        json!([{"name": "app", "resources": {"requests": {"cpu": "1"}}}, {"name": "side"}]),
    );
    let r = server
        .review(
            "/mutate/pods",
            request("m-1", "", "pods", "CREATE", "default", p.clone()),
        )
        .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let patch = decode_patch(&r);
    let mut patched = p.clone();
    json_apply(&mut patched, &patch);
    let res = &patched["spec"]["containers"][0]["resources"];
    assert_eq!(res["requests"]["intel.com/sriov_fast"], "2");
    assert_eq!(res["requests"]["intel.com/sriov_slow"], "1");
    assert_eq!(res["requests"]["cpu"], "1");
    assert_eq!(res["limits"]["intel.com/sriov_fast"], "2");

    // Re-invocation on the patched pod changes nothing.
    let again = server
        .review(
            "/mutate/pods",
            request("m-2", "", "pods", "CREATE", "default", patched),
        )
        .await;
    assert_eq!(again["allowed"], true);
    assert!(again.get("patch").is_none(), "{again}");

    // A named container receives them; a wrong name is refused with the annotation named.
    let named = pod(
        json!({"k8s.v1.cni.cncf.io/networks": "fast", "k8s.v1.cni.cncf.io/resource-container": "side"}),
        json!([{"name": "app"}, {"name": "side"}]),
    );
    let r = server
        .review(
            "/mutate/pods",
            request("m-3", "", "pods", "CREATE", "default", named),
        )
        .await;
    assert_eq!(decode_patch(&r)[0]["path"], "/spec/containers/1/resources");
    let wrong = pod(
        json!({"k8s.v1.cni.cncf.io/networks": "fast", "k8s.v1.cni.cncf.io/resource-container": "nope"}),
        json!([{"name": "app"}]),
    );
    let r = server
        .review(
            "/mutate/pods",
            request("m-4", "", "pods", "CREATE", "default", wrong),
        )
        .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("resource-container")
    );
    server.stop().await;
}

/// Minimal RFC 6902 `add` for the patches this webhook emits.
fn json_apply(doc: &mut Value, patch: &Value) {
    for op in patch.as_array().unwrap() {
        assert_eq!(op["op"], "add");
        let path = op["path"].as_str().unwrap();
        let mut segs: Vec<String> = path[1..]
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = segs.pop().unwrap();
        let mut at = &mut *doc;
        for s in &segs {
            at = match at {
                Value::Array(a) => &mut a[s.parse::<usize>().unwrap()],
                Value::Object(o) => o.get_mut(s).unwrap(),
                _ => panic!("bad path {path}"),
            };
        }
        at.as_object_mut()
            .unwrap()
            .insert(last, op["value"].clone());
    }
}

#[tokio::test]
async fn broken_requests_get_clear_http_errors_and_the_server_lives_on() {
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let server = Running::start(cached(), limits).await;
    let (status, body) = server
        .request(
            "POST",
            "/validate/nads",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("not a JSON AdmissionReview"));

    let (status, body) = server
        .request(
            "POST",
            "/validate/pods",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("AdmissionReview"));

    let (status, _) = server
        .request("POST", "/validate/pods", "application/yaml", b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, body) = server
        .request(
            "POST",
            "/validate/pods",
            "application/json",
            vec![b' '; 65 * 1024],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (status, _) = server
        .request("POST", "/nope", "application/json", b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .request("GET", "/validate/pods", "application/json", Vec::new())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Still serving, and the metrics saw it all with bounded labels.
    let (status, _) = server
        .request("GET", "/healthz", "text/plain", Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .request("GET", "/readyz", "text/plain", Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    let _ = server
        .review(
            "/validate/nads",
            request(
                "u",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "DELETE",
                "default",
                Value::Null,
            ),
        )
        .await;
    let (status, metrics) = server
        .request("GET", "/metrics", "text/plain", Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("multus_webhook_requests_rejected_total{reason=\"TooLarge\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("multus_webhook_review_duration_seconds_count{kind=\"NetworkAttachmentDefinition\",verdict=\"Allowed\"} 1"), "{metrics}");
    assert!(
        metrics.contains("multus_webhook_cached_objects{kind=\"NetworkAttachmentDefinition\"} 3"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn http2_is_negotiated_and_serves_reviews() {
    let server = Running::start(cached(), Limits::default()).await;
    let tls = server.connect(&[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": request("h2", "", "pods", "CREATE", "default", pod(json!({}), json!([])))});
    let req = Request::post("https://127.0.0.1/validate/pods")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let out: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(out["response"]["uid"], "h2");
    server.stop().await;
}

#[tokio::test]
async fn rotated_certificates_serve_new_connections_and_open_ones_continue() {
    let server = Running::start(cached(), Limits::default()).await;
    let leaf = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| -> Vec<u8> {
        tls.get_ref().1.peer_certificates().unwrap()[0]
            .as_ref()
            .to_vec()
    };
    // An open keep-alive connection from before the rotation.
    let before = server.connect(&[b"http/1.1"]).await;
    let first = leaf(&before);
    let (mut open, conn) = hyper::client::conn::http1::handshake(TokioIo::new(before))
        .await
        .unwrap();
    tokio::spawn(conn);

    let (_, _, rotated) = server.pki.issue(server.dir.path(), "second");
    assert_ne!(first, rotated);
    let after = server.connect(&[b"http/1.1"]).await;
    assert_eq!(
        leaf(&after),
        rotated,
        "a new connection must see the new certificate"
    );

    // A broken pair (key of another certificate) keeps the last good one in service.
    std::fs::write(
        server.dir.path().join("tls.key"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let during = server.connect(&[b"http/1.1"]).await;
    assert_eq!(leaf(&during), rotated);

    let req = Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = open.send_request(req).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the pre-rotation connection still works"
    );
    drop(open);
    server.stop().await;
}
