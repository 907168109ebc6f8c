//! Errors of the unix-socket helpers.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding gRPC socket {path}: {source}")]
    BindSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving gRPC on {path}: {source}")]
    ServeSocket {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("connecting to gRPC socket {path}: {source}")]
    ConnectSocket {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}
