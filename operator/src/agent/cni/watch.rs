//! Filesystem events (inotify through `notify`), coalesced: a follower waits for "something in
//! these directories changed", then re-reads what it derives its output from. No polling.

use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::error::CniAgentError;

/// A watch on a few directories (not recursive). Dropping it stops the watch.
pub struct DirEvents {
    rx: mpsc::Receiver<()>,
    _watcher: RecommendedWatcher,
}

impl DirEvents {
    /// Watch `dirs`, creating those that are missing (0700) so their files can appear later.
    pub fn watch(dirs: &[PathBuf]) -> Result<Self, CniAgentError> {
        // Capacity 1: a burst of events becomes one wake-up.
        let (tx, rx) = mpsc::channel(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let interesting = match event {
                    Ok(e) => !e.kind.is_access(),
                    Err(_) => true,
                };
                if interesting {
                    let _ = tx.try_send(());
                }
            })
            .map_err(|source| CniAgentError::Watch {
                path: dirs.first().cloned().unwrap_or_default(),
                source,
            })?;
        for dir in dirs {
            super::nadfiles::create_private_dir(dir)?;
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| CniAgentError::Watch {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(Self {
            rx,
            _watcher: watcher,
        })
    }

    /// Wait for the next change; `false` once the watch is gone.
    pub async fn changed(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}

/// The directory holding `path` (itself for a bare name).
pub fn parent(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
