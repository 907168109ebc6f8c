//! `multus-operator run` as a user runs it: the real binary on the bundled cluster-in-a-folder
//! (`examples/cluster`), once and in follow mode, checking the files it writes for each node and
//! the summary it prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn operator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_multus-operator"));
    c.current_dir(repo())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run_once(source: &str, host_root: &Path) -> Output {
    operator()
        .args(["run", "--source", source, "--host-root"])
        .arg(host_root)
        .arg("--once")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_file(path: &Path) -> Value {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}: {body}", path.display()))
}

fn yaml_file(path: &Path) -> Value {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}: {body}", path.display()))
}

/// Every entry under `dir` (symlinks as their targets, files as their contents), to prove a tree
/// was not touched.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let t = e.file_type().unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_owned();
            if t.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&path).unwrap().display()),
                );
            } else if t.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(path);
            } else {
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// Copy a tree, keeping symbolic links as links (sysfs trees are made of them).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else if t.is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn one_pass_on_the_bundled_cluster_writes_every_nodes_files_and_reports_the_rejects() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path();
    let trees = repo().join("examples/cluster/nodes");
    let before = snapshot(&trees);

    let o = run_once("dir:examples/cluster", root);
    let summary = text(&o.stdout);
    assert!(o.status.success(), "{summary}\n{}", text(&o.stderr));

    // The controller: SriovNetwork → NAD in its target namespace, with the resource annotation.
    let nad = yaml_file(&root.join("cluster/networkattachmentdefinitions/lab_intel-net.yaml"));
    assert_eq!(nad["metadata"]["namespace"], "lab");
    assert_eq!(
        nad["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
        "openshift.io/intelnics"
    );
    let config: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["type"], "sriov");
    assert_eq!(config["vlan"], 100);

    // Every node: 00-multus from its primary, and a file per accepted NAD (the rendered SR-IOV
    // one included, the rejected one not).
    for node in ["worker-1", "worker-2", "control-plane-0"] {
        let multus = json_file(&root.join(node).join("etc/cni/net.d/00-multus.conflist"));
        assert_eq!(multus["plugins"][0]["type"], "multus-shim", "{node}");
        assert_eq!(
            multus["plugins"][0]["clusterNetwork"],
            "/etc/cni/net.d/10-flannel.conflist"
        );
        let dir = root.join(node).join("etc/cni/multus/net.d");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "lab_bridge-net.nad.conflist",
                "lab_intel-net.nad.conflist",
                "lab_macvlan-net.nad.conflist"
            ],
            "{node}"
        );
        let sriov = json_file(&dir.join("lab_intel-net.nad.conflist"));
        assert_eq!(sriov["plugins"][0]["type"], "sriov");
    }

    // worker-1: VFs 0-1 of its E810 for intelnics, 2-3 for inteldpdk (the VF-range merge); the
    // status is what discovery found in its tree.
    let state = yaml_file(&root.join("worker-1/sriovnetworknodestate.yaml"));
    assert_eq!(state["kind"], "SriovNetworkNodeState");
    let iface = &state["spec"]["interfaces"][0];
    assert_eq!(iface["pciAddress"], "0000:3b:00.0");
    assert_eq!(iface["numVfs"], 4);
    let mut groups: Vec<(String, String, String)> = iface["vfGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["vfRange"].as_str().unwrap().to_owned(),
                g["resourceName"].as_str().unwrap().to_owned(),
                g["deviceType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("0-1".into(), "intelnics".into(), "netdevice".into()),
            ("2-3".into(), "inteldpdk".into(), "vfio-pci".into())
        ]
    );
    let status = state["status"]["interfaces"].as_array().unwrap();
    assert_eq!(status.len(), 2, "eno1 and ens1f0");
    assert_eq!(state["status"]["syncStatus"], "InProgress");

    // Its pools: the two kernel-bound VFs are healthy, the two that still wait for vfio-pci not.
    let pools = json_file(&root.join("worker-1/device-plugin-pools.json"));
    let health = |r: &str| -> Vec<String> {
        pools[r]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["id"].as_str().unwrap(),
                    d["health"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        health("openshift.io/intelnics"),
        ["0000:3c:00.0 Healthy", "0000:3c:00.1 Healthy"]
    );
    assert_eq!(
        health("openshift.io/inteldpdk"),
        ["0000:3c:00.2 Unhealthy", "0000:3c:00.3 Unhealthy"]
    );
    let upstream = json_file(&root.join("worker-1/etc/pcidp/config.json"));
    assert_eq!(upstream["resourceList"].as_array().unwrap().len(), 2);

    // worker-2 (storage label): the Mellanox port too; the control-plane node is not selected.
    let state2 = yaml_file(&root.join("worker-2/sriovnetworknodestate.yaml"));
    assert_eq!(state2["spec"]["interfaces"].as_array().unwrap().len(), 2);
    assert!(
        !root
            .join("control-plane-0/sriovnetworknodestate.yaml")
            .exists()
    );

    // The summary: the plan instead of sysfs writes, and every rejected object with its rule.
    for line in [
        "SriovNetwork sriov-network-operator/intel-net → NAD lab/intel-net",
        "SriovNetworkNodePolicy mlx-rdma: ready (Applied): 1 NIC(s) on 1 node(s)",
        "[change] PF 0000:3b:00.0 (ens1f0): VFs 2-3 → inteldpdk on vfio-pci: 2 to bind",
        "[change] PF 0000:5e:00.0 (ens2f0): sriov_numvfs 0 → 2",
        "SR-IOV: not selected by the node selector (no NodeState)",
        "pod lab/web: eth0 ← cluster-network, net1 ← lab/bridge-net, net2 ← lab/intel-net (openshift.io/intelnics)",
        "pod lab/db: eth0 ← cluster-network, data0 ← lab/macvlan-net",
        "rejected (2)",
        "examples/cluster/rejected/nad-without-type.yaml:1 NetworkAttachmentDefinition lab/broken-net: spec.config.type: is required",
        "examples/cluster/rejected/pod-unknown-network.yaml:1 Pod lab/lost: metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name: network attachment definition lab/no-such-net does not exist",
        "3 node(s), 2 NodeState(s), 1 NAD(s) rendered from SriovNetworks",
    ] {
        assert!(summary.contains(line), "missing {line:?} in:\n{summary}");
    }
    assert_eq!(
        snapshot(&trees),
        before,
        "the fake sysfs trees were written"
    );

    // A second pass over the same outputs changes nothing.
    let again = run_once("dir:examples/cluster", root);
    let summary = text(&again.stdout);
    assert!(again.status.success(), "{summary}");
    assert!(
        summary.contains(", 0 file(s) written, 2 object(s) rejected"),
        "{summary}"
    );
    assert!(!summary.contains("  wrote "), "{summary}");
}

