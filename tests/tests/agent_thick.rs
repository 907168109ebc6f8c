//! Thick mode end to end with the agent hosting the daemon: the real `multus-operator agent`
//! (thick, its engine fed by its watch caches) against the fake API server, pods as network
//! namespaces, the real `multus-shim` (with `multus` beside it) that the agent installed, run
//! with the 00-multus config the agent generated,
//! Debian's plugins as delegates. Then SIGKILL mid-burst (ADDs and NAD changes in flight): no torn
//! file anywhere, the restarted agent sweeps the temporaries, and DEL releases everything. And the
//! hosted daemon reads device IDs from kubelet's PodResources socket under the host root. Needs
//! root; fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "agent_common/mod.rs"]
mod agent_common;
#[path = "cni_common/mod.rs"]
mod cni_common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_common::{Node, listing, read, until_async};
use cni_common::{PLUGINS, PodHandle, require_root_and_plugins, run_multus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::cni::NetworkConfigList;
use multus_crds::multus_config::MultusConfig;
use multus_tests::harness::netns::Netns;
use multus_tests::harness::process::{shim_binary, workspace_binary};
use multus_tests::kubelet::{FakeKubelet, pod_with_devices};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const PODS: usize = 12;

fn network(name: &str, bridge: &str, subnet: &str, ipam: &Path, gateway: bool) -> Value {
    json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"bridge","bridge":bridge,"isGateway":gateway,
        "ipam":{"type":"host-local","dataDir":ipam,"ranges":[[{"subnet":subnet}]]}}]})
}

async fn pod(node: &Node, i: usize) -> PodHandle {
    let name = format!("p{i}");
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "team",
                     "annotations": {multus_crds::constants::NETWORKS_ANNOTATION: "blue"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let api: Api<Pod> = Api::namespaced(node.client.clone(), "team");
    let created = api.create(&PostParams::default(), &p).await.unwrap();
    let ns = format!("agk-{name}");
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .output();
    PodHandle {
        namespace: "team".into(),
        name: name.clone(),
        uid: created.metadata.uid.unwrap_or_default(),
        container_id: format!("agk-{name}-cid"),
        netns: Netns::create(&ns).unwrap(),
    }
}

/// Create and change NADs `team/churn-0..20` until `stop`; how many writes the API took.
async fn churn_nads(client: kube::Client, stop: tokio_util::sync::CancellationToken) -> usize {
    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client, "team");
    let mut writes = 0;
    while !stop.is_cancelled() {
        let name = format!("churn-{}", writes % 20);
        let mut nad = NetworkAttachmentDefinition::new(&name, Default::default());
        nad.spec.config = Some(
            json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"bridge","bridge":format!("chb{writes}")}]})
                .to_string(),
        );
        let result = match api.get_opt(&name).await {
            Ok(Some(old)) => {
                nad.metadata.resource_version = old.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &nad).await
            }
            _ => api.create(&PostParams::default(), &nad).await,
        };
        if result.is_ok() {
            writes += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writes
}

/// Addresses host-local holds under `dir` (one file per address).
fn allocations(dir: &Path) -> Vec<String> {
    let Ok(nets) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    nets.flatten()
        .flat_map(|n| std::fs::read_dir(n.path()).unwrap().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with("last_reserved_ip") && f != "lock")
        .collect()
}

