//! `multus-operator`: the operator's processes: `agent` (one per node), `controller` (the
//! cluster controller), and `run` (both, offline, on a folder of manifests).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use multus_crds::constants::user_agent;
use multus_operator::agent::cni;
use multus_operator::agent::sriov::discovery::IpLinkAltNames;
use multus_operator::agent::sriov::{self, Config, Context, DevicePluginMode, SriovMetrics};
use multus_operator::source::SourceSpec;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "multus-operator", version, about)]
struct Cli {
    /// Log format: human-readable text or JSON lines.
    #[arg(long, env = "MULTUS_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once at start; the size difference between subcommands' arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// The node agent (one per node): CNI configuration, NAD files and the thick-plugin daemon;
    /// SR-IOV discovery, VF configuration and device plugin.
    Agent(AgentArgs),
    /// The cluster controller: SriovNetworks → NADs, policies → NodeState specs (leader-elected).
    Controller(ControllerArgs),
    /// The controller and the agents of every node of a folder of manifests, offline: writes each
    /// node's CNI configs, device-plugin pools and NodeState under the host root and prints what
    /// it did and what it rejected.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The folder of manifests (`dir:PATH`): Nodes, NADs, SR-IOV objects, pods, and the nodes'
    /// fake host trees under `nodes/<node>/`.
    #[arg(long, env = "MULTUS_SOURCE")]
    source: SourceSpec,
    /// Output root: each node's files under `<host-root>/<node>/`, the cluster's under
    /// `<host-root>/cluster/`.
    #[arg(long, env = "MULTUS_HOST_ROOT")]
    host_root: PathBuf,
    /// One pass, then exit (0 even when objects were rejected: they are reported). Without it,
    /// the folder is followed and every change runs another pass.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The Multus config written on every node: thin (`type: multus`) or thick (`multus-shim`).
    #[arg(long, env = "MULTUS_CNI_MODE", default_value = "thick")]
    cni_mode: CniModeArg,
}

/// The cluster-wide settings the controller and the offline run share.
#[derive(clap::Args)]
struct ClusterArgs {
    /// The operator namespace (policies, NodeStates, the controller's Lease).
    #[arg(long, env = "MULTUS_NAMESPACE", default_value = multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE)]
    namespace: String,
    /// Device-plugin resource prefix written into the NADs' resourceName annotation.
    #[arg(long, env = "MULTUS_RESOURCE_PREFIX", default_value = multus_crds::constants::DEFAULT_RESOURCE_PREFIX)]
    resource_prefix: String,
    /// Labels (`k=v,k2=v2`) a node needs to get a NodeState; default: Linux workers, as upstream.
    #[arg(
        long,
        env = "MULTUS_NODE_SELECTOR",
        default_value = "node-role.kubernetes.io/worker=,kubernetes.io/os=linux"
    )]
    node_selector: String,
}

#[derive(clap::Args)]
struct ControllerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "MULTUS_POD_NAME")]
    identity: String,
    /// Seconds a Lease holder that stopped renewing keeps it.
    #[arg(long, env = "MULTUS_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds the NodeState of a vanished node is kept.
    #[arg(
        long,
        env = "MULTUS_STATE_REMOVAL_DELAY_SECONDS",
        default_value_t = 300
    )]
    state_removal_delay_seconds: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "MULTUS_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    health_addr: std::net::SocketAddr,
    /// Kubeconfig file; without it, in-cluster configuration (or $KUBECONFIG).
    #[arg(long, env = "MULTUS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PluginArg {
    /// Serve the VF pools to kubelet from this process.
    Builtin,
    /// Leave that to the upstream sriov-network-device-plugin and write its config file.
    External,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// This node's name (the NodeState's name).
    #[arg(long, env = "MULTUS_NODE_NAME")]
    node_name: String,
    /// The host's root filesystem as mounted in the agent's container.
    #[arg(long, env = "MULTUS_HOST_ROOT", default_value = "/")]
    host_root: PathBuf,
    /// sysfs root; default `<host-root>/sys`.
    #[arg(long, env = "MULTUS_SYSFS_ROOT")]
    sysfs_root: Option<PathBuf>,
    /// Namespace of the SriovNetworkNodeStates (the operator's namespace).
    #[arg(long, env = "MULTUS_NAMESPACE", default_value = multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE)]
    namespace: String,
    /// Device-plugin resource prefix. Default `openshift.io`, upstream's operator default, so
    /// NADs and pod requests written for upstream name the same resources.
    #[arg(long, env = "MULTUS_RESOURCE_PREFIX", default_value = multus_crds::constants::DEFAULT_RESOURCE_PREFIX)]
    resource_prefix: String,
    /// Who serves the VF pools to kubelet.
    #[arg(long, env = "MULTUS_DEVICE_PLUGIN", default_value = "builtin")]
    device_plugin: PluginArg,
    /// Seconds between looks at the node (discovery, link health, spec).
    #[arg(long, env = "MULTUS_RESYNC_SECONDS", default_value_t = 5)]
    resync_seconds: u64,
    /// Longest wait, in seconds, for pods evicted before a PF change to leave.
    #[arg(long, env = "MULTUS_EVICTION_TIMEOUT_SECONDS", default_value_t = 300)]
    eviction_timeout_seconds: u64,
    /// Kubeconfig file; without it, in-cluster configuration (or $KUBECONFIG).
    #[arg(long, env = "MULTUS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    cni: CniArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum CniModeArg {
    /// `type: multus`: the plugin does everything in-process.
    Thin,
    /// `type: multus-shim`: the plugin forwards to the daemon this agent hosts.
    Thick,
    /// No CNI side (SR-IOV only).
    Off,
}

