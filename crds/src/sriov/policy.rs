//! `SriovNetworkNodePolicy`: which PFs on which nodes get how many VFs, bound to which driver,
//! exposed as which device-plugin resource (sriov-spec §1.2–§1.3).
//!
//! Scalars follow upstream's Go `omitempty`: a zero value is not written back. Fields whose
//! *absence* means something (`priority`, `isRdma`, `mtu`) are `Option`s so that absence survives
//! a round trip — the mutating webhook inserts `priority`/`isRdma` only when the key is missing.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bridge::PolicyBridges;
use super::values::{DeviceType, ESwitchMode, VdpaType, is_infiniband};
use super::vfrange::{PfNameError, PfNameSelector};

/// Longest `resourceName` (a Kubernetes extended-resource name part).
pub const MAX_RESOURCE_NAME_LEN: usize = 63;
/// The `resourceName` grammar (current upstream): letters and digits, with `_` and `-` allowed
/// inside. See docs/decisions.md.
pub const RESOURCE_NAME_PATTERN: &str = r"^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$";
/// Grammar of a `pfNames` entry: a name, optionally `#<first>-<last>`.
pub const PF_NAME_PATTERN: &str = r"^[^#]+(#[0-9]+-[0-9]+)?$";
/// Bounds on `pfNames`/`rootDevices` so the API server's CEL cost estimate of the range rule stays
/// within budget (an unbounded list makes the CRD itself rejected).
pub const MAX_SELECTOR_ITEMS: usize = 256;
/// Longest `pfNames` entry: an alternative name (≤127 bytes) plus a `#first-last` suffix.
pub const MAX_PF_NAME_LEN: usize = 160;
/// Priority given to a policy that does not set one (the lowest precedence).
pub const DEFAULT_PRIORITY: i32 = 99;

// Cross-field rules that need no cluster state are CEL rules on this struct, so the API server
// enforces them without the webhook; `crate::rules::sriov` checks the same and more for the
// webhook and multusctl.
/// Which PFs on which nodes get how many VFs, and how they are exposed to pods.
// clippy reads the repeated `type_` of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sriovnetwork.openshift.io",
    version = "v1",
    kind = "SriovNetworkNodePolicy",
    plural = "sriovnetworknodepolicies",
    singular = "sriovnetworknodepolicy",
    namespaced,
    status = "SriovNetworkNodePolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Which PFs on which nodes get SR-IOV VFs, and how they are exposed to pods.",
    printcolumn(
        name = "Resource",
        type_ = "string",
        json_path = ".spec.resourceName",
        description = "Device-plugin resource name (without prefix)"
    ),
    printcolumn(name = "NumVFs", type_ = "integer", json_path = ".spec.numVfs"),
    printcolumn(
        name = "Priority",
        type_ = "integer",
        json_path = ".spec.priority",
        description = "Lower number = higher precedence"
    ),
    printcolumn(name = "Device Type", type_ = "string", json_path = ".spec.deviceType"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.deviceType) && self.deviceType == 'vfio-pci' && has(self.isRdma) && self.isRdma)")
        .message("isRdma cannot be used with deviceType vfio-pci: RDMA needs the kernel VF driver (use deviceType netdevice)")
        .field_path(".isRdma"),
    validation = Rule::new("!(has(self.linkType) && self.linkType in ['ib', 'IB'] && has(self.eSwitchMode) && self.eSwitchMode == 'switchdev')")
        .message("eSwitchMode switchdev needs an Ethernet link: remove linkType ib or use eSwitchMode legacy")
        .field_path(".eSwitchMode"),
    validation = Rule::new("!has(self.vdpaType) || ((!has(self.deviceType) || self.deviceType == 'netdevice') && has(self.eSwitchMode) && self.eSwitchMode == 'switchdev')")
        .message("vdpaType needs deviceType netdevice and eSwitchMode switchdev")
        .field_path(".vdpaType"),
    validation = Rule::new("!has(self.bridge) || !has(self.bridge.ovs) || (has(self.eSwitchMode) && self.eSwitchMode == 'switchdev')")
        .message("bridge needs eSwitchMode switchdev (only switchdev uplinks can be put into an OVS bridge)")
        .field_path(".bridge"),
    validation = Rule::new("!has(self.bridge) || !has(self.bridge.ovs) || !has(self.externallyManaged) || !self.externallyManaged")
        .message("bridge cannot be used with externallyManaged: true (the operator does not own the PF)")
        .field_path(".bridge"),
    validation = Rule::new("!has(self.nicSelector.netFilter) || self.nicSelector.netFilter == '' || (!has(self.eSwitchMode) && (!has(self.bridge) || !has(self.bridge.ovs)) && (!has(self.linkType) || self.linkType in ['eth', 'ETH']))")
        .message("a nicSelector.netFilter (cloud network) policy cannot set eSwitchMode, bridge or a non-Ethernet linkType")
        .field_path(".nicSelector.netFilter"),
    validation = Rule::new("!has(self.nicSelector.pfNames) || self.nicSelector.pfNames.all(p, !p.contains('#') || (p.matches('^[^#]+#[0-9]+-[0-9]+$') && int(p.split('#')[1].split('-')[0]) <= int(p.split('#')[1].split('-')[1]) && int(p.split('#')[1].split('-')[1]) < self.numVfs))")
        .message("every pfNames VF range <pf>#<first>-<last> needs first <= last < numVfs")
        .field_path(".nicSelector.pfNames"),
)]
pub struct SriovNetworkNodePolicySpec {
    /// Device-plugin resource name, without the prefix (pods request `<prefix>/<resourceName>`).
    #[schemars(length(min = 1, max = 63), regex(pattern = RESOURCE_NAME_PATTERN))]
    pub resource_name: String,

