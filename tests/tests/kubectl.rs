//! `kubectl` (whichever the machine has; scripts/test.sh installs Debian's) against the
//! `fake-apiserver` binary over TLS: server-side apply of our CRDs and examples, get, delete.
//! Without kubectl this test fails: it does not skip.
// Test code: helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use multus_tests::harness::process::Process;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(workspace())
            .output()
            .unwrap_or_else(|e| panic!("kubectl is required by this test (scripts/test.sh installs kubernetes-client): {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "kubectl {} failed:\n{text}", args.join(" "));
        text
    }
}

/// The CRD manifests: crds/*.yaml when present, otherwise the NAD CRD generated from our type.
fn crd_args(scratch: &Path) -> Vec<String> {
    let dir = workspace().join("crds");
    let has_yaml = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .unwrap_or(false);
    if has_yaml {
        return vec!["-f".to_owned(), "crds/".to_owned()];
    }
    use kube::CustomResourceExt;
    let path = scratch.join("nad-crd.json");
    std::fs::write(
        &path,
        serde_json::to_string(&multus_crds::NetworkAttachmentDefinition::crd()).unwrap(),
    )
    .unwrap();
    vec!["-f".to_owned(), path.display().to_string()]
}

/// examples/ subdirectories holding manifests meant to be accepted (`invalid/` holds rejects
/// for the webhook; `node/` holds host files).
fn example_dirs() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(workspace().join("examples"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n != "invalid" && n != "node")
                .map(|n| format!("examples/{n}"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_and_deletes_against_the_binary() {
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    let server = Process::spawn(
        Path::new(env!("CARGO_BIN_EXE_fake-apiserver")),
        &[
            "--port",
            "0",
            "--tls",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ],
        None,
    )
    .unwrap();
    server
        .wait_for_line("serving https://127.0.0.1:", Duration::from_secs(20))
        .await
        .unwrap();
    let k = Kubectl { kubeconfig };

    let crds = crd_args(scratch.path());
    let crd_refs: Vec<&str> = crds.iter().map(String::as_str).collect();
    let mut apply = vec!["apply", "--server-side"];
    apply.extend(&crd_refs);
    // CRDs first, as with a real cluster: kubectl maps every object's kind before applying any.
    let out = k.ok(&apply);
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/network-attachment-definitions.k8s.cni.cncf.io serverside-applied"), "{out}");

    let dirs = example_dirs();
    if !dirs.is_empty() {
        // Namespaces the examples use: created by the examples themselves or by the operator's install.
        let ns = scratch.path().join("operator-namespace.json");
        let manifest = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sriov-network-operator"}}"#;
        std::fs::write(&ns, manifest).unwrap();
        k.ok(&["apply", "--server-side", "-f", ns.to_str().unwrap()]);
        if workspace()
            .join("examples/networks/namespace.yaml")
            .exists()
        {
            k.ok(&[
                "apply",
                "--server-side",
                "-f",
                "examples/networks/namespace.yaml",
            ]);
        }
        let mut all = apply.clone();
        for d in &dirs {
            all.extend(["-R", "-f", d.as_str()]);
        }
        let out = k.ok(&all);
        assert!(out.contains("serverside-applied"), "{out}");
        // Applying again changes nothing and still succeeds.
        k.ok(&all);
    }

    let nad = r#"{"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "kubectl-test", "namespace": "default"},
        "spec": {"config": "{\"cniVersion\": \"1.0.0\", \"type\": \"macvlan\"}"}}"#;
    let file = scratch.path().join("nad.json");
    std::fs::write(&file, nad).unwrap();
    let file = file.to_str().unwrap();
    k.ok(&["apply", "--server-side", "-f", file]);
    let got = k.ok(&["get", "network-attachment-definitions", "-A", "-o", "name"]);
    assert!(
        got.contains("networkattachmentdefinition.k8s.cni.cncf.io/kubectl-test"),
        "{got}"
    );
    let json = k.ok(&[
        "get",
        "net-attach-def",
        "kubectl-test",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let obj: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "kubectl");
    k.ok(&["get", "network-attachment-definitions"]);

    let out = k.ok(&["delete", "-f", file]);
    assert!(out.contains("deleted"), "{out}");
    let (found, text) = k.run(&["get", "network-attachment-definitions", "kubectl-test"]);
    assert!(!found);
    assert!(text.contains("NotFound"), "{text}");
}
