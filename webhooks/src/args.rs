//! The command line (every flag also read from a `MULTUS_*` variable) and the process wiring:
//! one shutdown signal handed to the server and the watches, one join.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use multus_crds::rules::isolation::GlobalNamespaces;
use multus_crds::rules::pod::PodRuleOptions;
use multus_crds::sriov::SupportedNics;
use tokio::sync::watch;

use crate::context::{Context, Settings};
use crate::server::{self, Limits};
use crate::tls::{self, ReloadingCertificate};
use crate::{Error, watch as watches};

/// The longest timeout the flags take: a day.
const LONGEST_TIMEOUT: f64 = 86_400.0;

/// A timeout flag's value: a number of seconds above 0, at most a day (a value past what a
/// `Duration` holds used to panic at start).
fn timeout_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds > 0.0 && seconds <= LONGEST_TIMEOUT {
        Ok(seconds)
    } else {
        Err(format!(
            "{text} is not above 0 and at most {LONGEST_TIMEOUT} seconds"
        ))
    }
}

/// `seconds` as a `Duration`, kept within what the flags allow (for `Args` built in code).
fn seconds(seconds: f64) -> Duration {
    if seconds.is_nan() {
        return Duration::from_millis(1);
    }
    Duration::from_secs_f64(seconds.clamp(0.001, LONGEST_TIMEOUT))
}

/// Name of upstream's supported-NIC ConfigMap in the operator namespace.
const SUPPORTED_NICS_CONFIGMAP: &str = "supported-nic-ids";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// multus-webhook: admission for NetworkAttachmentDefinitions, pods, workloads and SR-IOV objects.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct Args {
    /// Address to serve HTTPS on (reviews, /healthz, /readyz, /metrics).
    #[arg(long, env = "MULTUS_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM certificate chain; reloaded when the file changes.
    #[arg(
        long,
        env = "MULTUS_TLS_CERT_FILE",
        default_value = "/etc/multus-webhook/tls/tls.crt"
    )]
    pub tls_cert_file: PathBuf,
    /// PEM private key; reloaded when the file changes.
    #[arg(
        long,
        env = "MULTUS_TLS_KEY_FILE",
        default_value = "/etc/multus-webhook/tls/tls.key"
    )]
    pub tls_key_file: PathBuf,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MULTUS_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest time one review may take, in seconds (keep it below the configuration's timeoutSeconds).
    #[arg(long, env = "MULTUS_REQUEST_TIMEOUT", default_value_t = 8.0, value_parser = timeout_seconds)]
    pub request_timeout: f64,
    /// Longest time a live lookup of a NAD missing from the cache may take, in seconds.
    #[arg(long, env = "MULTUS_LIVE_LOOKUP_TIMEOUT", default_value_t = 2.0, value_parser = timeout_seconds)]
    pub live_lookup_timeout: f64,
    /// Multus' namespaceIsolation: pods may only reference NADs of their own namespace (and the global ones).
    #[arg(long, env = "MULTUS_NAMESPACE_ISOLATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub namespace_isolation: bool,
    /// Multus' globalNamespaces (comma-separated), open to every pod under namespace isolation.
    #[arg(long, env = "MULTUS_GLOBAL_NAMESPACES")]
    pub global_namespaces: Option<String>,
    /// Multus' multusNamespace: where the default-network annotation's NAD is looked up by default.
    #[arg(long, env = "MULTUS_NAMESPACE", default_value = "kube-system")]
    pub multus_namespace: String,
    /// Review SR-IOV objects and watch Nodes, SriovNetworkNodeStates and policies for them.
    #[arg(long, env = "MULTUS_SRIOV", default_value_t = true, action = clap::ArgAction::Set)]
    pub sriov: bool,
    /// Namespace of the SR-IOV operator.
    #[arg(long, env = "MULTUS_SRIOV_OPERATOR_NAMESPACE", default_value = multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE)]
    pub sriov_operator_namespace: String,
    /// Accept any NIC model in SR-IOV policies (upstream's DEV_MODE).
    #[arg(long, env = "MULTUS_DEV_MODE", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev_mode: bool,
    /// Threads serving reviews; 0 means one per two CPUs (at least one). A review costs 15–22 µs
    /// of CPU, so one thread serves ~50,000 a second; more threads only compete for the CPUs
    /// with what shares the node (the API server itself, on a control-plane node) and lengthen
    /// the tail: p99 at concurrency 16 was 1.6–4.0 ms with two threads on two CPUs and 1.4–3.0
    /// ms with one (docs/benchmarks.md).
    #[arg(long, env = "MULTUS_WEBHOOK_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// Log format.
    #[arg(long, env = "MULTUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "MULTUS_LOG", default_value = "info")]
    pub log: String,
}

