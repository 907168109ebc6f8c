//! Rules for a CNI network configuration, wherever it appears: a NAD's `spec.config`, a static
//! delegate of the Multus config, a file in a CNI config directory.
//!
//! Everything libcni rejects when parsing (CNI spec / multus-spec §4.4) is an error here, with the
//! path of the offending key, plus what libcni only finds out when a pod starts: an unusable
//! network name or version, and a plugin `type` that is a path. Paths are placed under the
//! caller's `base` (`spec.config` for a NAD, the root for a file).

use crate::{
    Diagnostics, FieldPath,
    cni::{CniVersion, ConfigForm, NetworkConfigList, delegate::with_network_name},
    names::{validate_cni_name, validate_plugin_type},
};

/// Whether a configuration must carry its own `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSource<'a> {
    /// A file or a static delegate: nothing supplies a name, so it is required.
    Required,
    /// A NAD's config: Multus injects the NAD's name when `name` is absent or empty, and the
    /// config is checked as it will run, with that name.
    InjectedIfMissing(&'a str),
}

/// Parse and check a configuration whose `name` is required (a file, a static delegate). Returns
/// the parsed config when it could be read, so callers can go on with it.
pub fn validate_cni_config(
    text: &str,
    base: &FieldPath,
) -> (Option<NetworkConfigList>, Diagnostics) {
    validate_cni_config_with(text, base, NameSource::Required)
}

/// [`validate_cni_config`] with the name rule of the caller's context.
pub fn validate_cni_config_with(
    text: &str,
    base: &FieldPath,
    names: NameSource<'_>,
) -> (Option<NetworkConfigList>, Diagnostics) {
    let parsed = match names {
        NameSource::Required => NetworkConfigList::parse_any(text),
        NameSource::InjectedIfMissing(name) => with_network_name(text, name),
    };
    match parsed {
        Ok(list) => {
            let d = validate_network_config(&list, base, names);
            (Some(list), d)
        }
        Err(e) => {
            let mut d = Diagnostics::new();
            let e = e.under(base);
            d.error(e.path.clone(), e.message());
            (None, d)
        }
    }
}

/// Check an already parsed configuration.
pub fn validate_network_config(
    list: &NetworkConfigList,
    base: &FieldPath,
    names: NameSource<'_>,
) -> Diagnostics {
    let mut d = Diagnostics::new();
    check_name(list, base, names, &mut d);
    check_version(list, base, &mut d);
    if list.plugins().is_empty() {
        d.error(
            base.field("plugins"),
            "must list at least one plugin (there is no \"plugins\" key; plugins in a \
             <confdir>/<name>/ directory are not loaded for this configuration)",
        );
    }
    // Readers disagree on such a document: libcni and the upstream webhook read the list,
    // Multus CNI's plugin runs it as the one plugin `type` names. We read the list (with the
    // webhook, so what was admitted is what runs) and say so (docs/decisions.md, "What parsing
    // accepts").
    if list.form() == ConfigForm::List
        && list
            .get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| !t.is_empty())
    {
        d.warning(
            base.field("type"),
            "is ignored: with \"plugins\" this is a configuration list, each plugin with its \
             own type (Multus CNI would run the whole document as this one plugin instead); \
             remove \"type\" or \"plugins\"",
        );
    }
    for (i, plugin) in list.plugins().iter().enumerate() {
        // A single config is its own plugin object: its keys sit at the top. The path is built
        // only for a finding; this runs for every delegate of every pod.
        let path = || match list.form() {
            ConfigForm::Single => base.clone(),
            ConfigForm::List => base.field("plugins").index(i),
        };
        check_plugin(plugin, path, &mut d);
    }
    d
}

fn check_name(
    list: &NetworkConfigList,
    base: &FieldPath,
    names: NameSource<'_>,
    d: &mut Diagnostics,
) {
    let path = || base.field("name");
    match (list.name(), names) {
        ("", NameSource::Required) => d.error(
            path(),
            "is required: the network name, letters, digits, '_', '.' and '-'",
        ),
        ("", NameSource::InjectedIfMissing(_)) => {}
        (name, _) => {
            if let Err(e) = validate_cni_name(name) {
                d.error(path(), format!("is not a valid CNI network name: {e}"));
            }
        }
    }
}

