//! # multus-operator
//!
//! The operator's library: the cluster `controller`, the per-node `agent` (CNI side and SR-IOV
//! side) with its `deviceplugin`, the `source`s of state they read, the shared `health`
//! endpoints, and `multusctl`, the offline checker that runs the same rule functions as the
//! admission webhook and the controllers (all of them live in `multus-crds`).

pub mod agent;
pub mod controller;
pub mod deviceplugin;
pub mod error;
pub mod health;
pub mod multusctl;
pub mod offline;
pub mod source;

pub use error::Error;
