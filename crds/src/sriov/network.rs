//! `SriovNetwork`: a network of SR-IOV VFs from one device-plugin resource, rendered by the
//! controller into a NetworkAttachmentDefinition of CNI type `sriov` (sriov-spec §1.4–§1.5).
//!
//! The JSON-text fields (`ipam`, `capabilities`, `metaPlugins`) stay strings: upstream splices
//! them into the CNI config as text, and the renderer and the rules need the original text.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Condition type the controller sets on a network CR.
pub const READY_CONDITION: &str = "Ready";
/// `Ready=True` reason.
pub const REASON_NETWORK_READY: &str = "NetworkReady";
/// `Ready=False` reasons.
pub const REASON_NAD_INVALID: &str = "NetworkAttachmentDefinitionInvalid";
pub const REASON_NAMESPACE_NOT_FOUND: &str = "NamespaceNotFound";
pub const REASON_NAD_NOT_FOUND: &str = "NetworkAttachmentDefinitionNotFound";

/// Default `logLevel` (upstream CRD default).
pub const DEFAULT_LOG_LEVEL: &str = "info";

fn default_log_level() -> String {
    DEFAULT_LOG_LEVEL.to_owned()
}

// clippy reads the repeated `type_` of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sriovnetwork.openshift.io",
    version = "v1",
    kind = "SriovNetwork",
    plural = "sriovnetworks",
    singular = "sriovnetwork",
    namespaced,
    status = "SriovNetworkStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An SR-IOV network, rendered into a NetworkAttachmentDefinition of CNI type sriov.",
    printcolumn(
        name = "Resource",
        type_ = "string",
        json_path = ".spec.resourceName",
        description = "Device-plugin resource name (without prefix)"
    ),
    printcolumn(
        name = "Target Namespace",
        type_ = "string",
        json_path = ".spec.networkNamespace",
        description = "Namespace of the generated NetworkAttachmentDefinition (empty: this one)"
    ),
    printcolumn(name = "VLAN", type_ = "integer", json_path = ".spec.vlan"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.minTxRate) || !has(self.maxTxRate) || self.maxTxRate == 0 || self.minTxRate <= self.maxTxRate")
        .message("minTxRate must not exceed maxTxRate (maxTxRate 0 means no cap); the kernel rejects such a VF rate")
        .field_path(".minTxRate"),
)]
pub struct SriovNetworkSpec {
    /// Device-plugin resource the VFs come from, without the prefix.
    #[schemars(length(min = 1, max = 63))]
    pub resource_name: String,

    /// Namespace of the generated NAD; only allowed when this object lives in the operator
    /// namespace. Empty: this object's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network_namespace: String,

    /// IPAM configuration as JSON object text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipam: String,

    /// VLAN ID, 0 = untagged.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 4094))]
    pub vlan: i32,

    /// VLAN QoS (802.1p priority).
    #[serde(default, rename = "vlanQoS", skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 7))]
    pub vlan_qos: i32,

    /// VLAN protocol: `802.1q`/`802.1Q` or `802.1ad`/`802.1AD`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["802.1q", "802.1Q", "802.1ad", "802.1AD"]))]
    pub vlan_proto: String,

    /// VF MAC spoof checking: `on` or `off`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["on", "off"]))]
    pub spoof_chk: String,

    /// VF trust: `on` or `off`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["on", "off"]))]
    pub trust: String,

    /// VF link state: `auto`, `enable` or `disable`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["auto", "enable", "disable"]))]
    pub link_state: String,

    /// Minimum TX rate in Mbps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_tx_rate: Option<i32>,

    /// Maximum TX rate in Mbps, 0 = no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_tx_rate: Option<i32>,

    /// CNI capabilities as JSON object text, e.g. `{"mac": true, "ips": true}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capabilities: String,

    /// Plugins chained after sriov: one or more JSON objects separated by commas (not an array).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub meta_plugins: String,

    /// sriov CNI log level; empty disables the key.
    #[serde(default = "default_log_level")]
    #[schemars(extend("enum" = ["panic", "error", "warning", "info", "debug", ""]))]
    pub log_level: String,

    /// sriov CNI log file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_file: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// Conditions set by the controller (`Ready`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SriovNetworkStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl SriovNetwork {
    /// Namespace the NAD is written to: `networkNamespace`, else this object's namespace.
    pub fn target_namespace(&self) -> Option<&str> {
        if self.spec.network_namespace.is_empty() {
            self.metadata.namespace.as_deref()
        } else {
            Some(&self.spec.network_namespace)
        }
    }

    /// The `Ready` condition, if the controller has set one.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == READY_CONDITION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_defaults_to_info() {
        let spec: SriovNetworkSpec =
            serde_json::from_value(serde_json::json!({"resourceName": "fastnic"})).unwrap();
        assert_eq!(spec.log_level, "info");
        assert_eq!(spec.vlan, 0);
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"resourceName": "fastnic", "logLevel": "info"})
        );
    }

    #[test]
    fn upstream_network_round_trips_unchanged() {
        let json = serde_json::json!({
            "apiVersion": "sriovnetwork.openshift.io/v1",
            "kind": "SriovNetwork",
            "metadata": {"name": "net-a", "namespace": "sriov-network-operator"},
            "spec": {
                "resourceName": "fastnic",
                "networkNamespace": "app",
                "ipam": "{ \"type\": \"static\" }",
                "vlan": 120,
                "vlanQoS": 3,
                "spoofChk": "off",
                "linkState": "enable",
                "maxTxRate": 2000,
                "minTxRate": 0,
                "capabilities": "{\"mac\": true}",
                "metaPlugins": "{\"type\": \"tuning\"}",
                "logLevel": ""
            },
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "NetworkReady", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
        });
        let net: SriovNetwork = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(net.target_namespace(), Some("app"));
        assert_eq!(
            net.ready_condition().map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(serde_json::to_value(&net).unwrap(), json);
    }

    #[test]
    fn target_namespace_falls_back_to_own_namespace() {
        let mut net = SriovNetwork::new("n", SriovNetworkSpec::default());
        net.metadata.namespace = Some("app".into());
        assert_eq!(net.target_namespace(), Some("app"));
        assert!(net.ready_condition().is_none());
    }
}
