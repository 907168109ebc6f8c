//! # multus-kubelet
//!
//! The two kubelet gRPC APIs multus-rs speaks, generated at build time from `.proto` files
//! written from the public API definitions (compiled by the pure-Rust `protox`, so no `protoc`
//! is needed):
//!
//! - [`deviceplugin::v1beta1`]: the device-plugin API. Kubelet serves `Registration` on
//!   [`KUBELET_SOCKET`]; each plugin serves `DevicePlugin` on its own socket in
//!   [`DEVICE_PLUGIN_DIR`]. Both clients and servers are exported (our device plugin serves
//!   `DevicePlugin`; the tests' fake kubelet serves `Registration`).
//! - [`podresources::v1`]: `PodResourcesLister` (`List`, `GetAllocatableResources`, `Get`),
//!   served by kubelet on [`POD_RESOURCES_SOCKET`]; the CNI side reads which devices a pod got.
//!
//! [`unix`] holds the small helpers to serve and dial gRPC over unix sockets, which is the only
//! transport kubelet uses for these APIs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), multus_kubelet::Error> {
//! use multus_kubelet::podresources::v1::ListPodResourcesRequest;
//! let mut client = multus_kubelet::unix::pod_resources_client(
//!     multus_kubelet::POD_RESOURCES_SOCKET,
//! ).await?;
//! let pods = client.list(ListPodResourcesRequest {}).await;
//! # let _ = pods; Ok(()) }
//! ```

pub mod error;
pub mod unix;

pub use error::Error;

/// The device-plugin API.
pub mod deviceplugin {
    /// Device-plugin API version `v1beta1` (gRPC package `v1beta1`).
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        missing_docs
    )]
    pub mod v1beta1 {
        tonic::include_proto!("v1beta1");

        /// The API version a plugin announces in `RegisterRequest.version`.
        pub const VERSION: &str = "v1beta1";
        /// `Device.health` of a usable device.
        pub const HEALTHY: &str = "Healthy";
        /// `Device.health` of a device kubelet must not hand out.
        pub const UNHEALTHY: &str = "Unhealthy";
    }
}

/// The PodResources API.
pub mod podresources {
    /// PodResources API version `v1` (gRPC package `v1`).
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        missing_docs
    )]
    pub mod v1 {
        tonic::include_proto!("v1");
    }
}

/// Directory holding kubelet's registration socket and every plugin's socket.
pub const DEVICE_PLUGIN_DIR: &str = "/var/lib/kubelet/device-plugins";
/// Kubelet's `Registration` socket (inside [`DEVICE_PLUGIN_DIR`]).
pub const KUBELET_SOCKET: &str = "/var/lib/kubelet/device-plugins/kubelet.sock";
/// File name of kubelet's registration socket.
pub const KUBELET_SOCKET_NAME: &str = "kubelet.sock";
/// Kubelet's PodResources socket.
pub const POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// Largest PodResources answer we accept (as Multus: 16 MiB; a large node lists many pods).
pub const POD_RESOURCES_MAX_MESSAGE: usize = 16 * 1024 * 1024;
