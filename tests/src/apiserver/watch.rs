//! Watches: replay from a resourceVersion, ERROR 410 when it is older than the retained window,
//! bookmarks, `timeoutSeconds`, and the streaming list (`sendInitialEvents`).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{
    State, Target,
    objects::with_api_version,
    resources::ResourceDef,
    selectors::Selection,
    status::ApiStatus,
    store::{Event, EventType, StorageKey, meta_str},
};

pub struct WatchRequest {
    pub resource_version: Option<u64>,
    pub selection: Selection,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
}

/// How often a watch with `allowWatchBookmarks` gets a bookmark (the real server: about a minute).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"apiVersion": def.api_version(), "kind": def.kind, "metadata": meta}),
    )
}

/// Start a watch; the returned channel yields the response body's lines.
pub fn start(state: Arc<State>, t: &Target, req: WatchRequest) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    let storage = t.def.storage_key();
    let def = t.def.clone();
    let namespace = if t.def.namespaced {
        t.namespace.clone()
    } else {
        None
    };
    let filter = Filter {
        storage: storage.clone(),
        namespace,
        selection: req.selection.clone(),
        def: def.clone(),
    };
    // Under one lock: the initial state (or the replayed backlog) and the live receiver.
    let start = {
        let inner = state.lock();
        let current = inner.store.resource_version();
        let initial = req.send_initial_events || req.resource_version.is_none_or(|rv| rv == 0);
        if initial {
            let objects: Vec<Value> = inner
                .store
                .range(&storage, filter.namespace.as_deref(), None)
                .map(|(_, v)| v)
                .filter(|v| filter.selection.matches(v))
                .cloned()
                .collect();
            Ok((objects, Vec::new(), inner.store.subscribe(), current))
        } else {
            let rv = req.resource_version.unwrap_or(0);
            inner
                .store
                .watch_from(rv)
                .map(|(backlog, rx)| (Vec::new(), backlog, rx, rv))
                .map_err(|oldest| (rv, oldest))
        }
    };
    tokio::spawn(async move {
        let (objects, backlog, receiver, start_rv) = match start {
            Ok(s) => s,
            Err((rv, oldest)) => {
                // As the real watch cache does: a 200 stream carrying one ERROR event.
                let _ = tx
                    .send(line("ERROR", &ApiStatus::gone(rv, oldest).to_json()))
                    .await;
                return;
            }
        };
        let _ = run(tx, filter, req, objects, backlog, receiver, start_rv).await;
    });
    rx
}

struct Filter {
    storage: StorageKey,
    namespace: Option<String>,
    selection: Selection,
    def: ResourceDef,
}

impl Filter {
    /// The event this watcher sees, if any: entering or leaving the selection is ADDED / DELETED.
    fn project(&self, e: &Event) -> Option<(&'static str, Value)> {
        if e.storage != self.storage {
            return None;
        }
        if let Some(ns) = &self.namespace
            && meta_str(&e.object, "namespace") != Some(ns.as_str())
        {
            return None;
        }
        let now = self.selection.matches(&e.object);
        let before = e.old.as_ref().is_some_and(|o| self.selection.matches(o));
        let kind = match (e.kind, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Deleted, true, _) => EventType::Deleted,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            _ => return None,
        };
        Some((kind.as_str(), with_api_version(e.object.clone(), &self.def)))
    }
}

struct Closed;

async fn send(tx: &mpsc::Sender<Bytes>, b: Bytes) -> Result<(), Closed> {
    tx.send(b).await.map_err(|_| Closed)
}

async fn run(
    tx: mpsc::Sender<Bytes>,
    filter: Filter,
    req: WatchRequest,
    objects: Vec<Value>,
    backlog: Vec<Arc<Event>>,
    mut receiver: broadcast::Receiver<Arc<Event>>,
    start_rv: u64,
) -> Result<(), Closed> {
    let mut last_rv = start_rv;
    for o in objects {
        send(&tx, line("ADDED", &with_api_version(o, &filter.def))).await?;
    }
    if req.send_initial_events {
        send(&tx, bookmark(&filter.def, start_rv, true)).await?;
    }
    for e in backlog {
        last_rv = last_rv.max(e.rv);
        if let Some((kind, obj)) = filter.project(&e) {
            send(&tx, line(kind, &obj)).await?;
        }
    }
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = &mut deadline => return Ok(()),
            () = tx.closed() => return Err(Closed),
            _ = ticker.tick(), if req.bookmarks => send(&tx, bookmark(&filter.def, last_rv, false)).await?,
            received = receiver.recv() => match received {
                Ok(e) => {
                    // Events already replayed from the backlog arrive again on the receiver.
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    if let Some((kind, obj)) = filter.project(&e) {
                        send(&tx, line(kind, &obj)).await?;
                    }
                }
                // A watcher too slow for the broadcast buffer ends; the client re-watches from
                // its last resourceVersion, as after any closed watch.
                Err(_) => return Ok(()),
            },
        }
    }
}
