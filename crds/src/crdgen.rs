//! CustomResourceDefinitions generated from the Rust types: the NAD and the three SR-IOV kinds.
//!
//! The YAML files under `crds/` are this module's output, committed; the drift test
//! (`crds/tests/crd_drift.rs`) fails when they differ from what the code generates, and rewrites
//! them when run with `MULTUS_REGENERATE_CRDS=1`. `multusctl crds` prints [`all_yaml`].

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::nad::NetworkAttachmentDefinition;
use crate::sriov::{SriovNetwork, SriovNetworkNodePolicy, SriovNetworkNodeState};

/// First line of every committed CRD file.
pub const GENERATED_HEADER: &str = "# Generated from the multus-rs Rust types; do not edit.\n\
# Regenerate: MULTUS_REGENERATE_CRDS=1 cargo test -p multus-crds --test crd_drift\n";

/// Why a CRD could not be rendered as YAML.
#[derive(Debug, thiserror::Error)]
pub enum CrdGenError {
    #[error("CRD {name}: cannot convert to JSON: {source}")]
    ToJson {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("CRD {name}: cannot write YAML: {source}")]
    ToYaml {
        name: String,
        #[source]
        source: serde_saphyr::SerializeError,
    },
}

/// Every CRD multus-rs installs, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        nad_crd(),
        SriovNetworkNodePolicy::crd(),
        SriovNetwork::crd(),
        SriovNetworkNodeState::crd(),
    ]
}

/// The NAD CRD. The derived schema requires `spec`, but a NAD without one is legal
/// (multi-net-spec §3.2.4) and upstream's CRD does not require it, so the requirement is dropped.
pub fn nad_crd() -> CustomResourceDefinition {
    let mut crd = NetworkAttachmentDefinition::crd();
    for version in &mut crd.spec.versions {
        let root = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut());
        if let Some(root) = root {
            if let Some(required) = root.required.as_mut() {
                required.retain(|field| field != "spec");
            }
            if root.required.as_ref().is_some_and(Vec::is_empty) {
                root.required = None;
            }
        }
    }
    crd
}

/// File name of a CRD under `crds/`: `<group>_<plural>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// One CRD as a YAML document (no `---`, no header).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdGenError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    // Through serde_json::Value so that fields kube leaves at their defaults are dropped the same
    // way `kubectl get -o yaml` drops them.
    let value = serde_json::to_value(crd).map_err(|source| CrdGenError::ToJson {
        name: name.clone(),
        source,
    })?;
    serde_saphyr::to_string(&value).map_err(|source| CrdGenError::ToYaml { name, source })
}

/// The committed file's content: [`GENERATED_HEADER`] then the YAML.
pub fn file_text(crd: &CustomResourceDefinition) -> Result<String, CrdGenError> {
    Ok(format!("{GENERATED_HEADER}{}", to_yaml(crd)?))
}

/// Every CRD as one multi-document YAML stream (`kubectl apply -f -`).
pub fn all_yaml() -> Result<String, CrdGenError> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_group_and_plural() {
        let names: Vec<String> = all().iter().map(file_name).collect();
        assert_eq!(
            names,
            vec![
                "k8s.cni.cncf.io_network-attachment-definitions.yaml",
                "sriovnetwork.openshift.io_sriovnetworknodepolicies.yaml",
                "sriovnetwork.openshift.io_sriovnetworks.yaml",
                "sriovnetwork.openshift.io_sriovnetworknodestates.yaml",
            ]
        );
    }

    #[test]
    fn nad_schema_does_not_require_spec() {
        let crd = nad_crd();
        let root = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap();
        assert!(!root.required.iter().flatten().any(|f| f == "spec"));
        assert!(root.properties.as_ref().unwrap().contains_key("spec"));
        // The derived CRD does require it: the fix-up is what makes the difference.
        let derived = NetworkAttachmentDefinition::crd();
        let derived_root = derived.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap();
        assert!(derived_root.required.iter().flatten().any(|f| f == "spec"));
    }

    #[test]
    fn sriov_crds_are_namespaced_with_status_subresource() {
        for crd in all().iter().skip(1) {
            assert_eq!(crd.spec.group, "sriovnetwork.openshift.io");
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1");
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
        }
    }

    #[test]
    fn yaml_stream_parses_back_to_the_same_crds() {
        let stream = all_yaml().unwrap();
        let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&stream).unwrap();
        assert_eq!(docs, all());
    }

    #[test]
    fn printer_columns_show_what_kubectl_get_needs() {
        let columns = |crd: &CustomResourceDefinition| -> Vec<String> {
            crd.spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .collect()
        };
        let crds = all();
        assert_eq!(
            columns(&crds[1]),
            ["Resource", "NumVFs", "Priority", "Device Type", "Age"]
        );
        assert_eq!(
            columns(&crds[2]),
            ["Resource", "Target Namespace", "VLAN", "Ready", "Age"]
        );
        assert_eq!(
            columns(&crds[3]),
            [
                "Sync Status",
                "Desired Sync State",
                "Current Sync State",
                "Age"
            ]
        );
    }
}
