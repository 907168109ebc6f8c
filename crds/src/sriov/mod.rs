//! The SR-IOV network operator API, group `sriovnetwork.openshift.io`, version `v1`, wire-compatible
//! with upstream (sriov-spec §1): [`policy::SriovNetworkNodePolicy`], [`network::SriovNetwork`] and
//! [`nodestate::SriovNetworkNodeState`], plus the value types they share, VF ranges, OVS bridge
//! settings and the supported-NIC list.

pub mod bridge;
pub mod merge;
pub mod network;
pub mod nics;
pub mod nodestate;
pub mod policy;
pub mod render;
pub mod values;
pub mod vfrange;

pub use network::{SriovNetwork, SriovNetworkSpec, SriovNetworkStatus};
pub use nics::{NicId, NicListError, SupportedNics};
pub use nodestate::{
    Interface, InterfaceStatus, SriovNetworkNodeState, SriovNetworkNodeStateSpec,
    SriovNetworkNodeStateStatus, VfGroup, VirtualFunction,
};
pub use policy::{
    SriovNetworkNicSelector, SriovNetworkNodePolicy, SriovNetworkNodePolicySpec,
    SriovNetworkNodePolicyStatus,
};
pub use values::{DeviceType, ESwitchMode, RdmaMode, SyncStatus, VdpaType};
pub use vfrange::{PfNameError, PfNameSelector, VfRange, VfRangeError};

/// API group of every SR-IOV kind.
pub const GROUP: &str = "sriovnetwork.openshift.io";
/// The only version.
pub const VERSION: &str = "v1";
/// Namespace the operator runs in and reads policies from, unless configured otherwise.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "sriov-network-operator";
/// Name of the policy (and operator config) that upstream reserves and never applies.
pub const DEFAULT_POLICY_NAME: &str = "default";
