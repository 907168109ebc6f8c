//! The agent's caches of the objects its source delivers: NADs in every namespace and the pods of
//! this node, keyed by namespace and name. The daemon's engine reads them
//! ([`multus_cni::k8s::ObjectCache`]) before asking the API server.

use std::collections::HashMap;
use std::sync::RwLock;

use k8s_openapi::api::core::v1::Pod;
use multus_crds::NetworkAttachmentDefinition;

type Key = (String, String);

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Pods keep what the engine reads; managed fields are dropped (multus-spec §3.16).
fn trim(mut pod: Pod) -> Pod {
    pod.metadata.managed_fields = None;
    pod
}

/// Both caches.
#[derive(Default)]
pub struct Store {
    nads: RwLock<HashMap<Key, NetworkAttachmentDefinition>>,
    pods: RwLock<HashMap<Key, Pod>>,
}

impl Store {
    pub fn replace_nads(&self, nads: &[NetworkAttachmentDefinition]) {
        let map = nads.iter().map(|n| (key(&n.metadata), n.clone())).collect();
        if let Ok(mut g) = self.nads.write() {
            *g = map;
        }
    }

    pub fn apply_nad(&self, nad: &NetworkAttachmentDefinition) {
        if let Ok(mut g) = self.nads.write() {
            g.insert(key(&nad.metadata), nad.clone());
        }
    }

    /// Every NAD held, for a pass over all of them.
    pub fn nads(&self) -> Vec<NetworkAttachmentDefinition> {
        self.nads
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn delete_nad(&self, nad: &NetworkAttachmentDefinition) {
        if let Ok(mut g) = self.nads.write() {
            g.remove(&key(&nad.metadata));
        }
    }

    pub fn replace_pods(&self, pods: Vec<Box<Pod>>) {
        let map = pods
            .into_iter()
            .map(|p| (key(&p.metadata), trim(*p)))
            .collect();
        if let Ok(mut g) = self.pods.write() {
            *g = map;
        }
    }

    pub fn apply_pod(&self, pod: Pod) {
        if let Ok(mut g) = self.pods.write() {
            g.insert(key(&pod.metadata), trim(pod));
        }
    }

    pub fn delete_pod(&self, pod: &Pod) {
        if let Ok(mut g) = self.pods.write() {
            g.remove(&key(&pod.metadata));
        }
    }

    pub fn pod_count(&self) -> usize {
        self.pods.read().map(|g| g.len()).unwrap_or(0)
    }

    pub fn nad_count(&self) -> usize {
        self.nads.read().map(|g| g.len()).unwrap_or(0)
    }
}

impl multus_cni::k8s::ObjectCache for Store {
    fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.pods
            .read()
            .ok()?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn nad(&self, namespace: &str, name: &str) -> Option<NetworkAttachmentDefinition> {
        self.nads
            .read()
            .ok()?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use multus_cni::k8s::ObjectCache;

    use super::*;

    #[test]
    fn answers_lookups_and_forgets_deleted_objects() {
        let store = Store::default();
        let mut nad = NetworkAttachmentDefinition::new("blue", Default::default());
        nad.metadata.namespace = Some("ns".into());
        store.replace_nads(std::slice::from_ref(&nad));
        assert!(store.nad("ns", "blue").is_some());
        assert!(store.nad("other", "blue").is_none());
        store.delete_nad(&nad);
        assert!(store.nad("ns", "blue").is_none());
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.name = Some("p".into());
        pod.metadata.managed_fields = Some(vec![Default::default()]);
        store.apply_pod(pod.clone());
        assert!(
            store
                .pod("ns", "p")
                .unwrap()
                .metadata
                .managed_fields
                .is_none()
        );
        store.delete_pod(&pod);
        assert_eq!(store.pod_count(), 0);
    }
}
