//! `SriovNetworkNodeState`: one per node, named after it. The controller writes the desired PF/VF
//! layout into `spec` (the merge of all matching policies); the node agent reports the NICs it
//! found into `status` (sriov-spec §3.2–§3.3). Status keys keep upstream's irregular spelling
//! (`totalvfs`, `Vfs`, `Vlan`) so upstream tools read our objects and vice versa.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bridge::NodeBridges;
use super::values::{DeviceType, ESwitchMode, RdmaMode, SyncStatus, VdpaType};
use super::vfrange::{VfRange, VfRangeError};

/// NodeState annotation: the agent's wish (`Idle`, `Drain_Required`, `Reboot_Required`).
pub const DESIRED_STATE_ANNOTATION: &str = "sriovnetwork.openshift.io/desired-state";
/// NodeState annotation: the drain controller's progress (`Idle`, `Draining`, `DrainComplete`).
pub const CURRENT_STATE_ANNOTATION: &str = "sriovnetwork.openshift.io/current-state";
/// Grammar of a VF group's `vfRange`.
pub const VF_RANGE_PATTERN: &str = r"^[0-9]+-[0-9]+$";

// clippy reads the repeated `type_` of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sriovnetwork.openshift.io",
    version = "v1",
    kind = "SriovNetworkNodeState",
    plural = "sriovnetworknodestates",
    singular = "sriovnetworknodestate",
    namespaced,
    status = "SriovNetworkNodeStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Desired (spec) and discovered (status) SR-IOV configuration of one node.",
    printcolumn(
        name = "Sync Status",
        type_ = "string",
        json_path = ".status.syncStatus"
    ),
    printcolumn(
        name = "Desired Sync State",
        type_ = "string",
        json_path = ".metadata.annotations.sriovnetwork\\.openshift\\.io/desired-state"
    ),
    printcolumn(
        name = "Current Sync State",
        type_ = "string",
        json_path = ".metadata.annotations.sriovnetwork\\.openshift\\.io/current-state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SriovNetworkNodeStateSpec {
    /// PFs to configure, one entry per PF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Software bridges to configure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridges: Option<NodeBridges>,
    /// Node-wide settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<NodeSystem>,
}

/// Desired configuration of one PF.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub pci_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub num_vfs: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub mtu: i32,
    /// Copied verbatim from the policy (`eth`/`ETH`/`ib`/`IB`) or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_type: String,
    #[serde(
        default,
        rename = "eSwitchMode",
        skip_serializing_if = "Option::is_none"
    )]
    pub e_switch_mode: Option<ESwitchMode>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub externally_managed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vf_groups: Vec<VfGroup>,
}

/// A range of VFs of one PF, belonging to one policy and resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VfGroup {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_name: String,
    #[serde(default)]
    pub device_type: DeviceType,
    /// `"<start>-<end>"`, inclusive.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = VF_RANGE_PATTERN))]
    pub vf_range: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy_name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub mtu: i32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_rdma: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa_type: Option<VdpaType>,
}

impl VfGroup {
    /// The parsed `vfRange`.
    pub fn range(&self) -> Result<VfRange, VfRangeError> {
        VfRange::parse(&self.vf_range)
    }
}

/// Node-wide settings (desired in spec, discovered in status).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSystem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_mode: Option<RdmaMode>,
}

/// What the node agent found and how its last apply went.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SriovNetworkNodeStateStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridges: Option<NodeBridges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<NodeSystem>,
    /// Absent before the first sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatus>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_sync_error: String,
}

// Strings stay strings: they are facts read from sysfs, netlink and devlink, not choices.
/// A PF found on the node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Alternative interface names (`ip link property add altname`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub pci_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    #[serde(default, rename = "deviceID", skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    /// Cloud network filter (`openstack/NetworkID:<id>`), set on cloud platforms.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net_filter: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: i32,
    /// Current `sriov_numvfs`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_vfs: i32,
    /// `"<speed> Mb/s"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_speed: String,
    /// `ETH`, `IB` or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_type: String,
    /// `up` or `down`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_admin_state: String,
    /// From devlink; `legacy` when devlink is unavailable.
    #[serde(
        default,
        rename = "eSwitchMode",
        skip_serializing_if = "String::is_empty"
    )]
    pub e_switch_mode: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub externally_managed: bool,
    // upstream spells this key in lower case
    /// Most VFs the PF supports (`sriov_totalvfs`).
    #[serde(default, rename = "totalvfs", skip_serializing_if = "is_zero")]
    pub total_vfs: i32,
    // upstream spells this key `Vfs`
    /// The PF's VFs.
    #[serde(default, rename = "Vfs", skip_serializing_if = "Vec::is_empty")]
    pub vfs: Vec<VirtualFunction>,
}

impl InterfaceStatus {
    /// Whether `name` is this PF's name or one of its alternative names.
    pub fn has_name(&self, name: &str) -> bool {
        self.name == name || self.alt_names.iter().any(|a| a == name)
    }
}

