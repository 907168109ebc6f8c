//! Static rules for the SR-IOV kinds (sriov-spec §2.1–§2.3): the checks upstream's admission
//! webhook makes without looking at the cluster, the mutation defaults of policies, and the
//! consistency of NodeState VF groups.
//!
//! Several of these rules are also CEL rules in the CRD schema (`crate::sriov::policy`); they are
//! repeated here because the webhook and `multusctl` must give the same answer when the API
//! server is not in the loop. The rules that need cluster state (matching nodes, NIC capacity,
//! overlaps with other policies) live with the index that holds that state.

use crate::diag::{Diagnostics, FieldPath};
use crate::names::{validate_dns1123_label, validate_plugin_type};
use crate::sriov::nics::is_pci_id;
use crate::sriov::policy::MAX_RESOURCE_NAME_LEN;
use crate::sriov::values::is_ethernet;
use crate::sriov::{
    DEFAULT_POLICY_NAME, DeviceType, PfNameSelector, SriovNetwork, SriovNetworkNodePolicy,
    SriovNetworkNodePolicySpec, SriovNetworkNodeState, SupportedNics, VfRange,
};

/// Apply the mutating webhook's defaults to a policy (§2.1): `priority` 99 and `isRdma` false
/// when absent, and `isRdma` forced true for an InfiniBand link unless the VFs use vfio-pci.
/// The policy named `default` is left alone. Returns whether anything changed.
pub fn default_policy(policy: &mut SriovNetworkNodePolicy) -> bool {
    if policy.metadata.name.as_deref() == Some(DEFAULT_POLICY_NAME) {
        return false;
    }
    let before = (policy.spec.priority, policy.spec.is_rdma);
    let spec = &mut policy.spec;
    spec.priority
        .get_or_insert(crate::sriov::policy::DEFAULT_PRIORITY);
    spec.is_rdma.get_or_insert(false);
    // An IB port carries no traffic without RDMA, so upstream overrides the user's value.
    if spec.is_infiniband() && spec.device_type != DeviceType::VfioPci {
        spec.is_rdma = Some(true);
    }
    before != (spec.priority, spec.is_rdma)
}

/// The `resourceName` grammar shared by policies and networks: 1–63 characters, letters and
/// digits, with `_` and `-` allowed inside (see docs/decisions.md).
pub fn validate_resource_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("resourceName must not be empty".into());
    }
    if name.len() > MAX_RESOURCE_NAME_LEN {
        return Err(format!(
            "resourceName {name:?} is longer than {MAX_RESOURCE_NAME_LEN} characters"
        ));
    }
    let bytes = name.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
    let edges_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if !edges_ok || !bytes.iter().all(inner_ok) {
        return Err(format!(
            "resourceName {name:?} must consist of letters, digits, '_' and '-', and start and end with a letter or digit (e.g. intel_sriov_netdevice)"
        ));
    }
    Ok(())
}

/// Validate a policy as upstream's validating webhook does before it looks at nodes (§2.2
/// preconditions and steps 1–9).
///
/// `nics` is the supported-NIC list; `None` disables the NIC checks, like upstream's
/// `DEV_MODE=TRUE`. The policy named `default` in the operator namespace is always accepted; a
/// policy in another namespace only gets a warning that it will not be used. A policy without a
/// namespace (a file given to `multusctl`) is checked fully.
pub fn validate_policy(
    policy: &SriovNetworkNodePolicy,
    nics: Option<&SupportedNics>,
    operator_namespace: &str,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let name = policy.metadata.name.as_deref();
    match policy.metadata.namespace.as_deref() {
        Some(ns) if ns == operator_namespace && name == Some(DEFAULT_POLICY_NAME) => return diags,
        Some(ns) if ns != operator_namespace => {
            diags.warning(
                "metadata.namespace",
                format!(
                    "SriovNetworkNodePolicy is created or updated but not used: only policies in the operator namespace {operator_namespace:?} are applied, this one is in {ns:?}"
                ),
            );
            return diags;
        }
        _ => {}
    }
    diags.extend(validate_policy_spec(&policy.spec, nics));
    diags
}

/// The static checks of a policy spec (§2.2 steps 1–9), paths under `spec.`.
pub fn validate_policy_spec(
    spec: &SriovNetworkNodePolicySpec,
    nics: Option<&SupportedNics>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let path = FieldPath::new("spec");

    if let Err(message) = validate_resource_name(&spec.resource_name) {
        diags.error(path.field("resourceName"), message);
    }
    check_nic_selector(spec, nics, &path, &mut diags);
    check_modes(spec, &path, &mut diags);
    diags
}

