//! The crate's one error type. Every variant names the operation that failed and carries the
//! object it failed on; [`Error::to_cni_error`] maps it to the CNI error object the runtime sees.

use std::io;
use std::path::PathBuf;

use multus_crds::cni::{CniError, ConfigError, ErrorCode};

/// Who a request is for, as it appears at the front of every ADD/DEL error message:
/// `namespace/name/uid`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.name, self.uid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CNI_COMMAND {0:?} is not a CNI command (ADD, DEL, CHECK, GC, STATUS, VERSION)")]
    UnknownCommand(String),
    #[error("environment variable {var} {reason}")]
    ReadEnvironment { var: &'static str, reason: String },
    #[error("reading the network configuration from stdin: {0}")]
    ReadStdin(#[source] io::Error),
    #[error("invalid Multus configuration: {0}")]
    ParseConfig(String),
    #[error("invalid network configuration {what}: {message}")]
    ParseDelegate { what: String, message: String },
    #[error("{name} {value:?} is not allowed: {reason}")]
    UnsafeName {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "readiness indicator file {path:?} did not appear within {seconds} s: is the default network ready?"
    )]
    WaitReadiness { path: PathBuf, seconds: u64 },
    #[error("building the Kubernetes client from {path:?}: {message}")]
    BuildKubeClient { path: String, message: String },
    #[error("getting pod {namespace}/{name}: {source}")]
    GetPod {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("pod {namespace}/{name} not found: a network is hot-plugged only into a running pod")]
    PodNotFound { namespace: String, name: String },
    #[error("hot-plugging a network: {reason}")]
    HotplugContext { reason: &'static str },
    #[error("pod {namespace}/{name} has UID {found}, but the runtime asked for UID {expected}")]
    PodUidMismatch {
        namespace: String,
        name: String,
        expected: String,
        found: String,
    },
    #[error("getting NetworkAttachmentDefinition {namespace}/{name}: {source}")]
    GetNetwork {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "network {namespace}/{name} not found: no NetworkAttachmentDefinition {namespace}/{name}"
    )]
    NetworkNotFound { namespace: String, name: String },
    #[error(
        "{api}; no copy of NetworkAttachmentDefinition {namespace}/{name} on the node either (no {file:?}, no configuration named {name:?} beside it)"
    )]
    NetworkOffline {
        namespace: String,
        name: String,
        file: PathBuf,
        api: Box<Error>,
    },
    #[error("network {name:?}: no CNI configuration named {name:?} in {dir:?}")]
    FindNetworkFile { name: String, dir: PathBuf },
    #[error("reading network configuration file {path:?}: {message}")]
    ReadNetworkFile { path: PathBuf, message: String },
    #[error("annotation {annotation}: {message}")]
    ParseAnnotation {
        annotation: &'static str,
        message: String,
    },
    #[error("{0}")]
    Isolation(#[from] multus_crds::rules::isolation::IsolationViolation),
    #[error(
        "network {network} is asked for {capability:?} but no plugin of its chain declares the capability {capability:?}"
    )]
    UndeclaredCapability { network: String, capability: String },
    #[error("interface name {ifname:?} is used by two attachments ({first} and {second})")]
    DuplicateInterface {
        ifname: String,
        first: String,
        second: String,
    },
    #[error("multus does not support ECMP for default-route: {0}")]
    DefaultRoute(String),
    #[error("writing {path:?}: {source}")]
    WriteCache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path:?}: {message}")]
    ReadCache { path: PathBuf, message: String },
    #[error("plugin {plugin:?} not found in {dirs:?}")]
    FindPlugin { plugin: String, dirs: Vec<PathBuf> },
    #[error("running plugin {plugin:?}: {source}")]
    ExecPlugin {
        plugin: String,
        #[source]
        source: io::Error,
    },
    #[error("plugin {plugin:?} failed: {error}")]
    PluginFailed {
        plugin: String,
        error: Box<CniError>,
    },
    #[error("plugin {plugin:?} printed an unreadable result: {message}")]
    PluginResult { plugin: String, message: String },
    #[error("interface {ifname:?} already exists in {netns:?}")]
    InterfaceExists { ifname: String, netns: String },
    #[error("network namespace {netns:?}: {source}")]
    Netns {
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: error adding container to network {network:?} (interface {ifname}): {}", .0.prefix(), .0.source, network = .0.network, ifname = .0.ifname)]
    AddNetwork(Box<AttachmentFailure>),
    #[error("{}: error deleting container from network {network:?} (interface {ifname}): {}", .0.prefix(), .0.source, network = .0.network, ifname = .0.ifname)]
    DelNetwork(Box<AttachmentFailure>),
    #[error("{}: checking network {network:?} (interface {ifname}): {}", .0.prefix(), .0.source, network = .0.network, ifname = .0.ifname)]
    CheckNetwork(Box<AttachmentFailure>),
    #[error("{}: resolving network {network:?} for interface {ifname}: {}", .0.prefix(), .0.source, network = .0.network, ifname = .0.ifname)]
    ResolveNetwork(Box<AttachmentFailure>),
    /// A failure about the pod as a whole (its annotations, its default routes).
    #[error("[{pod}]: {source}")]
    ForPod {
        pod: PodRef,
        #[source]
        source: Box<Error>,
    },
    #[error("errors: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / "))]
    Several(Vec<Error>),
    #[error(
        "an earlier ADD of container {container_id} added this attachment with another configuration and could not release it; it stays recorded for the runtime's DEL, try again after it"
    )]
    PreviousAttemptLeft { container_id: String },
    #[error("no cached attachments for container {container_id}: nothing to check")]
    NoCachedAttachments { container_id: String },
    #[error("updating the network-status of pod {namespace}/{name}: {source}")]
    UpdateStatus {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("asking kubelet's PodResources API at {socket:?} for the pod's devices: {message}")]
    PodResources { socket: PathBuf, message: String },
    #[error("serialising {what}: {message}")]
    Serialize { what: &'static str, message: String },
    #[error("multus daemon at {socket:?} unreachable: {message}; try again later")]
    DaemonUnreachable { socket: PathBuf, message: String },
    #[error("{0}")]
    Remote(Box<CniError>),
    #[error("starting the async runtime: {source}")]
    StartRuntime {
        #[source]
        source: io::Error,
    },
    #[error("multus daemon answered {status}: {body}")]
    DaemonFailed { status: u16, body: String },
    #[error("multus daemon is busy ({queued} requests queued); try again later")]
    Overloaded { queued: usize },
}

