//! The CNI commands: ADD, DEL, CHECK, GC and STATUS of the meta-plugin (multus-spec §3). The thin
//! plugin calls this in-process; the daemon calls it for every request the shim forwards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use multus_crds::annotations::{DeviceInfo, NetworkStatus, to_status_annotation};
use multus_crds::cni::{
    CniResult, CniVersion, Interface, IpConfig, NetworkConfigList, select_version,
};
use multus_crds::multus_config::MultusConfig;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::cache::{CacheDir, CacheDirs, CachedList, Delegate, DelegateList, ReadyResult};
use crate::chain::{PluginCall, Runner, RuntimeConf, alongside, several};
use crate::env::{Command, Invocation};
use crate::error::{Error, PodRef, Result};
use crate::exec::{ExecStats, StartedPlugin};
use crate::k8s::{Kube, client_for_config, uid_matches};
use crate::netns;
use crate::resolve::{Context, DeviceSource, resolve};

mod head;
mod hotplug;
mod locks;
pub use head::HeadStart;
pub use hotplug::InterfaceAttributes;

/// GC's refusal when the runtime gives no list of valid attachments.
const GC_WITHOUT_VALID_ATTACHMENTS: &str = "GC needs cni.dev/valid-attachments (a list, empty when no attachment is valid); without it nothing is removed";

/// Extension key: how long ADD waits for `readinessindicatorfile`, in seconds (Multus: 45).
pub const READINESS_TIMEOUT_KEY: &str = "readinessIndicatorTimeoutSeconds";

/// An extension key of the config that is a number of seconds (`daemonWaitSeconds`,
/// `readinessIndicatorTimeoutSeconds`): `None` when absent, an error naming the key when it is
/// not a number from 0 to a year.
pub(crate) fn seconds_key(config: &MultusConfig, key: &str) -> Result<Option<Duration>> {
    const LONGEST: f64 = 365.0 * 24.0 * 3600.0;
    let Some(value) = config.extra.get(key) else {
        return Ok(None);
    };
    value
        .as_f64()
        .filter(|s| (0.0..=LONGEST).contains(s))
        .map(|s| Some(Duration::from_secs_f64(s)))
        .ok_or_else(|| {
            Error::ParseConfig(format!(
                "{key}: {value} is not a number of seconds from 0 to {LONGEST}"
            ))
        })
}

/// Extension key (ignored by Go Multus): whether plugin processes are started ahead of their
/// turn (docs/decisions.md, "Plugins started ahead"). On unless `false`: off for a plugin
/// that acts on its environment before it reads its config.
pub const START_AHEAD_KEY: &str = "startPluginsAhead";

/// The config's [`START_AHEAD_KEY`].
fn starts_ahead(config: &MultusConfig) -> Result<bool> {
    match config.extra.get(START_AHEAD_KEY) {
        None => Ok(true),
        Some(Value::Bool(on)) => Ok(*on),
        Some(other) => Err(Error::ParseConfig(format!(
            "{START_AHEAD_KEY}: {other} is not true or false"
        ))),
    }
}

/// Knobs of the engine that are not part of the Multus configuration.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How long to wait for the readiness indicator file unless the config says otherwise.
    pub readiness_timeout: Duration,
    pub readiness_poll: Duration,
    /// How long an unavailable API server is retried when getting the pod.
    pub pod_lookup_patience: Duration,
    /// Device-info directory (device-info-spec): `dp/` and `cni/` below it.
    pub devinfo_dir: PathBuf,
    /// Kubelet's PodResources socket, unless the config's `podResourcesSocket` names another.
    pub pod_resources_socket: PathBuf,
    /// Where the service account's `token` and `ca.crt` are, for in-cluster credentials when
    /// the config names no `kubeconfig` and `KUBERNETES_SERVICE_HOST`/`_PORT` are set (the thin
    /// plugin, multus-spec §2.1). `None`: no in-cluster credentials (a daemon has its client).
    pub service_account_dir: Option<PathBuf>,
    /// Which thread checks a pod's interface names on ADD: the visitor thread kept for that
    /// (the default, for the daemon) or the caller's (the thin plugin, one call per process).
    pub netns_visit: netns::Visit,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            readiness_timeout: Duration::from_secs(45),
            readiness_poll: Duration::from_millis(250),
            pod_lookup_patience: Duration::from_millis(2500),
            devinfo_dir: PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo"),
            pod_resources_socket: PathBuf::from(multus_kubelet::POD_RESOURCES_SOCKET),
            service_account_dir: None,
            netns_visit: netns::Visit::default(),
        }
    }
}

/// The meta-plugin.
pub struct Engine {
    options: EngineOptions,
    /// The daemon's client; the thin plugin builds one per request from `kubeconfig`.
    kube: Option<Kube>,
    devices: Option<Box<dyn DeviceSource>>,
    stats: ExecStats,
    /// One call at a time per container (a daemon serves `/cni` and `/delegate` concurrently).
    locks: locks::ContainerLocks,
    /// What earlier calls learnt of each `cniDir` (its spare inodes, its directories).
    caches: CacheDirs,
}

/// What a call gives back before it is printed.
enum Served {
    /// ADD's result, printed in the config's version (and 1.0.0 for upstream's shim).
    Added(CniResult),
    /// What the other commands print, if anything.
    Printed(Option<String>),
}

/// The daemon's answer to a `/cni` call ([`Engine::run_for_shim`]).
#[derive(Debug)]
pub struct ShimAnswer {
    /// What the thin plugin would print: the result in the config's version, for ADD.
    pub printed: Option<String>,
    /// ADD's result in CNI 1.0.0: upstream's `Result`.
    pub result_1_0_0: Option<String>,
}

/// One request being served: the config, the cache, the plugin path.
struct Call<'a> {
    inv: &'a Invocation,
    config: &'a MultusConfig,
    version: CniVersion,
    /// Shared with the calls a GC makes for stale containers and, in a daemon, with every call
    /// to the same `cniDir`: one view of `.spare` and of the directories made.
    cache: &'a CacheDir,
    path: Vec<PathBuf>,
    /// The Kubernetes client, built on first use: a DEL served from the cache, a CHECK or a GC
    /// never reads the kubeconfig nor sets up TLS.
    kube: OnceCell<Option<Kube>>,
    /// Whether plugins are started ahead of their turn ([`START_AHEAD_KEY`]).
    start_ahead: bool,
}

