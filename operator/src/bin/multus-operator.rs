//! `multus-operator`: the operator's long-running processes. Today the `agent` subcommand (the
//! SR-IOV side of the node agent); `controller` and `run` join later.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use multus_operator::agent::sriov::discovery::IpLinkAltNames;
use multus_operator::agent::sriov::{self, Config, Context, DevicePluginMode};
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

#[derive(Subcommand)]
enum Command {
    /// The node agent (one per node): SR-IOV discovery, VF configuration and device plugin.
    Agent(AgentArgs),
    /// The cluster controller: SriovNetworks → NADs, policies → NodeState specs (leader-elected).
    Controller(ControllerArgs),
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// The operator namespace (policies, NodeStates, the Lease).
    #[arg(long, env = "MULTUS_NAMESPACE", default_value = multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE)]
    namespace: String,
    /// Device-plugin resource prefix written into the NADs' resourceName annotation.
    #[arg(long, env = "MULTUS_RESOURCE_PREFIX", default_value = multus_crds::constants::DEFAULT_RESOURCE_PREFIX)]
    resource_prefix: String,
    /// Labels (`k=v,k2=v2`) a node needs to get a NodeState; default: Linux workers, as upstream.
    #[arg(long, env = "MULTUS_NODE_SELECTOR", default_value = "node-role.kubernetes.io/worker=,kubernetes.io/os=linux")]
    node_selector: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "MULTUS_POD_NAME")]
    identity: String,
    /// Seconds a Lease holder that stopped renewing keeps it.
    #[arg(long, env = "MULTUS_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds the NodeState of a vanished node is kept.
    #[arg(long, env = "MULTUS_STATE_REMOVAL_DELAY_SECONDS", default_value_t = 300)]
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "multus-operator starting"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match cli.command {
        Command::Agent(args) => agent(args, shutdown).await,
        Command::Controller(args) => controller(args, shutdown).await,
    }
}

async fn controller(args: ControllerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    use multus_operator::controller::{self, Config, Context};
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let mut config = Config::new(&args.namespace, &args.identity);
    config.resource_prefix = args.resource_prefix;
    config.node_selector = args
        .node_selector
        .split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    config.lease.duration = Duration::from_secs(args.lease_duration_seconds.max(2));
    config.lease.renew = config.lease.duration / 3;
    config.state_removal_delay = Duration::from_secs(args.state_removal_delay_seconds);
    config.health_addr = Some(args.health_addr);
    let (ctx, leader) = Context::new(client, config);
    controller::run(ctx, leader, shutdown).await.context("controller")
}

async fn agent(args: AgentArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let mut config = Config::for_host(&args.node_name, &args.host_root);
    if let Some(sysfs) = args.sysfs_root {
        config.sysfs_root = sysfs;
    }
    config.namespace = args.namespace;
    config.resource_prefix = args.resource_prefix;
    config.device_plugin = match args.device_plugin {
        PluginArg::Builtin => DevicePluginMode::Builtin,
        PluginArg::External => DevicePluginMode::External,
    };
    config.resync = Duration::from_secs(args.resync_seconds.max(1));
    config.eviction_timeout = Duration::from_secs(args.eviction_timeout_seconds);
    let ctx = Context {
        config,
        client,
        alt_names: Arc::new(IpLinkAltNames),
    };
    sriov::run(ctx, shutdown).await.context("SR-IOV agent")
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
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

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
