//! `k8s.v1.cni.cncf.io/networks`: the networks a pod asks for (multi-net-spec v1.3 §4.1).
//!
//! Two forms, told apart as Multus does: a value containing any of `[`, `{` or `"` is a JSON list
//! of selection objects, anything else is the comma form `[ns/]name[@ifname], ...` with blanks
//! around items and parts trimmed. A blank value asks for no networks.
//!
//! Parsing checks the grammar and the JSON types only. Whether a name is a DNS label, a MAC parses
//! or a port is in range is for [`crate::rules::pod`], which reports all such problems at once
//! with their field paths instead of stopping at the first.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use super::raw_json::{RawJson, VendorKeys};

/// One element of the networks annotation: one attachment of the pod to a NAD.
///
/// Strings borrow from the annotation text where they can (`'a`): the webhook and the plugin
/// parse an annotation, check it and drop it, and copying every name, address and interface into
/// its own allocation was most of that work. [`NetworkSelection::into_owned`] gives a selection
/// that outlives the text. Optional string fields keep what was written (`Some("")` included) so
/// a value round-trips; the accessors treat an empty string as absent, as Multus does with Go's
/// zero values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkSelection<'a> {
    /// NAD name (required).
    pub name: Cow<'a, str>,
    /// NAD namespace; absent means the pod's namespace.
    pub namespace: Option<Cow<'a, str>>,
    /// Static IPs (`ips` capability), each an IP or a CIDR.
    pub ips: Option<Vec<Cow<'a, str>>>,
    /// MAC address (`mac` capability).
    pub mac: Option<Cow<'a, str>>,
    /// Interface name in the pod (`CNI_IFNAME`).
    pub interface: Option<Cow<'a, str>>,
    /// Multus' deprecated spelling of `interface`, used only when `interface` is empty.
    pub interface_request: Option<Cow<'a, str>>,
    /// Merged into the delegate config's `args.cni`: the text of a JSON object, read only by
    /// the plugin (see [`RawJson`]).
    pub cni_args: Option<RawJson<'a>>,
    /// `portMappings` capability.
    pub port_mappings: Option<Vec<PortMapping>>,
    /// `bandwidth` capability.
    pub bandwidth: Option<Bandwidth>,
    /// Gateways for the pod's default route through this attachment.
    pub default_route: Option<Vec<Cow<'a, str>>>,
    /// InfiniBand GUID (`infinibandGUID` capability).
    pub infiniband_guid: Option<Cow<'a, str>>,
    /// Name of an IPAMClaim (multi-net-spec v1.3 §8).
    pub ipam_claim_reference: Option<Cow<'a, str>>,
    /// Multus extension: device ID for the delegate's `deviceID` capability.
    pub device_id: Option<Cow<'a, str>>,
    /// Keys this type does not know (vendor keys), in the order they were written. Never holds a
    /// known key: serialisation skips any that are put here by hand.
    pub extra: VendorKeys<'a>,
}

/// A selection that owns its strings.
pub type OwnedNetworkSelection = NetworkSelection<'static>;

/// A `portMappings` entry. Ports are kept wide so an out-of-range value reaches the rules and is
/// reported with its path rather than failing the parse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort", default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    #[serde(
        rename = "containerPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub container_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// The `bandwidth` object: rates in bits per second, bursts in bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    #[serde(
        rename = "ingressRate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ingress_rate: Option<i64>,
    #[serde(
        rename = "ingressBurst",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ingress_burst: Option<i64>,
    #[serde(
        rename = "egressRate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_rate: Option<i64>,
    #[serde(
        rename = "egressBurst",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_burst: Option<i64>,
}

impl Bandwidth {
    /// Whether any direction is shaped: all zeros or absent (what Go tooling writes for the
    /// directions nobody asked for) asks for nothing (docs/decisions.md, "Bandwidth zeros").
    pub fn shapes(&self) -> bool {
        [
            self.ingress_rate,
            self.ingress_burst,
            self.egress_rate,
            self.egress_burst,
        ]
        .iter()
        .any(|v| v.is_some_and(|n| n != 0))
    }
}

/// A selection feature that the referenced chain must declare as a CNI capability
/// (multi-net-spec §4.1.2.1; CNI CONVENTIONS key in [`RequestedCapability::cni_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestedCapability {
    Ips,
    Mac,
    PortMappings,
    Bandwidth,
    InfinibandGuid,
}

