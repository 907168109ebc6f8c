//! What the server serves: each resource's group, version, names, scope and subresources.
//!
//! Built-in resources are fixed; a CRD adds one entry per served version when it is created.

use serde_json::Value;

#[derive(Clone, Debug)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// The `openAPIV3Schema` of a CRD version; built-ins are not schema-checked.
    pub schema: Option<Value>,
    /// Served from a CRD: generation is always tracked and strategic merge patch is refused.
    pub custom: bool,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Objects are stored per group and resource, whatever version they were written in.
    pub fn storage_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// Resources whose generation counts spec changes.
    pub fn tracks_generation(&self) -> bool {
        self.custom || self.status_subresource
    }
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    short_names: &[&str],
) -> ResourceDef {
    ResourceDef {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_lowercase(),
        kind: kind.to_owned(),
        namespaced,
        status_subresource: status,
        short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
        categories: Vec::new(),
        schema: None,
        custom: false,
    }
}

/// The built-in resources the issue lists.
pub fn builtins() -> Vec<ResourceDef> {
    vec![
        builtin("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
        builtin("", "v1", "nodes", "Node", false, true, &["no"]),
        builtin("", "v1", "pods", "Pod", true, true, &["po"]),
        builtin("", "v1", "events", "Event", true, false, &["ev"]),
        builtin("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
        builtin("", "v1", "secrets", "Secret", true, false, &[]),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            &["sa"],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            &["ev"],
        ),
        // Workloads are stored only (no controllers run them): the webhook validates their pod
        // templates and examples include them.
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            &["deploy"],
        ),
        builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            true,
            &["sts"],
        ),
        builtin("apps", "v1", "daemonsets", "DaemonSet", true, true, &["ds"]),
        builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            true,
            &["rs"],
        ),
        builtin("batch", "v1", "jobs", "Job", true, true, &[]),
        builtin("batch", "v1", "cronjobs", "CronJob", true, true, &["cj"]),
        // Read by the eviction subresource; no disruption controller maintains their status.
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            true,
            &["pdb"],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            false,
            &[],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            false,
            &[],
        ),
    ]
}

/// Every served resource, looked up by group, version and plural.
#[derive(Clone, Debug)]
pub struct Registry {
    defs: Vec<ResourceDef>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { defs: builtins() }
    }
}

impl Registry {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    pub fn all(&self) -> &[ResourceDef] {
        &self.defs
    }

    /// Replace what a CRD serves (all its versions) with `defs`.
    pub fn set_custom(&mut self, group: &str, plural: &str, defs: Vec<ResourceDef>) {
        self.remove_custom(group, plural);
        self.defs.extend(defs);
    }

    pub fn remove_custom(&mut self, group: &str, plural: &str) {
        self.defs
            .retain(|d| !(d.custom && d.group == group && d.plural == plural));
    }
}
