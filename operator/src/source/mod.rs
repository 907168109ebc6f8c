//! The sources of state (design.md, "Sources of state"): the world as the agent and the
//! controllers read it, through one abstraction with two implementations —
//!
//! - [`kube`]: watchers on the Kubernetes API (NADs in every namespace, the node's pods);
//! - [`dir`]: a directory of manifests (`--source dir:PATH`), read at start and re-read on every
//!   filesystem change, so the agent runs unprivileged against plain directories.
//!
//! Both produce the same [`Update`]s on one channel; engines consume them and never know which
//! source fed them.

pub mod dir;
pub mod kube;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use multus_crds::NetworkAttachmentDefinition;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::cni::CniAgentError;

/// A change to one kind of object.
#[derive(Debug, Clone)]
pub enum Change<T> {
    /// The complete current set (at start, and whenever the source re-lists).
    Synced(Vec<T>),
    /// One object created or changed.
    Applied(T),
    /// One object deleted.
    Deleted(T),
}

/// A change the source saw.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "updates cross a channel one at a time; pods, the large ones, are boxed"
)]
pub enum Update {
    Nads(Change<NetworkAttachmentDefinition>),
    /// Pods are large and many; applied ones are boxed.
    Pods(Change<Box<Pod>>),
}

/// Which source, as given on the command line (`kube` or `dir:PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Kube,
    Dir(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            _ if s == "kube" => Ok(Self::Kube),
            Some(("dir", path)) if !path.is_empty() => Ok(Self::Dir(PathBuf::from(path))),
            _ => Err(format!(
                "unknown source {s:?}: expected `kube` or `dir:PATH`"
            )),
        }
    }
}

/// A started source: the updates, in order.
pub struct Source {
    pub updates: mpsc::Receiver<Update>,
}

impl Source {
    /// Start watching. `node` limits pods to the ones scheduled to that node (`spec.nodeName`).
    pub fn start(
        spec: &SourceSpec,
        client: Option<::kube::Client>,
        node: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, CniAgentError> {
        let (tx, rx) = mpsc::channel(1024);
        match (spec, client) {
            (SourceSpec::Dir(path), _) => dir::start(path.clone(), node.to_owned(), tx, shutdown)?,
            (SourceSpec::Kube, Some(client)) => kube::start(client, node.to_owned(), tx, shutdown),
            (SourceSpec::Kube, None) => {
                return Err(CniAgentError::WatchApi {
                    kind: "any",
                    message: "no Kubernetes client".into(),
                });
            }
        }
        Ok(Self { updates: rx })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_source_flag() {
        assert_eq!("kube".parse::<SourceSpec>().unwrap(), SourceSpec::Kube);
        assert_eq!(
            "dir:/tmp/m".parse::<SourceSpec>().unwrap(),
            SourceSpec::Dir("/tmp/m".into())
        );
        assert!("dir:".parse::<SourceSpec>().is_err());
        assert!("file:/x".parse::<SourceSpec>().is_err());
    }
}
