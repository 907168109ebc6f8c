//! The CNI agent's metrics (prometheus-client, names prefixed `multus_agent_`, bounded labels:
//! `kind` is one of a handful of output kinds, `operation` an error category).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What an output is: `nad`, `multus_config`, `kubeconfig`, `binary`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// What failed: an error category ([`super::CniAgentError::category`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

/// Counters and gauges, cheap to clone (each metric is an `Arc` inside).
#[derive(Clone, Default)]
pub struct AgentMetrics {
    pub reconciles: Family<KindLabel, Counter>,
    pub files_written: Family<KindLabel, Counter>,
    pub files_removed: Family<KindLabel, Counter>,
    pub errors: Family<OperationLabel, Counter>,
    /// Each time a NAD is found invalid: when first seen so, and again only when its problem
    /// changed (a retry pass or a re-list over the same NAD does not count it again).
    pub nads_rejected: Counter,
    /// NADs invalid now, so not rendered: what an alert wants.
    pub nads_invalid: Gauge,
    pub nad_files: Gauge,
}

impl AgentMetrics {
    /// Register every metric under `multus_agent_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("multus_agent");
        r.register(
            "reconciles",
            "Passes that brought an output up to date",
            self.reconciles.clone(),
        );
        r.register(
            "files_written",
            "Files written under the host root",
            self.files_written.clone(),
        );
        r.register(
            "files_removed",
            "Stale files removed under the host root",
            self.files_removed.clone(),
        );
        r.register("errors", "Failed operations", self.errors.clone());
        r.register(
            "nads_rejected",
            "Times a NetworkAttachmentDefinition was found invalid (again only when its problem changed)",
            self.nads_rejected.clone(),
        );
        r.register(
            "nads_invalid",
            "NetworkAttachmentDefinitions not rendered now because they fail validation",
            self.nads_invalid.clone(),
        );
        r.register(
            "nad_files",
            "Rendered NetworkAttachmentDefinition files on this node",
            self.nad_files.clone(),
        );
    }

    pub fn written(&self, kind: &'static str) {
        self.files_written.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn removed(&self, kind: &'static str) {
        self.files_removed.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn reconciled(&self, kind: &'static str) {
        self.reconciles.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn failed(&self, error: &super::CniAgentError) {
        self.errors
            .get_or_create(&OperationLabel {
                operation: error.category(),
            })
            .inc();
    }
}
