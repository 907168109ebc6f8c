//! Namespace isolation (multus-spec §3.13): with Multus' `namespaceIsolation: true`, a pod may
//! use a NAD of another namespace only when that namespace is global (`globalNamespaces`).
//!
//! Applies to the elements of the networks annotation only, not to `clusterNetwork`,
//! `defaultNetworks` or the default-network annotation (as in Multus). One function, used by the
//! pod rules, the webhook and the CNI plugin alike.

/// The namespaces whose NADs every namespace may use, from Multus' `globalNamespaces` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalNamespaces(Vec<String>);

/// The namespace implied when `globalNamespaces` is unset.
pub const DEFAULT_GLOBAL_NAMESPACE: &str = "default";

impl GlobalNamespaces {
    /// Parse the comma-separated setting. Items are trimmed and empty items dropped; a missing or
    /// blank setting means `default` only (a set value replaces `default`, it does not add to it).
    pub fn from_setting(setting: Option<&str>) -> Self {
        let listed: Vec<String> = setting
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if listed.is_empty() {
            Self(vec![DEFAULT_GLOBAL_NAMESPACE.to_owned()])
        } else {
            Self(listed)
        }
    }

    pub fn contains(&self, namespace: &str) -> bool {
        self.0.iter().any(|ns| ns == namespace)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl Default for GlobalNamespaces {
    fn default() -> Self {
        Self::from_setting(None)
    }
}

/// A reference that namespace isolation forbids. The message names the pod's namespace, the NAD
/// and the setting to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "namespace isolation is on: a pod in namespace {pod_namespace:?} may not use network \
     {nad_namespace}/{nad_name}; use a network in {pod_namespace:?} or add {nad_namespace:?} to \
     globalNamespaces (now: {globals})"
)]
pub struct IsolationViolation {
    pub pod_namespace: String,
    pub nad_namespace: String,
    pub nad_name: String,
    globals: String,
}

/// May a pod in `pod_namespace` use NAD `nad_namespace/nad_name`? Yes when both namespaces are
/// the same or the NAD's namespace is global. Call only when isolation is enabled.
pub fn check_namespace_isolation(
    pod_namespace: &str,
    nad_namespace: &str,
    nad_name: &str,
    globals: &GlobalNamespaces,
) -> Result<(), IsolationViolation> {
    if pod_namespace == nad_namespace || globals.contains(nad_namespace) {
        return Ok(());
    }
    Err(IsolationViolation {
        pod_namespace: pod_namespace.to_owned(),
        nad_namespace: nad_namespace.to_owned(),
        nad_name: nad_name.to_owned(),
        globals: globals.as_slice().join(","),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_namespace_and_global_namespaces_are_allowed() {
        let globals = GlobalNamespaces::default();
        assert!(check_namespace_isolation("team-a", "team-a", "net", &globals).is_ok());
        assert!(check_namespace_isolation("team-a", "default", "net", &globals).is_ok());
    }

    #[test]
    fn other_namespaces_are_refused_with_an_actionable_message() {
        let globals = GlobalNamespaces::from_setting(Some("shared-nets"));
        let err = check_namespace_isolation("team-a", "team-b", "storage", &globals).unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace isolation is on: a pod in namespace \"team-a\" may not use network \
             team-b/storage; use a network in \"team-a\" or add \"team-b\" to globalNamespaces \
             (now: shared-nets)"
        );
        // A set value replaces the implied `default`.
        assert!(check_namespace_isolation("team-a", "default", "n", &globals).is_err());
    }

    #[test]
    fn setting_is_trimmed_and_blank_means_default() {
        let globals = GlobalNamespaces::from_setting(Some(" shared-nets , ,infra "));
        assert_eq!(globals.as_slice(), ["shared-nets", "infra"]);
        assert_eq!(
            GlobalNamespaces::from_setting(Some("  ")).as_slice(),
            ["default"]
        );
        assert_eq!(
            GlobalNamespaces::from_setting(Some("")).as_slice(),
            ["default"]
        );
    }
}
