//! One call at a time per container in a daemon. The runtime never overlaps ADD and DEL of a
//! container, but `/delegate` comes from another client (a dynamic-networks controller) and can
//! overlap them or itself: two hot-plug ADDs each read the delegate list, add their attachment
//! and write it back, and without this the later write drops the earlier attachment — which the
//! pod's DEL would then never release.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

use crate::env::Invocation;

/// A lock per container ID, held for the whole call; entries go when nobody holds them.
#[derive(Debug, Default)]
pub struct ContainerLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl ContainerLocks {
    /// Wait until no other call for `container_id` runs, then hold it until the guard drops.
    pub async fn lock(&self, container_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            match locks.get(container_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    // Forget the containers nobody holds any more before adding one.
                    locks.retain(|_, l| l.strong_count() > 0);
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(container_id.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// [`Self::lock`] for a command about one container; `None` for the others (GC, STATUS,
    /// VERSION), which run alongside anything.
    pub async fn lock_for(&self, inv: &Invocation) -> Option<OwnedMutexGuard<()>> {
        if inv.command.is_per_container() {
            Some(self.lock(&inv.container_id).await)
        } else {
            None
        }
    }

    /// Containers with a lock entry (held or just released), for tests.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn calls_for_one_container_wait_for_each_other_and_others_do_not() {
        let locks = Arc::new(ContainerLocks::default());
        let held = locks.lock("a").await;
        // Another container is not held up.
        let other = tokio::time::timeout(Duration::from_millis(100), locks.lock("b")).await;
        assert!(other.is_ok());
        drop(other);
        // The same container waits until the first guard is gone.
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move { locks.lock("a").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        drop(second);
        // Released entries are forgotten when the next container comes.
        let _c = locks.lock("c").await;
        assert_eq!(locks.entries(), 1);
    }
}
