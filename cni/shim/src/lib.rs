//! `multus-shim`, the thick plugin's client: what it sends to the daemon and how it reads the
//! answer. The binary (`main.rs`) does the I/O; these decisions are plain functions, tested with
//! std, and built without it for the binary.
//!
//! The shim is a process per CNI call, so its whole cost is starting, one exchange over the
//! daemon's unix socket, and exiting. Without libc it starts in ≈ 0.15 ms where a static glibc
//! program needs ≈ 0.5 ms on a VM (glibc probes the CPU at start and every `cpuid` traps to the
//! hypervisor): docs/decisions.md, "A shim without libc". Anything off the usual path (no
//! daemon to connect to, a config it does not expect) is handed to the `multus` binary beside
//! it, which waits for the daemon, runs DEL from the cache, and words every error.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod answer;
pub mod http;
pub mod request;
