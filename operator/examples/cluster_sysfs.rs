//! Generates the fake host trees of `examples/cluster/nodes/` (sysfs and `/dev`) with the test
//! suite's [`FakeHost`], so the committed trees have exactly the layout the agent's discovery is
//! tested against. Run from the repository root:
//!
//! ```sh
//! cargo run -p multus-operator --features fake-sysfs --example cluster_sysfs -- examples/cluster/nodes
//! ```
//!
//! Existing `sys/` and `dev/` trees of the generated nodes are replaced.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use multus_operator::agent::sriov::fakesys::{FakeHost, FakePf};

fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: cluster_sysfs OUT_DIR (e.g. examples/cluster/nodes)")?;

    // worker-1: an Intel E810 port whose 4 VFs already exist (bound to iavf), and an on-board
    // NIC without SR-IOV.
    let host = node(&out, "worker-1")?;
    let e810 = FakePf {
        mac: "b4:96:91:10:00:01".into(),
        ..FakePf::intel("0000:3b:00.0", "ens1f0", 8, 0x3c)
    };
    host.add_pf(&e810)?;
    host.add_pf(&FakePf::plain("0000:01:00.0", "eno1"))?;
    host.create_vfs(&e810.pci, 4)?;

    // worker-2: the same Intel port with no VFs yet, and a Mellanox ConnectX-5 port.
    let host = node(&out, "worker-2")?;
    host.add_pf(&FakePf {
        mac: "b4:96:91:20:00:01".into(),
        ..FakePf::intel("0000:3b:00.0", "ens1f0", 8, 0x3c)
    })?;
    host.add_pf(&FakePf {
        mac: "0c:42:a1:20:00:01".into(),
        ..FakePf::mellanox("0000:5e:00.0", "ens2f0", 8, 0x5f)
    })?;
    Ok(())
}

fn node(out: &Path, name: &str) -> anyhow::Result<FakeHost> {
    let root = out.join(name);
    for sub in ["sys", "dev"] {
        let dir = root.join(sub);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(&root)?;
    FakeHost::new(&root).with_context(|| format!("creating {}", root.display()))
}
