//! What the cni benches share.

/// CPU seconds so far (user + system) of this process (every thread) and of its waited-for
/// descendants, from /proc/self/stat (clock ticks, 100 per second): summed over many rounds or
/// one long operation, precise enough.
pub fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = after_comm
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // Fields 14-17 of proc(5) (utime, stime, cutime, cstime) are 11-14 after the state field.
    ((f[11] + f[12]) / 100.0, (f[13] + f[14]) / 100.0)
}
