//! # multus-crds: the API crate
//!
//! Everything the other multus-rs crates agree on, and nothing that does I/O:
//!
//! - Kubernetes types: [`nad::NetworkAttachmentDefinition`] and the SR-IOV kinds in [`sriov`],
//!   with CRD generation in [`crdgen`].
//! - Wire formats, each with parse, serialise and validate: the pod annotations in
//!   [`annotations`], CNI configurations, results and errors in [`cni`], and the Multus
//!   configuration in [`multus_config`].
//! - The ordered attachments a pod gets, with their interface names, in [`attachments`].
//! - Structural validation of objects against a CRD's `openAPIV3Schema` in [`openapi`].
//! - Validation rules in [`rules`], returning structured [`diag::Diagnostics`]. The webhook,
//!   `multusctl`, the controllers and the CNI plugin all call these functions; there is no second
//!   copy of a rule anywhere in the workspace.
//!
//! Dependencies point one way: this crate depends on nothing of ours.

pub mod annotations;
pub mod attachments;
pub mod cni;
pub mod constants;
pub mod crdgen;
pub mod diag;
pub mod multus_config;
pub mod nad;
pub mod names;
pub mod openapi;
pub mod rules;
pub mod sriov;
pub mod workloads;

pub use diag::{Diagnostic, Diagnostics, FieldPath, Severity};
pub use nad::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};
