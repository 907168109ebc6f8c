//! The sriov-network-device-plugin config file (`resourceList`, sriov-spec §1.8/§5.2), for
//! clusters that keep the upstream device plugin (`--device-plugin=external`).
//!
//! Upstream's operator renders it from the policies with a 2022 types module (single selector
//! object, capitalised `IsRdma`/`NeedVhostNet`, a stray `SelectorObj`). The plugin decodes JSON
//! case-insensitively and prefers the selector list, so we emit the canonical form: a
//! `selectors` list with lower-case keys. We render from the node's NodeState spec, which
//! already holds the merged result of the policies for this node: one entry per resource, one
//! selector per VF group, selecting the group's VFs as `rootDevices: ["<pf>#<first>-<last>"]`
//! (by PCI address, so a PF rename cannot move VFs between pools).

use std::collections::BTreeMap;

use multus_crds::sriov::{DeviceType, Interface};
use serde::Serialize;

/// `{"resourceList": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceConfList {
    pub resource_list: Vec<ResourceConfig>,
}

/// One resource of the upstream plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceConfig {
    pub resource_name: String,
    pub device_type: &'static str,
    pub selectors: Vec<Selector>,
}

/// A `netDevice` selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vendors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<String>,
    pub root_devices: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_rdma: bool,
}

/// Render the config for the node whose spec is `spec`; `vendor_of` gives a PF's vendor ID.
pub fn render(spec: &[Interface], vendor_of: impl Fn(&str) -> Option<String>) -> ResourceConfList {
    let mut by_resource: BTreeMap<String, ResourceConfig> = BTreeMap::new();
    for iface in spec {
        for group in &iface.vf_groups {
            if group.resource_name.is_empty() || group.vf_range.is_empty() {
                continue;
            }
            let entry = by_resource
                .entry(group.resource_name.clone())
                .or_insert_with(|| ResourceConfig {
                    resource_name: group.resource_name.clone(),
                    device_type: "netDevice",
                    selectors: Vec::new(),
                });
            entry.selectors.push(Selector {
                vendors: vendor_of(&iface.pci_address).into_iter().collect(),
                drivers: match group.device_type {
                    DeviceType::VfioPci => vec!["vfio-pci".to_owned()],
                    DeviceType::Netdevice => Vec::new(),
                },
                root_devices: vec![format!("{}#{}", iface.pci_address, group.vf_range)],
                is_rdma: group.is_rdma,
            });
        }
    }
    ResourceConfList {
        resource_list: by_resource.into_values().collect(),
    }
}