/// A VF found on the node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualFunction {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    // declared upstream but never filled by its daemon
    /// What the VF is assigned to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assigned: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub pci_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    #[serde(default, rename = "deviceID", skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    // upstream spells this key `Vlan`; declared but never filled by its daemon
    /// VLAN of the VF.
    #[serde(default, rename = "Vlan", skip_serializing_if = "is_zero")]
    pub vlan: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: i32,
    /// VF index on its PF.
    #[serde(rename = "vfID")]
    pub vf_id: i32,
    /// `virtio` or `vhost` when a vDPA device exists.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vdpa_type: String,
    /// switchdev representor netdev.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub representor_name: String,
    /// RDMA node GUID.
    #[serde(default, rename = "guid", skip_serializing_if = "String::is_empty")]
    pub guid: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

impl SriovNetworkNodeState {
    /// The discovered PF with this PCI address.
    pub fn pf_by_pci_address(&self, pci_address: &str) -> Option<&InterfaceStatus> {
        self.status
            .as_ref()?
            .interfaces
            .iter()
            .find(|i| i.pci_address == pci_address)
    }

    /// The discovered PF with this name or alternative name.
    pub fn pf_by_name(&self, name: &str) -> Option<&InterfaceStatus> {
        self.status
            .as_ref()?
            .interfaces
            .iter()
            .find(|i| i.has_name(name))
    }

    /// The last reported sync status, if any.
    pub fn sync_status(&self) -> Option<SyncStatus> {
        self.status.as_ref()?.sync_status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream_state() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "sriovnetwork.openshift.io/v1",
            "kind": "SriovNetworkNodeState",
            "metadata": {"name": "worker-0", "namespace": "sriov-network-operator"},
            "spec": {
                "interfaces": [{
                    "pciAddress": "0000:3b:00.0", "name": "ens1f0", "numVfs": 8, "mtu": 9000,
                    "linkType": "eth", "eSwitchMode": "legacy",
                    "vfGroups": [
                        {"resourceName": "b", "deviceType": "vfio-pci", "vfRange": "4-7", "policyName": "p2", "mtu": 9000},
                        {"resourceName": "a", "deviceType": "netdevice", "vfRange": "0-3", "policyName": "p1", "mtu": 1500, "isRdma": true}
                    ]
                }],
                "bridges": {"ovs": [{"name": "br-0000_3b_00.0",
                    "bridge": {"datapathType": "netdev", "failMode": "secure"},
                    "uplinks": [{"pciAddress": "0000:3b:00.0", "name": "ens1f0", "interface": {"type": "dpdk", "mtuRequest": 9000}}]}]},
                "system": {"rdmaMode": "exclusive"}
            },
            "status": {
                "syncStatus": "Succeeded",
                "system": {"rdmaMode": "shared"},
                "interfaces": [{
                    "name": "ens1f0", "altNames": ["enp59s0f0"], "pciAddress": "0000:3b:00.0",
                    "vendor": "8086", "deviceID": "159b", "driver": "ice", "mac": "b4:96:91:00:00:01",
                    "mtu": 9000, "linkType": "ETH", "linkSpeed": "25000 Mb/s", "linkAdminState": "up",
                    "eSwitchMode": "legacy", "numVfs": 8, "totalvfs": 128,
                    "Vfs": [{"vfID": 0, "pciAddress": "0000:3b:01.0", "driver": "iavf", "name": "ens1f0v0",
                             "mac": "aa:bb:cc:00:00:10", "mtu": 1500, "vendor": "8086", "deviceID": "1889",
                             "Vlan": 100, "assigned": "sriov-cni", "guid": "0x1"}]
                }]
            }
        })
    }

    #[test]
    fn upstream_wire_keys_round_trip_unchanged() {
        let json = upstream_state();
        let state: SriovNetworkNodeState = serde_json::from_value(json.clone()).unwrap();
        let status = state.status.as_ref().unwrap();
        assert_eq!(status.interfaces[0].total_vfs, 128);
        assert_eq!(status.interfaces[0].vfs[0].vlan, 100);
        assert_eq!(state.sync_status(), Some(SyncStatus::Succeeded));
        assert_eq!(serde_json::to_value(&state).unwrap(), json);
    }

    #[test]
    fn lookups_by_name_alt_name_and_address() {
        let state: SriovNetworkNodeState = serde_json::from_value(upstream_state()).unwrap();
        assert!(state.pf_by_name("enp59s0f0").is_some());
        assert!(state.pf_by_name("ens1f0").is_some());
        assert!(state.pf_by_name("ens1f1").is_none());
        assert!(state.pf_by_pci_address("0000:3b:00.0").is_some());
        let group = &state.spec.interfaces[0].vf_groups[0];
        assert_eq!(group.range(), Ok(VfRange { start: 4, end: 7 }));
    }

    #[test]
    fn fresh_state_has_no_sync_status() {
        let state = SriovNetworkNodeState::new("n", SriovNetworkNodeStateSpec::default());
        assert_eq!(state.sync_status(), None);
        assert_eq!(
            serde_json::to_value(&state.spec).unwrap(),
            serde_json::json!({})
        );
    }
}
