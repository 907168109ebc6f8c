//! Test support: fake sysfs trees and a small simulated kernel, so that the agent's real sysfs
//! code is what runs in tests (built with `cfg(test)` or the `fake-sysfs` feature; never in the
//! shipped binary).
//!
//! [`FakeHost`] lays out a host root the way Linux does: PCI functions under
//! `sys/devices/pci0000:00/<address>`, linked from `sys/bus/pci/devices`, drivers under
//! `sys/bus/pci/drivers`, IOMMU groups under `sys/kernel/iommu_groups`, and `/dev/vfio` nodes.
//! [`SimulatedKernel`] watches the writable files with inotify and does what the kernel does on
//! a write: `sriov_numvfs` creates or removes VFs (refusing N→M without 0 in between, as real
//! drivers do), `unbind`/`bind`/`drivers_probe` move `driver` links (honouring
//! `driver_override`), and `flags` brings a link up or down.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};

/// A PF to put into the fake tree.
#[derive(Clone, Debug)]
pub struct FakePf {
    pub pci: String,
    pub vendor: String,
    pub device: String,
    pub vf_device: String,
    pub driver: String,
    /// Driver VFs get from `drivers_probe` without an override.
    pub vf_driver: String,
    pub ifname: String,
    pub mac: String,
    pub mtu: u32,
    /// 0 for a NIC without SR-IOV (no `sriov_*` files).
    pub total_vfs: u32,
    pub numa_node: i32,
    /// Bus number of the VFs (`0000:<vf_bus>:<slot>.<fn>`).
    pub vf_bus: u8,
    /// VFs have RDMA devices (`infiniband/`, `infiniband_verbs/`) while bound to `vf_driver`.
    pub rdma: bool,
    /// Link type: `ARPHRD_ETHER` (1) or `ARPHRD_INFINIBAND` (32).
    pub arp_type: u32,
}

impl FakePf {
    /// An Intel E810 (`ice`, VFs `iavf`, device `1889`).
    pub fn intel(pci: &str, ifname: &str, total_vfs: u32, vf_bus: u8) -> Self {
        Self {
            pci: pci.into(),
            vendor: "8086".into(),
            device: "159b".into(),
            vf_device: "1889".into(),
            driver: "ice".into(),
            vf_driver: "iavf".into(),
            ifname: ifname.into(),
            mac: "b4:96:91:00:00:01".into(),
            mtu: 1500,
            total_vfs,
            numa_node: 0,
            vf_bus,
            rdma: false,
            arp_type: 1,
        }
    }

    /// A Mellanox ConnectX-5 (`mlx5_core` for PF and VFs, RDMA-capable VFs).
    pub fn mellanox(pci: &str, ifname: &str, total_vfs: u32, vf_bus: u8) -> Self {
        Self {
            vendor: "15b3".into(),
            device: "1017".into(),
            vf_device: "1018".into(),
            driver: "mlx5_core".into(),
            vf_driver: "mlx5_core".into(),
            mac: "0c:42:a1:00:00:01".into(),
            numa_node: 1,
            rdma: true,
            ..Self::intel(pci, ifname, total_vfs, vf_bus)
        }
    }

    /// A NIC without SR-IOV (Intel I350-like, `igb`).
    pub fn plain(pci: &str, ifname: &str) -> Self {
        Self {
            device: "1521".into(),
            driver: "igb".into(),
            mac: "3c:ec:ef:00:00:01".into(),
            ..Self::intel(pci, ifname, 0, 0)
        }
    }

    /// Address of VF `index`.
    pub fn vf_pci(&self, index: u32) -> String {
        let domain = self.pci.split(':').next().unwrap_or("0000");
        format!(
            "{domain}:{:02x}:{:02x}.{}",
            self.vf_bus,
            index / 8,
            index % 8
        )
    }
}

/// A fake host root (`<root>/sys`, `<root>/dev`).
#[derive(Clone, Debug)]
pub struct FakeHost {
    root: PathBuf,
    pfs: Arc<Mutex<HashMap<String, FakePf>>>,
    next_group: Arc<Mutex<u32>>,
    /// Serialises the kernel's reactions with direct changes made by tests.
    kernel: Arc<Mutex<()>>,
}

