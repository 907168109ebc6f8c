//! Parse + validate a realistic three-plugin conflist (bridge with host-local IPAM, tuning,
//! portmap), as the webhook does for every NAD and the CNI plugin for every delegate.
//!
//! Run: `cargo bench -p multus-crds --bench conflist`. Target: ≥ 200,000 per second on one core.
//!
//! The `*_cpu` variants count the time the benchmark thread actually ran (from
//! `/proc/thread-self/schedstat`), so the figure is per core even on a machine busy with other
//! work; the plain variants are wall-clock time.

mod common;

use std::hint::black_box;

use common::cpu_time;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multus_crds::{FieldPath, cni::NetworkConfigList, rules::cniconf::validate_cni_config};

const CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "edge-net",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      },
      "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
    },
    {"type": "tuning", "sysctl": {"net.core.somaxconn": "500"}, "mtu": 1450},
    {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}
  ]
}"#;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conflist");
    group.throughput(Throughput::Elements(1));
    let base = FieldPath::new("spec").field("config");
    // The floor: reading the text into a JSON tree, which every parse must do to keep unknown keys.
    let json_value_only = || serde_json::from_str::<serde_json::Value>(black_box(CONFLIST));
    let parse = || NetworkConfigList::parse(black_box(CONFLIST));
    let parse_and_validate = || {
        let (list, diagnostics) = validate_cni_config(black_box(CONFLIST), &base);
        assert!(list.is_some() && diagnostics.is_empty());
    };
    group.bench_function("json_value_only", |b| b.iter(json_value_only));
    group.bench_function("parse", |b| b.iter(parse));
    group.bench_function("parse_and_validate", |b| b.iter(parse_and_validate));
    group.bench_function("json_value_only_cpu", |b| {
        b.iter_custom(|n| cpu_time(n, json_value_only))
    });
    group.bench_function("parse_cpu", |b| b.iter_custom(|n| cpu_time(n, parse)));
    group.bench_function("parse_and_validate_cpu", |b| {
        b.iter_custom(|n| cpu_time(n, parse_and_validate))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