impl RequestedCapability {
    pub const ALL: [RequestedCapability; 5] = [
        Self::Ips,
        Self::Mac,
        Self::PortMappings,
        Self::Bandwidth,
        Self::InfinibandGuid,
    ];

    /// The `capabilities` / `runtimeConfig` key in a CNI config.
    pub fn cni_key(self) -> &'static str {
        match self {
            Self::Ips => "ips",
            Self::Mac => "mac",
            Self::PortMappings => "portMappings",
            Self::Bandwidth => "bandwidth",
            Self::InfinibandGuid => "infinibandGUID",
        }
    }

    /// The selection-element key that requests it.
    pub fn selection_key(self) -> &'static str {
        match self {
            Self::Ips => "ips",
            Self::Mac => "mac",
            Self::PortMappings => "portMappings",
            Self::Bandwidth => "bandwidth",
            Self::InfinibandGuid => "infiniband-guid",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`RequestedCapability`]s, small and `Copy` so an index can cache it per NAD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapabilitySet(u8);

impl CapabilitySet {
    pub fn insert(&mut self, cap: RequestedCapability) {
        self.0 |= cap.bit();
    }

    pub fn contains(self, cap: RequestedCapability) -> bool {
        self.0 & cap.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = RequestedCapability> {
        RequestedCapability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// The capabilities among ours that a set of declared CNI capability keys contains.
    pub fn from_cni_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Self::default();
        for key in keys {
            if let Some(cap) = RequestedCapability::ALL
                .into_iter()
                .find(|c| c.cni_key() == key)
            {
                set.insert(cap);
            }
        }
        set
    }
}

fn non_empty<'s>(value: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn owned_str(value: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(value.into_owned())
}

fn owned_opt(value: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    value.map(owned_str)
}

fn owned_list(value: Option<Vec<Cow<'_, str>>>) -> Option<Vec<Cow<'static, str>>> {
    value.map(|list| list.into_iter().map(owned_str).collect())
}

impl<'a> NetworkSelection<'a> {
    /// A selection of `name` with nothing else set.
    pub fn named(name: impl Into<Cow<'a, str>>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The same selection, owning its strings.
    pub fn into_owned(self) -> OwnedNetworkSelection {
        NetworkSelection {
            name: owned_str(self.name),
            namespace: owned_opt(self.namespace),
            ips: owned_list(self.ips),
            mac: owned_opt(self.mac),
            interface: owned_opt(self.interface),
            interface_request: owned_opt(self.interface_request),
            cni_args: self.cni_args.map(RawJson::into_owned),
            port_mappings: self.port_mappings,
            bandwidth: self.bandwidth,
            default_route: owned_list(self.default_route),
            infiniband_guid: owned_opt(self.infiniband_guid),
            ipam_claim_reference: owned_opt(self.ipam_claim_reference),
            device_id: owned_opt(self.device_id),
            extra: self.extra.into_owned(),
        }
    }

    /// The interface asked for: `interface`, else the deprecated `interfaceRequest` (Multus).
    pub fn requested_interface(&self) -> Option<&str> {
        non_empty(&self.interface).or_else(|| non_empty(&self.interface_request))
    }

    /// The namespace written, if not empty.
    pub fn explicit_namespace(&self) -> Option<&str> {
        non_empty(&self.namespace)
    }

    /// The NAD's namespace: the one written, else `default` (the pod's namespace for the networks
    /// annotation, `multusNamespace` for the default-network annotation).
    pub fn namespace_or<'s>(&'s self, default: &'s str) -> &'s str {
        self.explicit_namespace().unwrap_or(default)
    }

    pub fn mac(&self) -> Option<&str> {
        non_empty(&self.mac)
    }

    pub fn infiniband_guid(&self) -> Option<&str> {
        non_empty(&self.infiniband_guid)
    }

    pub fn ipam_claim_reference(&self) -> Option<&str> {
        non_empty(&self.ipam_claim_reference)
    }

    pub fn device_id(&self) -> Option<&str> {
        non_empty(&self.device_id)
    }

    /// The features this element asks of the chain's plugins (empty values ask for nothing).
    pub fn requested_capabilities(&self) -> CapabilitySet {
        let mut set = CapabilitySet::default();
        if self.ips.as_ref().is_some_and(|v| !v.is_empty()) {
            set.insert(RequestedCapability::Ips);
        }
        if self.mac().is_some() {
            set.insert(RequestedCapability::Mac);
        }
        if self.port_mappings.as_ref().is_some_and(|v| !v.is_empty()) {
            set.insert(RequestedCapability::PortMappings);
        }
        if self.bandwidth.as_ref().is_some_and(Bandwidth::shapes) {
            set.insert(RequestedCapability::Bandwidth);
        }
        if self.infiniband_guid().is_some() {
            set.insert(RequestedCapability::InfinibandGuid);
        }
        set
    }

    /// The comma-form item for this element (`ns/name@ifname`), or `None` when a field the comma
    /// form cannot carry is set, or a value would not read back unchanged.
    pub fn to_comma_item(&self) -> Option<String> {
        let only_comma_fields = self.ips.is_none()
            && self.mac.is_none()
            && self.interface_request.is_none()
            && self.cni_args.is_none()
            && self.port_mappings.is_none()
            && self.bandwidth.is_none()
            && self.default_route.is_none()
            && self.infiniband_guid.is_none()
            && self.ipam_claim_reference.is_none()
            && self.device_id.is_none()
            && self.extra.is_empty();
        let token_ok = |s: &str| {
            !s.is_empty()
                && !s
                    .chars()
                    .any(|c| matches!(c, ',' | '/' | '@' | '[' | '{' | '"') || c.is_whitespace())
        };
        if !only_comma_fields
            || !token_ok(&self.name)
            || !self.namespace.as_deref().is_none_or(token_ok)
            || !self.interface.as_deref().is_none_or(token_ok)
        {
            return None;
        }
        let mut item = String::with_capacity(self.name.len() + 24);
        if let Some(ns) = &self.namespace {
            item.push_str(ns);
            item.push('/');
        }
        item.push_str(&self.name);
        if let Some(ifname) = &self.interface {
            item.push('@');
            item.push_str(ifname);
        }
        Some(item)
    }
}

// === Errors ===

/// Why an annotation value could not be read. Element errors name the element's position and,
/// when known, the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionParseError {
    #[error("not valid JSON: {message}")]
    Json { message: String },
    #[error("must be a JSON list of network selection objects, not {found}")]
    NotAList { found: &'static str },
    #[error("{}", element_message(*.index, .field.as_deref(), .message))]
    Element {
        index: usize,
        field: Option<String>,
        message: String,
    },
}

fn element_message(index: usize, field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) => format!("element [{index}] field {field:?}: {message}"),
        None => format!("element [{index}]: {message}"),
    }
}

