//! Closed value sets shared by the SR-IOV kinds. Each serialises to exactly the string upstream's
//! CRD enum allows, so the derived schema carries the same `enum` the API server enforces.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Driver the VFs of a policy are bound to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeviceType {
    /// The kernel's default VF driver (a netdevice appears in the pod).
    #[default]
    #[serde(rename = "netdevice")]
    Netdevice,
    /// `vfio-pci`, for DPDK and other user-space drivers.
    #[serde(rename = "vfio-pci")]
    VfioPci,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Netdevice => "netdevice",
            Self::VfioPci => "vfio-pci",
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// NIC embedded-switch mode, set through devlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ESwitchMode {
    Legacy,
    Switchdev,
}

impl ESwitchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Switchdev => "switchdev",
        }
    }
}

impl fmt::Display for ESwitchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind of vDPA device created on each VF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VdpaType {
    Virtio,
    Vhost,
}

impl VdpaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtio => "virtio",
            Self::Vhost => "vhost",
        }
    }
}

impl fmt::Display for VdpaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RDMA subsystem namespace mode of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RdmaMode {
    Shared,
    Exclusive,
}

/// Outcome of the node agent's last attempt to apply a NodeState.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SyncStatus {
    Succeeded,
    InProgress,
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::InProgress => "InProgress",
            Self::Failed => "Failed",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// OVS bridge fail mode (OVSDB `Bridge.fail_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OvsFailMode {
    Secure,
    Standalone,
}

/// The link types a policy may request. Upstream accepts both cases and copies the value verbatim
/// into the NodeState, so the field stays a string on the wire; these helpers compare it the way
/// upstream does (case-insensitively).
pub const POLICY_LINK_TYPES: [&str; 4] = ["eth", "ETH", "ib", "IB"];

/// Whether a link type string names InfiniBand (`ib`/`IB`, any case).
pub fn is_infiniband(link_type: &str) -> bool {
    link_type.eq_ignore_ascii_case("ib")
}

/// Whether a link type string names Ethernet (`eth`/`ETH`, any case).
pub fn is_ethernet(link_type: &str) -> bool {
    link_type.eq_ignore_ascii_case("eth")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_upstream_wire_values() {
        assert_eq!(
            serde_json::to_value(DeviceType::VfioPci).unwrap(),
            "vfio-pci"
        );
        assert_eq!(
            serde_json::to_value(DeviceType::default()).unwrap(),
            "netdevice"
        );
        assert_eq!(
            serde_json::to_value(ESwitchMode::Switchdev).unwrap(),
            "switchdev"
        );
        assert_eq!(
            serde_json::to_value(SyncStatus::InProgress).unwrap(),
            "InProgress"
        );
        assert_eq!(
            serde_json::to_value(RdmaMode::Exclusive).unwrap(),
            "exclusive"
        );
        assert_eq!(serde_json::to_value(OvsFailMode::Secure).unwrap(), "secure");
        assert!(serde_json::from_value::<DeviceType>(serde_json::json!("vfio")).is_err());
    }

    #[test]
    fn link_types_compare_case_insensitively() {
        assert!(is_infiniband("IB") && is_infiniband("ib"));
        assert!(!is_infiniband("eth"));
        assert!(is_ethernet("ETH") && !is_ethernet("ib"));
    }
}
