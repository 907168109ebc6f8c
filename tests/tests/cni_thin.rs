//! The `multus` binary (thin mode) end to end: network namespaces stand in for pods, the fake
//! API server holds pods and NADs, and Debian's CNI plugins in /usr/lib/cni do the work.
//! Needs root (CI is root); fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::process::Command;
use std::time::Duration;

use cni_common::*;
use multus_tests::harness::process::run_plugin;
use serde_json::json;

/// eth0 from bridge + host-local, net1 from macvlan on a veth parent with `static` IPAM from the
/// annotation's `ips` and `tuning` setting the annotation's `mac`, and `hd0` from host-device
/// moving a veth end; then DEL releases every interface and every host-local address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_every_interface_and_del_releases_everything() {
    let t = Cluster::start("ta", 41).await;
    let parent = t.veth_parent("taP", "taq");
    // Kept alive to the end of the test: the host-device plugin moves its peer into the pod.
    let _hostdev = t.veth_parent("taH", "tah");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    t.nad(
        "team",
        "hostdev",
        &json!({"cniVersion":"1.0.0","type":"host-device","device":"tah",
                "ipam":{"type":"static","addresses":[{"address":"10.141.7.5/24"}]}})
        .to_string(),
    )
    .await;
    let annotation = json!([
        {"name":"macnet","ips":["10.141.5.10/24"],"mac":"02:00:5e:10:00:01"},
        {"name":"hostdev","interface":"hd0"}
    ])
    .to_string();
    let pod = t.pod("team", "web", Some(&annotation)).await;
    let out = t.cni("ADD", &pod, &t.thin_config(json!({}))).expect_ok();
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["ips"][0]["address"], "10.141.1.2/24", "{out}");

    let addrs = pod.netns_addrs();
    assert_eq!(addrs.ipv4("eth0"), vec!["10.141.1.2/24"]);
    assert_eq!(addrs.ipv4("net1"), vec!["10.141.5.10/24"]);
    assert_eq!(addrs.mac("net1"), "02:00:5e:10:00:01");
    assert_eq!(addrs.ipv4("hd0"), vec!["10.141.7.5/24"]);
    assert_eq!(t.host_local_allocations().len(), 1);

    let status = t.network_status(&pod).await;
    let names: Vec<&str> = status.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ta-cluster", "team/macnet", "team/hostdev"]);
    assert_eq!(status[0]["interface"], "eth0");
    assert_eq!(status[0]["default"], true);
    assert_eq!(status[0]["ips"], json!(["10.141.1.2"]));
    assert_eq!(status[0]["mac"], addrs.mac("eth0"));
    assert_eq!(status[1]["interface"], "net1");
    assert_eq!(status[1]["mac"], "02:00:5e:10:00:01");
    assert_eq!(status[1]["ips"], json!(["10.141.5.10"]));
    assert_eq!(status[2]["interface"], "hd0");
    assert!(
        t.events(&pod)
            .await
            .iter()
            .filter(|r| *r == "AddedInterface")
            .count()
            == 3
    );

    t.cni("DEL", &pod, &t.thin_config(json!({}))).expect_ok();
    assert_eq!(pod.netns_addrs().names(), vec!["lo"]);
    assert!(t.host_local_allocations().is_empty());
    assert!(t.cache_files().is_empty(), "{:?}", t.cache_files());
    // DEL again: idempotent.
    t.cni("DEL", &pod, &t.thin_config(json!({}))).expect_ok();
}

