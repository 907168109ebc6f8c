//! Errors of the CNI side of the agent and of the sources of state: variants named for the
//! operation that failed, carrying the object.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CniAgentError {
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("syncing directory {path}: {source}")]
    SyncDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing {path}: {source}")]
    RemoveFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listing {path}: {source}")]
    ListDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the plugin binary {from} as {to}: {source}")]
    InstallBinary {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("primary CNI config {path}: {message}")]
    PrimaryConfig { path: PathBuf, message: String },
    #[error("no primary CNI config (.conf or .conflist other than 00-multus) in {dir}")]
    NoPrimaryConfig { dir: PathBuf },
    #[error(
        "the Kubernetes service address is unknown: set KUBERNETES_SERVICE_HOST or --kubeconfig-server"
    )]
    NoApiServer,
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("reading manifest {path}: {message}")]
    ReadManifest { path: PathBuf, message: String },
    #[error("binding the daemon socket {path}: {source}")]
    BindDaemon {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the daemon on {path}: {source}")]
    ServeDaemon {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving health and metrics on {addr}: {source}")]
    ServeHealth {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("watching {kind} from the API server: {message}")]
    WatchApi { kind: &'static str, message: String },
}

impl CniAgentError {
    /// A bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::WriteFile { .. } => "write_file",
            Self::RemoveFile { .. } => "remove_file",
            Self::SyncDir { .. } => "sync_dir",
            Self::ReadFile { .. } => "read_file",
            Self::ListDir { .. } => "list_dir",
            Self::InstallBinary { .. } => "install_binary",
            Self::PrimaryConfig { .. } | Self::NoPrimaryConfig { .. } => "primary_config",
            Self::NoApiServer => "kubeconfig",
            Self::Watch { .. } => "watch_files",
            Self::ReadManifest { .. } => "read_manifest",
            Self::BindDaemon { .. } | Self::ServeDaemon { .. } => "daemon",
            Self::ServeHealth { .. } => "health",
            Self::WatchApi { .. } => "watch_api",
        }
    }
}
