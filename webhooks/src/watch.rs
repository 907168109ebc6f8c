//! The watches that keep the caches: NADs in every namespace, and for SR-IOV, the Nodes and the
//! NodeStates and policies of the operator namespace. Each watch replaces its cache wholesale on
//! every (re)list and applies single changes in between. Readiness waits for the NADs' first
//! list; the SR-IOV cluster rules wait for the other three.
//!
//! A kind the API server does not serve yet (the SR-IOV CRDs installed after the webhook) fails
//! its list with 404; the watcher retries with its bounded exponential backoff (0.8 s doubling
//! to 30 s) and the cache fills once the CRD is there — no restart.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::constants::RESOURCE_NAME_ANNOTATION;
use multus_crds::rules::sriov_cluster::NodeFacts;
use multus_crds::sriov::{SriovNetworkNodePolicy, SriovNetworkNodeState};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cache::{NadCache, NadFacts};
use crate::context::{Context, Readiness};

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

/// Feed one watch into a cache. On each (re)list, `add` puts every listed object into a fresh
/// `C` as it arrives (so only the cache's own compact form is held, never the whole list of
/// objects) and `replace` swaps it in at the end; `apply` and `delete` handle the changes in
/// between. The watcher retries with backoff, so errors are logged and the stream goes on.
async fn follow<K, C: Default>(
    ready: &Readiness,
    api: Api<K>,
    kind: &'static str,
    mut add: impl FnMut(&mut C, K),
    mut replace: impl FnMut(C),
    mut apply: impl FnMut(K),
    mut delete: impl FnMut(K),
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Option<C> = None;
    let mut synced_once = false;
    loop {
        match stream.try_next().await {
            Ok(Some(Event::Init)) => listing = Some(C::default()),
            Ok(Some(Event::InitApply(obj))) => add(listing.get_or_insert_with(C::default), obj),
            Ok(Some(Event::InitDone)) => {
                replace(listing.take().unwrap_or_default());
                tracing::debug!(kind, "listed");
                if !synced_once {
                    synced_once = true;
                    ready.synced();
                    tracing::info!(kind, "cache synced");
                }
            }
            Ok(Some(Event::Apply(obj))) => apply(obj),
            Ok(Some(Event::Delete(obj))) => delete(obj),
            Ok(None) => return,
            Err(error) if not_served(&error) => {
                tracing::info!(
                    kind,
                    "not served by the API server (CRD not installed?); retrying with backoff"
                );
            }
            Err(error) => tracing::warn!(kind, %error, "watch failed; retrying"),
        }
    }
}

/// A 404 on list or watch: the kind's CRD is not installed (yet).
fn not_served(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 404,
        watcher::Error::WatchError(status) => status.code == 404,
        _ => false,
    }
}

/// What the cache keeps of a NAD, read straight from the untyped object; `None` (with a
/// warning) for one whose `spec` or `spec.config` has the wrong shape, which the typed NAD
/// would refuse too.
fn nad_facts(obj: &DynamicObject) -> Option<NadFacts<'_>> {
    let meta = &obj.metadata;
    let spec = obj.data.get("spec").filter(|s| !s.is_null());
    let config = match spec.map(|s| (s.is_object(), s.get("config"))) {
        None | Some((true, None | Some(Value::Null))) => None,
        Some((true, Some(Value::String(config)))) => Some(config.as_str()),
        Some(_) => {
            tracing::warn!(name = ?meta.name, namespace = ?meta.namespace, "skipping an unreadable NAD: spec.config is not a string");
            return None;
        }
    };
    Some(NadFacts {
        namespace: meta.namespace.as_deref().unwrap_or("default"),
        name: meta.name.as_deref().unwrap_or_default(),
        config: config.filter(|c| !c.trim().is_empty()),
        resource_name: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_NAME_ANNOTATION))
            .map(String::as_str)
            .filter(|r| !r.is_empty()),
    })
}

/// NADs are watched untyped and read in place (see [`nad_facts`]), so one with an unexpected
/// shape is skipped instead of failing the whole list, and no typed copy is made.
async fn watch_nads(ctx: Arc<Context>, client: Client) {
    let resource = kube::api::ApiResource::erase::<NetworkAttachmentDefinition>(&());
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let c = &ctx;
    follow(
        &c.readiness,
        api,
        "NetworkAttachmentDefinition",
        |fresh: &mut NadCache, obj| {
            if let Some(facts) = nad_facts(&obj) {
                fresh.insert(facts);
            }
        },
        |fresh| c.write_nads(|cache| *cache = fresh),
        |obj| {
            if let Some(facts) = nad_facts(&obj) {
                c.write_nads(|cache| cache.insert(facts));
            }
        },
        |obj| {
            let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
            let name = obj.metadata.name.as_deref().unwrap_or_default();
            c.write_nads(|cache| cache.remove(ns, name));
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
        &c.sriov_readiness,
        Api::<Node>::all(client),
        "Node",
        |all: &mut Vec<_>, node| all.push(node_facts(&node)),
        |all| {
            c.write_sriov(|index| index.replace_nodes(all));
        },
        |node| {
            let (name, facts) = node_facts(&node);
            c.write_sriov(|index| index.insert_node(name, facts));
        },
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
        &c.sriov_readiness,
        api,
        "SriovNetworkNodeState",
        Vec::push,
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
        &c.sriov_readiness,
        api,
        "SriovNetworkNodePolicy",
        Vec::push,
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
