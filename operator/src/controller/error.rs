//! The controller's errors: one variant per failed operation, carrying the object it was about.

/// Everything the cluster controller can fail at.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("reading {kind} {name}: {source}")]
    Get {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {kind} {name}: {source}")]
    PatchStatus {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("rendering the NAD of SriovNetwork {name}: {source}")]
    Render {
        name: String,
        #[source]
        source: multus_crds::sriov::render::RenderError,
    },
    #[error("holding the Lease {name}: {source}")]
    Lease {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "lost the Lease {name} (now held by {holder:?}); exiting so a fresh replica takes over"
    )]
    LostLease { name: String, holder: String },
    #[error("serving health and metrics on {addr}: {source}")]
    ServeHealth {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("watching {kind}: {message}")]
    Watch { kind: &'static str, message: String },
}

impl ControllerError {
    /// Bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Get { .. } => "get",
            Self::Apply { .. } => "apply",
            Self::PatchStatus { .. } => "patch_status",
            Self::Delete { .. } => "delete",
            Self::Render { .. } => "render",
            Self::Lease { .. } | Self::LostLease { .. } => "lease",
            Self::ServeHealth { .. } => "serve",
            Self::Watch { .. } => "watch",
        }
    }
}
