//! One pool's life with kubelet: bind `<dir>/<prefix>_<resource>.sock`, serve the pool, register
//! `<prefix>/<resource>` on kubelet's socket, and start over when kubelet restarts.
//!
//! Kubelet deletes every socket in its device-plugin directory when it starts and then creates
//! its own `kubelet.sock` again; a plugin that does not notice stays unknown to the new kubelet.
//! We check every [`PluginSettings::kubelet_check`] whether our socket is gone or `kubelet.sock`
//! is a different file (inode) than the one we registered with, and re-serve and re-register.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use multus_kubelet::deviceplugin::v1beta1::{
    RegisterRequest, VERSION, device_plugin_server::DevicePluginServer,
};
use multus_kubelet::{KUBELET_SOCKET_NAME, unix};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pool::Pool;
use super::server::{PoolService, options};
use crate::agent::sriov::error::SriovError;
use crate::agent::sriov::sysfs::Sysfs;

/// Settings shared by every pool's server.
#[derive(Clone, Debug)]
pub struct PluginSettings {
    /// Resource prefix (`openshift.io`): resources are `<prefix>/<resourceName>`.
    pub prefix: String,
    /// Kubelet's device-plugin directory (holds `kubelet.sock` and our sockets).
    pub plugin_dir: PathBuf,
    /// How often to check for a kubelet restart (upstream: 5 s).
    pub kubelet_check: Duration,
    pub sysfs: Sysfs,
    /// The device-info directory (`<host-root>/var/run/k8s.cni.cncf.io/devinfo`): a file per
    /// allocated VF under `dp/`. `None`: none written.
    pub devinfo_dir: Option<PathBuf>,
}

impl PluginSettings {
    /// Socket file name of a pool: `<prefix>_<resource>.sock` (as upstream, so operators that
    /// look for it find it).
    pub fn socket_name(&self, resource: &str) -> String {
        format!("{}_{resource}.sock", self.prefix)
    }
}

/// Serve one pool until `stop` is cancelled, re-registering whenever kubelet restarts.
pub async fn serve_pool(
    settings: PluginSettings,
    pool: watch::Receiver<Pool>,
    stop: CancellationToken,
) {
    let resource = pool.borrow().resource_name.clone();
    let name = settings.socket_name(&resource);
    let path = settings.plugin_dir.join(&name);
    let kubelet = settings.plugin_dir.join(KUBELET_SOCKET_NAME);
    let mut backoff = Backoff::default();
    while !stop.is_cancelled() {
        match serve_once(&settings, &pool, &stop, &path, &name, &kubelet).await {
            Ok(()) => backoff = Backoff::default(),
            Err(error) => {
                tracing::warn!(%resource, %error, "device plugin");
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(backoff.next()) => {}
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// One generation: serve, register, and return when kubelet restarted (or `stop`).
async fn serve_once(
    settings: &PluginSettings,
    pool: &watch::Receiver<Pool>,
    stop: &CancellationToken,
    path: &Path,
    name: &str,
    kubelet: &Path,
) -> Result<(), SriovError> {
    let resource = format!("{}/{}", settings.prefix, pool.borrow().resource_name);
    let kubelet_inode = wait_for_kubelet(kubelet, settings.kubelet_check, stop).await;
    let Some(kubelet_inode) = kubelet_inode else {
        return Ok(());
    };
    let listener = unix::bind(path)?;
    let service = PoolService {
        prefix: settings.prefix.clone(),
        pool: pool.clone(),
        sysfs: settings.sysfs.clone(),
        devinfo_dir: settings.devinfo_dir.clone(),
    };
    let router = tonic::transport::Server::builder().add_service(DevicePluginServer::new(service));
    let generation = stop.child_token();
    let server = tokio::spawn(unix::serve(
        router,
        listener,
        path.to_owned(),
        generation.clone().cancelled_owned(),
    ));
    let registered = register(kubelet, name, &resource).await;
    if let Err(error) = registered {
        generation.cancel();
        let _ = server.await;
        return Err(error);
    }
    tracing::info!(%resource, socket = %path.display(), "registered with kubelet");
    let mut tick = tokio::time::interval(settings.kubelet_check);
    loop {
        tokio::select! {
            () = generation.cancelled() => break,
            _ = tick.tick() => {
                let ours = path.exists();
                let same_kubelet = inode(kubelet) == Some(kubelet_inode);
                if !ours || !same_kubelet {
                    tracing::info!(%resource, "kubelet restarted; registering again");
                    break;
                }
            }
        }
    }
    generation.cancel();
    // Graceful shutdown waits for open ListAndWatch streams, which only end when the peer goes;
    // a restarted kubelet may never close the old ones, so they get a moment, then are cut.
    let mut server = server;
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(Ok(result)) => result.map_err(SriovError::from),
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            server.abort();
            Ok(())
        }
    }
}

/// How long a stopping server waits for open streams before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

async fn register(kubelet: &Path, endpoint: &str, resource: &str) -> Result<(), SriovError> {
    let mut client = unix::registration_client(kubelet).await?;
    client
        .register(RegisterRequest {
            version: VERSION.to_owned(),
            endpoint: endpoint.to_owned(),
            resource_name: resource.to_owned(),
            options: Some(options()),
        })
        .await
        .map_err(|source| SriovError::Register {
            resource: resource.to_owned(),
            source,
        })?;
    Ok(())
}

/// Wait until kubelet's socket exists; its inode identifies this kubelet instance.
async fn wait_for_kubelet(
    kubelet: &Path,
    every: Duration,
    stop: &CancellationToken,
) -> Option<u64> {
    loop {
        if let Some(ino) = inode(kubelet) {
            return Some(ino);
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Retry delay after a failed generation: 100 ms doubling up to 10 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(100))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
        now
    }
}
