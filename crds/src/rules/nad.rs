//! Rules for a NetworkAttachmentDefinition on its own: its name, its `resourceName` annotation
//! and its CNI config (multi-net-spec §3, multus-spec §1.1–§1.3, §4.6).
//!
//! The upstream admission webhook's checks are all here, without its quirks (see
//! docs/decisions.md): the name is a plain DNS-1123 label, and a config without `name` is
//! checked as Multus will run it, with the NAD's name injected.

use crate::{
    Diagnostics, FieldPath, NetworkAttachmentDefinition,
    cni::CniVersion,
    constants::RESOURCE_NAME_ANNOTATION,
    names::{validate_dns1123_label, validate_dns1123_subdomain},
    rules::cniconf::{NameSource, validate_cni_config_with},
};

/// Longest name part of a qualified name (`domain/name`).
const MAX_QUALIFIED_NAME_LEN: usize = 63;

/// Every problem of a NAD that can be seen without looking at other objects.
pub fn validate_nad(nad: &NetworkAttachmentDefinition) -> Diagnostics {
    let mut d = Diagnostics::new();
    let nad_name = nad.metadata.name.as_deref().unwrap_or_default();
    check_name(nad, &mut d);
    check_resource_name(nad, &mut d);

    // An empty config is legal: Multus then uses the CNI file named after the NAD in its confDir.
    let Some(config) = nad.config() else {
        return d;
    };
    let base = FieldPath::new("spec").field("config");
    let (list, found) =
        validate_cni_config_with(config, &base, NameSource::InjectedIfMissing(nad_name));
    d.extend(found);
    let Some(list) = list else {
        return d;
    };
    if !list.name().is_empty() && !nad_name.is_empty() && list.name() != nad_name {
        d.warning(
            base.field("name"),
            format!(
                "is {:?} but the NAD is named {nad_name:?}; the multi-net-spec recommends they \
                 match (leave name out and Multus injects the NAD's name)",
                list.name()
            ),
        );
    }
    if let Ok(v) = list.effective_version()
        && list.cni_version().is_some_and(|s| !s.is_empty())
        && v < CniVersion::V0_4_0
    {
        d.warning(
            base.field("cniVersion"),
            format!(
                "{v} is older than 0.4.0: runtimes cannot CHECK this network and its plugins get \
                 no prevResult on DEL"
            ),
        );
    }
    d
}

fn check_name(nad: &NetworkAttachmentDefinition, d: &mut Diagnostics) {
    let path = FieldPath::new("metadata").field("name");
    match nad.metadata.name.as_deref() {
        // On CREATE with generateName the API server has not picked a name yet.
        None | Some("") if nad.metadata.generate_name.is_some() => {}
        None | Some("") => d.error(path, "is required"),
        Some(name) => {
            if let Err(e) = validate_dns1123_label(name) {
                d.error(
                    path,
                    format!("a NAD name is referenced from pod annotations and must be a DNS-1123 label: {e}"),
                );
            }
        }
    }
}

fn check_resource_name(nad: &NetworkAttachmentDefinition, d: &mut Diagnostics) {
    let Some(value) = nad
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESOURCE_NAME_ANNOTATION))
    else {
        return;
    };
    let path = FieldPath::new("metadata")
        .field("annotations")
        .key(RESOURCE_NAME_ANNOTATION);
    if let Err(e) = validate_extended_resource_name(value) {
        d.error(path, e);
    }
}