impl Engine {
    pub fn new(options: EngineOptions, kube: Option<kube::Client>) -> Self {
        Self {
            options,
            kube: kube.map(Kube::new),
            devices: None,
            stats: ExecStats::default(),
            locks: locks::ContainerLocks::default(),
            caches: CacheDirs::default(),
        }
    }

    /// Where deviceIDs of NADs with a `resourceName` come from (kubelet PodResources).
    #[must_use]
    pub fn with_devices(mut self, devices: Box<dyn DeviceSource>) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Look pods and NADs up in `cache` before asking the API server (the daemon hosted by the
    /// node agent, fed by its watches). Without a client the cache is not used.
    #[must_use]
    pub fn with_cache(mut self, cache: std::sync::Arc<dyn crate::k8s::ObjectCache>) -> Self {
        self.kube = self.kube.map(|k| k.with_cache(cache));
        self
    }

    /// Time spent inside delegate processes so far.
    pub fn exec_stats(&self) -> &ExecStats {
        &self.stats
    }

    /// Serve one request; returns what to print on stdout (the result for ADD, nothing else).
    pub async fn run(&self, inv: &Invocation) -> Result<Option<String>> {
        let config_text = std::str::from_utf8(&inv.config)
            .map_err(|e| Error::ParseConfig(format!("not UTF-8: {e}")))?;
        let config = MultusConfig::parse(config_text).map_err(|e| Error::parse_config(&e))?;
        self.run_config(inv, &config).await
    }

    /// [`run`](Self::run) with the configuration already read.
    pub async fn run_config(
        &self,
        inv: &Invocation,
        config: &MultusConfig,
    ) -> Result<Option<String>> {
        self.run_config_started(inv, config, None).await
    }

    /// [`run_config`](Self::run_config) for an ADD whose first plugin may have been started
    /// already ([`HeadStart::begin`]; `None`: ADD begins the head start itself).
    pub async fn run_config_started(
        &self,
        inv: &Invocation,
        config: &MultusConfig,
        head: Option<HeadStart>,
    ) -> Result<Option<String>> {
        match self.serve(inv, config, head).await? {
            (Served::Added(result), version) => print_result(&result, version).map(Some),
            (Served::Printed(text), _) => Ok(text),
        }
    }

    /// [`run_config`](Self::run_config) for the daemon's `/cni` (the daemon overlays its own
    /// configuration): what to print, and for ADD the result as upstream's daemon answers it,
    /// in CNI 1.0.0, which upstream's `multus-shim` converts to the config's version itself
    /// (multus-spec §3.16).
    pub async fn run_for_shim(
        &self,
        inv: &Invocation,
        config: &MultusConfig,
    ) -> Result<ShimAnswer> {
        Ok(match self.serve(inv, config, None).await? {
            (Served::Added(result), version) => {
                let printed = print_result(&result, version)?;
                let result_1_0_0 = if version == CniVersion::V1_0_0 {
                    printed.clone()
                } else {
                    print_result(&result, CniVersion::V1_0_0)?
                };
                ShimAnswer {
                    printed: Some(printed),
                    result_1_0_0: Some(result_1_0_0),
                }
            }
            (Served::Printed(printed), _) => ShimAnswer {
                printed,
                result_1_0_0: None,
            },
        })
    }

    /// One call, with the result of ADD left for the caller to print in the version(s) it needs.
    async fn serve(
        &self,
        inv: &Invocation,
        config: &MultusConfig,
        head: Option<HeadStart>,
    ) -> Result<(Served, CniVersion)> {
        let cache = self.cache_dir(config);
        let call = self.call(inv, config, &cache)?;
        let version = call.version;
        let span =
            tracing::info_span!("cni", command = %inv.command, container = %inv.container_id);
        let served = async {
            let _container = self.locks.lock_for(inv).await;
            match inv.command {
                Command::Add => self.add(&call, head).await.map(Served::Added),
                Command::Del => self.del(&call, head).await.map(|()| Served::Printed(None)),
                Command::Check => self.check(&call).await.map(|()| Served::Printed(None)),
                Command::Gc => self.gc(&call).await.map(|()| Served::Printed(None)),
                Command::Status => self.status(&call).await.map(|()| Served::Printed(None)),
                Command::Version => Ok(Served::Printed(Some(version_text()))),
            }
        }
        .instrument(span)
        .await?;
        Ok((served, version))
    }

    /// The config's `cniDir`, as this engine's earlier calls left it.
    fn cache_dir(&self, config: &MultusConfig) -> std::sync::Arc<CacheDir> {
        self.caches.get(Path::new(config.cni_dir()))
    }

    /// The state of one request: its config, cache, plugin path and (lazy) client.
    fn call<'a>(
        &self,
        inv: &'a Invocation,
        config: &'a MultusConfig,
        cache: &'a CacheDir,
    ) -> Result<Call<'a>> {
        let version = select_version(config.cni_version.as_deref(), &[])
            .map_err(|e| Error::ParseConfig(format!("cniVersion: {e}")))?;
        let path = head::plugin_dirs(inv, config);
        // A wrong value refuses ADD; other commands go on, starting nothing ahead (the key was
        // meant to say something).
        let start_ahead = match starts_ahead(config) {
            Ok(on) => on,
            Err(e) if inv.command == Command::Add => return Err(e),
            Err(_) => false,
        };
        Ok(Call {
            inv,
            config,
            version,
            cache,
            path,
            kube: match &self.kube {
                Some(k) => OnceCell::new_with(Some(Some(k.clone()))),
                None => OnceCell::new(),
            },
            start_ahead,
        })
    }

    fn runner<'b>(&'b self, call: &'b Call<'_>) -> Runner<'b> {
        Runner {
            path: &call.path,
            stats: &self.stats,
            start_ahead: call.start_ahead,
        }
    }

    async fn wait_readiness(&self, config: &MultusConfig) -> Result<()> {
        let Some(file) = config
            .readiness_indicator_file
            .as_deref()
            .filter(|f| !f.is_empty())
        else {
            return Ok(());
        };
        let timeout =
            seconds_key(config, READINESS_TIMEOUT_KEY)?.unwrap_or(self.options.readiness_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        while !Path::new(file).exists() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::WaitReadiness {
                    path: file.into(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.options.readiness_poll).await;
        }
        Ok(())
    }

    /// The request's Kubernetes client: the engine's, else one from `kubeconfig`, else
    /// in-cluster credentials (thin plugin only), else none (static delegates only).
    async fn kube<'c>(&self, call: &'c Call<'_>) -> Result<Option<&'c Kube>> {
        call.kube
            .get_or_try_init(|| async {
                let client = client_for_config(
                    call.config.kubeconfig.as_deref(),
                    self.options.service_account_dir.as_deref(),
                    |k| std::env::var(k).ok(),
                )
                .await?;
                Ok::<_, Error>(client.map(Kube::new))
            })
            .await
            .map(Option::as_ref)
    }

    /// The pod, when the request names one and there is an API. `Ok(None)`: no pod context.
    async fn lookup_pod(&self, kube: Option<&Kube>, inv: &Invocation) -> Result<Option<Pod>> {
        let (Some(kube), Some(pod)) = (kube, inv.pod()) else {
            return Ok(None);
        };
        kube.get_pod(
            &pod.namespace,
            &pod.name,
            &pod.uid,
            self.options.pod_lookup_patience,
        )
        .await
    }

    /// `pod_resources_socket` is only given for ADD: DEL and CHECK use the deviceIDs cached at
    /// ADD, and kubelet may already have released the pod's devices.
    fn context<'a>(
        &'a self,
        call: &'a Call<'_>,
        kube: Option<&'a Kube>,
        pod: Option<&'a Pod>,
        pod_resources_socket: Option<&'a Path>,
    ) -> Context<'a> {
        Context {
            config: call.config,
            invocation: call.inv,
            kube,
            pod,
            devices: self.devices.as_deref(),
            pod_resources_socket,
            devinfo_dir: &self.options.devinfo_dir,
            cluster_read: None,
        }
    }

    // === ADD ===

    async fn add(&self, call: &Call<'_>, head: Option<HeadStart>) -> Result<CniResult> {
        self.wait_readiness(call.config).await?;
        let inv = call.inv;
        // The pod's interface names, looked at first (a daemon's visitor answers meanwhile; see
        // `LinkCheck::start`); an error opening the namespace is reported where it is used.
        let look = start_ifname_check(inv, self.options.netns_visit);
        // The cluster network's first plugin, started before the pod is looked up (unless the
        // thin plugin started it before its runtime); a failure before its turn kills it.
        let HeadStart {
            process: head,
            cluster_read,
            ..
        } = head.unwrap_or_else(|| HeadStart::begin(inv, call.config));
        let pod_ref = inv.pod().unwrap_or_default();
        let kube = self.kube(call).await?;
        let pod = self.lookup_pod(kube, inv).await?;
        if kube.is_some() && inv.pod().is_some() {
            match &pod {
                // The pod is gone: its sandbox is being torn down, nothing to attach.
                None => return Ok(empty_result(inv)),
                Some(p) => require_uid(p, &pod_ref)?,
            }
        }
        let socket =
            crate::devices::socket_from_config(call.config, &self.options.pod_resources_socket);
        let context = Context {
            cluster_read: cluster_read.as_ref(),
            ..self.context(call, kube, pod.as_ref(), Some(&socket))
        };
        let delegates = resolve(&context).await?;

        // A previous ADD of this container that was neither finished nor deleted (a crash, a
        // failed rollback): released first, so a retry never trips over its interfaces.
        let previous = call
            .cache
            .read_list(&inv.container_id, &inv.ifname, &inv.args);
        // Any list there, even one that cannot be read, is the previous attempt's.
        let had_previous = !matches!(previous, Ok(CachedList::Missing));
        let left = match previous {
            Ok(CachedList::Found(old)) => {
                self.release_previous(call, &old, &delegates, &pod_ref)
                    .await?
            }
            _ => Vec::new(),
        };
        // The first attachment's first plugin is started now: its process loads while the
        // interface names are checked and the list is written, and it gets its config, so can
        // act, only after both (docs/decisions.md, "Plugins started ahead"). A refused ADD kills
        // it unread.
        let first_ready = delegates
            .first()
            .map(|d| self.started_ahead(call, d, Command::Add, None, false, head));
        // Refuse interface names already taken in the pod before anything runs (one visit of the
        // namespace for all attachments; their names are distinct, checked by resolve). After a
        // previous attempt's release, a new look: the one started first may predate it.
        let in_pod = |source: Error| source.in_pod(&pod_ref);
        let look = if had_previous {
            start_ifname_check(inv, self.options.netns_visit)
        } else {
            look
        };
        let check = look.map_err(in_pod)?;
        let carried = left.len();
        let all = left.into_iter().chain(delegates).collect();
        let list = DelegateList::new(&inv.container_id, &inv.netns, inv.pod(), all);
        // When the check visits the namespace from another thread (the daemon), the list is
        // written meanwhile and taken back if the check refuses, which leaves the cache as a
        // refusal before the write does. Not over a previous attempt's list: what that attempt
        // could not release likely refuses this one, and its list must stay for the runtime's
        // DEL.
        let early = (check.runs_alongside() && !had_previous).then(|| call.cache.write_list(&list));
        if let Err(refused) = judge_ifnames(check, inv, &list.delegates[carried..], &pod_ref) {
            if let Some(Ok(())) = early
                && let Err(e) = call.cache.remove_list(&inv.container_id)
            {
                tracing::warn!(error = %e, "removing the delegate list of a refused ADD");
            }
            return Err(refused);
        }
        early
            .unwrap_or_else(|| call.cache.write_list(&list))
            .map_err(in_pod)?;

        let mut statuses: Vec<NetworkStatus> = Vec::new();
        let mut master: Option<CniResult> = None;
        // The attachment whose result record is still to be written: it is written while the
        // next attachment's plugin runs, off the ADD's path (the delegate list already names it
        // for a DEL after a crash).
        let mut unrecorded: Option<(&Delegate, CniResult)> = None;
        // The next attachment's config and first plugin call, built while this one's plugin
        // runs (as its record is written then); the first attachment's, started above.
        let mut ready: Option<Result<Ready>> = first_ready;
        // The last attachment's record, made ready while its plugin runs: only its result is
        // left to write after it.
        let mut last_record: Option<ReadyResult<'_>> = None;
        // The attachments this ADD asked for; a rollback also tries the carried ones again.
        for (i, d) in list.delegates.iter().enumerate().skip(carried) {
            let previous = unrecorded.take();
            let next = list.delegates.get(i + 1);
            let (added, recorded, ahead) = self
                .add_recording(
                    call,
                    d,
                    ready.take(),
                    next,
                    kube.zip(pod.as_ref()),
                    previous.as_ref(),
                )
                .await;
            match ahead {
                Ahead::Next(next_ready) => ready = Some(next_ready),
                Ahead::OwnRecord(own) => last_record = own,
            }
            let failed = match (added, recorded) {
                (Ok(r), Ok(())) => Ok(r),
                (Err(source), recorded) => {
                    if let Err(e) = recorded {
                        tracing::warn!(error = %e, "writing the previous attachment's record");
                    }
                    Err((d, source, None))
                }
                (Ok(r), Err(source)) => {
                    // `d` was added: its record gives a later DEL its prevResult.
                    let _ = call
                        .cache
                        .write_result(d, &inv.container_id, &inv.netns, Some(&r));
                    let unrecorded = previous.as_ref().map_or(d, |(p, _)| *p);
                    Err((unrecorded, source, Some(r)))
                }
            };
            let result = match failed {
                Ok(r) => r,
                Err((failed, source, added_result)) => {
                    // The next attachment's plugin, started ahead, is killed unread first.
                    drop(ready.take());
                    // The rollback's DELs get their prevResult from here, whether or not the
                    // record that failed to be written holds it.
                    let known: Vec<(&Delegate, &CniResult)> = previous
                        .as_ref()
                        .map(|(p, r)| (*p, r))
                        .into_iter()
                        .chain(added_result.as_ref().map(|r| (d, r)))
                        .collect();
                    let added = &list.delegates[..=i];
                    return Err(self
                        .roll_back_add(call, added, &known, &pod_ref, failed, source)
                        .await);
                }
            };
            unrecorded = Some((d, result.clone()));
            let device_info = d
                .devinfo_file
                .as_ref()
                .and_then(|f| std::fs::read(f).ok())
                .and_then(|b| serde_json::from_slice::<DeviceInfo>(&b).ok());
            statuses.extend(crate::status::statuses(
                &d.status_name,
                &result,
                d.is_master(),
                device_info.as_ref(),
            ));
            if d.is_master() {
                master = Some(result);
            }
        }
        if let Some((d, result)) = unrecorded {
            let written = match last_record {
                Some(ready) => ready.write(&result),
                None => call
                    .cache
                    .write_result(d, &inv.container_id, &inv.netns, Some(&result)),
            };
            if let Err(source) = written {
                let (added, known) = (&list.delegates, [(d, &result)]);
                return Err(self
                    .roll_back_add(call, added, &known, &pod_ref, d, source)
                    .await);
            }
            self.announce(d, &result, kube.zip(pod.as_ref())).await;
        }

        if let (Some(kube), Some(_)) = (kube, &pod) {
            let value = to_status_annotation(&statuses).map_err(|e| Error::Serialize {
                what: "network-status",
                message: e.to_string(),
            })?;
            if let Err(e) = kube
                .set_network_status(&pod_ref.namespace, &pod_ref.name, &pod_ref.uid, &value)
                .await
            {
                self.rollback(call, &list.delegates, &[], &pod_ref).await;
                return Err(e);
            }
        }
        Ok(master.unwrap_or_else(|| CniResult::new(call.version)))
    }

    /// Release what a previous attempt's list `old` holds; return what this ADD carries into
    /// its own list, marked `carried`. An attachment is carried when the previous attempt had
    /// added it (its record is there; an unreadable one counts as there) and its plugins fail
    /// to release it, so the runtime's DEL still finds it when this ADD asks for fewer networks
    /// (before 2026-11-30 the new list replaced the old one, and its address leaked). One whose
    /// ADD had failed is not carried: a failed ADD cleans up after itself, and one whose DEL
    /// cannot succeed (a macvlan whose master never existed) would fail every DEL of the
    /// sandbox. One asked for again the very same (network, interface, config) is not carried
    /// either: the new attachment's DEL releases both. One asked for again with another config
    /// would share its record file with the new one: the ADD is refused, and the list stays
    /// for the runtime's DEL.
    async fn release_previous(
        &self,
        call: &Call<'_>,
        old: &DelegateList,
        asked: &[Delegate],
        pod_ref: &PodRef,
    ) -> Result<Vec<Delegate>> {
        let inv = call.inv;
        let old = reversed(&old.delegates);
        let mut unreleased = Vec::new();
        if let Err(e) = self
            .del_delegates_noting(call, &old, &[], pod_ref, &mut unreleased, None)
            .await
        {
            tracing::warn!(error = %e, "releasing the previous attempt's attachments");
        }
        let added = |o: &Delegate| {
            !matches!(
                call.cache.read_cached_result(o, &inv.container_id),
                Ok(None)
            )
        };
        let mut left = Vec::new();
        for o in unreleased.into_iter().rev().filter_map(|i| old.get(i)) {
            if !added(o) {
                continue;
            }
            match asked.iter().find(|d| d.is_same_attachment(o)) {
                Some(d) if d.config == o.config => {}
                Some(_) => {
                    return Err(Error::attachment(
                        Error::AddNetwork,
                        pod_ref,
                        &o.status_name,
                        &o.ifname,
                        Error::PreviousAttemptLeft {
                            container_id: inv.container_id.clone(),
                        },
                    ));
                }
                None => left.push(Delegate {
                    carried: true,
                    ..o.clone()
                }),
            }
        }
        Ok(left)
    }

    /// An ADD that failed at `failed`: delete what it `added` (newest first; `known`: results
    /// not, or not surely, in their records) and return the error that names the attachment.
    async fn roll_back_add(
        &self,
        call: &Call<'_>,
        added: &[Delegate],
        known: &[(&Delegate, &CniResult)],
        pod: &PodRef,
        failed: &Delegate,
        source: Error,
    ) -> Error {
        self.rollback(call, added, known, pod).await;
        Error::attachment(
            Error::AddNetwork,
            pod,
            &failed.status_name,
            &failed.ifname,
            source,
        )
    }

    /// ADD `d` (with what was made ready for it) and, once its first plugin has been started,
    /// while it runs: make `next` ready (its first plugin started ahead), or, when `d` is the
    /// last, `d`'s own record; then record `previous` (whose plugins have all exited:
    /// [`Engine::record`]).
    async fn add_recording<'c>(
        &self,
        call: &'c Call<'_>,
        d: &Delegate,
        ready: Option<Result<Ready>>,
        next: Option<&Delegate>,
        api: Option<(&Kube, &Pod)>,
        previous: Option<&(&Delegate, CniResult)>,
    ) -> (Result<CniResult>, Result<()>, Ahead<'c>) {
        let meanwhile = async {
            // Made ready first: the record may wait for the API server (its event).
            let ahead = match next {
                // Its plugin's process starts now too, to load while this one's plugin runs.
                Some(n) => Ahead::Next(self.started_ahead(call, n, Command::Add, None, true, None)),
                // Not made ready is no error: the record is then written in one step.
                None => Ahead::OwnRecord(
                    call.cache
                        .ready_result(d, &call.inv.container_id, &call.inv.netns)
                        .ok(),
                ),
            };
            let recorded = match previous {
                Some((done, result)) => self.record(call, done, result, api).await,
                None => Ok(()),
            };
            (recorded, ahead)
        };
        let (result, (recorded, ahead)) =
            alongside(self.add_unrecorded(call, d, ready), |_| meanwhile).await;
        (result, recorded, ahead)
    }

    /// ADD one attachment the caller has already recorded (in the delegate list; a hot-plug into
    /// a container without one, by its result record), so a DEL after a crash mid-ADD finds it.
    /// Its result record and event ([`Engine::record`]) are the caller's to make. `ready`: `d`
    /// made ready ahead ([`Engine::ready`]), if it was.
    async fn add_unrecorded(
        &self,
        call: &Call<'_>,
        d: &Delegate,
        ready: Option<Result<Ready>>,
    ) -> Result<CniResult> {
        let inv = call.inv;
        let Ready { list, first } = match ready {
            Some(ready) => ready?,
            None => self.ready(call, d, Command::Add, None)?,
        };
        copy_device_info(&self.options.devinfo_dir, d);
        let rt = runtime_conf(inv, d);
        let mut result = self.runner(call).add(&list, &rt, first).await?;
        self.default_routes(inv, d, &mut result).await?;
        Ok(result)
    }

    /// Write `d`'s result record, then tell the pod ([`Engine::announce`]).
    async fn record(
        &self,
        call: &Call<'_>,
        d: &Delegate,
        result: &CniResult,
        api: Option<(&Kube, &Pod)>,
    ) -> Result<()> {
        let inv = call.inv;
        call.cache
            .write_result(d, &inv.container_id, &inv.netns, Some(result))?;
        self.announce(d, result, api).await;
        Ok(())
    }

    /// Tell the pod about an attachment that got an interface or an address (`AddedInterface`),
    /// when `api` is given.
    async fn announce(&self, d: &Delegate, result: &CniResult, api: Option<(&Kube, &Pod)>) {
        if let Some((kube, pod)) = api
            && (!result.interfaces.is_empty() || !result.ips.is_empty())
        {
            let ips: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
            let msg = format!(
                "Add {} [{}] from {}",
                d.ifname,
                ips.join(","),
                d.status_name
            );
            kube.event(pod, false, "AddedInterface", &msg).await;
        }
    }

    /// Default-route handling after a delegate's ADD (multus-spec §3.6): drop the default routes
    /// of filtered families, or install the requested gateway; the cached result follows.
    async fn default_routes(
        &self,
        inv: &Invocation,
        d: &Delegate,
        result: &mut CniResult,
    ) -> Result<()> {
        if result.interfaces.is_empty() && result.ips.is_empty() {
            return Ok(());
        }
        let filtered: Vec<bool> = [(d.filter_v4, false), (d.filter_v6, true)]
            .into_iter()
            .filter_map(|(filter, v6)| filter.then_some(v6))
            .collect();
        let gateways: Vec<std::net::IpAddr> = d.gateways.iter().flatten().copied().collect();
        if filtered.is_empty() && gateways.is_empty() {
            return Ok(());
        }
        // `ip` waits on the kernel's routing lock, which a burst of pods' link set-ups holds:
        // off the async thread, which in the daemon serves every call.
        let (netns, ifname) = (inv.netns.clone(), d.ifname.clone());
        let (filtered, gateways) = tokio::task::spawn_blocking(move || {
            for &v6 in &filtered {
                netns::delete_default_routes(&netns, &ifname, v6)?;
            }
            for &gw in &gateways {
                netns::set_default_route(&netns, &ifname, gw)?;
            }
            Ok((filtered, gateways))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|changed| changed)
        .map_err(|source| Error::Netns {
            netns: inv.netns.clone(),
            source,
        })?;
        for v6 in filtered {
            result
                .routes
                .retain(|r| !(r.dst.prefix == 0 && r.dst.addr.is_ipv6() == v6));
        }
        for gw in gateways {
            let dst = if gw.is_ipv6() { "::/0" } else { "0.0.0.0/0" };
            if let Ok(dst) = dst.parse() {
                result
                    .routes
                    .retain(|r| !(r.dst.prefix == 0 && r.dst.addr.is_ipv6() == gw.is_ipv6()));
                result
                    .routes
                    .push(multus_crds::cni::Route::new(dst, Some(gw)));
            }
        }
        Ok(())
    }

    /// Undo a failed ADD: DEL every delegate tried so far, newest first. When everything was
    /// released the cache goes too; otherwise it stays for the runtime's DEL to retry.
    async fn rollback(
        &self,
        call: &Call<'_>,
        tried: &[Delegate],
        known: &[(&Delegate, &CniResult)],
        pod: &PodRef,
    ) {
        match self.del_delegates(call, &reversed(tried), known, pod).await {
            Ok(()) => {
                if let Err(e) = call.cache.remove_list(&call.inv.container_id) {
                    tracing::warn!(error = %e, "removing the delegate list after rollback");
                }
            }
            Err(e) => tracing::warn!(error = %e, "rollback left attachments for DEL"),
        }
    }

    // === DEL ===

    /// DEL `delegates` in the order given, continuing past failures; every record of a released
    /// attachment is removed. Each DEL's prevResult is its result in `known`, else its record's.
    async fn del_delegates(
        &self,
        call: &Call<'_>,
        delegates: &[Delegate],
        known: &[(&Delegate, &CniResult)],
        pod: &PodRef,
    ) -> Result<()> {
        self.del_delegates_noting(call, delegates, known, pod, &mut Vec::new(), None)
            .await
    }

    /// [`Engine::del_delegates`], also noting in `unreleased` the positions in `delegates` of
    /// those whose plugins failed. `early`: a process started for the first DEL before its call
    /// was built (the head start), used if it is the one that call needs, else killed.
    async fn del_delegates_noting(
        &self,
        call: &Call<'_>,
        delegates: &[Delegate],
        known: &[(&Delegate, &CniResult)],
        pod: &PodRef,
        unreleased: &mut Vec<usize>,
        early: Option<StartedPlugin>,
    ) -> Result<()> {
        let inv = call.inv;
        let mut errors = Vec::new();
        let failed = |d: &Delegate, source| {
            Error::attachment(Error::DelNetwork, pod, &d.status_name, &d.ifname, source)
        };
        // An unreadable record is no reason not to release the attachment.
        let cached_result = |d: &Delegate| {
            known
                .iter()
                .find(|(k, _)| k.is_same_attachment(d))
                .map(|(_, result)| (*result).clone())
                .or_else(|| {
                    call.cache
                        .read_cached_result(d, &inv.container_id)
                        .ok()
                        .flatten()
                })
        };
        // While an attachment's plugin runs, the files of the one released before it are
        // removed, and the one after it is made ready (its cached result read, its config
        // parsed, its first plugin call built): off the DEL's path.
        let mut released: Option<&Delegate> = None;
        let mut cached = delegates.first().and_then(cached_result);
        let mut ready: Option<Result<Ready>> = match (early, delegates.first()) {
            (Some(early), Some(d)) => {
                let started =
                    self.started_ahead(call, d, Command::Del, cached.as_ref(), false, Some(early));
                Some(started)
            }
            _ => None,
        };
        for (i, d) in delegates.iter().enumerate() {
            let prev_result = cached.take();
            let made_ready = ready.take();
            let deleting = async {
                let Ready { list, first } = match made_ready {
                    Some(ready) => ready?,
                    None => self.ready(call, d, Command::Del, prev_result.as_ref())?,
                };
                let rt = runtime_conf(inv, d);
                self.runner(call)
                    .del(&list, &rt, prev_result.as_ref(), first)
                    .await
            };
            let done = released.take();
            let files = async {
                let removed = done.map(|done| (done, Self::remove_files(call, done)));
                let next = delegates.get(i + 1);
                let next_cached = next.and_then(cached_result);
                let next_ready = next.map(|n| {
                    self.started_ahead(call, n, Command::Del, next_cached.as_ref(), true, None)
                });
                (removed, next_cached, next_ready)
            };
            let (outcome, (removed, next, next_ready)) = alongside(deleting, |_| files).await;
            cached = next;
            ready = next_ready;
            if let Some((done, Err(source))) = removed {
                errors.push(failed(done, source));
            }
            match outcome {
                Ok(()) => released = Some(d),
                Err(source) => {
                    unreleased.push(i);
                    errors.push(failed(d, source));
                }
            }
        }
        if let Some(done) = released
            && let Err(source) = Self::remove_files(call, done)
        {
            errors.push(failed(done, source));
        }
        several(errors)
    }

    /// `d`'s config and the first plugin call `command` makes on it (DEL's with `cached` as
    /// `prevResult`), built ahead of its turn: while the attachment before it runs.
    fn ready(
        &self,
        call: &Call<'_>,
        d: &Delegate,
        command: Command,
        cached: Option<&CniResult>,
    ) -> Result<Ready> {
        let list = parse_delegate(d)?;
        // A call that cannot be built ahead (its plugin missing, say) is built again at its
        // turn, where its error comes as it did before: for DEL, recorded while the list's
        // other plugins still run (an IPAM plugin must still release its address).
        let first = self
            .runner(call)
            .first_call(&list, &runtime_conf(call.inv, d), command, cached)
            .ok()
            .flatten();
        Ok(Ready { list, first })
    }

    /// [`Engine::ready`], with the first plugin's process started ahead
    /// ([`Runner::start_ahead`]): it loads while the caller works (`alongside`: while the
    /// attachment before runs), and is given its config, so can act, only at its turn
    /// (docs/decisions.md, "Plugins started ahead"). `early`: a process started before the
    /// attachment was known (the head start), used if it is the one needed, else killed.
    fn started_ahead(
        &self,
        call: &Call<'_>,
        d: &Delegate,
        command: Command,
        cached: Option<&CniResult>,
        alongside: bool,
        early: Option<StartedPlugin>,
    ) -> Result<Ready> {
        let mut ready = self.ready(call, d, command, cached)?;
        if let Some(first) = ready.first.as_mut().filter(|_| call.start_ahead) {
            let runner = self.runner(call);
            let rt = runtime_conf(call.inv, d);
            if let Some(early) = early {
                runner.adopt(first, command, &rt, early);
            }
            runner.start_ahead(first, command, &rt, alongside);
        }
        Ok(ready)
    }

    /// The files of an attachment whose DEL succeeded: its result record and device info.
    fn remove_files(call: &Call<'_>, d: &Delegate) -> Result<()> {
        call.cache.remove_result(d, &call.inv.container_id)?;
        if let Some(f) = &d.devinfo_file {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    }

    async fn del(&self, call: &Call<'_>, head: Option<HeadStart>) -> Result<()> {
        let inv = call.inv;
        let pod_ref = inv.pod().unwrap_or_default();
        // The list the thin plugin read to start DEL's first plugin before its runtime, else
        // read now. (The daemon starts that plugin at its turn: started here it would only
        // precede the read of one record, for a second parse of its config.)
        let HeadStart {
            process: early,
            list: listed,
            ..
        } = head.unwrap_or_default();
        let listed = listed.unwrap_or_else(|| {
            call.cache
                .read_list(&inv.container_id, &inv.ifname, &inv.args)
        })?;
        let mut delegates = match listed {
            CachedList::Found(list) => list.delegates.into_iter().rev().collect(),
            CachedList::Missing => Vec::new(),
            CachedList::Corrupt(why) => {
                tracing::warn!(reason = %why, "delegate list unreadable; using result records");
                Vec::new()
            }
        };
        if delegates.is_empty() {
            delegates = call.cache.delegates_from_results(&inv.container_id);
        }
        let mut guessed = false;
        if delegates.is_empty() {
            // Nothing cached: what the current config and pod say the attachments are. If even
            // that cannot be resolved, the error says what could not be released. The API is
            // only asked here, and an unreachable one must not block DEL.
            let kube = self.kube(call).await.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "Kubernetes client on DEL");
                None
            });
            let pod = match self.lookup_pod(kube, inv).await {
                Ok(Some(p)) if uid_matches(&p, &pod_ref.uid) => Some(p),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "pod lookup on DEL");
                    None
                }
            };
            delegates = resolve(&self.context(call, kube, pod.as_ref(), None))
                .await?
                .into_iter()
                .rev()
                .collect();
            guessed = true;
        }
        let mut outcome = self
            .del_delegates_noting(call, &delegates, &[], &pod_ref, &mut Vec::new(), early)
            .await;
        if guessed && let Err(e) = &outcome {
            // These attachments may never have existed (or a DEL already released them): a
            // plugin that is not idempotent must not block sandbox removal forever.
            tracing::warn!(error = %e, "DEL without a cache: releasing the configured networks failed");
            outcome = Ok(());
        }
        let keep = outcome.is_err() && call.config.retry_delete_on_error();
        if !keep {
            call.cache.remove_list(&inv.container_id)?;
        }
        outcome
    }

    // === CHECK ===

    async fn check(&self, call: &Call<'_>) -> Result<()> {
        let inv = call.inv;
        let pod_ref = inv.pod().unwrap_or_default();
        let delegates = match call
            .cache
            .read_list(&inv.container_id, &inv.ifname, &inv.args)?
        {
            // What an earlier attempt left is for DEL, not part of the pod's networks.
            CachedList::Found(list) => list.delegates.into_iter().filter(|d| !d.carried).collect(),
            _ => {
                let mut d = call.cache.delegates_from_results(&inv.container_id);
                d.reverse();
                d
            }
        };
        if delegates.is_empty() {
            return Err(Error::NoCachedAttachments {
                container_id: inv.container_id.clone(),
            });
        }
        for d in &delegates {
            self.check_one(call, d, &pod_ref).await?;
        }
        Ok(())
    }

    /// CHECK one attachment against its cached result.
    async fn check_one(&self, call: &Call<'_>, d: &Delegate, pod_ref: &PodRef) -> Result<()> {
        let inv = call.inv;
        let outcome = async {
            let list = parse_delegate(d)?;
            let cached = call
                .cache
                .read_cached_result(d, &inv.container_id)?
                .ok_or_else(|| Error::NoCachedAttachments {
                    container_id: inv.container_id.clone(),
                })?;
            self.runner(call)
                .check(&list, &runtime_conf(inv, d), &cached)
                .await
        }
        .await;
        outcome.map_err(|source| {
            Error::attachment(
                Error::CheckNetwork,
                pod_ref,
                &d.status_name,
                &d.ifname,
                source,
            )
        })
    }

    // === GC and STATUS ===

    /// Remove the temporary files of writes a killed plugin left; release every cached
    /// attachment of a container the runtime no longer lists in `cni.dev/valid-attachments`,
    /// whatever its network; then let every network's plugins collect their own garbage.
    async fn gc(&self, call: &Call<'_>) -> Result<()> {
        self.wait_readiness(call.config).await?;
        let swept = call.cache.sweep_leftovers(crate::cache::LEFTOVER_AGE);
        if swept > 0 {
            tracing::info!(swept, "removed temporary cache files of unfinished writes");
        }
        // The spec requires the list (empty when nothing is valid; `null` is how Go's libcni
        // writes an empty one). Read as empty when missing, a runtime's mistake would remove
        // every pod's attachments on the node.
        let listed: &[Value] = match call.config.extra.get("cni.dev/valid-attachments") {
            Some(Value::Array(listed)) => listed,
            Some(Value::Null) => &[],
            _ => {
                return Err(Error::ParseConfig(GC_WITHOUT_VALID_ATTACHMENTS.into()));
            }
        };
        let valid: BTreeSet<String> = listed
            .iter()
            .filter_map(|a| a.get("containerID").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let mut containers: BTreeSet<String> = call.cache.listed_containers().into_iter().collect();
        containers.extend(call.cache.all_results().into_iter().map(|r| r.container_id));
        let mut errors = Vec::new();
        for cid in containers.iter().filter(|c| !valid.contains(*c)) {
            // As every call for one container: not while an ADD, DEL or hot-plug of it runs.
            let _container = self.locks.lock(cid).await;
            let inv = Invocation {
                command: Command::Del,
                container_id: cid.clone(),
                netns: String::new(),
                // A GC names no interface; a Go Multus list's cluster network was eth0.
                ifname: crate::cache::GO_MULTUS_RUNTIME_IFNAME.to_owned(),
                args: String::new(),
                path: call.inv.path.clone(),
                config: Vec::new(),
            };
            let sub = Call {
                inv: &inv,
                config: call.config,
                version: call.version,
                cache: call.cache,
                path: call.path.clone(),
                kube: OnceCell::new_with(Some(None)),
                start_ahead: call.start_ahead,
            };
            // Errors name the pod the list recorded (a Go Multus list or records alone: none).
            let (delegates, pod) = match call.cache.read_list(cid, &inv.ifname, "")? {
                CachedList::Found(list) => (
                    list.delegates.into_iter().rev().collect(),
                    list.pod.unwrap_or_default(),
                ),
                _ => (call.cache.delegates_from_results(cid), PodRef::default()),
            };
            if let Err(e) = self.del_delegates(&sub, &delegates, &[], &pod).await {
                errors.push(e);
                continue;
            }
            call.cache.remove_list(cid)?;
        }
        // Plugin-level GC, once per network, with the attachments that remain.
        let mut networks: BTreeMap<String, (NetworkConfigList, BTreeSet<(String, String)>)> =
            BTreeMap::new();
        let mut remaining: Vec<(String, Delegate)> = call
            .cache
            .all_results()
            .into_iter()
            .filter_map(|r| Some((r.container_id, r.delegate?)))
            .collect();
        // What a delegate list names stays valid before its record exists: an ADD in progress,
        // or one a crash cut short until the runtime's DEL, must keep its address.
        for cid in call.cache.listed_containers() {
            if let Ok(CachedList::Found(list)) =
                call.cache
                    .read_list(&cid, crate::cache::GO_MULTUS_RUNTIME_IFNAME, "")
            {
                remaining.extend(list.delegates.into_iter().map(|d| (cid.clone(), d)));
            }
        }
        for (cid, d) in remaining {
            let Ok(list) = parse_delegate(&d) else {
                continue;
            };
            networks
                .entry(list.name().to_owned())
                .or_insert_with(|| (list, BTreeSet::new()))
                .1
                .insert((cid, d.ifname));
        }
        for (list, attachments) in networks.values() {
            let attachments: Vec<(String, String)> = attachments.iter().cloned().collect();
            if let Err(e) = self.runner(call).gc(list, &attachments).await {
                errors.push(e);
            }
        }
        several(errors)
    }

    /// STATUS of the cluster network's plugins.
    async fn status(&self, call: &Call<'_>) -> Result<()> {
        self.wait_readiness(call.config).await?;
        let kube = self.kube(call).await?;
        let delegates = resolve(&self.context(call, kube, None, None)).await?;
        let Some(master) = delegates.first() else {
            return Ok(());
        };
        self.runner(call).status(&parse_delegate(master)?).await
    }
}