impl SelectionParseError {
    fn element(index: usize, field: Option<&str>, message: impl Into<String>) -> Self {
        Self::Element {
            index,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// === Parse ===

/// True when Multus would read the value as JSON rather than as the comma form.
pub fn is_json_form(value: &str) -> bool {
    value.contains(['[', '{', '"'])
}

/// Parse a `k8s.v1.cni.cncf.io/networks` value in either form. Never panics.
pub fn parse_networks(value: &str) -> Result<Vec<NetworkSelection<'_>>, SelectionParseError> {
    if is_json_form(value) {
        parse_json_form(value)
    } else {
        parse_comma_form(value)
    }
}

fn parse_json_form(text: &str) -> Result<Vec<NetworkSelection<'_>>, SelectionParseError> {
    // Fastest path: the common shape, scanned directly (see `scan`); it gives up on anything
    // unusual, and the serde paths below decide.
    if let Some(selections) = super::scan::scan_json_form(text) {
        return Ok(selections);
    }
    parse_networks_with_serde(text)
}

/// The JSON form read with serde only: the authority the scanner is held to.
pub(super) fn parse_networks_with_serde(
    text: &str,
) -> Result<Vec<NetworkSelection<'_>>, SelectionParseError> {
    // Fast path: straight into the types. Only when that fails is the text read again as a
    // generic value, element by element, to say which element and field is wrong. Both paths
    // share `FieldSeed`, so they accept exactly the same inputs.
    let mut de = serde_json::Deserializer::from_str(text);
    let fast = SelectionList {
        capacity: estimated_elements(text),
    }
    .deserialize(&mut de)
    .and_then(|selections| de.end().map(|()| selections));
    if let Ok(selections) = fast {
        return Ok(selections);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| SelectionParseError::Json {
        message: e.to_string(),
    })?;
    let Value::Array(elements) = value else {
        return Err(SelectionParseError::NotAList {
            found: json_kind(&value),
        });
    };
    elements
        .iter()
        .enumerate()
        .map(|(index, element)| selection_from_value(index, element))
        .collect()
}