/// The second delegate fails: the first is deleted again, nothing is left in the pod or in IPAM;
/// once the NAD is fixed, the retried ADD succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_add_rolls_back_and_a_retry_succeeds() {
    let t = Cluster::start("tb", 42).await;
    let parent = t.veth_parent("tbP", "tbq");
    t.nad("team", "macnet", &macvlan_nad("tb-no-such-link"))
        .await;
    let annotation = json!([{"name":"macnet","ips":["10.142.5.10/24"]}]).to_string();
    let pod = t.pod("team", "db", Some(&annotation)).await;
    let err = t.cni("ADD", &pod, &t.thin_config(json!({}))).expect_err();
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("team/db/") && msg.contains("team/macnet") && msg.contains("net1"),
        "{msg}"
    );
    assert_eq!(pod.netns_addrs().names(), vec!["lo"]);
    assert!(t.host_local_allocations().is_empty());

    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    t.cni("ADD", &pod, &t.thin_config(json!({}))).expect_ok();
    assert_eq!(pod.netns_addrs().ipv4("net1"), vec!["10.142.5.10/24"]);
    t.cni("DEL", &pod, &t.thin_config(json!({}))).expect_ok();
    assert_eq!(pod.netns_addrs().names(), vec!["lo"]);
    assert!(t.host_local_allocations().is_empty());
}

/// DEL releases everything with the API server stopped, after the pod is deleted, with a
/// corrupt delegate list, and without the pod's namespace (gone, as after a reboot: the runtime
/// sends no `CNI_NETNS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_releases_everything_without_api_pod_cache_or_netns() {
    let t = Cluster::start("tc", 43).await;
    let parent = t.veth_parent("tcP", "tcq");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    let conf = t.thin_config(json!({}));
    let mut pods = Vec::new();
    for (i, name) in ["gone", "corrupt", "noapi", "nonetns"].iter().enumerate() {
        let ann = json!([{"name":"macnet","ips":[format!("10.143.5.{}/24", 10 + i)]}]).to_string();
        let pod = t.pod("team", name, Some(&ann)).await;
        t.cni("ADD", &pod, &conf).expect_ok();
        assert_eq!(pod.netns_addrs().names(), vec!["eth0", "lo", "net1"]);
        pods.push(pod);
    }
    assert_eq!(t.host_local_allocations().len(), 4);

    t.delete_pod(&pods[0]).await;
    t.cni("DEL", &pods[0], &conf).expect_ok();
    assert_eq!(pods[0].netns_addrs().names(), vec!["lo"]);

    std::fs::write(t.cni_dir.join(&pods[1].container_id), b"{\"kind\": [oops").unwrap();
    t.cni("DEL", &pods[1], &conf).expect_ok();
    assert_eq!(pods[1].netns_addrs().names(), vec!["lo"]);

    let deleted = Command::new("ip")
        .args(["netns", "del", pods[3].netns.name()])
        .status()
        .unwrap();
    assert!(deleted.success());
    let mut env = cni_env("DEL", &pods[3], &pods[3].container_id);
    env.retain(|(k, _)| *k != "CNI_NETNS");
    let out = run_plugin(&t.binary, &env, conf.to_string().as_bytes()).unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        t.host_local_allocations().len(),
        1,
        "only noapi's address is left"
    );

    t.api.stop();
    let started = std::time::Instant::now();
    t.cni("DEL", &pods[2], &conf).expect_ok();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(pods[2].netns_addrs().names(), vec!["lo"]);
    assert!(t.host_local_allocations().is_empty());
    assert!(t.cache_files().is_empty(), "{:?}", t.cache_files());
}

