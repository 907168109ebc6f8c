//! The agent's CNI files end to end: the real `multus-operator agent` against the fake API
//! server and a host root of plain directories. NADs created, changed and deleted become files
//! that appear, change and vanish (the latency is measured); a restart with NADs deleted while the
//! agent was down converges; the primary config replaced regenerates 00-multus; a rotated token
//! rewrites the kubeconfig; SIGTERM leaves 00-multus in place; the manifest-directory source
//! drives the same engine without an API server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent_common;

use std::time::Duration;

use agent_common::*;
use multus_tests::harness::process::workspace_binary;

const T: Duration = Duration::from_secs(20);

fn primary(name: &str) -> String {
    bridge(name, "cni0")
}

/// A node whose CNI config dir holds a primary config, and an empty NAD file dir; returns both
/// dirs.
async fn node_with_primary() -> (Node, std::path::PathBuf, std::path::PathBuf) {
    let node = Node::start().await;
    let conf = node.cni_conf_dir();
    let nads = node.multus_conf_dir();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&nads).unwrap();
    std::fs::write(conf.join("10-pods.conflist"), primary("pods")).unwrap();
    (node, conf, nads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nads_become_files_and_the_node_config_follows_its_inputs() {
    let (node, conf, nads) = node_with_primary().await;
    // A file the agent did not write: never touched.
    std::fs::write(nads.join("static.conf"), bridge("static", "br9")).unwrap();
    let multus = workspace_binary("multus").unwrap();

    let mut agent = node.agent(&[
        "--cni-mode",
        "thin",
        "--multus-binary",
        multus.to_str().unwrap(),
    ]);
    let out = conf.join("00-multus.conflist");
    until_async("00-multus", T, || out.exists()).await;
    let generated: serde_json::Value = serde_json::from_str(&read(&out)).unwrap();
    assert_eq!(generated["plugins"][0]["type"], "multus");
    assert_eq!(generated["plugins"][0]["delegates"][0]["name"], "pods");
    let kubeconfig = conf.join("multus.d/multus.kubeconfig");
    until_async("kubeconfig", T, || read(&kubeconfig).contains("token-1")).await;
    assert_eq!(
        std::fs::read(node.host("/opt/cni/bin/multus")).unwrap(),
        std::fs::read(&multus).unwrap()
    );
    // No `--multus-shim-binary`: `multus` serves as the shim too, so a thick config finds it.
    assert_eq!(
        std::fs::read(node.host("/opt/cni/bin/multus-shim")).unwrap(),
        std::fs::read(&multus).unwrap()
    );
    until_async("ready", T, || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
    })
    .await;

    // Created, changed, deleted; the latency from the API write to the file.
    let a = nads.join("team_a.nad.conflist");
    let b = nads.join("other_b.nad.conflist");
    node.put_nad("team", "a", &bridge("a", "br1")).await;
    let created = until_async("a written", T, || read(&a).contains("br1")).await;
    node.put_nad("other", "b", &bridge("b", "br2")).await;
    until_async("b written", T, || b.exists()).await;
    let mut latencies = vec![created];
    for i in 0..20 {
        let br = format!("brx{i}");
        node.put_nad("team", "a", &bridge("a", &br)).await;
        latencies.push(until_async("a changed", T, || read(&a).contains(&br)).await);
    }
    node.delete_nad("other", "b").await;
    until_async("b removed", T, || !b.exists()).await;
    latencies.sort();
    eprintln!(
        "API change to file written: p50 {:?}, max {:?} (n={})",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
    assert!(latencies[latencies.len() - 1] < Duration::from_secs(2));
    // An invalid NAD is never rendered.
    node.put_nad("team", "bad", r#"{"cniVersion":"1.0.0","name":"bad"}"#)
        .await;
    node.put_nad("team", "after", &bridge("after", "br3")).await;
    until_async("after written", T, || {
        nads.join("team_after.nad.conflist").exists()
    })
    .await;
    assert!(!nads.join("team_bad.nad.conflist").exists());
    assert_eq!(
        listing(&nads),
        vec![
            "static.conf",
            "team_a.nad.conflist",
            "team_after.nad.conflist"
        ]
    );
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&a).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600);

    // The primary replaced: a new first file, then the old one's content changed.
    std::fs::write(conf.join("05-new.conflist"), primary("newpods")).unwrap();
    until_async("00-multus from the new primary", T, || {
        read(&out).contains("newpods")
    })
    .await;
    // The token rotated.
    std::fs::write(node.sa_dir.join("token"), "token-2").unwrap();
    until_async("kubeconfig rewritten", T, || {
        read(&kubeconfig).contains("token-2")
    })
    .await;

    let (_, metrics) = node.health("/metrics").await.unwrap();
    assert!(
        metrics.contains("multus_agent_files_written_total{kind=\"nad\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("multus_agent_nads_rejected_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("multus_agent_nads_invalid 1"), "{metrics}");

    // SIGTERM: exits cleanly, 00-multus and the NAD files stay.
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit(T), Some(0), "{}", agent.logs());
    assert!(out.exists());
    assert!(a.exists());

    // While it is down: one NAD deleted, one created, one changed.
    node.delete_nad("team", "after").await;
    node.put_nad("other", "c", &bridge("c", "br4")).await;
    node.put_nad("team", "a", &bridge("a", "brfinal")).await;
    let _agent = node.agent(&["--cni-mode", "thin"]);
    let c = nads.join("other_c.nad.conflist");
    until_async("converged", T, || {
        c.exists() && read(&a).contains("brfinal") && !nads.join("team_after.nad.conflist").exists()
    })
    .await;
    assert_eq!(
        listing(&nads),
        vec!["other_c.nad.conflist", "static.conf", "team_a.nad.conflist"]
    );
}

