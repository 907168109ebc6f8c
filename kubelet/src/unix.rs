//! gRPC over unix sockets: bind a listener (replacing a stale socket file), serve a tonic
//! router on it until a shutdown future completes, and dial a socket as a tonic channel.
//!
//! Kubelet's device-plugin and PodResources APIs use nothing else, so these helpers are all the
//! transport plumbing the plugin, the CNI side and the fake kubelet need.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;
use crate::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient;
use crate::deviceplugin::v1beta1::registration_client::RegistrationClient;
use crate::podresources::v1::pod_resources_lister_client::PodResourcesListerClient;

/// How long dialing a socket may take (Multus uses the same bound for PodResources).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind a unix listener at `path`. A socket file left by an earlier process is removed first:
/// kubelet and plugins recreate their sockets on restart and a stale file would make bind fail.
pub fn bind(path: impl AsRef<Path>) -> Result<UnixListener, Error> {
    let path = path.as_ref();
    let fail = |source| Error::BindSocket {
        path: path.to_owned(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    UnixListener::bind(path).map_err(fail)
}

/// Serve `router` on `listener` until `shutdown` completes. `path` only names the socket in
/// errors.
pub async fn serve<F>(
    router: Router,
    listener: UnixListener,
    path: impl AsRef<Path>,
    shutdown: F,
) -> Result<(), Error>
where
    F: Future<Output = ()>,
{
    router
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|source| Error::ServeSocket {
            path: path.as_ref().to_owned(),
            source,
        })
}

/// Dial the gRPC server listening on the unix socket `path`, waiting at most
/// [`CONNECT_TIMEOUT`]. The channel reconnects to the same path when the connection drops.
pub async fn connect(path: impl Into<PathBuf>) -> Result<Channel, Error> {
    let path = path.into();
    let dial_path = path.clone();
    // The URI is required by the HTTP/2 layer but never resolved: the connector dials the path.
    Endpoint::from_static("http://kubelet.invalid")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let dial_path = dial_path.clone();
            async move { UnixStream::connect(dial_path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| Error::ConnectSocket { path, source })
}

/// A `Registration` client (what a device plugin calls on kubelet's socket).
pub async fn registration_client(
    path: impl Into<PathBuf>,
) -> Result<RegistrationClient<Channel>, Error> {
    Ok(RegistrationClient::new(connect(path).await?))
}

/// A `DevicePlugin` client (what kubelet, or a test standing in for it, calls on a plugin).
pub async fn device_plugin_client(
    path: impl Into<PathBuf>,
) -> Result<DevicePluginClient<Channel>, Error> {
    Ok(DevicePluginClient::new(connect(path).await?))
}

/// A `PodResourcesLister` client accepting answers up to
/// [`crate::POD_RESOURCES_MAX_MESSAGE`].
pub async fn pod_resources_client(
    path: impl Into<PathBuf>,
) -> Result<PodResourcesListerClient<Channel>, Error> {
    Ok(PodResourcesListerClient::new(connect(path).await?)
        .max_decoding_message_size(crate::POD_RESOURCES_MAX_MESSAGE))
}