/// Every non-temporary regular file under `dir` that should be JSON parses as JSON.
fn assert_no_torn_file(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            assert_no_torn_file(&path);
        } else if ty.is_file()
            && !name.starts_with('.')
            && !name.ends_with(".log")
            && name != "lock"
        {
            let text = std::fs::read(&path).unwrap();
            let is_ipam = path.components().any(|c| c.as_os_str() == "ipam");
            if !is_ipam {
                assert!(
                    serde_json::from_slice::<Value>(&text).is_ok(),
                    "torn file {}: {:?}",
                    path.display(),
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_get_their_networks_through_the_agent_hosted_daemon_and_survive_sigkill() {
    require_root_and_plugins();
    let node = Node::start().await;
    let ipam = node.host("/var/lib/cni/networks");
    let conf = node.cni_conf_dir();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-cluster.conflist"),
        network("agk-cluster", "agkbr0", "10.220.1.0/24", &ipam, true).to_string(),
    )
    .unwrap();
    let blue = network("blue", "agkbr1", "10.221.1.0/24", &ipam, false).to_string();
    node.put_nad("team", "blue", &blue).await;
    let (multus, shim) = (workspace_binary("multus").unwrap(), shim_binary().unwrap());
    let flags = [
        "--cni-mode",
        "thick",
        "--daemon-max-concurrent",
        "4",
        "--multus-binary",
        multus.to_str().unwrap(),
        "--multus-shim-binary",
        shim.to_str().unwrap(),
    ];
    let mut agent = node.agent(&flags);
    let generated = conf.join("00-multus.conflist");
    until_async("00-multus", T, || generated.exists()).await;
    // The runtime runs what the agent installed: `multus-shim`, with `multus` beside it.
    let multus = node.host("/opt/cni/bin/multus-shim");
    assert_eq!(
        std::fs::read(&multus).unwrap(),
        std::fs::read(&shim).unwrap()
    );
    assert!(node.host("/opt/cni/bin/multus").is_file());
    let socket = node.host("/run/multus/multus.sock");
    until_async("daemon socket", T, || socket.exists()).await;
    until_async("ready", T, || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
    })
    .await;

    // What the runtime passes: the generated config as libcni reads it; the socket dir as the
    // host sees it under this test's root.
    let list = NetworkConfigList::parse(&read(&generated)).unwrap();
    let mut config = MultusConfig::from_network_config(&list).unwrap().to_value();
    assert_eq!(config["type"], "multus-shim");
    config["daemonSocketDir"] = json!(node.host("/run/multus"));

    let mut pods = Vec::new();
    for i in 0..PODS {
        pods.push(Arc::new(pod(&node, i).await));
    }
    // The first pod, then a burst with SIGKILL in the middle.
    let first = run_multus(&multus, "ADD", &pods[0], &config);
    assert!(first.success, "{} {}", first.stdout, first.stderr);
    let result: Value = serde_json::from_str(&first.stdout).unwrap();
    let addrs = pods[0].netns_addrs();
    assert_eq!(addrs.names(), vec!["eth0", "lo", "net1"]);
    assert_eq!(
        addrs.ipv4("eth0"),
        vec![result["ips"][0]["address"].as_str().unwrap()]
    );
    assert!(addrs.ipv4("net1")[0].starts_with("10.221.1."));
    let (_, metrics) = node.health("/metrics").await.unwrap();
    assert!(
        metrics.contains("multus_cni_requests_total{command=\"ADD\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("multus_agent_daemon_queue_depth"),
        "{metrics}"
    );

    // NADs changing all through the burst: the kill also lands while NAD files are written.
    let churning = tokio_util::sync::CancellationToken::new();
    let churn = tokio::spawn(churn_nads(node.client.clone(), churning.clone()));
    let burst: Vec<_> = pods[1..]
        .iter()
        .map(|p| {
            let (p, config, multus) = (Arc::clone(p), config.clone(), multus.clone());
            tokio::task::spawn_blocking(move || run_multus(&multus, "ADD", &p, &config))
        })
        .collect();
    // Kill once some of the burst holds addresses.
    until_async("burst under way", T, || allocations(&ipam).len() >= 4).await;
    agent.signal("-KILL");
    assert_eq!(agent.wait_exit(T), None);
    churning.cancel();
    let churned = churn.await.unwrap();
    assert!(churned > 0, "no NAD changed during the burst");
    let outcomes = futures::future::join_all(burst).await;
    let failed = outcomes
        .iter()
        .filter(|o| !o.as_ref().unwrap().success)
        .count();
    eprintln!(
        "burst: {} of {} ADDs failed when the agent was killed",
        failed,
        PODS - 1
    );
    // Everything the agent and the daemon write: CNI configs, NAD files, kubeconfig, cache.
    assert_no_torn_file(&node.host("/etc/cni"));
    assert_no_torn_file(&node.host("/var/lib/cni/multus"));

    // Restarted, the daemon serves DEL for every pod (as the runtime retries it) and everything
    // any ADD took is released.
    let _agent = node.agent(&flags);
    until_async("daemon back", T, || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
            && multus_cni::server::is_listening(&socket)
    })
    .await;
    // The restarted agent swept the killed one's temporaries and converged the NAD files.
    let nad_dir = node.multus_conf_dir();
    until_async("NAD temporaries swept", T, || {
        !listing(&nad_dir).iter().any(|f| f.contains(".tmp-"))
    })
    .await;
    assert!(nad_dir.join("team_blue.nad.conflist").exists());
    assert_no_torn_file(&node.host("/etc/cni"));
    for p in &pods {
        let out = run_multus(&multus, "DEL", p, &config);
        assert!(out.success, "DEL {}: {} {}", p.name, out.stdout, out.stderr);
    }
    assert_eq!(allocations(&ipam), Vec::<String>::new(), "addresses leaked");
    for p in &pods {
        assert_eq!(
            p.netns_addrs().names(),
            vec!["lo"],
            "{} keeps interfaces",
            p.name
        );
    }
    let _ = PLUGINS;
    for br in ["agkbr0", "agkbr1"] {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", br])
            .output();
    }
}

/// A plugin that writes its stdin to `<dir>/<command>-<ifname>.json` and succeeds.
fn recording_plugin(bin: &Path, record: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\ncat > '{}'/\"$CNI_COMMAND-$CNI_IFNAME.json\"\n\
         [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\"}}'\nexit 0\n",
        record.display()
    );
    std::fs::create_dir_all(bin).unwrap();
    std::fs::create_dir_all(record).unwrap();
    let path = bin.join("agk-record");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The agent-hosted daemon asks kubelet's PodResources API where the node has it — under the
/// host root — and hands the pod's device to the attachment of a NAD naming the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hosted_daemon_reads_device_ids_from_kubelet_under_the_host_root() {
    const RESOURCE: &str = "example.com/agk_vf";
    require_root_and_plugins();
    let node = Node::start().await;
    let record = node.host("/records");
    recording_plugin(&node.host("/opt/cni/bin"), &record);
    let conf = node.cni_conf_dir();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-cluster.conflist"),
        json!({"cniVersion":"1.0.0","name":"agk-dev-cluster","plugins":[{"type":"agk-record"}]})
            .to_string(),
    )
    .unwrap();
    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(node.client.clone(), "team");
    let mut nad = NetworkAttachmentDefinition::new("vf", Default::default());
    nad.metadata.annotations = Some(
        [(
            "k8s.v1.cni.cncf.io/resourceName".to_owned(),
            RESOURCE.to_owned(),
        )]
        .into(),
    );
    nad.spec.config = Some(
        json!({"cniVersion":"1.0.0","type":"agk-record","capabilities":{"deviceID":true}})
            .to_string(),
    );
    api.create(&PostParams::default(), &nad).await.unwrap();
    // Kubelet as the node runs it: its socket at the standard path under the host root.
    let kubelet = FakeKubelet::start(
        node.host("/var/lib/kubelet/device-plugins"),
        node.host("/var/lib/kubelet/pod-resources/kubelet.sock"),
    )
    .await
    .unwrap();

    let mut agent = node.agent(&["--cni-mode", "thick"]);
    let generated = conf.join("00-multus.conflist");
    until_async("00-multus", T, || generated.exists()).await;
    until_async("ready", T, || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
    })
    .await;
    let socket = node.host("/run/multus/multus.sock");
    until_async("daemon socket", T, || {
        multus_cni::server::is_listening(&socket)
    })
    .await;
    let list = NetworkConfigList::parse(&read(&generated)).unwrap();
    let mut config = MultusConfig::from_network_config(&list).unwrap().to_value();
    config["daemonSocketDir"] = json!(node.host("/run/multus"));

    let mut p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "dev", "namespace": "team",
                     "annotations": {multus_crds::constants::NETWORKS_ANNOTATION: "vf"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), "team");
    p = pods.create(&PostParams::default(), &p).await.unwrap();
    kubelet.set_pod_resources(vec![pod_with_devices(
        "team",
        "dev",
        RESOURCE,
        &["0000:03:00.4"],
    )]);
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", "agk-dev"])
        .output();
    let pod = PodHandle {
        namespace: "team".into(),
        name: "dev".into(),
        uid: p.metadata.uid.unwrap_or_default(),
        container_id: "agk-dev-cid".into(),
        netns: Netns::create("agk-dev").unwrap(),
    };

    let out = run_multus(&multus_binary(), "ADD", &pod, &config);
    assert!(
        out.success,
        "{} {}\n{}",
        out.stdout,
        out.stderr,
        agent.logs()
    );
    let net1: Value =
        serde_json::from_str(&read(&record.join("ADD-net1.json"))).expect("net1 not recorded");
    assert_eq!(net1["deviceID"], "0000:03:00.4", "{net1}");
    assert_eq!(net1["runtimeConfig"]["deviceID"], "0000:03:00.4", "{net1}");
    let eth0: Value = serde_json::from_str(&read(&record.join("ADD-eth0.json"))).unwrap();
    assert!(eth0.get("deviceID").is_none(), "{eth0}");

    // DEL hands the delegate what ADD gave it, kubelet no longer asked.
    drop(kubelet);
    let out = run_multus(&multus_binary(), "DEL", &pod, &config);
    assert!(out.success, "{} {}", out.stdout, out.stderr);
    let del: Value = serde_json::from_str(&read(&record.join("DEL-net1.json"))).unwrap();
    assert_eq!(del["deviceID"], "0000:03:00.4", "{del}");
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit(T), Some(0));
}

