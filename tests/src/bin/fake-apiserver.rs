//! `fake-apiserver`: the in-memory Kubernetes API server as a process, for process-level tests
//! and for trying the operator by hand.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use multus_tests::apiserver::{FakeApiServer, ServerConfig};

#[derive(Parser, Debug)]
#[command(about = "An in-memory Kubernetes API server for tests (see tests/README.md)")]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, env = "MULTUS_FAKE_APISERVER_PORT", default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig for the server.
    #[arg(long, env = "MULTUS_FAKE_APISERVER_KUBECONFIG_OUT")]
    kubeconfig_out: PathBuf,
    /// Serve HTTPS with a generated CA (written into the kubeconfig).
    #[arg(long, env = "MULTUS_FAKE_APISERVER_TLS")]
    tls: bool,
    /// Events kept replayable for watches.
    #[arg(
        long,
        env = "MULTUS_FAKE_APISERVER_WATCH_WINDOW",
        default_value_t = 100_000
    )]
    watch_window: usize,
    /// Append every resource request (user agent, verb, group, resource, subresource,
    /// namespace, name) to this file as a JSON line, for RBAC checks.
    #[arg(long, env = "MULTUS_FAKE_APISERVER_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    // One crypto provider everywhere: ring, the one kube is built with.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let server = FakeApiServer::start_with(ServerConfig {
        tls: args.tls,
        port: args.port,
        watch_window: args.watch_window,
        kubeconfig_out: Some(args.kubeconfig_out.clone()),
        audit_log: args.audit_log.clone(),
    })
    .await
    .context("starting the server")?;
    // The line tests wait for: the URL, after the kubeconfig is in place.
    println!(
        "serving {} (kubeconfig {})",
        server.url(),
        args.kubeconfig_out.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for a signal")?;
    Ok(())
}
