//! `NetworkAttachmentDefinition` (k8s.cni.cncf.io/v1), wire-compatible with the Network Plumbing
//! WG CRD: namespaced, `spec.config` a CNI configuration as a JSON string, no status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The network's CNI configuration. Without `config`, the NAD refers to the CNI config file of
/// the same name in the node's Multus `confDir` (multi-net-spec §3.4.1).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    singular = "network-attachment-definition",
    shortname = "net-attach-def",
    shortname = "nad",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "A network a pod may attach to: a CNI configuration (multi-net-spec v1.3)."
)]
// `config` is an `Option` so that `spec: {}` round-trips unchanged.
pub struct NetworkAttachmentDefinitionSpec {
    /// A CNI network configuration (single plugin or `plugins` list), as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

impl NetworkAttachmentDefinition {
    /// Read a NAD from JSON, accepting an object with no `spec` at all (legal per multi-net-spec
    /// §3.2.4, but the derived type requires the field).
    pub fn from_value(mut value: serde_json::Value) -> Result<Self, serde_json::Error> {
        if let Some(obj) = value.as_object_mut() {
            obj.entry("spec")
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        }
        serde_json::from_value(value)
    }

    /// The CNI config text, treating an absent and an empty `config` alike, as Multus does.
    pub fn config(&self) -> Option<&str> {
        self.spec.config.as_deref().filter(|c| !c.trim().is_empty())
    }

    /// The `k8s.v1.cni.cncf.io/resourceName` annotation, if any.
    pub fn resource_name(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::constants::RESOURCE_NAME_ANNOTATION))
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nad_without_spec_or_config_round_trips() {
        let y = r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"a"}}"#;
        let nad =
            NetworkAttachmentDefinition::from_value(serde_json::from_str(y).unwrap()).unwrap();
        assert_eq!(nad.config(), None);
        let back = serde_json::to_value(&nad).unwrap();
        assert_eq!(back["spec"], serde_json::json!({}));

        let y = r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"a","namespace":"n"},"spec":{"config":"{\"type\":\"macvlan\"}"}}"#;
        let nad: NetworkAttachmentDefinition = serde_json::from_str(y).unwrap();
        assert_eq!(nad.config(), Some(r#"{"type":"macvlan"}"#));
        assert_eq!(serde_json::to_string(&nad).unwrap(), y);
    }
}