#[test]
fn an_output_inside_the_folder_and_a_non_folder_source_are_refused() {
    let src = tempfile::tempdir().unwrap();
    let o = run_once(
        &format!("dir:{}", src.path().display()),
        &src.path().join("out"),
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("lies inside the manifest folder"),
        "{}",
        text(&o.stderr)
    );
    let o = run_once("kube", src.path());
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--source dir:PATH"),
        "{}",
        text(&o.stderr)
    );
}

/// Drains a child's standard output into a buffer (so it never blocks on a full pipe).
fn drain(child: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let b = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

fn wait_until(what: &str, output: &Mutex<String>, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; output so far:\n{}",
            output.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The child's exit status, if it exits within `within`.
fn exited_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the child on every exit path, so a failed assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn follow_mode_propagates_changes_to_the_folder() {
    let src = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/cluster"), src.path());
    let out = tempfile::tempdir().unwrap();
    let mut child = operator()
        .args(["run", "--source"])
        .arg(format!("dir:{}", src.path().display()))
        .arg("--host-root")
        .arg(out.path())
        .spawn()
        .unwrap();
    let output = drain(&mut child);
    let child = Running(child);
    let nad_dir = |node: &str| out.path().join(node).join("etc/cni/multus/net.d");
    wait_until("the first pass", &output, || {
        output.lock().unwrap().contains("object(s) rejected")
    });

    // A new NAD: its file appears on every node.
    let extra = src.path().join("extra.yaml");
    std::fs::write(
        &extra,
        r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: extra-net, namespace: lab}
spec:
  config: '{"cniVersion": "1.0.0", "name": "extra-net", "type": "ipvlan", "master": "eno1"}'
"#,
    )
    .unwrap();
    for node in ["worker-1", "worker-2", "control-plane-0"] {
        wait_until("the new NAD's file", &output, || {
            nad_dir(node).join("lab_extra-net.nad.conflist").exists()
        });
    }
    let file = json_file(&nad_dir("worker-1").join("lab_extra-net.nad.conflist"));
    assert_eq!(file["plugins"][0]["type"], "ipvlan");

    // A policy's node selector stops matching worker-2's storage label: its Mellanox port
    // leaves the NodeState.
    let sriov = src.path().join("sriov.yaml");
    let text = std::fs::read_to_string(&sriov).unwrap();
    std::fs::write(
        &sriov,
        text.replace(
            "node-role.kubernetes.io/storage: \"\"",
            "no-such-label: \"x\"",
        ),
    )
    .unwrap();
    let state = out.path().join("worker-2/sriovnetworknodestate.yaml");
    wait_until(
        "worker-2's NodeState without the Mellanox port",
        &output,
        || {
            std::fs::read_to_string(&state).is_ok_and(|s| {
                s.contains("policyName: intel-dpdk") && !s.contains("policyName: mlx-rdma")
            })
        },
    );
    // The pass's summary is printed once all its files are written.
    wait_until("the policy's verdict", &output, || {
        output
            .lock()
            .unwrap()
            .contains("SriovNetworkNodePolicy mlx-rdma: not ready (NoNodeSelected)")
    });

    // The NAD deleted: its files go.
    std::fs::remove_file(&extra).unwrap();
    for node in ["worker-1", "worker-2", "control-plane-0"] {
        wait_until("the deleted NAD's file to go", &output, || {
            !nad_dir(node).join("lab_extra-net.nad.conflist").exists()
        });
    }

    // A node leaves the folder: the run says so, and no longer uses its host tree.
    let nodes = src.path().join("nodes.yaml");
    let kept: Vec<String> = std::fs::read_to_string(&nodes)
        .unwrap()
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: control-plane-0"))
        .map(str::to_owned)
        .collect();
    std::fs::write(&nodes, kept.join("\n---\n")).unwrap();
    wait_until("the node's departure", &output, || {
        let o = output.lock().unwrap();
        o.contains("node control-plane-0: gone from the folder")
            && o.contains("nodes/control-plane-0: no Node object names it")
    });

    // SIGTERM ends the run cleanly.
    let mut child = child;
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status =
        exited_within(&mut child.0, Duration::from_secs(20)).expect("still running after SIGTERM");
    assert!(status.success(), "{status}");
}

/// Flags the agent cannot work with are refused before it starts, naming the flag: a
/// `multus-shim` without the `multus` beside it (the shim hands it what it does not forward: a
/// command it does not know, a config it cannot read, no daemon), or an age that is no number.
#[test]
fn the_agent_refuses_bad_flags_before_it_starts() {
    for (flags, says) in [
        (
            ["--multus-shim-binary", "/x"],
            "--multus-binary <MULTUS_BINARY>",
        ),
        (
            ["--cache-leftover-age-seconds", "soon"],
            "invalid value 'soon' for '--cache-leftover-age-seconds",
        ),
    ] {
        let mut child = operator()
            .args(["agent", "--node-name", "n1"])
            .args(flags)
            .env_remove("MULTUS_BINARY")
            .spawn()
            .unwrap();
        let Some(status) = exited_within(&mut child, Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("the agent started with {flags:?}");
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!status.success(), "{flags:?}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}
