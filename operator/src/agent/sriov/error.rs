//! Errors of the SR-IOV agent and the device plugin (one enum for the SR-IOV side; the crate's
//! [`crate::Error`] wraps it).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    #[error("reading sysfs {path}: {source}")]
    ReadSysfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    WriteSysfs {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {seconds}s waiting for the kernel: {what}")]
    KernelTimeout { what: String, seconds: u64 },
    #[error("PF {pci} of the NodeState spec is not on this node")]
    UnknownPf { pci: String },
    #[error("PF {pci}: {want} VFs requested but the device supports at most {total}")]
    TooManyVfs { pci: String, want: i32, total: i32 },
    #[error("externally managed PF {pci}: {message}")]
    ExternallyManaged { pci: String, message: String },
    #[error("VF group {resource:?} of PF {pci}: {source}")]
    VfRange {
        pci: String,
        resource: String,
        #[source]
        source: multus_crds::sriov::VfRangeError,
    },
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the NodeState {name}: {source}")]
    GetNodeState {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("publishing the status of NodeState {name}: {source}")]
    PatchNodeStateStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("evicting pod {pod}: {source}")]
    EvictPod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("pods still hold VFs after {seconds}s of eviction attempts: {}", pods.join(", "))]
    EvictionTimeout {
        pods: Vec<String>,
        seconds: u64,
        /// Pods that were evicted before the time ran out.
        evicted: usize,
    },
    #[error("serving health and metrics on {addr}: {source}")]
    ServeHealth {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("asking kubelet which pods hold devices: {0}")]
    ListPodResources(#[source] tonic::Status),
    #[error(transparent)]
    Kubelet(#[from] multus_kubelet::Error),
    #[error("registering {resource} with kubelet: {source}")]
    Register {
        resource: String,
        #[source]
        source: tonic::Status,
    },
}

impl SriovError {
    /// A bounded name of what failed, for metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::ReadSysfs { .. } => "read_sysfs",
            Self::WriteSysfs { .. } | Self::KernelTimeout { .. } => "write_sysfs",
            Self::UnknownPf { .. }
            | Self::TooManyVfs { .. }
            | Self::ExternallyManaged { .. }
            | Self::VfRange { .. } => "spec",
            Self::WriteFile { .. } => "write_file",
            Self::GetNodeState { .. } | Self::PatchNodeStateStatus { .. } => "api",
            Self::EvictPod { .. } | Self::EvictionTimeout { .. } => "eviction",
            Self::ListPodResources(_) | Self::Kubelet(_) | Self::Register { .. } => "kubelet",
            Self::ServeHealth { .. } => "health",
        }
    }
}
