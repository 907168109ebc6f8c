//! # The offline run (`multus-operator run --source dir:PATH --host-root DIR`)
//!
//! The controller and the node agents of every node found in a folder of manifests, in one
//! process, with the engines they run in a cluster:
//!
//! 1. [`cluster::load`]: every manifest under the folder, checked by `multusctl`'s validation (the
//!    admission webhook's rules); rejected objects never enter the "cluster", as the webhook
//!    would refuse them, and are reported with each rule's field path and message;
//! 2. each node's agent discovers the NICs of its fake sysfs tree (`nodes/<node>/sys`);
//! 3. [`controller`]: SriovNetworks → NADs and policies + nodes + NICs → NodeState specs, through
//!    the controller's pure decisions;
//! 4. [`node`]: per node, under `DIR/<node>/` (design.md host paths): `00-multus`, the rendered
//!    NAD files, the NodeState, the device-plugin pools and the upstream plugin's config. Sysfs is
//!    never written: the VF plan says what the apply would do.
//!
//! Cluster-level outputs (the NADs rendered from SriovNetworks) go under `DIR/cluster/`. Without
//! `--once` the folder is followed and every change runs another pass.

pub mod cluster;
pub mod controller;
pub mod error;
pub mod node;
pub mod plan;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

pub use error::OfflineError;

use crate::agent::cni::multusconf::{Mode, Settings};
use crate::agent::cni::{CniAgentError, files};
use cluster::NODES_DIR;
use node::{Desired, NodeHost};
use summary::{ClusterReport, PassReport};

/// Where rendered NADs go, under the output's `cluster/`.
pub const CLUSTER_NADS_DIR: &str = "cluster/networkattachmentdefinitions";

/// What the run is told.
#[derive(Clone, Debug)]
pub struct Options {
    /// The folder of manifests.
    pub source: PathBuf,
    /// Output root: `<host_root>/<node>/` per node, `<host_root>/cluster/`.
    pub host_root: PathBuf,
    /// The operator namespace (policies, NodeStates).
    pub namespace: String,
    pub resource_prefix: String,
    /// Labels a node needs to get a NodeState.
    pub node_selector: BTreeMap<String, String>,
    /// The Multus config written on every node.
    pub cni_mode: Mode,
    /// Quiet time after a change before the next pass (follow mode).
    pub debounce: Duration,
}

/// The run's memory between passes: one agent per node.
pub struct Runner {
    options: Options,
    nodes: BTreeMap<String, NodeHost>,
    passes: usize,
}

