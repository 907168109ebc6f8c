//! The pod network rules: the networks and default-network annotations of a pod (or of a pod
//! template) against the NADs that exist.
//!
//! One entry point, [`validate_pod_networks`], used by the webhook (pods and workload templates),
//! `multusctl` and the CNI plugin. It checks, reporting every finding with its field path
//! (`metadata.annotations[k8s.v1.cni.cncf.io/networks][2].mac`):
//!
//! - each annotation parses, and every field of every element is valid;
//! - interface names are unique in the pod, computed with the same
//!   [`crate::attachments::plan_attachments`] the plugin uses, and no secondary network takes the cluster network's
//!   interface;
//! - at most one `default-route` gateway per IP family; `ips` not combined with
//!   `ipam-claim-reference`;
//! - every referenced NAD exists (via [`NetworkLookup`]), is allowed by namespace isolation, and
//!   declares the capabilities the element requests.

use std::collections::BTreeMap;

use crate::annotations::networks::{CapabilitySet, known_keys};
use crate::annotations::{
    DefaultNetworkError, NetworkSelection, SelectionParseError, parse_default_network,
    parse_networks,
};
use crate::attachments::{AttachmentInputs, AttachmentOrigin, Slot, plan_slots};
use crate::cni::capabilities::declared_capabilities;
use crate::constants::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use crate::names::{
    HardwareAddr, parse_hardware_addr, parse_ip, parse_ip_or_cidr, validate_dns1123_label,
    validate_dns1123_subdomain, validate_ifname,
};
use crate::rules::isolation::{GlobalNamespaces, check_namespace_isolation};
use crate::{Diagnostics, FieldPath, NetworkAttachmentDefinition, Severity};

// === Lookup ===

/// Where the rules find NADs. The webhook implements it over its compact informer cache;
/// [`NadIndex`] is the in-memory implementation over whole NADs. The rules only ask whether a NAD
/// exists and what its chain declares, so a cache may keep just that.
pub trait NetworkLookup {
    /// `None` when the NAD does not exist, else the capabilities among [`RequestedCapability`]
    /// that some plugin of its chain declares — itself `None` when that cannot be known: the NAD
    /// has no inline config (it names a CNI file on the node) or its config is not JSON.
    /// Implementations compute this once per NAD ([`chain_capabilities`]), not per call.
    fn existing_capabilities(&self, namespace: &str, name: &str) -> Option<Option<CapabilitySet>>;

    /// Whether the NAD exists.
    fn contains(&self, namespace: &str, name: &str) -> bool {
        self.existing_capabilities(namespace, name).is_some()
    }

    /// What [`Self::existing_capabilities`] says, with a missing NAD and an unknowable chain alike.
    fn declared_capabilities(&self, namespace: &str, name: &str) -> Option<CapabilitySet> {
        self.existing_capabilities(namespace, name).flatten()
    }
}

/// The capabilities a NAD's inline config declares; `None` without a config or when it is not
/// JSON (the NAD rules report that).
pub fn chain_capabilities(nad: &NetworkAttachmentDefinition) -> Option<CapabilitySet> {
    let config: serde_json::Value = serde_json::from_str(nad.config()?).ok()?;
    Some(config_capabilities(&config))
}

/// The capabilities a parsed CNI config declares, for a caller that parsed it for other reasons
/// too (the webhook reads its IPAM ranges from the same tree).
pub fn config_capabilities(config: &serde_json::Value) -> CapabilitySet {
    let declared = declared_capabilities(config);
    CapabilitySet::from_cni_keys(declared.iter().map(String::as_str))
}

/// NADs by namespace and name, with their declared capabilities parsed once at insert.
///
/// One hash map keyed by both names, looked up with borrowed `&str`s (no key is built per
/// lookup). The hasher is hashbrown's default (foldhash), seeded per process, so names chosen by
/// users cannot be picked to collide.
#[derive(Clone, Debug, Default)]
pub struct NadIndex {
    nads: hashbrown::HashMap<NadKey, IndexedNad>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct NadKey {
    namespace: String,
    name: String,
}

/// A [`NadKey`] made of borrowed strings; hashes exactly as the owned key does.
#[derive(Hash)]
struct NadKeyRef<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl hashbrown::Equivalent<NadKey> for NadKeyRef<'_> {
    fn equivalent(&self, key: &NadKey) -> bool {
        self.name == key.name && self.namespace == key.namespace
    }
}

#[derive(Clone, Debug)]
struct IndexedNad {
    nad: NetworkAttachmentDefinition,
    capabilities: Option<CapabilitySet>,
}

/// The namespace of an object that does not say, as kubectl assumes.
const UNSPECIFIED_NAMESPACE: &str = "default";

impl NadIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a NAD. One without `metadata.namespace` is filed under `default`.
    pub fn insert(&mut self, nad: NetworkAttachmentDefinition) {
        let namespace = nad
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| UNSPECIFIED_NAMESPACE.to_owned());
        let name = nad.metadata.name.clone().unwrap_or_default();
        let capabilities = chain_capabilities(&nad);
        self.nads
            .insert(NadKey { namespace, name }, IndexedNad { nad, capabilities });
    }

    pub fn remove(&mut self, namespace: &str, name: &str) -> Option<NetworkAttachmentDefinition> {
        self.nads
            .remove(&NadKeyRef { namespace, name })
            .map(|entry| entry.nad)
    }

    pub fn len(&self) -> usize {
        self.nads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nads.is_empty()
    }

    fn entry(&self, namespace: &str, name: &str) -> Option<&IndexedNad> {
        self.nads.get(&NadKeyRef { namespace, name })
    }

    /// The whole NAD (`multusctl explain` shows its config).
    pub fn get_nad(&self, namespace: &str, name: &str) -> Option<&NetworkAttachmentDefinition> {
        self.entry(namespace, name).map(|e| &e.nad)
    }
}

impl FromIterator<NetworkAttachmentDefinition> for NadIndex {
    fn from_iter<I: IntoIterator<Item = NetworkAttachmentDefinition>>(iter: I) -> Self {
        let mut index = Self::new();
        iter.into_iter().for_each(|nad| index.insert(nad));
        index
    }
}

