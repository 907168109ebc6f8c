//! # multus-tests: the stand-in Kubernetes API server and the end-to-end harness
//!
//! [`apiserver::FakeApiServer`] is an in-memory API server faithful enough for kube-runtime
//! controllers, `kubectl` and our binaries to run against unmodified; its deliberate deviations
//! from the real server are listed in `tests/README.md`. [`harness`] starts processes, waits for
//! conditions and manages network namespaces for end-to-end tests.

use std::path::PathBuf;

pub mod apiserver;
pub mod harness;
pub mod kubelet;
pub mod rbac;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the listener: {0}")]
    Bind(#[source] std::io::Error),
    #[error("generating a certificate: {0}")]
    GenerateCertificate(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    ConfigureTls(#[from] rustls::Error),
    #[error("writing the kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the audit log {path}: {source}")]
    WriteAuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the manifests of {dir}: {message}")]
    BuildManifests { dir: PathBuf, message: String },
    #[error("requests not granted by the RBAC in config/:\n  {denials}")]
    RequestsNotGranted { denials: String },
    #[error("building a client from the kubeconfig: {0}")]
    BuildClient(String),
    #[error(
        "finding the binary {0} (build it first: cargo build --bins; multus-shim: cargo build --release --manifest-path cni/shim/Cargo.toml)"
    )]
    FindBinary(String),
    #[error(
        "building multus-shim (cargo build --release --manifest-path cni/shim/Cargo.toml): {message}"
    )]
    BuildShim { message: String },
    #[error("spawning {program}: {source}")]
    SpawnProcess {
        program: String,
        source: std::io::Error,
    },
    #[error("timed out after {seconds:.1}s waiting for {what}")]
    WaitTimedOut { what: String, seconds: f64 },
    #[error("running `ip {args}`: {message}")]
    RunIp { args: String, message: String },
    #[error("creating {what} on the fake API server: {source}")]
    SeedObject {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
}
