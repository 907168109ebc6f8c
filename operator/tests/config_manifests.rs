//! The deployment manifests under `config/`, checked offline: every YAML parses (serde-saphyr)
//! into Kubernetes objects, every kustomization's resources exist, every patch targets an object
//! its kustomization builds, the flags and `MULTUS_*` variables the Deployments and DaemonSets
//! (and the overlays' patches) set are real flags of the binaries, and the CRD copies in
//! `config/crd/` are byte-identical to `crds/*.yaml`. `config/default` and both overlays are
//! built with `kubectl kustomize` (installed by scripts/test.sh) and their contents checked: what
//! each installs, the agent DaemonSet's flags and hostPath mounts against the paths the agent
//! really uses, and the images and binaries against the Dockerfile.

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
        "agent",
        "webhook",
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

/// `kubectl kustomize config/<dir>`: the objects it installs.
fn build(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(config().join(dir))
        .output()
        .expect("kubectl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "kubectl kustomize config/{dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8(out.stdout).unwrap())
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {}", workload["metadata"]["name"]))
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

const SRIOV_CRDS: [&str; 3] = [
    "sriovnetworknodepolicies.sriovnetwork.openshift.io",
    "sriovnetworknodestates.sriovnetwork.openshift.io",
    "sriovnetworks.sriovnetwork.openshift.io",
];

#[test]
fn default_and_overlays_build_and_install_what_they_promise() {
    let builds: BTreeMap<&str, Vec<Value>> = ["default", "overlays/multus-only", "overlays/sriov"]
        .into_iter()
        .map(|d| (d, build(d)))
        .collect();
    for (dir, objects) in &builds {
        // every namespaced object has a namespace the build creates (or kube-system)
        let namespaces: BTreeSet<_> = objects
            .iter()
            .filter(|o| o["kind"] == "Namespace")
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        for o in objects {
            let cluster_scoped = [
                "Namespace",
                "CustomResourceDefinition",
                "ClusterRole",
                "ClusterRoleBinding",
                "PriorityClass",
                "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration",
            ]
            .contains(&o["kind"].as_str().unwrap());
            let ns = o["metadata"]["namespace"].as_str();
            if cluster_scoped {
                assert!(
                    ns.is_none(),
                    "config/{dir}: {} has a namespace",
                    kind_name(o).1
                );
            } else {
                let ns = ns.unwrap_or_else(|| {
                    panic!("config/{dir}: {:?} without namespace", kind_name(o))
                });
                assert!(
                    namespaces.contains(ns),
                    "config/{dir}: namespace {ns} not installed"
                );
            }
        }
        // the essentials of every variant
        for (kind, name) in [
            ("Namespace", "multus-system"),
            (
                "CustomResourceDefinition",
                "network-attachment-definitions.k8s.cni.cncf.io",
            ),
            ("DaemonSet", "multus-agent"),
            ("ServiceAccount", "multus-agent"),
            ("ClusterRole", "multus-agent"),
            ("ClusterRoleBinding", "multus-agent"),
            ("PriorityClass", "multus-agent"),
            ("Deployment", "multus-webhook"),
            ("ValidatingWebhookConfiguration", "multus-webhook"),
            ("MutatingWebhookConfiguration", "multus-webhook"),
        ] {
            assert!(
                find(objects, kind, name).is_some(),
                "config/{dir}: no {kind} {name}"
            );
        }
        let agent = find(objects, "DaemonSet", "multus-agent").unwrap();
        let spec = &agent["spec"]["template"]["spec"];
        let pc = spec["priorityClassName"].as_str().unwrap();
        assert!(
            find(objects, "PriorityClass", pc).is_some() || pc.starts_with("system-"),
            "config/{dir}: priority class {pc} not installed"
        );
        assert!(
            spec["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
            "config/{dir}: the agent must tolerate every taint"
        );
        // privileged: the agent only
        for o in objects.iter().filter(|o| o["kind"] == "Deployment") {
            for c in o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                assert_ne!(
                    c["securityContext"]["privileged"], true,
                    "config/{dir}: {}",
                    o["metadata"]["name"]
                );
                assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
            }
        }
    }
    let default = &builds["default"];
    let controller = find(default, "Deployment", "multus-controller").unwrap();
    assert_eq!(controller["spec"]["replicas"], 2);
    for crd in SRIOV_CRDS {
        assert!(
            find(default, "CustomResourceDefinition", crd).is_some(),
            "{crd}"
        );
        assert!(
            find(&builds["overlays/sriov"], "CustomResourceDefinition", crd).is_some(),
            "{crd}"
        );
        assert!(
            find(
                &builds["overlays/multus-only"],
                "CustomResourceDefinition",
                crd
            )
            .is_none(),
            "{crd}"
        );
    }
    // Multus only: no controller, no SR-IOV permissions, the agent's and webhook's SR-IOV off
    let only = &builds["overlays/multus-only"];
    assert!(find(only, "Deployment", "multus-controller").is_none());
    assert!(find(only, "ClusterRole", "multus-agent-sriov").is_none());
    assert!(find(only, "Role", "multus-agent").is_none());
    let agent = container(find(only, "DaemonSet", "multus-agent").unwrap(), "agent");
    assert_eq!(env(agent, "MULTUS_SRIOV"), Some("false"));
    let webhook = container(
        find(only, "Deployment", "multus-webhook").unwrap(),
        "webhook",
    );
    assert_eq!(env(webhook, "MULTUS_SRIOV"), Some("false"));
    // SR-IOV: on, with the built-in device plugin
    let sriov = &builds["overlays/sriov"];
    let agent = container(find(sriov, "DaemonSet", "multus-agent").unwrap(), "agent");
    assert_eq!(env(agent, "MULTUS_SRIOV"), Some("true"));
    assert_eq!(env(agent, "MULTUS_DEVICE_PLUGIN"), Some("builtin"));
    assert!(find(sriov, "ClusterRole", "multus-agent-sriov").is_some());
    // the flags of the built (patched) workloads are real too
    for (dir, objects) in &builds {
        let mut uses = Vec::new();
        for o in objects {
            workload_uses(&format!("config/{dir} (built)"), o, None, &mut uses);
        }
        for u in uses.iter().filter(|u| u.binary == "multus-operator") {
            let help = operator_help(u.sub.as_deref().unwrap());
            for e in u
                .env
                .iter()
                .filter(|e| e.starts_with("MULTUS_") && *e != "MULTUS_LOG_FORMAT")
            {
                assert!(
                    help.contains(&format!("{e}=")),
                    "{}: {e} is not a flag of {:?}",
                    u.at,
                    u.sub
                );
            }
        }
    }
}

/// Every directory the agent reads or writes, as `for_host("/host")` computes it, is a hostPath
/// mount of the same host directory (the mount at that path or at one of its parents).
#[test]
fn agent_host_paths_are_mounted_from_the_host() {
    use multus_operator::agent::{cni, sriov};
    let objects = build("default");
    let ds = find(&objects, "DaemonSet", "multus-agent").unwrap();
    let spec = &ds["spec"]["template"]["spec"];
    let c = container(ds, "agent");
    let root = env(c, "MULTUS_HOST_ROOT").expect("MULTUS_HOST_ROOT");
    assert_eq!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "MULTUS_NODE_NAME")
            .unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(
        spec["hostPID"], true,
        "netns paths from the runtime are /proc/<pid>/ns/net"
    );
    let volumes: BTreeMap<&str, &str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect();
    let mounts: Vec<(PathBuf, PathBuf)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let host = volumes[m["name"].as_str().unwrap()];
            (
                PathBuf::from(m["mountPath"].as_str().unwrap()),
                PathBuf::from(host),
            )
        })
        .collect();
    let cni = cni::Config::for_host("n", root, cni::multusconf::Mode::Thick);
    let sriov = sriov::Config::for_host("n", root);
    let devinfo = cni::under_root(
        Path::new(root),
        &multus_cni::engine::EngineOptions::default()
            .devinfo_dir
            .display()
            .to_string(),
    );
    let used = [
        ("CNI conf dir", cni.cni_conf_dir.clone()),
        (
            "Multus confDir (rendered NADs)",
            cni.multus_conf_dir.clone(),
        ),
        ("CNI bin dir", cni.cni_bin_dir.clone()),
        ("Multus cache", cni.cni_dir.clone()),
        ("daemon socket dir", cni.socket_dir.clone()),
        ("device info dir", devinfo),
        ("sysfs", sriov.sysfs_root.clone()),
        ("SR-IOV state dir", sriov.state_dir.clone()),
        ("kubelet device plugins", sriov.plugin_dir.clone()),
        (
            "kubelet pod resources",
            sriov.pod_resources_socket.parent().unwrap().to_path_buf(),
        ),
        (
            "upstream device plugin config",
            sriov.upstream_config.parent().unwrap().to_path_buf(),
        ),
    ];
    for (what, path) in used {
        let host = Path::new("/").join(path.strip_prefix(root).unwrap());
        let (mount, from) = mounts
            .iter()
            .filter(|(m, _)| path.starts_with(m) && m != Path::new(root))
            .max_by_key(|(m, _)| m.components().count())
            .unwrap_or_else(|| panic!("{what} ({}) is not mounted", path.display()));
        let expected = from.join(path.strip_prefix(mount).unwrap());
        assert_eq!(
            expected,
            host,
            "{what}: {} comes from the host's {}",
            path.display(),
            expected.display()
        );
    }
}

