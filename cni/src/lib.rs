//! # multus-cni: the `multus` meta-plugin
//!
//! The CNI engine as a library, and the three ways it is run:
//!
//! - **thin**: the `multus` binary runs [`engine::Engine`] in-process for each CNI call;
//! - **shim**: with `type: multus-shim`, the call is forwarded over a unix socket to the
//!   **daemon** ([`server::DaemonServer`], hosted by the node agent), which runs the same engine
//!   with a shared Kubernetes client and bounded concurrency. The runtime runs `multus-shim`
//!   (cni/shim, no libc) for the usual path; it hands anything else to this binary, whose
//!   [`shim`] forwards the same way and also waits for the daemon or runs DEL from the cache.
//!
//! Data flow of an ADD: [`env::Invocation`] (environment + stdin) → [`resolve`] (config, pod and
//! NADs → ordered [`cache::Delegate`]s, using `multus_crds::attachments` for order and names) →
//! [`cache`] (delegate list written before anything runs) → [`chain`] (each delegate's plugin list
//! run as libcni does, through [`exec`]) → [`status`] (network-status entries) → the cluster
//! network's result. Any failure rolls back what was added, newest first. DEL replays the cache in
//! reverse, falling back to per-attachment records and then to the current config.

// `shim` includes `multus-shim`'s no_std HTTP file, which names `alloc`.
extern crate alloc;

pub mod cache;
pub mod chain;
pub mod devices;
pub mod engine;
pub mod env;
pub mod error;
pub mod exec;
pub mod k8s;
pub mod logfile;
pub mod netns;
pub mod plugin;
pub mod resolve;
pub mod server;
pub mod shim;
pub mod status;
pub mod subdir;

pub use engine::{Engine, EngineOptions};
pub use env::{Command, Invocation};
pub use error::{Error, PodRef, Result};
pub use server::{DaemonServer, ServerOptions};
