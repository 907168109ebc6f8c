//! The node agent: the per-node half of the operator (one instance per node, no leader
//! election).
//!
//! - [`sriov`]: SR-IOV on the node: NIC discovery published as the node's
//!   `SriovNetworkNodeState.status`, the desired VF layout of its `spec` applied through sysfs,
//!   targeted eviction of the pods holding VFs of a PF about to change, and the kubelet device
//!   plugin serving the VF pools (see [`crate::deviceplugin`]).
//!
//! The CNI side of the agent (rendering NADs into CNI config files, the Multus daemon) joins this
//! module later.

pub mod cni;
pub mod sriov;
