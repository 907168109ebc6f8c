//! # multus-webhooks: the admission server
//!
//! Moves "the pod sits in ContainerCreating" to `kubectl apply` time: NADs, pods, the pod
//! templates of workloads and the SR-IOV kinds are checked with the rules of `multus-crds` (the
//! same functions `multusctl` and the controllers call), and pods get the SR-IOV resource
//! requests their networks need.
//!
//! ```text
//! API server ──HTTPS──► server (tls, limits, routing) ──► admit::{nad,pod,inject,sriov}
//!                                                             │ read
//!                         watch (NADs, Nodes, NodeStates,     ▼
//!                         policies) ───────write──────► context (caches, settings, metrics)
//! ```
//!
//! The caches are plain indexes behind `RwLock`s (the NAD one keeps per NAD only what the rules
//! read, see [`cache`]), written by the watches and read by reviews;
//! a review never waits on the API server except for a NAD the cache does not know yet.

pub mod admit;
pub mod args;
pub mod cache;
pub mod context;
pub mod error;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;
pub mod watch;

pub use error::Error;