fn check_version(list: &NetworkConfigList, base: &FieldPath, d: &mut Diagnostics) {
    let path = || base.field("cniVersion");
    let declared = list.cni_version().filter(|v| !v.is_empty());
    if declared.is_none() && list.cni_versions().is_empty() {
        d.warning(
            path(),
            "is not set, so runtimes use 0.1.0 (no CHECK, no GC); set the version the plugins \
             support, e.g. \"1.0.0\"",
        );
    }
    match list.effective_version() {
        Err(e) => d.error(path(), e.to_string()),
        Ok(v) if !v.is_supported() => d.error(path(), unsupported(v)),
        Ok(v) => {
            // Switches for operations the version does not have do nothing; say so rather than
            // let someone believe they turned something off.
            if list.disable_check() && !v.supports_check() {
                d.warning(
                    base.field("disableCheck"),
                    format!("has no effect: version {v} has no CHECK (it exists from 0.4.0)"),
                );
            }
            if list.disable_gc() && !v.supports_gc() {
                d.warning(
                    base.field("disableGC"),
                    format!("has no effect: version {v} has no GC (it exists from 1.1.0)"),
                );
            }
        }
    }
    // "1.0" means 1.0.0 to libcni's parser, but Go plugins compare version strings exactly and
    // reject it; say so before a pod fails.
    if let Some(text) = declared
        && let Ok(v) = CniVersion::parse(text)
        && v.is_supported()
        && text != v.to_string()
    {
        d.warning(
            path(),
            format!(
                "write \"{v}\" in full: plugins match version strings exactly and reject {text:?}"
            ),
        );
    }
}

/// The message for a version we do not speak, listing those we do.
pub(crate) fn unsupported(v: CniVersion) -> String {
    let all: Vec<String> = CniVersion::SUPPORTED
        .iter()
        .map(ToString::to_string)
        .collect();
    format!(
        "version {v} is not supported; use one of {}",
        all.join(", ")
    )
}

