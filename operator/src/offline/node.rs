//! One node's agent in the offline run: the CNI side writes the node's Multus config and NAD
//! files through the agent's own engines ([`reconcile_primary`], [`NadFiles`]); the SR-IOV side
//! discovers the NICs of the node's fake sysfs tree, builds the NodeState (spec from the
//! controller, status from discovery), the device-plugin pools and the upstream plugin's
//! config, and reports the VF plan instead of writing sysfs.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::annotations::{parse_default_network, parse_networks};
use multus_crds::attachments::{AttachmentInputs, NetworkRef, plan_attachments};
use multus_crds::constants::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use multus_crds::sriov::{SriovNetworkNodeStateSpec, SyncStatus};
use serde_json::json;

use super::plan::{Step, vf_plan};
use crate::agent::cni::follow::{PrimaryPass, PrimaryPaths, reconcile_primary};
use crate::agent::cni::metrics::AgentMetrics;
use crate::agent::cni::multusconf::{OUTPUT_PREFIX, Settings};
use crate::agent::cni::nadfiles::NadFiles;
use crate::agent::cni::{CniAgentError, files, under_root};
use crate::agent::sriov::discovery::{Nic, StaticAltNames, discover};
use crate::agent::sriov::status::status_of;
use crate::agent::sriov::sysfs::Sysfs;
use crate::deviceplugin::{build_pools, upstream};

/// Outputs of a node, relative to its host root.
pub const NODESTATE_FILE: &str = "sriovnetworknodestate.yaml";
pub const POOLS_FILE: &str = "device-plugin-pools.json";
pub const UPSTREAM_CONFIG: &str = "etc/pcidp/config.json";
const CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// What the controller decided for this node.
pub struct Desired<'a> {
    pub operator_ns: &'a str,
    pub resource_prefix: &'a str,
    /// `Some`: selected for SR-IOV, with this spec.
    pub spec: Option<SriovNetworkNodeStateSpec>,
    pub nads: &'a [NetworkAttachmentDefinition],
    pub pods: Vec<&'a Pod>,
}

/// What one pass did on one node.
#[derive(Debug)]
pub struct NodeReport {
    pub name: String,
    /// The fake host tree it was read from, if the folder has one.
    pub tree: Option<PathBuf>,
    /// Discovered PFs, one line each.
    pub nics: Vec<String>,
    pub discovery_error: Option<String>,
    /// Files written this pass / removed, relative to the node's host root.
    pub written: Vec<String>,
    pub removed: Vec<String>,
    /// The generated Multus config's file, or why there is none.
    pub multus_config: Result<String, String>,
    /// Rendered NAD files present after the pass.
    pub nad_files: Vec<String>,
    pub nad_files_rejected: usize,
    /// `None`: not selected by the node selector (no NodeState).
    pub sriov: Option<SriovReport>,
    /// The pods scheduled here, each with the interfaces it gets.
    pub pods: Vec<String>,
}

#[derive(Debug, Default)]
pub struct SriovReport {
    pub interfaces: usize,
    pub sync_status: Option<SyncStatus>,
    pub plan: Vec<Step>,
    /// `resource: N VFs, H healthy`.
    pub pools: Vec<String>,
}

/// A node's host root under the output directory, and the agent state kept between passes.
pub struct NodeHost {
    name: String,
    root: PathBuf,
    settings: Settings,
    nad_files: Option<NadFiles>,
}

impl NodeHost {
    pub fn new(name: &str, root: PathBuf, settings: Settings) -> Self {
        Self {
            name: name.to_owned(),
            root,
            settings,
            nad_files: None,
        }
    }

    /// Discover the NICs of the node's fake sysfs tree (`<tree>/sys`); no tree: no NICs.
    pub fn discover(tree: Option<&Path>) -> Result<Vec<Nic>, String> {
        let Some(sys) = tree.map(|t| t.join("sys")).filter(|s| s.is_dir()) else {
            return Ok(Vec::new());
        };
        let sysfs = Sysfs::new(&sys);
        discover(&sysfs, &StaticAltNames::default())
            .map_err(|e| format!("reading {}: {e}", sysfs.pci_devices().display()))
    }

