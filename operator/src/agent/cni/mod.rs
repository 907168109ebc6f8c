//! The CNI side of the node agent (multus-spec §2.3, §2.4, §3.15, §3.16, §5):
//!
//! - [`install`]: the `multus` binary copied into the host's CNI bin dir by rename;
//! - [`kubeconfig`]: the thin plugin's kubeconfig, rewritten when the token or CA rotates;
//! - [`multusconf`]: `00-multus.conf(list)` generated from the primary CNI config, regenerated on
//!   filesystem events, gated by the readiness indicator file, never deleted;
//! - [`nadfiles`]: every NAD rendered into the Multus `confDir`, converging after restarts;
//! - the thick daemon ([`multus_cni::DaemonServer`]) on the node's socket, its engine fed by the
//!   agent's caches ([`store`]);
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`.
//!
//! The state comes from a [`crate::source`] (the API server or a directory of manifests): the
//! same engine either way. [`run`] wires it all to one shutdown token and joins it.

pub mod batch;
pub mod error;
pub mod files;
pub mod follow;
pub mod health;
pub mod install;
pub mod kubeconfig;
pub mod metrics;
pub mod multusconf;
pub mod nadfiles;
pub mod store;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use error::CniAgentError;
use multus_cni::{DaemonServer, Engine, EngineOptions, ServerOptions};
use prometheus_client::registry::Registry;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::source::{Change, Source, SourceSpec, Update};
use follow::PrimaryPaths;
use health::Health;
use kubeconfig::KubeconfigSettings;
use metrics::AgentMetrics;
use multusconf::{Mode, Settings};
use nadfiles::NadFiles;
use store::Store;

/// The thick daemon's limits.
#[derive(Clone, Debug)]
pub struct DaemonLimits {
    pub max_concurrent: usize,
    pub max_queued: usize,
}

/// Settings of the CNI agent. Every host path is under `host_root`.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    pub host_root: PathBuf,
    /// The CNI config dir (`/etc/cni/net.d`).
    pub cni_conf_dir: PathBuf,
    /// The Multus `confDir` NADs are rendered into (`/etc/cni/multus/net.d`).
    pub multus_conf_dir: PathBuf,
    /// The CNI bin dir (`/opt/cni/bin`).
    pub cni_bin_dir: PathBuf,
    /// The Multus cache (`/var/lib/cni/multus`).
    pub cni_dir: PathBuf,
    /// At start, the plugin's temporary cache files at least this old are removed
    /// ([`multus_cni::cache::CacheDir::sweep_leftovers`]): runtimes before CNI 1.1 never call
    /// GC, which removes them too.
    pub cache_leftover_age: std::time::Duration,
    /// The daemon's socket dir (`/run/multus`).
    pub socket_dir: PathBuf,
    /// The `multus` binary to install; `None`: none installed.
    pub multus_binary: Option<PathBuf>,
    /// The `multus-shim` binary to install beside it; `None`: `multus_binary` under that name.
    pub multus_shim_binary: Option<PathBuf>,
    /// The generated Multus config (mode, primary, keys).
    pub multus_config: Settings,
    /// The readiness indicator file as the host sees it.
    pub readiness_indicator_file: Option<String>,
    /// Thin mode's kubeconfig writer (service account, server); `None`: not written.
    pub kubeconfig: Option<KubeconfigSettings>,
    pub daemon: DaemonLimits,
    pub health_addr: Option<SocketAddr>,
    /// Other parts of the process (the SR-IOV side) reported by the same health server.
    pub health_parts: crate::health::Combined,
}

/// Join a host path (absolute, as the host sees it) onto the host root.
pub fn under_root(root: &Path, host_path: &str) -> PathBuf {
    root.join(host_path.trim_start_matches('/'))
}

impl Config {
    /// Defaults (design.md "Host paths") for a node whose filesystem is at `host_root`.
    pub fn for_host(
        node_name: impl Into<String>,
        host_root: impl Into<PathBuf>,
        mode: Mode,
    ) -> Self {
        let root: PathBuf = host_root.into();
        let mut multus_config = Settings::new(mode);
        multus_config.daemon_conf_dir = under_root(&root, "/etc/cni/net.d").display().to_string();
        Self {
            node_name: node_name.into(),
            cni_conf_dir: under_root(&root, "/etc/cni/net.d"),
            multus_conf_dir: under_root(&root, multus_crds::multus_config::DEFAULT_CONF_DIR),
            cni_bin_dir: under_root(&root, multus_crds::multus_config::DEFAULT_BIN_DIR),
            cni_dir: under_root(&root, multus_crds::multus_config::DEFAULT_CNI_DIR),
            cache_leftover_age: multus_cni::cache::LEFTOVER_AGE,
            socket_dir: under_root(&root, "/run/multus"),
            host_root: root,
            multus_binary: None,
            multus_shim_binary: None,
            multus_config,
            readiness_indicator_file: None,
            kubeconfig: None,
            daemon: DaemonLimits {
                max_concurrent: 16,
                max_queued: 256,
            },
            health_addr: None,
            health_parts: crate::health::Combined::default(),
        }
    }

    /// The hosted daemon's engine options: the host paths it reads, as the agent sees them
    /// (kubelet's PodResources socket for device IDs, the device-info dir).
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            devinfo_dir: under_root(&self.host_root, "/var/run/k8s.cni.cncf.io/devinfo"),
            pod_resources_socket: under_root(&self.host_root, multus_kubelet::POD_RESOURCES_SOCKET),
            ..EngineOptions::default()
        }
    }

    /// The daemon's overlay: its own view of the host paths, merged over every request.
    fn daemon_overlay(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("confDir".into(), json!(self.multus_conf_dir));
        m.insert("cniDir".into(), json!(self.cni_dir));
        m.insert("binDir".into(), json!(self.cni_bin_dir));
        if let Some(r) = &self.readiness_indicator_file {
            m.insert(
                "readinessindicatorfile".into(),
                json!(under_root(&self.host_root, r)),
            );
        }
        m
    }
}

/// Run the CNI agent until `shutdown`: install, start the followers, the source, the daemon
/// (thick mode, with a client) and the health server, then join them. In-flight daemon calls
/// finish before it returns; `00-multus` and the rendered NADs stay on disk.
pub async fn run(
    config: Config,
    source: SourceSpec,
    client: Option<kube::Client>,
    shutdown: CancellationToken,
) -> Result<(), CniAgentError> {
    let metrics = AgentMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);

    // Both binaries, whatever the mode: a config of the other mode still finds its plugin, and
    // the shim hands `multus` what it does not forward itself.
    let shim = config
        .multus_shim_binary
        .as_ref()
        .or(config.multus_binary.as_ref());
    for (name, binary) in [
        ("multus", config.multus_binary.as_ref()),
        ("multus-shim", shim),
    ] {
        if let Some(binary) = binary
            && install::install_binary(binary, &config.cni_bin_dir, name)?
        {
            metrics.written("binary");
            tracing::info!(to = %config.cni_bin_dir.display(), name, "installed a CNI binary");
        }
    }
    // What a SIGKILLed agent left of its other writes (the NAD files' are swept as their
    // directory is opened).
    files::sweep_temporaries(&config.cni_conf_dir, |base| {
        base.starts_with(multusconf::OUTPUT_PREFIX)
    });
    if let Some(kc) = &config.kubeconfig
        && let (Some(dir), Some(name)) = (kc.path.parent(), kc.path.file_name())
    {
        files::sweep_temporaries(dir, |base| std::ffi::OsStr::new(base) == name);
    }

    let cache = multus_cni::cache::CacheDir::new(config.cni_dir.clone());
    let age = config.cache_leftover_age;
    match tokio::task::spawn_blocking(move || cache.sweep_leftovers(age)).await {
        Ok(0) => {}
        Ok(swept) => tracing::info!(
            swept,
            dir = %config.cni_dir.display(),
            "removed temporary cache files of unfinished writes"
        ),
        Err(e) => tracing::warn!(error = %e, "the cache's sweep did not finish"),
    }

    let store = Arc::new(Store::default());
    let daemon = match (config.multus_config.mode, &client) {
        (Mode::Thick, Some(client)) => {
            let engine = Engine::new(config.engine_options(), Some(client.clone()))
                .with_cache(Arc::clone(&store) as Arc<dyn multus_cni::k8s::ObjectCache>);
            Some(DaemonServer::new(
                engine,
                ServerOptions {
                    socket_dir: config.socket_dir.clone(),
                    max_concurrent: config.daemon.max_concurrent,
                    max_queued: config.daemon.max_queued,
                    overlay: config.daemon_overlay(),
                    ..ServerOptions::default()
                },
            ))
        }
        (Mode::Thick, None) => {
            tracing::warn!("thick mode without an API server: no daemon is hosted");
            None
        }
        (Mode::Thin, _) => None,
    };
    let health = Arc::new(Health {
        ready: false.into(),
        registry,
        daemon: daemon.clone(),
    });
    // What can fail at start fails before anything listens: an error after the daemon's bind
    // would drop its calls and leave its socket behind.
    let source = Source::start(&source, client, &config.node_name, shutdown.clone())?;
    let nad_files = NadFiles::open(&config.multus_conf_dir, metrics.clone())?;
    // Thin mode's 00-multus names the kubeconfig: it is written first, and an agent that cannot
    // write it does not start (upstream's order, multus-spec §2.3) rather than hand the runtime
    // a config every ADD of which fails.
    if let Some(kc) = &config.kubeconfig {
        follow::write_kubeconfig(kc, &metrics)?;
    }

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = config.health_addr {
        let listener = health::bind(addr).await?;
        let ours: Arc<dyn crate::health::Endpoints> = Arc::clone(&health) as _;
        tasks.spawn(health::serve(
            listener,
            Arc::new(config.health_parts.after(ours)),
            shutdown.clone(),
        ));
    }
    if let Some(daemon) = daemon {
        let listener = daemon.bind().map_err(|source| CniAgentError::BindDaemon {
            path: daemon.socket_path(),
            source,
        })?;
        let token = shutdown.clone();
        tasks.spawn(async move {
            let path = daemon.socket_path();
            tracing::info!(socket = %path.display(), "CNI daemon listening");
            daemon
                .serve_on_own_thread(listener, token.cancelled_owned())
                .await
                .map_err(|source| CniAgentError::ServeDaemon { path, source })
        });
    }
    if let Some(kc) = config.kubeconfig.clone() {
        tasks.spawn(follow::follow_kubeconfig(
            kc,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let mut settings = config.multus_config.clone();
    settings.readiness_indicator_file = config.readiness_indicator_file.clone();
    tasks.spawn(follow::follow_primary(
        PrimaryPaths {
            cni_conf_dir: config.cni_conf_dir.clone(),
            readiness: config
                .readiness_indicator_file
                .as_deref()
                .map(|r| under_root(&config.host_root, r)),
        },
        settings,
        metrics.clone(),
        shutdown.clone(),
    ));

    let consumer = {
        let store = Arc::clone(&store);
        let health = Arc::clone(&health);
        tokio::task::spawn_blocking(move || consume(source, nad_files, &store, &health))
    };

    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "agent task failed; shutting down");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "agent task panicked; shutting down");
                shutdown.cancel();
            }
        }
    }
    health.ready.store(false, Ordering::SeqCst);
    let _ = consumer.await;
    first_error.map_or(Ok(()), Err)
}

/// When the NAD files are brought up to date again after a write failed: a NAD whose file
/// could not be written (a full disk, a directory where the file goes) must not wait for its
/// next change or the next re-list, which may be hours away. The pass is due at a fixed time,
/// which updates arriving meanwhile do not push back; while passes keep failing, the wait
/// between them doubles, up to a minute.
#[derive(Debug)]
struct Retry {
    /// The wait before the next pass once one is due.
    wait: Duration,
    /// When a pass is due; `None`: nothing failed since the last good pass.
    due: Option<Instant>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            wait: Self::FIRST,
            due: None,
        }
    }
}

impl Retry {
    const FIRST: Duration = Duration::from_secs(1);
    const MOST: Duration = Duration::from_secs(60);

    /// An update's write failed at `now`: a pass is due after the current wait, unless one is
    /// due already.
    fn failed(&mut self, now: Instant) {
        self.due.get_or_insert(now + self.wait);
    }

    /// A pass failed at `now`: the next is due after twice the wait.
    fn pass_failed(&mut self, now: Instant) {
        self.wait = (self.wait * 2).min(Self::MOST);
        self.due = Some(now + self.wait);
    }

    /// A pass over all NADs succeeded: nothing is pending. (A single NAD's successful write
    /// says nothing of another's failed one.)
    fn converged(&mut self) {
        *self = Self::default();
    }
}

/// Apply every update to the caches and the NAD files, until the source ends (at shutdown);
/// after a failed write, the files are brought up to date again by a pass over the cached NADs
/// ([`Retry`]).
fn consume(mut source: Source, mut nad_files: NadFiles, store: &Store, health: &Health) {
    let runtime = tokio::runtime::Handle::current();
    let mut retry = Retry::default();
    // Passes over the cached NADs only once they hold a full list: before it, they would
    // remove every file the agent wrote before a restart. (The first list converges anyway.)
    let mut synced = false;
    loop {
        let due = retry.due.filter(|_| synced);
        if due.is_some_and(|due| due <= Instant::now()) {
            match nad_files.converge(&store.nads()) {
                Ok(c) => {
                    tracing::info!(
                        written = c.written,
                        removed = c.removed,
                        "NAD files up to date again"
                    );
                    retry.converged();
                }
                Err(error) => {
                    retry.pass_failed(Instant::now());
                    tracing::warn!(%error, "NAD files still not up to date");
                }
            }
            continue;
        }
        let update = match due {
            None => source.updates.blocking_recv(),
            Some(due) => {
                let next = tokio::time::timeout_at(due.into(), source.updates.recv());
                match runtime.block_on(next) {
                    Ok(update) => update,
                    Err(_) => continue,
                }
            }
        };
        let Some(update) = update else { break };
        let span = tracing::debug_span!("update");
        let _entered = span.enter();
        let converging = matches!(update, Update::Nads(Change::Synced(_)));
        synced |= converging;
        let result = match update {
            Update::Nads(Change::Synced(nads)) => {
                let started = Instant::now();
                store.replace_nads(&nads);
                let r = nad_files.converge(&nads).map(|c| {
                    tracing::info!(
                        nads = nads.len(),
                        written = c.written,
                        removed = c.removed,
                        rejected = c.rejected,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "NAD files converged"
                    );
                });
                health.ready.store(true, Ordering::SeqCst);
                r
            }
            Update::Nads(Change::Applied(nad)) => {
                store.apply_nad(&nad);
                nad_files.apply(&nad).map(|_| ())
            }
            Update::Nads(Change::Deleted(nad)) => {
                store.delete_nad(&nad);
                let ns = nad.metadata.namespace.as_deref().unwrap_or_default();
                let name = nad.metadata.name.as_deref().unwrap_or_default();
                nad_files.delete(ns, name).map(|_| ())
            }
            Update::Pods(Change::Synced(pods)) => {
                store.replace_pods(pods);
                Ok(())
            }
            Update::Pods(Change::Applied(pod)) => {
                store.apply_pod(*pod);
                Ok(())
            }
            Update::Pods(Change::Deleted(pod)) => {
                store.delete_pod(&pod);
                Ok(())
            }
        };
        match result {
            Err(error) => {
                retry.failed(Instant::now());
                tracing::warn!(%error, "NAD files not up to date");
            }
            Ok(()) if converging => retry.converged(),
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_failed_write_is_retried_sooner_then_later_until_a_pass_succeeds() {
        let t0 = Instant::now();
        let mut retry = Retry::default();
        assert_eq!(retry.due, None);
        // Failed updates set a time once; more failures and updates do not push it back.
        retry.failed(t0);
        retry.failed(t0 + Duration::from_millis(900));
        assert_eq!(retry.due, Some(t0 + Retry::FIRST));
        // Failed passes double the wait, up to a minute.
        let waits: Vec<_> = (0..7)
            .map(|_| {
                retry.pass_failed(t0);
                (retry.due.unwrap() - t0).as_secs()
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        retry.failed(t0);
        assert_eq!(retry.due, Some(t0 + Duration::from_secs(60)));
        retry.converged();
        assert_eq!(retry.due, None);
        retry.failed(t0);
        assert_eq!(retry.due, Some(t0 + Retry::FIRST));
    }

    #[test]
    fn the_hosted_daemon_reads_kubelet_and_device_info_under_the_host_root() {
        let config = Config::for_host("node-1", "/host", Mode::Thick);
        let options = config.engine_options();
        assert_eq!(
            options.pod_resources_socket,
            Path::new("/host/var/lib/kubelet/pod-resources/kubelet.sock")
        );
        assert_eq!(
            options.devinfo_dir,
            Path::new("/host/var/run/k8s.cni.cncf.io/devinfo")
        );
        // The rest are the engine's own defaults.
        let defaults = EngineOptions::default();
        assert_eq!(options.readiness_timeout, defaults.readiness_timeout);
        assert_eq!(options.pod_lookup_patience, defaults.pod_lookup_patience);
    }
}
