//! What the crds benchmarks share.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// On-CPU time of this thread while `f` runs `iters` times (from `/proc/thread-self/schedstat`),
/// so a figure is per core even on a machine busy with other work; wall-clock time where
/// schedstat is unavailable.
pub fn cpu_time<T>(iters: u64, f: impl Fn() -> T) -> Duration {
    let read = || {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    };
    let (cpu_start, wall_start) = (read(), Instant::now());
    for _ in 0..iters {
        black_box(f());
    }
    match (cpu_start, read()) {
        (Some(a), Some(b)) if b > a => Duration::from_nanos(b - a),
        _ => wall_start.elapsed(),
    }
}
