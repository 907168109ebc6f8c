//! Validation rules. Each function is pure, takes the object (and, for cluster-state rules, an
//! index of the objects it is checked against) and returns [`crate::Diagnostics`]. The webhook,
//! `multusctl`, the controllers and the CNI plugin call these; no rule is written twice.

pub mod cniconf;
pub mod isolation;
pub mod nad;
pub mod pod;
pub mod sriov;
pub mod sriov_cluster;
