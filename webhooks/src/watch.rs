//! The watches that keep the caches: NADs in every namespace, and for SR-IOV, the Nodes and the
//! NodeStates and policies of the operator namespace. Each watch replaces its cache wholesale on
//! every (re)list and applies single changes in between; readiness waits for every first list.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::rules::sriov_cluster::NodeFacts;
use multus_crds::sriov::{SriovNetworkNodePolicy, SriovNetworkNodeState};
use serde::de::DeserializeOwned;

use crate::context::{Context, NadCache};

/// Run every watch until `shutdown`; `sriov` adds the SR-IOV caches.
pub async fn run(
    ctx: Arc<Context>,
    client: Client,
    sriov: bool,
    shutdown: impl Future<Output = ()>,
) {
    let nads = watch_nads(ctx.clone(), client.clone());
    let sriov_watches = async {
        if !sriov {
            return;
        }
        let ns = ctx.settings.operator_namespace.clone();
        futures::join!(
            watch_nodes(ctx.clone(), client.clone()),
            watch_states(ctx.clone(), Api::namespaced(client.clone(), &ns)),
            watch_policies(ctx.clone(), Api::namespaced(client.clone(), &ns)),
        );
    };
    tokio::select! {
        () = shutdown => {}
        _ = futures::future::join(nads, sriov_watches) => {}
    }
}

/// Feed one watch into a cache: `replace` with everything on each (re)list, `apply` and `delete`
/// for changes. Each object goes through `convert` as it arrives, so a relist holds the cache's
/// own (smaller) form of the objects, not the watch's. The watcher retries with backoff, so
/// errors are logged and the stream goes on.
async fn follow<K, T>(
    ctx: &Context,
    api: Api<K>,
    kind: &'static str,
    mut convert: impl FnMut(K) -> Option<T>,
    mut replace: impl FnMut(Vec<T>),
    mut apply: impl FnMut(T),
    mut delete: impl FnMut(K),
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Option<Vec<T>> = None;
    let mut synced_once = false;
    loop {
        match stream.try_next().await {
            Ok(Some(Event::Init)) => listing = Some(Vec::new()),
            Ok(Some(Event::InitApply(obj))) => {
                if let Some(item) = convert(obj) {
                    listing.get_or_insert_with(Vec::new).push(item);
                }
            }
            Ok(Some(Event::InitDone)) => {
                let all = listing.take().unwrap_or_default();
                tracing::debug!(kind, count = all.len(), "listed");
                replace(all);
                if !synced_once {
                    synced_once = true;
                    ctx.readiness.synced();
                    tracing::info!(kind, "cache synced");
                }
            }
            Ok(Some(Event::Apply(obj))) => {
                if let Some(item) = convert(obj) {
                    apply(item);
                }
            }
            Ok(Some(Event::Delete(obj))) => delete(obj),
            Ok(None) => return,
            Err(error) => tracing::warn!(kind, %error, "watch failed; retrying"),
        }
    }
}

/// NADs are watched untyped so one with an unexpected shape is skipped with a warning instead
/// of failing the whole list.
async fn watch_nads(ctx: Arc<Context>, client: Client) {
    let resource = kube::api::ApiResource::erase::<NetworkAttachmentDefinition>(&());
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let typed = |obj: DynamicObject| -> Option<NetworkAttachmentDefinition> {
        let value = serde_json::to_value(&obj).ok()?;
        match NetworkAttachmentDefinition::from_value(value) {
            Ok(nad) => Some(nad),
            Err(error) => {
                tracing::warn!(%error, name = ?obj.metadata.name, namespace = ?obj.metadata.namespace, "skipping an unreadable NAD");
                None
            }
        }
    };
    let c = &ctx;
    follow(
        c,
        api,
        "NetworkAttachmentDefinition",
        typed,
        |all| {
            let fresh: NadCache = all.into_iter().collect();
            c.write_nads(|cache| *cache = fresh);
        },
        |nad| c.write_nads(|cache| cache.insert(nad)),
        |obj| {
            let ns = obj.metadata.namespace.unwrap_or_default();
            let name = obj.metadata.name.unwrap_or_default();
            c.write_nads(|cache| cache.remove(&ns, &name));
        },
    )
    .await;
}

fn node_facts(node: &Node) -> (String, NodeFacts) {
    (
        node.metadata.name.clone().unwrap_or_default(),
        NodeFacts {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            provider_id: node
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .unwrap_or_default(),
        },
    )
}

async fn watch_nodes(ctx: Arc<Context>, client: Client) {
    let c = &ctx;
    follow(
        c,
        Api::<Node>::all(client),
        "Node",
        |node| Some(node_facts(&node)),
        |all| {
            c.write_sriov(|index| index.replace_nodes(all));
        },
        |(name, facts)| c.write_sriov(|index| index.insert_node(name, facts)),
        |node| {
            let name = node.metadata.name.unwrap_or_default();
            c.write_sriov(|index| index.remove_node(&name));
        },
    )
    .await;
}

async fn watch_states(ctx: Arc<Context>, api: Api<SriovNetworkNodeState>) {
    let c = &ctx;
    follow(
        c,
        api,
        "SriovNetworkNodeState",
        Some,
        |all| {
            c.write_sriov(|index| index.replace_states(all));
        },
        |state| c.write_sriov(|index| index.insert_state(state)),
        |state| {
            let name = state.metadata.name.unwrap_or_default();
            c.write_sriov(|index| index.remove_state(&name));
        },
    )
    .await;
}

async fn watch_policies(ctx: Arc<Context>, api: Api<SriovNetworkNodePolicy>) {
    let c = &ctx;
    follow(
        c,
        api,
        "SriovNetworkNodePolicy",
        Some,
        |all| {
            c.write_sriov(|index| index.replace_policies(all));
        },
        |policy| c.write_sriov(|index| index.insert_policy(policy)),
        |policy| {
            let name = policy.metadata.name.unwrap_or_default();
            c.write_sriov(|index| index.remove_policy(&name));
        },
    )
    .await;
}
