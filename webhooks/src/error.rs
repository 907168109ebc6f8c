//! The crate's one error type: each variant names the operation that failed and carries what it
//! failed on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the TLS certificate {path}: {source}")]
    ReadCertificate {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("reading the TLS private key {path}: {source}")]
    ReadPrivateKey {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate {cert} does not go with the key {key}: {source}")]
    LoadCertifiedKey {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("building the TLS configuration: {0}")]
    ConfigureTls(#[source] rustls::Error),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("building the async runtime: {0}")]
    BuildRuntime(#[source] std::io::Error),
    #[error("accepting a connection: {0}")]
    Accept(#[source] std::io::Error),
    #[error("building the Kubernetes client: {0}")]
    BuildClient(#[source] kube::Error),
    #[error("reading the supported-NIC ConfigMap {namespace}/{name}: {message}")]
    ReadSupportedNics {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("watching {kind}: {source}")]
    Watch {
        kind: &'static str,
        source: kube::runtime::watcher::Error,
    },
    #[error("registering metrics: {0}")]
    EncodeMetrics(#[from] std::fmt::Error),
}