/// An upper bound of the element count (every element opens a `{`), so the list is allocated
/// once instead of being regrown and copied; capped so a value full of braces cannot make it
/// allocate much.
pub(super) fn estimated_elements(text: &str) -> usize {
    memchr::memchr_iter(b'{', text.as_bytes()).count().min(64)
}

/// A JSON list of selections, read into a vector of a given capacity.
struct SelectionList {
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for SelectionList {
    type Value = Vec<NetworkSelection<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct ListVisitor(usize);
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Vec<NetworkSelection<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of network selection objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Each element is read straight into its slot: a selection is a large struct, and
                // building it elsewhere and moving it in costs more than parsing its fields.
                let mut out: Vec<NetworkSelection<'de>> = Vec::with_capacity(self.0);
                loop {
                    out.push(NetworkSelection::default());
                    let more = match out.last_mut() {
                        Some(slot) => seq.next_element_seed(SelectionInto(slot))?.is_some(),
                        None => false,
                    };
                    if !more {
                        out.pop();
                        return Ok(out);
                    }
                }
            }
        }
        d.deserialize_seq(ListVisitor(self.capacity))
    }
}

/// The slow path's element: read from the generic value, owning its strings (the value is gone
/// when the list is returned).
fn selection_from_value(
    index: usize,
    element: &Value,
) -> Result<OwnedNetworkSelection, SelectionParseError> {
    let Some(object) = element.as_object() else {
        return Err(SelectionParseError::element(
            index,
            None,
            format!("must be an object, not {}", json_kind(element)),
        ));
    };
    let mut selection = NetworkSelection::default();
    let mut partial = Partial {
        selection: &mut selection,
        has_name: false,
    };
    for (key, value) in object {
        match Field::from_key(key) {
            Some(field) => FieldSeed {
                partial: &mut partial,
                field,
            }
            .deserialize(value.clone())
            .map_err(|e| SelectionParseError::element(index, Some(key), e.to_string()))?,
            None => {
                partial
                    .selection
                    .extra
                    .insert(key.clone(), RawJson::from_value(value));
            }
        }
    }
    partial
        .finish()
        .map_err(|(field, message)| SelectionParseError::element(index, Some(field), message))?;
    Ok(selection)
}

fn parse_comma_form(text: &str) -> Result<Vec<NetworkSelection<'_>>, SelectionParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let bytes = text.as_bytes();
    // Sized once (capped, like the JSON estimate) rather than regrown: elements are large.
    let mut out: Vec<NetworkSelection<'_>> =
        Vec::with_capacity((memchr::memchr_iter(b',', bytes).count() + 1).min(64));
    let mut start = 0;
    for (index, end) in memchr::memchr_iter(b',', bytes)
        .chain([bytes.len()])
        .enumerate()
    {
        let item = text.get(start..end).unwrap_or_default().trim();
        start = end + 1;
        // Filled in place: moving a finished selection costs more than parsing it.
        out.push(NetworkSelection::default());
        if let Some(slot) = out.last_mut() {
            parse_comma_item(index, item, slot)?;
        }
    }
    Ok(out)
}

/// `[namespace/]name[@ifname]`, into `slot`. An empty namespace or ifname part (`/name`,
/// `name@`) means "not given", as in Multus.
fn parse_comma_item<'s>(
    index: usize,
    item: &'s str,
    slot: &mut NetworkSelection<'s>,
) -> Result<(), SelectionParseError> {
    if item.is_empty() {
        return Err(SelectionParseError::element(
            index,
            None,
            "empty element (a stray comma?)",
        ));
    }
    // The delimiters are ASCII, so every split below falls on a character boundary.
    let (namespace, rest) = match memchr::memchr(b'/', item.as_bytes()) {
        None => (None, item),
        Some(i) => {
            let rest = item.get(i + 1..).unwrap_or_default();
            if memchr::memchr(b'/', rest.as_bytes()).is_some() {
                return Err(SelectionParseError::element(
                    index,
                    None,
                    format!("{item:?} has more than one '/'; write namespace/name@interface"),
                ));
            }
            let ns = item.get(..i).unwrap_or_default().trim();
            (Some(ns).filter(|s| !s.is_empty()), rest)
        }
    };
    let (name, interface) = match memchr::memchr(b'@', rest.as_bytes()) {
        None => (rest.trim(), None),
        Some(j) => {
            let ifname = rest.get(j + 1..).unwrap_or_default();
            if memchr::memchr(b'@', ifname.as_bytes()).is_some() {
                return Err(SelectionParseError::element(
                    index,
                    Some("interface"),
                    format!("{item:?} has more than one '@'; write namespace/name@interface"),
                ));
            }
            let name = rest.get(..j).unwrap_or_default().trim();
            (name, Some(ifname.trim()).filter(|s| !s.is_empty()))
        }
    };
    if name.is_empty() {
        return Err(SelectionParseError::element(
            index,
            Some("name"),
            format!("{item:?} names no network"),
        ));
    }
    slot.name = Cow::Borrowed(name);
    slot.namespace = namespace.map(Cow::Borrowed);
    slot.interface = interface.map(Cow::Borrowed);
    Ok(())
}

