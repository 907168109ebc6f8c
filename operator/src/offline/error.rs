//! Errors of the offline run.

use std::path::PathBuf;

use crate::agent::cni::CniAgentError;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("reading the manifest folder {path}: {source}")]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the manifests under {path}: {message}")]
    LoadManifests { path: PathBuf, message: String },
    #[error("writing the outputs of {scope}: {source}")]
    WriteOutputs {
        /// `cluster` or `node <name>`.
        scope: String,
        #[source]
        source: CniAgentError,
    },
    #[error("encoding {what} as YAML: {message}")]
    EncodeYaml { what: String, message: String },
    #[error(
        "the host root {host_root} lies inside the manifest folder {source_dir}: every write would trigger another pass"
    )]
    HostRootInsideSource {
        host_root: PathBuf,
        source_dir: PathBuf,
    },
    #[error("following {path}: {source}")]
    Follow {
        path: PathBuf,
        #[source]
        source: CniAgentError,
    },
}
