//! Thick mode end to end: the real `multus-shim` (installed beside `multus`) forwarding to the
//! daemon server (started in-process, as the node agent hosts it), 50 pods at once, and what
//! happens when the daemon is gone: the shim hands the call to `multus`. Needs root; fails,
//! never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_common::*;
use multus_cni::ServerOptions;
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
