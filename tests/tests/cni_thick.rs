//! Thick mode end to end: the real `multus-shim` (installed beside `multus`) forwarding to the
//! daemon server (started in-process, as the node agent hosts it), 50 pods at once, and what
//! happens when the daemon is gone: the shim hands the call to `multus`; and a call the runtime
//! gives up on. Needs root; fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_common::*;
use multus_cni::ServerOptions;
use multus_tests::harness::wait::wait_for;
use serde_json::{Value, json};

const PODS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_pods_through_the_daemon_then_the_daemon_stops() {
    let t = Arc::new(Cluster::start("tt", 46).await);
    let parent = t.veth_parent("ttP", "ttq");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;

    let daemon = Daemon::start(
        &t,
        ServerOptions {
            max_concurrent: 8,
            max_queued: 64,
            ..ServerOptions::default()
        },
    );
    let shim = daemon.shim.clone();
    let shim_binary = daemon.shim_binary.clone();

    let mut pods = Vec::with_capacity(PODS);
    for i in 0..PODS {
        let ann = json!([{"name":"macnet","ips":[format!("10.146.5.{}/24", 10 + i)]}]).to_string();
        pods.push(Arc::new(t.pod("team", &format!("p{i}"), Some(&ann)).await));
    }
    let run_all = |command: &'static str| {
        let handles: Vec<_> = pods
            .iter()
            .map(|pod| {
                let (pod, shim, binary) = (Arc::clone(pod), shim.clone(), shim_binary.clone());
                tokio::task::spawn_blocking(move || run_multus(&binary, command, &pod, &shim))
            })
            .collect();
        futures::future::join_all(handles)
    };
    let outcomes = run_all("ADD").await;
    let mut eth0 = BTreeSet::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        let out = o.unwrap().expect_ok();
        let result: Value = serde_json::from_str(&out).unwrap();
        let addrs = pods[i].netns_addrs();
        assert_eq!(
            addrs.ipv4("eth0"),
            vec![result["ips"][0]["address"].as_str().unwrap()]
        );
        assert_eq!(addrs.ipv4("net1"), vec![format!("10.146.5.{}/24", 10 + i)]);
        eth0.insert(addrs.ipv4("eth0")[0].clone());
        let status = t.network_status(&pods[i]).await;
        assert_eq!(status.len(), 2);
        assert_eq!(status[1]["name"], "team/macnet");
    }
    assert_eq!(eth0.len(), PODS, "every pod has its own address");
    assert_eq!(t.host_local_allocations().len(), PODS);

    for o in run_all("DEL").await {
        o.unwrap().expect_ok();
    }
    assert!(t.host_local_allocations().is_empty());
    assert!(pods.iter().all(|p| p.netns_addrs().names() == ["lo"]));

    // One pod attached while the daemon runs, then the daemon goes away.
    run_multus(&shim_binary, "ADD", &pods[0], &shim).expect_ok();
    let attached = pods[0].netns_addrs().names();
    // Another sandbox in that pod's namespace, whose eth0 is taken: the daemon checks the
    // namespace while it writes the delegate list, and refuses the ADD before any plugin runs;
    // no list is left for that sandbox.
    let other = format!("{}-other", pods[0].container_id);
    let err = run_multus_as(&shim_binary, "ADD", &pods[0], &other, &shim).expect_err();
    let msg = err["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("\"eth0\" already exists"), "{err}");
    assert!(!t.cni_dir.join(&other).exists(), "the refused ADD's list");
    assert_eq!(pods[0].netns_addrs().names(), attached);
    daemon.stop().await;

    // ADD: a bounded wait, then "try again later" with nothing attached.
    let started = Instant::now();
    let err = run_multus(&shim_binary, "ADD", &pods[1], &shim).expect_err();
    assert_eq!(err["code"], 11, "{err}");
    assert!(
        err["msg"].as_str().unwrap().contains("unreachable"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(pods[1].netns_addrs().names(), ["lo"]);

    // DEL: runs in-process from the cache and releases everything.
    run_multus(&shim_binary, "DEL", &pods[0], &shim).expect_ok();
    assert_eq!(pods[0].netns_addrs().names(), ["lo"]);
    assert!(t.host_local_allocations().is_empty());
}

/// A delegate that never answers an ADD: it leaves its process ID beside itself, then sleeps
/// in the same process.
const HANGING_PLUGIN: &str = r#"#!/bin/sh
[ "$CNI_COMMAND" = ADD ] || exit 0
dir=$(dirname "$0")
echo $$ > "$dir/hang.pid.tmp" && mv "$dir/hang.pid.tmp" "$dir/hang.pid"
exec sleep 600
"#;

/// Processes a failing test must not leave behind: killed when dropped, unless the test has
/// seen them end and emptied the list.
struct KillOnDrop {
    pids: Vec<u32>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
        }
    }
}

/// Whether `pid` still runs (a zombie waiting to be reaped does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

