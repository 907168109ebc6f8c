//! Helpers for end-to-end tests: processes with captured logs, waiting with a timeout, and
//! network namespaces and links that are always cleaned up; seeding a fresh API server; free ports.

pub mod netns;
pub mod process;
pub mod seed;
pub mod wait;
