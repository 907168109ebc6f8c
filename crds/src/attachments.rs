//! The ordered attachments a pod gets, with their interface names (multus-spec §3.2, §3.3).
//!
//! Order: the cluster network (or the `v1.multus-cni.io/default-network` override) first, then
//! the configured `defaultNetworks` (not for pods in a system namespace), then the elements of
//! the networks annotation in annotation order. DEL runs the same list in reverse.
//!
//! Interface names: an explicit `interface` / `@ifname` always wins (the override's too); else the
//! first attachment gets the runtime's `CNI_IFNAME` (normally `eth0`); else `net<position>`, the
//! position in the whole list, so explicitly named attachments still use up a number:
//! `[a@foo, b]` gives `foo`, `net2`.
//!
//! [`plan_attachments`] is pure and deterministic: the CNI plugin calls it on ADD and on DEL, the
//! webhook to check interface names, and `multusctl explain` prints it. It does not check the
//! names it produces (duplicates and all); [`crate::rules::pod`] does.

use std::fmt;

use serde::Serialize;

use crate::annotations::NetworkSelection;

/// Everything the plan depends on. Nothing else may influence it, so that ADD and DEL agree.
#[derive(Clone, Copy, Debug)]
pub struct AttachmentInputs<'a> {
    /// Namespace of the pod (the default namespace of the networks annotation).
    pub pod_namespace: &'a str,
    /// `CNI_IFNAME` from the runtime, normally `eth0`.
    pub runtime_ifname: &'a str,
    /// Multus' `clusterNetwork` setting (a NAD name in `multusNamespace`, a CNI network name or a
    /// path; resolved by the plugin per multus-spec §2.2).
    pub cluster_network: &'a str,
    /// The parsed default-network annotation, if the pod has one.
    pub default_network_override: Option<&'a NetworkSelection<'a>>,
    /// Multus' `defaultNetworks` setting, in configuration order.
    pub default_networks: &'a [String],
    /// Multus' `systemNamespaces`: their pods do not get `defaultNetworks`.
    pub system_namespaces: &'a [String],
    /// Multus' `multusNamespace`: where the default-network override is looked up by default.
    pub multus_namespace: &'a str,
    /// The parsed networks annotation.
    pub selections: &'a [NetworkSelection<'a>],
}

/// Where an attachment came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "index")]
pub enum AttachmentOrigin {
    /// The configured `clusterNetwork`.
    ClusterNetwork,
    /// The pod's `v1.multus-cni.io/default-network` annotation.
    DefaultNetworkAnnotation,
    /// Entry `n` of the configured `defaultNetworks`.
    DefaultNetworks(usize),
    /// Element `n` of the pod's networks annotation.
    NetworksAnnotation(usize),
}

/// The network an attachment uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum NetworkRef<'a> {
    /// A NetworkAttachmentDefinition.
    Nad { namespace: &'a str, name: &'a str },
    /// A `clusterNetwork` / `defaultNetworks` entry, resolved per multus-spec §2.2 (NAD in
    /// `multusNamespace`, else a CNI file of that name, or a path).
    Configured { value: &'a str },
}

impl fmt::Display for NetworkRef<'_> {
    /// `namespace/name` for a NAD (the network-status `name`), the setting's value otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkRef::Nad { namespace, name } => write!(f, "{namespace}/{name}"),
            NetworkRef::Configured { value } => f.write_str(value),
        }
    }
}

/// One attachment of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attachment<'a> {
    /// Position in the plan; 0 is the master (cluster network), whose result the runtime gets.
    pub index: usize,
    /// `CNI_IFNAME` for this attachment.
    pub ifname: String,
    /// True when the interface name was asked for rather than generated.
    pub ifname_requested: bool,
    pub network: NetworkRef<'a>,
    pub origin: AttachmentOrigin,
    /// The selection element (annotation elements and the override), with its requests.
    #[serde(skip)]
    pub selection: Option<&'a NetworkSelection<'a>>,
}

impl Attachment<'_> {
    /// The master attachment: the cluster network or its override.
    pub fn is_master(&self) -> bool {
        self.index == 0
    }
}

/// The interface name for the attachment at `index`: an explicit request wins, else the
/// runtime's name for the master, else `net<index>`.
pub fn interface_name(index: usize, requested: Option<&str>, runtime_ifname: &str) -> String {
    IfName::of(index, requested, runtime_ifname).to_string()
}

