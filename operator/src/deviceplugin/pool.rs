//! Resource pools: which VFs of this node each resource hands out, derived from the NodeState
//! spec's VF groups and the discovered NICs. A pool is rebuilt after every discovery and the
//! plugin streams the difference to kubelet, so VF and policy changes need no restart
//! (sriov-spec §8 item 5).

use std::collections::BTreeMap;

use multus_crds::sriov::{DeviceType, Interface, SriovNetworkNodePolicy};

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
    /// Also hand out `/dev/vhost-net` and `/dev/net/tun` (policy `needVhostNet`).
    pub need_vhost_net: bool,
    /// Advertise no NUMA topology (policy `excludeTopology`).
    pub exclude_topology: bool,
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

/// Per-resource settings the NodeState does not carry: they live only in the policies (upstream
/// renders its device-plugin config from the policies for the same reason).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceOptions {
    pub need_vhost_net: bool,
    pub exclude_topology: bool,
}

/// The options of every resource the policies name (a resource named by several policies takes
/// each option from any of them; the webhook rejects policies that disagree on
/// `excludeTopology`).
pub fn resource_options(policies: &[SriovNetworkNodePolicy]) -> BTreeMap<String, ResourceOptions> {
    let mut out: BTreeMap<String, ResourceOptions> = BTreeMap::new();
    for p in policies {
        let o = out.entry(p.spec.resource_name.clone()).or_default();
        o.need_vhost_net |= p.spec.need_vhost_net;
        o.exclude_topology |= p.spec.exclude_topology;
    }
    out
}

/// Set the policies' options on the pools.
pub fn set_options(pools: &mut Pools, options: &BTreeMap<String, ResourceOptions>) {
    for (name, pool) in pools.iter_mut() {
        let o = options.get(name).cloned().unwrap_or_default();
        pool.need_vhost_net = o.need_vhost_net;
        pool.exclude_topology = o.exclude_topology;
    }
}

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
