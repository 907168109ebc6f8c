//! The kubelet device plugin for SR-IOV VFs (device-plugin API v1beta1), replacing the
//! sriov-network-device-plugin inside the node agent.
//!
//! - [`pool`]: which VFs each resource offers, rebuilt from the NodeState spec and every
//!   discovery, with real health (a VF whose PF link is down is `Unhealthy`);
//! - [`server`]: the `DevicePlugin` service of one pool — `ListAndWatch` streams every change,
//!   `Allocate` answers in upstream's conventions ([`allocate`]), `GetPreferredAllocation`
//!   keeps a container's VFs on one NUMA node;
//! - [`registration`]: one unix socket per pool, registration as `<prefix>/<resourceName>`, and
//!   re-registration when kubelet restarts; [`manager`] keeps one served plugin per pool;
//! - [`devinfo`]: the device-info file of every allocated VF (multus-spec §1.6);
//! - [`upstream`]: the upstream plugin's config file, for `--device-plugin=external`.
//!
//! The default prefix is `openshift.io` ([`multus_crds::constants::DEFAULT_RESOURCE_PREFIX`]):
//! upstream's operator defaults its `RESOURCE_PREFIX` to it, so NADs, pod requests and
//! network-resources-injector setups written for upstream keep naming the same resources.

pub mod allocate;
pub mod devinfo;
pub mod manager;
pub mod pool;
pub mod registration;
pub mod server;
pub mod upstream;

pub use pool::{
    Pool, PoolDevice, Pools, ResourceOptions, build_pools, resource_options, set_options,
};
pub use registration::PluginSettings;
