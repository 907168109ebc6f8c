//! What every review reads: the settings, the caches the watches keep, the client for live
//! lookups, the metrics and the readiness.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use multus_crds::annotations::networks::CapabilitySet;
use multus_crds::rules::pod::{NetworkLookup, PodRuleOptions};
use multus_crds::rules::sriov_cluster::SriovClusterIndex;
use multus_crds::sriov::SupportedNics;

pub use crate::cache::NadCache;
use crate::metrics::{CachedKind, Metrics};

/// The rules' configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub pod_rules: PodRuleOptions,
    /// Namespace of the SR-IOV operator: where policies apply and networks may target others.
    pub operator_namespace: String,
    /// The supported-NIC list; `None` disables the NIC checks (upstream's `DEV_MODE`).
    pub supported_nics: Option<SupportedNics>,
    /// How long a live GET of a NAD missing from the cache may take.
    pub live_lookup_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pod_rules: PodRuleOptions::default(),
            operator_namespace: multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE.to_owned(),
            supported_nics: Some(SupportedNics::builtin()),
            live_lookup_timeout: Duration::from_secs(2),
        }
    }
}

/// How many caches have not finished their first list; ready at zero.
#[derive(Debug, Default)]
pub struct Readiness {
    pending: AtomicUsize,
}

impl Readiness {
    pub fn waiting_for(caches: usize) -> Self {
        Self {
            pending: AtomicUsize::new(caches),
        }
    }

    /// One cache finished its first list (call once per cache).
    pub fn synced(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn is_ready(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }
}

/// Shared by every connection.
pub struct Context {
    pub settings: Settings,
    pub nads: RwLock<NadCache>,
    pub sriov: RwLock<SriovClusterIndex>,
    /// For live lookups of NADs the cache does not have yet; `None` disables them.
    pub client: Option<kube::Client>,
    pub metrics: Metrics,
    /// The NAD cache: what `/readyz` waits for (the NAD and pod paths need nothing else).
    pub readiness: Readiness,
    /// The Node, SriovNetworkNodeState and policy caches, which the SR-IOV cluster rules need.
    /// Not part of readiness: the SR-IOV CRDs may be installed long after the webhook starts.
    pub sriov_readiness: Readiness,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("live_lookups", &self.client.is_some())
            .field("ready", &self.readiness.is_ready())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over fixed contents, ready at once (tests, benchmarks, offline use).
    pub fn with_contents(settings: Settings, nads: NadCache, sriov: SriovClusterIndex) -> Self {
        let ctx = Self {
            settings,
            nads: RwLock::new(nads),
            sriov: RwLock::new(sriov),
            client: None,
            metrics: Metrics::new(),
            readiness: Readiness::waiting_for(0),
            sriov_readiness: Readiness::waiting_for(0),
        };
        ctx.publish_sizes();
        ctx
    }

    /// A context whose caches the watches will fill: ready once the NADs have synced; the
    /// SR-IOV cluster rules wait for the three SR-IOV caches too when `sriov` is set.
    pub fn for_cluster(settings: Settings, client: kube::Client, sriov: bool) -> Self {
        Self {
            settings,
            nads: RwLock::new(NadCache::default()),
            sriov: RwLock::new(SriovClusterIndex::default()),
            client: Some(client),
            metrics: Metrics::new(),
            readiness: Readiness::waiting_for(1),
            sriov_readiness: Readiness::waiting_for(if sriov { 3 } else { 0 }),
        }
    }

    /// Read the NAD cache. A poisoned lock only means a writer panicked mid-update of a cache
    /// that the next watch event rewrites, so reading on is safe.
    pub fn read_nads(&self) -> RwLockReadGuard<'_, NadCache> {
        self.nads.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write_nads(&self, update: impl FnOnce(&mut NadCache)) {
        let mut guard = self.nads.write().unwrap_or_else(PoisonError::into_inner);
        update(&mut guard);
        self.metrics
            .set_cached(CachedKind::NetworkAttachmentDefinition, guard.len());
    }

    pub fn read_sriov(&self) -> RwLockReadGuard<'_, SriovClusterIndex> {
        self.sriov.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write_sriov(&self, update: impl FnOnce(&mut SriovClusterIndex)) {
        let mut guard = self.sriov.write().unwrap_or_else(PoisonError::into_inner);
        update(&mut guard);
        let (nodes, states, policies) = guard.sizes();
        self.metrics.set_cached(CachedKind::Node, nodes);
        self.metrics
            .set_cached(CachedKind::SriovNetworkNodeState, states);
        self.metrics
            .set_cached(CachedKind::SriovNetworkNodePolicy, policies);
    }

    fn publish_sizes(&self) {
        self.write_nads(|_| {});
        self.write_sriov(|_| {});
    }
}

/// The cache, plus NADs fetched live for this one review.
pub struct WithFetched<'a> {
    pub cached: &'a NadCache,
    pub fetched: &'a NadCache,
}

impl WithFetched<'_> {
    pub fn resource_name(&self, namespace: &str, name: &str) -> Option<&str> {
        match self.cached.contains(namespace, name) {
            true => self.cached.resource_name(namespace, name),
            false => self.fetched.resource_name(namespace, name),
        }
        .map(|r| &**r)
    }
}

impl NetworkLookup for WithFetched<'_> {
    fn existing_capabilities(&self, namespace: &str, name: &str) -> Option<Option<CapabilitySet>> {
        self.cached
            .existing_capabilities(namespace, name)
            .or_else(|| self.fetched.existing_capabilities(namespace, name))
    }
}
