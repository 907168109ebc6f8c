//! The Kubernetes source: a watcher on NetworkAttachmentDefinitions in every namespace and one on
//! the pods of this node (`spec.nodeName` field selector), both with kube-runtime's backoff, so a
//! lost connection re-lists and ends in a fresh [`Change::Synced`]. NADs are read as dynamic
//! objects, so one malformed NAD is logged and skipped instead of stopping the watch.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use multus_crds::NetworkAttachmentDefinition;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Change, Update};

/// Spawn both watchers.
pub fn start(
    client: kube::Client,
    node: String,
    tx: mpsc::Sender<Update>,
    shutdown: CancellationToken,
) {
    let ar = ApiResource::erase::<NetworkAttachmentDefinition>(&());
    let nads: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    tokio::spawn(pump(
        "NetworkAttachmentDefinition",
        watcher(nads, watcher::Config::default()),
        |o: DynamicObject| {
            let value = serde_json::to_value(o).ok()?;
            match NetworkAttachmentDefinition::from_value(value) {
                Ok(n) => Some(n),
                Err(error) => {
                    tracing::warn!(%error, "NetworkAttachmentDefinition not readable; skipped");
                    None
                }
            }
        },
        Update::Nads,
        tx.clone(),
        shutdown.clone(),
    ));
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    tokio::spawn(pump(
        "Pod",
        watcher(pods, config),
        |p| Some(Box::new(p)),
        Update::Pods,
        tx,
        shutdown,
    ));
}

async fn pump<K, T>(
    kind: &'static str,
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    convert: impl Fn(K) -> Option<T> + Send,
    wrap: impl Fn(Change<T>) -> Update + Send,
    tx: mpsc::Sender<Update>,
    shutdown: CancellationToken,
) where
    K: Clone + Send + 'static,
    T: Send,
{
    let stream = stream
        .default_backoff()
        .map_err(|e| {
            tracing::warn!(kind, error = %e, "watch failed; retrying");
            e
        })
        .filter_map(|r| async move { r.ok() });
    tokio::pin!(stream);
    let mut initial: Vec<T> = Vec::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            e = stream.next() => match e { Some(e) => e, None => return },
        };
        let update = match event {
            watcher::Event::Init => {
                initial.clear();
                None
            }
            watcher::Event::InitApply(o) => {
                initial.extend(convert(o));
                None
            }
            watcher::Event::InitDone => Some(Change::Synced(std::mem::take(&mut initial))),
            watcher::Event::Apply(o) => convert(o).map(Change::Applied),
            watcher::Event::Delete(o) => convert(o).map(Change::Deleted),
        };
        if let Some(change) = update
            && tx.send(wrap(change)).await.is_err()
        {
            return;
        }
    }
}
