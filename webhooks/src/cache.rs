//! The NAD cache: per NAD only what the rules read, not the object.
//!
//! A review asks three things of the NADs it does not carry itself: does `ns/name` exist and
//! which capabilities does its chain declare (pod rules), which `resourceName` does it carry
//! (injection), and which links and IPAM ranges do the other NADs use (NAD overlap warnings).
//! So an entry is the capability bits, the interned resource name and the interned links, and
//! the overlap index holds the ranges; the CNI config is parsed once, at insert, for both. The
//! namespace, resource and link strings repeat across thousands of NADs and are interned.
//! At 10,000 NADs this is about a tenth of what whole `NetworkAttachmentDefinition`s take (their
//! `ObjectMeta`, annotation maps and config text).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use multus_crds::NetworkAttachmentDefinition;
use multus_crds::annotations::networks::CapabilitySet;
use multus_crds::rules::pod::{NetworkLookup, config_capabilities};

use crate::admit::ipam::{Cidr, Footprint, footprint_of};

/// `namespace/name` of a cached NAD; shared by the map and the overlap index.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NadName {
    pub namespace: Arc<str>,
    pub name: Box<str>,
}

/// A [`NadName`] of borrowed strings; hashes exactly as the owned one (both hash two `str`s).
#[derive(Hash)]
struct NameRef<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl hashbrown::Equivalent<Arc<NadName>> for NameRef<'_> {
    fn equivalent(&self, key: &Arc<NadName>) -> bool {
        *self.name == *key.name && *self.namespace == *key.namespace
    }
}

#[derive(Debug)]
struct Entry {
    /// `None` when the chain cannot be known (no inline config, or not JSON).
    capabilities: Option<CapabilitySet>,
    resource: Option<Arc<str>>,
    /// The host links of its IPAM footprint; empty when it has none worth comparing.
    links: Box<[Arc<str>]>,
}

/// What the cache keeps of one NAD, read from whichever form the NAD arrived in.
#[derive(Clone, Copy, Debug)]
pub struct NadFacts<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// `spec.config`, when not blank.
    pub config: Option<&'a str>,
    /// The `k8s.v1.cni.cncf.io/resourceName` annotation, when not empty.
    pub resource_name: Option<&'a str>,
}

impl<'a> NadFacts<'a> {
    pub fn of(nad: &'a NetworkAttachmentDefinition) -> Self {
        Self {
            // As `NadIndex` does: a NAD without a namespace is filed under `default`.
            namespace: nad.metadata.namespace.as_deref().unwrap_or("default"),
            name: nad.metadata.name.as_deref().unwrap_or_default(),
            config: nad.config(),
            resource_name: nad.resource_name(),
        }
    }
}

/// The NADs on one link and their ranges.
type RangesOnLink = BTreeMap<Arc<NadName>, Box<[Cidr]>>;

/// The NADs by name, and their footprints by link for the overlap warnings.
#[derive(Debug, Default)]
pub struct NadCache {
    nads: hashbrown::HashMap<Arc<NadName>, Entry>,
    /// Per link, the NADs on it and their ranges; sorted so warnings come in a stable order.
    by_link: BTreeMap<Arc<str>, RangesOnLink>,
    strings: HashSet<Arc<str>>,
}

impl NadCache {
    pub fn len(&self) -> usize {
        self.nads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nads.is_empty()
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(new.clone());
        new
    }

    /// Add or replace a NAD.
    pub fn insert(&mut self, facts: NadFacts<'_>) {
        self.remove(facts.namespace, facts.name);
        // One parse of the config for both the capabilities and the footprint.
        let config: Option<serde_json::Value> = facts
            .config
            .filter(|c| !c.trim().is_empty())
            .and_then(|c| serde_json::from_str(c).ok());
        let capabilities = config.as_ref().map(config_capabilities);
        let footprint = config.as_ref().and_then(footprint_of);
        let key = Arc::new(NadName {
            namespace: self.intern(facts.namespace),
            name: facts.name.into(),
        });
        let resource = facts.resource_name.map(|r| self.intern(r));
        let links: Box<[Arc<str>]> = match footprint {
            Some(Footprint { links, ranges }) => {
                let ranges: Box<[Cidr]> = ranges.into();
                links
                    .iter()
                    .map(|link| {
                        let link = self.intern(link);
                        self.by_link
                            .entry(link.clone())
                            .or_default()
                            .insert(key.clone(), ranges.clone());
                        link
                    })
                    .collect()
            }
            None => Box::default(),
        };
        self.nads.insert(
            key,
            Entry {
                capabilities,
                resource,
                links,
            },
        );
    }

