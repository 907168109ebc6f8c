//! Benchmarks of the fake API server through kube's client, as components use it:
//! listing 10,000 objects. (The 1,000-watcher benchmark is not done yet: see tests/README.md.)

// Bench code: setup failures should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use multus_tests::apiserver::FakeApiServer;
use serde_json::json;

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

criterion_group!(benches, list_10000);
criterion_main!(benches);