/// The CNI side of the agent.
#[derive(clap::Args)]
struct CniArgs {
    /// Where NADs and pods come from: `kube` (the API server) or `dir:PATH` (a directory of
    /// manifests, followed for changes; no API server, no SR-IOV side).
    #[arg(long, env = "MULTUS_SOURCE", default_value = "kube")]
    source: SourceSpec,
    /// Run the SR-IOV side (needs the API server).
    #[arg(long, env = "MULTUS_SRIOV", default_value_t = true, action = clap::ArgAction::Set)]
    sriov: bool,
    /// Thin plugin, thick plugin with the daemon hosted here, or no CNI side.
    #[arg(long, env = "MULTUS_CNI_MODE", default_value = "thick")]
    cni_mode: CniModeArg,
    /// The `multus` binary to install into the host's CNI bin dir (atomically).
    #[arg(long, env = "MULTUS_BINARY")]
    multus_binary: Option<PathBuf>,
    /// The `multus-shim` binary (the thick plugin's client) to install beside it; default: the
    /// `multus` binary, which can serve as the shim too, only slower to start. Only with
    /// `--multus-binary`: the shim hands what it does not forward to the `multus` beside it.
    #[arg(long, env = "MULTUS_SHIM_BINARY", requires = "multus_binary")]
    multus_shim_binary: Option<PathBuf>,
    /// The primary CNI config's file name; default: the first `.conf`/`.conflist`.
    #[arg(long, env = "MULTUS_PRIMARY_CONFIG")]
    primary_config: Option<String>,
    /// Readiness indicator file (host path): 00-multus is written once it exists.
    #[arg(long, env = "MULTUS_READINESS_INDICATOR_FILE")]
    readiness_indicator_file: Option<String>,
    /// `namespaceIsolation: true` in the generated config.
    #[arg(long, env = "MULTUS_NAMESPACE_ISOLATION")]
    namespace_isolation: bool,
    /// `globalNamespaces` in the generated config.
    #[arg(long, env = "MULTUS_GLOBAL_NAMESPACES")]
    global_namespaces: Option<String>,
    /// `logLevel` in the generated config (debug, verbose, error, panic).
    #[arg(long, env = "MULTUS_PLUGIN_LOG_LEVEL")]
    plugin_log_level: Option<String>,
    /// `logFile` in the generated config.
    #[arg(long, env = "MULTUS_PLUGIN_LOG_FILE")]
    plugin_log_file: Option<String>,
    /// Name the generated network after the primary instead of `multus-cni-network`.
    #[arg(long, env = "MULTUS_OVERRIDE_NETWORK_NAME")]
    override_network_name: bool,
    /// The service account whose token and CA go into the thin plugin's kubeconfig.
    #[arg(long, env = "MULTUS_SERVICE_ACCOUNT_DIR", default_value = multus_operator::agent::cni::kubeconfig::DEFAULT_SERVICE_ACCOUNT_DIR)]
    service_account_dir: PathBuf,
    /// API server URL for the plugin's kubeconfig; default from KUBERNETES_SERVICE_HOST/PORT.
    #[arg(long, env = "MULTUS_KUBECONFIG_SERVER")]
    kubeconfig_server: Option<String>,
    /// `insecure-skip-tls-verify` in the plugin's kubeconfig instead of the CA.
    #[arg(long, env = "MULTUS_SKIP_TLS_VERIFY")]
    skip_tls_verify: bool,
    /// CNI calls the daemon runs at once.
    #[arg(long, env = "MULTUS_DAEMON_MAX_CONCURRENT", default_value_t = 16)]
    daemon_max_concurrent: usize,
    /// CNI calls waiting for a slot; beyond, calls are refused (CNI error 11, try again later).
    #[arg(long, env = "MULTUS_DAEMON_MAX_QUEUED", default_value_t = 256)]
    daemon_max_queued: usize,
    /// `/healthz`, `/readyz`, `/metrics` address.
    #[arg(long, env = "MULTUS_HEALTH_ADDR", default_value = "0.0.0.0:9190")]
    health_addr: std::net::SocketAddr,
    /// At start, remove the plugin's temporary cache files (of writes a killed plugin never
    /// finished) whose inode is at least this old. Keep it longer than any CNI call: a smaller
    /// value can remove a write in progress, and fail that call.
    #[arg(
        long,
        env = "MULTUS_CACHE_LEFTOVER_AGE_SECONDS",
        default_value_t = 3600
    )]
    cache_leftover_age_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format, matches!(cli.command, Command::Run(_)));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "multus-operator starting"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match cli.command {
        Command::Agent(args) => agent(args, shutdown).await,
        Command::Controller(args) => controller(args, shutdown).await,
        Command::Run(args) => run(args, shutdown).await,
    }
}