impl NetworkLookup for NadIndex {
    fn existing_capabilities(&self, namespace: &str, name: &str) -> Option<Option<CapabilitySet>> {
        self.entry(namespace, name).map(|e| e.capabilities)
    }
}

// === Options ===

/// The Multus settings the rules depend on.
#[derive(Clone, Debug)]
pub struct PodRuleOptions {
    /// Multus' `namespaceIsolation`.
    pub namespace_isolation: bool,
    /// Multus' `globalNamespaces`.
    pub global_namespaces: GlobalNamespaces,
    /// Multus' `multusNamespace`: default namespace of the default-network annotation.
    pub multus_namespace: String,
    /// A reference to a NAD that does not exist is an error (else a warning, e.g. for a workload
    /// created before its NADs).
    pub unknown_networks_are_errors: bool,
    /// `CNI_IFNAME` the runtime gives the cluster network.
    pub runtime_ifname: String,
    /// Multus' `defaultNetworks` and `systemNamespaces`: they use up interface positions.
    pub default_networks: Vec<String>,
    pub system_namespaces: Vec<String>,
}

impl Default for PodRuleOptions {
    fn default() -> Self {
        Self {
            namespace_isolation: false,
            global_namespaces: GlobalNamespaces::default(),
            multus_namespace: "kube-system".to_owned(),
            unknown_networks_are_errors: true,
            runtime_ifname: "eth0".to_owned(),
            default_networks: Vec::new(),
            system_namespaces: vec!["kube-system".to_owned()],
        }
    }
}

// === Entry points ===

/// Validate the network annotations of a pod in `pod_namespace`; paths start at `metadata`.
pub fn validate_pod_networks(
    pod_namespace: &str,
    annotations: &BTreeMap<String, String>,
    lookup: &dyn NetworkLookup,
    opts: &PodRuleOptions,
) -> Diagnostics {
    validate_pod_networks_at(
        &FieldPath::new("metadata"),
        pod_namespace,
        annotations,
        lookup,
        opts,
    )
}

/// As [`validate_pod_networks`], with paths under `metadata_path` (for a workload's pod
/// template: `spec.template.metadata`).
pub fn validate_pod_networks_at(
    metadata_path: &FieldPath,
    pod_namespace: &str,
    annotations: &BTreeMap<String, String>,
    lookup: &dyn NetworkLookup,
    opts: &PodRuleOptions,
) -> Diagnostics {
    let mut d = Diagnostics::new();
    let mut rules = Rules {
        pod_namespace,
        pod_namespace_valid: validate_dns1123_label(pod_namespace).is_ok(),
        lookup,
        opts,
        d: &mut d,
    };

    let default_path = Base::Annotation {
        metadata: metadata_path,
        key: DEFAULT_NETWORK_ANNOTATION,
    };
    let default_network = annotations
        .get(DEFAULT_NETWORK_ANNOTATION)
        .and_then(|value| rules.default_network(value, default_path));

    let networks_path = Base::Annotation {
        metadata: metadata_path,
        key: NETWORKS_ANNOTATION,
    };
    let selections = match annotations.get(NETWORKS_ANNOTATION) {
        None => Vec::new(),
        Some(value) => match parse_networks(value) {
            Ok(selections) => selections,
            Err(e) => {
                report_parse_error(rules.d, &networks_path.path(), &e);
                Vec::new()
            }
        },
    };
    for (i, selection) in selections.iter().enumerate() {
        let at = Element {
            base: networks_path,
            index: Some(i),
        };
        let names_valid = validate_selection(selection, &at, rules.d);
        let namespace = selection.namespace_or(pod_namespace);
        rules.reference(selection, namespace, names_valid, &at, true);
    }

    // The plan the plugin will follow, without writing out the names (no allocation per name).
    let plan = plan_slots(&AttachmentInputs {
        pod_namespace,
        runtime_ifname: &opts.runtime_ifname,
        cluster_network: "",
        default_network_override: default_network.as_ref(),
        default_networks: &opts.default_networks,
        system_namespaces: &opts.system_namespaces,
        multus_namespace: &opts.multus_namespace,
        selections: &selections,
    });
    let element_of = |origin: AttachmentOrigin| match origin {
        AttachmentOrigin::NetworksAnnotation(i) => Some(Element {
            base: networks_path,
            index: Some(i),
        }),
        AttachmentOrigin::DefaultNetworkAnnotation => Some(Element {
            base: default_path,
            index: None,
        }),
        _ => None,
    };
    check_interface_names(&plan, &opts.runtime_ifname, &element_of, &mut d);
    check_default_routes(&plan, &element_of, &mut d);
    d
}

/// Field checks of one selection element that need nothing but the element.
pub fn validate_selection_fields(
    selection: &NetworkSelection,
    element_path: &FieldPath,
) -> Diagnostics {
    let mut d = Diagnostics::new();
    validate_selection(
        selection,
        &Element {
            base: Base::Path(element_path),
            index: None,
        },
        &mut d,
    );
    d
}

// === Paths ===

/// An annotation's path (`<metadata>.annotations[<key>]`) or a given path. Paths are built only
/// when a finding is reported: a valid pod costs no path allocation at all.
#[derive(Clone, Copy)]
enum Base<'p> {
    Annotation {
        metadata: &'p FieldPath,
        key: &'static str,
    },
    Path(&'p FieldPath),
}

impl Base<'_> {
    fn path(&self) -> FieldPath {
        match self {
            Base::Annotation { metadata, key } => metadata.field("annotations").key(key),
            Base::Path(path) => (*path).clone(),
        }
    }
}

/// Where an element sits: `<annotation path>[index]`, or the annotation itself for the
/// single-element default-network annotation.
struct Element<'p> {
    base: Base<'p>,
    index: Option<usize>,
}

impl Element<'_> {
    fn path(&self) -> FieldPath {
        let base = self.base.path();
        match self.index {
            Some(i) => base.index(i),
            None => base,
        }
    }

    fn field(&self, name: &str) -> FieldPath {
        self.path().field(name)
    }

    fn describe(&self) -> String {
        match self.index {
            Some(i) => format!("element [{i}]"),
            None => "the default-network annotation".to_owned(),
        }
    }
}

