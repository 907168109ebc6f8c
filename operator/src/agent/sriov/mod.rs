//! The SR-IOV side of the node agent, replacing upstream's config daemon and its device plugin
//! with one loop in one process:
//!
//! every [`Config::resync`] (and at start) it reads the node's `SriovNetworkNodeState`,
//! discovers the NICs ([`discovery`]), and — when the spec changed, the node drifted from it,
//! or a failed apply's backoff elapsed — applies the spec ([`apply`]) after evicting only the
//! pods that hold VFs of the PFs about to change ([`eviction`]). It publishes the status
//! ([`status`]; `InProgress` → `Succeeded`, or `Failed` with `lastSyncError`) and hands the
//! resource pools to the device plugin ([`crate::deviceplugin`]), which streams every change —
//! including health, since a PF link going down makes its VFs `Unhealthy` — to kubelet.
//!
//! Call [`run`] with a [`Context`] and a shutdown token; `multus-operator agent` does.

pub mod apply;
pub mod discovery;
pub mod error;
pub mod eviction;
#[cfg(any(test, feature = "fake-sysfs"))]
pub mod fakesys;
pub mod files;
pub mod metrics;
pub mod status;
pub mod sysfs;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use multus_crds::sriov::{Interface, SriovNetworkNodePolicy, SriovNetworkNodeState, SyncStatus};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use error::SriovError;

use crate::deviceplugin::{
    self, PluginSettings, Pools, ResourceOptions, build_pools, resource_options, set_options,
};
use apply::{Applier, Timeouts, disruptive_pfs};
use discovery::{AltNames, Nic, discover};
pub use metrics::SriovMetrics;
use status::{StatusPublisher, status_of};
use sysfs::Sysfs;

/// Who serves the VF pools to kubelet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DevicePluginMode {
    /// This agent's own device plugin.
    #[default]
    Builtin,
    /// The upstream sriov-network-device-plugin; the agent writes its config file instead.
    External,
}

/// Settings of the SR-IOV agent.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    /// Namespace of the NodeStates (the operator's namespace).
    pub namespace: String,
    /// sysfs root (`<host-root>/sys`).
    pub sysfs_root: PathBuf,
    /// The agent's own state (records of configured PFs).
    pub state_dir: PathBuf,
    /// Device-plugin resource prefix.
    pub resource_prefix: String,
    pub device_plugin: DevicePluginMode,
    /// Kubelet's device-plugin directory.
    pub plugin_dir: PathBuf,
    /// The device-info directory (multus-spec §1.6); the device plugin writes `dp/` files there.
    pub devinfo_dir: Option<PathBuf>,
    /// Kubelet's PodResources socket.
    pub pod_resources_socket: PathBuf,
    /// Where `--device-plugin=external` writes the upstream plugin's config.
    pub upstream_config: PathBuf,
    /// How often the node is looked at again (discovery, health, spec).
    pub resync: Duration,
    /// Longest wait for evicted pods to leave.
    pub eviction_timeout: Duration,
    /// How often the device plugin checks for a kubelet restart.
    pub kubelet_check: Duration,
    pub timeouts: Timeouts,
    /// Where this side serves `/healthz`, `/readyz`, `/metrics` itself; `None` when the process
    /// serves them elsewhere (next to the CNI side's, through [`crate::health::Combined`]).
    pub health_addr: Option<SocketAddr>,
}

impl Config {
    /// Defaults for a node whose host filesystem is at `host_root`.
    pub fn for_host(node_name: impl Into<String>, host_root: impl Into<PathBuf>) -> Self {
        let root: PathBuf = host_root.into();
        Self {
            node_name: node_name.into(),
            namespace: multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE.to_owned(),
            sysfs_root: root.join("sys"),
            state_dir: root.join("var/lib/multus/sriov"),
            resource_prefix: multus_crds::constants::DEFAULT_RESOURCE_PREFIX.to_owned(),
            device_plugin: DevicePluginMode::Builtin,
            plugin_dir: root.join("var/lib/kubelet/device-plugins"),
            devinfo_dir: Some(root.join("var/run/k8s.cni.cncf.io/devinfo")),
            pod_resources_socket: root.join("var/lib/kubelet/pod-resources/kubelet.sock"),
            upstream_config: root.join("etc/pcidp/config.json"),
            resync: Duration::from_secs(5),
            eviction_timeout: Duration::from_secs(300),
            kubelet_check: Duration::from_secs(5),
            timeouts: Timeouts::default(),
            health_addr: None,
        }
    }
}

