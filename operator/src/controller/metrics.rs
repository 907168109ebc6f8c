//! Reconcile metrics (`multus_controller_*`, labels bounded by controller and error category) and
//! the `/healthz`, `/readyz`, `/metrics` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::error::ControllerError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: &'static str,
}

type HistogramFamily = Family<ControllerLabel, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The controller's metrics.
pub struct Metrics {
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: HistogramFamily,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let writes = Family::<WriteLabels, Counter>::default();
        let leader = Gauge::default();
        let mut registry = Registry::with_prefix("multus_controller");
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed", errors.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the API server",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        Self {
            reconciles,
            errors,
            duration,
            writes,
            leader,
            registry,
        }
    }

    /// Count a reconcile of `controller` and time it until the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            start: Instant::now(),
        }
    }

    pub fn error(&self, controller: &'static str, error: &ControllerError) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller,
                category: error.category(),
            })
            .inc();
    }

    pub fn write(&self, kind: &'static str) {
        self.writes.get_or_create(&WriteLabels { kind }).inc();
    }

    /// Every write sent so far, all kinds together.
    pub fn writes_total(&self) -> u64 {
        [
            "NetworkAttachmentDefinition",
            "SriovNetwork",
            "SriovNetworkNodeState",
            "SriovNetworkNodePolicy",
        ]
        .iter()
        .map(|kind| self.writes.get_or_create(&WriteLabels { kind }).get())
        .sum()
    }

    /// Reconciles run so far by `controller`.
    pub fn reconciles_total(&self, controller: &'static str) -> u64 {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .get()
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&ControllerLabel {
                controller: self.controller,
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// What `/readyz` reports: true once every watch has listed its objects.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the controller's health endpoints report.
struct ControllerEndpoints {
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

impl crate::health::Endpoints for ControllerEndpoints {
    fn ready(&self) -> bool {
        self.ready.get()
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}

/// Bind now, so a bad address fails at start.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ControllerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::ServeHealth {
            addr: addr.to_string(),
            source,
        })
}

/// Serve the three endpoints until shutdown.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let endpoints = Arc::new(ControllerEndpoints { metrics, ready });
    crate::health::serve(listener, endpoints, shutdown).await;
    Ok(())
}
