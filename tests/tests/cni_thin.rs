//! The `multus` binary (thin mode) end to end: network namespaces stand in for pods, the fake
//! API server holds pods and NADs, and Debian's CNI plugins in /usr/lib/cni do the work.
//! Needs root (CI is root); fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::time::Duration;

use cni_common::*;
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

/// DEL releases everything with the API server stopped, after the pod is deleted, and with a
/// corrupt delegate list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_releases_everything_without_api_pod_or_cache() {
    let t = Cluster::start("tc", 43).await;
    let parent = t.veth_parent("tcP", "tcq");
    t.nad("team", "macnet", &macvlan_nad(parent.host_name()))
        .await;
    let conf = t.thin_config(json!({}));
    let mut pods = Vec::new();
    for (i, name) in ["gone", "corrupt", "noapi"].iter().enumerate() {
        let ann = json!([{"name":"macnet","ips":[format!("10.143.5.{}/24", 10 + i)]}]).to_string();
        let pod = t.pod("team", name, Some(&ann)).await;
        t.cni("ADD", &pod, &conf).expect_ok();
        assert_eq!(pod.netns_addrs().names(), vec!["eth0", "lo", "net1"]);
        pods.push(pod);
    }
    assert_eq!(t.host_local_allocations().len(), 3);

    t.delete_pod(&pods[0]).await;
    t.cni("DEL", &pods[0], &conf).expect_ok();
    assert_eq!(pods[0].netns_addrs().names(), vec!["lo"]);

    std::fs::write(t.cni_dir.join(&pods[1].container_id), b"{\"kind\": [oops").unwrap();
    t.cni("DEL", &pods[1], &conf).expect_ok();
    assert_eq!(pods[1].netns_addrs().names(), vec!["lo"]);

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
        assert!(err["msg"].as_str().unwrap().contains(text), "{name}: {err}");
        assert_eq!(pod.netns_addrs().names(), vec!["lo"], "{name}");
    }
    assert!(t.host_local_allocations().is_empty());
    let reasons = t.all_event_reasons().await;
    assert!(
        reasons.contains(&"NoNetworkFound".to_owned()),
        "{reasons:?}"
    );
}
