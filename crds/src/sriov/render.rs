//! SriovNetwork → NetworkAttachmentDefinition, rendered as upstream's operator does
//! (sriov-spec §1.5): same name, target namespace, exactly two annotations, and a CNI config of
//! type `sriov` whose keys come in upstream's fixed order, pretty-printed with four spaces.
//!
//! Pure: the controller, `multusctl` and the offline run all call [`render_nad`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::{Map, Value};

use super::network::SriovNetwork;
use crate::constants::{RESOURCE_NAME_ANNOTATION, SRIOV_OWNER_REF_ANNOTATION};
use crate::nad::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};

/// `cniVersion` of every rendered config (upstream ≥ v1.3; earlier releases wrote `0.3.1`).
pub const CNI_VERSION: &str = "1.0.0";
/// CNI plugin type of a SriovNetwork.
pub const CNI_TYPE: &str = "sriov";

/// Why a SriovNetwork cannot be rendered. Each names the field and carries the offending text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("SriovNetwork has no name")]
    MissingName,
    #[error("SriovNetwork {name} has no namespace and no spec.networkNamespace")]
    MissingNamespace { name: String },
    #[error("spec.{field} of SriovNetwork {name} is not a JSON object: {reason} (text: {text:?})")]
    NotAJsonObject {
        name: String,
        field: &'static str,
        text: String,
        reason: String,
    },
    #[error(
        "spec.metaPlugins of SriovNetwork {name} is not a comma-separated list of JSON objects: {reason}"
    )]
    MetaPlugins { name: String, reason: String },
}

impl RenderError {
    /// Bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::MissingName | Self::MissingNamespace { .. } => "metadata",
            Self::NotAJsonObject { .. } | Self::MetaPlugins { .. } => "invalid_json",
        }
    }
}

/// The `owner-ref` annotation value naming `net`: `SriovNetwork.<group>/<namespace>/<name>`.
pub fn owner_ref_value(namespace: &str, name: &str) -> String {
    format!("SriovNetwork.{}/{namespace}/{name}", super::GROUP)
}

/// The `resourceName` annotation value: `<prefix>/<resourceName>`.
pub fn resource_name_value(prefix: &str, resource_name: &str) -> String {
    format!("{prefix}/{resource_name}")
}

/// The NAD upstream renders for `net`, with `resource_prefix` (upstream's `RESOURCE_PREFIX`).
/// Carries no ownerReference, labels or finalizers: those are the controller's business.
pub fn render_nad(
    net: &SriovNetwork,
    resource_prefix: &str,
) -> Result<NetworkAttachmentDefinition, RenderError> {
    let name = net
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(RenderError::MissingName)?;
    let own_namespace = net.metadata.namespace.as_deref().unwrap_or_default();
    let target = net
        .target_namespace()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RenderError::MissingNamespace {
            name: name.to_owned(),
        })?;
    let config = render_config(net, name)?;
    let annotations = BTreeMap::from([
        (
            RESOURCE_NAME_ANNOTATION.to_owned(),
            resource_name_value(resource_prefix, &net.spec.resource_name),
        ),
        (
            SRIOV_OWNER_REF_ANNOTATION.to_owned(),
            owner_ref_value(own_namespace, name),
        ),
    ]);
    Ok(NetworkAttachmentDefinition {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(target.to_owned()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: NetworkAttachmentDefinitionSpec {
            config: Some(config),
        },
    })
}

