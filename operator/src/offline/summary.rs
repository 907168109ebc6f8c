//! What a pass did and what it rejected, and its rendering for people (the run's standard
//! output, documented in docs/cli.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::controller::{NetworkOutcome, NetworkResult};
use super::node::NodeReport;
use crate::controller::nodestate::{PolicyVerdict, degraded_message};
use crate::multusctl::report::ObjectReport;

/// The controller's outcome.
#[derive(Debug, Default)]
pub struct ClusterReport {
    pub networks: Vec<NetworkResult>,
    pub policies: BTreeMap<String, PolicyVerdict>,
    pub ignored_policies: Vec<String>,
    /// Files under the host root written / removed this pass.
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

/// One pass.
#[derive(Debug)]
pub struct PassReport {
    pub pass: usize,
    pub source: PathBuf,
    pub host_root: PathBuf,
    /// Manifest files read.
    pub files: usize,
    pub cluster: ClusterReport,
    pub nodes: Vec<NodeReport>,
    /// `nodes/<name>` trees without a Node object.
    pub unknown_trees: Vec<String>,
    /// Nodes of the previous pass no longer in the folder.
    pub gone: Vec<String>,
    pub rejected: Vec<ObjectReport>,
    pub warned: Vec<ObjectReport>,
    pub elapsed: Duration,
}

impl PassReport {
    /// Files written in this pass, over the cluster and every node.
    pub fn written(&self) -> usize {
        self.cluster.written.len() + self.nodes.iter().map(|n| n.written.len()).sum::<usize>()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "pass {}: {} → {} ({} manifest files, {} ms)",
            self.pass,
            self.source.display(),
            self.host_root.display(),
            self.files,
            self.elapsed.as_millis()
        );
        let _ = writeln!(w, "\ncontroller");
        for n in &self.cluster.networks {
            match &n.outcome {
                NetworkOutcome::Rendered(nad) => {
                    let _ = writeln!(w, "  SriovNetwork {} → NAD {nad}", n.network);
                }
                NetworkOutcome::NotReady { reason, message } => {
                    let _ = writeln!(
                        w,
                        "  SriovNetwork {}: not ready ({reason}): {message}",
                        n.network
                    );
                }
            }
        }
        for (name, v) in &self.cluster.policies {
            let state = if v.ready { "ready" } else { "not ready" };
            let _ = writeln!(
                w,
                "  SriovNetworkNodePolicy {name}: {state} ({}): {}",
                v.reason, v.message
            );
            if !v.conflicts.is_empty() {
                let _ = writeln!(w, "    degraded: {}", degraded_message(&v.conflicts));
            }
        }
        for p in &self.cluster.ignored_policies {
            let _ = writeln!(
                w,
                "  SriovNetworkNodePolicy {p}: ignored (not in the operator namespace)"
            );
        }
        files(w, "  ", "wrote", &self.cluster.written);
        files(w, "  ", "removed", &self.cluster.removed);

        for n in &self.nodes {
            let _ = writeln!(w, "\nnode {}", n.name);
            match &n.tree {
                Some(t) => {
                    let _ = writeln!(w, "  host tree: {}", t.display());
                }
                None => {
                    let _ = writeln!(w, "  host tree: none (no NICs, no primary CNI config)");
                }
            }
            for nic in &n.nics {
                let _ = writeln!(w, "  NIC {nic}");
            }
            if let Some(e) = &n.discovery_error {
                let _ = writeln!(w, "  discovery failed: {e}");
            }
            match &n.multus_config {
                Ok(f) => {
                    let _ = writeln!(w, "  CNI: etc/cni/net.d/{f}");
                }
                Err(e) => {
                    let _ = writeln!(w, "  CNI: no Multus config: {e}");
                }
            }
            let _ = writeln!(
                w,
                "  CNI: {} NAD file(s) in etc/cni/multus/net.d: {}{}",
                n.nad_files.len(),
                n.nad_files.join(", "),
                if n.nad_files_rejected > 0 {
                    format!(" ({} NAD(s) not rendered: invalid)", n.nad_files_rejected)
                } else {
                    String::new()
                }
            );
            match &n.sriov {
                None => {
                    let _ = writeln!(
                        w,
                        "  SR-IOV: not selected by the node selector (no NodeState)"
                    );
                }
                Some(s) => {
                    let _ = writeln!(
                        w,
                        "  SR-IOV: NodeState with {} interface(s), syncStatus {} → {}",
                        s.interfaces,
                        s.sync_status.map_or("-", |s| s.as_str()),
                        super::node::NODESTATE_FILE
                    );
                    let _ = writeln!(
                        w,
                        "  SR-IOV: VF plan (not applied: the offline run never writes sysfs):"
                    );
                    if s.plan.is_empty() {
                        let _ = writeln!(w, "    nothing to configure");
                    }
                    for step in &s.plan {
                        let mark = if step.change { "change" } else { "ok" };
                        let _ = writeln!(w, "    [{mark}] {}", step.text);
                    }
                    let _ = writeln!(
                        w,
                        "  device plugin: {} pool(s) → {}, {}",
                        s.pools.len(),
                        super::node::POOLS_FILE,
                        super::node::UPSTREAM_CONFIG
                    );
                    for p in &s.pools {
                        let _ = writeln!(w, "    {p}");
                    }
                }
            }
            for p in &n.pods {
                let _ = writeln!(w, "  pod {p}");
            }
            files(w, "  ", "wrote", &n.written);
            files(w, "  ", "removed", &n.removed);
        }
        for n in &self.gone {
            let _ = writeln!(
                w,
                "\nnode {n}: gone from the folder; its files under the host root are left as they were"
            );
        }
        for t in &self.unknown_trees {
            let _ = writeln!(
                w,
                "\nnodes/{t}: no Node object names it; its host tree is not used"
            );
        }

        let _ = writeln!(w, "\nrejected ({})", self.rejected.len());
        for o in &self.rejected {
            for f in &o.errors {
                let _ = writeln!(w, "  {}", finding(o, &f.path, &f.message));
            }
        }
        if !self.warned.is_empty() {
            let _ = writeln!(w, "\nwarnings");
            for o in &self.warned {
                for f in &o.warnings {
                    let _ = writeln!(w, "  {}", finding(o, &f.path, &f.message));
                }
            }
        }
        let _ = writeln!(
            w,
            "\n{} node(s), {} NodeState(s), {} NAD(s) rendered from SriovNetworks, {} file(s) written, {} object(s) rejected",
            self.nodes.len(),
            self.nodes.iter().filter(|n| n.sriov.is_some()).count(),
            self.cluster
                .networks
                .iter()
                .filter(|n| matches!(n.outcome, NetworkOutcome::Rendered(_)))
                .count(),
            self.written(),
            self.rejected.len()
        );
        out
    }
}

/// `FILE:DOC KIND NAMESPACE/NAME: PATH: MESSAGE`, as `multusctl validate` prints it.
fn finding(o: &ObjectReport, path: &str, message: &str) -> String {
    let who = match (o.namespace.as_str(), o.name.as_str()) {
        ("", "") => "-".to_owned(),
        ("", n) => n.to_owned(),
        (ns, n) => format!("{ns}/{n}"),
    };
    let path = if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    };
    format!("{}:{} {} {who}: {path}{message}", o.file, o.index, o.kind)
}

fn files(w: &mut String, indent: &str, verb: &str, list: &[String]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(w, "{indent}{verb} {}", list.join(", "));
}
