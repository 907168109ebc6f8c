//! The `multus-webhook` binary as a process, registered with the fake API server through real
//! webhook configurations (HTTPS, verified against caBundle), driven with `kubectl apply`: a bad
//! NAD and a pod naming a missing network are refused with our message; a good pod gets its
//! SR-IOV resources. Without kubectl this test fails: it does not skip.
// Test code: helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use multus_tests::apiserver::FakeApiServer;
use multus_tests::apiserver::tls::CertBundle;
use multus_tests::harness::process::{Process, workspace_binary};
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// kubectl, run without blocking the runtime the in-process API server is served from.
async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(workspace())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl is required by this test (scripts/test.sh installs kubernetes-client): {e}"
            )
        });
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .await
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn webhook_config(
    kind: &str,
    name: &str,
    url: &str,
    ca: &str,
    group: &str,
    resources: &[&str],
    operations: &[&str],
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
        "webhooks": [{
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"url": url, "caBundle": ca},
            "rules": [{"operations": operations, "apiGroups": [group], "apiVersions": ["v1"], "resources": resources, "scope": "Namespaced"}]
        }]
    }))
    .unwrap()
}

/// The fake API server with the NAD CRD applied through kubectl (as a cluster admin would),
/// its kubeconfig and a client.
async fn api_server_with_nad_crd() -> (FakeApiServer, PathBuf, kube::Client) {
    let server = FakeApiServer::start().await.unwrap();
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let client = server.client().await.unwrap();
    let (ok, out) = kubectl(
        &kubeconfig,
        &[
            "apply",
            "-f",
            "crds/k8s.cni.cncf.io_network-attachment-definitions.yaml",
        ],
        None,
    )
    .await;
    assert!(ok, "{out}");
    (server, kubeconfig, client)
}

async fn install(client: &kube::Client, obj: DynamicObject) {
    let kind = obj.types.as_ref().unwrap().kind.clone();
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &kind),
            &plural,
        ),
    );
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// The `multus-webhook` binary serving on a loopback port with a fresh certificate.
struct Webhook {
    process: Process,
    bundle: CertBundle,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Webhook {
    async fn start(kubeconfig: &Path, extra: &[&str]) -> Self {
        let bundle = CertBundle::generate(&["127.0.0.1"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &bundle.cert_pem).unwrap();
        std::fs::write(&key, &bundle.key_pem).unwrap();
        let binary = workspace_binary("multus-webhook").unwrap();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--log-format",
            "json",
        ];
        args.extend_from_slice(extra);
        let process = Process::spawn(&binary, &args, Some(kubeconfig)).unwrap();
        let line = process
            .wait_for_line("serving admission reviews", Duration::from_secs(60))
            .await
            .unwrap();
        let addr = serde_json::from_str::<Value>(&line).unwrap()["fields"]["addr"]
            .as_str()
            .unwrap()
            .to_owned();
        Self {
            process,
            bundle,
            addr,
            _dir: dir,
        }
    }

    /// The HTTP status line of `GET path`, over TLS verified against the bundle's CA.
    async fn get(&self, path: &str) -> String {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(self.bundle.ca_pem.as_bytes())
            .unwrap();
        roots.add(ca).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer).await;
        answer.lines().next().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn kubectl_apply_is_refused_for_bad_networks_and_pods_get_sriov_resources() {
    let (server, kubeconfig, client) = api_server_with_nad_crd().await;

    let webhook = Webhook::start(&kubeconfig, &["--sriov=false"]).await;
    let (webhook, bundle, addr) = (&webhook.process, &webhook.bundle, &webhook.addr);
    webhook
        .wait_for_line("cache synced", Duration::from_secs(60))
        .await
        .unwrap();

    let base = format!("https://{addr}");
    let ca = bundle.ca_bundle();
    install(
        &client,
        webhook_config(
            "MutatingWebhookConfiguration",
            "inject.multus.test",
            &format!("{base}/mutate/pods"),
            &ca,
            "",
            &["pods"],
            &["CREATE"],
        ),
    )
    .await;
    install(
        &client,
        webhook_config(
            "ValidatingWebhookConfiguration",
            "pods.multus.test",
            &format!("{base}/validate/pods"),
            &ca,
            "",
            &["pods"],
            &["CREATE", "UPDATE"],
        ),
    )
    .await;
    install(
        &client,
        webhook_config(
            "ValidatingWebhookConfiguration",
            "nads.multus.test",
            &format!("{base}/validate/nads"),
            &ca,
            "k8s.cni.cncf.io",
            &["network-attachment-definitions"],
            &["CREATE", "UPDATE"],
        ),
    )
    .await;

    // A NAD whose plugin type is a path is refused at apply time, with the field named.
    let bad_nad = r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: evil, namespace: default}
spec:
  config: '{"cniVersion": "1.0.0", "name": "evil", "type": "../../tmp/evil"}'
"#;
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(bad_nad)).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("admission webhook \"nads.multus.test\" denied the request"),
        "{out}"
    );
    assert!(out.contains("spec.config.type"), "{out}");

    let good_nad = r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: sriov-fast
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/resourceName: intel.com/sriov_fast}
spec:
  config: '{"cniVersion": "1.0.0", "name": "sriov-fast", "type": "sriov", "ipam": {"type": "static"}}'
"#;
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(good_nad)).await;
    assert!(ok, "{out}");

    // A pod naming a network that does not exist is refused, naming the element.
    let missing = r#"