/// The runtime gives up on an ADD whose delegate hangs and kills `multus-shim`: the daemon sees
/// the connection close, kills the delegate and frees the call's slot (the only one here) for
/// the next pod; the runtime's DEL then releases what the abandoned ADD had attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_runtime_gives_up_on_kills_its_delegate_and_frees_its_slot() {
    let t = Cluster::start("tk", 55).await;
    let plugins = t.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for p in ["bridge", "host-local"] {
        std::os::unix::fs::symlink(Path::new(PLUGINS).join(p), plugins.join(p)).unwrap();
    }
    let hang = plugins.join("hang");
    std::fs::write(&hang, HANGING_PLUGIN).unwrap();
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.nad("team", "stuck", r#"{"cniVersion":"1.0.0","type":"hang"}"#)
        .await;
    let daemon = Daemon::start_with_plugins(
        &t,
        ServerOptions {
            max_concurrent: 1,
            max_queued: 4,
            ..ServerOptions::default()
        },
        &plugins,
    );
    let stuck = Arc::new(t.pod("team", "stuck", Some(r#"[{"name":"stuck"}]"#)).await);
    let next = Arc::new(t.pod("team", "next", None).await);

    let mut shim = spawn_multus(&daemon.shim_binary, "ADD", &stuck, &daemon.shim);
    let mut leftovers = KillOnDrop {
        pids: vec![shim.id()],
    };
    let pid_file = plugins.join("hang.pid");
    let hanging: u32 = wait_for(
        "the hanging delegate to run",
        Duration::from_secs(20),
        || {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok());
            async move { pid }
        },
    )
    .await
    .unwrap();
    leftovers.pids.push(hanging);
    assert!(running(hanging));
    shim.kill().unwrap();
    shim.wait().unwrap();
    wait_for(
        "the abandoned call's delegate to be killed",
        Duration::from_secs(10),
        || async move { (!running(hanging)).then_some(()) },
    )
    .await
    .unwrap();
    // Both are gone: their IDs may go to other processes now.
    leftovers.pids.clear();

    let added = tokio::time::timeout(Duration::from_secs(20), daemon.runtime("ADD", &next))
        .await
        .expect("the abandoned call's slot was not freed");
    added.expect_ok();
    assert_eq!(next.netns_addrs().names(), ["eth0", "lo"]);
    // Nothing counts the abandoned call as running or queued any more; it is counted as
    // abandoned.
    let socket = daemon.socket.clone();
    let (status, metrics) = tokio::task::spawn_blocking(move || {
        multus_cni::shim::request_blocking(&socket, "GET", "/metrics", &[]).unwrap()
    })
    .await
    .unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    assert_eq!(status, 200);
    for gauge in [
        "multus_cni_requests_in_flight 0",
        "multus_cni_requests_queued 0",
        "multus_cni_requests_abandoned_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == gauge), "{gauge}: {metrics}");
    }

    // The runtime's DEL of the abandoned sandbox releases the cluster network it got.
    daemon.runtime("DEL", &stuck).await.expect_ok();
    daemon.runtime("DEL", &next).await.expect_ok();
    assert_eq!(stuck.netns_addrs().names(), ["lo"]);
    assert!(t.host_local_allocations().is_empty());
    daemon.stop().await;
}

/// Upstream's Go `multus-shim` reads the daemon's `Result` as a CNI 1.0.0 result and converts
/// it to the config's version itself (multus-spec §3.16); ours prints `printed`, already in that
/// version. With a 0.3.1 config, `Result` must be 1.0.0 (upstream's shim would otherwise print
/// addresses without the `version` 0.3.1 requires) and `printed` 0.3.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_answers_result_in_1_0_0_and_printed_in_the_configs_version() {
    use base64::Engine as _;
    let t = Cluster::start("tv", 57).await;
    let daemon = Daemon::start(&t, ServerOptions::default());
    let pod = Arc::new(t.pod("team", "older", None).await);
    let mut config = daemon.shim.clone();
    config["cniVersion"] = json!("0.3.1");
    let env: serde_json::Map<String, Value> = cni_env("ADD", &pod, &pod.container_id)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    let body = json!({
        "env": env,
        "config": base64::engine::general_purpose::STANDARD.encode(config.to_string()),
    })
    .to_string();
    let socket = daemon.socket.clone();
    let (status, answer) = tokio::task::spawn_blocking(move || {
        multus_cni::shim::request_blocking(&socket, "POST", "/cni", body.as_bytes())
    })
    .await
    .unwrap()
    .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 200, "{answer}");
    let result = &answer["Result"];
    assert_eq!(result["cniVersion"], "1.0.0", "{answer}");
    assert!(result["ips"][0]["address"].is_string(), "{answer}");
    assert!(result["ips"][0].get("version").is_none(), "{answer}");
    let printed: Value = serde_json::from_str(answer["printed"].as_str().unwrap()).unwrap();
    assert_eq!(printed["cniVersion"], "0.3.1", "{answer}");
    assert_eq!(printed["ips"][0]["version"], "4", "{answer}");
    assert_eq!(printed["ips"][0]["address"], result["ips"][0]["address"]);

    daemon.runtime("DEL", &pod).await.expect_ok();
    assert_eq!(pod.netns_addrs().names(), ["lo"]);
    daemon.stop().await;
}

