//! Property tests for the CNI wire formats and the Multus config:
//! - no parser panics, whatever the input (arbitrary text, arbitrary JSON);
//! - parse → serialise → parse is the identity on valid input, and unknown keys survive;
//! - result conversions round-trip where the target version can hold everything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use multus_crds::{
    FieldPath,
    cni::{
        CniError, CniResult, CniVersion, Dns, Interface, IpConfig, IpNet, NetworkConfigList,
        PluginConfig, Route,
    },
    multus_config::MultusConfig,
    rules::cniconf::{NameSource, validate_cni_config, validate_network_config},
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// === arbitrary input ===

/// Keys the parsers give meaning to, so random documents exercise the typed paths.
const KEYS: &[&str] = &[
    "name",
    "type",
    "cniVersion",
    "cniVersions",
    "plugins",
    "capabilities",
    "ipam",
    "dns",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "ipMasq",
    "prevResult",
    "delegates",
    "clusterNetwork",
    "defaultNetworks",
    "systemNamespaces",
    "globalNamespaces",
    "logOptions",
    "maxAge",
    "logLevel",
    "namespaceIsolation",
    "nameservers",
    "ips",
    "interfaces",
    "routes",
    "address",
    "dst",
    "gw",
    "interface",
    "ip4",
    "ip6",
    "ip",
    "code",
    "msg",
    "mtu",
    "table",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Short decimals: serde_json (without `float_roundtrip`) may move a 17-digit float by an
        // ulp when reading it back, which is its behaviour, not ours.
        any::<i32>().prop_map(|n| json!(f64::from(n) / 1000.0)),
        prop_oneof![
            Just("1.0.0".to_owned()),
            Just("0.2.0".to_owned()),
            Just("true".to_owned()),
            Just("10.0.0.1/24".to_owned()),
            Just("::/0".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_owned),
                        "[a-z]{0,6}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_text(text in prop_oneof![".{0,200}", "[\\[\\]{}\":,a-z0-9 .\\-/]{0,120}"]) {
        let _ = CniVersion::parse(&text);
        let _ = NetworkConfigList::parse(&text);
        let _ = NetworkConfigList::parse_any(&text);
        let _ = PluginConfig::parse(&text);
        let _ = MultusConfig::parse(&text);
        let _ = CniResult::parse(&text, Some(CniVersion::V1_0_0));
        let _ = CniError::parse(&text);
        let _ = validate_cni_config(&text, &FieldPath::new("spec").field("config"));
    }

    #[test]
    fn parsers_never_panic_on_json(value in arb_json()) {
        let text = value.to_string();
        let (list, _) = validate_cni_config(&text, &FieldPath::root());
        if let Some(list) = list {
            // Whatever parsed must serialise and parse back to itself.
            prop_assert_eq!(NetworkConfigList::parse_any(&list.to_json_string()).ok(), Some(list));
        }
        let _ = NetworkConfigList::from_value(value.clone());
        if let Ok(cfg) = MultusConfig::from_value(&value) {
            let _ = cfg.validate(&FieldPath::root());
            prop_assert_eq!(MultusConfig::parse(&cfg.to_json_string()).ok(), Some(cfg));
        }
        for v in CniVersion::SUPPORTED {
            if let Ok(r) = CniResult::from_value(value.clone(), Some(v)) {
                for out in CniVersion::SUPPORTED {
                    let _ = r.to_value(out);
                }
            }
        }
        let _ = serde_json::from_value::<CniError>(value);
    }
}

// === valid CNI configs ===

fn version_text() -> impl Strategy<Value = String> {
    prop::sample::select(CniVersion::SUPPORTED.to_vec()).prop_map(|v| v.to_string())
}

fn extra_keys() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("x-[a-z]{1,6}", arb_json()), 0..3)
}

fn plugin() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9-]{0,8}",
        prop::option::of(prop::collection::btree_map(
            "[a-zA-Z]{1,8}",
            any::<bool>(),
            0..3,
        )),
        prop::option::of("[a-z][a-z0-9-]{0,8}"),
        prop::option::of(prop::collection::vec("[0-9.]{1,15}", 0..3)),
        prop::option::of(any::<bool>()),
        extra_keys(),
    )
        .prop_map(|(ty, caps, ipam, dns, masq, extra)| {
            let mut m = Map::new();
            m.insert("type".into(), json!(ty));
            if let Some(caps) = caps {
                m.insert("capabilities".into(), json!(caps));
            }
            if let Some(ipam) = ipam {
                m.insert(
                    "ipam".into(),
                    json!({"type": ipam, "subnet": "10.0.0.0/24"}),
                );
            }
            if let Some(ns) = dns {
                m.insert("dns".into(), json!({"nameservers": ns}));
            }
            if let Some(masq) = masq {
                m.insert("ipMasq".into(), json!(masq));
            }
            m.extend(extra);
            Value::Object(m)
        })
}

fn bool_like() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec!["true", "TRUE", "false", "False"]).prop_map(|s| json!(s)),
    ]
}