    /// One pass of both sides of the agent.
    pub fn pass(
        &mut self,
        tree: Option<&Path>,
        nics: Result<&[Nic], String>,
        desired: &Desired<'_>,
    ) -> Result<NodeReport, CniAgentError> {
        let mut report = NodeReport {
            name: self.name.clone(),
            tree: tree.map(Path::to_owned),
            nics: Vec::new(),
            discovery_error: None,
            written: Vec::new(),
            removed: Vec::new(),
            multus_config: Err(String::new()),
            nad_files: Vec::new(),
            nad_files_rejected: 0,
            sriov: None,
            pods: Vec::new(),
        };
        self.cni(tree, desired.nads, &mut report)?;
        let nics = match nics {
            Ok(nics) => nics,
            Err(e) => {
                report.discovery_error = Some(e);
                &[]
            }
        };
        report.nics = nics
            .iter()
            .map(|n| {
                let s = &n.status;
                format!(
                    "{} {} ({}:{} {}), {}/{} VFs",
                    s.pci_address, s.name, s.vendor, s.device_id, s.driver, s.num_vfs, s.total_vfs
                )
            })
            .collect();
        self.sriov(nics, desired, &mut report)?;
        report.pods = desired
            .pods
            .iter()
            .map(|p| pod_line(p, desired.nads))
            .collect();
        Ok(report)
    }

    fn cni(
        &mut self,
        tree: Option<&Path>,
        nads: &[NetworkAttachmentDefinition],
        report: &mut NodeReport,
    ) -> Result<(), CniAgentError> {
        // The primary network's config, as the cluster network installed it on the node.
        let conf_dir = under_root(&self.root, CNI_CONF_DIR);
        if let Some(from) = tree.map(|t| under_root(t, CNI_CONF_DIR)) {
            for entry in std::fs::read_dir(&from).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(OUTPUT_PREFIX) || !entry.path().is_file() {
                    continue;
                }
                let body =
                    std::fs::read(entry.path()).map_err(|source| CniAgentError::ReadFile {
                        path: entry.path(),
                        source,
                    })?;
                self.put(&format!("etc/cni/net.d/{name}"), &body, true, report)?;
            }
        }
        let paths = PrimaryPaths {
            cni_conf_dir: conf_dir.clone(),
            readiness: None,
        };
        report.multus_config = if conf_dir.is_dir() {
            match reconcile_primary(&paths, &self.settings) {
                Ok(pass) => {
                    let file = existing_multus_config(&conf_dir);
                    if let PrimaryPass::Written(f) = pass {
                        report.written.push(format!("etc/cni/net.d/{f}"));
                    }
                    file.ok_or_else(|| "not written".to_owned())
                }
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err(format!(
                "no primary CNI config (the folder has no {}/{}/etc/cni/net.d)",
                super::cluster::NODES_DIR,
                self.name
            ))
        };

        let dir = under_root(&self.root, multus_crds::multus_config::DEFAULT_CONF_DIR);
        let nad_files = match &mut self.nad_files {
            Some(n) => n,
            None => self
                .nad_files
                .insert(NadFiles::open(&dir, AgentMetrics::default())?),
        };
        let before = contents(&dir);
        let converged = nad_files.converge(nads)?;
        let after = contents(&dir);
        report.nad_files_rejected = converged.rejected;
        report.nad_files = after.keys().cloned().collect();
        let rel = |f: &String| format!("etc/cni/multus/net.d/{f}");
        report.written.extend(
            after
                .iter()
                .filter(|(f, body)| before.get(*f) != Some(*body))
                .map(|(f, _)| rel(f)),
        );
        report
            .removed
            .extend(before.keys().filter(|f| !after.contains_key(*f)).map(rel));
        Ok(())
    }