/// Refusals, each a CNI error naming the problem, and nothing attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_cni_errors() {
    let t = Cluster::start("td", 44).await;
    t.nad("other", "private", &macvlan_nad("td-x")).await;
    t.nad(
        "team",
        "evil",
        &json!({"cniVersion":"1.0.0","type":"../../bin/sh"}).to_string(),
    )
    .await;
    let cases = [
        (
            "isolated",
            json!([{"name":"private","namespace":"other"}]),
            json!({"namespaceIsolation":true}),
            7,
            "namespace isolation",
        ),
        (
            "unknown",
            json!([{"name":"nope"}]),
            json!({}),
            7,
            "team/nope not found",
        ),
        (
            "pathlike",
            json!([{"name":"evil"}]),
            json!({}),
            7,
            "must be a bare binary name",
        ),
        (
            "notready",
            json!([]),
            json!({"readinessindicatorfile":"/nonexistent/ready","readinessIndicatorTimeoutSeconds":0.3}),
            11,
            "is the default network ready",
        ),
    ];
    for (name, ann, extra, code, text) in cases {
        let pod = t.pod("team", name, Some(&ann.to_string())).await;
        let err = t.cni("ADD", &pod, &t.thin_config(extra)).expect_err();
        assert_eq!(err["code"], code, "{name}: {err}");
        let msg = err["msg"].as_str().unwrap();
        assert!(msg.contains(text), "{name}: {err}");
        // Every resolution error names the pod; those about one network name it too.
        if code == 7 {
            let network = format!(
                "{}/{}",
                ann[0]["namespace"].as_str().unwrap_or("team"),
                ann[0]["name"].as_str().unwrap()
            );
            let prefix = format!("[team/{name}/{}:{network}]", pod.uid);
            assert!(msg.starts_with(&prefix), "{prefix} {err}");
        }
        assert_eq!(pod.netns_addrs().names(), vec!["lo"], "{name}");
    }
    // A sandbox whose namespace is gone: the error is the pod's, and says so.
    let pod = t.pod("team", "nonetns", Some("[]")).await;
    let mut env = cni_env("ADD", &pod, &pod.container_id);
    for (key, value) in &mut env {
        if *key == "CNI_NETNS" {
            *value = "/var/run/netns/td-gone".into();
        }
    }
    let out = run_plugin(
        &t.binary,
        &env,
        t.thin_config(json!({})).to_string().as_bytes(),
    )
    .unwrap();
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let prefix = format!("[team/nonetns/{}]", pod.uid);
    assert!(err["msg"].as_str().unwrap().starts_with(&prefix), "{err}");
    assert!(t.host_local_allocations().is_empty());
    let reasons = t.all_event_reasons().await;
    assert!(
        reasons.contains(&"NoNetworkFound".to_owned()),
        "{reasons:?}"
    );
}

/// The API server serves pods but fails every NetworkAttachmentDefinition request (503): the
/// NAD is taken from the node agent's rendering of it in `confDir`
/// (`<namespace>_<name>.nad.conflist`); a NAD with no rendering fails with code 11 and an error
/// naming the pod, the network and the file looked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nad_failures_fall_back_to_the_agents_rendered_files() {
    let t = Cluster::start("tf", 48).await;
    let parent = t.veth_parent("tfP", "tfq");
    // The API's copy would fail (no such parent link): it must not be the one used.
    t.nad("team", "macnet", &macvlan_nad("tf-no-such-link"))
        .await;
    // The rendered copy carries its own CNI name, so a lookup by CNI name would not find it.
    let mut rendered: serde_json::Value =
        serde_json::from_str(&macvlan_nad(parent.host_name())).unwrap();
    rendered["name"] = json!("macnet-rendered");
    render_nad(&t.conf_dir, "team", "macnet", &rendered);
    let proxy = FailingApi::start(t.api.url(), "network-attachment-definitions").await;
    let conf = t.thin_config(json!({"kubeconfig": proxy.kubeconfig}));

    let ann = json!([{"name":"macnet","ips":["10.148.5.10/24"]}]).to_string();
    let pod = t.pod("team", "web", Some(&ann)).await;
    t.cni("ADD", &pod, &conf).expect_ok();
    assert_eq!(pod.netns_addrs().ipv4("net1"), vec!["10.148.5.10/24"]);
    let status = t.network_status(&pod).await;
    assert_eq!(status[1]["name"], "team/macnet");
    t.cni("DEL", &pod, &conf).expect_ok();
    assert_eq!(pod.netns_addrs().names(), vec!["lo"]);

    // Another namespace's NAD whose CNI name is "unrendered": its rendering is found only as
    // other/unrendered, never by that name for team/unrendered (past namespace isolation).
    let mut elsewhere = rendered.clone();
    elsewhere["name"] = json!("unrendered");
    render_nad(&t.conf_dir, "other", "unrendered", &elsewhere);
    let ann = json!([{"name":"macnet","ips":["10.148.5.11/24"]},{"name":"unrendered"}]).to_string();
    let pod = t.pod("team", "db", Some(&ann)).await;
    let err = t.cni("ADD", &pod, &conf).expect_err();
    assert_eq!(err["code"], 11, "{err}");
    let msg = err["msg"].as_str().unwrap();
    for part in [
        format!("[team/db/{}:team/unrendered]", pod.uid),
        "interface net2".to_owned(),
        "etcd unavailable".to_owned(),
        "team_unrendered.nad.conflist".to_owned(),
    ] {
        assert!(msg.contains(&part), "{part:?} not in {msg}");
    }
    assert_eq!(pod.netns_addrs().names(), vec!["lo"]);
    assert!(t.host_local_allocations().is_empty());

    // `clusterNetwork` given by name, a plain confDir file (no NAD, so no rendering): with the
    // NAD lookup failing it is still named by its CNI name in network-status, as when the API
    // answers that there is no such NAD, not as a NAD of `multusNamespace`
    // ("kube-system/tf-cluster").
    std::fs::copy(&t.cluster_file, t.conf_dir.join("10-cluster.conflist")).unwrap();
    let by_name = |kubeconfig: &serde_json::Value| {
        t.thin_config(json!({"kubeconfig": kubeconfig, "clusterNetwork": "tf-cluster"}))
    };
    for (pod_name, kubeconfig) in [
        ("named-down", json!(proxy.kubeconfig)),
        ("named-up", json!(t.api.kubeconfig_path())),
    ] {
        let conf = by_name(&kubeconfig);
        let pod = t.pod("team", pod_name, None).await;
        t.cni("ADD", &pod, &conf).expect_ok();
        let status = t.network_status(&pod).await;
        assert_eq!(status[0]["name"], "tf-cluster", "{pod_name}: {status:?}");
        t.cni("DEL", &pod, &conf).expect_ok();
        assert_eq!(pod.netns_addrs().names(), vec!["lo"]);
    }
    assert!(t.host_local_allocations().is_empty());
}