impl Args {
    /// The request limits these flags describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            request_timeout: seconds(self.request_timeout),
            ..Limits::default()
        }
    }

    /// The rule settings these flags describe (the supported NICs are the built-in list).
    pub fn settings(&self) -> Settings {
        Settings {
            pod_rules: PodRuleOptions {
                namespace_isolation: self.namespace_isolation,
                global_namespaces: GlobalNamespaces::from_setting(
                    self.global_namespaces.as_deref(),
                ),
                multus_namespace: self.multus_namespace.clone(),
                ..PodRuleOptions::default()
            },
            operator_namespace: self.sriov_operator_namespace.clone(),
            supported_nics: (!self.dev_mode).then(SupportedNics::builtin),
            live_lookup_timeout: seconds(self.live_lookup_timeout),
        }
    }

    /// The tokio runtime for `--worker-threads`.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, Error> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(worker_threads(
            self.worker_threads,
            std::thread::available_parallelism().map_or(1, usize::from),
        ));
        builder.enable_all().build().map_err(Error::BuildRuntime)
    }

    /// Run until SIGTERM or SIGINT.
    pub async fn run(self) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(ReloadingCertificate::load(
            &self.tls_cert_file,
            &self.tls_key_file,
            provider.clone(),
        )?);
        let tls = Arc::new(tls::server_config(certificate, provider)?);
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| Error::BuildClient(kube::Error::InferConfig(e)))?;
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(multus_crds::constants::user_agent::WEBHOOK),
        ));
        let client = kube::Client::try_from(config).map_err(Error::BuildClient)?;

        let mut settings = self.settings();
        if self.sriov && !self.dev_mode {
            settings.supported_nics =
                Some(supported_nics(&client, &settings.operator_namespace).await?);
        }
        let ctx = Arc::new(Context::for_cluster(settings, client.clone(), self.sriov));

        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(Error::Accept)?;
        tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, sriov = self.sriov, "serving admission reviews");

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let (served, ()) = tokio::join!(
            server::serve(
                listener,
                tls,
                ctx.clone(),
                self.limits(),
                stopped(stop_rx.clone())
            ),
            watches::run(ctx, client, self.sriov, stopped(stop_rx)),
        );
        served
    }
}

/// The built-in list, replaced by upstream's ConfigMap when the operator namespace has one.
async fn supported_nics(client: &kube::Client, namespace: &str) -> Result<SupportedNics, Error> {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let read_error = |message: String| Error::ReadSupportedNics {
        namespace: namespace.to_owned(),
        name: SUPPORTED_NICS_CONFIGMAP.to_owned(),
        message,
    };
    match api.get_opt(SUPPORTED_NICS_CONFIGMAP).await {
        Ok(Some(cm)) => SupportedNics::from_config_map_data(&cm.data.unwrap_or_default())
            .map_err(|e| read_error(e.to_string())),
        Ok(None) => Ok(SupportedNics::builtin()),
        // Without read access to ConfigMaps there (or without the namespace), use the built-in list.
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => {
            tracing::info!(
                namespace,
                "no supported-NIC ConfigMap readable; using the built-in list"
            );
            Ok(SupportedNics::builtin())
        }
        Err(e) => Err(read_error(e.to_string())),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
}

/// Install the tracing subscriber for these flags.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Worker threads for `--worker-threads requested` on a machine with `cpus` CPUs.
fn worker_threads(requested: usize, cpus: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        (cpus / 2).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{Args, seconds, timeout_seconds, worker_threads};
    use clap::Parser;

    #[test]
    fn timeouts_outside_what_a_duration_holds_are_refused_naming_the_flag() {
        assert_eq!(timeout_seconds("2.5"), Ok(2.5));
        for bad in ["0", "-1", "1e30", "inf", "NaN", "soon"] {
            assert!(timeout_seconds(bad).is_err(), "{bad}");
        }
        let e = Args::try_parse_from(["multus-webhook", "--request-timeout", "1e30"]).unwrap_err();
        assert!(e.to_string().contains("--request-timeout"), "{e}");
        // Built in code past the checks, still no panic.
        assert_eq!(seconds(f64::INFINITY).as_secs(), 86_400);
        assert_eq!(seconds(f64::NAN).as_millis(), 1);
    }

    #[test]
    fn one_worker_per_two_cpus_unless_asked() {
        assert_eq!(worker_threads(0, 1), 1);
        assert_eq!(worker_threads(0, 2), 1);
        assert_eq!(worker_threads(0, 16), 8);
        assert_eq!(worker_threads(3, 2), 3);
    }
}
