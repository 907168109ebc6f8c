//! What a container gets for its devices, in the sriov-network-device-plugin's conventions
//! (sriov-spec §5.4), so that sriov-cni, DPDK apps and tools written for upstream work unchanged:
//!
//! - `PCIDEVICE_<PREFIX>_<NAME>` = the comma-joined PCI addresses, and `…_INFO` = a JSON object
//!   per device (`generic`, and `vfio` / `rdma` when they apply);
//! - device nodes: for vfio-pci VFs `/dev/vfio/vfio` and `/dev/vfio/<group>`, the group looked up
//!   **at allocation time** because IOMMU group numbers change across reboots (§8 item 8);
//!   for RDMA pools the VF's verbs and MAD devices and `/dev/infiniband/rdma_cm`; for
//!   `needVhostNet` pools `/dev/vhost-net` and `/dev/net/tun`.

use std::collections::BTreeMap;

use multus_crds::sriov::DeviceType;
use multus_kubelet::deviceplugin::v1beta1::{ContainerAllocateResponse, DeviceSpec};
use serde_json::{Map, Value, json};

use super::pool::Pool;
use crate::agent::sriov::sysfs::Sysfs;

/// What `needVhostNet` hands out besides the VF (vhost-net for a DPDK virtio-user exception
/// path, and the tap device it needs).
pub const VHOST_NET_DEVICES: [&str; 2] = ["/dev/vhost-net", "/dev/net/tun"];

/// `PCIDEVICE_<PREFIX>_<NAME>`: `.` becomes `_`, everything upper case, hyphens kept (as upstream).
pub fn env_key(prefix: &str, resource_name: &str) -> String {
    format!("PCIDEVICE_{prefix}_{resource_name}")
        .replace(['.', '/'], "_")
        .to_uppercase()
}

/// A device ID kubelet asked for that the pool does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDevice(pub String);

/// The answer for one container asking for `ids`.
pub fn allocate(
    pool: &Pool,
    prefix: &str,
    ids: &[String],
    sysfs: &Sysfs,
) -> Result<ContainerAllocateResponse, UnknownDevice> {
    let mut devices: BTreeMap<String, DeviceSpec> = BTreeMap::new();
    let mut info = Map::new();
    for id in ids {
        if pool.device(id).is_none() {
            return Err(UnknownDevice(id.clone()));
        }
        let mut entry = Map::new();
        entry.insert("generic".into(), json!({"deviceID": id}));
        if pool.device_type == DeviceType::VfioPci
            && let Some(group) = sysfs.iommu_group(id)
        {
            let container = format!("/dev/vfio/{group}");
            let host = if sysfs.iommu_group_is_noiommu(id) {
                format!("/dev/vfio/noiommu-{group}")
            } else {
                container.clone()
            };
            add(&mut devices, "/dev/vfio/vfio", "/dev/vfio/vfio");
            add(&mut devices, &host, &container);
            entry.insert(
                "vfio".into(),
                json!({"mount": "/dev/vfio/vfio", "dev-mount": container}),
            );
        }
        if pool.is_rdma {
            let rdma = rdma_devices(sysfs, id);
            for path in rdma.values() {
                add(&mut devices, path, path);
            }
            if !rdma.is_empty() {
                entry.insert(
                    "rdma".into(),
                    Value::Object(
                        rdma.into_iter()
                            .map(|(k, v)| (k, Value::String(v)))
                            .collect(),
                    ),
                );
            }
        }
        if pool.need_vhost_net {
            for dev in VHOST_NET_DEVICES {
                add(&mut devices, dev, dev);
            }
            entry.insert(
                "vhost".into(),
                json!({"mount": VHOST_NET_DEVICES[0], "tun-mount": VHOST_NET_DEVICES[1]}),
            );
        }
        info.insert(id.clone(), Value::Object(entry));
    }
    let key = env_key(prefix, &pool.resource_name);
    let envs = [
        (key.clone(), ids.join(",")),
        (format!("{key}_INFO"), Value::Object(info).to_string()),
    ]
    .into();
    Ok(ContainerAllocateResponse {
        envs,
        devices: devices.into_values().collect(),
        ..Default::default()
    })
}

fn add(devices: &mut BTreeMap<String, DeviceSpec>, host: &str, container: &str) {
    devices
        .entry(host.to_owned())
        .or_insert_with(|| DeviceSpec {
            container_path: container.to_owned(),
            host_path: host.to_owned(),
            permissions: "rw".to_owned(),
        });
}

/// RDMA character devices of a VF, from its `infiniband_verbs/` and `infiniband_mad/` entries.
fn rdma_devices(sysfs: &Sysfs, pci: &str) -> BTreeMap<String, String> {
    let dev = sysfs.device(pci);
    let mut out = BTreeMap::new();
    let names = |sub: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dev.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    for name in names("infiniband_verbs") {
        out.insert("uverbs".to_owned(), format!("/dev/infiniband/{name}"));
    }
    for name in names("infiniband_mad") {
        let key = if name.starts_with("issm") {
            "issm"
        } else {
            "umad"
        };
        out.insert(key.to_owned(), format!("/dev/infiniband/{name}"));
    }
    if let Some(name) = rdma_device_name(sysfs, pci) {
        out.insert("rdma_cm".to_owned(), "/dev/infiniband/rdma_cm".to_owned());
        // Not a device node: the RDMA device name, for the `_INFO` JSON only.
        out.insert("rdma_dev".to_owned(), name);
    }
    out
}

/// The RDMA device of a VF (`mlx5_3`), from its `infiniband/` directory.
pub fn rdma_device_name(sysfs: &Sysfs, pci: &str) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(sysfs.device(pci).join("infiniband"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names.into_iter().next()
}

/// Pick `size` devices among `available`, keeping `must_include`, preferring VFs on one NUMA
/// node: the node of the required devices if any, else the node with the most free VFs.
pub fn preferred(
    pool: &Pool,
    available: &[String],
    must_include: &[String],
    size: usize,
) -> Vec<String> {
    let mut chosen: Vec<String> = must_include.iter().take(size).cloned().collect();
    let numa = |id: &str| pool.device(id).and_then(|d| d.numa_node);
    let mut counts: BTreeMap<Option<i64>, usize> = BTreeMap::new();
    for id in available.iter().filter(|id| !chosen.contains(id)) {
        *counts.entry(numa(id)).or_default() += 1;
    }
    let favourite = chosen
        .first()
        .map(|id| numa(id))
        .or_else(|| {
            counts
                .iter()
                .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))
                .map(|(n, _)| *n)
        })
        .flatten();
    let mut rest: Vec<&String> = available.iter().filter(|id| !chosen.contains(id)).collect();
    // Favourite node first, then by address: stable answers for the same input.
    rest.sort_by_key(|id| (favourite.is_some() && numa(id) != favourite, (*id).clone()));
    for id in rest {
        if chosen.len() >= size {
            break;
        }
        chosen.push(id.clone());
    }
    chosen
}