/// CHECK covers NAD attachments too, GC releases every network of a container the runtime no
/// longer lists (and only those), and STATUS resolves a cluster network given as a NAD name from
/// the agent's rendered file when the API server is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_gc_and_status_cover_every_network() {
    let t = Cluster::start("tg", 49).await;
    let parent = t.veth_parent("tgP", "tgq");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    let conf = t.thin_config(json!({}));
    let mut pods = Vec::new();
    for (i, name) in ["kept", "collected"].iter().enumerate() {
        let ann = json!([{"name":"macnet","ips":[format!("10.149.5.{}/24", 10 + i)]}]).to_string();
        let pod = t.pod("team", name, Some(&ann)).await;
        t.cni("ADD", &pod, &conf).expect_ok();
        pods.push(pod);
    }
    assert_eq!(t.host_local_allocations().len(), 2);

    t.cni("CHECK", &pods[0], &conf).expect_ok();
    // The NAD's interface disappears behind the plugin's back: CHECK says which attachment.
    pods[1].netns.ip(&["link", "del", "net1"]).unwrap();
    let err = t.cni("CHECK", &pods[1], &conf).expect_err();
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("[team/collected/{}:team/macnet]", pods[1].uid))
            && msg.contains("net1"),
        "{err}"
    );

    // GC with only the first pod valid: the second pod's every attachment is released.
    let gc = t.thin_config(json!({"cni.dev/valid-attachments": [
        {"containerID": pods[0].container_id, "ifname": "eth0"}]}));
    t.cni("GC", &pods[0], &gc).expect_ok();
    assert_eq!(t.host_local_allocations().len(), 1);
    let left = t.cache_files().join(" ");
    assert!(left.contains(&pods[0].container_id), "{left}");
    assert!(!left.contains(&pods[1].container_id), "{left}");
    t.cni("CHECK", &pods[0], &conf).expect_ok();
    t.cni("DEL", &pods[0], &conf).expect_ok();
    assert!(t.host_local_allocations().is_empty());

    // STATUS: the cluster network is the NAD kube-system/cluster, the API is down, the agent's
    // rendering stands in; without a rendering STATUS says what is missing.
    let cluster: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&t.cluster_file).unwrap()).unwrap();
    let by_name = t.thin_config(json!({"clusterNetwork": "cluster"}));
    t.api.stop();
    let err = t.cni("STATUS", &pods[0], &by_name).expect_err();
    assert_eq!(err["code"], 11, "{err}");
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("kube-system_cluster.nad.conflist"),
        "{err}"
    );
    render_nad(&t.conf_dir, "kube-system", "cluster", &cluster);
    t.cni("STATUS", &pods[0], &by_name).expect_ok();
}

