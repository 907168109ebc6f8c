//! Prometheus metrics, all prefixed `multus_webhook_`, with bounded labels only: the kind of
//! object (a fixed list) and the verdict, never names or namespaces.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The kinds the webhook reviews; anything else is `Other`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ReviewKind {
    NetworkAttachmentDefinition,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ReplicationController,
    Job,
    CronJob,
    SriovNetworkNodePolicy,
    SriovNetwork,
    SriovNetworkNodeState,
    Other,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ReviewVerdict {
    Allowed,
    Denied,
    Patched,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    pub kind: ReviewKind,
    pub verdict: ReviewVerdict,
}

/// Why a request got no review answer.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RejectReason {
    NotFound,
    MethodNotAllowed,
    UnsupportedMediaType,
    TooLarge,
    Malformed,
    Timeout,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: RejectReason,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum CachedKind {
    NetworkAttachmentDefinition,
    Node,
    SriovNetworkNodeState,
    SriovNetworkNodePolicy,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub kind: CachedKind,
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Histogram>,
    rejected: Family<RejectLabels, Counter>,
    live_lookups: Counter,
    cached: Family<CacheLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("multus_webhook");
        // 50 µs to ~3 s: a cached review takes tens of microseconds, a live lookup milliseconds.
        let reviews = Family::<ReviewLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_05, 3.0, 11,
            ))
        });
        registry.register(
            "review_duration_seconds",
            "Admission reviews answered, by kind and verdict, with the time to answer",
            reviews.clone(),
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "requests_rejected",
            "Requests answered with an HTTP error instead of a review",
            rejected.clone(),
        );
        let live_lookups = Counter::default();
        registry.register(
            "nad_live_lookups",
            "NADs missing from the cache and fetched from the API server before deciding",
            live_lookups.clone(),
        );
        let cached = Family::<CacheLabels, Gauge>::default();
        registry.register(
            "cached_objects",
            "Objects in the watch caches",
            cached.clone(),
        );
        Self {
            registry,
            reviews,
            rejected,
            live_lookups,
            cached,
        }
    }

    pub fn observe_review(&self, kind: ReviewKind, verdict: ReviewVerdict, took: Duration) {
        self.reviews
            .get_or_create(&ReviewLabels { kind, verdict })
            .observe(took.as_secs_f64());
    }

    pub fn reject(&self, reason: RejectReason) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
    }

    pub fn live_lookup(&self) {
        self.live_lookups.inc();
    }

    pub fn set_cached(&self, kind: CachedKind, count: usize) {
        self.cached
            .get_or_create(&CacheLabels { kind })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