fn check_plugin(
    plugin: &crate::cni::PluginConfig,
    path: impl Fn() -> FieldPath,
    d: &mut Diagnostics,
) {
    if let Err(e) = validate_plugin_type(plugin.plugin_type()) {
        d.error(path().field("type"), e);
    }
    // `"ipam": {}` is the usual way to say "no IPAM" (SR-IOV, host-device), so only a type that
    // is present is checked; it names a binary just like `type`.
    if let Some(ipam_type) = plugin.ipam_type().filter(|t| !t.is_empty())
        && let Err(e) = validate_plugin_type(ipam_type)
    {
        d.error(path().field("ipam").field("type"), e);
    }
    for key in plugin.reserved_keys() {
        // `cni.dev/...` is a map key, not a nested field: bracket it.
        let key_path = if key.contains(['.', '/']) {
            path().key(key)
        } else {
            path().field(key)
        };
        d.warning(
            key_path,
            "is reserved: the runtime generates it for each call and may overwrite it; an \
             administrator's configuration should not set it",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"edge-net","plugins":[
        {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/16"}]]}},
        {"type":"tuning","sysctl":{"net.core.somaxconn":"500"}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    fn at(text: &str, base: &str) -> (Option<NetworkConfigList>, Diagnostics) {
        validate_cni_config(text, &FieldPath::new(base))
    }

    fn paths(d: &Diagnostics) -> Vec<String> {
        d.iter().map(|x| x.path.to_string()).collect()
    }

    #[test]
    fn a_good_list_and_a_good_single_config_pass() {
        let (list, d) = at(BRIDGE, "spec.config");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(list.unwrap().plugins().len(), 3);
        let (_, d) = at(
            r#"{"cniVersion":"0.4.0","name":"m","type":"macvlan","ipam":{}}"#,
            "",
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn parse_errors_become_diagnostics_at_the_key() {
        for (text, path) in [
            ("{", "spec.config"),
            ("[1]", "spec.config"),
            (r#"{"name":"n","plugins":[]}"#, "spec.config.plugins"),
            (
                r#"{"name":"n","plugins":[{"type":"a"},{"x":1}]}"#,
                "spec.config.plugins[1].type",
            ),
            (
                r#"{"name":"n","type":"a","capabilities":{"ips":"yes"}}"#,
                "spec.config.capabilities[ips]",
            ),
            (
                r#"{"name":"n","disableCheck":"maybe","plugins":[{"type":"a"}]}"#,
                "spec.config.disableCheck",
            ),
        ] {
            let (list, d) = at(text, "spec.config");
            assert!(list.is_none(), "{text}");
            assert_eq!(paths(&d), vec![path.to_owned()], "{text}");
            assert!(d.has_errors());
        }
    }

    #[test]
    fn plugin_type_must_be_a_bare_binary_name() {
        let (_, d) = at(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"/tmp/x"}]}"#,
            "spec.config",
        );
        assert_eq!(paths(&d), vec!["spec.config.plugins[1].type"]);
        let (_, d) = at(
            r#"{"cniVersion":"1.0.0","name":"n","type":"../../bin/sh"}"#,
            "",
        );
        assert_eq!(paths(&d), vec!["type"]);
        let (_, d) = at(
            r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"/opt/evil"}}"#,
            "",
        );
        assert_eq!(paths(&d), vec!["ipam.type"]);
    }

    #[test]
    fn name_is_checked_and_required_unless_injected() {
        let (_, d) = at(r#"{"cniVersion":"1.0.0","type":"macvlan"}"#, "");
        assert_eq!(paths(&d), vec!["name"]);
        let (_, d) = at(
            r#"{"cniVersion":"1.0.0","name":"a b","type":"macvlan"}"#,
            "",
        );
        assert_eq!(paths(&d), vec!["name"]);
        let (_, d) = validate_cni_config_with(
            r#"{"cniVersion":"1.0.0","type":"macvlan"}"#,
            &FieldPath::root(),
            NameSource::InjectedIfMissing("team-net"),
        );
        assert!(d.is_empty());
        // An injected name makes a nameless list parse; it is checked like a written one.
        let (list, d) = validate_cni_config_with(
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"macvlan"}]}"#,
            &FieldPath::root(),
            NameSource::InjectedIfMissing("team-net"),
        );
        assert!(d.is_empty());
        assert_eq!(list.unwrap().name(), "team-net");
    }

    #[test]
    fn versions_must_be_supported() {
        let (_, d) = at(r#"{"cniVersion":"0.5.0","name":"n","type":"a"}"#, "");
        assert!(d.has_errors());
        assert!(d.iter().next().unwrap().message.contains("not supported"));
        let (_, d) = at(r#"{"cniVersion":"one","name":"n","type":"a"}"#, "");
        assert_eq!(paths(&d), vec!["cniVersion"]);
        // cniVersions may name future versions; one we speak is enough.
        let (_, d) = at(
            r#"{"cniVersion":"2.0.0","cniVersions":["1.0.0","2.0.0"],"name":"n","plugins":[{"type":"a"}]}"#,
            "",
        );
        assert!(d.is_empty(), "{d:?}");
        // Missing: a warning only.
        let (_, d) = at(r#"{"name":"n","type":"a"}"#, "");
        assert!(!d.has_errors());
        assert_eq!(d.warnings().count(), 1);
        // Short form: a warning.
        let (_, d) = at(r#"{"cniVersion":"1.0","name":"n","type":"a"}"#, "");
        assert!(!d.has_errors());
        assert!(d.iter().next().unwrap().message.contains("\"1.0.0\""));
    }

    #[test]
    fn switches_for_missing_operations_are_warnings() {
        let (_, d) = at(
            r#"{"cniVersion":"1.0.0","name":"n","disableGC":true,"disableCheck":true,"plugins":[{"type":"a"}]}"#,
            "",
        );
        assert!(!d.has_errors());
        assert_eq!(paths(&d), vec!["disableGC"]);
        let (_, d) = at(
            r#"{"cniVersion":"0.3.1","name":"n","disableCheck":"true","plugins":[{"type":"a"}]}"#,
            "",
        );
        assert_eq!(paths(&d), vec!["disableCheck"]);
        let (_, d) = at(
            r#"{"cniVersion":"1.1.0","name":"n","disableGC":true,"disableCheck":true,"plugins":[{"type":"a"}]}"#,
            "",
        );
        assert!(d.is_empty());
    }

    #[test]
    fn reserved_keys_are_warnings() {
        let (_, d) = at(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a","runtimeConfig":{},"args":{"cni":{}},"cni.dev/valid-attachments":[]}]}"#,
            "spec.config",
        );
        assert!(!d.has_errors());
        assert_eq!(
            paths(&d),
            vec![
                "spec.config.plugins[0].runtimeConfig",
                "spec.config.plugins[0].args",
                "spec.config.plugins[0][cni.dev/valid-attachments]"
            ]
        );
    }

    #[test]
    fn a_list_with_a_top_level_type_is_read_as_the_list_with_a_warning() {
        let (list, d) = at(
            r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
            "spec.config",
        );
        let list = list.unwrap();
        assert_eq!(list.form(), ConfigForm::List);
        let types: Vec<&str> = list.plugins().iter().map(|p| p.plugin_type()).collect();
        assert_eq!(types, ["bridge", "tuning"]);
        assert!(!d.has_errors(), "{d:?}");
        assert_eq!(paths(&d), vec!["spec.config.type"]);
        let message = &d.iter().next().unwrap().message;
        assert!(message.contains("is ignored"), "{message}");
        // An empty or null `type` means nothing to Multus either: no warning.
        for top in [r#""type":"","#, r#""type":null,"#] {
            let text = format!(
                r#"{{"cniVersion":"1.0.0","name":"n",{top}"plugins":[{{"type":"bridge"}}]}}"#
            );
            let (_, d) = at(&text, "spec.config");
            assert!(d.is_empty(), "{top}: {d:?}");
        }
    }

    #[test]
    fn a_list_without_plugins_is_an_error_for_a_parsed_file() {
        let list = NetworkConfigList::parse(r#"{"cniVersion":"1.0.0","name":"n"}"#).unwrap();
        let d = validate_network_config(&list, &FieldPath::root(), NameSource::Required);
        assert_eq!(paths(&d), vec!["plugins"]);
    }
}
