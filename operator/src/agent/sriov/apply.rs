//! Applying `SriovNetworkNodeState.spec` to the node through sysfs (sriov-spec §4.3, without
//! switchdev, vDPA, udev and firmware handling):
//!
//! 1. per PF: `sriov_numvfs` — `0`, then `N`, as drivers require — unless the PF is externally
//!    managed, in which case the existing VFs are only checked;
//! 2. PF MTU, raised only (never lowered), and the PF brought administratively up;
//! 3. per VF of a group: the driver (`netdevice` = the kernel's default VF driver through
//!    `drivers_probe`; `vfio-pci` through `driver_override`, unbind, probe) and the VF MTU.
//!
//! Every write is preceded by a read of the current value and skipped when it already holds, so
//! applying the same spec twice writes nothing the second time ([`ApplyReport::writes`]).
//! PFs this agent configured earlier and that left the spec are reset to 0 VFs; a small record
//! per PF under the agent's state directory remembers which PFs those are (upstream keeps the
//! same kind of record in `/etc/sriov-operator/pci/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use multus_crds::sriov::{DeviceType, Interface, VfGroup, VfRange};

use super::discovery::Nic;
use super::error::SriovError;
use super::files::write_private;
use super::sysfs::{Sysfs, read_number, read_trimmed, wait_for, write_attr};

/// Drivers that leave no netdev (user-space I/O); a `netdevice` group rebinds VFs away from them.
const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "igb_uio", "uio_pci_generic"];

/// How long the kernel may take to create VFs or bind a driver (upstream waits up to 120 s for
/// VF creation).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub create_vfs: Duration,
    pub bind: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            create_vfs: Duration::from_secs(120),
            bind: Duration::from_secs(10),
        }
    }
}

/// What one apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Number of sysfs writes performed (0 when the node already matched the spec).
    pub writes: usize,
}