/// A client that sends a head and then stalls its body is refused once `request_read_timeout`
/// has passed, and one that sends nothing at all (a stuck or stopped shim) is dropped then:
/// neither holds the daemon. Once the daemon is stopping its socket is gone at once, so a shim
/// hands its call to `multus` instead of queueing behind the drain, and the drain ends when the
/// silent client is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_dropped_and_a_stopping_daemon_refuses_new_calls() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    const PATIENCE: Duration = Duration::from_millis(1500);
    let t = Cluster::start("tw", 58).await;
    let daemon = Daemon::start(
        &t,
        ServerOptions {
            request_read_timeout: PATIENCE,
            ..ServerOptions::default()
        },
    );
    let socket = daemon.socket.clone();
    let started = Instant::now();
    let refused = tokio::task::spawn_blocking(move || {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"POST /cni HTTP/1.1\r\nhost: dummy\r\ncontent-length: 100\r\n\r\n{")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map(|_| answer)
    })
    .await
    .unwrap()
    .expect("an answer before the client's own 10 s");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(
        refused.contains("request body: not whole after"),
        "{refused}"
    );
    assert!(started.elapsed() >= PATIENCE);

    let silent = UnixStream::connect(&daemon.socket).unwrap();
    let socket = daemon.socket.clone();
    let stopping = tokio::spawn(daemon.stop());
    wait_for("the stopping daemon's socket to go", PATIENCE / 2, || {
        let gone = !socket.exists();
        async move { gone.then_some(()) }
    })
    .await
    .expect("the socket is removed before the drain, not after it");
    assert!(!multus_cni::server::is_listening(&socket));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the drain ends once the silent client is dropped")
        .unwrap();
    drop(silent);
}

/// The agent's pod watch has not yet seen a pod recreated under its name (a StatefulSet's): its
/// cache still holds the old pod. The daemon's ADD for the new pod's UID asks the API server
/// instead of refusing the call for a UID mismatch; an ADD naming the old UID is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_recreated_under_its_name_is_looked_up_past_the_caches_old_copy() {
    use k8s_openapi::api::core::v1::Pod;
    use multus_cni::{Engine, Invocation};
    struct Stale(Pod);
    impl multus_cni::k8s::ObjectCache for Stale {
        fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
            let meta = &self.0.metadata;
            (meta.namespace.as_deref() == Some(namespace) && meta.name.as_deref() == Some(name))
                .then(|| self.0.clone())
        }
        fn nad(&self, _: &str, _: &str) -> Option<multus_crds::NetworkAttachmentDefinition> {
            None
        }
    }
    let t = Cluster::start("ty", 59).await;
    let pod = t.pod("team", "sts-0", None).await;
    let mut old: Pod = kube::Api::namespaced(t.client.clone(), "team")
        .get("sts-0")
        .await
        .unwrap();
    old.metadata.uid = Some("0ld-uid".into());
    let engine: Engine = t.agent_engine().with_cache(Arc::new(Stale(old)));
    let config =
        multus_crds::multus_config::MultusConfig::from_value(&t.thin_config(json!({}))).unwrap();
    let call = |command: &str, uid: &str| {
        let mut env = cni_env(command, &pod, &pod.container_id);
        for (key, value) in &mut env {
            if *key == "CNI_ARGS" {
                *value = value.replace(&pod.uid, uid);
            }
        }
        Invocation::from_env(
            |k| env.iter().find(|(e, _)| *e == k).map(|(_, v)| v.clone()),
            Vec::new(),
        )
        .unwrap()
    };
    let refused = engine
        .run_config(&call("ADD", "0ld-uid-not-this"), &config)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("UID"), "{refused}");
    engine
        .run_config(&call("ADD", &pod.uid), &config)
        .await
        .unwrap();
    assert_eq!(pod.netns_addrs().names().len(), 2, "eth0 and lo");
    engine
        .run_config(&call("DEL", &pod.uid), &config)
        .await
        .unwrap();
    assert_eq!(pod.netns_addrs().names(), ["lo"]);
}

/// The DaemonSet mounts the host's `/run/multus` as the socket directory: binding empties the
/// mount point of a previous daemon's leftovers and keeps it (0700), where removing the
/// directory failed with `EBUSY` and the agent could not start in thick mode.
#[test]
fn the_daemon_binds_in_a_socket_directory_that_is_a_mount_point() {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    require_root_and_plugins();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-multus");
    std::fs::create_dir(&run).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&run)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs on {}", run.display());
    let _unmount = Unmount(run.clone());
    std::fs::write(run.join("multus.sock"), "a stale socket's file").unwrap();
    std::fs::create_dir(run.join("leftover")).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let server = multus_cni::DaemonServer::new(
        multus_cni::Engine::new(multus_cni::EngineOptions::default(), None),
        ServerOptions {
            socket_dir: run.clone(),
            ..ServerOptions::default()
        },
    );
    let listener = server.bind().expect("bind in a mount point");
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["multus.sock"]);
    assert!(
        std::fs::metadata(run.join("multus.sock"))
            .unwrap()
            .file_type()
            .is_socket()
    );
    let mode = std::fs::metadata(&run).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    drop(listener);
}