fn conflist() -> impl Strategy<Value = Value> {
    (
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,10}",
        version_text(),
        prop::option::of(prop::collection::vec(version_text(), 1..3)),
        prop::option::of(bool_like()),
        prop::option::of(bool_like()),
        prop::collection::vec(plugin(), 1..4),
        extra_keys(),
    )
        .prop_map(|(name, v, vs, check, gc, plugins, extra)| {
            let mut m = Map::new();
            m.insert("cniVersion".into(), json!(v));
            if let Some(vs) = vs {
                m.insert("cniVersions".into(), json!(vs));
            }
            m.insert("name".into(), json!(name));
            if let Some(b) = check {
                m.insert("disableCheck".into(), b);
            }
            if let Some(b) = gc {
                m.insert("disableGC".into(), b);
            }
            m.insert("plugins".into(), Value::Array(plugins));
            m.extend(extra);
            Value::Object(m)
        })
}

/// Either form: a list, or a single plugin carrying `name` and `cniVersion`.
fn network_config() -> impl Strategy<Value = Value> {
    prop_oneof![
        conflist(),
        (plugin(), "[a-z][a-z0-9-]{0,10}", version_text()).prop_map(|(mut p, name, v)| {
            if let Value::Object(m) = &mut p {
                m.insert("name".into(), json!(name));
                m.insert("cniVersion".into(), json!(v));
            }
            p
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_configs_round_trip_unchanged(value in network_config()) {
        let text = value.to_string();
        let list = NetworkConfigList::parse_any(&text).unwrap();
        // Nothing is lost or reordered: the document reads back as written.
        prop_assert_eq!(&list.to_value(), &value);
        prop_assert_eq!(list.to_json_string(), text);
        let again = NetworkConfigList::parse_any(&list.to_json_string()).unwrap();
        prop_assert_eq!(&again, &list);
        // And the rules find nothing wrong with a valid config.
        let d = validate_network_config(&list, &FieldPath::root(), NameSource::Required);
        prop_assert!(!d.has_errors(), "{:?}", d);
    }

    #[test]
    fn multus_configs_round_trip(
        delegates in prop::collection::vec(network_config(), 0..3),
        cluster in prop::option::of("[a-z][a-z0-9-]{0,10}"),
        ns in prop::option::of(prop::collection::vec("[a-z][a-z0-9-]{0,8}", 0..3)),
        global in prop::option::of("[a-z]{1,5}(,[a-z]{1,5}){0,2}"),
        isolation in prop::option::of(any::<bool>()),
        level in prop::option::of(prop::sample::select(vec!["debug", "verbose", "error", "panic"])),
        extra in extra_keys(),
    ) {
        let mut m = Map::new();
        m.insert("cniVersion".into(), json!("1.0.0"));
        m.insert("name".into(), json!("multus-cni-network"));
        m.insert("type".into(), json!("multus"));
        if !delegates.is_empty() {
            m.insert("delegates".into(), Value::Array(delegates));
        }
        if let Some(c) = cluster { m.insert("clusterNetwork".into(), json!(c)); }
        if let Some(ns) = ns { m.insert("systemNamespaces".into(), json!(ns)); }
        if let Some(g) = global { m.insert("globalNamespaces".into(), json!(g)); }
        if let Some(i) = isolation { m.insert("namespaceIsolation".into(), json!(i)); }
        if let Some(l) = level { m.insert("logLevel".into(), json!(l)); }
        m.extend(extra);
        let value = Value::Object(m);
        let cfg = MultusConfig::from_value(&value).unwrap();
        // Same keys and values (known keys come first when written back).
        let written = cfg.to_value();
        prop_assert_eq!(written.as_object().map(Map::len), value.as_object().map(Map::len));
        for (k, v) in value.as_object().into_iter().flatten() {
            prop_assert_eq!(written.get(k), Some(v), "{}", k);
        }
        let again = MultusConfig::parse(&cfg.to_json_string()).unwrap();
        prop_assert_eq!(&again, &cfg);
    }
}

// === results ===

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n)))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n)))
}

fn net(addr: impl Strategy<Value = IpAddr>) -> impl Strategy<Value = IpNet> {
    (addr, 0u8..=32).prop_map(|(addr, p)| IpNet {
        addr,
        prefix: if addr.is_ipv4() { p } else { p * 4 },
    })
}

fn any_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![net(v4()), net(v6())]
}

fn dns() -> impl Strategy<Value = Dns> {
    (
        prop::collection::vec("[0-9.]{1,12}", 0..2),
        prop::option::of("[a-z.]{1,10}"),
        prop::collection::vec("[a-z.]{1,10}", 0..2),
    )
        .prop_map(|(nameservers, domain, search)| Dns {
            nameservers,
            domain,
            search,
            options: Vec::new(),
        })
}