    /// Node labels that must all be present with these values for the policy to apply.
    pub node_selector: BTreeMap<String, String>,

    /// 0–99; a lower number takes precedence. The mutating webhook inserts 99 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 99))]
    pub priority: Option<i32>,

    /// MTU of the PF (only ever raised) and of VFs bound to a kernel driver. Unset: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub mtu: Option<i32>,

    /// VFs to create on each selected PF.
    #[schemars(range(min = 0))]
    pub num_vfs: i32,

    /// Which PFs the policy configures.
    pub nic_selector: SriovNetworkNicSelector,

    /// Driver for the VFs.
    #[serde(default)]
    pub device_type: DeviceType,

    /// Expose the VFs as RDMA devices. Inserted as `false` by the mutating webhook when absent,
    /// forced `true` for InfiniBand (unless vfio-pci).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_rdma: Option<bool>,

    /// Also hand out `/dev/vhost-net` and `/dev/net/tun`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub need_vhost_net: bool,

    /// PF link type: `eth`/`ETH` or `ib`/`IB`. Unset: keep the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["eth", "ETH", "ib", "IB"]))]
    pub link_type: Option<String>,

    /// NIC e-switch mode. Unset is treated as `legacy`.
    #[serde(
        default,
        rename = "eSwitchMode",
        skip_serializing_if = "Option::is_none"
    )]
    pub e_switch_mode: Option<ESwitchMode>,

    /// Create a vDPA device on each VF (switchdev, netdevice, Mellanox only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa_type: Option<VdpaType>,

    /// Omit NUMA topology for this resource in the device plugin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude_topology: bool,

    /// VFs are created by someone else; only drivers and VF settings are managed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub externally_managed: bool,

    /// Software bridge for the PF uplink (switchdev only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<PolicyBridges>,
}

/// Which PFs a policy selects. Every non-empty field must match; an empty selector matches nothing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.vendor) && self.vendor != '') || (has(self.deviceID) && self.deviceID != '') || (has(self.pfNames) && size(self.pfNames) > 0) || (has(self.rootDevices) && size(self.rootDevices) > 0) || (has(self.netFilter) && self.netFilter != '')")
        .message("nicSelector must set at least one of vendor, deviceID, pfNames, rootDevices or netFilter"),
    validation = Rule::new("!has(self.netFilter) || self.netFilter == '' || ((!has(self.vendor) || self.vendor == '') && (!has(self.deviceID) || self.deviceID == '') && (!has(self.pfNames) || size(self.pfNames) == 0) && (!has(self.rootDevices) || size(self.rootDevices) == 0))")
        .message("netFilter selects a cloud network and cannot be combined with vendor, deviceID, pfNames or rootDevices")
        .field_path(".netFilter"),
)]
pub struct SriovNetworkNicSelector {
    /// PCI vendor ID of the PF, 4 lower-case hex digits (`8086`, `15b3`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    /// PCI device ID of the PF, 4 lower-case hex digits.
    #[serde(default, rename = "deviceID", skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    /// PF PCI addresses (`0000:86:00.0`). No VF ranges here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub root_devices: Vec<String>,
    /// PF names or alternative names, each optionally with `#<first>-<last>` VF range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 160), regex(pattern = PF_NAME_PATTERN)))]
    pub pf_names: Vec<String>,
    /// Cloud network filter `<provider>/NetworkID:<id>` (OpenStack, AWS).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net_filter: String,
}

/// Upstream's policy status is an empty object; multus-rs adds the controller's conditions
/// (`Ready`, `Degraded`: nodes and NICs selected, VF-range conflicts), which upstream tools ignore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SriovNetworkNodePolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}