/// What is made ready while an attachment's plugin runs ([`Engine::add_recording`]).
// One per attachment, moved once: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Ahead<'c> {
    /// The next attachment.
    Next(Result<Ready>),
    /// For the last attachment, its own record (`None`: written in one step after all).
    OwnRecord(Option<ReadyResult<'c>>),
}

/// An attachment made ready to run: its config, and its first plugin call.
struct Ready {
    list: NetworkConfigList,
    first: Option<PluginCall>,
}

fn reversed(delegates: &[Delegate]) -> Vec<Delegate> {
    delegates.iter().rev().cloned().collect()
}

fn parse_delegate(d: &Delegate) -> Result<NetworkConfigList> {
    NetworkConfigList::from_value_any(d.config.clone()).map_err(|e| Error::ParseDelegate {
        what: format!("of network {}", d.status_name),
        message: e.message(),
    })
}

fn runtime_conf<'a>(inv: &'a Invocation, d: &'a Delegate) -> RuntimeConf<'a> {
    RuntimeConf {
        container_id: &inv.container_id,
        netns: &inv.netns,
        ifname: &d.ifname,
        cni_args: &d.cni_args,
        capability_args: &d.capability_args,
    }
}

/// Copy the device plugin's device-info file to the attachment's CNI device-info file.
fn copy_device_info(devinfo_dir: &Path, d: &Delegate) {
    let (Some(target), Some(id), Some(resource)) =
        (&d.devinfo_file, &d.device_id, &d.resource_name)
    else {
        return;
    };
    let source = devinfo_dir
        .join("dp")
        .join(format!("{resource}-{id}-device.json").replace('/', "-"));
    if let Ok(bytes) = std::fs::read(source) {
        let _ = crate::cache::write_atomic(target, &bytes);
    }
}

