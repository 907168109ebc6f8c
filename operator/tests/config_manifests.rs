//! The deployment manifests under `config/`, checked offline: every YAML parses (serde-saphyr)
//! into Kubernetes objects, every kustomization's resources exist, every patch targets an object
//! its kustomization builds, the flags and `MULTUS_*` variables the Deployments and DaemonSets
//! (and the overlays' patches) set are real flags of the binaries, and the CRD copies in
//! `config/crd/` are byte-identical to `crds/*.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn config() -> PathBuf {
    root().join("config")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "kustomization.yaml")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `(kind, name)` of every object a kustomization directory builds (resources, recursively),
/// before its own patches.
fn built_objects(dir: &Path) -> BTreeSet<(String, String)> {
    let kust = &docs(&dir.join("kustomization.yaml"))[0];
    let mut out = BTreeSet::new();
    for res in strs(&kust["resources"]) {
        let path = dir.join(&res);
        if path.is_dir() {
            out.extend(built_objects(&path));
        } else {
            for d in docs(&path) {
                out.insert(kind_name(&d));
            }
        }
    }
    out
}

fn kind_name(d: &Value) -> (String, String) {
    (
        d["kind"].as_str().unwrap_or_default().to_owned(),
        d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn every_yaml_parses_into_kubernetes_objects() {
    let mut files = Vec::new();
    yaml_files(&config(), &mut files);
    assert!(
        files.len() > 10,
        "expected the config tree, found {files:?}"
    );
    for file in files {
        let docs = docs(&file);
        assert!(!docs.is_empty(), "{}: no document", file.display());
        for d in docs {
            let api = d["apiVersion"].as_str();
            let kind = d["kind"].as_str();
            assert!(api.is_some() && kind.is_some(), "{}: {d}", file.display());
            if !is_kustomization(&file) {
                assert!(
                    d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| !n.is_empty()),
                    "{}: {kind:?} without metadata.name",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn kustomization_resources_and_patch_targets_exist() {
    let mut files = Vec::new();
    yaml_files(&config(), &mut files);
    let kustomizations: Vec<_> = files.into_iter().filter(|f| is_kustomization(f)).collect();
    for k in [
        "crd",
        "rbac",
        "controller",
        "default",
        "overlays/multus-only",
        "overlays/sriov",
    ] {
        assert!(
            kustomizations.contains(&config().join(k).join("kustomization.yaml")),
            "config/{k}/kustomization.yaml missing"
        );
    }
    // the node agent is part of the default install as soon as it is a kustomization
    if config().join("agent/kustomization.yaml").is_file() {
        let default = &docs(&config().join("default/kustomization.yaml"))[0];
        assert!(
            strs(&default["resources"]).contains(&"../agent".to_owned()),
            "config/agent is a kustomization: list ../agent in config/default"
        );
    }
    for file in &kustomizations {
        let dir = file.parent().unwrap();
        let kust = &docs(file)[0];
        assert_eq!(kust["kind"], "Kustomization", "{}", file.display());
        for res in strs(&kust["resources"]) {
            let path = dir.join(&res);
            assert!(
                path.is_file() || path.join("kustomization.yaml").is_file(),
                "{}: resource {res} does not exist (or is a directory without kustomization.yaml)",
                file.display()
            );
            // kustomize refuses files outside the kustomization root without a load restrictor
            if path.is_file() {
                assert!(
                    !res.starts_with(".."),
                    "{}: file resource {res} outside the kustomization directory",
                    file.display()
                );
            }
        }
        let objects = built_objects(dir);
        for patch in kust["patches"].as_array().into_iter().flatten() {
            let body: Value = serde_saphyr::from_str(patch["patch"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{}: patch does not parse: {e}", file.display()));
            let target = if patch["target"].is_object() {
                (
                    patch["target"]["kind"].as_str().unwrap().to_owned(),
                    patch["target"]["name"].as_str().unwrap().to_owned(),
                )
            } else {
                kind_name(&body)
            };
            assert!(
                objects.contains(&target),
                "{}: patch target {target:?} is not among the objects built",
                file.display()
            );
        }
    }
}

#[test]
fn crd_copies_match_the_generated_crds() {
    let mut generated = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            generated.insert(name, std::fs::read(&path).unwrap());
        }
    }
    assert_eq!(generated.len(), 4, "crds/*.yaml: {:?}", generated.keys());
    let mut copies = BTreeMap::new();
    for entry in std::fs::read_dir(config().join("crd")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "kustomization.yaml" && path.extension().is_some_and(|e| e == "yaml") {
            copies.insert(name, std::fs::read(&path).unwrap());
        }
    }
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        copies.keys().collect::<Vec<_>>(),
        "config/crd/ must hold exactly the files of crds/"
    );
    for (name, bytes) in &generated {
        assert!(
            copies[name] == *bytes,
            "config/crd/{name} differs from crds/{name}: run `cp crds/*.yaml config/crd/`"
        );
    }
    let kust = &docs(&config().join("crd/kustomization.yaml"))[0];
    let listed: BTreeSet<_> = strs(&kust["resources"]).into_iter().collect();
    assert_eq!(listed, generated.keys().cloned().collect::<BTreeSet<_>>());
}

/// `multus-operator <sub> --help` of the real binary.
fn operator_help(sub: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_multus-operator"))
        .args([sub, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sub} --help failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The flags and `MULTUS_*` environment variables `multus-webhook` declares (its source: the
/// binary belongs to another crate, so it is not built for this test).
fn webhook_help() -> String {
    std::fs::read_to_string(root().join("webhooks/src/args.rs")).unwrap()
}

/// Every container that runs one of our binaries, with what it runs: (where, binary,
/// subcommand, flags, env names).
struct Use {
    at: String,
    binary: &'static str,
    sub: Option<String>,
    flags: Vec<String>,
    env: Vec<String>,
}

fn container_uses(at: &str, container: &Value) -> Option<Use> {
    let image = container["image"].as_str().unwrap_or_default();
    let name = container["name"].as_str().unwrap_or_default();
    let mut command = strs(&container["command"]);
    command.extend(strs(&container["args"]));
    let binary = if image.contains("multus-webhook") || name == "webhook" {
        "multus-webhook"
    } else if image.contains("multus-operator") || name == "agent" || name == "controller" {
        "multus-operator"
    } else {
        return None;
    };
    let words: Vec<_> = command
        .into_iter()
        .filter(|w| !w.ends_with(binary))
        .collect();
    let sub = (binary == "multus-operator")
        .then(|| words.iter().find(|w| !w.starts_with('-')).cloned())
        .flatten();
    let flags = words
        .iter()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_owned())
        .collect();
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    Some(Use {
        at: format!("{at} container {name}"),
        binary,
        sub,
        flags,
        env,
    })
}

fn workload_uses(at: &str, d: &Value, default_sub: Option<&str>, out: &mut Vec<Use>) {
    let kind = d["kind"].as_str().unwrap_or_default();
    if kind != "Deployment" && kind != "DaemonSet" {
        return;
    }
    let at = format!(
        "{at}: {kind} {}",
        d["metadata"]["name"].as_str().unwrap_or("?")
    );
    for c in d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(mut u) = container_uses(&at, c) {
            if u.sub.is_none() && u.binary == "multus-operator" {
                u.sub = default_sub.map(str::to_owned);
            }
            out.push(u);
        }
    }
}

#[test]
fn flags_and_env_vars_are_real_flags_of_the_binaries() {
    let mut files = Vec::new();
    yaml_files(&config(), &mut files);
    let mut uses = Vec::new();
    for file in &files {
        let at = file.strip_prefix(root()).unwrap().display().to_string();
        if is_kustomization(file) {
            // patches in overlays: judge them by the workload they patch
            let kust = &docs(file)[0];
            for patch in kust["patches"].as_array().into_iter().flatten() {
                let body: Value = serde_saphyr::from_str(patch["patch"].as_str().unwrap()).unwrap();
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let sub = match name {
                    "multus-agent" => Some("agent"),
                    "multus-controller" => Some("controller"),
                    _ => None,
                };
                workload_uses(&format!("{at} patch"), &body, sub, &mut uses);
            }
        } else {
            for d in docs(file) {
                workload_uses(&at, &d, None, &mut uses);
            }
        }
    }
    let operator_workloads = uses
        .iter()
        .filter(|u| u.binary == "multus-operator")
        .count();
    assert!(
        operator_workloads >= 2,
        "expected the controller Deployment and its patches at least"
    );
    let mut helps = BTreeMap::new();
    for u in &uses {
        let help = match (u.binary, u.sub.as_deref()) {
            ("multus-webhook", _) => webhook_help(),
            ("multus-operator", Some(sub)) => helps
                .entry(sub.to_owned())
                .or_insert_with(|| operator_help(sub))
                .clone(),
            (b, s) => panic!("{}: {b} without a known subcommand ({s:?})", u.at),
        };
        for flag in &u.flags {
            if flag == "--log-format" {
                continue; // global flag, shown on the top-level help
            }
            assert!(
                help.contains(&format!("{flag} "))
                    || help.contains(&format!("{flag}\n"))
                    || help.contains(&format!("\"{}\"", &flag[2..])),
                "{}: {flag} is not a flag of {} {:?}",
                u.at,
                u.binary,
                u.sub
            );
        }
        for env in u.env.iter().filter(|e| e.starts_with("MULTUS_")) {
            if env == "MULTUS_LOG_FORMAT" {
                continue; // global
            }
            assert!(
                help.contains(&format!("{env}=")) || help.contains(&format!("\"{env}\"")),
                "{}: {env} is not an environment variable of {} {:?}",
                u.at,
                u.binary,
                u.sub
            );
        }
    }
    // the global flag is real too
    let top = Command::new(env!("CARGO_BIN_EXE_multus-operator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&top.stdout).contains("MULTUS_LOG_FORMAT"));
}

#[test]
fn controller_deployment_is_production_shaped() {
    let d = docs(&config().join("controller/deployment.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(spec["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"].is_object());
    let pod_name = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "MULTUS_POD_NAME")
        .expect("MULTUS_POD_NAME");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let sa = spec["serviceAccountName"].as_str().unwrap();
    let rbac = docs(&config().join("rbac/controller.yaml"));
    assert!(
        rbac.iter()
            .any(|d| d["kind"] == "ServiceAccount" && d["metadata"]["name"] == sa)
    );
    // the Lease is granted in the namespace the controller is told to use
    let ns = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "MULTUS_NAMESPACE")
        .and_then(|e| e["value"].as_str())
        .unwrap();
    assert!(rbac.iter().any(|d| {
        d["kind"] == "Role"
            && d["metadata"]["namespace"] == ns
            && d["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| strs(&r["resources"]).contains(&"leases".to_owned()))
    }));
}