/// `default-route` on a NAD attachment: the pod's only IPv4 default route goes through that
/// interface to the requested gateway; the cluster network's default route is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_route_moves_the_pods_default_route() {
    let t = Cluster::start("th", 50).await;
    let parent = t.veth_parent("thP", "thq");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    let ann = json!([{"name":"macnet","ips":["10.150.5.10/24"],"default-route":["10.150.5.1"]}])
        .to_string();
    let pod = t.pod("team", "router", Some(&ann)).await;
    let conf = t.thin_config(json!({}));
    t.cni("ADD", &pod, &conf).expect_ok();
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            pod.netns.name(),
            "-4",
            "-j",
            "route",
            "show",
            "default",
        ])
        .output()
        .unwrap();
    let routes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["dev"], "net1", "{routes:?}");
    assert_eq!(routes[0]["gateway"], "10.150.5.1", "{routes:?}");
    let status = t.network_status(&pod).await;
    assert_eq!(status[1]["gateway"], json!(["10.150.5.1"]), "{status:?}");
    assert!(status[0].get("gateway").is_none(), "{status:?}");
    t.cni("DEL", &pod, &conf).expect_ok();
    assert_eq!(pod.netns_addrs().names(), vec!["lo"]);
    assert!(t.host_local_allocations().is_empty());
}

/// In-cluster credentials (no kubeconfig): the API server from KUBERNETES_SERVICE_HOST/PORT,
/// over TLS verified with the service account's CA, with its token; none without the variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_credentials_reach_the_api_over_tls() {
    use multus_tests::apiserver::{FakeApiServer, ServerConfig};
    let api = FakeApiServer::start_with(ServerConfig {
        tls: true,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let addr = multus_tests::apiserver::socket_addr(api.url()).unwrap();
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("ca.crt"), api.ca_pem().unwrap()).unwrap();
    std::fs::write(sa.path().join("token"), "test-token").unwrap();
    let env = |k: &str| match k {
        "KUBERNETES_SERVICE_HOST" => Some(addr.ip().to_string()),
        "KUBERNETES_SERVICE_PORT" => Some(addr.port().to_string()),
        _ => None,
    };
    let client = multus_cni::k8s::in_cluster_client(env, sa.path())
        .await
        .unwrap()
        .expect("a client");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let default = namespaces.get("default").await.unwrap();
    assert_eq!(default.metadata.name.as_deref(), Some("default"));

    assert!(
        multus_cni::k8s::in_cluster_client(|_| None, sa.path())
            .await
            .unwrap()
            .is_none()
    );
    std::fs::remove_file(sa.path().join("token")).unwrap();
    let Err(e) = multus_cni::k8s::in_cluster_client(env, sa.path()).await else {
        panic!("a client without a token");
    };
    assert!(e.to_string().contains("token"), "{e}");
}

