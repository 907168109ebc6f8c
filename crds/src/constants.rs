//! Every label, annotation, finalizer and field-manager name multus-rs reads or owns, in one place.

/// Pod annotation selecting secondary networks (multi-net-spec §4.1).
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Pod annotation with the attachment results (multi-net-spec §5).
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// Legacy plural status key; read for compatibility, never written.
pub const LEGACY_NETWORKS_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks-status";
/// Multus pod annotation replacing the cluster default network.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";
/// NAD annotation naming the device-plugin resource the attachment consumes.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";
/// Pod annotation naming the container that receives injected SR-IOV resources (default: the first).
pub const RESOURCE_CONTAINER_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resource-container";

/// NAD annotation naming the SR-IOV network object that rendered it.
pub const SRIOV_OWNER_REF_ANNOTATION: &str = "sriovnetwork.openshift.io/owner-ref";
/// SriovNetwork annotation remembering the namespace its NAD was written to.
pub const SRIOV_LAST_NETWORK_NAMESPACE_ANNOTATION: &str =
    "operator.sriovnetwork.openshift.io/last-network-namespace";
/// Finalizer on SriovNetworks whose NAD lives in another namespace.
pub const SRIOV_NAD_FINALIZER: &str = "netattdef.finalizers.sriovnetwork.openshift.io";
/// NodeState annotation: when a state of a vanished node may be removed.
pub const SRIOV_KEEP_STATE_UNTIL_ANNOTATION: &str = "sriovnetwork.openshift.io/keep-state-until";
/// Node label set when the node has SR-IOV device-plugin pools.
pub const SRIOV_DEVICE_PLUGIN_LABEL: &str = "sriovnetwork.openshift.io/device-plugin";
/// Label multus-rs puts on objects it renders, naming the component that owns them.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "multus-rs";

/// Default device-plugin resource prefix, as upstream's operator (`RESOURCE_PREFIX`).
pub const DEFAULT_RESOURCE_PREFIX: &str = "openshift.io";

/// Server-side-apply field managers, one per component.
pub mod field_manager {
    pub const CONTROLLER: &str = "multus-controller";
    pub const AGENT: &str = "multus-agent";
    pub const WEBHOOK: &str = "multus-webhook";
    pub const CNI: &str = "multus-cni";
}

/// `User-Agent` of each component's API requests, `<component>/<version>`: audit logs show which
/// component made a request, and the RBAC test (tests/src/rbac.rs) checks each one's requests
/// against its role. The `multus` CNI plugin runs with the node agent's credentials.
pub mod user_agent {
    pub const CONTROLLER: &str = concat!("multus-operator-controller/", env!("CARGO_PKG_VERSION"));
    pub const AGENT: &str = concat!("multus-operator-agent/", env!("CARGO_PKG_VERSION"));
    pub const WEBHOOK: &str = concat!("multus-webhook/", env!("CARGO_PKG_VERSION"));
    pub const CNI: &str = concat!("multus-cni/", env!("CARGO_PKG_VERSION"));
}