    pub fn insert_nad(&mut self, nad: &NetworkAttachmentDefinition) {
        self.insert(NadFacts::of(nad));
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        let Some((key, entry)) = self.nads.remove_entry(&NameRef { namespace, name }) else {
            return;
        };
        for link in entry.links.iter() {
            if let Some(nads) = self.by_link.get_mut(link) {
                nads.remove(&key);
                if nads.is_empty() {
                    self.by_link.remove(link);
                }
            }
        }
        // Strings no other NAD shares go too, or namespaces and links that come and go (CI,
        // tenants) would pile up until the next relist.
        let Entry {
            resource, links, ..
        } = entry;
        let namespace = key.namespace.clone();
        drop(key);
        for s in links
            .into_vec()
            .into_iter()
            .chain(resource)
            .chain([namespace])
        {
            self.forget(s);
        }
    }

    /// Drop `s` from the interned strings if the caller held the last use outside the set.
    fn forget(&mut self, s: Arc<str>) {
        // The set holds one reference and `s` another: nobody else uses it.
        if Arc::strong_count(&s) == 2 {
            self.strings.remove(&s);
        }
    }

    /// Interned strings, for tests.
    #[cfg(test)]
    fn interned(&self) -> usize {
        self.strings.len()
    }

    /// The NAD's `resourceName`, if it exists and carries one.
    pub fn resource_name(&self, namespace: &str, name: &str) -> Option<&Arc<str>> {
        self.entry(namespace, name)?.resource.as_ref()
    }

    fn entry(&self, namespace: &str, name: &str) -> Option<&Entry> {
        self.nads.get(&NameRef { namespace, name })
    }

    /// One warning per other NAD whose range overlaps one of `fp`'s, on a link both use.
    pub fn overlap_warnings(&self, namespace: &str, name: &str, fp: &Footprint) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for link in &fp.links {
            let Some(nads) = self.by_link.get(link.as_str()) else {
                continue;
            };
            for (other, ranges) in nads {
                if (&*other.namespace, &*other.name) == (namespace, name) || seen.contains(other) {
                    continue;
                }
                let hit = fp
                    .ranges
                    .iter()
                    .find_map(|mine| ranges.iter().find(|r| r.overlaps(mine)).map(|r| (mine, r)));
                if let Some((mine, theirs)) = hit {
                    seen.insert(other.clone());
                    out.push(format!(
                        "spec.config.ipam: range {mine} overlaps {theirs} of NAD {}/{} on the same {link}; pods of both networks may get the same address",
                        other.namespace, other.name
                    ));
                }
            }
        }
        out
    }
}

impl NetworkLookup for NadCache {
    fn existing_capabilities(&self, namespace: &str, name: &str) -> Option<Option<CapabilitySet>> {
        self.entry(namespace, name).map(|e| e.capabilities)
    }
}

impl FromIterator<NetworkAttachmentDefinition> for NadCache {
    fn from_iter<I: IntoIterator<Item = NetworkAttachmentDefinition>>(iter: I) -> Self {
        let mut cache = Self::default();
        iter.into_iter().for_each(|nad| cache.insert_nad(&nad));
        cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_crds::rules::pod::{NadIndex, NetworkLookup};
    use serde_json::json;

    fn nad(
        ns: &str,
        name: &str,
        config: Option<&str>,
        resource: Option<&str>,
    ) -> NetworkAttachmentDefinition {
        let mut v = json!({"metadata": {"name": name, "namespace": ns}, "spec": {}});
        if let Some(c) = config {
            v["spec"]["config"] = json!(c);
        }
        if let Some(r) = resource {
            v["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/resourceName": r});
        }
        NetworkAttachmentDefinition::from_value(v).unwrap_or_default()
    }