/// The Dockerfile builds every binary the manifests run, under the names and paths they use, and
/// the images the manifests name are its targets.
#[test]
fn dockerfile_builds_the_binaries_and_images_the_manifests_use() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    // `-p PKG --bin B ...` of the cargo build: each bin exists in that package
    let cargo_build = dockerfile
        .split("cargo build")
        .nth(1)
        .unwrap()
        .split("&&")
        .next()
        .unwrap();
    let mut built = BTreeSet::new();
    let mut package = None;
    let words: Vec<_> = cargo_build
        .split_whitespace()
        .filter(|w| *w != "\\")
        .collect();
    for pair in words.windows(2) {
        match pair[0] {
            "-p" => package = Some(pair[1]),
            "--bin" => {
                let pkg = package.expect("--bin after -p");
                let dir = ["crds", "cni", "kubelet", "operator", "webhooks", "tests"]
                    .into_iter()
                    .find(|d| {
                        std::fs::read_to_string(root().join(d).join("Cargo.toml"))
                            .unwrap()
                            .contains(&format!("name = \"{pkg}\""))
                    })
                    .unwrap_or_else(|| panic!("Dockerfile: no workspace package {pkg}"));
                assert!(
                    root()
                        .join(dir)
                        .join("src/bin")
                        .join(format!("{}.rs", pair[1]))
                        .is_file(),
                    "Dockerfile: {pkg} has no binary {}",
                    pair[1]
                );
                built.insert(pair[1].to_owned());
            }
            _ => {}
        }
    }
    assert!(
        built.is_superset(
            &["multus", "multus-operator", "multus-webhook"]
                .map(String::from)
                .into()
        )
    );
    // copied out of the build (`for b in ...; do cp`) and into the image's /usr/local/bin
    let copied_out: Vec<_> = dockerfile
        .lines()
        .find(|l| l.trim_start().starts_with("&& for b in"))
        .expect("the copy loop")
        .split_whitespace()
        .map(|w| w.trim_end_matches(';'))
        .collect();
    let into_image: Vec<_> = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY --from=builder") && l.ends_with("/usr/local/bin/"))
        .expect("the COPY into /usr/local/bin/")
        .split_whitespace()
        .collect();
    for b in &built {
        assert!(
            copied_out.contains(&b.as_str()),
            "Dockerfile: {b} not copied to /out"
        );
        assert!(
            into_image.contains(&format!("/out/{b}").as_str()),
            "Dockerfile: {b} not in the image"
        );
    }
    let targets: BTreeSet<_> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .map(str::trim)
        .collect();
    for objects in [build("default"), build("overlays/multus-only")] {
        for o in objects
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
        {
            for c in o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                let image = c["image"].as_str().unwrap();
                let repo = image.split(':').next().unwrap();
                // the build command documented for this image names a target that exists
                let documented = dockerfile
                    .lines()
                    .find(|l| l.contains("docker build") && l.contains(&format!("-t {repo}:")))
                    .unwrap_or_else(|| panic!("Dockerfile documents no build of {repo}"));
                let target = documented
                    .split("--target")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                assert!(targets.contains(target), "{repo}: no stage {target}");
                // what runs: the command, or the target's entrypoint
                let program = match c["command"].as_array() {
                    Some(cmd) => cmd[0].as_str().unwrap().to_owned(),
                    None => {
                        let stage = dockerfile.split(&format!(" AS {target}\n")).nth(1).unwrap();
                        let entry = stage.lines().find(|l| l.starts_with("ENTRYPOINT")).unwrap();
                        entry.split('"').nth(1).unwrap().to_owned()
                    }
                };
                let name = program
                    .strip_prefix("/usr/local/bin/")
                    .unwrap_or_else(|| panic!("{program}"));
                assert!(
                    built.contains(name),
                    "{repo} runs {program}, which the Dockerfile does not build"
                );
                if let Some(b) = env(c, "MULTUS_BINARY") {
                    let name = b.strip_prefix("/usr/local/bin/").unwrap();
                    assert!(
                        built.contains(name),
                        "MULTUS_BINARY {b} is not in the image"
                    );
                }
                // multus-shim is built on its own (cni/shim) and copied in beside the others.
                if let Some(b) = env(c, "MULTUS_SHIM_BINARY") {
                    let name = b.strip_prefix("/usr/local/bin/").unwrap();
                    assert!(
                        into_image.contains(&format!("/out/{name}").as_str())
                            && dockerfile.contains(&format!(
                                "cp cni/shim/target/release/{name} /out/{name}"
                            )),
                        "MULTUS_SHIM_BINARY {b} is not in the image"
                    );
                }
            }
        }
    }
}

