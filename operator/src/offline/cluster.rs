//! The cluster in a folder: every manifest under it, checked by `multusctl`'s validation (the
//! same rule functions the admission webhook runs), split into the objects a cluster would have
//! accepted and the ones the webhook would have rejected.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod};
use multus_crds::rules::pod::PodRuleOptions;
use multus_crds::sriov::nics::SupportedNics;
use multus_crds::sriov::{SriovNetwork, SriovNetworkNodePolicy};
use multus_crds::{Diagnostics, FieldPath, NetworkAttachmentDefinition};
use serde_json::Value;

use super::OfflineError;
use crate::multusctl::input;
use crate::multusctl::objects::{Kind, classify, expand_lists, name_and_namespace};
use crate::multusctl::report::ObjectReport;
use crate::multusctl::validate::{Settings, validate_documents};
use crate::source::dir::manifest_files;

/// The folder under the source that holds the nodes' fake host trees, not manifests.
pub const NODES_DIR: &str = "nodes";

/// Namespaces every cluster has, whether or not the folder declares them.
const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The accepted objects of the folder, and the verdicts on the rest.
#[derive(Debug, Default)]
pub struct Cluster {
    pub files: usize,
    pub namespaces: BTreeSet<String>,
    pub nodes: Vec<Node>,
    pub nads: Vec<NetworkAttachmentDefinition>,
    pub pods: Vec<Pod>,
    pub policies: Vec<SriovNetworkNodePolicy>,
    pub networks: Vec<SriovNetwork>,
    /// Objects the rules reject (and documents that do not parse), with every error.
    pub rejected: Vec<ObjectReport>,
    /// Accepted objects that drew warnings.
    pub warned: Vec<ObjectReport>,
}

/// Read and check every manifest under `root` (except the host trees under `nodes/`).
pub fn load(root: &Path, operator_namespace: &str) -> Result<Cluster, OfflineError> {
    let files = manifest_files(root, &[NODES_DIR]).map_err(|source| OfflineError::ReadSource {
        path: root.to_owned(),
        source,
    })?;
    let docs = input::load(&files).map_err(|e| OfflineError::LoadManifests {
        path: root.to_owned(),
        message: e.to_string(),
    })?;
    let settings = Settings {
        pod_rules: PodRuleOptions {
            unknown_networks_are_errors: true,
            ..PodRuleOptions::default()
        },
        nics: Some(SupportedNics::builtin()),
        operator_namespace: operator_namespace.to_owned(),
    };
    let report = validate_documents(&docs, &settings);
    let mut cluster = Cluster {
        files: files.len(),
        namespaces: BUILTIN_NAMESPACES
            .iter()
            .map(|n| (*n).to_owned())
            .chain([operator_namespace.to_owned()])
            .collect(),
        ..Cluster::default()
    };
    let mut refused: HashSet<(String, usize, String, String, String)> = HashSet::new();
    for o in report.objects {
        if !o.valid {
            refused.insert((
                o.file.clone(),
                o.index,
                o.kind.clone(),
                o.namespace.clone(),
                o.name.clone(),
            ));
            cluster.rejected.push(o);
        } else if !o.warnings.is_empty() {
            cluster.warned.push(o);
        }
    }
    for doc in &docs {
        let Ok(value) = &doc.content else { continue };
        for mut value in expand_lists(value.clone()) {
            let kind = classify(&value);
            let (name, namespace) = name_and_namespace(&value);
            let namespace = namespace.unwrap_or_else(|| "default".to_owned());
            let key = (
                doc.file.clone(),
                doc.index,
                kind.label().to_owned(),
                namespace.clone(),
                name.clone(),
            );
            if refused.contains(&key) {
                continue;
            }
            let cluster_scoped = matches!(&kind, Kind::Other(k) if k == "Node" || k == "Namespace");
            if !cluster_scoped
                && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.insert("namespace".into(), Value::String(namespace.clone()));
            }
            let decoded = match &kind {
                Kind::NetworkAttachmentDefinition => NetworkAttachmentDefinition::from_value(value)
                    .map(|n| cluster.nads.push(n))
                    .map_err(|e| e.to_string()),
                Kind::Pod => serde_json::from_value(value)
                    .map(|p| cluster.pods.push(p))
                    .map_err(|e| e.to_string()),
                Kind::SriovNetworkNodePolicy => serde_json::from_value(value)
                    .map(|p| cluster.policies.push(p))
                    .map_err(|e| e.to_string()),
                Kind::SriovNetwork => serde_json::from_value(value)
                    .map(|n| cluster.networks.push(n))
                    .map_err(|e| e.to_string()),
                Kind::Other(k) if k == "Node" => serde_json::from_value(value)
                    .map(|n| cluster.nodes.push(n))
                    .map_err(|e| e.to_string()),
                Kind::Other(k) if k == "Namespace" => {
                    cluster.namespaces.insert(name.clone());
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(message) = decoded {
                let mut d = Diagnostics::new();
                d.error(FieldPath::root(), message);
                cluster.rejected.push(ObjectReport::new(
                    &doc.file,
                    doc.index,
                    doc.line,
                    kind.label(),
                    if cluster_scoped { "" } else { &namespace },
                    &name,
                    d,
                ));
            }
        }
    }
    Ok(cluster)
}