impl FakeHost {
    /// An empty host under `root` (which must exist).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for dir in [
            "sys/devices/pci0000:00",
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers/vfio-pci",
            "sys/kernel/iommu_groups",
            "dev/vfio",
        ] {
            fs::create_dir_all(root.join(dir))?;
        }
        fs::write(root.join("sys/bus/pci/drivers_probe"), "")?;
        for f in ["bind", "unbind"] {
            fs::write(root.join("sys/bus/pci/drivers/vfio-pci").join(f), "")?;
        }
        Ok(Self {
            root,
            pfs: Arc::default(),
            next_group: Arc::new(Mutex::new(10)),
            kernel: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sysfs root (`<root>/sys`).
    pub fn sys(&self) -> PathBuf {
        self.root.join("sys")
    }

    fn dev_dir(&self, pci: &str) -> PathBuf {
        self.root.join("sys/devices/pci0000:00").join(pci)
    }

    /// Add a PF (with `sriov_numvfs` 0).
    pub fn add_pf(&self, pf: &FakePf) -> io::Result<()> {
        let dir = self.dev_dir(&pf.pci);
        fs::create_dir_all(&dir)?;
        symlink(
            format!("../../../devices/pci0000:00/{}", pf.pci),
            self.root.join("sys/bus/pci/devices").join(&pf.pci),
        )?;
        write_all(
            &dir,
            &[
                ("class", "0x020000".into()),
                ("vendor", format!("0x{}", pf.vendor)),
                ("device", format!("0x{}", pf.device)),
                ("numa_node", pf.numa_node.to_string()),
            ],
        )?;
        if pf.total_vfs > 0 {
            write_all(
                &dir,
                &[
                    ("sriov_totalvfs", pf.total_vfs.to_string()),
                    ("sriov_numvfs", "0".into()),
                ],
            )?;
        }
        self.ensure_driver(&pf.driver)?;
        self.ensure_driver(&pf.vf_driver)?;
        self.bind_link(&pf.pci, &pf.driver)?;
        let net = dir.join("net").join(&pf.ifname);
        fs::create_dir_all(&net)?;
        write_all(
            &net,
            &[
                ("address", pf.mac.clone()),
                ("mtu", pf.mtu.to_string()),
                ("operstate", "up".into()),
                ("carrier", "1".into()),
                ("flags", "0x1003".into()),
                ("type", pf.arp_type.to_string()),
                ("speed", "25000".into()),
            ],
        )?;
        lock(&self.pfs).insert(pf.pci.clone(), pf.clone());
        Ok(())
    }

    fn ensure_driver(&self, driver: &str) -> io::Result<()> {
        let dir = self.root.join("sys/bus/pci/drivers").join(driver);
        fs::create_dir_all(&dir)?;
        for f in ["bind", "unbind"] {
            if !dir.join(f).exists() {
                fs::write(dir.join(f), "")?;
            }
        }
        Ok(())
    }

    fn bind_link(&self, pci: &str, driver: &str) -> io::Result<()> {
        symlink(
            format!("../../../bus/pci/drivers/{driver}"),
            self.dev_dir(pci).join("driver"),
        )
    }

    /// Pull or plug the PF's cable: its `operstate` follows `carrier` and the admin flag.
    pub fn set_carrier(&self, pf: &str, up: bool) -> io::Result<()> {
        let Some(ifname) = lock(&self.pfs).get(pf).map(|p| p.ifname.clone()) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, pf.to_owned()));
        };
        let net = self.dev_dir(pf).join("net").join(ifname);
        fs::write(net.join("carrier"), if up { "1" } else { "0" })?;
        refresh_operstate(&net)
    }

    /// Create VFs directly, as if firmware or another tool had (for externally managed PFs).
    pub fn create_vfs(&self, pf: &str, count: u32) -> io::Result<()> {
        let _kernel = lock(&self.kernel);
        fs::write(self.dev_dir(pf).join("sriov_numvfs"), count.to_string())?;
        self.sync_numvfs(pf)
    }

    // === the kernel's side ===

    fn sync_numvfs(&self, pf_pci: &str) -> io::Result<()> {
        let Some(pf) = lock(&self.pfs).get(pf_pci).cloned() else {
            return Ok(());
        };
        let dir = self.dev_dir(pf_pci);
        let Ok(text) = fs::read_to_string(dir.join("sriov_numvfs")) else {
            return Ok(());
        };
        let have = count_virtfns(&dir);
        let Ok(want) = text.trim().parse::<u32>() else {
            return fs::write(dir.join("sriov_numvfs"), have.to_string());
        };
        if want == have {
            return Ok(());
        }
        // Drivers refuse to change a non-zero VF count without going through 0 (EBUSY), and
        // more than sriov_totalvfs (ERANGE): the value stays what it was.
        if (have != 0 && want != 0) || want > pf.total_vfs {
            return fs::write(dir.join("sriov_numvfs"), have.to_string());
        }
        if want == 0 {
            for index in 0..have {
                let vf = pf.vf_pci(index);
                fs::remove_file(dir.join(format!("virtfn{index}")))?;
                fs::remove_file(self.root.join("sys/bus/pci/devices").join(&vf))?;
                fs::remove_dir_all(self.dev_dir(&vf))?;
            }
            return Ok(());
        }
        for index in 0..want {
            self.create_vf(&pf, index)?;
        }
        Ok(())
    }

    fn create_vf(&self, pf: &FakePf, index: u32) -> io::Result<()> {
        let vf = pf.vf_pci(index);
        let dir = self.dev_dir(&vf);
        fs::create_dir_all(&dir)?;
        write_all(
            &dir,
            &[
                ("class", "0x020000".into()),
                ("vendor", format!("0x{}", pf.vendor)),
                ("device", format!("0x{}", pf.vf_device)),
                ("numa_node", pf.numa_node.to_string()),
                ("driver_override", "(null)".into()),
            ],
        )?;
        symlink(format!("../{}", pf.pci), dir.join("physfn"))?;
        let group = {
            let mut next = lock(&self.next_group);
            *next += 1;
            *next
        };
        let group_dir = self
            .root
            .join("sys/kernel/iommu_groups")
            .join(group.to_string());
        fs::create_dir_all(&group_dir)?;
        symlink(
            format!("../../../kernel/iommu_groups/{group}"),
            dir.join("iommu_group"),
        )?;
        symlink(
            format!("../../../devices/pci0000:00/{vf}"),
            self.root.join("sys/bus/pci/devices").join(&vf),
        )?;
        self.bind(&vf, &pf.vf_driver)?;
        // The link appears last: once `virtfnN` exists the VF is complete.
        symlink(
            format!("../{vf}"),
            self.dev_dir(&pf.pci).join(format!("virtfn{index}")),
        )
    }

    fn pf_of(&self, vf: &str) -> Option<(FakePf, u32)> {
        let pfs = lock(&self.pfs);
        pfs.values().find_map(|pf| {
            (0..pf.total_vfs)
                .find(|i| pf.vf_pci(*i) == vf)
                .map(|i| (pf.clone(), i))
        })
    }

    fn bind(&self, pci: &str, driver: &str) -> io::Result<()> {
        let dir = self.dev_dir(pci);
        if !dir.exists() || dir.join("driver").symlink_metadata().is_ok() {
            return Ok(());
        }
        let Some((pf, index)) = self.pf_of(pci) else {
            return Ok(());
        };
        if driver == "vfio-pci" {
            if let Some(group) = link_name(&dir.join("iommu_group")) {
                fs::write(self.root.join("dev/vfio").join(group), "")?;
            }
        } else {
            let net = dir.join("net").join(format!("{}v{index}", pf.ifname));
            fs::create_dir_all(&net)?;
            write_all(
                &net,
                &[
                    (
                        "address",
                        format!(
                            "02:00:00:{:02x}:{:02x}:{:02x}",
                            pf.vf_bus,
                            index / 256,
                            index % 256
                        ),
                    ),
                    ("mtu", "1500".into()),
                    ("operstate", "up".into()),
                    ("carrier", "1".into()),
                    ("flags", "0x1003".into()),
                    ("type", pf.arp_type.to_string()),
                ],
            )?;
            if pf.rdma {
                let n = u32::from(pf.vf_bus) * 1000 + index;
                fs::create_dir_all(dir.join(format!("infiniband/mlx5_{n}")))?;
                fs::create_dir_all(dir.join(format!("infiniband_verbs/uverbs{n}")))?;
                fs::create_dir_all(dir.join(format!("infiniband_mad/umad{n}")))?;
                fs::create_dir_all(dir.join(format!("infiniband_mad/issm{n}")))?;
            }
        }
        self.bind_link(pci, driver)
    }

    fn unbind(&self, pci: &str, driver: &str) -> io::Result<()> {
        let dir = self.dev_dir(pci);
        if link_name(&dir.join("driver")).as_deref() != Some(driver) {
            return Ok(());
        }
        for sub in ["net", "infiniband", "infiniband_verbs", "infiniband_mad"] {
            if dir.join(sub).exists() {
                fs::remove_dir_all(dir.join(sub))?;
            }
        }
        fs::remove_file(dir.join("driver"))
    }

    fn probe(&self, pci: &str) -> io::Result<()> {
        let Some((pf, _)) = self.pf_of(pci) else {
            return Ok(());
        };
        let text =
            fs::read_to_string(self.dev_dir(pci).join("driver_override")).unwrap_or_default();
        let over = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        let driver = if over.is_empty() || over == "(null)" {
            pf.vf_driver
        } else {
            over.to_owned()
        };
        self.bind(pci, &driver)
    }

    fn on_write(&self, path: &Path) -> io::Result<()> {
        let _kernel = lock(&self.kernel);
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            return Ok(());
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        let value = || fs::read_to_string(path).map(|v| v.trim().to_owned());
        match file {
            "sriov_numvfs" => match parent.file_name().and_then(|p| p.to_str()) {
                Some(pf) => self.sync_numvfs(pf),
                None => Ok(()),
            },
            "drivers_probe" => self.probe(&value()?),
            "bind" | "unbind" => {
                let Some(driver) = parent.file_name().and_then(|d| d.to_str()) else {
                    return Ok(());
                };
                let pci = value()?;
                if file == "bind" {
                    // The kernel binds only when no override names another driver.
                    let over = fs::read_to_string(self.dev_dir(&pci).join("driver_override"))
                        .unwrap_or_default();
                    let over = over.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                    if over.is_empty() || over == "(null)" || over == driver {
                        return self.bind(&pci, driver);
                    }
                    Ok(())
                } else {
                    self.unbind(&pci, driver)
                }
            }
            "flags" => refresh_operstate(parent),
            _ => Ok(()),
        }
    }
}