fn check_nic_selector(
    spec: &SriovNetworkNodePolicySpec,
    nics: Option<&SupportedNics>,
    path: &FieldPath,
    diags: &mut Diagnostics,
) {
    let sel = &spec.nic_selector;
    let sel_path = path.field("nicSelector");

    // Step 2: an empty selector would match nothing.
    if sel.is_empty() {
        diags.error(
            sel_path.clone(),
            "nicSelector must set at least one of vendor, deviceID, pfNames, rootDevices or netFilter",
        );
        return;
    }

    // Step 3: a cloud network filter is the whole selector.
    if !sel.net_filter.is_empty() {
        let conflicts = [
            ("vendor", !sel.vendor.is_empty()),
            ("deviceID", !sel.device_id.is_empty()),
            ("pfNames", !sel.pf_names.is_empty()),
            ("rootDevices", !sel.root_devices.is_empty()),
        ];
        for (field, set) in conflicts {
            if set {
                diags.error(
                    sel_path.field(field),
                    format!("{field} cannot be combined with netFilter: a netFilter policy selects the cloud network's interfaces by itself; remove {field} or netFilter"),
                );
            }
        }
        if spec.e_switch_mode.is_some() {
            diags.error(
                path.field("eSwitchMode"),
                "eSwitchMode cannot be set on a netFilter (cloud network) policy; remove it",
            );
        }
        if spec.wants_bridge() {
            diags.error(
                path.field("bridge"),
                "bridge cannot be set on a netFilter (cloud network) policy; remove it",
            );
        }
        if let Some(link) = spec.link_type.as_deref().filter(|l| !is_ethernet(l)) {
            diags.error(
                path.field("linkType"),
                format!("linkType {link:?} cannot be used on a netFilter (cloud network) policy; use eth or remove it"),
            );
        }
    }

    // Step 4: only NIC models the operator knows how to configure.
    if let Some(nics) = nics {
        check_supported_nic(sel, nics, &sel_path, diags);
    } else {
        for (field, value) in [("vendor", &sel.vendor), ("deviceID", &sel.device_id)] {
            if !value.is_empty() && !is_pci_id(value) {
                diags.warning(
                    sel_path.field(field),
                    format!("{field} {value:?} is not 4 lower-case hex digits, so it never matches the value in sysfs"),
                );
            }
        }
    }

    // Step 5: VF ranges in pfNames.
    for (index, entry) in sel.pf_names.iter().enumerate() {
        let entry_path = sel_path.field("pfNames").index(index);
        match PfNameSelector::parse(entry) {
            Err(e) => diags.error(entry_path, e.to_string()),
            Ok(PfNameSelector {
                range: Some(range), ..
            }) if i64::from(range.end) >= i64::from(spec.num_vfs) => diags.error(
                entry_path,
                format!(
                    "VF range {range} of {entry:?} ends at VF {}, but the policy creates only {} VFs (indices 0-{}); raise numVfs or lower the range",
                    range.end,
                    spec.num_vfs,
                    spec.num_vfs - 1
                ),
            ),
            Ok(_) => {}
        }
    }
}

fn check_supported_nic(
    sel: &crate::sriov::SriovNetworkNicSelector,
    nics: &SupportedNics,
    sel_path: &FieldPath,
    diags: &mut Diagnostics,
) {
    let hint = "add the model to the supported-nic-ids ConfigMap (or multusctl --supported-nics) if it supports SR-IOV";
    let format_hint = |v: &str| {
        if is_pci_id(v) {
            String::new()
        } else {
            " (PCI IDs are written as 4 lower-case hex digits, e.g. 8086)".to_owned()
        }
    };
    if !sel.vendor.is_empty() && !nics.has_vendor(&sel.vendor) {
        diags.error(
            sel_path.field("vendor"),
            format!(
                "vendor {:?} is not in the supported NIC list{} (known vendors: {}); {hint}",
                sel.vendor,
                format_hint(&sel.vendor),
                nics.vendors().join(", ")
            ),
        );
        return;
    }
    if sel.device_id.is_empty() {
        return;
    }
    if !sel.vendor.is_empty() {
        if !nics.has_pf(&sel.vendor, &sel.device_id) {
            diags.error(
                sel_path.field("deviceID"),
                format!(
                    "vendor {:?} device {:?} is not a supported PF model{}; {hint}",
                    sel.vendor,
                    sel.device_id,
                    format_hint(&sel.device_id)
                ),
            );
        }
    } else if !nics.has_pf_device(&sel.device_id) {
        diags.error(
            sel_path.field("deviceID"),
            format!(
                "deviceID {:?} is not the PF device ID of any supported NIC model{}; {hint}",
                sel.device_id,
                format_hint(&sel.device_id)
            ),
        );
    }
}