/// An interface name as the plan assigns it, before it is written out. The pod rules compare
/// every pair of names on each admission review; this lets them do so without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfName<'a> {
    /// Asked for, or the runtime's name for the master.
    Named(&'a str),
    /// `net<index>`.
    Generated(usize),
}

impl<'a> IfName<'a> {
    pub(crate) fn of(index: usize, requested: Option<&'a str>, runtime_ifname: &'a str) -> Self {
        match requested {
            Some(name) => IfName::Named(name),
            None if index == 0 => IfName::Named(runtime_ifname),
            None => IfName::Generated(index),
        }
    }

    /// Whether both render to the same text.
    #[inline]
    pub(crate) fn same_as(self, other: IfName<'_>) -> bool {
        match (self, other) {
            (IfName::Named(a), IfName::Named(b)) => a == b,
            (IfName::Generated(i), IfName::Generated(j)) => i == j,
            (IfName::Named(name), IfName::Generated(i))
            | (IfName::Generated(i), IfName::Named(name)) => name
                .strip_prefix("net")
                .is_some_and(|digits| is_decimal_of(digits, i)),
        }
    }

    pub(crate) fn is(self, name: &str) -> bool {
        self.same_as(IfName::Named(name))
    }
}

/// `digits` is `index` written in decimal as `format!` writes it (no sign, no leading zero).
fn is_decimal_of(digits: &str, index: usize) -> bool {
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'))
        && digits.parse::<usize>() == Ok(index)
}

impl fmt::Display for IfName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfName::Named(name) => f.write_str(name),
            IfName::Generated(index) => write!(f, "net{index}"),
        }
    }
}

/// One attachment of the plan with its name not yet written out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot<'a> {
    pub(crate) index: usize,
    pub(crate) ifname: IfName<'a>,
    pub(crate) ifname_requested: bool,
    pub(crate) network: NetworkRef<'a>,
    pub(crate) origin: AttachmentOrigin,
    pub(crate) selection: Option<&'a NetworkSelection<'a>>,
}

/// The ordered attachments of a pod.
pub fn plan_attachments<'a>(inputs: &AttachmentInputs<'a>) -> Vec<Attachment<'a>> {
    plan_slots(inputs)
        .into_iter()
        .map(|slot| Attachment {
            index: slot.index,
            ifname: slot.ifname.to_string(),
            ifname_requested: slot.ifname_requested,
            network: slot.network,
            origin: slot.origin,
            selection: slot.selection,
        })
        .collect()
}

