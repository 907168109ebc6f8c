//! Device-info files (multus-spec §1.6, device-info-spec v1.1.0): for every VF it hands out, the
//! device plugin writes `<devinfo>/dp/<resource>-<deviceID>-device.json` (`/` in either part
//! becomes `-`), which Multus copies into the attachment's CNI device-info file and from there
//! into the pod's network-status annotation. Written at `Allocate` (kubelet may hand a VF to a
//! new pod at any time, and the file describes the allocation), replaced atomically if one is
//! there — as upstream's plugin does (clean, then save).

use std::path::{Path, PathBuf};

use multus_crds::annotations::DeviceInfo;
use multus_crds::annotations::device_info::PciDevice;

use super::allocate::VHOST_NET_DEVICES;
use super::pool::{Pool, PoolDevice};
use crate::agent::sriov::error::SriovError;
use crate::agent::sriov::files::write_atomic;

/// `<resource>-<deviceID>-device.json`, `/` replaced by `-` in both parts.
pub fn file_name(resource: &str, device_id: &str) -> String {
    format!(
        "{}-{}-device.json",
        resource.replace('/', "-"),
        device_id.replace('/', "-")
    )
}

/// The path of the device-plugin file under the device-info directory.
pub fn path(devinfo_dir: &Path, resource: &str, device_id: &str) -> PathBuf {
    devinfo_dir.join("dp").join(file_name(resource, device_id))
}

/// The device-info of one VF of `pool`.
pub fn device_info(pool: &Pool, device: &PoolDevice, rdma_device: Option<String>) -> DeviceInfo {
    let mut info = DeviceInfo::pci(&device.pci);
    info.pci = Some(PciDevice {
        pci_address: Some(device.pci.clone()),
        pf_pci_address: Some(device.pf_pci.clone()),
        rdma_device,
        vhost_net: pool.need_vhost_net.then(|| VHOST_NET_DEVICES[0].to_owned()),
        ..PciDevice::default()
    });
    info
}

/// Write the file for `device` of `resource` (the full `<prefix>/<name>`), read-only as
/// nad-client writes it.
pub fn write(
    devinfo_dir: &Path,
    resource: &str,
    pool: &Pool,
    device: &PoolDevice,
    rdma_device: Option<String>,
) -> Result<(), SriovError> {
    let body = serde_json::to_vec(&device_info(pool, device, rdma_device)).unwrap_or_default();
    write_atomic(&path(devinfo_dir, resource, &device.pci), &body, 0o444)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_named_as_multus_looks_for_it_and_holds_a_pci_device_info() {
        assert_eq!(
            file_name("openshift.io/fastnic", "0000:3c:00.1"),
            "openshift.io-fastnic-0000:3c:00.1-device.json"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = PoolDevice {
            pci: "0000:3c:00.1".into(),
            pf_pci: "0000:3b:00.0".into(),
            vf_index: 1,
            numa_node: Some(0),
            healthy: true,
        };
        let pool = Pool {
            need_vhost_net: true,
            ..Pool::default()
        };
        for _ in 0..2 {
            // Twice: a second allocation of the VF replaces the read-only file.
            let rdma = Some("mlx5_1".to_owned());
            write(dir.path(), "openshift.io/fastnic", &pool, &d, rdma).unwrap();
        }
        let file = path(dir.path(), "openshift.io/fastnic", "0000:3c:00.1");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "pci", "version": "1.1.0", "pci": {
                "pci-address": "0000:3c:00.1", "pf-pci-address": "0000:3b:00.0",
                "rdma-device": "mlx5_1", "vhost-net": "/dev/vhost-net"}})
        );
    }
}