fn check_modes(spec: &SriovNetworkNodePolicySpec, path: &FieldPath, diags: &mut Diagnostics) {
    // Step 6
    if spec.device_type == DeviceType::VfioPci && spec.is_rdma == Some(true) {
        diags.error(
            path.field("isRdma"),
            "isRdma cannot be used with deviceType vfio-pci: RDMA needs the kernel VF driver; use deviceType netdevice or set isRdma false",
        );
    }
    // Step 7
    if spec.is_switchdev()
        && let Some(link) = spec.link_type.as_deref().filter(|l| !is_ethernet(l))
    {
        diags.error(
                path.field("eSwitchMode"),
                format!("eSwitchMode switchdev needs an Ethernet link, but linkType is {link:?}; use linkType eth or eSwitchMode legacy"),
            );
    }
    // Step 8
    if let Some(vdpa) = spec.vdpa_type
        && (spec.device_type != DeviceType::Netdevice || !spec.is_switchdev())
    {
        diags.error(
                path.field("vdpaType"),
                format!(
                    "vdpaType {vdpa} needs deviceType netdevice and eSwitchMode switchdev (have deviceType {}, eSwitchMode {})",
                    spec.device_type,
                    spec.e_switch_mode.map_or("unset (legacy)", |m| m.as_str())
                ),
            );
    }
    // Step 9
    if spec.wants_bridge() {
        if !spec.is_switchdev() {
            diags.error(
                path.field("bridge"),
                "bridge needs eSwitchMode switchdev: only a switchdev uplink can be put into an OVS bridge",
            );
        }
        if spec.externally_managed {
            diags.error(
                path.field("bridge"),
                "bridge cannot be used with externallyManaged: true: the operator does not own the PF, so it cannot move it into a bridge",
            );
        }
    }
}

/// Validate a SriovNetwork (§2.3) plus the text fields that are spliced into the CNI config.
///
/// Upstream's only rule is that `networkNamespace` may be set only in the operator namespace. We
/// also reject JSON text that would make the rendered NAD invalid or let `metaPlugins`/`ipam`
/// inject keys into it (docs/decisions.md). A network without a namespace (a file given to
/// `multusctl`) skips the namespace rule.
pub fn validate_network(net: &SriovNetwork, operator_namespace: &str) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let spec = &net.spec;
    let path = FieldPath::new("spec");

    if spec.resource_name.is_empty() {
        diags.error(
            path.field("resourceName"),
            "resourceName must name the device-plugin resource of a SriovNetworkNodePolicy",
        );
    } else if let Err(message) = validate_resource_name(&spec.resource_name) {
        diags.warning(
            path.field("resourceName"),
            format!("{message}; no policy can create such a resource, so pods using this network cannot be scheduled"),
        );
    }

    if !spec.network_namespace.is_empty() {
        let ns_path = path.field("networkNamespace");
        match net.metadata.namespace.as_deref() {
            Some(ns) if ns != operator_namespace => diags.error(
                ns_path,
                format!(
                    "networkNamespace can only be set on SriovNetworks in the operator namespace {operator_namespace:?}; remove it to create the NetworkAttachmentDefinition in {ns:?}, or create this SriovNetwork in {operator_namespace:?}"
                ),
            ),
            _ => {
                if let Err(message) = validate_dns1123_label(&spec.network_namespace) {
                    diags.error(ns_path, format!("networkNamespace is not a namespace name: {message}"));
                }
            }
        }
    }

    for (field, text) in [("ipam", &spec.ipam), ("capabilities", &spec.capabilities)] {
        if !text.is_empty()
            && !matches!(serde_json::from_str(text), Ok(serde_json::Value::Object(_)))
        {
            diags.error(
                path.field(field),
                format!("{field} must be one JSON object, e.g. {}; it is copied into the CNI config as is", example_for(field)),
            );
        }
    }

    if !spec.meta_plugins.is_empty()
        && let Err(message) = check_meta_plugins(&spec.meta_plugins)
    {
        diags.error(path.field("metaPlugins"), message);
    }
    diags
}