/// The CNI config text of `net` (named `name`), four-space indented as upstream stores it.
pub fn render_config(net: &SriovNetwork, name: &str) -> Result<String, RenderError> {
    let s = &net.spec;
    let mut sriov = Map::new();
    sriov.insert("type".into(), CNI_TYPE.into());
    sriov.insert("vlan".into(), s.vlan.into());
    if !s.spoof_chk.is_empty() {
        sriov.insert("spoofchk".into(), s.spoof_chk.clone().into());
    }
    if !s.trust.is_empty() {
        sriov.insert("trust".into(), s.trust.clone().into());
    }
    sriov.insert("vlanQoS".into(), s.vlan_qos.into());
    if !s.vlan_proto.is_empty() {
        sriov.insert("vlanProto".into(), s.vlan_proto.clone().into());
    }
    if let Some(rate) = s.min_tx_rate {
        sriov.insert("min_tx_rate".into(), rate.into());
    }
    if let Some(rate) = s.max_tx_rate {
        sriov.insert("max_tx_rate".into(), rate.into());
    }
    if !s.capabilities.is_empty() {
        let caps = json_object(name, "capabilities", &s.capabilities)?;
        sriov.insert("capabilities".into(), caps);
    }
    if !s.link_state.is_empty() {
        sriov.insert("link_state".into(), s.link_state.clone().into());
    }
    if !s.log_level.is_empty() {
        sriov.insert("logLevel".into(), s.log_level.clone().into());
    }
    if !s.log_file.is_empty() {
        sriov.insert("logFile".into(), s.log_file.clone().into());
    }
    let ipam = if s.ipam.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        json_object(name, "ipam", &s.ipam)?
    };
    sriov.insert("ipam".into(), ipam);

    let mut top = Map::new();
    top.insert("cniVersion".into(), CNI_VERSION.into());
    top.insert("name".into(), name.into());
    if s.meta_plugins.trim().is_empty() {
        top.extend(sriov);
    } else {
        let mut plugins = vec![Value::Object(sriov)];
        plugins.extend(meta_plugins(name, &s.meta_plugins)?);
        top.insert("plugins".into(), Value::Array(plugins));
    }
    Ok(pretty(&Value::Object(top)))
}