/// The plan, in the form the pod rules use. [`plan_attachments`] is this, written out.
pub(crate) fn plan_slots<'a>(inputs: &AttachmentInputs<'a>) -> Vec<Slot<'a>> {
    let in_system_namespace = inputs
        .system_namespaces
        .iter()
        .any(|ns| ns == inputs.pod_namespace);
    let default_networks: &[String] = if in_system_namespace {
        &[]
    } else {
        inputs.default_networks
    };
    let mut plan = Vec::with_capacity(1 + default_networks.len() + inputs.selections.len());
    let mut push = |network, origin, selection: Option<&'a NetworkSelection<'a>>| {
        let index = plan.len();
        let requested = selection.and_then(NetworkSelection::requested_interface);
        plan.push(Slot {
            index,
            ifname: IfName::of(index, requested, inputs.runtime_ifname),
            ifname_requested: requested.is_some(),
            network,
            origin,
            selection,
        });
    };

    match inputs.default_network_override {
        Some(selection) => push(
            NetworkRef::Nad {
                namespace: selection.namespace_or(inputs.multus_namespace),
                name: &selection.name,
            },
            AttachmentOrigin::DefaultNetworkAnnotation,
            Some(selection),
        ),
        None => push(
            NetworkRef::Configured {
                value: inputs.cluster_network,
            },
            AttachmentOrigin::ClusterNetwork,
            None,
        ),
    }
    for (i, value) in default_networks.iter().enumerate() {
        push(
            NetworkRef::Configured { value },
            AttachmentOrigin::DefaultNetworks(i),
            None,
        );
    }
    for (i, selection) in inputs.selections.iter().enumerate() {
        push(
            NetworkRef::Nad {
                namespace: selection.namespace_or(inputs.pod_namespace),
                name: &selection.name,
            },
            AttachmentOrigin::NetworksAnnotation(i),
            Some(selection),
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{parse_default_network, parse_networks};

    fn inputs<'a>(selections: &'a [NetworkSelection]) -> AttachmentInputs<'a> {
        AttachmentInputs {
            pod_namespace: "team-a",
            runtime_ifname: "eth0",
            cluster_network: "cbr0",
            default_network_override: None,
            default_networks: &[],
            system_namespaces: &[],
            multus_namespace: "kube-system",
            selections,
        }
    }

    fn names(plan: &[Attachment<'_>]) -> Vec<(String, String)> {
        plan.iter()
            .map(|a| (a.ifname.clone(), a.network.to_string()))
            .collect()
    }

    #[test]
    fn explicit_names_still_use_up_their_position() {
        let sels = parse_networks("a@foo, b, infra/c").unwrap();
        let plan = plan_attachments(&inputs(&sels));
        assert_eq!(
            names(&plan),
            vec![
                ("eth0".into(), "cbr0".into()),
                ("foo".into(), "team-a/a".into()),
                ("net2".into(), "team-a/b".into()),
                ("net3".into(), "infra/c".into()),
            ]
        );
        assert!(plan[0].is_master());
        assert!(plan[1].ifname_requested && !plan[2].ifname_requested);
        assert_eq!(plan[3].origin, AttachmentOrigin::NetworksAnnotation(2));
        assert_eq!(plan[3].selection, Some(&sels[2]));
    }

    #[test]
    fn default_networks_come_before_annotation_networks_except_in_system_namespaces() {
        let sels = parse_networks("a").unwrap();
        let defaults = vec!["audit-net".to_owned(), "log-net".to_owned()];
        let system = vec!["kube-system".to_owned()];
        let mut inp = inputs(&sels);
        inp.default_networks = &defaults;
        inp.system_namespaces = &system;
        assert_eq!(
            names(&plan_attachments(&inp)),
            vec![
                ("eth0".into(), "cbr0".into()),
                ("net1".into(), "audit-net".into()),
                ("net2".into(), "log-net".into()),
                ("net3".into(), "team-a/a".into()),
            ]
        );
        inp.pod_namespace = "kube-system";
        assert_eq!(
            names(&plan_attachments(&inp)),
            vec![
                ("eth0".into(), "cbr0".into()),
                ("net1".into(), "kube-system/a".into()),
            ]
        );
    }

    #[test]
    fn the_override_replaces_the_cluster_network_and_may_name_its_interface() {
        let sels = parse_networks("a").unwrap();
        let plain = parse_default_network("calico-alt").unwrap();
        let mut inp = inputs(&sels);
        inp.default_network_override = Some(&plain);
        let plan = plan_attachments(&inp);
        assert_eq!(plan[0].network.to_string(), "kube-system/calico-alt");
        assert_eq!(plan[0].ifname, "eth0");
        assert_eq!(plan[0].origin, AttachmentOrigin::DefaultNetworkAnnotation);

        let named = parse_default_network("net/calico-alt@pod0").unwrap();
        inp.default_network_override = Some(&named);
        assert_eq!(
            names(&plan_attachments(&inp)),
            vec![
                ("pod0".into(), "net/calico-alt".into()),
                ("net1".into(), "team-a/a".into()),
            ]
        );
    }

    #[test]
    fn the_plan_is_reproducible() {
        let sels = parse_networks(r#"[{"name":"a","interface":"x"},{"name":"a"}]"#).unwrap();
        let inp = inputs(&sels);
        assert_eq!(plan_attachments(&inp), plan_attachments(&inp));
    }

    #[test]
    fn runtime_ifname_is_used_for_the_master() {
        let mut inp = inputs(&[]);
        inp.runtime_ifname = "eth9";
        assert_eq!(plan_attachments(&inp)[0].ifname, "eth9");
    }

    #[test]
    fn unrendered_names_compare_like_their_text() {
        let names = [
            IfName::Named("net2"),
            IfName::Named("net02"),
            IfName::Named("net+2"),
            IfName::Named("net"),
            IfName::Named("eth0"),
            IfName::Named("net12"),
            IfName::Generated(2),
            IfName::Generated(12),
            IfName::Generated(0),
            IfName::Named("net0"),
        ];
        for a in names {
            for b in names {
                assert_eq!(a.same_as(b), a.to_string() == b.to_string(), "{a} vs {b}");
            }
        }
    }
}