impl Runner {
    pub fn new(options: Options) -> Result<Self, OfflineError> {
        let source =
            std::fs::canonicalize(&options.source).map_err(|source| OfflineError::ReadSource {
                path: options.source.clone(),
                source,
            })?;
        std::fs::create_dir_all(&options.host_root).map_err(|source| {
            OfflineError::WriteOutputs {
                scope: "the host root".into(),
                source: CniAgentError::WriteFile {
                    path: options.host_root.clone(),
                    source,
                },
            }
        })?;
        let host_root = std::fs::canonicalize(&options.host_root).map_err(|source| {
            OfflineError::ReadSource {
                path: options.host_root.clone(),
                source,
            }
        })?;
        if host_root.starts_with(&source) {
            return Err(OfflineError::HostRootInsideSource {
                host_root,
                source_dir: source,
            });
        }
        Ok(Self {
            options,
            nodes: BTreeMap::new(),
            passes: 0,
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// One pass over the whole folder.
    #[tracing::instrument(skip_all, fields(pass = self.passes + 1))]
    pub fn pass(&mut self) -> Result<PassReport, OfflineError> {
        let started = Instant::now();
        self.passes += 1;
        let o = &self.options;
        let mut cluster = cluster::load(&o.source, &o.namespace)?;

        // Each node's agent discovers its NICs (what it would report in the NodeState status).
        let trees: BTreeMap<String, PathBuf> = cluster
            .nodes
            .iter()
            .map(|n| (n.name_any(), o.source.join(NODES_DIR).join(n.name_any())))
            .filter(|(_, t)| t.is_dir())
            .collect();
        let discovered: BTreeMap<String, Result<Vec<_>, String>> = cluster
            .nodes
            .iter()
            .map(|n| {
                let name = n.name_any();
                let nics = NodeHost::discover(trees.get(&name).map(PathBuf::as_path));
                (name, nics)
            })
            .collect();
        let statuses = discovered
            .iter()
            .map(|(n, nics)| {
                let s = nics.iter().flatten().map(|n| n.status.clone()).collect();
                (n.clone(), s)
            })
            .collect();

        // The controller.
        let networks = controller::networks(&cluster, &o.namespace, &o.resource_prefix);
        let policies = controller::policies(&cluster, &o.namespace, &o.node_selector, &statuses);
        let mut report = PassReport {
            pass: self.passes,
            source: o.source.clone(),
            host_root: o.host_root.clone(),
            files: cluster.files,
            cluster: ClusterReport {
                networks: networks.results.clone(),
                policies: policies.verdicts.clone(),
                ignored_policies: policies.ignored.clone(),
                written: Vec::new(),
                removed: Vec::new(),
            },
            nodes: Vec::new(),
            unknown_trees: unknown_trees(&o.source, &cluster),
            gone: Vec::new(),
            rejected: std::mem::take(&mut cluster.rejected),
            warned: std::mem::take(&mut cluster.warned),
            elapsed: Duration::ZERO,
        };
        write_cluster(&o.host_root, &networks.rendered, &mut report.cluster).map_err(|source| {
            OfflineError::WriteOutputs {
                scope: "cluster".into(),
                source,
            }
        })?;

        // The node agents.
        for n in &cluster.nodes {
            let name = n.name_any();
            let host = self.nodes.entry(name.clone()).or_insert_with(|| {
                NodeHost::new(&name, o.host_root.join(&name), Settings::new(o.cni_mode))
            });
            let desired = Desired {
                operator_ns: &o.namespace,
                resource_prefix: &o.resource_prefix,
                spec: policies
                    .selected
                    .contains(&name)
                    .then(|| policies.spec(&name)),
                nads: &networks.all,
                pods: cluster
                    .pods
                    .iter()
                    .filter(|p| {
                        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    })
                    .collect(),
            };
            let nics = match &discovered[&name] {
                Ok(nics) => Ok(nics.as_slice()),
                Err(e) => Err(e.clone()),
            };
            let r = host
                .pass(trees.get(&name).map(PathBuf::as_path), nics, &desired)
                .map_err(|source| OfflineError::WriteOutputs {
                    scope: format!("node {name}"),
                    source,
                })?;
            report.nodes.push(r);
        }
        // A node that left the folder has no agent any more; what it wrote stays, as files on a
        // decommissioned host would.
        let present: Vec<String> = cluster.nodes.iter().map(|n| n.name_any()).collect();
        self.nodes.retain(|name, _| {
            let keep = present.contains(name);
            if !keep {
                report.gone.push(name.clone());
            }
            keep
        });
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

/// Write the rendered NADs as YAML under `cluster/`, removing the ones no longer rendered.
fn write_cluster(
    host_root: &Path,
    rendered: &[multus_crds::NetworkAttachmentDefinition],
    report: &mut ClusterReport,
) -> Result<(), CniAgentError> {
    let dir = host_root.join(CLUSTER_NADS_DIR);
    let mut keep = Vec::new();
    for nad in rendered {
        let file = format!(
            "{}_{}.yaml",
            nad.namespace().unwrap_or_default(),
            nad.name_any()
        );
        let mut value = serde_json::to_value(nad).unwrap_or_default();
        value["apiVersion"] = "k8s.cni.cncf.io/v1".into();
        value["kind"] = "NetworkAttachmentDefinition".into();
        let ordered = serde_json::json!({
            "apiVersion": value["apiVersion"], "kind": value["kind"],
            "metadata": value["metadata"], "spec": value["spec"],
        });
        let yaml = serde_saphyr::to_string(&ordered).map_err(|e| CniAgentError::WriteFile {
            path: dir.join(&file),
            source: std::io::Error::other(e.to_string()),
        })?;
        let path = dir.join(&file);
        if !std::fs::read(&path).is_ok_and(|old| old == yaml.as_bytes()) {
            files::write_atomic(&path, yaml.as_bytes(), 0o644)?;
            report.written.push(format!("{CLUSTER_NADS_DIR}/{file}"));
        }
        keep.push(file);
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !keep.contains(&name) && files::remove(&entry.path())? {
            report.removed.push(format!("{CLUSTER_NADS_DIR}/{name}"));
        }
    }
    Ok(())
}

/// Host trees under `nodes/` that no Node object names.
fn unknown_trees(source: &Path, cluster: &cluster::Cluster) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(source.join(NODES_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !cluster.nodes.iter().any(|node| node.name_any() == *n))
        .collect();
    out.sort();
    out
}

/// Run one pass, hand its report to `out`, then (unless `once`) another after every change
/// under the folder, until `shutdown`. A pass that fails is reported through `on_error` and the
/// run goes on in follow mode; with `once` its error is returned.
pub async fn run(
    mut runner: Runner,
    once: bool,
    mut out: impl FnMut(&PassReport),
    mut on_error: impl FnMut(&OfflineError),
    shutdown: CancellationToken,
) -> Result<(), OfflineError> {
    if once {
        let report = runner.pass()?;
        out(&report);
        return Ok(());
    }
    let source = runner.options().source.clone();
    // Watch before the first pass, so no change between the two is missed.
    let (_watcher, mut wake) =
        crate::source::dir::watch(&source).map_err(|source_err| OfflineError::Follow {
            path: source.clone(),
            source: source_err,
        })?;
    let debounce = runner.options().debounce;
    loop {
        match runner.pass() {
            Ok(report) => out(&report),
            Err(e) => on_error(&e),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            w = wake.recv() => if w.is_none() { return Ok(()) },
        }
        // Gather the burst (an editor's save is several events).
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(debounce) => break,
                w = wake.recv() => if w.is_none() { return Ok(()) },
            }
        }
    }
}
