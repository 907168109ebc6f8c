//! kube-runtime's watcher, reflector and Controller, unmodified, against the fake API server.
// Test code: helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{Controller, WatchStreamExt, controller::Action, reflector, watcher},
};
use multus_tests::{apiserver::FakeApiServer, harness::wait::wait_for};
use serde_json::json;

/// A small deterministic generator, so a failure replays.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn snapshot(
    items: impl IntoIterator<Item = ConfigMap>,
) -> BTreeMap<String, (String, Option<BTreeMap<String, String>>)> {
    items
        .into_iter()
        .map(|c| {
            (
                c.name_any(),
                (c.resource_version().unwrap_or_default(), c.data.clone()),
            )
        })
        .collect()
}

async fn reflector_converges(config: watcher::Config) {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api.clone(), config))
        .applied_objects()
        .for_each(|_| async {});
    let task = tokio::spawn(stream);

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<Option<u32>> = vec![None; 200];
    for op in 0..10_000u32 {
        let slot = rng.below(live.len() as u64) as usize;
        let name = format!("cm-{slot}");
        match (live[slot], rng.below(3)) {
            (None, _) => {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": name}, "data": {"op": op.to_string()}}),
                )
                .unwrap();
                api.create(&PostParams::default(), &cm).await.unwrap();
                live[slot] = Some(op);
            }
            (Some(_), 0) => {
                api.delete(&name, &DeleteParams::default()).await.unwrap();
                live[slot] = None;
            }
            (Some(_), _) => {
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"op": op.to_string()}})),
                )
                .await
                .unwrap();
                live[slot] = Some(op);
            }
        }
    }
    let expected = snapshot(api.list(&ListParams::default()).await.unwrap().items);
    assert!(
        expected.len() > 50,
        "the run should leave a populated store"
    );
    wait_for(
        "the reflector to match the server",
        Duration::from_secs(30),
        || {
            let got = snapshot(reader.state().iter().map(|c| (**c).clone()));
            let expected = &expected;
            async move { (got == *expected).then_some(()) }
        },
    )
    .await
    .unwrap();
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_store_equals_server_state_after_10000_random_writes() {
    reflector_converges(watcher::Config::default().page_size(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_converges_with_streaming_lists() {
    reflector_converges(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_each_object_and_sees_updates() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct ReconcileError(#[from] kube::Error);

    // The reconciler marks each object the way our controllers write: server-side apply.
    async fn reconcile(
        cm: Arc<ConfigMap>,
        api: Arc<Api<ConfigMap>>,
    ) -> Result<Action, ReconcileError> {
        let seen = cm
            .data
            .as_ref()
            .and_then(|d| d.get("input"))
            .cloned()
            .unwrap_or_default();
        let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm.name_any()},
            "data": {"reconciled": seen}});
        api.patch(
            &cm.name_any(),
            &PatchParams::apply("multus-controller").force(),
            &Patch::Apply(patch),
        )
        .await?;
        Ok(Action::await_change())
    }
    let ctx = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let all_reconciled = |want: &'static str| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.ok()?;
                list.items
                    .iter()
                    .all(|c| {
                        c.data
                            .as_ref()
                            .and_then(|d| d.get("reconciled"))
                            .map(String::as_str)
                            == Some(want)
                    })
                    .then_some(())
            }
        }
    };
    wait_for(
        "every object reconciled",
        Duration::from_secs(20),
        all_reconciled(""),
    )
    .await
    .unwrap();
    for i in 0..5 {
        api.patch(
            &format!("c{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"input": "v2"}})),
        )
        .await
        .unwrap();
    }
    wait_for(
        "every update reconciled",
        Duration::from_secs(20),
        all_reconciled("v2"),
    )
    .await
    .unwrap();
    task.abort();
}