/// What [`run`] needs: settings, an API client, the source of alternative names, and the
/// metrics (shared with whoever serves them).
#[derive(Clone)]
pub struct Context {
    pub config: Config,
    pub client: kube::Client,
    pub alt_names: Arc<dyn AltNames>,
    pub metrics: Arc<SriovMetrics>,
}

/// Run the SR-IOV agent until `shutdown` is cancelled.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> Result<(), SriovError> {
    let config = &ctx.config;
    let health = match config.health_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| SriovError::ServeHealth { addr, source })?;
            let endpoints: Arc<dyn crate::health::Endpoints> = ctx.metrics.clone();
            Some(tokio::spawn(crate::health::serve(
                listener,
                endpoints,
                shutdown.child_token(),
            )))
        }
        None => None,
    };
    let (pools_tx, pools_rx) = watch::channel(Pools::new());
    let plugins = (config.device_plugin == DevicePluginMode::Builtin).then(|| {
        let settings = PluginSettings {
            prefix: config.resource_prefix.clone(),
            plugin_dir: config.plugin_dir.clone(),
            kubelet_check: config.kubelet_check,
            sysfs: Sysfs::new(&config.sysfs_root),
            devinfo_dir: config.devinfo_dir.clone(),
        };
        tokio::spawn(deviceplugin::manager::run(
            settings,
            pools_rx,
            shutdown.child_token(),
        ))
    });
    let mut agent = Agent::new(&ctx, pools_tx);
    let mut tick = tokio::time::interval(config.resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let pass = agent.pass().await;
                ctx.metrics.set_ready(pass.is_ok());
                if let Err(error) = pass {
                    ctx.metrics.failed(&error);
                    tracing::warn!(%error, "SR-IOV agent pass");
                }
            }
        }
    }
    ctx.metrics.set_ready(false);
    drop(agent);
    if let Some(plugins) = plugins {
        let _ = plugins.await;
    }
    if let Some(health) = health {
        let _ = health.await;
    }
    Ok(())
}

/// The loop's memory between passes.
struct Agent<'a> {
    ctx: &'a Context,
    api: Api<SriovNetworkNodeState>,
    publisher: StatusPublisher,
    applier: Applier,
    pools: watch::Sender<Pools>,
    /// The spec last applied successfully.
    applied: Option<Vec<Interface>>,
    sync_status: Option<SyncStatus>,
    last_error: String,
    retry: Retry,
    /// `needVhostNet` / `excludeTopology` per resource, from the policies.
    options: BTreeMap<String, ResourceOptions>,
}

impl<'a> Agent<'a> {
    fn new(ctx: &'a Context, pools: watch::Sender<Pools>) -> Self {
        let c = &ctx.config;
        let api = Api::namespaced(ctx.client.clone(), &c.namespace);
        Self {
            ctx,
            publisher: StatusPublisher::new(api.clone(), &c.node_name),
            api,
            applier: Applier {
                sysfs: Sysfs::new(&c.sysfs_root),
                state_dir: c.state_dir.clone(),
                timeouts: c.timeouts,
            },
            pools,
            applied: None,
            sync_status: None,
            last_error: String::new(),
            retry: Retry::default(),
            options: BTreeMap::new(),
        }
    }

    fn discover(&self) -> Result<Vec<Nic>, SriovError> {
        let sysfs = &self.applier.sysfs;
        let started = std::time::Instant::now();
        let nics = discover(sysfs, self.ctx.alt_names.as_ref()).map_err(|source| {
            SriovError::ReadSysfs {
                path: sysfs.pci_devices(),
                source,
            }
        })?;
        self.ctx.metrics.discovered(started.elapsed());
        Ok(nics)
    }

    #[tracing::instrument(skip_all, fields(node = %self.ctx.config.node_name))]
    async fn pass(&mut self) -> Result<(), SriovError> {
        let c = &self.ctx.config;
        let state =
            self.api
                .get_opt(&c.node_name)
                .await
                .map_err(|source| SriovError::GetNodeState {
                    name: c.node_name.clone(),
                    source,
                })?;
        let Some(state) = state else {
            // The controller creates the NodeState; until then there is nothing to report to.
            self.publisher.forget();
            return Ok(());
        };
        if self.sync_status.is_none() {
            // Carry over what an earlier agent reported, so a restart does not blank the error.
            if let Some(s) = &state.status {
                self.sync_status = s.sync_status;
                self.last_error = s.last_sync_error.clone();
            }
        }
        let spec = state.spec.interfaces;
        let mut nics = self.discover()?;
        let configured = self.applier.configured_pfs();
        let drifted = !disruptive_pfs(&spec, &nics, &configured).is_empty();
        let changed = self.applied.as_ref() != Some(&spec);
        if (changed || drifted || self.sync_status != Some(SyncStatus::Succeeded))
            && self.retry.due()
        {
            self.sync_status = Some(SyncStatus::InProgress);
            self.publish(&nics, &spec).await?;
            let started = std::time::Instant::now();
            let applied = self.apply(&spec, &nics, &configured).await;
            self.ctx.metrics.applied(&applied, started.elapsed());
            match applied {
                Ok(_) => {
                    self.applied = Some(spec.clone());
                    self.sync_status = Some(SyncStatus::Succeeded);
                    self.last_error.clear();
                    self.retry = Retry::default();
                }
                Err(error) => {
                    tracing::warn!(%error, "applying the SR-IOV spec failed; will retry");
                    self.sync_status = Some(SyncStatus::Failed);
                    self.last_error = error.to_string();
                    self.retry.failed();
                }
            }
            nics = self.discover()?;
        }
        self.publish(&nics, &spec).await?;
        self.refresh_options().await;
        self.update_pools(&spec, &nics)?;
        Ok(())
    }