fn multus_binary() -> std::path::PathBuf {
    workspace_binary("multus").unwrap()
}

/// Set the soft limit of open files of process `pid` (util-linux `prlimit`).
fn set_nofile_soft_limit(pid: u32, soft: u64) {
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
        .status()
        .unwrap()
        .success();
    assert!(ok, "prlimit --nofile={soft}: for {pid}");
}

/// The soft limit of open files of process `pid`.
fn nofile_soft_limit(pid: u32) -> u64 {
    let out = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            "--nofile",
            "--raw",
            "--noheadings",
            "-o",
            "SOFT",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The hosted daemon outlives running out of file descriptors: a burst of connections past the
/// agent's limit makes its accepts fail (EMFILE); the daemon says so, keeps what it serves, and
/// answers again once descriptors are free. (It used to return from its accept loop, which
/// dropped every call in progress and stopped the agent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hosted_daemon_outlives_running_out_of_file_descriptors() {
    require_root_and_plugins();
    let node = Node::start().await;
    let conf = node.cni_conf_dir();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-cluster.conflist"),
        json!({"cniVersion":"1.0.0","name":"agk-fd-cluster","plugins":[{"type":"bridge"}]})
            .to_string(),
    )
    .unwrap();
    let mut agent = node.agent(&["--cni-mode", "thick"]);
    let socket = node.host("/run/multus/multus.sock");
    until_async("daemon socket", T, || {
        multus_cni::server::is_listening(&socket)
    })
    .await;

    let pid = agent.pid();
    let before = nofile_soft_limit(pid);
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    set_nofile_soft_limit(pid, open + 8);
    let silent: Vec<std::os::unix::net::UnixStream> = (0..40)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok())
        .collect();
    // The accepts fail within milliseconds; a second of them must not stop anything.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(agent.running(), "{}", agent.logs());
    assert!(
        agent
            .logs()
            .contains("accepting a connection on the daemon socket"),
        "no accept failed: the limit was not reached\n{}",
        agent.logs()
    );

    drop(silent);
    set_nofile_soft_limit(pid, before);
    let probe = socket.clone();
    until_async("the daemon to answer again", T, || {
        matches!(
            multus_cni::shim::request_blocking(&probe, "GET", "/healthz", &[]),
            Ok((200, _))
        )
    })
    .await;
    assert!(agent.running(), "{}", agent.logs());
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit(T), Some(0), "{}", agent.logs());
}
