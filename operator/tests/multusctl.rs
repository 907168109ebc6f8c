//! `multusctl` as a user runs it: the real binary, on the bundled examples and on crafted input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn multusctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_multusctl"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("multusctl starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// (path, message) of every error in a JSON report.
fn errors(report: &Value) -> Vec<(String, String)> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["errors"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_bundled_example_is_valid() {
    let o = multusctl(&["validate", "-f", "examples/"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_owned();
    assert!(last.contains(" 0 invalid"), "{last}");
    // Every kind of input the examples hold was actually checked.
    let report = json(&multusctl(
        &["validate", "-f", "examples/", "-o", "json"],
        None,
    ));
    let kinds: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "NetworkAttachmentDefinition",
        "Pod",
        "Deployment",
        "SriovNetworkNodePolicy",
        "SriovNetwork",
        "CNIConfig",
        "MultusConfig",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

/// Each file of examples/invalid/ says, on its first line, the one error path it must produce.
#[test]
fn each_invalid_example_produces_exactly_its_documented_error() {
    let dir = repo().join("examples/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "only {} invalid examples", files.len());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect-error: "))
            .unwrap_or_else(|| panic!("{} has no '# expect-error:' line", file.display()))
            .trim();
        let o = multusctl(
            &["validate", "-f", file.to_str().unwrap(), "-o", "json"],
            None,
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}: {}",
            file.display(),
            stdout(&o)
        );
        let errs = errors(&json(&o));
        assert_eq!(
            errs.len(),
            1,
            "{}: expected one error, got {errs:#?}",
            file.display()
        );
        assert_eq!(errs[0].0, expected, "{}: {}", file.display(), errs[0].1);
        assert!(!errs[0].1.is_empty());
    }

    // The whole directory at once: one error per broken file, exit 1.
    let o = multusctl(&["validate", "-f", "examples/invalid/", "-o", "json"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(errors(&json(&o)).len(), files.len());
}

#[test]
fn text_output_names_file_document_object_and_field() {
    let o = multusctl(
        &["validate", "-f", "examples/invalid/pod-bad-mac.yaml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let first = stdout(&o).lines().next().unwrap().to_owned();
    assert!(
        first.starts_with(
            "examples/invalid/pod-bad-mac.yaml:2 Pod demo/bad-mac: metadata.annotations[k8s.v1.cni.cncf.io/networks][0].mac: "
        ),
        "{first}"
    );
}

#[test]
fn broken_yaml_is_reported_with_its_line_and_the_rest_is_still_checked() {
    let input = "\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: demo}
---
apiVersion: v1
kind: Pod
metadata: {name: [unclosed
---
apiVersion: v1
kind: Pod
metadata:
  name: c
  namespace: demo
  annotations:
    k8s.v1.cni.cncf.io/networks: missing-net
";
    let o = multusctl(&["validate", "-f", "-", "-o", "json"], Some(input));
    assert_eq!(o.status.code(), Some(1));
    let report = json(&o);
    let objects = report["objects"].as_array().unwrap();
    let broken = objects
        .iter()
        .find(|o| o["index"] == 2)
        .expect("the broken document is reported");
    assert_eq!(broken["valid"], false);
    let line = broken["line"].as_u64().unwrap();
    assert!((5..=8).contains(&line), "line {line}");
    let third = objects
        .iter()
        .find(|o| o["name"] == "c")
        .expect("third checked");
    assert_eq!(third["valid"], false);
    assert!(
        third["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("demo/missing-net")
    );
    // Text form: FILE:DOC with the line in the message.
    let o = multusctl(&["validate", "-f", "-"], Some(input));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("-:2 Unparsable -: line {line}: unclosed bracket")),
        "{text}"
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = multusctl(&["validate", "-f", "no/such/path.yaml"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/path.yaml"));
    let o = multusctl(&["validate"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = multusctl(&["validate", "-f", "examples/", "-o", "yaml"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn missing_networks_can_be_warnings_for_workload_only_repositories() {
    let file = "examples/pods/pod-comma-form.yaml";
    let o = multusctl(&["validate", "-f", file], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let o = multusctl(
        &[
            "validate",
            "-f",
            file,
            "--ignore-missing-networks",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let report = json(&o);
    let warnings = report["objects"][0]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[test]
fn namespace_isolation_refuses_cross_namespace_references() {
    let input = "\
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: shared, namespace: infra}
spec:
  config: '{\"cniVersion\":\"1.0.0\",\"name\":\"shared\",\"type\":\"bridge\"}'
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: team-a
  annotations:
    k8s.v1.cni.cncf.io/networks: infra/shared
";
    let o = multusctl(&["validate", "-f", "-"], Some(input));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = multusctl(
        &["validate", "-f", "-", "--namespace-isolation"],
        Some(input),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("namespace isolation"), "{}", stdout(&o));
    let o = multusctl(
        &[
            "validate",
            "-f",
            "-",
            "--namespace-isolation",
            "--global-namespaces",
            "default,infra",
        ],
        Some(input),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn a_nodes_cni_directory_can_be_checked() {
    let o = multusctl(&["validate", "-f", "examples/node/net.d/"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-bad.conflist"),
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"bridge"},{"type":"/opt/evil"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("00-multus.conf"),
        r#"{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus","logLevel":"chatty"}"#,
    )
    .unwrap();
    let o = multusctl(
        &["validate", "-f", dir.path().to_str().unwrap(), "-o", "json"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let errs = errors(&json(&o));
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"plugins[1].type"), "{errs:#?}");
    assert!(paths.contains(&"logLevel"), "{errs:#?}");
    assert!(
        errs.iter()
            .any(|(_, m)| m.contains("at least one delegate/clusterNetwork must be specified")),
        "{errs:#?}"
    );
}

#[test]
fn a_replacement_supported_nic_list_changes_the_verdict() {
    let file = "examples/invalid/sriov-policy-unsupported-vendor.yaml";
    let o = multusctl(&["validate", "-f", file], None);
    assert_eq!(o.status.code(), Some(1));
    let dir = tempfile::tempdir().unwrap();
    let nics = dir.path().join("nics");
    let policy = std::fs::read_to_string(repo().join(file)).unwrap();
    let vendor = policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("vendor: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    std::fs::write(&nics, format!("# lab NICs\n{vendor} 8168 8169\n")).unwrap();
    let o = multusctl(
        &[
            "validate",
            "-f",
            file,
            "--supported-nics",
            nics.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    std::fs::write(&nics, "8086 zz 1889\n").unwrap();
    let o = multusctl(
        &[
            "validate",
            "-f",
            file,
            "--supported-nics",
            nics.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1"));
}

#[test]
fn explain_numbers_interfaces_like_multus() {
    let o = multusctl(
        &[
            "explain",
            "-f",
            "examples/pods/pod-json-form.yaml",
            "-f",
            "examples/networks/",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let plan = json(&o);
    let attachments = plan["pods"][0]["attachments"].as_array().unwrap();
    let names: Vec<&str> = attachments
        .iter()
        .map(|a| a["interface"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eth0", "data0", "net2", "net3"]);
    assert_eq!(attachments[1]["network"], "demo/macvlan-net");
    assert_eq!(
        attachments[1]["plugins"],
        serde_json::json!(["macvlan", "tuning"])
    );
    assert_eq!(attachments[1]["mac"], "02:00:5e:10:00:15");
    assert_eq!(attachments[2]["resourceName"], "openshift.io/intelnics");
    assert_eq!(
        attachments[3]["portMappings"],
        serde_json::json!(["15432:5432/tcp"])
    );

    // defaultNetworks take positions before the annotation's networks.
    let o = multusctl(
        &[
            "explain",
            "-f",
            "examples/pods/pod-comma-form.yaml",
            "-f",
            "examples/networks/",
            "--default-networks",
            "audit-net",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(text.contains("net1       audit-net"), "{text}");
    assert!(text.contains("net2       demo/bridge-net"), "{text}");
    assert!(text.contains("stor0      demo/storage-net"), "{text}");

    // A pod naming an unknown network gets the error, not a plan.
    let o = multusctl(
        &["explain", "-f", "examples/invalid/pod-unknown-network.yaml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("demo/no-such-net does not exist"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn crds_prints_the_committed_crd_files() {
    let o = multusctl(&["crds"], None);
    assert_eq!(o.status.code(), Some(0));
    let printed = stdout(&o);
    let mut committed = 0;
    for entry in std::fs::read_dir(repo().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            committed += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(
                printed.contains(body.trim()),
                "{} differs from `multusctl crds`",
                path.display()
            );
        }
    }
    assert_eq!(committed, 4);
    assert_eq!(printed.matches("kind: CustomResourceDefinition").count(), 4);
}

#[test]
fn version_prints_the_package_version() {
    let o = multusctl(&["version"], None);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o).trim(),
        format!("multusctl {}", env!("CARGO_PKG_VERSION"))
    );
}