/// A result using only what 0.3.x/0.4.0 can express.
fn result_04() -> impl Strategy<Value = CniResult> {
    (
        prop::collection::vec(
            (
                "[a-z0-9]{1,8}",
                "([0-9a-f]{2}:){5}[0-9a-f]{2}",
                "(/var/run/netns/[a-z]{1,5})?",
            ),
            0..3,
        ),
        prop::collection::vec(
            (
                any_net(),
                prop::option::of(prop_oneof![v4(), v6()]),
                prop::option::of(0u32..3),
            ),
            0..4,
        ),
        prop::collection::vec((any_net(), prop::option::of(prop_oneof![v4(), v6()])), 0..4),
        dns(),
    )
        .prop_map(|(ifs, ips, routes, dns)| CniResult {
            cni_version: CniVersion::V1_0_0,
            interfaces: ifs
                .into_iter()
                .map(|(name, mac, sandbox)| Interface {
                    name,
                    mac,
                    sandbox,
                    ..Interface::default()
                })
                .collect(),
            ips: ips
                .into_iter()
                .map(|(address, gateway, interface)| IpConfig {
                    address,
                    gateway,
                    interface,
                })
                .collect(),
            routes: routes
                .into_iter()
                .map(|(dst, gw)| Route::new(dst, gw))
                .collect(),
            dns,
        })
}

/// A 1.1 result, with the fields only 1.x has.
fn result_11() -> impl Strategy<Value = CniResult> {
    (
        result_04(),
        prop::collection::vec(
            (
                0u32..9000,
                0u32..1500,
                any::<u32>(),
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u8>()),
            ),
            0..4,
        ),
        0u32..9000,
        "[0-9a-f:.]{0,12}",
    )
        .prop_map(|(mut r, extras, mtu, pci)| {
            for (route, (mtu, advmss, priority, table, scope)) in r.routes.iter_mut().zip(extras) {
                route.mtu = mtu;
                route.advmss = advmss;
                route.priority = priority;
                route.table = table;
                route.scope = scope;
            }
            if let Some(i) = r.interfaces.first_mut() {
                i.mtu = mtu;
                i.pci_id = pci;
            }
            r.cni_version = CniVersion::V1_1_0;
            r
        })
}

/// A result 0.2.0 can hold: at most one address per family (IPv4 first), routes only for a family
/// that has an address (IPv4 first), no interfaces.
fn result_02() -> impl Strategy<Value = CniResult> {
    (
        prop::option::of((
            net(v4()),
            prop::option::of(v4()),
            prop::collection::vec((net(v4()), prop::option::of(v4())), 0..3),
        )),
        prop::option::of((
            net(v6()),
            prop::option::of(v6()),
            prop::collection::vec((net(v6()), prop::option::of(v6())), 0..3),
        )),
        dns(),
    )
        .prop_filter("0.2.0 needs an address", |(a, b, _)| {
            a.is_some() || b.is_some()
        })
        .prop_map(|(ip4, ip6, dns)| {
            let mut r = CniResult::new(CniVersion::V0_2_0);
            for (address, gateway, routes) in [ip4, ip6].into_iter().flatten() {
                r.ips.push(IpConfig {
                    address,
                    gateway,
                    interface: None,
                });
                r.routes
                    .extend(routes.into_iter().map(|(dst, gw)| Route::new(dst, gw)));
            }
            r.dns = dns;
            r
        })
}

fn in_version(r: &CniResult, v: CniVersion) -> CniResult {
    CniResult {
        cni_version: v,
        ..r.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn results_round_trip_in_their_own_version(r in result_11()) {
        let text = r.to_json_string(CniVersion::V1_1_0).unwrap();
        prop_assert_eq!(CniResult::parse(&text, None).unwrap(), r);
    }

    #[test]
    fn results_04_survive_1x_and_back(r in result_04()) {
        for down in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
            let there = r.convert(down).unwrap();
            prop_assert_eq!(&there, &in_version(&r, down));
            prop_assert_eq!(there.convert(CniVersion::V1_0_0).unwrap(), r.clone());
        }
    }

    #[test]
    fn results_02_survive_every_version(r in result_02()) {
        for v in CniVersion::SUPPORTED {
            let there = r.convert(v).unwrap();
            prop_assert_eq!(&there, &in_version(&r, v));
            prop_assert_eq!(there.convert(CniVersion::V0_2_0).unwrap(), r.clone());
        }
    }

    #[test]
    fn converting_down_keeps_what_the_target_can_hold(r in result_11()) {
        let down = r.convert(CniVersion::V0_4_0).unwrap();
        prop_assert_eq!(down.ips.len(), r.ips.len());
        prop_assert_eq!(down.routes.len(), r.routes.len());
        prop_assert!(down.routes.iter().all(|rt| rt.mtu == 0 && rt.table.is_none()));
        match r.convert(CniVersion::V0_2_0) {
            Ok(legacy) => prop_assert!(legacy.ips.len() <= 2 && !legacy.ips.is_empty()),
            Err(_) => prop_assert!(r.ips.is_empty()),
        }
    }
}
