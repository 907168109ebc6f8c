//! What `logOptions.compress` costs the call that rotates the log: a `logFile` filled with
//! realistic debug lines up to `maxSize`, then one more line. Reports the write that rotates
//! (a rename and a new file), the wait the `multus` binary makes for the gzip before it exits
//! (it must: a process exiting mid-way would leave every backup uncompressed), the gzip's CPU
//! time and the size it leaves. Run:
//!
//! ```text
//! cargo bench -p multus-cni --bench logrotate -- [maxSize in MiB, default 100 (Multus' default)]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::{Duration, Instant};

mod common;

use common::cpu_seconds;
use multus_cni::logfile::{Limits, RotatingFile, wait_for_compression};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let dir =
        tempfile::tempdir_in(std::env::var("LOG_BENCH_DIR").unwrap_or("/var/tmp".into())).unwrap();
    let path = dir.path().join("multus.log");
    let limits = Limits {
        max_bytes: mib * 1024 * 1024,
        max_backups: 5,
        max_age: None,
        compress: true,
    };
    let mut log = RotatingFile::open(&path, limits).unwrap();
    // Lines as the plugin writes them at debug level, varying as real ones do.
    let mut written = 0u64;
    let mut i = 0u64;
    let fill = Instant::now();
    while written + 300 < limits.max_bytes {
        let line = format!(
            "2026-11-29T13:{:02}:{:02}.{:06}Z DEBUG cni{{command=ADD container=c{:016x}}}: plugin exited plugin=bridge command=ADD micros={} status=exit status: 0\n",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1_000_000,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            10_000 + i % 5_000
        );
        log.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    log.flush().unwrap();
    let fill = fill.elapsed();

    let cpu0 = cpu_seconds().0;
    let start = Instant::now();
    // Longer than the room left (under 300 bytes): this write rotates.
    let last = format!("2026-11-29T14:00:00.000000Z DEBUG {}\n", "x".repeat(400));
    log.write_all(last.as_bytes()).unwrap();
    let rotate = start.elapsed();
    wait_for_compression();
    let waited = start.elapsed();
    let cpu = cpu_seconds().0 - cpu0;

    let gz = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|b| b.extension().is_some_and(|e| e == "gz"))
        .expect("a compressed backup");
    let gz_size = std::fs::metadata(gz).unwrap().len();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "maxSize {mib} MiB ({i} lines, filled in {:.0} ms): the write that rotates {:.2} ms; the binary's wait for the gzip {:.0} ms ({:.0} MiB/s), {:.0} ms CPU; {:.1} MiB → {:.2} MiB ({:.1}%)",
        ms(fill),
        ms(rotate),
        ms(waited),
        mib as f64 / waited.as_secs_f64(),
        cpu * 1e3,
        written as f64 / 1048576.0,
        gz_size as f64 / 1048576.0,
        100.0 * gz_size as f64 / written as f64
    );
}
