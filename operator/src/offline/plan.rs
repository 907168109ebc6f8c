//! The VF plan: what applying a NodeState spec would do to a node's sysfs, in words. The offline
//! run reports it instead of writing sysfs (it has no kernel behind the fake trees); the facts it
//! states come from the agent's own apply rules ([`disruptive_pfs`],
//! [`driver_fits`]).

use multus_crds::sriov::{DeviceType, Interface};

use crate::agent::sriov::apply::{disruptive_pfs, driver_fits};
use crate::agent::sriov::discovery::Nic;

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The node would change (a write to sysfs); `false`: it already matches.
    pub change: bool,
    pub text: String,
}

/// The plan for `spec` on a node whose NICs are `nics`, PF by PF, then the PFs whose VF holders
/// would be evicted first.
pub fn vf_plan(spec: &[Interface], nics: &[Nic]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut step = |change: bool, text: String| steps.push(Step { change, text });
    for iface in spec {
        let pci = &iface.pci_address;
        let Some(nic) = nics.iter().find(|n| &n.status.pci_address == pci) else {
            step(
                true,
                format!("PF {pci}: not on this node; the apply would fail"),
            );
            continue;
        };
        let s = &nic.status;
        let pf = format!("PF {pci} ({})", s.name);
        if iface.externally_managed {
            let enough = iface.num_vfs <= s.num_vfs;
            step(
                !enough,
                format!(
                    "{pf}: externally managed, {} VFs exist, {} wanted{}",
                    s.num_vfs,
                    iface.num_vfs,
                    if enough { "" } else { "; the apply would fail" }
                ),
            );
        } else if s.num_vfs == iface.num_vfs {
            step(
                false,
                format!("{pf}: sriov_numvfs {} (as wanted)", s.num_vfs),
            );
        } else if s.num_vfs == 0 || iface.num_vfs == 0 {
            step(
                true,
                format!("{pf}: sriov_numvfs {} → {}", s.num_vfs, iface.num_vfs),
            );
        } else {
            step(
                true,
                format!("{pf}: sriov_numvfs {} → 0 → {}", s.num_vfs, iface.num_vfs),
            );
        }
        if iface.mtu > 0 && iface.mtu > s.mtu {
            step(true, format!("{pf}: MTU {} → {}", s.mtu, iface.mtu));
        }
        // VFs that exist now and stay: only those can already be bound right.
        let kept = if s.num_vfs == iface.num_vfs {
            s.num_vfs
        } else {
            0
        };
        for group in &iface.vf_groups {
            let driver = match group.device_type {
                DeviceType::VfioPci => "vfio-pci",
                DeviceType::Netdevice => "the kernel VF driver",
            };
            let Ok(range) = group.range() else { continue };
            let wanted = range.len() as usize;
            let bound = s
                .vfs
                .iter()
                .filter(|vf| vf.vf_id < kept)
                .filter(|vf| {
                    u32::try_from(vf.vf_id)
                        .is_ok_and(|i| range.contains(i) && driver_fits(group, &vf.driver))
                })
                .count();
            let to_bind = wanted.saturating_sub(bound);
            step(
                to_bind > 0,
                format!(
                    "{pf}: VFs {} → {} on {driver}: {}",
                    group.vf_range,
                    group.resource_name,
                    if to_bind == 0 {
                        "already bound".to_owned()
                    } else {
                        format!("{to_bind} to bind")
                    }
                ),
            );
        }
    }
    let disruptive = disruptive_pfs(spec, nics, &[]);
    if !disruptive.is_empty() {
        step(
            true,
            format!(
                "pods holding VFs of {} would be evicted first",
                disruptive.join(", ")
            ),
        );
    }
    steps
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use multus_crds::sriov::{InterfaceStatus, VfGroup, VirtualFunction};

    use super::*;

    fn nic(num_vfs: i32, vf_driver: &str) -> Nic {
        Nic {
            status: InterfaceStatus {
                pci_address: "0000:3b:00.0".into(),
                name: "ens1f0".into(),
                num_vfs,
                total_vfs: 8,
                mtu: 1500,
                vfs: (0..num_vfs)
                    .map(|i| VirtualFunction {
                        vf_id: i,
                        driver: vf_driver.into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            link_up: true,
            numa_node: None,
        }
    }

    fn iface(num_vfs: i32, groups: &[(&str, DeviceType)]) -> Interface {
        Interface {
            pci_address: "0000:3b:00.0".into(),
            num_vfs,
            vf_groups: groups
                .iter()
                .map(|(range, device_type)| VfGroup {
                    resource_name: "r".into(),
                    device_type: *device_type,
                    vf_range: (*range).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn texts(steps: &[Step]) -> Vec<(bool, &str)> {
        steps.iter().map(|s| (s.change, s.text.as_str())).collect()
    }

    #[test]
    fn a_matching_node_needs_nothing() {
        let spec = [iface(2, &[("0-1", DeviceType::Netdevice)])];
        let plan = vf_plan(&spec, &[nic(2, "iavf")]);
        assert!(plan.iter().all(|s| !s.change), "{plan:?}");
        assert_eq!(
            texts(&plan),
            [
                (
                    false,
                    "PF 0000:3b:00.0 (ens1f0): sriov_numvfs 2 (as wanted)"
                ),
                (
                    false,
                    "PF 0000:3b:00.0 (ens1f0): VFs 0-1 → r on the kernel VF driver: already bound"
                ),
            ]
        );
    }

    #[test]
    fn a_count_change_goes_through_zero_and_rebinds_everything() {
        let spec = [iface(4, &[("0-3", DeviceType::VfioPci)])];
        let mut wanted = spec[0].clone();
        wanted.mtu = 9000;
        let plan = vf_plan(&[wanted], &[nic(2, "vfio-pci")]);
        assert_eq!(
            texts(&plan),
            [
                (true, "PF 0000:3b:00.0 (ens1f0): sriov_numvfs 2 → 0 → 4"),
                (true, "PF 0000:3b:00.0 (ens1f0): MTU 1500 → 9000"),
                (
                    true,
                    "PF 0000:3b:00.0 (ens1f0): VFs 0-3 → r on vfio-pci: 4 to bind"
                ),
                (
                    true,
                    "pods holding VFs of 0000:3b:00.0 would be evicted first"
                ),
            ]
        );
    }

    #[test]
    fn missing_and_externally_managed_pfs_are_said() {
        let mut external = iface(4, &[]);
        external.externally_managed = true;
        let plan = vf_plan(&[external], &[nic(2, "iavf")]);
        assert_eq!(
            texts(&plan),
            [(
                true,
                "PF 0000:3b:00.0 (ens1f0): externally managed, 2 VFs exist, 4 wanted; the apply would fail"
            )]
        );
        let plan = vf_plan(&[iface(1, &[])], &[]);
        assert_eq!(
            texts(&plan),
            [(
                true,
                "PF 0000:3b:00.0: not on this node; the apply would fail"
            )]
        );
    }
}