fn report_parse_error(d: &mut Diagnostics, annotation: &FieldPath, e: &SelectionParseError) {
    match e {
        SelectionParseError::Element {
            index,
            field,
            message,
        } => {
            let at = annotation.index(*index);
            let path = match field {
                Some(field) => at.field(field),
                None => at,
            };
            d.error(path, message.clone());
        }
        other => d.error(annotation.clone(), other.to_string()),
    }
}

// === Reference rules ===

struct Rules<'a> {
    pod_namespace: &'a str,
    /// The pod's namespace is a valid name: checked once, not once per element that uses it.
    pod_namespace_valid: bool,
    lookup: &'a dyn NetworkLookup,
    opts: &'a PodRuleOptions,
    d: &'a mut Diagnostics,
}

impl Rules<'_> {
    /// Parse, check and resolve the default-network annotation; its selection if it parsed.
    fn default_network<'v>(
        &mut self,
        value: &'v str,
        path: Base<'_>,
    ) -> Option<NetworkSelection<'v>> {
        let selection = match parse_default_network(value) {
            Ok(selection) => selection,
            Err(DefaultNetworkError::Parse(e)) => {
                report_parse_error(self.d, &path.path(), &e);
                return None;
            }
            Err(e) => {
                self.d.error(path.path(), e.to_string());
                return None;
            }
        };
        let at = Element {
            base: path,
            index: None,
        };
        let names_valid = validate_selection(&selection, &at, self.d);
        let namespace = selection.namespace_or(&self.opts.multus_namespace);
        // Not subject to namespace isolation, as in Multus: the override is an administrator's
        // choice of primary network, looked up in multusNamespace by default.
        self.reference(&selection, namespace, names_valid, &at, false);
        Some(selection)
    }

    /// The referenced NAD: allowed, existing, and declaring what the element requests.
    /// `names_valid`: the element's name and written namespace passed the field rules.
    fn reference(
        &mut self,
        selection: &NetworkSelection,
        namespace: &str,
        names_valid: bool,
        at: &Element<'_>,
        isolated: bool,
    ) {
        // An invalid name was reported already; looking it up would only add noise. A namespace
        // not written in the element is the pod's (or multusNamespace): checked here, once.
        let implicit_namespace_valid = || {
            if namespace == self.pod_namespace {
                self.pod_namespace_valid
            } else {
                validate_dns1123_label(namespace).is_ok()
            }
        };
        if !names_valid || (selection.explicit_namespace().is_none() && !implicit_namespace_valid())
        {
            return;
        }
        let name: &str = &selection.name;
        if isolated
            && self.opts.namespace_isolation
            && let Err(violation) = check_namespace_isolation(
                self.pod_namespace,
                namespace,
                name,
                &self.opts.global_namespaces,
            )
        {
            self.d.error(at.field("namespace"), violation.to_string());
        }
        // Capabilities only matter when the element asks for some: then one lookup gives both.
        let requested = selection.requested_capabilities();
        let declared = if requested.is_empty() {
            self.lookup.contains(namespace, name).then_some(None)
        } else {
            self.lookup.existing_capabilities(namespace, name)
        };
        let Some(declared) = declared else {
            let severity = if self.opts.unknown_networks_are_errors {
                Severity::Error
            } else {
                Severity::Warning
            };
            self.d.push(
                severity,
                at.field("name"),
                format!(
                    "network attachment definition {namespace}/{name} does not exist (referenced by {})",
                    at.describe()
                ),
            );
            return;
        };
        // Unknown for a NAD without inline config (its CNI file lives on the node) or with a
        // config that is not JSON: the check is skipped there rather than guessed.
        let Some(declared) = declared else {
            return;
        };
        for missing in requested.iter().filter(|c| !declared.contains(*c)) {
            self.d.error(
                at.field(missing.selection_key()),
                format!(
                    "no plugin of network {namespace}/{name} declares the {key:?} capability, so \
                     this request would be silently dropped; add \"capabilities\": {{\"{key}\": \
                     true}} to a plugin of its config that supports it, or remove the request",
                    key = missing.cni_key()
                ),
            );
        }
    }
}

// === Field rules ===

/// Octets of a MAC address (`mac`) and of an InfiniBand GUID (`infiniband-guid`).
const MAC_OCTETS: usize = 6;
const GUID_OCTETS: usize = 8;

/// Check every field of the element; whether its name and written namespace are valid (so the
/// reference can be looked up).
fn validate_selection(s: &NetworkSelection, at: &Element<'_>, d: &mut Diagnostics) -> bool {
    let mut names_valid = true;
    if let Err(e) = validate_dns1123_label(&s.name) {
        d.error(at.field("name"), format!("network name {e}"));
        names_valid = false;
    }
    if let Some(ns) = s.explicit_namespace()
        && let Err(e) = validate_dns1123_label(ns)
    {
        d.error(at.field("namespace"), format!("namespace {e}"));
        names_valid = false;
    }
    validate_interfaces(s, at, d);
    if let Some(ips) = &s.ips {
        if ips.is_empty() {
            d.warning(at.field("ips"), "empty list requests nothing; remove it");
        }
        for (j, ip) in ips.iter().enumerate() {
            if let Err(e) = parse_ip_or_cidr(ip) {
                d.error(at.field("ips").index(j), e);
            }
        }
    }
    if let Some(mac) = s.mac() {
        check_hardware_addr(mac, MAC_OCTETS, "a MAC address", at, "mac", d);
    }
    if let Some(guid) = s.infiniband_guid() {
        check_hardware_addr(
            guid,
            GUID_OCTETS,
            "an InfiniBand GUID",
            at,
            "infiniband-guid",
            d,
        );
    }
    if let Some(mappings) = &s.port_mappings {
        for (j, m) in mappings.iter().enumerate() {
            validate_port_mapping(m, at, j, d);
        }
    }
    if let Some(bw) = &s.bandwidth {
        validate_shaping(
            bw.ingress_rate,
            bw.ingress_burst,
            ("ingressRate", "ingressBurst"),
            at,
            d,
        );
        validate_shaping(
            bw.egress_rate,
            bw.egress_burst,
            ("egressRate", "egressBurst"),
            at,
            d,
        );
    }
    if let Some(gateways) = &s.default_route {
        for (j, gw) in gateways.iter().enumerate() {
            if parse_ip(gw).is_none() {
                d.error(
                    at.field("default-route").index(j),
                    format!("{gw:?} is not an IP address (a gateway, without prefix length)"),
                );
            }
        }
    }
    if let Some(claim) = s.ipam_claim_reference() {
        if s.ips.as_ref().is_some_and(|ips| !ips.is_empty()) {
            d.error(
                at.field("ipam-claim-reference"),
                "cannot be combined with ips: the IPAMClaim decides the addresses; remove one",
            );
        }
        if let Err(e) = validate_dns1123_subdomain(claim) {
            d.error(
                at.field("ipam-claim-reference"),
                format!("IPAMClaim name {e}"),
            );
        }
    }
    validate_unknown_keys(s, at, d);
    names_valid
}

