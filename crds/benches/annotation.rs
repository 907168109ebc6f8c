//! Parse and validate a pod's networks annotation with 10 networks against an index holding
//! those NADs: the work the webhook does per admission review and the CNI plugin per ADD.
//! Target: at least 500,000 validations per second on one core.
//!
//! Run: `cargo bench -p multus-crds --bench annotation`
//!
//! The `*_cpu` variants count the time the benchmark thread actually ran, so the figure is per
//! core even on a busy machine; the plain variants are wall-clock time.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;

use common::cpu_time;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multus_crds::annotations::parse_networks;
use multus_crds::constants::NETWORKS_ANNOTATION;
use multus_crds::rules::pod::{NadIndex, PodRuleOptions, validate_pod_networks};
use multus_crds::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};

const CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"macvlan","master":"ens4","ipam":{"type":"static"},"capabilities":{"ips":true,"mac":true}},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":true}}]}"#;

fn index() -> NadIndex {
    (0..10)
        .map(|i| {
            let mut nad = NetworkAttachmentDefinition::new(
                &format!("net{i}"),
                NetworkAttachmentDefinitionSpec {
                    config: Some(CONFIG.to_owned()),
                },
            );
            nad.metadata.namespace = Some(if i % 3 == 0 { "infra" } else { "team-a" }.to_owned());
            nad
        })
        .collect()
}

/// Ten elements with a mix of fields, as a real pod would carry them.
const JSON_FORM: &str = r#"[
  {"name":"net0","namespace":"infra","interface":"mgmt0"},
  {"name":"net1","ips":["192.0.2.10/24","2001:db8:1::10/64"],"mac":"02:00:5e:10:00:01"},
  {"name":"net2","cni-args":{"vlan":42,"mtu":9000}},
  {"name":"net3","namespace":"infra","default-route":["198.51.100.1"]},
  {"name":"net4","portMappings":[{"hostPort":9000,"containerPort":80,"protocol":"tcp"}]},
  {"name":"net5","bandwidth":{"ingressRate":1000000,"ingressBurst":100000,"egressRate":1000000,"egressBurst":100000}},
  {"name":"net6","namespace":"infra","interface":"data0","mac":"02:00:5e:10:00:06"},
  {"name":"net7","ips":["192.0.2.17"]},
  {"name":"net8","interface":"data1","org.example.tier":"gold"},
  {"name":"net9","namespace":"infra"}
]"#;

/// The same ten networks in the JSON form as most pods write it: names, namespaces, interfaces.
const JSON_PLAIN_FORM: &str = r#"[{"name":"net0","namespace":"infra","interface":"mgmt0"},{"name":"net1"},{"name":"net2"},{"name":"net3","namespace":"infra"},{"name":"net4","interface":"data0"},{"name":"net5"},{"name":"net6","namespace":"infra"},{"name":"net7"},{"name":"net8","interface":"data1"},{"name":"net9","namespace":"infra"}]"#;

const COMMA_FORM: &str = "infra/net0@mgmt0, net1, net2, infra/net3, net4@data0, net5, infra/net6, net7, net8@data1, infra/net9";

fn bench(c: &mut Criterion) {
    let index = index();
    let opts = PodRuleOptions::default();
    let mut group = c.benchmark_group("networks annotation, 10 networks");
    group.throughput(Throughput::Elements(1));
    for (form, value) in [
        ("json", JSON_FORM),
        ("json-plain", JSON_PLAIN_FORM),
        ("comma", COMMA_FORM),
    ] {
        let mut annotations = BTreeMap::new();
        annotations.insert(NETWORKS_ANNOTATION.to_owned(), value.to_owned());
        // The benchmark is only meaningful on a valid pod: findings would change the work done.
        let findings = validate_pod_networks("team-a", &annotations, &index, &opts);
        assert!(findings.is_empty(), "{form}: {findings:?}");

        let validate =
            || validate_pod_networks(black_box("team-a"), black_box(&annotations), &index, &opts);
        let parse = || parse_networks(black_box(value)).map(|selections| selections.len());
        group.bench_function(format!("parse+validate {form}"), |b| b.iter(validate));
        group.bench_function(format!("parse {form}"), |b| b.iter(parse));
        group.bench_function(format!("parse+validate {form}_cpu"), |b| {
            b.iter_custom(|n| cpu_time(n, validate))
        });
        group.bench_function(format!("parse {form}_cpu"), |b| {
            b.iter_custom(|n| cpu_time(n, parse))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
