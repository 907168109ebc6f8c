//! The directory source: every manifest under a directory (YAML streams, JSON, `kind: List`,
//! read by `multusctl`'s reader), re-read as a whole whenever a filesystem event says something
//! under it changed. Each read ends in [`Change::Synced`] for NADs and for pods; the engines diff
//! against what they hold, so an unchanged object costs nothing. Objects without a namespace are
//! in `default`, as `kubectl apply` would put them; pods of other nodes are dropped.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use multus_crds::NetworkAttachmentDefinition;
use notify::{RecursiveMode, Watcher};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Change, Update};
use crate::agent::cni::CniAgentError;
use crate::multusctl::input;
use crate::multusctl::objects::{Kind, classify, expand_lists};

/// The NADs and this node's pods in `dir`. Unreadable documents are logged and skipped.
pub fn read(
    dir: &Path,
    node: &str,
) -> Result<(Vec<NetworkAttachmentDefinition>, Vec<Box<Pod>>), CniAgentError> {
    let docs = input::load(&[dir.to_owned()]).map_err(|e| CniAgentError::ReadManifest {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    let mut nads = Vec::new();
    let mut pods = Vec::new();
    for doc in docs {
        let value = match doc.content {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(file = %doc.file, line = e.line, message = %e.message, "manifest skipped");
                continue;
            }
        };
        for mut object in expand_lists(value) {
            let kind = classify(&object);
            if !matches!(kind, Kind::NetworkAttachmentDefinition | Kind::Pod) {
                continue;
            }
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.entry("namespace")
                    .or_insert_with(|| Value::String("default".into()));
            }
            match kind {
                Kind::NetworkAttachmentDefinition => {
                    match NetworkAttachmentDefinition::from_value(object) {
                        Ok(n) => nads.push(n),
                        Err(e) => tracing::warn!(file = %doc.file, error = %e, "NAD skipped"),
                    }
                }
                _ => match serde_json::from_value::<Pod>(object) {
                    Ok(p) => {
                        let on_node = p
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .is_some_and(|n| n == node);
                        if node.is_empty() || on_node {
                            pods.push(Box::new(p));
                        }
                    }
                    Err(e) => tracing::warn!(file = %doc.file, error = %e, "pod skipped"),
                },
            }
        }
    }
    Ok((nads, pods))
}

/// Every manifest file under `root` (the endings `multusctl` reads), sorted, for a reader that
/// takes the whole folder as the cluster: directories marked for `multusctl` to skip (which hold
/// objects broken on purpose) are read too, since a cluster would be sent them; `skip` names
/// directories under `root` that hold no manifests (the fake host trees of the offline run).
/// Symbolic links are not followed: sysfs trees are full of cycles.
pub fn manifest_files(root: &Path, skip: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, top: Option<&[&str]>, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            let name = entry.file_name();
            if kind.is_dir() {
                if top.is_some_and(|skip| skip.iter().any(|s| name == **s)) {
                    continue;
                }
                walk(&path, None, out)?;
            } else if kind.is_file()
                && path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| input::EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, Some(skip), &mut out)?;
    out.sort();
    Ok(out)
}

/// Wake-ups for every filesystem change under `dir` (recursively), coalesced: at most one is
/// pending. The watch lasts as long as the returned watcher.
pub fn watch(
    dir: &Path,
) -> Result<(notify::RecommendedWatcher, mpsc::Receiver<()>), CniAgentError> {
    let (wake_tx, wake) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = wake_tx.try_send(());
        }
    })
    .map_err(|source| CniAgentError::Watch {
        path: dir.to_owned(),
        source,
    })?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|source| CniAgentError::Watch {
            path: dir.to_owned(),
            source,
        })?;
    Ok((watcher, wake))
}

/// Read `dir` now, then again after every change under it, until shutdown.
pub fn start(
    dir: PathBuf,
    node: String,
    tx: mpsc::Sender<Update>,
    shutdown: CancellationToken,
) -> Result<(), CniAgentError> {
    let (watcher, mut wake) = watch(&dir)?;
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            match read(&dir, &node) {
                Ok((nads, pods)) => {
                    if tx.send(Update::Nads(Change::Synced(nads))).await.is_err()
                        || tx.send(Update::Pods(Change::Synced(pods))).await.is_err()
                    {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "manifest directory not read"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                w = wake.recv() => if w.is_none() { return },
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::time::Duration;

    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: blue}
spec:
  config: '{"cniVersion":"1.0.0","type":"bridge"}'
---
apiVersion: v1
kind: Pod
metadata: {name: here, namespace: team}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: team}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"#;

    #[tokio::test]
    async fn reads_nads_and_this_nodes_pods_and_follows_changes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("all.yaml"), MANIFESTS).unwrap();
        let (nads, pods) = read(tmp.path(), "node-1").unwrap();
        assert_eq!(nads.len(), 1);
        assert_eq!(nads[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].metadata.name.as_deref(), Some("here"));

        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        start(tmp.path().to_owned(), "node-1".into(), tx, shutdown.clone()).unwrap();
        let first = rx.recv().await.unwrap();
        assert!(matches!(first, Update::Nads(Change::Synced(ref v)) if v.len() == 1));
        rx.recv().await.unwrap();
        std::fs::remove_file(tmp.path().join("all.yaml")).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(next, Update::Nads(Change::Synced(ref v)) if v.is_empty()));
        shutdown.cancel();
    }
}