/// A node with a primary CNI config and an empty directory of manifests for `--source dir:`.
async fn node_with_manifests() -> (Node, std::path::PathBuf) {
    let node = Node::start().await;
    let manifests = node.root.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::create_dir_all(node.cni_conf_dir()).unwrap();
    std::fs::write(
        node.cni_conf_dir().join("10-pods.conf"),
        r#"{"cniVersion":"0.4.0","name":"pods","type":"bridge"}"#,
    )
    .unwrap();
    (node, manifests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_manifests_drives_the_same_engine_without_an_api_server() {
    let (node, manifests) = node_with_manifests().await;
    let nad = |name: &str, br: &str| {
        format!(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  config: '{}'\n",
            bridge(name, br)
        )
    };
    std::fs::write(manifests.join("a.yaml"), nad("a", "br1")).unwrap();
    let dir_flag = format!("dir:{}", manifests.display());
    let _agent = node.agent(&["--source", &dir_flag, "--cni-mode", "thick"]);
    let nads = node.multus_conf_dir();
    let a = nads.join("team_a.nad.conflist");
    until_async("a from the directory", T, || a.exists()).await;
    let out = node.cni_conf_dir().join("00-multus.conf");
    until_async("00-multus.conf (CNI 0.4.0)", T, || out.exists()).await;
    assert!(read(&out).contains("multus-shim"));
    std::fs::write(manifests.join("b.yaml"), nad("b", "br2")).unwrap();
    until_async("b", T, || nads.join("team_b.nad.conflist").exists()).await;
    std::fs::remove_file(manifests.join("a.yaml")).unwrap();
    until_async("a removed", T, || !a.exists()).await;
}

/// Runtimes before CNI 1.1 never call GC: the agent's start removes the plugin's temporary cache
/// files (writes a killed plugin never finished) once `--cache-leftover-age-seconds` old, and
/// nothing else in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_start_removes_unfinished_cache_writes() {
    let (node, manifests) = node_with_manifests().await;
    let cache = node.host("/var/lib/cni/multus");
    let results = cache.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let kept = [cache.join("c1"), results.join("n-c1-eth0")];
    let leftovers = [
        cache.join(".c2.tmp.77.0"),
        results.join(".n-c2-eth0.tmp.77.1"),
    ];
    for f in kept.iter().chain(&leftovers) {
        std::fs::write(f, "{}").unwrap();
    }
    let dir_flag = format!("dir:{}", manifests.display());
    let flags = ["--source", &dir_flag, "--cni-mode", "thin"];

    // Younger than the default hour: a write that may still be in progress is left alone.
    let agent = node.agent(&flags);
    let conf = node.cni_conf_dir().join("00-multus.conf");
    until_async("00-multus.conf", T, || conf.exists()).await;
    drop(agent);
    assert!(leftovers.iter().all(|f| f.exists()));

    let _agent = node.agent(&[&flags[..], &["--cache-leftover-age-seconds", "0"]].concat());
    until_async("the leftovers removed", T, || {
        leftovers.iter().all(|f| !f.exists())
    })
    .await;
    assert!(kept.iter().all(|f| f.exists()));
}

/// SIGKILL while the agent rewrites thousands of NAD files (changed while it was down): every
/// file under its final name is a whole config, old or new, never torn or empty; the next start
/// sweeps the temporaries and finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_converge_leaves_no_torn_file_and_the_restart_finishes() {
    const N: usize = 2000;
    let node = Node::start().await;
    let api: kube::Api<multus_crds::NetworkAttachmentDefinition> =
        kube::Api::namespaced(node.client.clone(), "team");
    let put_all = |bridge_prefix: &'static str| {
        let api = api.clone();
        async move {
            use futures::StreamExt;
            futures::stream::iter((0..N).map(|i| {
                let api = api.clone();
                async move {
                    let name = format!("n{i}");
                    let mut nad =
                        multus_crds::NetworkAttachmentDefinition::new(&name, Default::default());
                    nad.spec.config = Some(bridge(&name, &format!("{bridge_prefix}{i}")));
                    if let Some(old) = api.get_opt(&name).await.unwrap() {
                        nad.metadata.resource_version = old.metadata.resource_version;
                        api.replace(&name, &Default::default(), &nad).await.unwrap();
                    } else {
                        api.create(&Default::default(), &nad).await.unwrap();
                    }
                }
            }))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        }
    };
    put_all("old").await;
    let nads = node.multus_conf_dir();
    let mut agent = node.agent(&["--cni-mode", "thin"]);
    until_async("ready", Duration::from_secs(120), || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
    })
    .await;
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit(T), Some(0), "{}", agent.logs());

    // Every NAD changed while the agent is down; killed as soon as its first rewrite lands.
    put_all("new").await;
    let mut agent = node.agent(&["--cni-mode", "thin"]);
    let files: Vec<_> = (0..N)
        .map(|i| nads.join(format!("team_n{i}.nad.conflist")))
        .collect();
    until("a first file rewritten", Duration::from_secs(120), || {
        files.iter().step_by(97).any(|f| read(f).contains("\"new"))
    });
    agent.signal("-KILL");
    assert_eq!(agent.wait_exit(T), None);
    let mut rewritten = 0;
    for (i, f) in files.iter().enumerate() {
        let text = read(f);
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("torn {}: {e}: {text:?}", f.display()));
        let bridge = v["plugins"][0]["bridge"].as_str().unwrap().to_owned();
        if bridge == format!("new{i}") {
            rewritten += 1;
        } else {
            assert_eq!(bridge, format!("old{i}"), "{}", f.display());
        }
    }
    eprintln!("killed with {rewritten} of {N} files rewritten");
    assert!(rewritten < N, "the kill came after the whole converge");

    let _agent = node.agent(&["--cni-mode", "thin"]);
    until_async("ready again", Duration::from_secs(120), || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
    })
    .await;
    let listed = listing(&nads);
    let temporaries: Vec<_> = listed.iter().filter(|f| f.contains(".tmp-")).collect();
    assert!(temporaries.is_empty(), "temporaries left: {temporaries:?}");
    assert_eq!(listed.len(), N);
    for (i, f) in files.iter().enumerate() {
        assert!(read(f).contains(&format!("\"new{i}\"")), "{}", f.display());
    }
}

