//! # multus-operator
//!
//! The operator's library: today `multusctl`, the offline checker that runs the same rule
//! functions as the admission webhook and the controllers (all of them live in `multus-crds`).
//! The controller and the node agent arrive with their issues.

pub mod agent;
pub mod controller;
pub mod deviceplugin;
pub mod error;
pub mod multusctl;
pub mod source;

pub use error::Error;
