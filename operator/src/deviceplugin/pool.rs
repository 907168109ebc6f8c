//! Resource pools: which VFs of this node each resource hands out, derived from the NodeState
//! spec's VF groups and the discovered NICs. A pool is rebuilt after every discovery and the
//! plugin streams the difference to kubelet, so VF and policy changes need no restart
//! (sriov-spec §8 item 5).

use std::collections::BTreeMap;

use multus_crds::sriov::{DeviceType, Interface};

use crate::agent::sriov::apply::group_of;
use crate::agent::sriov::discovery::Nic;

/// One VF offered by a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDevice {
    /// PCI address: the device ID kubelet sees.
    pub pci: String,
    pub pf_pci: String,
    pub vf_index: u32,
    pub numa_node: Option<i64>,
    /// Usable: the PF link is up and the VF is bound to the group's kind of driver.
    pub healthy: bool,
}

/// The VFs of one resource on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// Resource name without prefix (`fastnic`).
    pub resource_name: String,
    pub device_type: DeviceType,
    pub is_rdma: bool,
    /// Sorted by PCI address.
    pub devices: Vec<PoolDevice>,
}

impl Pool {
    pub fn device(&self, id: &str) -> Option<&PoolDevice> {
        self.devices.iter().find(|d| d.pci == id)
    }
}

/// The pools of a node, by resource name.
pub type Pools = BTreeMap<String, Pool>;

/// Build the pools: every VF that exists and falls in some VF group of `spec` joins the group's
/// resource. A resource spread over several PFs (or groups) is one pool.
pub fn build_pools(spec: &[Interface], nics: &[Nic]) -> Pools {
    let mut pools = Pools::new();
    for iface in spec {
        for group in &iface.vf_groups {
            if group.resource_name.is_empty() {
                continue;
            }
            let pool = pools
                .entry(group.resource_name.clone())
                .or_insert_with(|| Pool {
                    resource_name: group.resource_name.clone(),
                    device_type: group.device_type,
                    ..Default::default()
                });
            pool.is_rdma |= group.is_rdma;
        }
        let Some(nic) = nics
            .iter()
            .find(|n| n.status.pci_address == iface.pci_address)
        else {
            continue;
        };
        for vf in &nic.status.vfs {
            let Ok(index) = u32::try_from(vf.vf_id) else {
                continue;
            };
            let Some(group) = group_of(&iface.vf_groups, index) else {
                continue;
            };
            let Some(pool) = pools.get_mut(&group.resource_name) else {
                continue;
            };
            let driver_ok = match group.device_type {
                DeviceType::VfioPci => vf.driver == "vfio-pci",
                DeviceType::Netdevice => !vf.driver.is_empty() && vf.driver != "vfio-pci",
            };
            pool.devices.push(PoolDevice {
                pci: vf.pci_address.clone(),
                pf_pci: nic.status.pci_address.clone(),
                vf_index: index,
                numa_node: nic.numa_node,
                healthy: nic.link_up && driver_ok,
            });
        }
    }
    for pool in pools.values_mut() {
        pool.devices.sort_by(|a, b| a.pci.cmp(&b.pci));
    }
    pools
}
