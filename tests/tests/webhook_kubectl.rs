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

#[tokio::test]
async fn kubectl_apply_is_refused_for_bad_networks_and_pods_get_sriov_resources() {
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

    let bundle = CertBundle::generate(&["127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &bundle.cert_pem).unwrap();
    std::fs::write(&key, &bundle.key_pem).unwrap();
    let binary = workspace_binary("multus-webhook").unwrap();
    let webhook = Process::spawn(
        &binary,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--sriov=false",
            "--log-format",
            "json",
        ],
        Some(&kubeconfig),
    )
    .unwrap();
    let line = webhook
        .wait_for_line("serving admission reviews", Duration::from_secs(60))
        .await
        .unwrap();
    let addr = serde_json::from_str::<Value>(&line).unwrap()["fields"]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
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