/// Thin mode's 00-multus names the plugin kubeconfig, so the kubeconfig comes first: an agent
/// that cannot write it (here: no service account token) stops with an error naming what is
/// missing, and writes no 00-multus whose every ADD would fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thin_mode_writes_no_node_config_without_its_kubeconfig() {
    let node = Node::start().await;
    let conf = node.cni_conf_dir();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("10-pods.conflist"), primary("pods")).unwrap();
    std::fs::remove_file(node.sa_dir.join("token")).unwrap();
    // What a SIGKILLed agent left of its writes is swept at the next start, this one too.
    std::fs::create_dir_all(conf.join("multus.d")).unwrap();
    let leftovers = [
        conf.join(".00-multus.conflist.tmp-4242"),
        conf.join("multus.d/.multus.kubeconfig.tmp-4242"),
    ];
    for l in &leftovers {
        std::fs::write(l, "half").unwrap();
    }
    std::fs::write(conf.join(".other.conf.tmp-4242"), "not ours").unwrap();
    let mut agent = node.agent(&["--cni-mode", "thin"]);
    let code = agent.wait_exit(T);
    assert_ne!(code, Some(0), "{}", agent.logs());
    assert!(agent.logs().contains("token"), "{}", agent.logs());
    assert!(
        !conf.join("00-multus.conflist").exists(),
        "{}",
        agent.logs()
    );
    for l in &leftovers {
        assert!(!l.exists(), "{} left", l.display());
    }
    assert!(conf.join(".other.conf.tmp-4242").exists());
}

/// A NAD whose file cannot be written (here a directory stands where it goes) is written once
/// it can be, without a change to the NAD or a re-list: the agent passes over its cached NADs
/// again, 1 s after the failure, then less often while it keeps failing. Before 2026-11-30 the
/// file waited for the NAD's next change or the next re-list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nad_file_that_could_not_be_written_is_written_once_it_can_be() {
    let (node, _conf, nads) = node_with_primary().await;
    let agent = node.agent(&["--cni-mode", "thin"]);
    until_async("ready", T, || {
        futures::executor::block_on(node.health("/readyz")).is_some_and(|(s, _)| s == 200)
    })
    .await;

    let file = nads.join("team_blocked.nad.conflist");
    std::fs::create_dir_all(file.join("in-the-way")).unwrap();
    node.put_nad("team", "blocked", &bridge("blocked", "br7"))
        .await;
    until_async("the failed write logged", T, || {
        agent.logs().contains("NAD files not up to date")
    })
    .await;
    assert!(file.is_dir());
    std::fs::remove_dir_all(&file).unwrap();
    let took = until_async("written without a change", T, || {
        file.is_file() && read(&file).contains("br7")
    })
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}: {}", agent.logs());
    until_async("the pass logged", T, || {
        agent.logs().contains("NAD files up to date again")
    })
    .await;
}
