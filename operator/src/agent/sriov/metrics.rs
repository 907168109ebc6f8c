//! The SR-IOV side's metrics (prometheus-client, names prefixed `multus_sriov_`) and its part of
//! the agent's `/readyz`. Labels are bounded: `status` is one of the three sync statuses,
//! `result` succeeded/failed, `operation` an error category ([`SriovError::category`]), and
//! `resource` one of this node's pools (as many as the NodeState's VF groups name).
//!
//! [`SriovMetrics`] is an [`Endpoints`](crate::health::Endpoints): the agent serves it through
//! the process's one health server, alone or next to the CNI side's
//! ([`crate::health::Combined`]).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use multus_crds::sriov::SyncStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::error::SriovError;
use crate::deviceplugin::Pools;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub resource: String,
    pub health: &'static str,
}

const STATUSES: [(SyncStatus, &str); 3] = [
    (SyncStatus::InProgress, "InProgress"),
    (SyncStatus::Succeeded, "Succeeded"),
    (SyncStatus::Failed, "Failed"),
];

/// The SR-IOV agent's metrics and readiness; shared by the loop and the health server.
pub struct SriovMetrics {
    registry: Registry,
    sync_status: Family<StatusLabel, Gauge>,
    applies: Family<ResultLabel, Counter>,
    apply_duration: Histogram,
    discovery_duration: Histogram,
    pool_devices: Family<PoolLabels, Gauge>,
    pods_evicted: Counter,
    sysfs_writes: Counter,
    errors: Family<OperationLabel, Counter>,
    pools: Mutex<BTreeSet<String>>,
    ready: AtomicBool,
}