    /// Read the policies' per-resource options. On failure the previous ones are kept: they
    /// only refine how pools are served, and must not stop the node from being configured.
    async fn refresh_options(&mut self) {
        let c = &self.ctx.config;
        let api: Api<SriovNetworkNodePolicy> =
            Api::namespaced(self.ctx.client.clone(), &c.namespace);
        match api.list(&kube::api::ListParams::default()).await {
            Ok(list) => self.options = resource_options(&list.items),
            Err(error) => {
                tracing::warn!(%error, "reading SriovNetworkNodePolicies; pool options kept")
            }
        }
    }

    async fn apply(
        &mut self,
        spec: &[Interface],
        nics: &[Nic],
        configured: &[String],
    ) -> Result<usize, SriovError> {
        let c = &self.ctx.config;
        let disruptive = disruptive_pfs(spec, nics, configured);
        let vfs: BTreeSet<String> = nics
            .iter()
            .filter(|n| disruptive.contains(&n.status.pci_address))
            .flat_map(|n| n.status.vfs.iter().map(|v| v.pci_address.clone()))
            .collect();
        if !vfs.is_empty() && c.pod_resources_socket.exists() {
            let pods =
                eviction::pods_holding(&c.pod_resources_socket, &c.resource_prefix, &vfs).await?;
            if !pods.is_empty() {
                let evicted =
                    eviction::evict_and_wait(&self.ctx.client, &pods, c.eviction_timeout).await;
                self.ctx.metrics.evicted(match &evicted {
                    Ok(n) => *n,
                    Err(SriovError::EvictionTimeout { evicted, .. }) => *evicted,
                    Err(_) => 0,
                });
                evicted?;
            }
        }
        self.applier.apply(spec, nics).await.map(|r| r.writes)
    }

    async fn publish(&mut self, nics: &[Nic], spec: &[Interface]) -> Result<(), SriovError> {
        let status = status_of(nics, spec, self.sync_status, &self.last_error);
        self.publisher.publish(status).await?;
        // After the write: the gauge says what the NodeState says.
        self.ctx.metrics.set_sync_status(self.sync_status);
        Ok(())
    }

    fn update_pools(&self, spec: &[Interface], nics: &[Nic]) -> Result<(), SriovError> {
        let c = &self.ctx.config;
        let mut pools = build_pools(spec, nics);
        set_options(&mut pools, &self.options);
        self.ctx.metrics.set_pools(&pools);
        match c.device_plugin {
            DevicePluginMode::Builtin => {
                self.pools.send_if_modified(|old| {
                    let changed = *old != pools;
                    if changed {
                        *old = pools;
                    }
                    changed
                });
                Ok(())
            }
            DevicePluginMode::External => {
                let vendor = |pci: &str| {
                    nics.iter()
                        .find(|n| n.status.pci_address == pci)
                        .map(|n| n.status.vendor.clone())
                };
                let conf = deviceplugin::upstream::render(spec, vendor);
                let body = serde_json::to_vec_pretty(&conf).unwrap_or_default();
                if std::fs::read(&c.upstream_config).is_ok_and(|old| old == body) {
                    return Ok(());
                }
                files::write_atomic(&c.upstream_config, &body, 0o644)
            }
        }
    }
}

/// Backoff between failed applies: 1 s doubling up to 5 min.
#[derive(Debug)]
struct Retry {
    next: Option<Instant>,
    delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            next: None,
            delay: Duration::from_secs(1),
        }
    }
}

impl Retry {
    fn due(&self) -> bool {
        self.next.is_none_or(|t| Instant::now() >= t)
    }

    fn failed(&mut self) {
        self.next = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests;