    fn sriov(
        &mut self,
        nics: &[Nic],
        desired: &Desired<'_>,
        report: &mut NodeReport,
    ) -> Result<(), CniAgentError> {
        let Some(spec) = &desired.spec else {
            for f in [NODESTATE_FILE, POOLS_FILE, UPSTREAM_CONFIG] {
                if files::remove(&self.root.join(f))? {
                    report.removed.push(f.to_owned());
                }
            }
            return Ok(());
        };
        let plan = vf_plan(&spec.interfaces, nics);
        // Nothing is applied offline: the node is in sync only if it already matches the spec.
        let sync = if plan.iter().any(|s| s.change) {
            SyncStatus::InProgress
        } else {
            SyncStatus::Succeeded
        };
        let status = status_of(nics, &spec.interfaces, Some(sync), "");
        let state = json!({
            "apiVersion": "sriovnetwork.openshift.io/v1",
            "kind": "SriovNetworkNodeState",
            "metadata": {"name": self.name, "namespace": desired.operator_ns},
            "spec": spec,
            "status": status,
        });
        let yaml = serde_saphyr::to_string(&state).map_err(|e| CniAgentError::WriteFile {
            path: self.root.join(NODESTATE_FILE),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.put(NODESTATE_FILE, yaml.as_bytes(), false, report)?;

        let pools = build_pools(&spec.interfaces, nics);
        let mut pool_json = serde_json::Map::new();
        let mut lines = Vec::new();
        for pool in pools.values() {
            let resource = format!("{}/{}", desired.resource_prefix, pool.resource_name);
            let healthy = pool.devices.iter().filter(|d| d.healthy).count();
            lines.push(format!(
                "{resource}: {} VF(s), {healthy} healthy",
                pool.devices.len()
            ));
            let devices: Vec<_> = pool
                .devices
                .iter()
                .map(|d| {
                    json!({
                        "id": d.pci, "pf": d.pf_pci, "vf": d.vf_index, "numaNode": d.numa_node,
                        "health": if d.healthy { "Healthy" } else { "Unhealthy" },
                    })
                })
                .collect();
            pool_json.insert(
                resource,
                json!({"deviceType": pool.device_type.as_str(), "isRdma": pool.is_rdma, "devices": devices}),
            );
        }
        let mut body = serde_json::to_vec_pretty(&pool_json).unwrap_or_default();
        body.push(b'\n');
        self.put(POOLS_FILE, &body, false, report)?;

        let vendor = |pci: &str| {
            nics.iter()
                .find(|n| n.status.pci_address == pci)
                .map(|n| n.status.vendor.clone())
        };
        let conf = upstream::render(&spec.interfaces, vendor);
        let mut body = serde_json::to_vec_pretty(&conf).unwrap_or_default();
        body.push(b'\n');
        self.put(UPSTREAM_CONFIG, &body, false, report)?;

        report.sriov = Some(SriovReport {
            interfaces: spec.interfaces.len(),
            sync_status: Some(sync),
            plan,
            pools: lines,
        });
        Ok(())
    }

    /// Write `rel` under the node's root unless it already holds `body`.
    fn put(
        &self,
        rel: &str,
        body: &[u8],
        private: bool,
        report: &mut NodeReport,
    ) -> Result<(), CniAgentError> {
        let path = self.root.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == body) {
            return Ok(());
        }
        if private {
            files::write_private(&path, body)?;
        } else {
            files::write_atomic(&path, body, 0o644)?;
        }
        report.written.push(rel.to_owned());
        Ok(())
    }
}

/// `ns/name: eth0 ← cluster-network, net1 ← ns/nad (resource), …`: the interfaces Multus gives
/// the pod, from the plugin's own plan function (the pod passed the rules, so its annotations
/// parse).
fn pod_line(pod: &Pod, nads: &[NetworkAttachmentDefinition]) -> String {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let selections = annotations
        .get(NETWORKS_ANNOTATION)
        .and_then(|v| parse_networks(v).ok())
        .unwrap_or_default();
    let default_override = annotations
        .get(DEFAULT_NETWORK_ANNOTATION)
        .and_then(|v| parse_default_network(v).ok());
    let inputs = AttachmentInputs {
        pod_namespace: namespace,
        runtime_ifname: "eth0",
        cluster_network: "cluster-network",
        default_network_override: default_override.as_ref(),
        default_networks: &[],
        system_namespaces: &[],
        multus_namespace: "kube-system",
        selections: &selections,
    };
    let interfaces: Vec<String> = plan_attachments(&inputs)
        .iter()
        .map(|a| {
            let resource = match &a.network {
                NetworkRef::Nad { namespace, name } => nads
                    .iter()
                    .find(|n| {
                        n.metadata.namespace.as_deref() == Some(*namespace)
                            && n.metadata.name.as_deref() == Some(*name)
                    })
                    .and_then(|n| n.resource_name()),
                NetworkRef::Configured { .. } => None,
            };
            match resource {
                Some(r) => format!("{} ← {} ({r})", a.ifname, a.network),
                None => format!("{} ← {}", a.ifname, a.network),
            }
        })
        .collect();
    format!(
        "{namespace}/{}: {}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        interfaces.join(", ")
    )
}

fn existing_multus_config(dir: &Path) -> Option<String> {
    use crate::agent::cni::multusconf::{OUTPUT_CONF, OUTPUT_CONFLIST};
    [OUTPUT_CONFLIST, OUTPUT_CONF]
        .into_iter()
        .find(|f| dir.join(f).is_file())
        .map(str::to_owned)
}

/// The files in `dir` and their contents (none when it does not exist).
fn contents(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (!name.starts_with('.')).then_some(())?;
            Some((name, std::fs::read(e.path()).ok()?))
        })
        .collect()
}
