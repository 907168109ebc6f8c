//! NAD files: cold start with 10,000 NADs (time until every file is written, fsynced and renamed;
//! peak RSS of the process) and one NAD change to its file written (p50/p99), through the same
//! writer the agent uses ([`NadFiles`]: a pool of 16 threads, one directory fsync; single
//! changes inline with a directory fsync each). CPU time of the process is printed beside wall
//! time. Run: `cargo bench -p multus-operator --bench agent_nadfiles` (set `AGENT_BENCH_DIR` to
//! measure on a given filesystem; default a temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use multus_crds::NetworkAttachmentDefinition;
use multus_operator::agent::cni::metrics::AgentMetrics;
use multus_operator::agent::cni::nadfiles::NadFiles;

const NADS: usize = 10_000;

fn nad(i: usize, bridge: &str) -> NetworkAttachmentDefinition {
    let mut n = NetworkAttachmentDefinition::new(&format!("net-{i}"), Default::default());
    n.metadata.namespace = Some(format!("ns-{}", i % 100));
    n.spec.config = Some(format!(
        r#"{{"cniVersion":"1.0.0","name":"net-{i}","plugins":[{{"type":"macvlan","master":"{bridge}","mode":"bridge","ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.{}.{}.0/24"}}]]}}}}]}}"#,
        i / 256 % 256,
        i % 256
    ));
    n
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process (all threads, user + system), from /proc/self/stat in clock ticks
/// (100 per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = rest
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// A new directory for the bench's files: under `AGENT_BENCH_DIR` when set, else a new
/// top-level directory (`/multus-bench-*`, falling back to the temp dir when `/` is read-only).
///
/// Why not /tmp: ext4 skips inodes freed in the last one to six minutes when it allocates a new
/// one (`recently_deleted` in fs/ext4/ialloc.c), reading each from the inode table, so creating
/// 10,000 files in a block group where a previous run just deleted 10,000 costs seconds of kernel
/// CPU and made cold starts vary from 1 s to 7 s. A new top-level directory gets a block group
/// of its own (the Orlov allocator), like a node's fresh /etc/cni/multus.
fn fresh_dir() -> tempfile::TempDir {
    match std::env::var_os("AGENT_BENCH_DIR") {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::Builder::new()
            .prefix("multus-bench-")
            .tempdir_in("/")
            .or_else(|_| tempfile::tempdir())
            .unwrap(),
    }
}

fn main() {
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let tmp = fresh_dir();
    let dir = tmp.path().join("etc/cni/multus/net.d");
    let nads: Vec<_> = (0..NADS).map(|i| nad(i, "eth1")).collect();

    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut files = NadFiles::open(&dir, AgentMetrics::default()).unwrap();
    let c = files.converge(&nads).unwrap();
    let cold = started.elapsed();
    assert_eq!(c.written, NADS);
    println!(
        "cold start: {NADS} NADs rendered and written in {:.3} s ({:.2} s CPU); peak RSS {:.1} MiB",
        cold.as_secs_f64(),
        cpu_seconds() - cpu,
        peak_rss_kib() as f64 / 1024.0
    );

    // Restart: everything already on disk, nothing to write.
    drop(files);
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut files = NadFiles::open(&dir, AgentMetrics::default()).unwrap();
    let c = files.converge(&nads).unwrap();
    assert_eq!(c.written, 0);
    println!(
        "restart over {NADS} unchanged files: {:.3} s ({:.2} s CPU)",
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );

    let mut lat: Vec<Duration> = (0..1000)
        .map(|i| {
            let n = nad(i * 7 % NADS, &format!("eth{}", 2 + i));
            let t = Instant::now();
            files.apply(&n).unwrap();
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "NAD change to file written (in process, 1000 changes): p50 {:?}, p99 {:?}, max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    );
}