/// The simulated kernel: reacts to writes in a [`FakeHost`] until dropped.
pub struct SimulatedKernel {
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl SimulatedKernel {
    /// Watch the files the kernel reacts to: every PF's directory and netdev directory, the PCI
    /// bus directory and every driver directory. (Add PFs before starting.)
    pub fn start(host: &FakeHost) -> notify::Result<Self> {
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(tx)?;
        let sys = host.sys();
        watcher.watch(&sys.join("bus/pci"), RecursiveMode::NonRecursive)?;
        for entry in fs::read_dir(sys.join("bus/pci/drivers"))?.flatten() {
            watcher.watch(&entry.path(), RecursiveMode::NonRecursive)?;
        }
        for pf in lock(&host.pfs).values() {
            let dir = host.dev_dir(&pf.pci);
            watcher.watch(&dir, RecursiveMode::NonRecursive)?;
            watcher.watch(
                &dir.join("net").join(&pf.ifname),
                RecursiveMode::NonRecursive,
            )?;
        }
        let host = host.clone();
        let thread = std::thread::spawn(move || {
            // Ends when the watcher (the only sender) is dropped.
            for event in rx.into_iter().flatten() {
                if event.kind != EventKind::Access(AccessKind::Close(AccessMode::Write)) {
                    continue;
                }
                for path in &event.paths {
                    if let Err(error) = host.on_write(path) {
                        tracing::warn!(path = %path.display(), %error, "simulated kernel");
                    }
                }
            }
        });
        Ok(Self {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }
}

impl Drop for SimulatedKernel {
    fn drop(&mut self) {
        self.watcher.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn refresh_operstate(net: &Path) -> io::Result<()> {
    let carrier = fs::read_to_string(net.join("carrier")).is_ok_and(|c| c.trim() == "1");
    let flags = fs::read_to_string(net.join("flags")).unwrap_or_default();
    let admin_up =
        i64::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 != 0);
    let state = if carrier && admin_up { "up" } else { "down" };
    if fs::read_to_string(net.join("operstate")).is_ok_and(|s| s.trim() == state) {
        return Ok(());
    }
    fs::write(net.join("operstate"), state)
}

fn count_virtfns(dir: &Path) -> u32 {
    let count = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("virtfn"))
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(str::to_owned)
}

fn write_all(dir: &Path, files: &[(&str, String)]) -> io::Result<()> {
    for (name, value) in files {
        fs::write(dir.join(name), format!("{value}\n"))?;
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
