//! The `multus` binary's behaviour as a CNI plugin: read the request, pick thin or shim from the
//! config's `type`, print the result or the CNI error object, and choose the exit status.

use std::io::Write;

use multus_crds::cni::CniVersion;
use multus_crds::multus_config::{LogLevel, MultusConfig};
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::engine::{Engine, EngineOptions, HeadStart, version_text};
use crate::env::{Command, Invocation};
use crate::error::Error;

/// What to print and how to exit.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub success: bool,
}

/// Set up logging from the Multus keys: `logLevel` (`panic` — the default — is silent,
/// `error`, `verbose`, `debug`), `logToStderr` and `logFile` (appended to, rotated as
/// `logOptions` says: [`crate::logfile`]).
pub fn init_logging(config: &MultusConfig) {
    let level = match config.log_level() {
        LogLevel::Panic => return,
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Verbose => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    let file = config
        .log_file
        .as_deref()
        .filter(|f| !f.is_empty())
        .and_then(|f| {
            let limits = crate::logfile::Limits::from_options(&config.log_options());
            crate::logfile::RotatingFile::open(f, limits).ok()
        });
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    // Both when both are asked for, as Multus logs (multus-spec §2.1: the file "also").
    let _ = match (file, config.log_to_stderr()) {
        (Some(file), true) => builder
            .with_writer(std::sync::Mutex::new(file).and(std::io::stderr))
            .try_init(),
        (Some(file), false) => builder.with_writer(std::sync::Mutex::new(file)).try_init(),
        (None, true) => builder.with_writer(std::io::stderr).try_init(),
        (None, false) => return,
    };
}

/// Run `future` to its end on a current-thread runtime (one CNI call: it starts in
/// microseconds). Only the thin plugin and the shim's in-process DEL need one.
///
/// The future goes on the heap: an engine call's is ~10 KB, and moved by value through the
/// runtime's entry it would be copied, and new stack pages faulted in, several times over.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::StartRuntime { source })?;
    Ok(runtime.block_on(Box::pin(future)))
}

/// Serve one CNI call from this process's environment and the given stdin.
pub fn serve(stdin: Vec<u8>) -> Outcome {
    let config = std::str::from_utf8(&stdin)
        .ok()
        .and_then(|t| MultusConfig::parse(t).ok());
    let version = config
        .as_ref()
        .and_then(|c| c.cni_version.clone())
        .unwrap_or_else(|| CniVersion::CURRENT.to_string());
    let fail = |e: Error| Outcome {
        stdout: e.to_cni_error(&version).to_json_string(),
        success: false,
    };
    let inv = match Invocation::from_env(|k| std::env::var(k).ok(), stdin) {
        Ok(inv) => inv,
        Err(e) => return fail(e),
    };
    if inv.command == Command::Version {
        return Outcome {
            stdout: version_text(),
            success: true,
        };
    }
    let config = match config {
        Some(c) => c,
        None => {
            let text = String::from_utf8_lossy(&inv.config);
            return match MultusConfig::parse(&text) {
                Err(e) => fail(Error::parse_config(&e)),
                Ok(_) => fail(Error::ParseConfig("unreadable".into())),
            };
        }
    };
    // ADD's first plugin starts loading now, before the async runtime and the pod's lookup
    // (docs/decisions.md, "Plugins started ahead").
    let head = (!config.is_shim()).then(|| HeadStart::begin(&inv, &config));
    init_logging(&config);
    let outcome = if config.is_shim() {
        // A blocking exchange with the daemon: the shim needs no async runtime.
        crate::shim::forward(&inv, &config)
    } else {
        let options = EngineOptions {
            service_account_dir: Some(crate::k8s::SERVICE_ACCOUNT_DIR.into()),
            // This process serves this one call: its thread can visit the pod's namespace.
            netns_visit: crate::netns::Visit::CallingThread,
            ..EngineOptions::default()
        };
        block_on(Engine::new(options, None).run_config_started(&inv, &config, head)).and_then(|r| r)
    };
    match outcome {
        Ok(out) => Outcome {
            stdout: out.unwrap_or_default(),
            success: true,
        },
        Err(e) => {
            tracing::error!(error = %e, command = %inv.command, "CNI command failed");
            fail(e)
        }
    }
}

/// Print the outcome; the process exits 0 on success, 1 otherwise.
pub fn print(outcome: &Outcome) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(outcome.stdout.as_bytes())?;
    out.flush()
}