    #[test]
    fn the_cache_answers_as_the_index_of_whole_nads() {
        let caps = r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"macvlan","master":"eth1","capabilities":{"ips":true,"mac":true},"ipam":{"type":"static"}}]}"#;
        let nads = vec![
            nad("a", "caps", Some(caps), Some("intel.com/x")),
            nad("a", "file", None, None),
            nad("a", "blank", Some("  "), None),
            nad("a", "junk", Some("{"), Some("intel.com/x")),
            nad("b", "caps", Some(r#"{"type":"bridge"}"#), None),
        ];
        let index: NadIndex = nads.iter().cloned().collect();
        let cache: NadCache = nads.into_iter().collect();
        assert_eq!(cache.len(), 5);
        for (ns, name) in [
            ("a", "caps"),
            ("a", "file"),
            ("a", "blank"),
            ("a", "junk"),
            ("b", "caps"),
            ("a", "missing"),
            ("c", "caps"),
        ] {
            assert_eq!(
                cache.existing_capabilities(ns, name),
                index.existing_capabilities(ns, name),
                "{ns}/{name}"
            );
            assert_eq!(
                cache.resource_name(ns, name).map(|r| &**r),
                index
                    .get_nad(ns, name)
                    .and_then(NetworkAttachmentDefinition::resource_name),
                "{ns}/{name}"
            );
        }
        // The two NADs carrying the same resource share one string.
        let (x, y) = (
            cache.resource_name("a", "caps"),
            cache.resource_name("a", "junk"),
        );
        assert!(x.zip(y).is_some_and(|(x, y)| Arc::ptr_eq(x, y)));
    }

    #[test]
    fn strings_of_removed_nads_are_forgotten_unless_shared() {
        let on_eth1 = r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","master":"eth1","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#;
        let mut cache = NadCache::default();
        cache.insert_nad(&nad("tenant-1", "x", Some(on_eth1), Some("intel.com/x")));
        cache.insert_nad(&nad("tenant-1", "y", Some(on_eth1), None));
        cache.insert_nad(&nad("tenant-2", "x", Some(on_eth1), Some("intel.com/x")));
        // tenant-1, tenant-2, eth1, intel.com/x.
        assert_eq!(cache.interned(), 4);
        cache.remove("tenant-1", "x");
        assert_eq!(cache.interned(), 4, "all still used by y or tenant-2/x");
        cache.remove("tenant-1", "y");
        assert_eq!(cache.interned(), 3, "tenant-1 is gone");
        // Replacing a NAD forgets what only its old version used.
        cache.insert_nad(&nad("tenant-2", "x", Some(r#"{"type":"bridge"}"#), None));
        assert_eq!(cache.interned(), 1, "only tenant-2 is left");
        cache.remove("tenant-2", "x");
        assert_eq!(cache.interned(), 0);
        assert!(cache.is_empty());
    }

    #[test]
    fn overlaps_are_found_replaced_and_forgotten() {
        let on = |master: &str, subnet: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"macvlan","master":"{master}","ipam":{{"type":"host-local","subnet":"{subnet}"}}}}"#
            )
        };
        let mut cache = NadCache::default();
        cache.insert_nad(&nad("ns", "a", Some(&on("eth1", "10.1.0.0/16")), None));
        cache.insert_nad(&nad("other", "b", Some(&on("eth1", "10.1.2.0/24")), None));
        cache.insert_nad(&nad("ns", "c", Some(&on("eth2", "10.1.0.0/16")), None));
        let mine =
            footprint_of(&serde_json::from_str(&on("eth1", "10.1.3.0/24")).unwrap_or_default());
        let mine = mine.unwrap_or_default();
        let warnings = cache.overlap_warnings("ns", "new", &mine);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("10.1.0.0/16 of NAD ns/a on the same master eth1"),
            "{warnings:?}"
        );
        // Its own stored version is not compared; a replaced NAD keeps only its new footprint.
        assert!(cache.overlap_warnings("ns", "a", &mine).is_empty());
        cache.insert_nad(&nad("ns", "a", Some(&on("eth3", "10.1.0.0/16")), None));
        assert!(cache.overlap_warnings("ns", "new", &mine).is_empty());
        cache.remove("ns", "a");
        cache.remove("other", "b");
        assert!(
            cache.by_link.keys().all(|l| &**l == "master eth2"),
            "{:?}",
            cache.by_link
        );
        assert_eq!(cache.len(), 1);
    }
}