/// A Kubernetes extended resource name, as a device plugin registers it: `domain/name`, the domain
/// a DNS-1123 subdomain outside `kubernetes.io`, the name at most 63 letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit.
pub fn validate_extended_resource_name(value: &str) -> Result<(), String> {
    let example = "e.g. intel.com/intel_sriov_netdevice";
    let Some((domain, name)) = value.split_once('/') else {
        return Err(format!("{value:?} must be <domain>/<name>, {example}"));
    };
    if name.contains('/') {
        return Err(format!("{value:?} must contain exactly one '/', {example}"));
    }
    validate_dns1123_subdomain(domain).map_err(|e| format!("domain of {value:?}: {e}"))?;
    if domain == "kubernetes.io" || domain.ends_with(".kubernetes.io") {
        return Err(format!(
            "{value:?} is in the Kubernetes-native domain {domain:?}; device-plugin resources use their own domain"
        ));
    }
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name.len() > MAX_QUALIFIED_NAME_LEN
        || !inner_ok
        || !edge_ok(bytes.first())
        || !edge_ok(bytes.last())
    {
        return Err(format!(
            "name part {name:?} of {value:?} must be 1 to {MAX_QUALIFIED_NAME_LEN} letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn nad(name: &str, config: Option<&str>) -> NetworkAttachmentDefinition {
        let mut n = NetworkAttachmentDefinition::new(name, Default::default());
        n.spec.config = config.map(str::to_owned);
        n
    }

    fn with_resource(
        mut n: NetworkAttachmentDefinition,
        value: &str,
    ) -> NetworkAttachmentDefinition {
        n.metadata.annotations =
            Some([(RESOURCE_NAME_ANNOTATION.to_owned(), value.to_owned())].into());
        n
    }

    fn found(d: &Diagnostics) -> Vec<(Severity, String)> {
        d.iter().map(|x| (x.severity, x.path.to_string())).collect()
    }

    #[test]
    fn a_good_nad_passes() {
        let n = with_resource(
            nad(
                "storage-net",
                Some(
                    r#"{"cniVersion":"1.0.0","name":"storage-net","plugins":[{"type":"macvlan","master":"ens4","ipam":{"type":"static"},"capabilities":{"ips":true}}]}"#,
                ),
            ),
            "example.com/sriov_vf",
        );
        assert!(validate_nad(&n).is_empty(), "{:?}", validate_nad(&n));
    }

    #[test]
    fn empty_config_is_allowed() {
        assert!(validate_nad(&nad("a", None)).is_empty());
        assert!(validate_nad(&nad("a", Some(""))).is_empty());
    }

    #[test]
    fn name_is_a_dns_label_without_the_webhook_quirks() {
        // Upstream's regex rejects a leading digit 0 and accepts a leading '-'; we do the reverse.
        assert!(validate_nad(&nad("0net", None)).is_empty());
        for bad in ["-net", "Net", "a.b", "a_b"] {
            assert_eq!(
                found(&validate_nad(&nad(bad, None))),
                vec![(Severity::Error, "metadata.name".to_owned())],
                "{bad}"
            );
        }
        let mut unnamed = nad("", None);
        assert_eq!(
            found(&validate_nad(&unnamed)),
            vec![(Severity::Error, "metadata.name".to_owned())]
        );
        unnamed.metadata.generate_name = Some("net-".into());
        assert!(validate_nad(&unnamed).is_empty());
    }

    #[test]
    fn config_rules_apply_under_spec_config() {
        let d = validate_nad(&nad("a", Some("not json")));
        assert_eq!(found(&d), vec![(Severity::Error, "spec.config".to_owned())]);
        let d = validate_nad(&nad(
            "a",
            Some(r#"{"cniVersion":"1.0.0","plugins":[{"type":"/bin/sh"}]}"#),
        ));
        assert_eq!(
            found(&d),
            vec![(Severity::Error, "spec.config.plugins[0].type".to_owned())]
        );
    }

    #[test]
    fn missing_name_is_fine_and_a_different_name_is_a_warning() {
        assert!(
            validate_nad(&nad(
                "a",
                Some(r#"{"cniVersion":"1.0.0","type":"macvlan"}"#)
            ))
            .is_empty()
        );
        let d = validate_nad(&nad(
            "a",
            Some(r#"{"cniVersion":"1.0.0","name":"b","type":"macvlan"}"#),
        ));
        assert_eq!(
            found(&d),
            vec![(Severity::Warning, "spec.config.name".to_owned())]
        );
        assert!(d.iter().next().unwrap().message.contains("injects"));
    }

    #[test]
    fn old_versions_are_a_warning() {
        let d = validate_nad(&nad(
            "a",
            Some(r#"{"cniVersion":"0.3.1","type":"macvlan"}"#),
        ));
        assert_eq!(
            found(&d),
            vec![(Severity::Warning, "spec.config.cniVersion".to_owned())]
        );
        assert!(
            validate_nad(&nad(
                "a",
                Some(r#"{"cniVersion":"0.4.0","type":"macvlan"}"#)
            ))
            .is_empty()
        );
    }

    #[test]
    fn resource_name_is_an_extended_resource_name() {
        let path = "metadata.annotations[k8s.v1.cni.cncf.io/resourceName]".to_owned();
        for good in [
            "intel.com/intel_sriov_netdevice",
            "openshift.io/sriov.nic-1",
            "a/b",
        ] {
            assert!(
                validate_nad(&with_resource(nad("a", None), good)).is_empty(),
                "{good}"
            );
        }
        for bad in [
            "sriov",
            "intel.com/",
            "/x",
            "a/b/c",
            "Intel.com/x",
            "kubernetes.io/x",
            "x.kubernetes.io/y",
            "intel.com/-x",
            "intel.com/a b",
            "",
        ] {
            assert_eq!(
                found(&validate_nad(&with_resource(nad("a", None), bad))),
                vec![(Severity::Error, path.clone())],
                "{bad}"
            );
        }
        assert!(validate_extended_resource_name(&format!("a.com/{}", "x".repeat(64))).is_err());
    }
}