fn example_for(field: &str) -> &'static str {
    match field {
        "ipam" => r#"{"type": "host-local", "subnet": "10.56.217.0/24"}"#,
        _ => r#"{"mac": true, "ips": true}"#,
    }
}

/// `metaPlugins` is spliced between `[{sriov},` and `]`, so it must be exactly a comma-separated
/// sequence of plugin objects, each with a bare plugin `type`.
fn check_meta_plugins(text: &str) -> Result<(), String> {
    let wrapped = format!("[{text}]");
    let Ok(serde_json::Value::Array(plugins)) = serde_json::from_str(&wrapped) else {
        return Err(
            "metaPlugins must be one or more JSON objects separated by commas (not a JSON array), e.g. {\"type\": \"tuning\"}, {\"type\": \"vrf\", \"vrfname\": \"red\"}".into(),
        );
    };
    for (index, plugin) in plugins.iter().enumerate() {
        let number = index + 1;
        let Some(object) = plugin.as_object() else {
            return Err(format!("metaPlugins entry {number} is not a JSON object"));
        };
        match object.get("type").and_then(serde_json::Value::as_str) {
            None => return Err(format!("metaPlugins entry {number} has no string \"type\"")),
            Some(t) => validate_plugin_type(t)
                .map_err(|message| format!("metaPlugins entry {number}: {message}"))?,
        }
    }
    Ok(())
}