apiVersion: v1
kind: Pod
metadata:
  name: lost
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/networks: "sriov-fast, nowhere"}
spec:
  containers: [{name: app, image: busybox}]
"#;
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(missing)).await;
    assert!(!ok, "{out}");
    assert!(out.contains("pods.multus.test"), "{out}");
    assert!(
        out.contains("[k8s.v1.cni.cncf.io/networks][1]") && out.contains("nowhere"),
        "{out}"
    );

    // A good pod, created right after its NAD, gets two VFs of the SR-IOV resource.
    let good = r#"
apiVersion: v1
kind: Pod
metadata:
  name: fast
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/networks: "sriov-fast, sriov-fast"}
spec:
  containers: [{name: app, image: busybox}, {name: sidecar, image: busybox}]
"#;
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(good)).await;
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &kubeconfig,
        &["get", "pod", "fast", "-n", "default", "-o", "json"],
        None,
    )
    .await;
    assert!(ok, "{out}");
    let pod: Value = serde_json::from_str(&out).unwrap();
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(
        resources["requests"]["intel.com/sriov_fast"], "2",
        "{resources}"
    );
    assert_eq!(
        resources["limits"]["intel.com/sriov_fast"], "2",
        "{resources}"
    );
    assert!(
        pod["spec"]["containers"][1]
            .get("resources")
            .is_none_or(|r| r.get("requests").is_none())
    );

    // Nothing was logged per request at the default level.
    let logs = webhook.logs();
    assert!(
        !logs.contains("denied"),
        "per-request log lines at info: {logs}"
    );
    multus_tests::rbac::check_server(&server, &[multus_crds::constants::user_agent::WEBHOOK])
        .unwrap();
}

/// The SR-IOV CRDs installed after the webhook started: it is ready without them (NAD and pod
/// reviews need nothing else), and once they appear its watches pick up NodeStates and policies
/// by themselves, so the cluster rules judge a policy against the node's reported NICs.
#[tokio::test]
async fn sriov_crds_installed_after_the_webhook_started_are_picked_up_without_a_restart() {
    use k8s_openapi::api::core::v1::{Namespace, Node};
    use kube::api::{Patch, PatchParams};
    use multus_crds::sriov::SriovNetworkNodeState;

    let (server, kubeconfig, client) = api_server_with_nad_crd().await;
    let crd = |name: &str| format!("crds/sriovnetwork.openshift.io_{name}.yaml");
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": "worker-1", "labels": {"sriov": "yes"}}}),
    )
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();

    let webhook = Webhook::start(&kubeconfig, &["--dev-mode=true"]).await;
    // Ready although two of its watched kinds are not served.
    let mut status = String::new();
    for _ in 0..100 {
        status = webhook.get("/readyz").await;
        if status.contains(" 200 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(status.contains(" 200 "), "/readyz: {status}");
    webhook
        .process
        .wait_for_line("not served by the API server", Duration::from_secs(30))
        .await
        .unwrap();
    install(
        &client,
        webhook_config(
            "ValidatingWebhookConfiguration",
            "sriov.multus.test",
            &format!("https://{}/validate/sriov", webhook.addr),
            &webhook.bundle.ca_bundle(),
            "sriovnetwork.openshift.io",
            &["sriovnetworknodepolicies"],
            &["CREATE", "UPDATE"],
        ),
    )
    .await;

    // Now the SR-IOV operator is installed: its CRDs, its namespace, a node's reported NICs.
    for name in [
        "sriovnetworknodestates",
        "sriovnetworknodepolicies",
        "sriovnetworks",
    ] {
        let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", &crd(name)], None).await;
        assert!(ok, "{out}");
    }
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "sriov-network-operator"}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let states: Api<SriovNetworkNodeState> =
        Api::namespaced(client.clone(), "sriov-network-operator");
    let state: SriovNetworkNodeState = serde_json::from_value(json!({
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
        "metadata": {"name": "worker-1", "namespace": "sriov-network-operator"}, "spec": {}}))
    .unwrap();
    states.create(&PostParams::default(), &state).await.unwrap();
    let status = json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
        "status": {"interfaces": [{"name": "ens1f0", "pciAddress": "0000:3b:00.0", "vendor": "8086",
            "deviceID": "159b", "totalvfs": 16}]}});
    states
        .patch_status(
            "worker-1",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();

    let policy = |num_vfs: u32| {
        format!(
            r#"
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {{name: fast, namespace: sriov-network-operator}}
spec:
  resourceName: fast
  nodeSelector: {{sriov: "yes"}}
  numVfs: {num_vfs}
  nicSelector: {{pfNames: [ens1f0]}}
"#
        )
    };
    // Too many VFs for the PF the node reports: refused naming that PF, which only the
    // NodeState cache knows. Until the watches have caught up the answer is "retry".
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let out = loop {
        let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&policy(32))).await;
        assert!(!ok, "a policy over the PF's capacity was admitted: {out}");
        if out.contains("(PF ens1f0 on node worker-1)") {
            break out;
        }
        assert!(
            out.contains("has not yet listed") || out.contains("no supported NIC"),
            "{out}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the NodeState never reached the webhook: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(out.contains("sriov.multus.test"), "{out}");
    assert!(out.contains("spec.numVfs"), "{out}");
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&policy(8))).await;
    assert!(ok, "{out}");
    // Every request the webhook made (its Node, NodeState and policy watches included) is
    // granted by its RBAC.
    multus_tests::rbac::check_server(&server, &[multus_crds::constants::user_agent::WEBHOOK])
        .unwrap();
}
