//! Objects, the global resourceVersion and the retained event window that watches replay.
//!
//! Everything here runs under one lock held by the caller, so a write, its resourceVersion and its
//! place in the event log are one atomic step, as etcd makes them for the real server.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Which stored collection an object belongs to: (group, plural).
pub type StorageKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as every watcher of its collection sees it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub storage: StorageKey,
    pub kind: EventType,
    /// The object after the change (for a delete: its last state, with the delete's resourceVersion).
    pub object: Value,
    /// The object before the change, so a watch with a selector can turn a change into ADDED or
    /// DELETED as the object enters or leaves the selection, as the real server does.
    pub old: Option<Value>,
}

/// Replayable events after a point, and the receiver for everything later.
pub type Replay = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

pub struct Store {
    objects: HashMap<StorageKey, BTreeMap<String, Value>>,
    rv: u64,
    log: VecDeque<Arc<Event>>,
    window: usize,
    /// The newest resourceVersion no longer replayable: a watch must start at or after it.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

/// The key objects are sorted and paged by: `namespace/name`, or `name` for cluster objects.
pub fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

impl Store {
    /// `window` is how many events stay replayable; older watch starts answer 410 Gone.
    pub fn new(window: usize) -> Self {
        let (tx, _) = broadcast::channel(window.clamp(1024, 1 << 17));
        Self {
            objects: HashMap::new(),
            rv: 1,
            log: VecDeque::new(),
            window: window.max(1),
            compacted: 0,
            tx,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, storage: &StorageKey, key: &str) -> Option<&Value> {
        self.objects.get(storage)?.get(key)
    }

    /// Objects of a collection in key order, starting after `after` (for `continue`), limited to a
    /// namespace by key prefix.
    pub fn range<'a>(
        &'a self,
        storage: &StorageKey,
        namespace: Option<&'a str>,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        let prefix = namespace.map(|ns| format!("{ns}/"));
        self.objects.get(storage).into_iter().flat_map(move |m| {
            let start = match (after, &prefix) {
                (Some(a), _) => std::ops::Bound::Excluded(a.to_owned()),
                (None, Some(p)) => std::ops::Bound::Included(p.clone()),
                (None, None) => std::ops::Bound::Unbounded,
            };
            let prefix = prefix.clone();
            m.range((start, std::ops::Bound::Unbounded))
                .take_while(move |(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
        })
    }

    /// Store `object` under `key`, giving it the next resourceVersion, and record the event.
    pub fn put(&mut self, storage: &StorageKey, key: &str, mut object: Value) -> Value {
        self.rv += 1;
        set_resource_version(&mut object, self.rv);
        let old = self
            .objects
            .entry(storage.clone())
            .or_default()
            .insert(key.to_owned(), object.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(storage, kind, object.clone(), old);
        object
    }

    /// Remove the object, recording a DELETED event that carries a new resourceVersion.
    pub fn remove(&mut self, storage: &StorageKey, key: &str) -> Option<Value> {
        let mut old = self.objects.get_mut(storage)?.remove(key)?;
        self.rv += 1;
        let prior = old.clone();
        set_resource_version(&mut old, self.rv);
        self.record(storage, EventType::Deleted, old.clone(), Some(prior));
        Some(old)
    }

    /// Drop a whole collection (a deleted CRD's objects), each with its DELETED event.
    pub fn remove_all(&mut self, storage: &StorageKey) {
        let keys: Vec<String> = self
            .objects
            .get(storage)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            self.remove(storage, &k);
        }
    }

    fn record(&mut self, storage: &StorageKey, kind: EventType, object: Value, old: Option<Value>) {
        let event = Arc::new(Event {
            rv: self.rv,
            storage: storage.clone(),
            kind,
            object,
            old,
        });
        self.log.push_back(event.clone());
        while self.log.len() > self.window {
            if let Some(dropped) = self.log.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        // No receivers is normal: nobody watches.
        let _ = self.tx.send(event);
    }

    /// Events after `rv` still in the window, and a receiver for later ones, taken atomically so
    /// no event falls between the two. Err carries the oldest resourceVersion still replayable.
    pub fn watch_from(&self, rv: u64) -> Result<Replay, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        let backlog = self.log.iter().filter(|e| e.rv > rv).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Every stored object with its collection, for garbage collection and namespace deletion.
    pub fn all(&self) -> impl Iterator<Item = (&StorageKey, &String, &Value)> {
        self.objects
            .iter()
            .flat_map(|(s, m)| m.iter().map(move |(k, v)| (s, k, v)))
    }
}

fn set_resource_version(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_owned(), json!(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> StorageKey {
        (String::new(), "pods".to_owned())
    }

    #[test]
    fn resource_versions_increase_and_events_replay_from_a_point() {
        let mut s = Store::new(3);
        let a = s.put(&pods(), "ns/a", json!({"metadata": {"name": "a"}}));
        let b = s.put(
            &pods(),
            "ns/a",
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}}),
        );
        assert!(meta_str(&b, "resourceVersion") > meta_str(&a, "resourceVersion"));
        let (backlog, _) = s.watch_from(2).unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].kind, EventType::Modified);
        s.remove(&pods(), "ns/a");
        s.put(&pods(), "ns/b", json!({"metadata": {"name": "b"}}));
        // Four events, window of three: the first is compacted away.
        assert_eq!(s.watch_from(1).err(), Some(2));
        assert!(s.watch_from(2).is_ok());
    }

    #[test]
    fn range_is_sorted_and_scoped_to_a_namespace() {
        let mut s = Store::new(10);
        for k in ["b/x", "a/y", "a/x", "c/z"] {
            s.put(&pods(), k, json!({"metadata": {}}));
        }
        let keys: Vec<&String> = s.range(&pods(), Some("a"), None).map(|(k, _)| k).collect();
        assert_eq!(keys, ["a/x", "a/y"]);
        let after: Vec<&String> = s
            .range(&pods(), None, Some("a/y"))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(after, ["b/x", "c/z"]);
    }
}