fn validate_interfaces(s: &NetworkSelection, at: &Element<'_>, d: &mut Diagnostics) {
    let interface = s.interface.as_deref().filter(|v| !v.is_empty());
    let request = s.interface_request.as_deref().filter(|v| !v.is_empty());
    if let Some(ifname) = interface
        && let Err(e) = validate_ifname(ifname)
    {
        d.error(at.field("interface"), e);
    }
    if let Some(ifname) = request {
        match interface {
            Some(i) if i != ifname => d.warning(
                at.field("interfaceRequest"),
                format!("ignored: interface {i:?} is set; remove the deprecated interfaceRequest"),
            ),
            Some(_) => d.warning(
                at.field("interfaceRequest"),
                "deprecated duplicate of interface; remove it",
            ),
            None => {
                if let Err(e) = validate_ifname(ifname) {
                    d.error(at.field("interfaceRequest"), e);
                } else {
                    d.warning(
                        at.field("interfaceRequest"),
                        "deprecated: use \"interface\"",
                    );
                }
            }
        }
    }
}

fn check_hardware_addr(
    value: &str,
    octets: usize,
    what: &str,
    at: &Element<'_>,
    key: &str,
    d: &mut Diagnostics,
) {
    let path = || at.field(key);
    match parse_hardware_addr(value).as_ref().map(HardwareAddr::as_bytes) {
        Err(e) => d.error(path(), e.clone()),
        Ok(bytes) if bytes.len() != octets => d.error(
            path(),
            format!("{value:?} has {} octets; {what} has {octets}", bytes.len()),
        ),
        Ok(bytes) if octets == MAC_OCTETS && bytes.first().is_some_and(|b| b & 1 == 1) => d.warning(
            path(),
            format!("{value:?} is a multicast address; the kernel refuses it as an interface address"),
        ),
        Ok(_) => {}
    }
}

fn validate_port_mapping(
    m: &crate::annotations::PortMapping,
    at: &Element<'_>,
    j: usize,
    d: &mut Diagnostics,
) {
    let path = |key: &str| at.field("portMappings").index(j).field(key);
    for (key, port) in [
        ("hostPort", m.host_port),
        ("containerPort", m.container_port),
    ] {
        match port {
            None => d.error(path(key), "missing: a port 1-65535 is required"),
            Some(p) if !(1..=65535).contains(&p) => {
                d.error(path(key), format!("{p} is not a port: use 1-65535"))
            }
            Some(_) => {}
        }
    }
    if let Some(protocol) = m.protocol.as_deref().filter(|p| !p.is_empty())
        && !["tcp", "udp", "sctp"]
            .iter()
            .any(|known| protocol.eq_ignore_ascii_case(known))
    {
        d.error(
            path("protocol"),
            format!("{protocol:?} is not a protocol: use tcp, udp or sctp"),
        );
    }
    if let Some(ip) = m.host_ip.as_deref().filter(|p| !p.is_empty())
        && parse_ip(ip).is_none()
    {
        d.error(path("hostIP"), format!("{ip:?} is not an IP address"));
    }
}

/// One direction of `bandwidth`. A value that is present must be > 0, and a burst needs its
/// rate; but a direction whose rate and burst are both 0 is accepted as "no shaping", because
/// Go tooling (nad-client's types have no omitempty) writes zeros for directions not asked for.
fn validate_shaping(
    rate: Option<i64>,
    burst: Option<i64>,
    (rate_key, burst_key): (&str, &str),
    at: &Element<'_>,
    d: &mut Diagnostics,
) {
    let path = |key: &str| at.field("bandwidth").field(key);
    let unset = |v: Option<i64>| v.unwrap_or(0) == 0;
    if unset(rate) && unset(burst) {
        return;
    }
    for (key, value) in [(rate_key, rate), (burst_key, burst)] {
        if value.is_some_and(|v| v <= 0) {
            d.error(
                path(key),
                "must be greater than 0 (omit it to leave it unset)",
            );
        }
    }
    if burst.is_some_and(|b| b > 0) && rate.is_none_or(|r| r <= 0) {
        d.error(path(burst_key), format!("a burst requires {rate_key}"));
    }
}

/// Keys without a dot are reserved for the spec; vendor keys must be reverse-DNS names. A key
/// that differs from a known one only in case is an error: Go's decoder (Multus) would read it,
/// we do not, so the two would attach the pod differently.
fn validate_unknown_keys(s: &NetworkSelection, at: &Element<'_>, d: &mut Diagnostics) {
    for key in s.extra.keys() {
        if let Some(known) = known_keys().find(|k| k.eq_ignore_ascii_case(key)) {
            d.error(
                at.field(key),
                format!("keys are case-sensitive: did you mean {known:?}?"),
            );
        } else if !key.contains('.') {
            d.warning(
                at.field(key),
                "not a multi-net-spec key and ignored; vendor keys must be reverse-DNS names (e.g. org.example.key)",
            );
        }
    }
}

