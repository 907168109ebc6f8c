//! Benchmarks of the fake API server through kube's client, as components use it: listing 10,000
//! objects, and one update fanned out to 1,000 open watches.

// Bench code: setup failures should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use multus_tests::apiserver::FakeApiServer;
use serde_json::json;
use tokio::sync::mpsc;

const WATCHERS: usize = 1_000;
/// Watches per kube client: each client is its own connection pool, as separate components are.
const WATCHES_PER_CLIENT: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn list_10000(c: &mut Criterion) {
    let rt = runtime();
    let (server, api) = rt.block_on(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
        let creates = (0..10_000).map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("cm-{i:05}"), "labels": {"app": "bench"}}, "data": {"k": "v"}}),
                )
                .unwrap();
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        });
        futures::stream::iter(creates).buffer_unordered(64).collect::<Vec<_>>().await;
        (server, api)
    });
    let mut group = c.benchmark_group("apiserver");
    group.sample_size(20);
    group.bench_function("list 10000 configmaps", |b| {
        b.to_async(&rt).iter(|| async {
            let list = api.list(&ListParams::default()).await.unwrap();
            assert_eq!(list.items.len(), 10_000);
        })
    });
    group.finish();
    drop(server);
}

/// 1,000 watches stay open on one ConfigMap; each iteration patches it once and times until
/// every watch has delivered that MODIFIED event.
fn watchers_1000(c: &mut Criterion) {
    let rt = runtime();
    let (server, api, mut seen) = rt.block_on(async {
        let server = FakeApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "watched"}, "data": {"n": "0"}}))
                .unwrap();
        let created = api.create(&PostParams::default(), &cm).await.unwrap();
        let rv = created.metadata.resource_version.unwrap();
        // Unbounded: the bench loop drains it after each update; nothing else can fill it.
        let (tx, seen) = mpsc::unbounded_channel::<String>();
        // 290 s is kube's ceiling (it refuses more than 295); the whole bench stays well inside.
        let wp = WatchParams::default()
            .fields("metadata.name=watched")
            .timeout(290);
        for _ in 0..WATCHERS / WATCHES_PER_CLIENT {
            let watcher_api: Api<ConfigMap> =
                Api::namespaced(server.client().await.unwrap(), "default");
            for _ in 0..WATCHES_PER_CLIENT {
                let stream = watcher_api.watch(&wp, &rv).await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Ok(Some(event)) = stream.try_next().await {
                        if let WatchEvent::Modified(cm) = event {
                            let _ = tx.send(cm.metadata.resource_version.unwrap_or_default());
                        }
                    }
                });
            }
        }
        (server, api, seen)
    });
    let mut group = c.benchmark_group("apiserver");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    let mut n = 0u64;
    group.bench_function("1000 watchers receive one update", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let patch = json!({"data": {"n": n.to_string()}});
                    let start = Instant::now();
                    let updated = api
                        .patch("watched", &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                    let rv = updated.metadata.resource_version.unwrap();
                    for _ in 0..WATCHERS {
                        let got = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                            .await
                            .expect("a watcher missed the update for 30 s")
                            .unwrap();
                        assert_eq!(got, rv);
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, list_10000, watchers_1000);
criterion_main!(benches);
