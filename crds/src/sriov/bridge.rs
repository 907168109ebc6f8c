//! Open vSwitch bridge settings for a PF in switchdev mode: what a policy asks for
//! (`spec.bridge.ovs`) and what the NodeState records per bridge (`spec.bridges.ovs[]`).
//! The option maps are passed through to OVSDB unchanged.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::OvsFailMode;

/// `spec.bridge` of a policy. Only `ovs` exists today; an empty object means "no bridge".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyBridges {
    /// Put the PF uplink into an OVS bridge (needs `eSwitchMode: switchdev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<OvsConfig>,
}

impl PolicyBridges {
    /// Whether a bridge is actually requested (`bridge: {}` is not a request).
    pub fn is_requested(&self) -> bool {
        self.ovs.is_some()
    }
}

/// The OVS bridge and uplink settings of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OvsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<OvsBridgeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<OvsUplinkConfig>,
}

/// Options of the OVSDB `Bridge` row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvsBridgeConfig {
    /// `datapath_type`, e.g. `netdev` for a DPDK bridge.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub datapath_type: String,
    #[serde(
        default,
        rename = "externalIDs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub external_ids: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<OvsFailMode>,
}

/// The uplink (PF) side of a policy bridge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OvsUplinkConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<OvsInterfaceConfig>,
}

/// Options of the OVSDB `Interface` row for the PF.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvsInterfaceConfig {
    /// Interface type, e.g. `dpdk`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "externalIDs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub external_ids: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_config: BTreeMap<String, String>,
    /// `mtu_request`; the policy's `mtu`, when set, takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub mtu_request: Option<i32>,
}

/// `bridges` of a NodeState (spec: desired; status: discovered).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeBridges {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ovs: Vec<OvsBridgeState>,
}

/// One OVS bridge on a node, named `br-<PF PCI address with ':' as '_'>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OvsBridgeState {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<OvsBridgeConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uplinks: Vec<OvsUplinkState>,
}

/// One uplink of a node bridge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvsUplinkState {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<OvsInterfaceConfig>,
}

/// The bridge name upstream generates for a PF: `br-` and the PCI address with `:` as `_`
/// (`0000:d8:00.0` → `br-0000_d8_00.0`).
pub fn bridge_name_for_pf(pci_address: &str) -> String {
    format!("br-{}", pci_address.replace(':', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_follow_upstream() {
        assert_eq!(bridge_name_for_pf("0000:d8:00.0"), "br-0000_d8_00.0");
    }

    #[test]
    fn ovs_config_round_trips_with_upstream_keys() {
        let json = serde_json::json!({
            "ovs": {
                "bridge": {"datapathType": "netdev", "externalIDs": {"a": "b"}, "otherConfig": {"c": "d"}, "failMode": "secure"},
                "uplink": {"interface": {"type": "dpdk", "options": {"n_rxq": "2"}, "mtuRequest": 9000}}
            }
        });
        let b: PolicyBridges = serde_json::from_value(json.clone()).unwrap();
        assert!(b.is_requested());
        assert_eq!(serde_json::to_value(&b).unwrap(), json);
        assert!(!PolicyBridges::default().is_requested());
    }
}