// === Cross-element rules ===

fn describe_attachment(a: &Slot<'_>) -> String {
    match a.origin {
        AttachmentOrigin::ClusterNetwork => "the cluster network".to_owned(),
        AttachmentOrigin::DefaultNetworkAnnotation => {
            format!("the default network {}", a.network)
        }
        AttachmentOrigin::DefaultNetworks(_) => format!("defaultNetworks entry {}", a.network),
        AttachmentOrigin::NetworksAnnotation(i) => format!("element [{i}] ({})", a.network),
    }
}

/// Interface names must be unique in the pod; the cluster network's name (`eth0`) is reserved to
/// whatever replaces the cluster network.
fn check_interface_names<'p>(
    plan: &[Slot<'_>],
    runtime_ifname: &str,
    element_of: &dyn Fn(AttachmentOrigin) -> Option<Element<'p>>,
    d: &mut Diagnostics,
) {
    for (j, later) in plan.iter().enumerate() {
        if later.index > 0 && later.ifname_requested && later.ifname.is(runtime_ifname) {
            if let Some(at) = element_of(later.origin) {
                d.error(
                    at.field(interface_key(later)),
                    format!(
                        "{runtime_ifname:?} is the cluster network's interface; only the \
                         default-network annotation may take it. Choose another name"
                    ),
                );
            }
            continue;
        }
        let Some(earlier) = plan[..j].iter().find(|a| a.ifname.same_as(later.ifname)) else {
            continue;
        };
        // Report at the element whose explicit request caused the clash: the later one if it
        // asked for the name, else the earlier one (whose request took a generated name).
        let (culprit, other) = if later.ifname_requested || !earlier.ifname_requested {
            (later, earlier)
        } else {
            (earlier, later)
        };
        let Some(at) = element_of(culprit.origin) else {
            continue;
        };
        let path = if culprit.ifname_requested {
            at.field(interface_key(culprit))
        } else {
            at.path()
        };
        d.error(
            path,
            format!(
                "interface {:?} is already used by {}; interface names must be unique in the pod",
                culprit.ifname.to_string(),
                describe_attachment(other)
            ),
        );
    }
}

