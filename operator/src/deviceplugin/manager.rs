//! Keeps one served plugin per pool: starts a server for a new pool, streams changes of an
//! existing one, and stops the server of a pool that disappeared.

use std::collections::BTreeMap;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pool::{Pool, Pools};
use super::registration::{PluginSettings, serve_pool};

/// Serve the pools published on `pools` until `shutdown`.
pub async fn run(
    settings: PluginSettings,
    mut pools: watch::Receiver<Pools>,
    shutdown: CancellationToken,
) {
    let mut served: BTreeMap<String, (watch::Sender<Pool>, CancellationToken)> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let current = pools.borrow_and_update().clone();
        served.retain(|name, (_, stop)| {
            let keep = current.contains_key(name);
            if !keep {
                tracing::info!(resource = %name, "pool removed; stopping its plugin");
                stop.cancel();
            }
            keep
        });
        for (name, pool) in current {
            match served.get(&name) {
                Some((tx, _)) => {
                    tx.send_if_modified(|old| {
                        let changed = *old != pool;
                        if changed {
                            *old = pool.clone();
                        }
                        changed
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(pool);
                    let stop = shutdown.child_token();
                    tasks.spawn(serve_pool(settings.clone(), rx, stop.clone()));
                    served.insert(name, (tx, stop));
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = pools.changed() => if changed.is_err() { break },
        }
    }
    shutdown.cancel();
    drop(served);
    while tasks.join_next().await.is_some() {}
}
