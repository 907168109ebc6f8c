//! A `clusterNetwork` (or `defaultNetworks` entry) naming a `.conflist` file is loaded with
//! libcni's sub-directory aggregation (multus-spec §2.2): plugins of `<dir>/<name>/*.conf` are
//! appended unless `loadOnlyInlinedPlugins`, and a list left with no plugin is an error. Resolved
//! through the library, no Kubernetes, temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use multus_cni::resolve::{Context, resolve};
use multus_cni::{Command, Error, Invocation};
use multus_crds::multus_config::MultusConfig;
use serde_json::{Value, json};

async fn resolve_with(config: Value) -> Result<Vec<multus_cni::cache::Delegate>, Error> {
    let config = MultusConfig::from_value(&config).unwrap();
    let inv = Invocation {
        command: Command::Add,
        container_id: "c1".into(),
        netns: "/var/run/netns/none".into(),
        ifname: "eth0".into(),
        args: String::new(),
        path: Vec::new(),
        config: Vec::new(),
    };
    let devinfo = tempfile::tempdir().unwrap();
    resolve(&Context::files_only(&config, &inv, devinfo.path())).await
}

fn types(d: &multus_cni::cache::Delegate) -> Vec<String> {
    d.config["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_owned())
        .collect()
}

fn write(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

/// `<dir>/10-k8s.conflist`: network `k8s`, a bridge plugin, and `extra` keys; returns its path.
fn k8s_conflist(dir: &Path, extra: Value) -> PathBuf {
    let file = dir.join("10-k8s.conflist");
    let mut list = json!({"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"}]});
    for (k, v) in extra.as_object().unwrap() {
        list[k] = v.clone();
    }
    write(&file, &list);
    file
}

fn multus(cluster: &Path, extra: Value) -> Value {
    let mut c = json!({"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus",
        "clusterNetwork": cluster, "confDir": "/nonexistent", "cniDir": "/nonexistent"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test]
async fn a_cluster_network_conflist_takes_its_sub_directory_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let file = k8s_conflist(dir.path(), json!({}));
    write(
        &dir.path().join("k8s/20-tuning.conf"),
        &json!({"type":"tuning"}),
    );
    write(
        &dir.path().join("k8s/10-portmap.conf"),
        &json!({"type":"portmap","capabilities":{"portMappings":true}}),
    );
    let delegates = resolve_with(multus(&file, json!({}))).await.unwrap();
    assert_eq!(types(&delegates[0]), ["bridge", "portmap", "tuning"]);
    assert_eq!(delegates[0].status_name, "k8s");

    // The same file as a `defaultNetworks` entry.
    let other = dir.path().join("other.conflist");
    write(
        &other,
        &json!({"cniVersion":"1.0.0","name":"other","plugins":[{"type":"macvlan"}]}),
    );
    write(&dir.path().join("other/a.conf"), &json!({"type":"sbr"}));
    let delegates = resolve_with(multus(&file, json!({"defaultNetworks":[other]})))
        .await
        .unwrap();
    assert_eq!(types(&delegates[1]), ["macvlan", "sbr"]);
    assert_eq!(delegates[1].ifname, "net1");
}

#[tokio::test]
async fn load_only_inlined_plugins_keeps_the_list_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = k8s_conflist(dir.path(), json!({"loadOnlyInlinedPlugins": true}));
    write(
        &dir.path().join("k8s/10-tuning.conf"),
        &json!({"type":"tuning"}),
    );
    let delegates = resolve_with(multus(&file, json!({}))).await.unwrap();
    assert_eq!(types(&delegates[0]), ["bridge"]);
}

#[tokio::test]
async fn a_conflist_without_plugins_takes_them_all_from_its_directory_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("10-k8s.conflist");
    write(&file, &json!({"cniVersion":"1.0.0","name":"k8s"}));
    let err = resolve_with(multus(&file, json!({}))).await.unwrap_err();
    assert!(err.to_string().contains("no plugin configs found"), "{err}");

    write(
        &dir.path().join("k8s/10-bridge.conf"),
        &json!({"type":"bridge"}),
    );
    let delegates = resolve_with(multus(&file, json!({}))).await.unwrap();
    assert_eq!(types(&delegates[0]), ["bridge"]);

    // A plugin file without `type` names itself in the error.
    write(&dir.path().join("k8s/20-broken.conf"), &json!({"mtu":1400}));
    let err = resolve_with(multus(&file, json!({}))).await.unwrap_err();
    assert!(err.to_string().contains("20-broken.conf"), "{err}");
}

#[tokio::test]
async fn aggregated_plugin_types_are_checked_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let file = k8s_conflist(dir.path(), json!({}));
    write(
        &dir.path().join("k8s/10-evil.conf"),
        &json!({"type":"../../bin/sh"}),
    );
    let err = resolve_with(multus(&file, json!({}))).await.unwrap_err();
    assert!(err.to_string().contains("../../bin/sh"), "{err}");
}