fn json_object(name: &str, field: &'static str, text: &str) -> Result<Value, RenderError> {
    let err = |reason: String| RenderError::NotAJsonObject {
        name: name.to_owned(),
        field,
        text: text.to_owned(),
        reason,
    };
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(err("not an object".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

/// `metaPlugins` is spliced into a JSON array by upstream: one or more objects separated by
/// commas, without the brackets.
fn meta_plugins(name: &str, text: &str) -> Result<Vec<Value>, RenderError> {
    let err = |reason: String| RenderError::MetaPlugins {
        name: name.to_owned(),
        reason,
    };
    let list: Vec<Value> =
        serde_json::from_str(&format!("[{text}]")).map_err(|e| err(e.to_string()))?;
    if let Some(i) = list.iter().position(|v| !v.is_object()) {
        return Err(err(format!("entry {i} is not an object")));
    }
    Ok(list)
}

/// Pretty-print with a four-space indent (Go's `json.Indent(.., "", "    ")`).
fn pretty(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising a `Value` into a Vec cannot fail, and the output is UTF-8.
    if value.serialize(&mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sriov::SriovNetworkSpec;

    fn net(ns: &str, name: &str, spec: serde_json::Value) -> SriovNetwork {
        let mut n = SriovNetwork::new(
            name,
            serde_json::from_value::<SriovNetworkSpec>(spec).unwrap(),
        );
        n.metadata.namespace = Some(ns.into());
        n
    }

    #[test]
    fn worked_example_of_the_spec_with_meta_plugins() {
        let n = net(
            "sriov-network-operator",
            "net-a",
            serde_json::json!({
                "resourceName": "fastnic", "networkNamespace": "app", "vlan": 120,
                "spoofChk": "off", "linkState": "enable", "maxTxRate": 2000,
                "capabilities": "{\"mac\": true}", "ipam": "{ \"type\": \"static\" }",
                "metaPlugins": "{\"type\": \"tuning\", \"sysctl\": {\"net.ipv6.conf.IFNAME.disable_ipv6\": \"1\"}}"
            }),
        );
        let nad = render_nad(&n, "openshift.io").unwrap();
        assert_eq!(nad.metadata.namespace.as_deref(), Some("app"));
        assert_eq!(nad.metadata.name.as_deref(), Some("net-a"));
        let ann = nad.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.len(), 2);
        assert_eq!(ann[RESOURCE_NAME_ANNOTATION], "openshift.io/fastnic");
        assert_eq!(
            ann[SRIOV_OWNER_REF_ANNOTATION],
            "SriovNetwork.sriovnetwork.openshift.io/sriov-network-operator/net-a"
        );
        let expected = r#"{
    "cniVersion": "1.0.0",
    "name": "net-a",
    "plugins": [
        {
            "type": "sriov",
            "vlan": 120,
            "spoofchk": "off",
            "vlanQoS": 0,
            "max_tx_rate": 2000,
            "capabilities": {
                "mac": true
            },
            "link_state": "enable",
            "logLevel": "info",
            "ipam": {
                "type": "static"
            }
        },
        {
            "type": "tuning",
            "sysctl": {
                "net.ipv6.conf.IFNAME.disable_ipv6": "1"
            }
        }
    ]
}"#;
        assert_eq!(nad.spec.config.as_deref(), Some(expected));
    }

    #[test]
    fn without_meta_plugins_keys_sit_at_top_level_in_order() {
        let n = net(
            "app",
            "n1",
            serde_json::json!({
                "resourceName": "r", "vlan": 7, "trust": "on", "vlanQoS": 3, "vlanProto": "802.1ad",
                "minTxRate": 10, "logLevel": "", "logFile": "/var/log/sriov.log"
            }),
        );
        let text = render_config(&n, "n1").unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "cniVersion",
                "name",
                "type",
                "vlan",
                "trust",
                "vlanQoS",
                "vlanProto",
                "min_tx_rate",
                "logFile",
                "ipam"
            ]
        );
        assert_eq!(v["ipam"], serde_json::json!({}));
        let nad = render_nad(&n, "example.com").unwrap();
        assert_eq!(nad.metadata.namespace.as_deref(), Some("app"));
        assert_eq!(nad.resource_name(), Some("example.com/r"));
    }

    #[test]
    fn several_meta_plugins_are_appended_in_order() {
        let n = net(
            "app",
            "n",
            serde_json::json!({"resourceName": "r",
                "metaPlugins": "{\"type\":\"tuning\"}, {\"type\":\"portmap\"}"}),
        );
        let v: Value = serde_json::from_str(&render_config(&n, "n").unwrap()).unwrap();
        let types: Vec<&str> = v["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["sriov", "tuning", "portmap"]);
    }

    #[test]
    fn invalid_json_fields_are_errors_naming_the_field() {
        let n = net(
            "app",
            "n",
            serde_json::json!({"resourceName": "r", "ipam": "{type: x"}),
        );
        let e = render_nad(&n, "p").unwrap_err();
        assert!(
            matches!(e, RenderError::NotAJsonObject { field: "ipam", .. }),
            "{e}"
        );
        assert_eq!(e.category(), "invalid_json");
        let n = net(
            "app",
            "n",
            serde_json::json!({"resourceName": "r", "capabilities": "[1]"}),
        );
        assert!(render_nad(&n, "p").is_err());
        let n = net(
            "app",
            "n",
            serde_json::json!({"resourceName": "r", "metaPlugins": "1, 2"}),
        );
        assert!(matches!(
            render_nad(&n, "p"),
            Err(RenderError::MetaPlugins { .. })
        ));
        let no_ns = SriovNetwork::new("x", SriovNetworkSpec::default());
        assert!(matches!(
            render_nad(&no_ns, "p"),
            Err(RenderError::MissingNamespace { .. })
        ));
    }

    #[test]
    fn whitespace_inside_ipam_strings_is_kept() {
        // Upstream strips every whitespace character from the IPAM text, including inside
        // string values; we keep values intact (docs/decisions.md).
        let n = net(
            "app",
            "n",
            serde_json::json!({"resourceName": "r", "ipam": "{\"type\": \"static\", \"note\": \"a b\"}"}),
        );
        let v: Value = serde_json::from_str(&render_config(&n, "n").unwrap()).unwrap();
        assert_eq!(v["ipam"]["note"], "a b");
    }
}
