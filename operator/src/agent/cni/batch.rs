//! Many files written at once (the NAD files of a cold start): each one through the project's
//! atomic writer (temporary, fsync, rename — so no reader ever sees a torn or empty file under
//! its final name), on a small bounded pool of threads, then one fsync of the directory.
//!
//! Why threads: the cost of a cold start is one fsync per file, and an fsync mostly waits for
//! the filesystem's journal commit, not the CPU. Concurrent fsyncs on ext4/xfs are folded into
//! one commit (group commit), so a handful of threads waiting side by side turns 10,000 commits
//! into a few hundred. A single `syncfs` before the renames would need fewer commits still, but it
//! flushes every dirty page of the whole host filesystem (container logs, image layers), which
//! on a busy node takes an unbounded time — measured 5–18 s for 2,000 files while other builds
//! were writing (docs/decisions.md).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::error::CniAgentError;

/// Threads of the pool: enough concurrent fsyncs for group commit to pay off, few enough to
/// stay light (each is mostly asleep in fsync).
pub const WORKERS: usize = 16;
/// Items a worker takes at a time: small, so a slow fsync does not leave others idle.
const CHUNK: usize = 8;

/// `f(item)` for every item, on up to [`WORKERS`] threads (inline when there are few), results
/// in the order of `items`.
pub fn map_parallel<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let workers = items.len().div_ceil(CHUNK).min(WORKERS);
    if workers <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Vec<R>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if start >= items.len() {
                        break;
                    }
                    let end = (start + CHUNK).min(items.len());
                    let out: Vec<R> = items[start..end].iter().map(&f).collect();
                    // A poisoned lock only means another worker panicked, which the scope
                    // re-raises anyway.
                    done.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((start, out));
                }
            });
        }
    });
    let mut chunks = done.into_inner().unwrap_or_else(|p| p.into_inner());
    chunks.sort_unstable_by_key(|(start, _)| *start);
    chunks.into_iter().flat_map(|(_, out)| out).collect()
}

/// fsync `dir`, so the renames and removals done in it survive a crash (the files' contents were
/// fsynced before their renames).
pub fn sync_dir(dir: &Path) -> Result<(), CniAgentError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CniAgentError::SyncDir {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn maps_every_item_once_in_order_on_several_threads() {
        let items: Vec<usize> = (0..1000).collect();
        let threads = Mutex::new(HashSet::new());
        let out = map_parallel(&items, |i| {
            threads.lock().unwrap().insert(std::thread::current().id());
            // Long enough that one worker cannot drain the queue alone.
            std::thread::sleep(std::time::Duration::from_micros(200));
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(threads.lock().unwrap().len() > 1, "ran on one thread");
        // Few items: inline, on the caller's thread.
        let me = std::thread::current().id();
        let out = map_parallel(&[1, 2, 3], |i| (std::thread::current().id() == me, *i));
        assert_eq!(out, vec![(true, 1), (true, 2), (true, 3)]);
        assert!(map_parallel(&[] as &[u8], |_| ()).is_empty());
    }

    #[test]
    fn syncs_a_directory_and_names_a_missing_one() {
        let tmp = tempfile::tempdir().unwrap();
        sync_dir(tmp.path()).unwrap();
        let missing = tmp.path().join("gone");
        let e = sync_dir(&missing).unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
