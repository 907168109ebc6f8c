//! The operator crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    ReadInput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading standard input: {0}")]
    ReadStdin(#[source] std::io::Error),
    #[error("{path}: no such file or directory")]
    InputNotFound { path: PathBuf },
    #[error("reading the supported-NIC list {path}: {message}")]
    SupportedNics { path: PathBuf, message: String },
    #[error("encoding the report as JSON: {0}")]
    EncodeReport(#[source] serde_json::Error),
    #[error("generating the CRD YAML: {0}")]
    GenerateCrds(String),
    #[error("writing output: {0}")]
    WriteOutput(#[source] std::io::Error),
    #[error(transparent)]
    Sriov(#[from] crate::agent::sriov::SriovError),
}