/// What ADD returns for a pod that no longer exists (as Multus does): the runtime's interface
/// with an unspecified address.
fn empty_result(inv: &Invocation) -> CniResult {
    let mut r = CniResult::new(CniVersion::V1_0_0);
    r.interfaces.push(Interface {
        name: inv.ifname.clone(),
        sandbox: inv.netns.clone(),
        ..Interface::default()
    });
    if let (Ok(address), Ok(gateway)) = ("0.0.0.0/0".parse(), "0.0.0.0".parse()) {
        r.ips.push(IpConfig {
            address,
            gateway: Some(gateway),
            interface: Some(0),
        });
    }
    r
}

/// The pod is the one the request names: its UID matches `CNI_ARGS`' (when that gives one).
fn require_uid(pod: &Pod, pod_ref: &PodRef) -> Result<()> {
    if uid_matches(pod, &pod_ref.uid) {
        return Ok(());
    }
    Err(Error::PodUidMismatch {
        namespace: pod_ref.namespace.clone(),
        name: pod_ref.name.clone(),
        expected: pod_ref.uid.clone(),
        found: pod.metadata.uid.clone().unwrap_or_default(),
    })
}

/// Refuse, before anything runs, an attachment whose interface name the pod's namespace already
/// has (one visit of the namespace for all of them).
fn refuse_taken_ifnames(
    inv: &Invocation,
    delegates: &[Delegate],
    pod_ref: &PodRef,
    visit: netns::Visit,
) -> Result<()> {
    let check = start_ifname_check(inv, visit)?;
    judge_ifnames(check, inv, delegates, pod_ref)
}

