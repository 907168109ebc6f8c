//! Properties of the annotation parsers: they never panic, and parse ∘ serialise is the identity
//! on valid values, in both forms of the networks annotation and for the status annotation.

use std::borrow::Cow;

use multus_crds::annotations::networks::{
    Bandwidth, NetworkSelection, PortMapping, RawJson, VendorKeys,
};
use multus_crds::annotations::{
    DeviceInfo, Dns, NetworkStatus, parse_default_network, parse_network_status, parse_networks,
    to_comma_annotation, to_json_annotation, to_status_annotation,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?"
}

fn ifname() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,15}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

/// Any printable text, quotes and unicode included, for fields the JSON form carries verbatim.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn port_mapping() -> impl Strategy<Value = PortMapping> {
    (
        option::of(1i64..=65535),
        option::of(1i64..=65535),
        option::of(prop_oneof![Just("tcp"), Just("UDP"), Just("sctp")].prop_map(str::to_owned)),
        option::of(Just("0.0.0.0".to_owned())),
    )
        .prop_map(
            |(host_port, container_port, protocol, host_ip)| PortMapping {
                host_port,
                container_port,
                protocol,
                host_ip,
            },
        )
}

fn bandwidth() -> impl Strategy<Value = Bandwidth> {
    let v = || option::of(0i64..=10_000_000_000);
    (v(), v(), v(), v()).prop_map(|(a, b, c, d)| Bandwidth {
        ingress_rate: a,
        ingress_burst: b,
        egress_rate: c,
        egress_burst: d,
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ]
    .prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            vec((text(), inner), 0..3).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Vendor keys (reverse-DNS, so never a known key).
fn extra() -> impl Strategy<Value = Map<String, Value>> {
    vec(("org\\.example\\.[a-z]{1,6}", json_value()), 0..2).prop_map(|kv| kv.into_iter().collect())
}

/// A selection with any combination of fields (JSON-form only in general).
fn selection() -> impl Strategy<Value = NetworkSelection<'static>> {
    (
        (
            label(),
            option::of(label()),
            option::of(vec(text(), 0..3)),
            option::of(text()),
            option::of(ifname()),
            option::of(ifname()),
            option::of(
                vec((text(), json_value()), 0..3)
                    .prop_map(|kv| RawJson::from_object(&kv.into_iter().collect::<Map<_, _>>())),
            ),
        ),
        (
            option::of(vec(port_mapping(), 0..3)),
            option::of(bandwidth()),
            option::of(vec(text(), 0..2)),
            option::of(text()),
            option::of(text()),
            option::of(text()),
            extra().prop_map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), RawJson::from_value(v)))
                    .collect::<VendorKeys>()
            }),
        ),
    )
        .prop_map(
            |(
                (name, namespace, ips, mac, interface, interface_request, cni_args),
                (
                    port_mappings,
                    bandwidth,
                    default_route,
                    infiniband_guid,
                    ipam_claim_reference,
                    device_id,
                    extra,
                ),
            )| NetworkSelection {
                name: name.into(),
                namespace: namespace.map(Cow::Owned),
                ips: ips.map(owned_list),
                mac: mac.map(Cow::Owned),
                interface: interface.map(Cow::Owned),
                interface_request: interface_request.map(Cow::Owned),
                cni_args,
                port_mappings,
                bandwidth,
                default_route: default_route.map(owned_list),
                infiniband_guid: infiniband_guid.map(Cow::Owned),
                ipam_claim_reference: ipam_claim_reference.map(Cow::Owned),
                device_id: device_id.map(Cow::Owned),
                extra,
            },
        )
}

fn owned_list(list: Vec<String>) -> Vec<Cow<'static, str>> {
    list.into_iter().map(Cow::Owned).collect()
}

/// A selection the comma form can carry: name, namespace, interface.
fn comma_selection() -> impl Strategy<Value = NetworkSelection<'static>> {
    (label(), option::of(label()), option::of(ifname())).prop_map(|(name, namespace, interface)| {
        NetworkSelection {
            namespace: namespace.map(Cow::Owned),
            interface: interface.map(Cow::Owned),
            ..NetworkSelection::named(name)
        }
    })
}

fn strings(max: usize) -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..max)
}

fn status() -> impl Strategy<Value = NetworkStatus> {
    (
        (
            text(),
            text(),
            strings(3),
            text(),
            any::<i64>(),
            any::<bool>(),
        ),
        (strings(2), text(), strings(2), strings(2)),
        option::of(label().prop_map(DeviceInfo::pci)),
        strings(2),
        extra(),
    )
        .prop_map(
            |(
                (name, interface, ips, mac, mtu, default),
                (nameservers, domain, search, options),
                device_info,
                gateway,
                extra,
            )| {
                NetworkStatus {
                    name,
                    interface,
                    ips,
                    mac,
                    mtu,
                    default,
                    dns: Dns {
                        nameservers,
                        domain,
                        search,
                        options,
                    },
                    device_info,
                    gateway,
                    extra,
                }
            },
        )
}

/// Strings built from the characters the parsers treat specially, to reach their corners.
fn annotation_like() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            Just("["),
            Just("]"),
            Just("{"),
            Just("}"),
            Just("\""),
            Just(","),
            Just("/"),
            Just("@"),
            Just(":"),
            Just(" "),
            Just("name"),
            Just("null"),
            Just("a"),
            Just("1"),
            Just("\\"),
            Just("é"),
            Just("\u{2028}"),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn networks_parser_never_panics(s in "\\PC*") {
        let _ = parse_networks(&s);
        let _ = parse_default_network(&s);
    }

    #[test]
    fn networks_parser_never_panics_on_near_misses(s in annotation_like()) {
        let _ = parse_networks(&s);
    }

    #[test]
    fn status_parser_never_panics(s in "\\PC*") {
        let _ = parse_network_status(&s);
    }

    #[test]
    fn status_parser_never_panics_on_near_misses(s in annotation_like()) {
        let _ = parse_network_status(&s);
    }

    #[test]
    fn json_form_round_trips(sels in vec(selection(), 0..5)) {
        let text = to_json_annotation(&sels).unwrap();
        prop_assert_eq!(&parse_networks(&text).unwrap(), &sels);
        // Borrowed strings made owned outlive the text they came from, unchanged.
        let owned: Vec<NetworkSelection<'static>> = parse_networks(&text)
            .unwrap()
            .into_iter()
            .map(NetworkSelection::into_owned)
            .collect();
        drop(text);
        prop_assert_eq!(owned, sels);
    }

    #[test]
    fn comma_form_round_trips(sels in vec(comma_selection(), 0..6)) {
        let text = to_comma_annotation(&sels).expect("expressible in the comma form");
        prop_assert_eq!(&parse_networks(&text).unwrap(), &sels);
        // And the JSON form of the same selections reads back the same.
        let json = to_json_annotation(&sels).unwrap();
        prop_assert_eq!(parse_networks(&json).unwrap(), sels);
    }

    #[test]
    fn comma_form_is_offered_only_when_it_reads_back_unchanged(sels in vec(selection(), 1..4)) {
        if let Some(text) = to_comma_annotation(&sels) {
            prop_assert_eq!(parse_networks(&text).unwrap(), sels);
        }
    }

    #[test]
    fn status_round_trips(entries in vec(status(), 0..4)) {
        let text = to_status_annotation(&entries).unwrap();
        prop_assert_eq!(parse_network_status(&text).unwrap(), entries);
    }
}