// === Serialise ===

/// The JSON form (compact), which carries every field.
pub fn to_json_annotation(
    selections: &[NetworkSelection<'_>],
) -> Result<String, serde_json::Error> {
    serde_json::to_string(selections)
}

/// The comma form, when every element is expressible in it (see
/// [`NetworkSelection::to_comma_item`]); `None` otherwise.
pub fn to_comma_annotation(selections: &[NetworkSelection<'_>]) -> Option<String> {
    let items = selections
        .iter()
        .map(NetworkSelection::to_comma_item)
        .collect::<Option<Vec<_>>>()?;
    Some(items.join(","))
}

// === serde ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Name,
    Namespace,
    Ips,
    Mac,
    Interface,
    InterfaceRequest,
    CniArgs,
    PortMappings,
    Bandwidth,
    DefaultRoute,
    InfinibandGuid,
    IpamClaimReference,
    DeviceId,
}

impl Field {
    const ALL: [Field; 13] = [
        Field::Name,
        Field::Namespace,
        Field::Ips,
        Field::Mac,
        Field::Interface,
        Field::InterfaceRequest,
        Field::CniArgs,
        Field::PortMappings,
        Field::Bandwidth,
        Field::DefaultRoute,
        Field::InfinibandGuid,
        Field::IpamClaimReference,
        Field::DeviceId,
    ];

    fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Namespace => "namespace",
            Field::Ips => "ips",
            Field::Mac => "mac",
            Field::Interface => "interface",
            Field::InterfaceRequest => "interfaceRequest",
            Field::CniArgs => "cni-args",
            Field::PortMappings => "portMappings",
            Field::Bandwidth => "bandwidth",
            Field::DefaultRoute => "default-route",
            Field::InfinibandGuid => "infiniband-guid",
            Field::IpamClaimReference => "ipam-claim-reference",
            Field::DeviceId => "deviceID",
        }
    }

    pub(super) fn from_key(key: &str) -> Option<Field> {
        // A `match` compiles to a dispatch on length and bytes: this runs for every key of every
        // element, so no linear scan over `ALL`.
        Some(match key {
            "name" => Field::Name,
            "namespace" => Field::Namespace,
            "ips" => Field::Ips,
            "mac" => Field::Mac,
            "interface" => Field::Interface,
            "interfaceRequest" => Field::InterfaceRequest,
            "cni-args" => Field::CniArgs,
            "portMappings" => Field::PortMappings,
            "bandwidth" => Field::Bandwidth,
            "default-route" => Field::DefaultRoute,
            "infiniband-guid" => Field::InfinibandGuid,
            "ipam-claim-reference" => Field::IpamClaimReference,
            "deviceID" => Field::DeviceId,
            _ => return None,
        })
    }
}

/// The keys of the selection element, exact spelling (for the rules' "did you mean" check).
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    Field::ALL.into_iter().map(Field::key)
}

/// A selection being read, and whether `name` was seen.
struct Partial<'a, 's> {
    selection: &'a mut NetworkSelection<'s>,
    has_name: bool,
}

impl Partial<'_, '_> {
    fn finish(&self) -> Result<(), (&'static str, &'static str)> {
        if !self.has_name {
            return Err(("name", "missing: every element must name a network"));
        }
        Ok(())
    }
}

/// Reads the value of one known key into the selection. Duplicate keys: the last one wins, as in
/// Go's decoder and in `serde_json::Value`, so both parse paths agree.
struct FieldSeed<'a, 'b, 's> {
    partial: &'a mut Partial<'b, 's>,
    field: Field,
}

