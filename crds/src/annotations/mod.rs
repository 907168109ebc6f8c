//! The pod annotations of the multi-network stack, each with parse and serialise:
//!
//! - [`networks`]: `k8s.v1.cni.cncf.io/networks`, the networks a pod asks for (both the JSON list
//!   and the comma form `ns/name@ifname`);
//! - [`default_network`]: `v1.multus-cni.io/default-network`, Multus' override of the cluster
//!   network (same grammar, exactly one element);
//! - [`status`]: `k8s.v1.cni.cncf.io/network-status`, what the plugin reports back, written
//!   byte-for-byte as Multus writes it;
//! - [`device_info`]: the device-info object (device-info-spec v1.1.0) carried in the status.
//!
//! Parsing checks structure and JSON types only; the values (names, addresses, ports) are checked
//! by [`crate::rules::pod`], which reports every problem with its field path at once.

pub mod default_network;
pub mod device_info;
pub mod networks;
mod raw_json;
mod scan;
pub mod status;

pub use default_network::{DefaultNetworkError, parse_default_network};
pub use device_info::{DEVICE_INFO_VERSION, DeviceInfo, DeviceInfoType};
pub use networks::{
    Bandwidth, NetworkSelection, OwnedNetworkSelection, PortMapping, RawJson, SelectionParseError,
    VendorKeys, parse_networks, to_comma_annotation, to_json_annotation,
};
pub use status::{
    Dns, NetworkStatus, StatusParseError, parse_network_status, to_status_annotation,
};
