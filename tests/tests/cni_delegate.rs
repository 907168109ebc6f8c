//! The daemon's `/delegate` (multus-spec §3.16): networks hot-plugged into a running pod through
//! the real unix socket of the daemon server (started in-process, as the node agent hosts it),
//! with Debian's plugins in real network namespaces. Needs root; fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use cni_common::*;
use multus_cni::ServerOptions;
use serde_json::{Value, json};

/// One request to the daemon, off the runtime's threads (the shim's client blocks).
async fn request(
    socket: &Path,
    method: &'static str,
    uri: &'static str,
    body: Vec<u8>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        multus_cni::shim::request_blocking(&socket, method, uri, &body)
    })
    .await?
}

/// One `/delegate` call for `pod`, as multus-dynamic-networks-controller makes it.
async fn delegate(
    socket: &Path,
    command: &str,
    pod: &PodHandle,
    ifname: &str,
    config: &Value,
    attributes: Option<Value>,
) -> (u16, String) {
    let mut body = json!({
        "env": {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": pod.netns.path(),
            "CNI_IFNAME": ifname,
            "CNI_PATH": PLUGINS,
            "CNI_ARGS": format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                pod.namespace, pod.name, pod.container_id, pod.uid
            ),
        },
        "config": base64::engine::general_purpose::STANDARD.encode(config.to_string()),
    });
    if let Some(a) = attributes {
        body["interfaceAttributes"] = a;
    }
    let (status, bytes) = request(socket, "POST", "/delegate", body.to_string().into_bytes())
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A running pod of namespace `team`: the runtime's ADD through the daemon, with its cluster
/// network only.
async fn running_pod(t: &Cluster, daemon: &Daemon, name: &str) -> Arc<PodHandle> {
    let pod = Arc::new(t.pod("team", name, None).await);
    daemon.runtime("ADD", &pod).await.expect_ok();
    pod
}

/// The runtime's DEL of `pod` releases everything (interfaces, addresses, cache files), hot-
/// plugged attachments included; then the daemon stops.
async fn del_releases_everything(t: &Cluster, daemon: Daemon, pod: &Arc<PodHandle>) {
    daemon.runtime("DEL", pod).await.expect_ok();
    assert_eq!(pod.netns_addrs().names(), ["lo"]);
    assert!(t.host_local_allocations().is_empty());
    assert!(t.cache_files().is_empty(), "{:?}", t.cache_files());
    daemon.stop().await;
}