/// Start looking at the interface names of the pod's namespace.
fn start_ifname_check(inv: &Invocation, visit: netns::Visit) -> Result<netns::LinkCheck> {
    netns::LinkCheck::start(&inv.netns, visit).map_err(|source| netns_error(inv, source))
}

/// The check's answer: an error naming the first attachment whose name is taken.
fn judge_ifnames(
    check: netns::LinkCheck,
    inv: &Invocation,
    delegates: &[Delegate],
    pod_ref: &PodRef,
) -> Result<()> {
    let taken = check
        .finish()
        .map_err(|source| netns_error(inv, source).in_pod(pod_ref))?;
    match delegates.iter().find(|d| taken.contains(&d.ifname)) {
        None => Ok(()),
        Some(d) => Err(Error::attachment(
            Error::AddNetwork,
            pod_ref,
            &d.status_name,
            &d.ifname,
            Error::InterfaceExists {
                ifname: d.ifname.clone(),
                netns: inv.netns.clone(),
            },
        )),
    }
}

fn netns_error(inv: &Invocation, source: std::io::Error) -> Error {
    Error::Netns {
        netns: inv.netns.clone(),
        source,
    }
}

/// An ADD result as printed, in the cniVersion the caller asked for.
fn print_result(result: &CniResult, version: CniVersion) -> Result<String> {
    result
        .convert(version)
        .and_then(|r| r.to_json_string(version))
        .map_err(|e| Error::Serialize {
            what: "result",
            message: e.to_string(),
        })
}

/// The VERSION answer.
pub fn version_text() -> String {
    let versions: Vec<String> = CniVersion::SUPPORTED
        .iter()
        .map(ToString::to_string)
        .collect();
    serde_json::json!({"cniVersion": CniVersion::CURRENT.to_string(), "supportedVersions": versions})
        .to_string()
}