impl Default for SriovMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SriovMetrics {
    pub fn new() -> Self {
        let sync_status = Family::<StatusLabel, Gauge>::default();
        let applies = Family::<ResultLabel, Counter>::default();
        // 1 ms … ~33 s: a no-op apply is a few reads; creating VFs on real NICs takes seconds.
        let apply_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        // 0.5 ms … ~1 s: discovery of a node's NICs is tens of sysfs reads per VF.
        let discovery_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 12));
        let pool_devices = Family::<PoolLabels, Gauge>::default();
        let pods_evicted = Counter::default();
        let sysfs_writes = Counter::default();
        let errors = Family::<OperationLabel, Counter>::default();
        let mut registry = Registry::with_prefix("multus_sriov");
        registry.register(
            "sync_status",
            "1 for the NodeState's current syncStatus, 0 for the others",
            sync_status.clone(),
        );
        registry.register(
            "applies",
            "Applies of the NodeState spec, by result",
            applies.clone(),
        );
        registry.register(
            "apply_duration_seconds",
            "Time to apply the NodeState spec, evictions included",
            apply_duration.clone(),
        );
        registry.register(
            "discovery_duration_seconds",
            "Time to discover the node's PFs and VFs from sysfs",
            discovery_duration.clone(),
        );
        registry.register(
            "pool_devices",
            "VFs in each device-plugin pool, by health",
            pool_devices.clone(),
        );
        registry.register(
            "pods_evicted",
            "Pods evicted because they held VFs of a PF being reconfigured",
            pods_evicted.clone(),
        );
        registry.register(
            "sysfs_writes",
            "Writes to sysfs made by applies",
            sysfs_writes.clone(),
        );
        registry.register(
            "errors",
            "Failed passes and applies, by operation",
            errors.clone(),
        );
        Self {
            registry,
            sync_status,
            applies,
            apply_duration,
            discovery_duration,
            pool_devices,
            pods_evicted,
            sysfs_writes,
            errors,
            pools: Mutex::default(),
            ready: AtomicBool::new(false),
        }
    }

    pub fn set_sync_status(&self, current: Option<SyncStatus>) {
        for (status, name) in STATUSES {
            self.sync_status
                .get_or_create(&StatusLabel { status: name })
                .set(i64::from(current == Some(status)));
        }
    }

    pub fn applied(&self, result: &Result<usize, SriovError>, took: Duration) {
        self.apply_duration.observe(took.as_secs_f64());
        let result = match result {
            Ok(writes) => {
                self.sysfs_writes.inc_by(*writes as u64);
                "succeeded"
            }
            Err(error) => {
                self.failed(error);
                "failed"
            }
        };
        self.applies.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn discovered(&self, took: Duration) {
        self.discovery_duration.observe(took.as_secs_f64());
    }

    pub fn evicted(&self, pods: usize) {
        self.pods_evicted.inc_by(pods as u64);
    }

    pub fn failed(&self, error: &SriovError) {
        self.errors
            .get_or_create(&OperationLabel {
                operation: error.category(),
            })
            .inc();
    }

    /// The VFs per pool; pools that left are dropped from the exposition.
    pub fn set_pools(&self, pools: &Pools) {
        let mut known = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in known.iter().filter(|r| !pools.contains_key(*r)) {
            for health in ["healthy", "unhealthy"] {
                self.pool_devices.remove(&PoolLabels {
                    resource: gone.clone(),
                    health,
                });
            }
        }
        *known = pools.keys().cloned().collect();
        for (resource, pool) in pools {
            let healthy = pool.devices.iter().filter(|d| d.healthy).count();
            for (health, n) in [
                ("healthy", healthy),
                ("unhealthy", pool.devices.len() - healthy),
            ] {
                self.pool_devices
                    .get_or_create(&PoolLabels {
                        resource: resource.clone(),
                        health,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Ready while the last pass reached the API server and read sysfs (apply failures do not
    /// count: they are reported in the NodeState status and retried).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The text exposition (with the `# EOF` trailer).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl crate::health::Endpoints for SriovMetrics {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn metrics(&self) -> String {
        self.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deviceplugin::{Pool, PoolDevice};
    use crate::health::Endpoints;

    fn pool(name: &str, healthy: &[bool]) -> (String, Pool) {
        let devices = healthy
            .iter()
            .enumerate()
            .map(|(i, h)| PoolDevice {
                pci: format!("0000:3c:00.{i}"),
                pf_pci: "0000:3b:00.0".into(),
                vf_index: u32::try_from(i).unwrap_or(0),
                numa_node: None,
                healthy: *h,
            })
            .collect();
        (
            name.to_owned(),
            Pool {
                resource_name: name.to_owned(),
                devices,
                ..Default::default()
            },
        )
    }

    #[test]
    fn exposition_reports_status_pools_and_applies_and_drops_pools_that_left() {
        let m = SriovMetrics::new();
        assert!(!m.ready());
        m.set_sync_status(Some(SyncStatus::Succeeded));
        m.set_pools(&Pools::from([
            pool("fastnic", &[true, true, false]),
            pool("dpdk", &[true]),
        ]));
        m.applied(&Ok(7), Duration::from_millis(3));
        m.applied(
            &Err(SriovError::UnknownPf {
                pci: "0000:00:00.0".into(),
            }),
            Duration::from_millis(1),
        );
        m.evicted(2);
        let text = m.metrics();
        for line in [
            "multus_sriov_sync_status{status=\"Succeeded\"} 1",
            "multus_sriov_sync_status{status=\"Failed\"} 0",
            "multus_sriov_pool_devices{resource=\"fastnic\",health=\"healthy\"} 2",
            "multus_sriov_pool_devices{resource=\"fastnic\",health=\"unhealthy\"} 1",
            "multus_sriov_applies_total{result=\"succeeded\"} 1",
            "multus_sriov_applies_total{result=\"failed\"} 1",
            "multus_sriov_errors_total{operation=\"spec\"} 1",
            "multus_sriov_sysfs_writes_total 7",
            "multus_sriov_pods_evicted_total 2",
            "multus_sriov_apply_duration_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        m.set_pools(&Pools::from([pool("fastnic", &[true])]));
        let text = m.metrics();
        assert!(!text.contains("dpdk"), "{text}");
        assert!(
            text.contains("multus_sriov_pool_devices{resource=\"fastnic\",health=\"healthy\"} 1")
        );
        m.set_ready(true);
        assert!(m.ready());
    }
}
