//! NIC discovery: what the node's PFs and VFs look like right now, read from sysfs, in the shape
//! of `SriovNetworkNodeState.status.interfaces` (sriov-spec §3.3), plus the two facts the device
//! plugin needs that the status does not carry (operational link state and NUMA node).
//!
//! Alternative interface names are the one fact sysfs does not expose (they live in netlink's
//! property list), so they come from an [`AltNames`] source.

use std::collections::HashMap;
use std::process::Command;

use multus_crds::sriov::{InterfaceStatus, VirtualFunction};

use super::sysfs::{Sysfs, read_hex_id, read_number, read_trimmed};

/// `IFF_UP` in a netdev's `flags`.
const IFF_UP: i64 = 0x1;
/// `ARPHRD_ETHER` and `ARPHRD_INFINIBAND`, the netdev `type` values of Ethernet and IB links.
const ARPHRD_ETHER: i64 = 1;
const ARPHRD_INFINIBAND: i64 = 32;

/// One PF as found on the node.
#[derive(Clone, Debug, PartialEq)]
pub struct Nic {
    /// What goes into the NodeState status.
    pub status: InterfaceStatus,
    /// The PF's link is operationally up (`operstate`): its VFs can carry traffic.
    pub link_up: bool,
    /// NUMA node of the PF (its VFs share it); `None` when the platform reports none.
    pub numa_node: Option<i64>,
}

/// Where alternative interface names come from.
pub trait AltNames: Send + Sync {
    /// Alternative names per primary interface name.
    fn alt_names(&self) -> HashMap<String, Vec<String>>;
}

/// A fixed table of alternative names (tests, and nodes where netlink is not reachable).
#[derive(Clone, Debug, Default)]
pub struct StaticAltNames(pub HashMap<String, Vec<String>>);

impl AltNames for StaticAltNames {
    fn alt_names(&self) -> HashMap<String, Vec<String>> {
        self.0.clone()
    }
}

/// Alternative names as `ip -json link show` reports them (netlink `IFLA_PROP_LIST`). Missing
/// `ip` or unparsable output yields no alternative names, with a warning: discovery must not
/// fail over names that only `pfNames` selectors use.
#[derive(Clone, Copy, Debug, Default)]
pub struct IpLinkAltNames;

impl AltNames for IpLinkAltNames {
    fn alt_names(&self) -> HashMap<String, Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Link {
            ifname: String,
            #[serde(default)]
            altnames: Vec<String>,
        }
        let output = match Command::new("ip").args(["-json", "link", "show"]).output() {
            Ok(o) if o.status.success() => o.stdout,
            Ok(o) => {
                tracing::warn!(status = %o.status, "ip -json link show failed; no alternative names");
                return HashMap::new();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot run ip; no alternative names");
                return HashMap::new();
            }
        };
        match serde_json::from_slice::<Vec<Link>>(&output) {
            Ok(links) => links
                .into_iter()
                .filter(|l| !l.altnames.is_empty())
                .map(|l| (l.ifname, l.altnames))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "unexpected ip -json output; no alternative names");
                HashMap::new()
            }
        }
    }
}

/// Every PCI network function of the node that is not a VF, sorted by PCI address.
///
/// Reading sysfs is bound by system calls (a path walk, open, read and close per attribute,
/// some twenty per VF), so the PFs are spread over the cores: on a node with 8 PFs of 128 VFs
/// that halves the time of a pass on two cores.
pub fn discover(sysfs: &Sysfs, alt_names: &dyn AltNames) -> std::io::Result<Vec<Nic>> {
    let alt = alt_names.alt_names();
    let pfs: Vec<String> = sysfs
        .network_functions()?
        .into_iter()
        .filter(|pci| !sysfs.is_vf(pci))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pfs.len());
    if threads <= 1 {
        return Ok(pfs
            .iter()
            .map(|pci| discover_pf(sysfs, pci, &alt))
            .collect());
    }
    let mut found: Vec<Option<Nic>> = pfs.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                let (pfs, alt) = (&pfs, &alt);
                scope.spawn(move || {
                    (first..pfs.len())
                        .step_by(threads)
                        .filter_map(|i| Some((i, discover_pf(sysfs, pfs.get(i)?, alt))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            // A worker that died leaves its PFs unread; they are read below, in this thread.
            for (i, nic) in worker.join().unwrap_or_default() {
                if let Some(slot) = found.get_mut(i) {
                    *slot = Some(nic);
                }
            }
        }
    });
    Ok(found
        .into_iter()
        .zip(&pfs)
        .map(|(nic, pci)| nic.unwrap_or_else(|| discover_pf(sysfs, pci, &alt)))
        .collect())
}