impl<'de: 's, 's> DeserializeSeed<'de> for FieldSeed<'_, '_, 's> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let s = &mut *self.partial.selection;
        match self.field {
            Field::Name => {
                let name = opt_str(d)?;
                self.partial.has_name = name.is_some();
                s.name = name.unwrap_or_default();
            }
            Field::Namespace => s.namespace = opt_str(d)?,
            Field::Ips => s.ips = opt_list(d)?,
            Field::Mac => s.mac = opt_str(d)?,
            Field::Interface => s.interface = opt_str(d)?,
            Field::InterfaceRequest => s.interface_request = opt_str(d)?,
            Field::CniArgs => {
                // Read as the map it must be (the type error names it), kept as its text.
                s.cni_args =
                    Option::<Map<String, Value>>::deserialize(d)?.map(|m| RawJson::from_object(&m))
            }
            Field::PortMappings => s.port_mappings = Deserialize::deserialize(d)?,
            Field::Bandwidth => s.bandwidth = Deserialize::deserialize(d)?,
            Field::DefaultRoute => s.default_route = opt_list(d)?,
            Field::InfinibandGuid => s.infiniband_guid = opt_str(d)?,
            Field::IpamClaimReference => s.ipam_claim_reference = opt_str(d)?,
            Field::DeviceId => s.device_id = opt_str(d)?,
        }
        Ok(())
    }
}

/// A string borrowed from the input when it has no escapes, owned otherwise. (serde's own
/// `Cow<str>` always copies.)
struct CowStr<'s>(Cow<'s, str>);

impl<'de: 's, 's> Deserialize<'de> for CowStr<'s> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(StrVisitor).map(CowStr)
    }
}

/// A list of strings, each borrowed where it can be.
struct CowStrList<'s>(Vec<Cow<'s, str>>);

impl<'de: 's, 's> Deserialize<'de> for CowStrList<'s> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<'s>(std::marker::PhantomData<Cow<'s, str>>);
        impl<'de: 's, 's> Visitor<'de> for ListVisitor<'s> {
            type Value = Vec<Cow<'s, str>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Capped: the hint comes from the input.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2).min(16));
                while let Some(CowStr(item)) = seq.next_element()? {
                    out.push(item);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(ListVisitor(std::marker::PhantomData))
            .map(CowStrList)
    }
}