/// The PFs whose VFs an apply of `spec` would destroy or rebind: the pods holding their VFs must
/// leave first. PFs absent from the spec but configured earlier are listed too (they get reset).
pub fn disruptive_pfs(spec: &[Interface], nics: &[Nic], configured: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for iface in spec {
        let Some(nic) = nics
            .iter()
            .find(|n| n.status.pci_address == iface.pci_address)
        else {
            continue;
        };
        let numvfs_changes = !iface.externally_managed && nic.status.num_vfs != iface.num_vfs;
        let rebinds = nic.status.vfs.iter().any(|vf| {
            let index = u32::try_from(vf.vf_id).unwrap_or(u32::MAX);
            group_of(&iface.vf_groups, index).is_some_and(|g| !driver_fits(g, &vf.driver))
        });
        if numvfs_changes || rebinds {
            out.push(iface.pci_address.clone());
        }
    }
    for pci in configured {
        let in_spec = spec.iter().any(|i| &i.pci_address == pci);
        let has_vfs = nics
            .iter()
            .any(|n| &n.status.pci_address == pci && n.status.num_vfs > 0);
        if !in_spec && has_vfs {
            out.push(pci.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The node-side writer: sysfs plus the directory of PF records.
#[derive(Clone, Debug)]
pub struct Applier {
    pub sysfs: Sysfs,
    /// Where the records of configured PFs live (0700, files 0600).
    pub state_dir: PathBuf,
    pub timeouts: Timeouts,
}

impl Applier {
    /// Apply `spec` to the node whose NICs are `nics` (just discovered).
    #[tracing::instrument(skip_all, fields(pfs = spec.len()))]
    pub async fn apply(&self, spec: &[Interface], nics: &[Nic]) -> Result<ApplyReport, SriovError> {
        let mut report = ApplyReport::default();
        for iface in spec {
            let nic = nics
                .iter()
                .find(|n| n.status.pci_address == iface.pci_address)
                .ok_or_else(|| SriovError::UnknownPf {
                    pci: iface.pci_address.clone(),
                })?;
            self.apply_pf(iface, nic, &mut report).await?;
        }
        for pci in self.configured_pfs() {
            if !spec.iter().any(|i| i.pci_address == pci) {
                self.reset_pf(&pci, &mut report).await?;
            }
        }
        Ok(report)
    }

    /// PCI addresses of the PFs this agent configured (from its records).
    pub fn configured_pfs(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.records_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect();
        out.sort();
        out
    }

    fn records_dir(&self) -> PathBuf {
        self.state_dir.join("pci")
    }

    async fn apply_pf(
        &self,
        iface: &Interface,
        nic: &Nic,
        report: &mut ApplyReport,
    ) -> Result<(), SriovError> {
        let pci = &iface.pci_address;
        let current = &nic.status;
        if iface.externally_managed {
            check_externally_managed(iface, nic)?;
        } else {
            if iface.num_vfs > current.total_vfs {
                return Err(SriovError::TooManyVfs {
                    pci: pci.clone(),
                    want: iface.num_vfs,
                    total: current.total_vfs,
                });
            }
            self.set_num_vfs(pci, u32::try_from(iface.num_vfs).unwrap_or(0), report)
                .await?;
        }
        if !current.name.is_empty() {
            let net = self.sysfs.netdev_dir(pci, &current.name);
            // Raised only: lowering the PF MTU would cut VFs that use a larger one.
            if iface.mtu > 0 && read_number(net.join("mtu")).unwrap_or(0) < i64::from(iface.mtu) {
                self.write(&net.join("mtu"), &iface.mtu.to_string(), report)?;
            }
            self.admin_up(&net, report)?;
        }
        for (index, vf) in self.sysfs.virtfns(pci) {
            let group = group_of(&iface.vf_groups, index);
            self.apply_vf(&vf, group, report).await?;
        }
        // Only PFs whose VFs we create are ours to reset later.
        if !iface.externally_managed {
            self.record(iface)?;
        }
        Ok(())
    }

    async fn set_num_vfs(
        &self,
        pci: &str,
        want: u32,
        report: &mut ApplyReport,
    ) -> Result<(), SriovError> {
        let file = self.sysfs.device(pci).join("sriov_numvfs");
        let have = read_number(&file).unwrap_or(0);
        if have == i64::from(want) {
            return Ok(());
        }
        if have != 0 {
            self.write(&file, "0", report)?;
            self.wait_vfs(pci, 0).await?;
        }
        if want > 0 {
            self.write(&file, &want.to_string(), report)?;
            self.wait_vfs(pci, want).await?;
        }
        Ok(())
    }

    async fn wait_vfs(&self, pci: &str, count: u32) -> Result<(), SriovError> {
        let timeout = self.timeouts.create_vfs;
        let sysfs = &self.sysfs;
        let done = wait_for(timeout, || {
            let vfs = sysfs.virtfns(pci);
            vfs.len() == count as usize && vfs.iter().all(|(_, vf)| sysfs.is_vf(vf))
        })
        .await;
        done.then_some(()).ok_or_else(|| SriovError::KernelTimeout {
            what: format!("PF {pci} to have {count} VFs"),
            seconds: timeout.as_secs(),
        })
    }

    async fn apply_vf(
        &self,
        vf: &str,
        group: Option<&VfGroup>,
        report: &mut ApplyReport,
    ) -> Result<(), SriovError> {
        let driver = self.sysfs.driver_of(vf);
        let Some(group) = group else {
            // Not ours to configure, but a VF without a driver is useless to everyone.
            if driver.is_none() {
                self.probe(vf, None, report).await?;
            }
            return Ok(());
        };
        let fits = driver.as_deref().is_some_and(|d| driver_fits(group, d));
        if !fits {
            if let Some(d) = &driver {
                let unbind = self.sysfs.driver_dir(d).join("unbind");
                self.write(&unbind, vf, report)?;
                self.wait_driver(vf, |d| d.is_none()).await?;
            }
            let wanted = (group.device_type == DeviceType::VfioPci).then_some("vfio-pci");
            self.probe(vf, wanted, report).await?;
        }
        if group.device_type == DeviceType::Netdevice && group.mtu > 0 {
            self.set_vf_mtu(vf, group.mtu, report).await?;
        }
        Ok(())
    }

    /// Bind `vf` to `driver` (or the kernel's default when `None`) through `driver_override` and
    /// `drivers_probe`, then clear the override so later probes are not pinned.
    async fn probe(
        &self,
        vf: &str,
        driver: Option<&str>,
        report: &mut ApplyReport,
    ) -> Result<(), SriovError> {
        let override_file = self.sysfs.device(vf).join("driver_override");
        let overridden = read_trimmed(&override_file).is_ok_and(|o| !o.is_empty() && o != "(null)");
        if let Some(d) = driver {
            self.write(&override_file, d, report)?;
        } else if overridden {
            self.write(&override_file, "\n", report)?;
        }
        self.write(&self.sysfs.drivers_probe(), vf, report)?;
        match driver {
            Some(d) => self.wait_driver(vf, |now| now == Some(d)).await?,
            None => self.wait_driver(vf, |now| now.is_some()).await?,
        }
        if driver.is_some() {
            self.write(&override_file, "\n", report)?;
        }
        Ok(())
    }

    async fn wait_driver(
        &self,
        vf: &str,
        done: impl Fn(Option<&str>) -> bool,
    ) -> Result<(), SriovError> {
        let timeout = self.timeouts.bind;
        let ok = wait_for(timeout, || done(self.sysfs.driver_of(vf).as_deref())).await;
        ok.then_some(()).ok_or_else(|| SriovError::KernelTimeout {
            what: format!("driver binding of VF {vf}"),
            seconds: timeout.as_secs(),
        })
    }

    async fn set_vf_mtu(
        &self,
        vf: &str,
        mtu: i32,
        report: &mut ApplyReport,
    ) -> Result<(), SriovError> {
        // A kernel VF driver creates its netdev shortly after binding.
        let sysfs = &self.sysfs;
        if !wait_for(self.timeouts.bind, || !sysfs.netdevs_of(vf).is_empty()).await {
            return Err(SriovError::KernelTimeout {
                what: format!("netdev of VF {vf}"),
                seconds: self.timeouts.bind.as_secs(),
            });
        }
        for name in sysfs.netdevs_of(vf) {
            let file = sysfs.netdev_dir(vf, &name).join("mtu");
            if read_number(&file) != Some(i64::from(mtu)) {
                self.write(&file, &mtu.to_string(), report)?;
            }
        }
        Ok(())
    }

    fn admin_up(&self, net: &Path, report: &mut ApplyReport) -> Result<(), SriovError> {
        let file = net.join("flags");
        let Ok(text) = read_trimmed(&file) else {
            return Ok(());
        };
        let Ok(flags) = i64::from_str_radix(text.trim_start_matches("0x"), 16) else {
            return Ok(());
        };
        if flags & 1 == 0 {
            self.write(&file, &format!("{:#x}", flags | 1), report)?;
        }
        Ok(())
    }

    async fn reset_pf(&self, pci: &str, report: &mut ApplyReport) -> Result<(), SriovError> {
        if self.sysfs.device(pci).exists() {
            self.set_num_vfs(pci, 0, report).await?;
        }
        let record = self.records_dir().join(pci);
        std::fs::remove_file(&record).map_err(|source| SriovError::WriteFile {
            path: record,
            source,
        })
    }

    fn record(&self, iface: &Interface) -> Result<(), SriovError> {
        let path = self.records_dir().join(&iface.pci_address);
        let body = serde_json::to_vec(iface).unwrap_or_default();
        if std::fs::read(&path).is_ok_and(|old| old == body) {
            return Ok(());
        }
        write_private(&path, &body)
    }

    fn write(&self, path: &Path, value: &str, report: &mut ApplyReport) -> Result<(), SriovError> {
        tracing::debug!(path = %path.display(), value, "sysfs write");
        report.writes += 1;
        write_attr(path, value).map_err(|source| SriovError::WriteSysfs {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
    }
}

/// The VF group covering VF `index`, if any (a group whose range does not parse covers none;
/// the NodeState rules reject such specs before they reach a node).
pub fn group_of(groups: &[VfGroup], index: u32) -> Option<&VfGroup> {
    groups
        .iter()
        .find(|g| g.range().is_ok_and(|r: VfRange| r.contains(index)))
}

/// Whether a VF bound to `driver` already serves `group`.
pub fn driver_fits(group: &VfGroup, driver: &str) -> bool {
    match group.device_type {
        DeviceType::VfioPci => driver == "vfio-pci",
        DeviceType::Netdevice => !driver.is_empty() && !USERSPACE_DRIVERS.contains(&driver),
    }
}

fn check_externally_managed(iface: &Interface, nic: &Nic) -> Result<(), SriovError> {
    let fail = |message: String| SriovError::ExternallyManaged {
        pci: iface.pci_address.clone(),
        message,
    };
    if iface.num_vfs > nic.status.num_vfs {
        return Err(fail(format!(
            "{} VFs requested but only {} exist; the operator never creates VFs on it",
            iface.num_vfs, nic.status.num_vfs
        )));
    }
    if iface.mtu > 0 && iface.mtu > nic.status.mtu {
        return Err(fail(format!(
            "MTU {} requested but the PF has {}; the operator never changes it",
            iface.mtu, nic.status.mtu
        )));
    }
    Ok(())
}