#[track_caller]
fn cni_error(status: u16, body: &str) -> Value {
    assert_eq!(status, 400, "{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a CNI error ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_hot_plugged_into_a_running_pod_and_released_with_it() {
    let t = Arc::new(Cluster::start("hd", 51).await);
    let parent = t.veth_parent("hdP", "hdq");
    let daemon = Daemon::start(&t, ServerOptions::default());
    let socket = daemon.socket.clone();

    // The pod starts with its cluster network only.
    let pod = running_pod(&t, &daemon, "hp").await;
    assert_eq!(t.host_local_allocations().len(), 1);
    let status_before = t.network_status(&pod).await;

    // ADD net1: macvlan with the requested address and MAC, cni-args in the plugin's config.
    let macnet: Value = serde_json::from_str(&macvlan_nad(parent.host_name())).unwrap();
    let (status, body) = delegate(
        &socket,
        "ADD",
        &pod,
        "net1",
        &macnet,
        Some(json!({"ips":["10.151.5.10/24"],"mac":"0a:58:0a:97:05:0a","cni-args":{"hotplug":"yes"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let result = &answer["Result"];
    assert_eq!(result["cniVersion"], "1.0.0", "{body}");
    assert_eq!(result["ips"][0]["address"], "10.151.5.10/24", "{body}");
    let addrs = pod.netns_addrs();
    assert_eq!(addrs.ipv4("net1"), vec!["10.151.5.10/24"]);
    assert_eq!(addrs.mac("net1"), "0a:58:0a:97:05:0a");
    // The plugins saw the attributes as an annotation element would give them.
    let record = std::fs::read_dir(t.cni_dir.join("results"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("net1"))
        .unwrap();
    let record: Value = serde_json::from_slice(&std::fs::read(record.path()).unwrap()).unwrap();
    let cached = &record["multus-rs.delegate"];
    assert_eq!(
        cached["config"]["plugins"][0]["args"]["cni"]["hotplug"],
        "yes"
    );
    assert!(
        cached["cniArgs"]
            .as_str()
            .unwrap()
            .contains("IP=10.151.5.10/24"),
        "{cached}"
    );
    assert!(t.events(&pod).await.contains(&"AddedInterface".to_owned()));
    // The controller that asked writes network-status; the daemon leaves it alone.
    assert_eq!(t.network_status(&pod).await, status_before);

    // CHECK against the cached result; STATUS of the network.
    let (status, body) = delegate(&socket, "CHECK", &pod, "net1", &macnet, None).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = delegate(&socket, "STATUS", &pod, "net1", &macnet, None).await;
    assert_eq!((status, body.as_str()), (200, ""));

    // The same interface twice: refused before any plugin runs.
    let (status, body) = delegate(&socket, "ADD", &pod, "net1", &macnet, None).await;
    let err = cni_error(status, &body);
    assert!(
        err["msg"].as_str().unwrap().contains("already exists"),
        "{err}"
    );
    assert_eq!(pod.netns_addrs().ipv4("net1"), vec!["10.151.5.10/24"]);

    // A bad attribute, a path-like type, GET: refused.
    let (status, body) = delegate(
        &socket,
        "ADD",
        &pod,
        "net3",
        &macnet,
        Some(json!({"mac":"not-a-mac"})),
    )
    .await;
    assert!(
        cni_error(status, &body)["msg"]
            .as_str()
            .unwrap()
            .contains("interfaceAttributes")
    );
    let evil = json!({"cniVersion":"1.0.0","name":"evil","type":"../../bin/sh"});
    for command in ["ADD", "STATUS"] {
        let (status, body) = delegate(&socket, command, &pod, "net3", &evil, None).await;
        assert!(
            cni_error(status, &body)["msg"]
                .as_str()
                .unwrap()
                .contains("../../bin/sh"),
            "{command}: {body}"
        );
    }
    let (status, _) = request(&socket, "GET", "/delegate", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 405);
    // Bodies that are not a request: a clear CNI error naming the part, nothing attached.
    for (body, part) in [
        ("not json".to_owned(), "request"),
        (
            json!({"env": {"CNI_COMMAND": "ADD"}, "config": "%%% not base64"}).to_string(),
            "config",
        ),
    ] {
        let (status, answer) = request(&socket, "POST", "/delegate", body.into_bytes())
            .await
            .unwrap();
        let msg = cni_error(status, &String::from_utf8_lossy(&answer))["msg"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.contains(part), "{msg}");
    }
    assert_eq!(pod.netns_addrs().names(), ["eth0", "lo", "net1"]);

    // A chain whose second plugin fails: the bridge and its host-local address are released.
    let bridged = |fail: bool| {
        let mut plugins = vec![json!({"type":"bridge","bridge":t.second_bridge(),
            "ipam":{"type":"host-local","dataDir":t.ipam_dir,"ranges":[[{"subnet":"10.151.9.0/24"}]]}})];
        if fail {
            plugins.push(json!({"type":"tuning","sysctl":{"net.ipv4.conf.net2.no_such_key":"1"}}));
        }
        json!({"cniVersion":"1.0.0","name":"bridged","plugins":plugins})
    };
    let (status, body) = delegate(&socket, "ADD", &pod, "net2", &bridged(true), None).await;
    let err = cni_error(status, &body);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("team/hp/") && msg.contains("bridged") && msg.contains("net2"),
        "{msg}"
    );
    assert_eq!(pod.netns_addrs().names(), ["eth0", "lo", "net1"]);
    assert_eq!(t.host_local_allocations().len(), 1, "only eth0's address");
    let (status, body) = delegate(&socket, "ADD", &pod, "net2", &bridged(false), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pod.netns_addrs().ipv4("net2").len(), 1);
    assert_eq!(t.host_local_allocations().len(), 2);

    // DEL net1 through /delegate.
    let (status, body) = delegate(&socket, "DEL", &pod, "net1", &macnet, None).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(pod.netns_addrs().names(), ["eth0", "lo", "net2"]);
    let (status, body) = delegate(&socket, "CHECK", &pod, "net1", &macnet, None).await;
    cni_error(status, &body);

    // A pod that is gone is not served (ADD semantics, multus-spec §3.17), for DEL too.
    t.delete_pod(&pod).await;
    let (status, body) = delegate(&socket, "DEL", &pod, "net2", &bridged(false), None).await;
    let err = cni_error(status, &body);
    assert!(err["msg"].as_str().unwrap().contains("not found"), "{err}");
    assert_eq!(err["code"], 3, "{err}");
    let (status, body) = delegate(&socket, "ADD", &pod, "net5", &macnet, None).await;
    cni_error(status, &body);
    assert_eq!(pod.netns_addrs().names(), ["eth0", "lo", "net2"]);

    // The runtime's DEL of the pod releases the hot-plugged network it never unplugged.
    del_releases_everything(&t, daemon, &pod).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hot_plugs_of_one_pod_are_all_recorded_and_released() {
    let t = Arc::new(Cluster::start("hc", 52).await);
    let parent = t.veth_parent("hcP", "hcq");
    let daemon = Daemon::start(&t, ServerOptions::default());
    let pod = running_pod(&t, &daemon, "many").await;

    // Six networks hot-plugged at once: each call reads the delegate list, adds its attachment
    // and writes the list back, so overlapping calls must not drop each other's.
    let macnet: Value = serde_json::from_str(&macvlan_nad(parent.host_name())).unwrap();
    let calls = (1..=6).map(|i| {
        let (socket, pod, macnet) = (daemon.socket.clone(), Arc::clone(&pod), macnet.clone());
        tokio::spawn(async move {
            let attributes = json!({"ips": [format!("10.152.5.{i}/24")]});
            let ifname = format!("net{}", 10 + i);
            delegate(&socket, "ADD", &pod, &ifname, &macnet, Some(attributes)).await
        })
    });
    for call in futures::future::join_all(calls).await {
        let (status, body) = call.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let list: Value = t.delegate_list(&pod);
    let mut listed: Vec<&str> = list["delegates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ifname"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        ["eth0", "net11", "net12", "net13", "net14", "net15", "net16"]
    );
    // And in the pod itself: every listed interface exists.
    assert_eq!(
        pod.netns_addrs().names(),
        [
            "eth0", "lo", "net11", "net12", "net13", "net14", "net15", "net16"
        ]
    );

    // The pod's DEL releases all of them.
    del_releases_everything(&t, daemon, &pod).await;
}

/// A container whose delegate list is gone (removed by hand, say): a hot-plugged attachment is
/// recorded by its result record before its plugin runs, no list is made up for it, and the
/// runtime's DEL, finding no list, releases it with the pod's own attachment from the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_plug_without_a_delegate_list_is_released_by_its_record() {
    let t = Arc::new(Cluster::start("hn", 54).await);
    let parent = t.veth_parent("hnP", "hnq");
    let daemon = Daemon::start(&t, ServerOptions::default());
    let socket = daemon.socket.clone();
    let pod = running_pod(&t, &daemon, "hl").await;
    let list = t.cni_dir.join(&pod.container_id);
    std::fs::remove_file(&list).unwrap();

    let macnet: Value = serde_json::from_str(&macvlan_nad(parent.host_name())).unwrap();
    let ips = json!({"ips":["10.154.5.10/24"]});
    let (status, body) = delegate(&socket, "ADD", &pod, "net1", &macnet, Some(ips)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pod.netns_addrs().ipv4("net1"), vec!["10.154.5.10/24"]);
    assert!(
        !list.exists(),
        "a list holding only net1 would hide eth0 from DEL"
    );
    let records = t.cache_files();
    assert_eq!(records.len(), 2, "eth0's and net1's records: {records:?}");

    del_releases_everything(&t, daemon, &pod).await;
}

/// A pod being deleted (here held by a finalizer) may already have had its sandbox's DEL: a
/// hot-plug ADD for it is refused before anything runs, since nothing would release it; the
/// runtime's DEL still releases what the pod has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_network_is_hot_plugged_into_a_pod_being_deleted() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams};
    let t = Arc::new(Cluster::start("hz", 60).await);
    let parent = t.veth_parent("hzP", "hzq");
    let daemon = Daemon::start(&t, ServerOptions::default());
    let socket = daemon.socket.clone();
    let pod = running_pod(&t, &daemon, "going").await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "team");
    let hold = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    pods.patch("going", &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    t.delete_pod(&pod).await;

    let macnet: Value = serde_json::from_str(&macvlan_nad(parent.host_name())).unwrap();
    let ips = json!({"ips":["10.160.5.10/24"]});
    let (status, body) = delegate(&socket, "ADD", &pod, "net1", &macnet, Some(ips)).await;
    let err = cni_error(status, &body);
    assert!(
        err["msg"].as_str().unwrap().contains("being deleted"),
        "{err}"
    );
    assert_eq!(pod.netns_addrs().names().len(), 2, "eth0 and lo only");
    assert_eq!(t.host_local_allocations().len(), 1, "eth0's address only");

    let release = json!({"metadata": {"finalizers": null}});
    del_releases_everything(&t, daemon, &pod).await;
    pods.patch("going", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
}