/// tests/src/rbac.rs reads config/default's resource files instead of running kustomize: the
/// RBAC objects and workloads it sees must be exactly those of the build (same names,
/// namespaces, rules, subjects and ServiceAccounts).
#[test]
fn raw_files_of_default_give_the_rbac_of_the_build() {
    fn identity(objects: &[Value]) -> BTreeSet<String> {
        objects
            .iter()
            .filter(|o| {
                [
                    "ServiceAccount",
                    "Role",
                    "ClusterRole",
                    "RoleBinding",
                    "ClusterRoleBinding",
                    "Deployment",
                    "DaemonSet",
                ]
                .contains(&o["kind"].as_str().unwrap_or_default())
            })
            .map(|o| {
                serde_json::json!({
                    "kind": o["kind"], "name": o["metadata"]["name"],
                    "namespace": o["metadata"]["namespace"], "rules": o["rules"],
                    "roleRef": o["roleRef"], "subjects": o["subjects"],
                    "sa": o["spec"]["template"]["spec"]["serviceAccountName"],
                })
            })
            .map(|v| canonical(&v))
            .collect()
    }
    /// JSON text with object keys sorted (kustomize reorders keys).
    fn canonical(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let fields: BTreeMap<_, _> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
                let fields: Vec<_> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(a) => {
                format!(
                    "[{}]",
                    a.iter().map(canonical).collect::<Vec<_>>().join(",")
                )
            }
            other => other.to_string(),
        }
    }
    let raw = multus_tests_free_objects(&config().join("default"));
    let built = build("default");
    assert_eq!(identity(&raw), identity(&built));
}

/// The resource files of a kustomization, recursively (what tests/src/rbac.rs reads).
fn multus_tests_free_objects(dir: &Path) -> Vec<Value> {
    let kust = &docs(&dir.join("kustomization.yaml"))[0];
    let mut out = Vec::new();
    for res in strs(&kust["resources"]) {
        let path = dir.join(&res);
        if path.is_dir() {
            out.extend(multus_tests_free_objects(&path));
        } else {
            out.extend(docs(&path));
        }
    }
    out
}