fn discover_pf(sysfs: &Sysfs, pci: &str, alt: &HashMap<String, Vec<String>>) -> Nic {
    let dev = sysfs.device(pci);
    let name = sysfs.netdevs_of(pci).into_iter().next().unwrap_or_default();
    let mut status = InterfaceStatus {
        pci_address: pci.to_owned(),
        vendor: read_hex_id(dev.join("vendor")),
        device_id: read_hex_id(dev.join("device")),
        driver: sysfs.driver_of(pci).unwrap_or_default(),
        total_vfs: read_i32(dev.join("sriov_totalvfs")),
        num_vfs: read_i32(dev.join("sriov_numvfs")),
        // devlink is not read (switchdev is not managed); upstream reports legacy without it.
        e_switch_mode: "legacy".to_owned(),
        ..Default::default()
    };
    let mut link_up = false;
    if !name.is_empty() {
        let net = sysfs.netdev_dir(pci, &name);
        status.mac = read_trimmed(net.join("address")).unwrap_or_default();
        status.mtu = read_i32(net.join("mtu"));
        status.link_type = match read_number(net.join("type")) {
            Some(ARPHRD_ETHER) => "ETH".to_owned(),
            Some(ARPHRD_INFINIBAND) => "IB".to_owned(),
            _ => String::new(),
        };
        // `speed` is unreadable (EINVAL) or -1 while the link is down: report nothing then.
        status.link_speed = read_number(net.join("speed"))
            .filter(|s| *s > 0)
            .map(|s| format!("{s} Mb/s"))
            .unwrap_or_default();
        status.link_admin_state = match flags(&net) {
            Some(f) if f & IFF_UP != 0 => "up".to_owned(),
            Some(_) => "down".to_owned(),
            None => String::new(),
        };
        link_up = read_trimmed(net.join("operstate")).is_ok_and(|s| s == "up");
        status.alt_names = alt.get(&name).cloned().unwrap_or_default();
        status.name = name;
    }
    status.vfs = sysfs
        .virtfns(pci)
        .into_iter()
        .map(|(index, vf)| discover_vf(sysfs, index, &vf))
        .collect();
    Nic {
        status,
        link_up,
        numa_node: sysfs.numa_node(pci),
    }
}

fn discover_vf(sysfs: &Sysfs, index: u32, pci: &str) -> VirtualFunction {
    let dev = sysfs.device(pci);
    let mut vf = VirtualFunction {
        vf_id: i32::try_from(index).unwrap_or(i32::MAX),
        pci_address: pci.to_owned(),
        vendor: read_hex_id(dev.join("vendor")),
        device_id: read_hex_id(dev.join("device")),
        driver: sysfs.driver_of(pci).unwrap_or_default(),
        ..Default::default()
    };
    if let Some(name) = sysfs.netdevs_of(pci).into_iter().next() {
        let net = sysfs.netdev_dir(pci, &name);
        vf.mac = read_trimmed(net.join("address")).unwrap_or_default();
        vf.mtu = read_i32(net.join("mtu"));
        vf.name = name;
    }
    vf
}

/// A netdev's `flags` (hex, `0x1003`).
fn flags(net: &std::path::Path) -> Option<i64> {
    let text = read_trimmed(net.join("flags")).ok()?;
    i64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

fn read_i32(path: std::path::PathBuf) -> i32 {
    read_number(path)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0)
}
