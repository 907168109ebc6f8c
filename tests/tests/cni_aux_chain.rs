//! `auxiliaryCNIChainName` end to end with the thin `multus` binary (multus-spec §3.1 step 9): the
//! chain `passthru` + `<dir of clusterNetwork>/<chain>/*.conf` runs as the pod's last attachment
//! and DEL undoes it. Debian ships no `passthru`, so the test installs two shell-script CNI
//! plugins in a bin directory searched before Debian's: `passthru` and `marker` (which records
//! that it was added, and removes the record on DEL). Needs root; fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cni_common::*;
use serde_json::{Value, json};

/// What both scripts print for ADD: an empty result in the request's version (what passthru
/// prints when it is first in its chain, with no prevResult).
const EMPTY_RESULT: &str = r#"v=$(printf '%s' "$input" | sed -n 's/.*"cniVersion":"\([^"]*\)".*/\1/p')
printf '{"cniVersion":"%s"}' "${v:-1.0.0}""#;

fn install(bin: &Path, name: &str, body: &str) {
    let path = bin.join(name);
    let script = format!(
        "#!/bin/sh\ninput=$(cat)\ncase \"$CNI_COMMAND\" in\nVERSION) printf '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}}' ;;\n{body}\n*) ;;\nesac\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `passthru` and `marker` in a new bin directory; `marker` keeps `<marks>/<container>-<ifname>`.
fn script_plugins(root: &Path) -> (PathBuf, PathBuf) {
    let bin = root.join("bin");
    let marks = root.join("marks");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&marks).unwrap();
    install(&bin, "passthru", &format!("ADD) {EMPTY_RESULT} ;;"));
    let mark = format!("{}/\"$CNI_CONTAINERID-$CNI_IFNAME\"", marks.display());
    install(
        &bin,
        "marker",
        &format!(
            "ADD) touch {mark}; {EMPTY_RESULT} ;;\nDEL) rm -f {mark} ;;\nCHECK) [ -e {mark} ] || {{ printf '{{\"code\":100,\"msg\":\"not marked\"}}'; exit 1; }} ;;"
        ),
    );
    (bin, marks)
}

fn marks(dir: &Path) -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auxiliary_chain_runs_last_and_del_undoes_it() {
    let t = Cluster::start("tx", 53).await;
    let parent = t.veth_parent("txP", "txq");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    let (bin, mark_dir) = script_plugins(t.dir.path());
    let config = t.thin_config(json!({"auxiliaryCNIChainName": "aux", "binDir": bin}));
    let annotation = json!([{"name":"macnet","ips":["10.153.5.10/24"]}]).to_string();

    // No `<dir>/aux/*.conf` yet: only passthru, so no auxiliary attachment at all.
    let pod = t.pod("team", "plain", Some(&annotation)).await;
    t.cni("ADD", &pod, &config).expect_ok();
    let list: Value = t.delegate_list(&pod);
    assert_eq!(list["delegates"].as_array().unwrap().len(), 2, "{list}");
    assert!(marks(&mark_dir).is_empty());
    t.cni("DEL", &pod, &config).expect_ok();

    // The chain's plugins beside the cluster network: it becomes net2, after every network.
    let aux_dir = t.dir.path().join("aux");
    std::fs::create_dir(&aux_dir).unwrap();
    std::fs::write(aux_dir.join("10-marker.conf"), r#"{"type":"marker"}"#).unwrap();
    let pod = t.pod("team", "web", Some(&annotation)).await;
    t.cni("ADD", &pod, &config).expect_ok();
    assert_eq!(marks(&mark_dir), [format!("{}-net2", pod.container_id)]);
    let list: Value = t.delegate_list(&pod);
    let aux = &list["delegates"][2];
    assert_eq!(aux["statusName"], "aux", "{list}");
    let types: Vec<&str> = aux["config"]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["passthru", "marker"]);
    // No interface, so no network-status entry (multus-spec §3.7).
    let status = t.network_status(&pod).await;
    assert_eq!(status.len(), 2, "{status:?}");
    assert_eq!(pod.netns_addrs().ipv4("net1"), vec!["10.153.5.10/24"]);
    t.cni("CHECK", &pod, &config).expect_ok();

    t.cni("DEL", &pod, &config).expect_ok();
    assert!(marks(&mark_dir).is_empty(), "DEL undoes the chain");
    assert_eq!(pod.netns_addrs().names(), ["lo"]);
    assert!(t.host_local_allocations().is_empty());
    assert!(t.cache_files().is_empty(), "{:?}", t.cache_files());

    // DEL with no cache at all still finds the chain from the config.
    t.cni("ADD", &pod, &config).expect_ok();
    assert_eq!(marks(&mark_dir), [format!("{}-net2", pod.container_id)]);
    for f in t.cache_files() {
        std::fs::remove_file(f).unwrap();
    }
    t.cni("DEL", &pod, &config).expect_ok();
    assert!(marks(&mark_dir).is_empty());
    assert!(t.host_local_allocations().is_empty());

    // A clusterNetwork that is not a path has no directory for the chain: refused before
    // anything runs.
    let named = t.conf_dir.join("10-cluster.conflist");
    std::fs::copy(&t.cluster_file, &named).unwrap();
    let by_name = t.thin_config(
        json!({"auxiliaryCNIChainName": "aux", "binDir": bin, "clusterNetwork": "tx-cluster"}),
    );
    let pod = t.pod("team", "named", None).await;
    let err = t.cni("ADD", &pod, &by_name).expect_err();
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("auxiliaryCNIChainName") && msg.contains("tx-cluster"),
        "{msg}"
    );
    assert_eq!(pod.netns_addrs().names(), ["lo"]);
    assert!(t.host_local_allocations().is_empty());
}