async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    use multus_operator::offline::{self, Options, Runner};
    let SourceSpec::Dir(source) = args.source else {
        anyhow::bail!("`run` reads a folder: --source dir:PATH");
    };
    let cni_mode = match args.cni_mode {
        CniModeArg::Thin => cni::multusconf::Mode::Thin,
        CniModeArg::Thick => cni::multusconf::Mode::Thick,
        CniModeArg::Off => anyhow::bail!("`run` writes the CNI side: --cni-mode thin or thick"),
    };
    let runner = Runner::new(Options {
        source,
        host_root: args.host_root,
        namespace: args.cluster.namespace,
        resource_prefix: args.cluster.resource_prefix,
        node_selector: parse_selector(&args.cluster.node_selector),
        cni_mode,
        debounce: Duration::from_millis(200),
    })?;
    let print = |report: &offline::summary::PassReport| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(report.to_text().as_bytes());
        let _ = out.flush();
    };
    let on_error = |error: &offline::OfflineError| tracing::error!(%error, "pass failed");
    offline::run(runner, args.once, print, on_error, shutdown)
        .await
        .context("offline run")
}

/// `k=v,k2=v2` (a bare `k` means `k=`).
fn parse_selector(text: &str) -> std::collections::BTreeMap<String, String> {
    text.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

async fn controller(args: ControllerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    use multus_operator::controller::{self, Config, Context};
    let client = kube_client(args.kubeconfig.as_deref(), user_agent::CONTROLLER).await?;
    let mut config = Config::new(&args.cluster.namespace, &args.identity);
    config.resource_prefix = args.cluster.resource_prefix;
    config.node_selector = parse_selector(&args.cluster.node_selector);
    config.lease.duration = Duration::from_secs(args.lease_duration_seconds.max(2));
    config.lease.renew = config.lease.duration / 3;
    config.state_removal_delay = Duration::from_secs(args.state_removal_delay_seconds);
    config.health_addr = Some(args.health_addr);
    let (ctx, leader) = Context::new(client, config);
    controller::run(ctx, leader, shutdown)
        .await
        .context("controller")
}

async fn agent(args: AgentArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = match args.cni.source {
        SourceSpec::Kube => Some(kube_client(args.kubeconfig.as_deref(), user_agent::AGENT).await?),
        SourceSpec::Dir(_) => None,
    };
    // One health server per process: the CNI side's when it runs, reporting the SR-IOV side's
    // metrics and readiness too; else the SR-IOV side's own.
    let sriov_metrics = (client.is_some() && args.cni.sriov).then(|| Arc::new(SriovMetrics::new()));
    let cni = cni_agent(
        &args,
        client.clone(),
        sriov_metrics.clone(),
        shutdown.clone(),
    );
    let sriov = async {
        match (&client, sriov_metrics) {
            (Some(client), Some(metrics)) => {
                sriov_agent(&args, client.clone(), metrics, shutdown.clone()).await
            }
            _ => Ok(()),
        }
    };
    // One join: the first side to fail stops the other.
    let stop_on_error = |r: anyhow::Result<()>| {
        if r.is_err() {
            shutdown.cancel();
        }
        r
    };
    let (cni, sriov) = tokio::join!(async { stop_on_error(cni.await) }, async {
        stop_on_error(sriov.await)
    });
    cni.and(sriov)
}

async fn cni_agent(
    args: &AgentArgs,
    client: Option<kube::Client>,
    sriov_metrics: Option<Arc<SriovMetrics>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let c = &args.cni;
    let mode = match c.cni_mode {
        CniModeArg::Thin => cni::multusconf::Mode::Thin,
        CniModeArg::Thick => cni::multusconf::Mode::Thick,
        CniModeArg::Off => return Ok(()),
    };
    let mut config = cni::Config::for_host(&args.node_name, &args.host_root, mode);
    config.multus_binary.clone_from(&c.multus_binary);
    config.multus_shim_binary.clone_from(&c.multus_shim_binary);
    config
        .readiness_indicator_file
        .clone_from(&c.readiness_indicator_file);
    config.health_addr = Some(c.health_addr);
    config.cache_leftover_age = std::time::Duration::from_secs(c.cache_leftover_age_seconds);
    if let Some(m) = sriov_metrics {
        config.health_parts.0.push(m);
    }
    config.daemon = cni::DaemonLimits {
        max_concurrent: c.daemon_max_concurrent.max(1),
        max_queued: c.daemon_max_queued,
    };
    let m = &mut config.multus_config;
    m.primary.clone_from(&c.primary_config);
    m.namespace_isolation = c.namespace_isolation;
    m.global_namespaces.clone_from(&c.global_namespaces);
    m.log_level.clone_from(&c.plugin_log_level);
    m.log_file.clone_from(&c.plugin_log_file);
    m.override_network_name = c.override_network_name;
    if mode == cni::multusconf::Mode::Thin && client.is_some() {
        config.kubeconfig = Some(cni::kubeconfig::KubeconfigSettings {
            service_account_dir: c.service_account_dir.clone(),
            server: c.kubeconfig_server.clone(),
            skip_tls_verify: c.skip_tls_verify,
            path: config.cni_conf_dir.join("multus.d/multus.kubeconfig"),
        });
    }
    cni::run(config, c.source.clone(), client, shutdown)
        .await
        .context("CNI agent")
}

async fn sriov_agent(
    args: &AgentArgs,
    client: kube::Client,
    metrics: Arc<SriovMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut config = Config::for_host(&args.node_name, &args.host_root);
    if let Some(sysfs) = &args.sysfs_root {
        config.sysfs_root.clone_from(sysfs);
    }
    config.namespace.clone_from(&args.namespace);
    config.resource_prefix.clone_from(&args.resource_prefix);
    config.device_plugin = match args.device_plugin {
        PluginArg::Builtin => DevicePluginMode::Builtin,
        PluginArg::External => DevicePluginMode::External,
    };
    config.resync = Duration::from_secs(args.resync_seconds.max(1));
    config.eviction_timeout = Duration::from_secs(args.eviction_timeout_seconds);
    if matches!(args.cni.cni_mode, CniModeArg::Off) {
        config.health_addr = Some(args.cni.health_addr);
    }
    let ctx = Context {
        config,
        client,
        alt_names: Arc::new(IpLinkAltNames),
        metrics,
    };
    sriov::run(ctx, shutdown).await.context("SR-IOV agent")
}

async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    user_agent: &'static str,
) -> anyhow::Result<kube::Client> {
    let mut config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    // The agent answers the runtime (the hosted daemon's CNI calls) and kubelet within seconds:
    // kube's default layer retries 429/503/504 up to 15 times with backoff growing to 1000 s.
    // Its loops retry at their own level (watch backoff, the next pass, the eviction deadline).
    if user_agent == user_agent::AGENT {
        config.default_retry = false;
    }
    // Which component made a request, in audit logs and the RBAC test.
    config.headers.push((
        hyper::header::USER_AGENT,
        hyper::header::HeaderValue::from_static(user_agent),
    ));
    Ok(kube::Client::try_from(config)?)
}

/// The one shutdown signal: SIGTERM or Ctrl-C cancels the token every task watches.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Logs go to standard output, except for `run`, whose standard output is its summary.
fn init_tracing(format: LogFormat, to_stderr: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = move || -> Box<dyn std::io::Write> {
        if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
