//! The sysfs files the SR-IOV agent reads and writes, under a configurable root so that tests
//! run the same code on a fake tree.
//!
//! Every write here is a request to the kernel; on real hardware the effect is visible when the
//! write returns, but the agent still confirms it with a bounded [`wait_for`] so that a slow
//! driver (or the tests' simulated kernel) is handled the same way.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// A sysfs tree: `/sys` on a node, a temporary directory in tests.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

/// PCI class of network controllers (`0x02xxxx`).
const NETWORK_CLASS_PREFIX: &str = "0x02";

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `/sys/bus/pci/devices`.
    pub fn pci_devices(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    /// The directory of one PCI function.
    pub fn device(&self, pci: &str) -> PathBuf {
        self.pci_devices().join(pci)
    }

    /// `/sys/bus/pci/drivers/<driver>`.
    pub fn driver_dir(&self, driver: &str) -> PathBuf {
        self.root.join("bus/pci/drivers").join(driver)
    }

    /// `/sys/bus/pci/drivers_probe`: writing an address binds the device to its driver.
    pub fn drivers_probe(&self) -> PathBuf {
        self.root.join("bus/pci/drivers_probe")
    }

    /// PCI addresses of all network-class functions, sorted.
    pub fn network_functions(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.pci_devices())? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let class = read_trimmed(entry.path().join("class")).unwrap_or_default();
            if class.starts_with(NETWORK_CLASS_PREFIX) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Name of the driver bound to `pci`, if any.
    pub fn driver_of(&self, pci: &str) -> Option<String> {
        link_name(self.device(pci).join("driver"))
    }

    /// Netdev names of `pci` (the entries of its `net/` directory), sorted.
    pub fn netdevs_of(&self, pci: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.device(pci).join("net"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// `net/<ifname>` of a PCI function: the netdev's sysfs directory.
    pub fn netdev_dir(&self, pci: &str, ifname: &str) -> PathBuf {
        self.device(pci).join("net").join(ifname)
    }

    /// The VFs of a PF as `(index, address)`, from its `virtfnN` links, sorted by index.
    pub fn virtfns(&self, pf: &str) -> Vec<(u32, String)> {
        let mut vfs: Vec<(u32, String)> = std::fs::read_dir(self.device(pf))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let index = name.to_str()?.strip_prefix("virtfn")?.parse().ok()?;
                Some((index, link_name(e.path())?))
            })
            .collect();
        vfs.sort();
        vfs
    }

    /// Whether `pci` is a VF (it has a `physfn` link).
    pub fn is_vf(&self, pci: &str) -> bool {
        self.device(pci).join("physfn").symlink_metadata().is_ok()
    }

    /// The IOMMU group number of `pci`, resolved now (group numbers change across reboots).
    pub fn iommu_group(&self, pci: &str) -> Option<String> {
        link_name(self.device(pci).join("iommu_group"))
    }

    /// Whether the IOMMU group of `pci` is a no-IOMMU group (`vfio-noiommu`).
    pub fn iommu_group_is_noiommu(&self, pci: &str) -> bool {
        read_trimmed(self.device(pci).join("iommu_group/name")).is_ok_and(|n| n == "vfio-noiommu")
    }

    /// NUMA node of `pci`; `None` when the platform reports none (`-1`).
    pub fn numa_node(&self, pci: &str) -> Option<i64> {
        read_trimmed(self.device(pci).join("numa_node"))
            .ok()?
            .parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
    }
}

/// Read a sysfs attribute without its trailing newline.
pub fn read_trimmed(path: impl AsRef<Path>) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

/// Read a decimal attribute.
pub fn read_number(path: impl AsRef<Path>) -> Option<i64> {
    read_trimmed(path).ok()?.parse().ok()
}

/// Read a `0x`-prefixed hex attribute (`vendor`, `device`) as four lower-case hex digits.
pub fn read_hex_id(path: impl AsRef<Path>) -> String {
    read_trimmed(path)
        .map(|v| v.trim_start_matches("0x").to_ascii_lowercase())
        .unwrap_or_default()
}

/// The final component of a symlink's target (`driver` → `ice`, `virtfn0` → `0000:3b:02.0`).
pub fn link_name(path: impl AsRef<Path>) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    target.file_name()?.to_str().map(str::to_owned)
}

/// Write a sysfs attribute. sysfs takes the whole value in one `write`, which `fs::write` does.
pub fn write_attr(path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
}

/// How often [`wait_for`] looks again; real kernels finish before the first look.
const POLL: Duration = Duration::from_millis(2);

/// Wait until `done()` holds or `timeout` passes; returns whether it held.
pub async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