impl SriovNetworkNicSelector {
    /// Whether no field is set (such a selector matches nothing and is rejected).
    pub fn is_empty(&self) -> bool {
        self.vendor.is_empty()
            && self.device_id.is_empty()
            && self.root_devices.is_empty()
            && self.pf_names.is_empty()
            && self.net_filter.is_empty()
    }

    /// Every `pfNames` entry parsed into name and optional VF range, in order.
    pub fn parsed_pf_names(
        &self,
    ) -> impl Iterator<Item = Result<PfNameSelector, PfNameError>> + '_ {
        self.pf_names
            .iter()
            .map(|entry| PfNameSelector::parse(entry))
    }

    /// Whether `name` (a PF's name or one of its alternative names) is listed in `pfNames`,
    /// ignoring any `#range` suffix.
    pub fn selects_pf_name(&self, name: &str) -> bool {
        self.pf_names
            .iter()
            .any(|entry| PfNameSelector::name_of(entry) == name)
    }
}

impl SriovNetworkNodePolicySpec {
    /// The priority in effect: the explicit value, else [`DEFAULT_PRIORITY`].
    pub fn effective_priority(&self) -> i32 {
        self.priority.unwrap_or(DEFAULT_PRIORITY)
    }

    /// Whether the VFs are exposed as RDMA devices, after upstream's defaulting.
    pub fn effective_is_rdma(&self) -> bool {
        self.is_rdma.unwrap_or(false)
    }

    /// Whether the policy asks for an InfiniBand link.
    pub fn is_infiniband(&self) -> bool {
        self.link_type.as_deref().is_some_and(is_infiniband)
    }

    /// Whether the policy asks for switchdev mode.
    pub fn is_switchdev(&self) -> bool {
        self.e_switch_mode == Some(ESwitchMode::Switchdev)
    }

    /// Whether a software bridge is requested (`bridge.ovs` present).
    pub fn wants_bridge(&self) -> bool {
        self.bridge
            .as_ref()
            .is_some_and(PolicyBridges::is_requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_policy_round_trips_unchanged() {
        let json = serde_json::json!({
            "apiVersion": "sriovnetwork.openshift.io/v1",
            "kind": "SriovNetworkNodePolicy",
            "metadata": {"name": "fast-dpdk", "namespace": "sriov-network-operator"},
            "spec": {
                "resourceName": "fastdpdk",
                "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
                "priority": 10,
                "mtu": 9000,
                "numVfs": 16,
                "nicSelector": {"vendor": "8086", "pfNames": ["ens1f0#8-15"]},
                "deviceType": "vfio-pci",
                "eSwitchMode": "legacy",
                "linkType": "ETH"
            }
        });
        let p: SriovNetworkNodePolicy = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(p.spec.device_type, DeviceType::VfioPci);
        assert_eq!(serde_json::to_value(&p).unwrap(), json);
    }

    #[test]
    fn absent_optional_fields_stay_absent() {
        let json = serde_json::json!({
            "resourceName": "a", "nodeSelector": {}, "numVfs": 4,
            "nicSelector": {"vendor": "15b3"}, "deviceType": "netdevice"
        });
        let spec: SriovNetworkNodePolicySpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(spec.priority, None);
        assert_eq!(spec.effective_priority(), 99);
        assert!(!spec.effective_is_rdma());
        assert_eq!(serde_json::to_value(&spec).unwrap(), json);
    }

    #[test]
    fn device_type_defaults_to_netdevice() {
        let spec: SriovNetworkNodePolicySpec = serde_json::from_value(serde_json::json!({
            "resourceName": "a", "nodeSelector": {}, "numVfs": 4, "nicSelector": {"vendor": "15b3"}
        }))
        .unwrap();
        assert_eq!(spec.device_type, DeviceType::Netdevice);
    }

    #[test]
    fn pf_name_helpers() {
        let sel = SriovNetworkNicSelector {
            pf_names: vec!["ens1f0#8-15".into(), "eno1".into()],
            ..Default::default()
        };
        assert!(!sel.is_empty());
        assert!(sel.selects_pf_name("ens1f0") && sel.selects_pf_name("eno1"));
        assert!(!sel.selects_pf_name("ens1f1"));
        let parsed: Vec<_> = sel.parsed_pf_names().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            parsed[0].range.map(|r| r.to_string()).as_deref(),
            Some("8-15")
        );
        assert!(SriovNetworkNicSelector::default().is_empty());
    }

    #[test]
    fn helpers_read_link_and_switch_modes() {
        let spec = SriovNetworkNodePolicySpec {
            link_type: Some("IB".into()),
            e_switch_mode: Some(ESwitchMode::Switchdev),
            ..Default::default()
        };
        assert!(spec.is_infiniband() && spec.is_switchdev() && !spec.wants_bridge());
    }
}