fn opt_str<'de: 's, 's, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'s, str>>, D::Error> {
    Ok(Option::<CowStr<'s>>::deserialize(d)?.map(|s| s.0))
}

fn opt_list<'de: 's, 's, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'s, str>>>, D::Error> {
    Ok(Option::<CowStrList<'s>>::deserialize(d)?.map(|l| l.0))
}

enum Key<'s> {
    Known(Field),
    Other(Cow<'s, str>),
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(match Field::from_key(v) {
                    Some(field) => Key::Known(field),
                    None => Key::Other(Cow::Borrowed(v)),
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(match Field::from_key(v) {
                    Some(field) => Key::Known(field),
                    None => Key::Other(Cow::Owned(v.to_owned())),
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Reads one selection object into an existing (default) selection.
struct SelectionInto<'a, 's>(&'a mut NetworkSelection<'s>);

impl<'de: 's, 's> DeserializeSeed<'de> for SelectionInto<'_, 's> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct SelectionVisitor<'a, 's>(&'a mut NetworkSelection<'s>);
        impl<'de: 's, 's> Visitor<'de> for SelectionVisitor<'_, 's> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a network selection object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                let mut partial = Partial {
                    selection: self.0,
                    has_name: false,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Known(field) => map.next_value_seed(FieldSeed {
                            partial: &mut partial,
                            field,
                        })?,
                        Key::Other(key) => {
                            let value: Value = map.next_value()?;
                            partial
                                .selection
                                .extra
                                .insert(key, RawJson::from_value(&value));
                        }
                    }
                }
                partial.finish().map_err(|(field, message)| {
                    de::Error::custom(format_args!("{field}: {message}"))
                })
            }
        }
        d.deserialize_map(SelectionVisitor(self.0))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for NetworkSelection<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut selection = NetworkSelection::default();
        SelectionInto(&mut selection).deserialize(d)?;
        Ok(selection)
    }
}

impl Serialize for NetworkSelection<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        fn opt<M: SerializeMap, T: Serialize>(
            map: &mut M,
            key: &str,
            value: &Option<T>,
        ) -> Result<(), M::Error> {
            match value {
                Some(v) => map.serialize_entry(key, v),
                None => Ok(()),
            }
        }
        opt(&mut map, "namespace", &self.namespace)?;
        opt(&mut map, "ips", &self.ips)?;
        opt(&mut map, "mac", &self.mac)?;
        opt(&mut map, "interface", &self.interface)?;
        opt(&mut map, "interfaceRequest", &self.interface_request)?;
        opt(&mut map, "cni-args", &self.cni_args)?;
        opt(&mut map, "portMappings", &self.port_mappings)?;
        opt(&mut map, "bandwidth", &self.bandwidth)?;
        opt(&mut map, "default-route", &self.default_route)?;
        opt(&mut map, "infiniband-guid", &self.infiniband_guid)?;
        opt(&mut map, "ipam-claim-reference", &self.ipam_claim_reference)?;
        opt(&mut map, "deviceID", &self.device_id)?;
        for (key, value) in self.extra.iter() {
            if Field::from_key(key).is_none() {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comma_form_with_namespaces_interfaces_and_blanks() {
        let got = parse_networks(" storage-net, infra/mgmt-net@mgmt0 ,storage-net ").unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], NetworkSelection::named("storage-net"));
        assert_eq!(got[1].namespace.as_deref(), Some("infra"));
        assert_eq!(got[1].name, "mgmt-net");
        assert_eq!(got[1].interface.as_deref(), Some("mgmt0"));
        assert_eq!(got[2].name, "storage-net");
        // Blanks around the parts are trimmed, like Multus.
        let got = parse_networks("infra / mgmt @ m0").unwrap();
        assert_eq!(
            (
                got[0].namespace.as_deref(),
                got[0].name.as_ref(),
                got[0].interface.as_deref()
            ),
            (Some("infra"), "mgmt", Some("m0"))
        );
    }

    #[test]
    fn blank_value_asks_for_nothing() {
        assert_eq!(parse_networks("").unwrap(), vec![]);
        assert_eq!(parse_networks("  \t").unwrap(), vec![]);
    }

    #[test]
    fn comma_form_errors_name_the_element() {
        let err = parse_networks("a,,b").unwrap_err();
        assert!(
            matches!(
                err,
                SelectionParseError::Element {
                    index: 1,
                    field: None,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_networks("a, x/y/z").unwrap_err();
        assert!(
            matches!(err, SelectionParseError::Element { index: 1, .. }),
            "{err}"
        );
        let err = parse_networks("a@b@c").unwrap_err();
        assert_eq!(
            err,
            SelectionParseError::Element {
                index: 0,
                field: Some("interface".into()),
                message: "\"a@b@c\" has more than one '@'; write namespace/name@interface".into()
            }
        );
        let err = parse_networks("ns/@eth1").unwrap_err();
        assert!(
            matches!(err, SelectionParseError::Element { field: Some(ref f), .. } if f == "name")
        );
    }

    #[test]
    fn empty_namespace_or_interface_part_means_not_given() {
        let got = parse_networks("/a@").unwrap();
        assert_eq!(got, vec![NetworkSelection::named("a")]);
    }

    #[test]
    fn json_form_reads_every_field_and_keeps_vendor_keys() {
        let text = r#"[{"name":"edge","namespace":"infra","ips":["192.0.2.10/24"],"mac":"02:00:5e:10:00:01",
            "interface":"e0","interfaceRequest":"old","cni-args":{"vlan":42},
            "portMappings":[{"hostPort":9000,"containerPort":80,"protocol":"tcp","hostIP":"0.0.0.0"}],
            "bandwidth":{"ingressRate":1000,"ingressBurst":100},"default-route":["192.0.2.1"],
            "infiniband-guid":"00:11:22:33:44:55:66:77","ipam-claim-reference":"claim","deviceID":"0000:3b:02.1",
            "org.example.color":"blue"}]"#;
        let got = parse_networks(text).unwrap();
        let s = &got[0];
        assert_eq!(s.name, "edge");
        assert_eq!(s.ips, Some(vec![Cow::Borrowed("192.0.2.10/24")]));
        assert_eq!(
            s.cni_args.as_ref().unwrap().to_object().unwrap()["vlan"],
            json!(42)
        );
        assert_eq!(s.port_mappings.as_ref().unwrap()[0].host_port, Some(9000));
        assert_eq!(
            s.port_mappings.as_ref().unwrap()[0].host_ip.as_deref(),
            Some("0.0.0.0")
        );
        assert_eq!(s.bandwidth.as_ref().unwrap().ingress_burst, Some(100));
        assert_eq!(s.bandwidth.as_ref().unwrap().egress_rate, None);
        assert_eq!(s.default_route, Some(vec![Cow::Borrowed("192.0.2.1")]));
        assert_eq!(s.infiniband_guid(), Some("00:11:22:33:44:55:66:77"));
        assert_eq!(s.ipam_claim_reference(), Some("claim"));
        assert_eq!(s.device_id(), Some("0000:3b:02.1"));
        assert_eq!(s.requested_interface(), Some("e0"));
        assert_eq!(
            s.extra.get("org.example.color").map(RawJson::to_value),
            Some(json!("blue"))
        );
        let caps: Vec<_> = s.requested_capabilities().iter().collect();
        assert_eq!(caps, RequestedCapability::ALL.to_vec());
        // And back: the JSON form carries everything.
        let text = to_json_annotation(&got).unwrap();
        let again = parse_networks(&text).unwrap();
        assert_eq!(again, got);
    }

    #[test]
    fn deprecated_interface_request_is_used_only_without_interface() {
        let got = parse_networks(r#"[{"name":"a","interfaceRequest":"x"},{"name":"b","interface":"","interfaceRequest":"y"}]"#).unwrap();
        assert_eq!(got[0].requested_interface(), Some("x"));
        assert_eq!(got[1].requested_interface(), Some("y"));
    }

    #[test]
    fn json_errors_name_element_and_field() {
        let err = parse_networks(r#"[{"name":"a"},{"name":"b","mac":5}]"#).unwrap_err();
        match err {
            SelectionParseError::Element {
                index,
                field,
                message,
            } => {
                assert_eq!(index, 1);
                assert_eq!(field.as_deref(), Some("mac"));
                assert!(message.contains("expected a string"), "{message}");
            }
            other => panic!("{other}"),
        }
        let err = parse_networks(r#"[{"name":"a"},{"namespace":"b"}]"#).unwrap_err();
        assert!(
            matches!(err, SelectionParseError::Element { index: 1, field: Some(ref f), .. } if f == "name")
        );
        let err = parse_networks(r#"[{"name":"a"}, null]"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("element [1]: must be an object, not null"),
            "{err}"
        );
        let err =
            parse_networks(r#"[{"name":"a","portMappings":[{"hostPort":"80"}]}]"#).unwrap_err();
        assert!(
            matches!(err, SelectionParseError::Element { index: 0, field: Some(ref f), .. } if f == "portMappings")
        );
        assert!(matches!(
            parse_networks(r#"{"name":"a"}"#),
            Err(SelectionParseError::NotAList { found: "an object" })
        ));
        assert!(matches!(
            parse_networks(r#"[{"name":"a""#),
            Err(SelectionParseError::Json { .. })
        ));
    }

    #[test]
    fn duplicate_keys_last_wins_in_both_paths() {
        let got = parse_networks(r#"[{"name":"a","name":"b"}]"#).unwrap();
        assert_eq!(got[0].name, "b");
        let err = parse_networks(r#"[{"name":"a","name":null}]"#).unwrap_err();
        assert!(
            matches!(err, SelectionParseError::Element { field: Some(ref f), .. } if f == "name")
        );
    }

    #[test]
    fn comma_serialisation_only_when_expressible() {
        let sels = parse_networks("a, ns/b@net5").unwrap();
        assert_eq!(to_comma_annotation(&sels).as_deref(), Some("a,ns/b@net5"));
        let with_mac = parse_networks(r#"[{"name":"a","mac":"02:00:00:00:00:01"}]"#).unwrap();
        assert_eq!(to_comma_annotation(&with_mac), None);
        let odd_name = vec![NetworkSelection::named("a b")];
        assert_eq!(to_comma_annotation(&odd_name), None);
        let empty_ns = vec![NetworkSelection {
            namespace: Some(Cow::Borrowed("")),
            ..NetworkSelection::named("a")
        }];
        assert_eq!(to_comma_annotation(&empty_ns), None);
    }

    #[test]
    fn serialisation_never_duplicates_a_known_key_put_in_extra() {
        let mut s = NetworkSelection::named("a");
        s.extra.insert("name", RawJson::from_value(&json!("b")));
        s.extra
            .insert("org.example.x", RawJson::from_value(&json!(1)));
        assert_eq!(
            to_json_annotation(&[s]).unwrap(),
            r#"[{"name":"a","org.example.x":1}]"#
        );
    }

    #[test]
    fn capability_set_from_declared_keys() {
        let set = CapabilitySet::from_cni_keys(["ips", "portMappings", "somethingElse"]);
        assert!(set.contains(RequestedCapability::Ips));
        assert!(set.contains(RequestedCapability::PortMappings));
        assert!(!set.contains(RequestedCapability::Mac));
    }
}