/// `interface`, or `interfaceRequest` when the name came from the deprecated key.
fn interface_key(a: &Slot<'_>) -> &'static str {
    match a.selection {
        Some(s) if s.interface.as_deref().is_none_or(str::is_empty) => "interfaceRequest",
        _ => "interface",
    }
}

/// At most one default-route gateway per IP family across the pod (Multus: "does not support
/// ECMP"). The spec's stricter "one element only" becomes a warning.
fn check_default_routes<'p>(
    plan: &[Slot<'_>],
    element_of: &dyn Fn(AttachmentOrigin) -> Option<Element<'p>>,
    d: &mut Diagnostics,
) {
    let mut first_v4: Option<&Slot<'_>> = None;
    let mut first_v6: Option<&Slot<'_>> = None;
    let mut first_carrier: Option<&Slot<'_>> = None;
    for a in plan {
        let Some(gateways) = a.selection.and_then(|s| s.default_route.as_ref()) else {
            continue;
        };
        let Some(at) = element_of(a.origin) else {
            continue;
        };
        let mut clashed = false;
        for (j, gw) in gateways.iter().enumerate() {
            let Some(ip) = parse_ip(gw) else {
                continue; // reported by the field rules
            };
            let (first, family) = if ip.is_ipv4() {
                (&mut first_v4, "IPv4")
            } else {
                (&mut first_v6, "IPv6")
            };
            match first {
                None => *first = Some(a),
                Some(prev) => {
                    clashed = true;
                    let where_ = if prev.index == a.index {
                        "this element".to_owned()
                    } else {
                        describe_attachment(prev)
                    };
                    d.error(
                        at.field("default-route").index(j),
                        format!(
                            "a second {family} default-route gateway ({where_} has one); a pod \
                             has at most one default route per IP family (no ECMP)"
                        ),
                    );
                }
            }
        }
        match first_carrier {
            None => first_carrier = Some(a),
            Some(prev) if !clashed => d.warning(
                at.field("default-route"),
                format!(
                    "multi-net-spec allows default-route on one element only ({} has one too); \
                     Multus accepts one per IP family",
                    describe_attachment(prev)
                ),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NetworkAttachmentDefinitionSpec;

    const CAPS_ALL: &str = r#"{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","capabilities":{"ips":true,"mac":true}},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":true}},{"type":"ib-sriov","capabilities":{"infinibandGUID":true}}]}"#;
    const NO_CAPS: &str = r#"{"cniVersion":"1.0.0","type":"macvlan"}"#;

    fn nad(namespace: &str, name: &str, config: Option<&str>) -> NetworkAttachmentDefinition {
        let mut nad = NetworkAttachmentDefinition::new(
            name,
            NetworkAttachmentDefinitionSpec {
                config: config.map(str::to_owned),
            },
        );
        nad.metadata.namespace = Some(namespace.to_owned());
        nad
    }

    fn index() -> NadIndex {
        [
            nad("team-a", "storage", Some(CAPS_ALL)),
            nad("team-a", "plain", Some(NO_CAPS)),
            nad("team-a", "from-file", None),
            nad("infra", "mgmt", Some(CAPS_ALL)),
            nad("default", "shared", Some(NO_CAPS)),
            nad("kube-system", "calico-alt", Some(NO_CAPS)),
        ]
        .into_iter()
        .collect()
    }

    fn run_with(
        networks: Option<&str>,
        default: Option<&str>,
        opts: &PodRuleOptions,
    ) -> Vec<String> {
        let mut annotations = BTreeMap::new();
        if let Some(v) = networks {
            annotations.insert(NETWORKS_ANNOTATION.to_owned(), v.to_owned());
        }
        if let Some(v) = default {
            annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_owned(), v.to_owned());
        }
        validate_pod_networks("team-a", &annotations, &index(), opts)
            .iter()
            .map(|d| format!("{:?} {d}", d.severity))
            .collect()
    }

    fn run(networks: &str) -> Vec<String> {
        run_with(Some(networks), None, &PodRuleOptions::default())
    }

    const NET: &str = "metadata.annotations[k8s.v1.cni.cncf.io/networks]";

    fn has(found: &[String], severity: &str, path_suffix: &str, text: &str) -> bool {
        let path = format!("{NET}{path_suffix}: ");
        found
            .iter()
            .any(|f| f.starts_with(&format!("{severity} {path}")) && f.contains(text))
    }

    #[test]
    fn a_valid_pod_has_no_findings() {
        let json = r#"[{"name":"storage","ips":["192.0.2.10/24","2001:db8::10"],"mac":"02:00:5e:10:00:01","interface":"st0",
            "portMappings":[{"hostPort":9000,"containerPort":80,"protocol":"TCP","hostIP":"0.0.0.0"}],
            "bandwidth":{"ingressRate":1000000,"ingressBurst":100000,"egressRate":0,"egressBurst":0},
            "default-route":["192.0.2.1"],"infiniband-guid":"00:11:22:33:44:55:66:77","cni-args":{"vlan":42},
            "org.example.color":"blue"},
            {"name":"mgmt","namespace":"infra"},{"name":"storage"}]"#;
        assert_eq!(run(json), Vec::<String>::new());
        assert_eq!(
            run("storage, infra/mgmt@m0, default/shared"),
            Vec::<String>::new()
        );
        assert_eq!(run(""), Vec::<String>::new());
        assert_eq!(
            run_with(None, None, &PodRuleOptions::default()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn parse_errors_carry_element_and_field() {
        let found = run(r#"[{"name":"storage"},{"name":"plain","mac":5}]"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            has(&found, "Error", "[1].mac", "expected a string"),
            "{found:?}"
        );
        let found = run("storage,,plain");
        assert!(has(&found, "Error", "[1]", "empty element"), "{found:?}");
        let found = run(r#"{"name":"storage"}"#);
        assert!(
            found[0].starts_with(&format!("Error {NET}: must be a JSON list")),
            "{found:?}"
        );
    }

    #[test]
    fn names_and_namespaces_are_dns_labels() {
        let found = run("Storage, bad_ns/plain");
        assert!(
            has(&found, "Error", "[0].name", "not a DNS-1123 label"),
            "{found:?}"
        );
        assert!(
            has(&found, "Error", "[1].namespace", "not a DNS-1123 label"),
            "{found:?}"
        );
        // No lookup noise for names that cannot exist.
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn interface_names_follow_libcni() {
        let found = run("storage@a:b, plain@sixteen-chars-xx");
        assert!(
            has(&found, "Error", "[0].interface", "must not contain ':'"),
            "{found:?}"
        );
        assert!(
            has(&found, "Error", "[1].interface", "longer than 15"),
            "{found:?}"
        );
        assert_eq!(run("storage@st0.100"), Vec::<String>::new());
    }

    #[test]
    fn mac_is_six_octets_and_guid_eight() {
        let found = run(
            r#"[{"name":"storage","mac":"00:11:22:33:44:55:66:77"},{"name":"storage","mac":"zz"},
            {"name":"storage","infiniband-guid":"02:00:5e:10:00:01"},{"name":"storage","mac":"03:00:5e:10:00:01"}]"#,
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].mac",
                "has 8 octets; a MAC address has 6"
            ),
            "{found:?}"
        );
        assert!(
            has(&found, "Error", "[1].mac", "not a hardware address"),
            "{found:?}"
        );
        assert!(
            has(
                &found,
                "Error",
                "[2].infiniband-guid",
                "an InfiniBand GUID has 8"
            ),
            "{found:?}"
        );
        assert!(has(&found, "Warning", "[3].mac", "multicast"), "{found:?}");
    }

    #[test]
    fn ips_are_ips_or_cidrs() {
        let found = run(
            r#"[{"name":"storage","ips":["192.0.2.1/24","192.0.2.300"]},{"name":"storage","ips":[]}]"#,
        );
        assert!(
            has(&found, "Error", "[0].ips[1]", "not an IP address"),
            "{found:?}"
        );
        assert!(has(&found, "Warning", "[1].ips", "empty list"), "{found:?}");
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn port_mappings_need_ports_in_range_and_a_known_protocol() {
        let found = run(
            r#"[{"name":"storage","portMappings":[{"hostPort":0,"containerPort":80},
            {"containerPort":70000,"protocol":"icmp","hostIP":"any"},{"hostPort":8080,"containerPort":8080,"protocol":"SCTP"}]}]"#,
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].portMappings[0].hostPort",
                "0 is not a port"
            ),
            "{found:?}"
        );
        assert!(
            has(&found, "Error", "[0].portMappings[1].hostPort", "missing"),
            "{found:?}"
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].portMappings[1].containerPort",
                "70000"
            ),
            "{found:?}"
        );
        assert!(
            has(&found, "Error", "[0].portMappings[1].protocol", "\"icmp\""),
            "{found:?}"
        );
        assert!(
            has(&found, "Error", "[0].portMappings[1].hostIP", "\"any\""),
            "{found:?}"
        );
        assert_eq!(found.len(), 5, "{found:?}");
    }

    #[test]
    fn bandwidth_values_are_positive_and_a_burst_needs_its_rate() {
        let found = run(
            r#"[{"name":"storage","bandwidth":{"ingressBurst":100,"egressRate":-1,"egressBurst":10}},
            {"name":"storage","bandwidth":{"ingressRate":100,"ingressBurst":0}}]"#,
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].bandwidth.ingressBurst",
                "requires ingressRate"
            ),
            "{found:?}"
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].bandwidth.egressRate",
                "greater than 0"
            ),
            "{found:?}"
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].bandwidth.egressBurst",
                "requires egressRate"
            ),
            "{found:?}"
        );
        assert!(
            has(
                &found,
                "Error",
                "[1].bandwidth.ingressBurst",
                "greater than 0"
            ),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");
        // Go's zero values for an unrequested direction are accepted.
        assert_eq!(
            run(
                r#"[{"name":"storage","bandwidth":{"ingressRate":0,"ingressBurst":0,"egressRate":5,"egressBurst":5}}]"#
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn default_route_gateways_are_ips_one_per_family() {
        let found = run(r#"[{"name":"storage","default-route":["192.0.2.1/24"]}]"#);
        assert!(
            has(
                &found,
                "Error",
                "[0].default-route[0]",
                "without prefix length"
            ),
            "{found:?}"
        );
        let found = run(
            r#"[{"name":"storage","default-route":["192.0.2.1"]},{"name":"mgmt","namespace":"infra","default-route":["198.51.100.1"]}]"#,
        );
        assert!(
            has(
                &found,
                "Error",
                "[1].default-route[0]",
                "second IPv4 default-route gateway (element [0] (team-a/storage) has one)"
            ),
            "{found:?}"
        );
        let found = run(r#"[{"name":"storage","default-route":["192.0.2.1","192.0.2.2"]}]"#);
        assert!(
            has(
                &found,
                "Error",
                "[0].default-route[1]",
                "this element has one"
            ),
            "{found:?}"
        );
        // One per family on two elements: Multus accepts it, the spec does not; a warning.
        let found = run(
            r#"[{"name":"storage","default-route":["192.0.2.1"]},{"name":"storage","default-route":["2001:db8::1"]}]"#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            has(&found, "Warning", "[1].default-route", "one element only"),
            "{found:?}"
        );
        assert_eq!(
            run(r#"[{"name":"storage","default-route":["192.0.2.1","2001:db8::1"]}]"#),
            Vec::<String>::new()
        );
    }

    #[test]
    fn ips_and_ipam_claim_reference_exclude_each_other() {
        let found = run(
            r#"[{"name":"storage","ips":["192.0.2.1"],"ipam-claim-reference":"pod.storage.net1"}]"#,
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].ipam-claim-reference",
                "cannot be combined with ips"
            ),
            "{found:?}"
        );
        assert_eq!(
            run(r#"[{"name":"storage","ipam-claim-reference":"pod.storage.net1"}]"#),
            Vec::<String>::new()
        );
        let found = run(r#"[{"name":"storage","ipam-claim-reference":"Bad_Name"}]"#);
        assert!(
            has(
                &found,
                "Error",
                "[0].ipam-claim-reference",
                "IPAMClaim name"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn interface_names_are_unique_in_the_pod() {
        let found = run("storage@x, plain@x");
        assert!(
            has(
                &found,
                "Error",
                "[1].interface",
                "\"x\" is already used by element [0] (team-a/storage)"
            ),
            "{found:?}"
        );
        // The explicit name is blamed, also when the generated name comes later.
        let found = run("storage@net2, plain");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            has(
                &found,
                "Error",
                "[0].interface",
                "\"net2\" is already used by element [1]"
            ),
            "{found:?}"
        );
        // The deprecated key is named when it carried the name.
        let found =
            run(r#"[{"name":"storage","interface":"x"},{"name":"plain","interfaceRequest":"x"}]"#);
        assert!(
            has(&found, "Error", "[1].interfaceRequest", "already used"),
            "{found:?}"
        );
        assert_eq!(run("storage@net2, plain@net1"), Vec::<String>::new());
    }

    #[test]
    fn defaultnetworks_use_up_positions() {
        let opts = PodRuleOptions {
            default_networks: vec!["audit".to_owned()],
            ..PodRuleOptions::default()
        };
        let found = run_with(Some("storage@net1"), None, &opts);
        assert!(
            has(
                &found,
                "Error",
                "[0].interface",
                "already used by defaultNetworks entry audit"
            ),
            "{found:?}"
        );
        assert_eq!(
            run_with(Some("storage@net1"), None, &PodRuleOptions::default()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn eth0_is_reserved_to_the_cluster_network_or_its_replacement() {
        let found = run("storage@eth0");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            has(
                &found,
                "Error",
                "[0].interface",
                "cluster network's interface"
            ),
            "{found:?}"
        );
        assert_eq!(
            run_with(
                Some("storage"),
                Some("calico-alt@eth0"),
                &PodRuleOptions::default()
            ),
            Vec::<String>::new()
        );
        let found = run_with(
            Some("storage@pod0"),
            Some("calico-alt@pod0"),
            &PodRuleOptions::default(),
        );
        assert!(
            has(
                &found,
                "Error",
                "[0].interface",
                "already used by the default network kube-system/calico-alt"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn every_referenced_nad_exists() {
        let found = run("storage, infra/nope");
        assert_eq!(
            found,
            vec![format!(
                "Error {NET}[1].name: network attachment definition infra/nope does not exist (referenced by element [1])"
            )]
        );
        let lenient = PodRuleOptions {
            unknown_networks_are_errors: false,
            ..PodRuleOptions::default()
        };
        let found = run_with(Some("nope"), None, &lenient);
        assert!(
            has(&found, "Warning", "[0].name", "team-a/nope does not exist"),
            "{found:?}"
        );
    }

    #[test]
    fn requested_capabilities_must_be_declared() {
        let found = run(
            r#"[{"name":"plain","ips":["192.0.2.1"],"mac":"02:00:5e:10:00:01","portMappings":[{"hostPort":1,"containerPort":1}],
            "bandwidth":{"ingressRate":1,"ingressBurst":1},"infiniband-guid":"00:11:22:33:44:55:66:77"}]"#,
        );
        for (key, cap) in [
            ("ips", "ips"),
            ("mac", "mac"),
            ("portMappings", "portMappings"),
            ("bandwidth", "bandwidth"),
            ("infiniband-guid", "infinibandGUID"),
        ] {
            assert!(
                has(
                    &found,
                    "Error",
                    &format!("[0].{key}"),
                    &format!("declares the {cap:?} capability")
                ),
                "{key}: {found:?}"
            );
        }
        assert_eq!(found.len(), 5, "{found:?}");
        // A NAD without inline config names a file on the node: not checkable, skipped.
        assert_eq!(
            run(r#"[{"name":"from-file","ips":["192.0.2.1"]}]"#),
            Vec::<String>::new()
        );
        assert_eq!(
            run(r#"[{"name":"storage","ips":["192.0.2.1"]}]"#),
            Vec::<String>::new()
        );
        // All zeros (what Go tooling writes for the directions nobody asked for) or an empty
        // object shapes nothing, so asks for no capability: upstream attaches such a pod.
        for nothing in [
            r#"{"ingressRate":0,"ingressBurst":0,"egressRate":0,"egressBurst":0}"#,
            "{}",
        ] {
            let networks = format!(r#"[{{"name":"plain","bandwidth":{nothing}}}]"#);
            assert_eq!(run(&networks), Vec::<String>::new(), "{nothing}");
        }
    }

    #[test]
    fn the_default_network_annotation_parses_has_one_element_and_resolves() {
        let opts = PodRuleOptions::default();
        const DEF: &str = "metadata.annotations[v1.multus-cni.io/default-network]";
        assert_eq!(
            run_with(None, Some("calico-alt"), &opts),
            Vec::<String>::new()
        );
        let found = run_with(None, Some("calico-alt, storage"), &opts);
        assert_eq!(
            found,
            vec![format!(
                "Error {DEF}: names 2 networks; a pod has exactly one default network"
            )]
        );
        let found = run_with(None, Some("storage"), &opts);
        assert_eq!(
            found,
            vec![format!(
                "Error {DEF}.name: network attachment definition kube-system/storage does not exist (referenced by the default-network annotation)"
            )]
        );
        let found = run_with(None, Some(r#"[{"name":"calico-alt","mac":"x"}]"#), &opts);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(&format!("Error {DEF}.mac:"))),
            "{found:?}"
        );
        let found = run_with(None, Some(r#"[{"name":"calico-alt","mac":1}]"#), &opts);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(&format!("Error {DEF}[0].mac:"))),
            "{found:?}"
        );
        // Found in multusNamespace; isolation does not apply to it.
        let isolated = PodRuleOptions {
            namespace_isolation: true,
            ..PodRuleOptions::default()
        };
        assert_eq!(
            run_with(None, Some("calico-alt"), &isolated),
            Vec::<String>::new()
        );
    }

    #[test]
    fn namespace_isolation_limits_cross_namespace_references() {
        let isolated = PodRuleOptions {
            namespace_isolation: true,
            ..PodRuleOptions::default()
        };
        let found = run_with(Some("storage, default/shared, infra/mgmt"), None, &isolated);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            has(
                &found,
                "Error",
                "[2].namespace",
                "pod in namespace \"team-a\" may not use network infra/mgmt"
            ),
            "{found:?}"
        );
        assert_eq!(run("infra/mgmt"), Vec::<String>::new());
        let infra_global = PodRuleOptions {
            global_namespaces: GlobalNamespaces::from_setting(Some("infra")),
            ..isolated
        };
        let found = run_with(Some("infra/mgmt, default/shared"), None, &infra_global);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            has(&found, "Error", "[1].namespace", "default/shared"),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_keys_must_be_vendor_keys_and_case_matters() {
        let found = run(r#"[{"name":"storage","Interface":"x","vlan":3,"org.example.x":1}]"#);
        assert!(
            has(
                &found,
                "Error",
                "[0].Interface",
                "did you mean \"interface\""
            ),
            "{found:?}"
        );
        assert!(
            has(&found, "Warning", "[0].vlan", "reverse-DNS"),
            "{found:?}"
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn deprecated_interface_request_is_flagged() {
        let found = run(
            r#"[{"name":"storage","interfaceRequest":"st0"},{"name":"plain","interface":"p0","interfaceRequest":"p1"}]"#,
        );
        assert!(
            has(&found, "Warning", "[0].interfaceRequest", "deprecated"),
            "{found:?}"
        );
        assert!(
            has(&found, "Warning", "[1].interfaceRequest", "ignored"),
            "{found:?}"
        );
        assert!(!found.iter().any(|f| f.starts_with("Error")), "{found:?}");
    }

    #[test]
    fn pod_templates_get_their_own_paths() {
        let mut annotations = BTreeMap::new();
        annotations.insert(NETWORKS_ANNOTATION.to_owned(), "nope".to_owned());
        let d = validate_pod_networks_at(
            &FieldPath::new("spec").field("template").field("metadata"),
            "team-a",
            &annotations,
            &index(),
            &PodRuleOptions::default(),
        );
        assert_eq!(
            d.iter().next().map(|d| d.path.as_str()),
            Some("spec.template.metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name")
        );
    }

    #[test]
    fn the_index_caches_capabilities_like_the_default_lookup_computes_them() {
        struct Uncached(Vec<NetworkAttachmentDefinition>);
        impl NetworkLookup for Uncached {
            fn existing_capabilities(
                &self,
                namespace: &str,
                name: &str,
            ) -> Option<Option<CapabilitySet>> {
                self.0
                    .iter()
                    .find(|n| {
                        n.metadata.namespace.as_deref() == Some(namespace)
                            && n.metadata.name.as_deref() == Some(name)
                    })
                    .map(chain_capabilities)
            }
        }
        let nads = vec![
            nad("a", "all", Some(CAPS_ALL)),
            nad("a", "none", Some(NO_CAPS)),
            nad("a", "file", None),
            nad("a", "junk", Some("{")),
        ];
        let uncached = Uncached(nads.clone());
        let mut index: NadIndex = nads.into_iter().collect();
        for name in ["all", "none", "file", "junk", "missing"] {
            assert_eq!(
                index.declared_capabilities("a", name),
                uncached.declared_capabilities("a", name),
                "{name}"
            );
        }
        assert_eq!(
            index
                .declared_capabilities("a", "all")
                .map(|c| c.iter().count()),
            Some(5)
        );
        assert_eq!(index.len(), 4);
        assert!(index.remove("a", "all").is_some());
        assert!(index.get_nad("a", "all").is_none());
        assert_eq!(index.len(), 3);
        let mut no_ns = nad("x", "n", None);
        no_ns.metadata.namespace = None;
        index.insert(no_ns);
        assert!(index.get_nad("default", "n").is_some());
    }
}