/// Check that the desired layout of a NodeState is consistent: every PF has a PCI address and
/// appears once, and every VF group's range parses, fits in the PF's `numVfs` and does not
/// overlap another group of the same PF.
pub fn validate_node_state(state: &SriovNetworkNodeState) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let interfaces_path = FieldPath::new("spec").field("interfaces");
    for (i, iface) in state.spec.interfaces.iter().enumerate() {
        let iface_path = interfaces_path.index(i);
        if iface.pci_address.is_empty() {
            diags.error(
                iface_path.field("pciAddress"),
                "pciAddress must not be empty",
            );
        } else if let Some(first) = state.spec.interfaces[..i]
            .iter()
            .position(|other| other.pci_address == iface.pci_address)
        {
            diags.error(
                iface_path.field("pciAddress"),
                format!(
                    "PF {} is listed twice (also spec.interfaces[{first}]); merge the entries",
                    iface.pci_address
                ),
            );
        }

        let mut seen: Vec<(usize, VfRange)> = Vec::new();
        for (j, group) in iface.vf_groups.iter().enumerate() {
            let range_path = iface_path.field("vfGroups").index(j).field("vfRange");
            let range = match group.range() {
                Ok(range) => range,
                Err(e) => {
                    diags.error(range_path, e.to_string());
                    continue;
                }
            };
            if i64::from(range.end) >= i64::from(iface.num_vfs) {
                diags.error(
                    range_path.clone(),
                    format!(
                        "VF range {range} of resource {:?} goes beyond the {} VFs of PF {}",
                        group.resource_name, iface.num_vfs, iface.pci_address
                    ),
                );
            }
            if let Some((k, other)) = seen.iter().find(|(_, other)| other.overlaps(&range)) {
                diags.error(
                    range_path,
                    format!(
                        "VF range {range} of resource {:?} overlaps vfGroups[{k}] ({other}, resource {:?}) on PF {}; a VF can belong to one group only",
                        group.resource_name, iface.vf_groups[*k].resource_name, iface.pci_address
                    ),
                );
            }
            seen.push((j, range));
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sriov::bridge::{OvsConfig, PolicyBridges};
    use crate::sriov::nodestate::{Interface, VfGroup};
    use crate::sriov::{
        DEFAULT_OPERATOR_NAMESPACE, ESwitchMode, SriovNetworkNicSelector,
        SriovNetworkNodeStateSpec, SriovNetworkSpec, VdpaType,
    };

    const NS: &str = DEFAULT_OPERATOR_NAMESPACE;

    fn policy(spec: SriovNetworkNodePolicySpec) -> SriovNetworkNodePolicy {
        let mut p = SriovNetworkNodePolicy::new("p", spec);
        p.metadata.namespace = Some(NS.into());
        p
    }

    fn good_spec() -> SriovNetworkNodePolicySpec {
        SriovNetworkNodePolicySpec {
            resource_name: "intel_netdevice".into(),
            num_vfs: 8,
            nic_selector: SriovNetworkNicSelector {
                vendor: "8086".into(),
                device_id: "159b".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The error paths of a spec checked against the built-in NIC list.
    fn error_paths(spec: SriovNetworkNodePolicySpec) -> Vec<String> {
        let nics = SupportedNics::builtin();
        validate_policy(&policy(spec), Some(&nics), NS)
            .errors()
            .map(|d| d.path.to_string())
            .collect()
    }

    fn bridge() -> Option<PolicyBridges> {
        Some(PolicyBridges {
            ovs: Some(OvsConfig::default()),
        })
    }

    #[test]
    fn a_good_policy_passes() {
        assert!(error_paths(good_spec()).is_empty());
    }

    #[test]
    fn defaults_insert_priority_and_is_rdma_only_when_absent() {
        let mut p = policy(good_spec());
        assert!(default_policy(&mut p));
        assert_eq!((p.spec.priority, p.spec.is_rdma), (Some(99), Some(false)));
        assert!(!default_policy(&mut p), "second run changes nothing");

        let mut p = policy(SriovNetworkNodePolicySpec {
            priority: Some(0),
            is_rdma: Some(true),
            ..good_spec()
        });
        assert!(!default_policy(&mut p));
        assert_eq!((p.spec.priority, p.spec.is_rdma), (Some(0), Some(true)));
    }

    #[test]
    fn infiniband_forces_rdma_unless_vfio() {
        let ib = SriovNetworkNodePolicySpec {
            link_type: Some("IB".into()),
            is_rdma: Some(false),
            ..good_spec()
        };
        let mut p = policy(ib.clone());
        assert!(default_policy(&mut p));
        assert_eq!(p.spec.is_rdma, Some(true));

        let mut p = policy(SriovNetworkNodePolicySpec {
            device_type: DeviceType::VfioPci,
            ..ib
        });
        default_policy(&mut p);
        assert_eq!(p.spec.is_rdma, Some(false));
    }

    #[test]
    fn the_default_policy_is_neither_mutated_nor_validated() {
        let mut p = policy(SriovNetworkNodePolicySpec::default());
        p.metadata.name = Some("default".into());
        assert!(!default_policy(&mut p));
        assert_eq!(p.spec.priority, None);
        assert!(validate_policy(&p, Some(&SupportedNics::builtin()), NS).is_empty());
        // The same empty spec under another name is rejected.
        p.metadata.name = Some("other".into());
        assert!(validate_policy(&p, Some(&SupportedNics::builtin()), NS).has_errors());
    }

    #[test]
    fn policies_outside_the_operator_namespace_only_warn() {
        let mut p = policy(SriovNetworkNodePolicySpec::default());
        p.metadata.namespace = Some("app".into());
        let diags = validate_policy(&p, None, NS);
        assert!(!diags.has_errors());
        assert_eq!(
            diags.warnings().next().map(|d| d.path.as_str()),
            Some("metadata.namespace")
        );
    }

    #[test]
    fn resource_names_follow_the_chosen_grammar() {
        for ok in ["a", "intel_netdevice", "fast-dpdk", "A1", &"x".repeat(63)] {
            assert!(validate_resource_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_a",
            "a_",
            "-a",
            "a-",
            "a.b",
            "a/b",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(validate_resource_name(bad).is_err(), "{bad}");
        }
        let spec = SriovNetworkNodePolicySpec {
            resource_name: "intel.nic".into(),
            ..good_spec()
        };
        assert_eq!(error_paths(spec), ["spec.resourceName"]);
    }

    #[test]
    fn empty_selector_is_rejected() {
        let spec = SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector::default(),
            ..good_spec()
        };
        assert_eq!(error_paths(spec), ["spec.nicSelector"]);
    }

    #[test]
    fn net_filter_excludes_other_selectors_and_modes() {
        let cloud = SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector {
                net_filter: "openstack/NetworkID:abc".into(),
                ..Default::default()
            },
            ..good_spec()
        };
        assert!(error_paths(cloud.clone()).is_empty());
        let mixed = SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector {
                net_filter: "openstack/NetworkID:abc".into(),
                root_devices: vec!["0000:00:05.0".into()],
                ..Default::default()
            },
            e_switch_mode: Some(ESwitchMode::Legacy),
            link_type: Some("ib".into()),
            ..cloud.clone()
        };
        assert_eq!(
            error_paths(mixed),
            [
                "spec.nicSelector.rootDevices",
                "spec.eSwitchMode",
                "spec.linkType"
            ]
        );
        let bridged = SriovNetworkNodePolicySpec {
            bridge: bridge(),
            e_switch_mode: None,
            ..cloud
        };
        // netFilter + bridge, and bridge without switchdev.
        assert_eq!(error_paths(bridged), ["spec.bridge", "spec.bridge"]);
    }

    #[test]
    fn unsupported_nics_are_rejected_unless_dev_mode() {
        let realtek = SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector {
                vendor: "10ec".into(),
                device_id: "8168".into(),
                ..Default::default()
            },
            ..good_spec()
        };
        assert_eq!(error_paths(realtek.clone()), ["spec.nicSelector.vendor"]);
        assert!(!validate_policy(&policy(realtek), None, NS).has_errors());

        let wrong_pair = SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector {
                vendor: "8086".into(),
                device_id: "101d".into(),
                ..Default::default()
            },
            ..good_spec()
        };
        assert_eq!(error_paths(wrong_pair), ["spec.nicSelector.deviceID"]);

        let device_only = |id: &str| SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector {
                device_id: id.into(),
                ..Default::default()
            },
            ..good_spec()
        };
        assert!(error_paths(device_only("101d")).is_empty());
        assert_eq!(
            error_paths(device_only("ffff")),
            ["spec.nicSelector.deviceID"]
        );

        let upper = SriovNetworkNodePolicySpec {
            nic_selector: SriovNetworkNicSelector {
                vendor: "15B3".into(),
                ..Default::default()
            },
            ..good_spec()
        };
        let diags = validate_policy(&policy(upper.clone()), Some(&SupportedNics::builtin()), NS);
        assert!(
            diags.iter().any(|d| d.message.contains("lower-case hex")),
            "{diags:?}"
        );
        let dev = validate_policy(&policy(upper), None, NS);
        assert!(!dev.has_errors() && dev.warnings().count() == 1);
    }

    #[test]
    fn pf_name_ranges_must_parse_and_fit_num_vfs() {
        let with_pf_names = |names: &[&str], num_vfs| SriovNetworkNodePolicySpec {
            num_vfs,
            nic_selector: SriovNetworkNicSelector {
                pf_names: names.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            },
            ..good_spec()
        };
        assert!(error_paths(with_pf_names(&["ens1f0#8-15", "eno1"], 16)).is_empty());
        assert_eq!(
            error_paths(with_pf_names(&["ens1f0#8-15"], 15)),
            ["spec.nicSelector.pfNames[0]"]
        );
        assert_eq!(
            error_paths(with_pf_names(
                &["eno1", "ens1f0#0,2-5", "a#1#2", "b#5-2"],
                16
            )),
            [
                "spec.nicSelector.pfNames[1]",
                "spec.nicSelector.pfNames[2]",
                "spec.nicSelector.pfNames[3]"
            ]
        );
    }

    #[test]
    fn vfio_pci_with_rdma_is_rejected() {
        let spec = SriovNetworkNodePolicySpec {
            device_type: DeviceType::VfioPci,
            is_rdma: Some(true),
            ..good_spec()
        };
        assert_eq!(error_paths(spec.clone()), ["spec.isRdma"]);
        assert!(
            error_paths(SriovNetworkNodePolicySpec {
                is_rdma: Some(false),
                ..spec
            })
            .is_empty()
        );
    }

    #[test]
    fn switchdev_needs_ethernet() {
        let spec = SriovNetworkNodePolicySpec {
            e_switch_mode: Some(ESwitchMode::Switchdev),
            link_type: Some("IB".into()),
            ..good_spec()
        };
        assert_eq!(error_paths(spec.clone()), ["spec.eSwitchMode"]);
        assert!(
            error_paths(SriovNetworkNodePolicySpec {
                link_type: Some("eth".into()),
                ..spec
            })
            .is_empty()
        );
    }

    #[test]
    fn vdpa_needs_netdevice_and_switchdev() {
        let good = SriovNetworkNodePolicySpec {
            vdpa_type: Some(VdpaType::Vhost),
            e_switch_mode: Some(ESwitchMode::Switchdev),
            ..good_spec()
        };
        assert!(error_paths(good.clone()).is_empty());
        assert_eq!(
            error_paths(SriovNetworkNodePolicySpec {
                e_switch_mode: None,
                ..good.clone()
            }),
            ["spec.vdpaType"]
        );
        assert_eq!(
            error_paths(SriovNetworkNodePolicySpec {
                device_type: DeviceType::VfioPci,
                ..good
            }),
            ["spec.vdpaType"]
        );
    }

    #[test]
    fn bridge_needs_switchdev_and_an_owned_pf() {
        let good = SriovNetworkNodePolicySpec {
            bridge: bridge(),
            e_switch_mode: Some(ESwitchMode::Switchdev),
            ..good_spec()
        };
        assert!(error_paths(good.clone()).is_empty());
        assert_eq!(
            error_paths(SriovNetworkNodePolicySpec {
                externally_managed: true,
                ..good.clone()
            }),
            ["spec.bridge"]
        );
        assert_eq!(
            error_paths(SriovNetworkNodePolicySpec {
                e_switch_mode: Some(ESwitchMode::Legacy),
                ..good.clone()
            }),
            ["spec.bridge"]
        );
        // `bridge: {}` requests nothing.
        assert!(
            error_paths(SriovNetworkNodePolicySpec {
                bridge: Some(PolicyBridges::default()),
                e_switch_mode: None,
                ..good
            })
            .is_empty()
        );
    }

    fn network(namespace: Option<&str>, spec: SriovNetworkSpec) -> SriovNetwork {
        let mut n = SriovNetwork::new("net-a", spec);
        n.metadata.namespace = namespace.map(str::to_owned);
        n
    }

    fn network_error_paths(namespace: Option<&str>, spec: SriovNetworkSpec) -> Vec<String> {
        validate_network(&network(namespace, spec), NS)
            .errors()
            .map(|d| d.path.to_string())
            .collect()
    }

    fn good_network() -> SriovNetworkSpec {
        SriovNetworkSpec {
            resource_name: "intel_netdevice".into(),
            network_namespace: "app".into(),
            ipam: r#"{"type": "host-local", "subnet": "10.56.217.0/24"}"#.into(),
            capabilities: r#"{"mac": true}"#.into(),
            meta_plugins: r#"{"type": "tuning"}, {"type": "vrf", "vrfname": "red"}"#.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_network_passes() {
        assert!(validate_network(&network(Some(NS), good_network()), NS).is_empty());
    }

    #[test]
    fn network_namespace_only_in_the_operator_namespace() {
        assert_eq!(
            network_error_paths(Some("app"), good_network()),
            ["spec.networkNamespace"]
        );
        let local = SriovNetworkSpec {
            network_namespace: String::new(),
            ..good_network()
        };
        assert!(network_error_paths(Some("app"), local).is_empty());
        // A file without a namespace cannot be judged.
        assert!(network_error_paths(None, good_network()).is_empty());
        let bad_name = SriovNetworkSpec {
            network_namespace: "App_1".into(),
            ..good_network()
        };
        assert_eq!(
            network_error_paths(Some(NS), bad_name),
            ["spec.networkNamespace"]
        );
    }

    #[test]
    fn network_resource_name_is_required_and_checked() {
        let empty = SriovNetworkSpec {
            resource_name: String::new(),
            ..good_network()
        };
        assert_eq!(network_error_paths(Some(NS), empty), ["spec.resourceName"]);
        let dotted = SriovNetworkSpec {
            resource_name: "a.b".into(),
            ..good_network()
        };
        let diags = validate_network(&network(Some(NS), dotted), NS);
        assert!(!diags.has_errors());
        assert_eq!(
            diags.warnings().next().map(|d| d.path.as_str()),
            Some("spec.resourceName")
        );
    }

    #[test]
    fn json_text_fields_must_be_objects() {
        for (ipam, caps, paths) in [
            ("[1]", "", vec!["spec.ipam"]),
            ("type: host-local", "", vec!["spec.ipam"]),
            (r#"{}, "type": "x""#, "", vec!["spec.ipam"]),
            ("", "true", vec!["spec.capabilities"]),
        ] {
            let spec = SriovNetworkSpec {
                ipam: ipam.into(),
                capabilities: caps.into(),
                ..good_network()
            };
            assert_eq!(network_error_paths(Some(NS), spec), paths, "{ipam} {caps}");
        }
    }

    #[test]
    fn meta_plugins_must_be_comma_separated_plugin_objects() {
        for bad in [
            r#"[{"type": "tuning"}]"#,
            r#"{"type": "tuning"}], "cniVersion": "0.1.0", "plugins": [{"type": "x"}"#,
            r#"{"sysctl": {}}"#,
            r#"{"type": "../../bin/sh"}"#,
            r#"{"type": "tuning"}, 3"#,
        ] {
            let spec = SriovNetworkSpec {
                meta_plugins: bad.into(),
                ..good_network()
            };
            assert_eq!(
                network_error_paths(Some(NS), spec),
                ["spec.metaPlugins"],
                "{bad}"
            );
        }
    }

    fn node_state(groups: &[(&str, &str)], num_vfs: i32) -> SriovNetworkNodeState {
        let iface = Interface {
            pci_address: "0000:3b:00.0".into(),
            num_vfs,
            vf_groups: groups
                .iter()
                .map(|(resource, range)| VfGroup {
                    resource_name: (*resource).into(),
                    vf_range: (*range).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        SriovNetworkNodeState::new(
            "worker-0",
            SriovNetworkNodeStateSpec {
                interfaces: vec![iface],
                ..Default::default()
            },
        )
    }

    fn state_error_paths(state: &SriovNetworkNodeState) -> Vec<String> {
        validate_node_state(state)
            .errors()
            .map(|d| d.path.to_string())
            .collect()
    }

    #[test]
    fn node_state_vf_groups_are_disjoint_and_in_range() {
        assert!(state_error_paths(&node_state(&[("b", "4-7"), ("a", "0-3")], 8)).is_empty());
        assert_eq!(
            state_error_paths(&node_state(&[("b", "4-7"), ("a", "0-4")], 8)),
            ["spec.interfaces[0].vfGroups[1].vfRange"]
        );
        assert_eq!(
            state_error_paths(&node_state(&[("a", "0-8")], 8)),
            ["spec.interfaces[0].vfGroups[0].vfRange"]
        );
        assert_eq!(
            state_error_paths(&node_state(&[("a", "0,2")], 8)),
            ["spec.interfaces[0].vfGroups[0].vfRange"]
        );
    }

    #[test]
    fn node_state_pfs_have_unique_addresses() {
        let mut state = node_state(&[], 8);
        let copy = state.spec.interfaces[0].clone();
        state.spec.interfaces.push(copy);
        state.spec.interfaces.push(Interface::default());
        assert_eq!(
            state_error_paths(&state),
            [
                "spec.interfaces[1].pciAddress",
                "spec.interfaces[2].pciAddress"
            ]
        );
    }

    /// Every `examples/invalid/sriov-*.yaml` names, in its first line, the one error path our
    /// rules must report; every `examples/sriov/*.yaml` must pass.
    fn examples_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
    }

    fn validate_example(text: &str) -> Diagnostics {
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        let nics = SupportedNics::builtin();
        match value["kind"].as_str() {
            Some("SriovNetworkNodePolicy") => {
                validate_policy(&serde_json::from_value(value).unwrap(), Some(&nics), NS)
            }
            Some("SriovNetwork") => validate_network(&serde_json::from_value(value).unwrap(), NS),
            Some("SriovNetworkNodeState") => {
                validate_node_state(&serde_json::from_value(value).unwrap())
            }
            other => panic!("unexpected kind {other:?}"),
        }
    }

    #[test]
    fn invalid_examples_report_exactly_their_expected_path() {
        let mut checked = 0;
        for entry in std::fs::read_dir(examples_dir().join("invalid")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("sriov-") || !name.ends_with(".yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            let expected = lines
                .next()
                .and_then(|l| l.strip_prefix("# expect-error: "))
                .unwrap_or_else(|| panic!("{name}: first line must be '# expect-error: <path>'"));
            assert!(
                lines
                    .next()
                    .is_some_and(|l| l.starts_with("# ") && l.len() > 10),
                "{name}: second line must say the problem in words"
            );
            let diags = validate_example(&text);
            let paths: Vec<&str> = diags.errors().map(|d| d.path.as_str()).collect();
            assert_eq!(paths, [expected], "{name}: {diags:?}");
            checked += 1;
        }
        assert!(
            checked >= 10,
            "only {checked} SR-IOV invalid examples found"
        );
    }

    #[test]
    fn valid_examples_pass() {
        let mut checked = 0;
        for entry in std::fs::read_dir(examples_dir().join("sriov")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let diags = validate_example(&std::fs::read_to_string(&path).unwrap());
            assert!(diags.is_empty(), "{}: {diags:?}", path.display());
            checked += 1;
        }
        assert!(checked >= 5);
    }
}