/// ADD starts the cluster network's first plugin as soon as it has read its config, before it
/// looks the pod up (docs/decisions.md, "Plugins started ahead"), and gives it its config only
/// at its turn. When the guess holds that process is the one used (one start per call); when
/// the pod names another default network, or the ADD fails before that plugin's turn (here the
/// API is down), it is killed unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_network_s_first_plugin_starts_before_the_pod_is_looked_up() {
    let t = Cluster::start("hs", 63).await;
    let bin = t.dir.path().join("probes");
    std::fs::create_dir(&bin).unwrap();
    let record = t.dir.path().join("record");
    std::fs::create_dir(&record).unwrap();
    // Each probe notes its pid when started, and its command once it has read its config.
    for probe in ["first", "other"] {
        let script = format!(
            "#!/bin/sh\necho $$ >> '{dir}/{probe}.started'\nconf=$(cat)\n\
             echo \"$CNI_COMMAND\" >> '{dir}/{probe}.read'\n\
             [ \"$CNI_COMMAND\" = ADD ] && printf '{{\"cniVersion\":\"1.0.0\"}}'\nexit 0\n",
            dir = record.display()
        );
        let path = bin.join(probe);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let seen = |probe: &str, what: &str| {
        std::fs::read_to_string(record.join(format!("{probe}.{what}")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let cluster = t.dir.path().join("probe.conflist");
    std::fs::write(
        &cluster,
        json!({"cniVersion":"1.0.0","name":"hs-probe","plugins":[{"type":"first"}]}).to_string(),
    )
    .unwrap();
    // The debug log says whether a call used the process started early or killed it.
    let log = t.dir.path().join("multus.log");
    let conf = t.thin_config(json!({
        "clusterNetwork": cluster, "binDir": bin, "logLevel": "debug", "logFile": log
    }));
    let logged = |what: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| l.contains(what)).count()
    };
    let (used, killed) = (
        "using the plugin process started early",
        "started early is not this call's: killed unread",
    );
    t.nad(
        "team",
        "othernet",
        &json!({"cniVersion":"1.0.0","type":"other"}).to_string(),
    )
    .await;

    // The guess holds: the process started early is the one given the config.
    let pod = t.pod("team", "guessed", None).await;
    t.cni("ADD", &pod, &conf).expect_ok();
    assert_eq!(seen("first", "started").len(), 1);
    assert_eq!(seen("first", "read"), ["ADD"]);
    assert_eq!((logged(used), logged(killed)), (1, 0));
    // DEL's is started from the delegate list before its call is built, and used too.
    t.cni("DEL", &pod, &conf).expect_ok();
    assert_eq!(seen("first", "read"), ["ADD", "DEL"]);
    assert_eq!(seen("first", "started").len(), 2);
    assert_eq!((logged(used), logged(killed)), (2, 0));

    // The pod names another default network: the early process is killed unread (maybe
    // before its shell got to note its pid).
    let overridden = t
        .annotated_pod(
            "team",
            "overridden",
            &[(
                multus_crds::constants::DEFAULT_NETWORK_ANNOTATION,
                "team/othernet",
            )],
        )
        .await;
    t.cni("ADD", &overridden, &conf).expect_ok();
    assert_eq!((logged(used), logged(killed)), (2, 1));
    let started = seen("first", "started");
    assert!(started.len() <= 3, "{started:?}");
    if let Some(pid) = started.get(2) {
        assert!(multus_tests::harness::process::process_ended(
            pid.parse().unwrap()
        ));
    }
    assert_eq!(seen("first", "read"), ["ADD", "DEL"]);
    assert_eq!(seen("other", "read"), ["ADD"]);
    t.cni("DEL", &overridden, &conf).expect_ok();
    assert_eq!(seen("other", "read"), ["ADD", "DEL"]);
    assert_eq!((logged(used), logged(killed)), (3, 1));

    // The API is down: the plugin was started before the pod's lookup failed (2.5 s of
    // retries), and is killed unread.
    let before = seen("first", "started").len();
    let unreachable = t.pod("team", "unreachable", None).await;
    t.api.stop();
    let err = t.cni("ADD", &unreachable, &conf).expect_err();
    assert!(
        err["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("getting pod team/unreachable"),
        "{err}"
    );
    let started = seen("first", "started");
    assert_eq!(started.len(), before + 1, "{started:?}");
    assert!(multus_tests::harness::process::process_ended(
        started[before].parse().unwrap()
    ));
    assert_eq!(seen("first", "read"), ["ADD", "DEL"]);
}