impl Error {
    /// The CNI error code for this failure: the delegate's own code when a delegate failed, the
    /// spec's codes otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UnknownCommand(_) | Error::ReadEnvironment { .. } => {
                ErrorCode::InvalidEnvironmentVariables
            }
            Error::ReadStdin(_) | Error::WriteCache { .. } | Error::ReadCache { .. } => {
                ErrorCode::IoFailure
            }
            Error::ParseConfig(_)
            | Error::ParseDelegate { .. }
            | Error::UnsafeName { .. }
            | Error::NetworkNotFound { .. }
            | Error::FindNetworkFile { .. }
            | Error::ReadNetworkFile { .. }
            | Error::ParseAnnotation { .. }
            | Error::Isolation(_)
            | Error::UndeclaredCapability { .. }
            | Error::DuplicateInterface { .. }
            | Error::DefaultRoute(_)
            | Error::FindPlugin { .. } => ErrorCode::InvalidNetworkConfig,
            Error::WaitReadiness { .. }
            | Error::GetPod { .. }
            | Error::GetNetwork { .. }
            | Error::NetworkOffline { .. }
            | Error::UpdateStatus { .. }
            | Error::DaemonUnreachable { .. }
            | Error::PodResources { .. }
            | Error::PreviousAttemptLeft { .. }
            | Error::Overloaded { .. } => ErrorCode::TryAgainLater,
            Error::HotplugContext { .. } => ErrorCode::InvalidEnvironmentVariables,
            Error::NoCachedAttachments { .. }
            | Error::PodUidMismatch { .. }
            | Error::PodNotFound { .. } => ErrorCode::UnknownContainer,
            Error::PluginFailed { error, .. } | Error::Remote(error) => error.code,
            Error::AddNetwork(f)
            | Error::DelNetwork(f)
            | Error::CheckNetwork(f)
            | Error::ResolveNetwork(f) => f.source.code(),
            Error::ForPod { source, .. } => source.code(),
            Error::Several(errors) => errors.first().map_or(ErrorCode::Plugin(100), Error::code),
            Error::BuildKubeClient { .. }
            | Error::ExecPlugin { .. }
            | Error::PluginResult { .. }
            | Error::InterfaceExists { .. }
            | Error::Netns { .. }
            | Error::Serialize { .. }
            | Error::DaemonFailed { .. }
            | Error::StartRuntime { .. } => ErrorCode::Plugin(100),
        }
    }

    /// The error object printed to the runtime. A delegate's `details` are kept.
    pub fn to_cni_error(&self, version: &str) -> CniError {
        let details = self.delegate_details().unwrap_or_default();
        CniError::new(self.code(), self.to_string())
            .with_details(details)
            .with_version(version)
    }

    fn delegate_details(&self) -> Option<String> {
        match self {
            Error::Remote(error) if !error.details.is_empty() => Some(error.details.clone()),
            Error::PluginFailed { error, .. } if !error.details.is_empty() => {
                Some(error.details.clone())
            }
            Error::AddNetwork(f)
            | Error::DelNetwork(f)
            | Error::CheckNetwork(f)
            | Error::ResolveNetwork(f) => f.source.delegate_details(),
            Error::ForPod { source, .. } => source.delegate_details(),
            _ => None,
        }
    }

    pub(crate) fn parse_config(e: &ConfigError) -> Self {
        Error::ParseConfig(e.message())
    }
}

/// An attachment that failed, and why: the pod, the network and its interface name.
#[derive(Debug)]
pub struct AttachmentFailure {
    pub pod: PodRef,
    pub network: String,
    pub ifname: String,
    pub source: Error,
}

impl AttachmentFailure {
    /// `[namespace/name/uid:network]`, or `[network]` when the request names no pod.
    fn prefix(&self) -> String {
        if self.pod == PodRef::default() {
            format!("[{}]", self.network)
        } else {
            format!("[{}:{}]", self.pod, self.network)
        }
    }
}

impl Error {
    /// This error said as the pod's (`[namespace/name/uid]: …`): a failure of the pod as a whole,
    /// not of one attachment. Without a pod (a request naming none) it stays as it is.
    pub(crate) fn in_pod(self, pod: &PodRef) -> Self {
        if *pod == PodRef::default() {
            return self;
        }
        Error::ForPod {
            pod: pod.clone(),
            source: Box::new(self),
        }
    }

    pub(crate) fn attachment(
        wrap: fn(Box<AttachmentFailure>) -> Error,
        pod: &PodRef,
        network: &str,
        ifname: &str,
        source: Error,
    ) -> Self {
        wrap(Box::new(AttachmentFailure {
            pod: pod.clone(),
            network: network.to_owned(),
            ifname: ifname.to_owned(),
            source,
        }))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
