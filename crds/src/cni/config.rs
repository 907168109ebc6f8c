//! Network configurations: the list form (`.conflist`, CNI spec §"Network configuration") and the
//! single-plugin form (`.conf`) that libcni still loads and up-converts to a one-element list.
//!
//! Parsing follows libcni's `NetworkConfFromBytes`/`ConfFromBytes`: the same inputs are accepted
//! and rejected, with messages that name the key at fault. Semantic rules that libcni applies only
//! at execution time (name syntax, supported versions, plugin `type` being a bare name) live in
//! [`crate::rules::cniconf`], so a parsed config can still be inspected and reported on.

use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use super::{
    json::{json_type, wrong_type},
    plugin::PluginConfig,
    version::{CniVersion, VersionError, select_version},
};
use crate::FieldPath;

/// A configuration document that could not be read: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} {kind}", display_path(.path))]
pub struct ConfigError {
    /// Relative to the document's root (empty for the document itself).
    pub path: FieldPath,
    pub kind: ConfigErrorKind,
}

fn display_path(path: &FieldPath) -> &str {
    if path.is_root() {
        "configuration"
    } else {
        path.as_str()
    }
}

/// What is wrong with a configuration document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("is not valid JSON: {0}")]
    Json(String),
    #[error("must be {expected}, not {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("is required: {hint}")]
    Missing { hint: &'static str },
    #[error("is not a valid CNI version: {0}")]
    Version(VersionError),
    #[error("must be true or false (a boolean, or the string \"true\" or \"false\"), not {0:?}")]
    NotABool(String),
    #[error("is true, but there is no \"plugins\" list to load plugins from")]
    InlinedWithoutPlugins,
    #[error("must list at least one plugin")]
    NoPlugins,
}

impl ConfigError {
    pub fn new(path: FieldPath, kind: ConfigErrorKind) -> Self {
        Self { path, kind }
    }

    pub(crate) fn json(err: serde_json::Error) -> Self {
        Self::new(FieldPath::root(), ConfigErrorKind::Json(err.to_string()))
    }

    /// The message without the path, for a diagnostic that carries the path itself.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }

    /// This error with its path placed under `base` (e.g. `spec.config`).
    #[must_use]
    pub fn under(mut self, base: &FieldPath) -> Self {
        self.path = self.path.under(base);
        self
    }
}

/// Which form a configuration was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigForm {
    /// A `plugins` list (`.conflist`).
    List,
    /// A single plugin object (`.conf`), up-converted to a one-element list.
    Single,
}

/// A network configuration, always seen as a list of plugins.
///
/// Keys are held as written (unknown keys preserved, in order); serialising writes the form the
/// config was read in, so parse → serialise → parse is the identity.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfigList {
    /// The top-level object. For the list form, `plugins` holds a `null` placeholder that keeps
    /// its position; the plugins themselves live in `plugins`.
    top: Map<String, Value>,
    name: String,
    disable_check: bool,
    disable_gc: bool,
    load_only_inlined_plugins: bool,
    plugins: Vec<PluginConfig>,
    form: ConfigForm,
}

const PLUGINS: &str = "plugins";

impl NetworkConfigList {
    /// Parse a configuration list (libcni `ConfListFromBytes`).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(ConfigError::json)?;
        Self::from_value(value)
    }

    /// Parse either form: a document with a `plugins` key is a list, anything else a single
    /// plugin config (how Multus reads a NAD's `spec.config` and a static delegate).
    pub fn parse_any(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(ConfigError::json)?;
        Self::from_value_any(value)
    }

    /// [`parse_any`](Self::parse_any) on a JSON value.
    pub fn from_value_any(value: Value) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) if !map.contains_key(PLUGINS) => Ok(Self::from_plugin(
                PluginConfig::from_map_at(map, &FieldPath::root())?,
            )),
            other => Self::from_value(other),
        }
    }

    /// Read a configuration list from a JSON value.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let mut top = match value {
            Value::Object(map) => map,
            other => return Err(wrong_type(FieldPath::root(), "a JSON object", &other)),
        };
        let root = FieldPath::root();
        // One pass over the keys instead of a hashed lookup per key: this runs for every config.
        let mut keys = ListKeys::default();
        for (k, v) in &top {
            match k.as_str() {
                "name" => keys.name = Some(v),
                "cniVersion" => keys.cni_version = Some(v),
                "cniVersions" => keys.cni_versions = Some(v),
                "disableCheck" => keys.disable_check = Some(v),
                "disableGC" => keys.disable_gc = Some(v),
                "loadOnlyInlinedPlugins" => keys.load_only_inlined_plugins = Some(v),
                PLUGINS => keys.has_plugins = true,
                _ => {}
            }
        }
        // libcni type-asserts these without a null check, so `null` is an error here.
        let name = match keys.name {
            None => {
                return Err(ConfigError::new(
                    root.field("name"),
                    ConfigErrorKind::Missing {
                        hint: "a configuration list needs a network name",
                    },
                ));
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(wrong_type(root.field("name"), "a string", other)),
        };
        let cni_version = match keys.cni_version {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => return Err(wrong_type(root.field("cniVersion"), "a string", other)),
        };
        if let Some(v) = keys.cni_versions {
            let Value::Array(items) = v else {
                return Err(wrong_type(
                    root.field("cniVersions"),
                    "a list of strings",
                    v,
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let path = || root.field("cniVersions").index(i);
                let text = item
                    .as_str()
                    .ok_or_else(|| wrong_type(path(), "a string", item))?;
                CniVersion::parse_listed(text)
                    .map_err(|e| ConfigError::new(path(), ConfigErrorKind::Version(e)))?;
            }
            // With `cniVersions`, libcni also parses `cniVersion` to sort it in.
            if let Some(v) = cni_version.filter(|v| !v.is_empty()) {
                CniVersion::parse(v).map_err(|e| {
                    ConfigError::new(root.field("cniVersion"), ConfigErrorKind::Version(e))
                })?;
            }
        }
        let disable_check = read_bool(keys.disable_check, "disableCheck")?;
        let disable_gc = read_bool(keys.disable_gc, "disableGC")?;
        let load_only_inlined_plugins =
            read_bool(keys.load_only_inlined_plugins, "loadOnlyInlinedPlugins")?;
        let has_plugins = keys.has_plugins;

        let slot = if has_plugins {
            top.iter_mut().find(|(k, _)| *k == PLUGINS).map(|(_, v)| v)
        } else {
            None
        };
        let plugins = match slot {
            None if load_only_inlined_plugins => {
                return Err(ConfigError::new(
                    root.field("loadOnlyInlinedPlugins"),
                    ConfigErrorKind::InlinedWithoutPlugins,
                ));
            }
            // Legal for a file: its plugins may come from `<confdir>/<name>/*.conf`.
            None => Vec::new(),
            Some(slot) => {
                if !slot.is_array() {
                    return Err(wrong_type(
                        root.field(PLUGINS),
                        "a list of plugin objects",
                        slot,
                    ));
                }
                let items = match std::mem::take(slot) {
                    Value::Array(items) => items,
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    return Err(ConfigError::new(
                        root.field(PLUGINS),
                        ConfigErrorKind::NoPlugins,
                    ));
                }
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        PluginConfig::from_value(item)
                            .map_err(|e| e.under(&root.field(PLUGINS).index(i)))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(Self {
            top,
            name,
            disable_check,
            disable_gc,
            load_only_inlined_plugins,
            plugins,
            form: ConfigForm::List,
        })
    }

    /// Up-convert a single plugin config to a one-element list, as libcni's `ConfListFromConf`:
    /// the list takes the plugin's `name` (empty when absent) and `cniVersion`.
    pub fn from_plugin(plugin: PluginConfig) -> Self {
        let name = plugin.name().unwrap_or_default().to_owned();
        let mut top = Map::new();
        top.insert("name".into(), Value::String(name.clone()));
        if let Some(v) = plugin.cni_version() {
            top.insert("cniVersion".into(), Value::String(v.to_owned()));
        }
        top.insert(PLUGINS.into(), Value::Null);
        Self {
            top,
            name,
            disable_check: false,
            disable_gc: false,
            load_only_inlined_plugins: false,
            plugins: vec![plugin],
            form: ConfigForm::Single,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `cniVersion` as written.
    pub fn cni_version(&self) -> Option<&str> {
        self.top.get("cniVersion").and_then(Value::as_str)
    }

    /// `cniVersions` as written (CNI 1.1).
    pub fn cni_versions(&self) -> Vec<&str> {
        self.top
            .get("cniVersions")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The version a runtime uses for this config: see [`select_version`].
    pub fn effective_version(&self) -> Result<CniVersion, VersionError> {
        select_version(self.cni_version(), &self.cni_versions())
    }

    pub fn disable_check(&self) -> bool {
        self.disable_check
    }

    pub fn disable_gc(&self) -> bool {
        self.disable_gc
    }

    pub fn load_only_inlined_plugins(&self) -> bool {
        self.load_only_inlined_plugins
    }

    /// Whether the document has a `plugins` key (a list file without one takes its plugins from
    /// `<confdir>/<name>/`).
    pub fn has_inline_plugins(&self) -> bool {
        self.top.contains_key(PLUGINS)
    }

    pub fn plugins(&self) -> &[PluginConfig] {
        &self.plugins
    }

    pub fn plugins_mut(&mut self) -> &mut [PluginConfig] {
        &mut self.plugins
    }

    pub fn form(&self) -> ConfigForm {
        self.form
    }

    /// A top-level key of the list form, spec-defined or not. For a single config, the plugin
    /// object's keys are in [`plugins`](Self::plugins)`[0]`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.top.get(key).filter(|_| key != PLUGINS)
    }

    /// Set the network name (e.g. a NAD's name injected by Multus), in both forms.
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_owned();
        self.top
            .insert("name".into(), Value::String(name.to_owned()));
        if let (ConfigForm::Single, Some(p)) = (self.form, self.plugins.first_mut()) {
            // A string `name` is always accepted by the plugin invariants.
            let _ = p.insert("name", Value::String(name.to_owned()));
        }
    }

    /// Set `cniVersion` (e.g. Multus's own version for a delegate without one, on DEL).
    pub fn set_cni_version(&mut self, version: &str) {
        self.top
            .insert("cniVersion".into(), Value::String(version.to_owned()));
        if let (ConfigForm::Single, Some(p)) = (self.form, self.plugins.first_mut()) {
            let _ = p.insert("cniVersion", Value::String(version.to_owned()));
        }
    }

    /// The configuration a runtime passes to one plugin of the list: the plugin object with the
    /// list's `name` and `cniVersion` (libcni `buildOneConfig`; `runtimeConfig` and `prevResult`
    /// are the caller's to add).
    pub fn request_config(&self, plugin: &PluginConfig, version: CniVersion) -> Map<String, Value> {
        let mut map = plugin.as_map().clone();
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("cniVersion".into(), Value::String(version.to_string()));
        map
    }

    /// The document in the form it was read in.
    pub fn to_value(&self) -> Value {
        match (self.form, self.plugins.first()) {
            (ConfigForm::Single, Some(p)) => p.to_value(),
            _ => self.to_list_value(),
        }
    }

    /// The document as a list, whatever form it was read in.
    pub fn to_list_value(&self) -> Value {
        let mut out = Map::with_capacity(self.top.len());
        for (k, v) in &self.top {
            let v = if k == PLUGINS {
                Value::Array(self.plugins.iter().map(PluginConfig::to_value).collect())
            } else {
                v.clone()
            };
            out.insert(k.clone(), v);
        }
        Value::Object(out)
    }

    /// Compact JSON text of [`to_value`](Self::to_value).
    pub fn to_json_string(&self) -> String {
        // Serialising a map of JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The list-level keys of a document, found in one pass.
#[derive(Default)]
struct ListKeys<'a> {
    name: Option<&'a Value>,
    cni_version: Option<&'a Value>,
    cni_versions: Option<&'a Value>,
    disable_check: Option<&'a Value>,
    disable_gc: Option<&'a Value>,
    load_only_inlined_plugins: Option<&'a Value>,
    has_plugins: bool,
}

/// libcni's `readBool`: a boolean, or the string "true"/"false" in any case; absent is false.
fn read_bool(value: Option<&Value>, key: &str) -> Result<bool, ConfigError> {
    let path = || FieldPath::new(key);
    match value {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(Value::String(s)) => Err(ConfigError::new(
            path(),
            ConfigErrorKind::NotABool(s.clone()),
        )),
        Some(other) => Err(ConfigError::new(
            path(),
            ConfigErrorKind::NotABool(json_type(other).to_owned()),
        )),
    }
}

impl Serialize for NetworkConfigList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let (ConfigForm::Single, Some(p)) = (self.form, self.plugins.first()) {
            return p.serialize(serializer);
        }
        let mut map = serializer.serialize_map(Some(self.top.len()))?;
        for (k, v) in &self.top {
            if k == PLUGINS {
                map.serialize_entry(k, &self.plugins)?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NetworkConfigList {
    /// Either form, like [`NetworkConfigList::from_value_any`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value_any(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EDGE: &str = r#"{"cniVersion":"1.1.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"edge-net","disableGC":false,"plugins":[{"type":"bridge","bridge":"br-edge","ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}],"x-extra":{"kept":true}}"#;

    #[test]
    fn parses_a_list_and_writes_it_back_unchanged() {
        let list = NetworkConfigList::parse(EDGE).unwrap();
        assert_eq!(list.name(), "edge-net");
        assert_eq!(list.cni_version(), Some("1.1.0"));
        assert_eq!(list.cni_versions(), vec!["0.4.0", "1.0.0", "1.1.0"]);
        assert_eq!(list.effective_version().unwrap(), CniVersion::V1_1_0);
        assert_eq!(list.plugins().len(), 2);
        assert_eq!(list.plugins()[1].plugin_type(), "portmap");
        assert_eq!(list.get("x-extra"), Some(&json!({"kept":true})));
        assert_eq!(list.form(), ConfigForm::List);
        assert_eq!(list.to_json_string(), EDGE);
        assert_eq!(
            NetworkConfigList::parse(&list.to_json_string()).unwrap(),
            list
        );
    }

    /// libcni reads an empty `cniVersions` entry as 0.1.0 (its `ParseVersion`), not as an error.
    #[test]
    fn an_empty_cni_versions_entry_is_0_1_0() {
        let list = NetworkConfigList::parse(
            r#"{"name":"n","cniVersions":[""],"plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(list.effective_version().unwrap(), CniVersion::IMPLIED);
        assert!(
            NetworkConfigList::parse(
                r#"{"name":"n","cniVersions":["x"],"plugins":[{"type":"bridge"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn up_converts_a_single_config_like_libcni() {
        let text = r#"{"cniVersion":"0.3.1","name":"storage","type":"macvlan","master":"eth1"}"#;
        let list = NetworkConfigList::parse_any(text).unwrap();
        assert_eq!(list.form(), ConfigForm::Single);
        assert_eq!(list.name(), "storage");
        assert_eq!(list.cni_version(), Some("0.3.1"));
        assert_eq!(list.plugins()[0].get("master"), Some(&json!("eth1")));
        assert_eq!(list.to_json_string(), text);
        assert_eq!(
            list.to_list_value(),
            json!({"name":"storage","cniVersion":"0.3.1","plugins":[serde_json::from_str::<Value>(text).unwrap()]})
        );
        // A nameless single config becomes a list named "" (libcni does the same).
        let l = NetworkConfigList::parse_any(r#"{"type":"macvlan"}"#).unwrap();
        assert_eq!(l.name(), "");
        assert_eq!(l.effective_version().unwrap(), CniVersion::IMPLIED);
    }

    #[test]
    fn set_name_reaches_both_forms() {
        let mut single = NetworkConfigList::parse_any(r#"{"type":"macvlan"}"#).unwrap();
        single.set_name("team-net");
        assert_eq!(
            single.to_value(),
            json!({"type":"macvlan","name":"team-net"})
        );
        let mut list = NetworkConfigList::parse(r#"{"name":"","plugins":[{"type":"a"}]}"#).unwrap();
        list.set_name("team-net");
        list.set_cni_version("1.0.0");
        assert_eq!(
            list.to_value(),
            json!({"name":"team-net","plugins":[{"type":"a"}],"cniVersion":"1.0.0"})
        );
        let req = list.request_config(&list.plugins()[0], CniVersion::V1_0_0);
        assert_eq!(
            Value::Object(req),
            json!({"type":"a","name":"team-net","cniVersion":"1.0.0"})
        );
    }

    #[test]
    fn bool_keys_accept_strings_case_insensitively() {
        let l = NetworkConfigList::parse(
            r#"{"name":"n","disableCheck":"TRUE","disableGC":"False","loadOnlyInlinedPlugins":true,"plugins":[{"type":"a"}]}"#,
        )
        .unwrap();
        assert!(l.disable_check());
        assert!(!l.disable_gc());
        assert!(l.load_only_inlined_plugins());
        let e = NetworkConfigList::parse(r#"{"name":"n","disableCheck":"yes"}"#).unwrap_err();
        assert_eq!(e.path.as_str(), "disableCheck");
        assert!(e.to_string().contains("\"yes\""), "{e}");
        let e = NetworkConfigList::parse(r#"{"name":"n","disableGC":1}"#).unwrap_err();
        assert_eq!(e.path.as_str(), "disableGC");
    }

    #[test]
    fn rejects_what_libcni_rejects() {
        let cases = [
            ("not json", ""),
            ("[]", ""),
            (r#"{"plugins":[{"type":"a"}]}"#, "name"),
            (r#"{"name":null,"plugins":[{"type":"a"}]}"#, "name"),
            (r#"{"name":1}"#, "name"),
            (r#"{"name":"n","cniVersion":1}"#, "cniVersion"),
            (r#"{"name":"n","cniVersions":"1.0.0"}"#, "cniVersions"),
            (r#"{"name":"n","cniVersions":[1]}"#, "cniVersions[0]"),
            (
                r#"{"name":"n","cniVersions":["1.0.0.0"]}"#,
                "cniVersions[0]",
            ),
            (
                r#"{"name":"n","cniVersion":"x","cniVersions":["1.0.0"]}"#,
                "cniVersion",
            ),
            (
                r#"{"name":"n","loadOnlyInlinedPlugins":true}"#,
                "loadOnlyInlinedPlugins",
            ),
            (r#"{"name":"n","plugins":{}}"#, "plugins"),
            (r#"{"name":"n","plugins":[]}"#, "plugins"),
            (
                r#"{"name":"n","plugins":[{"type":"a"},{"bridge":"b"}]}"#,
                "plugins[1].type",
            ),
            (r#"{"name":"n","plugins":[{"type":"a"},"b"]}"#, "plugins[1]"),
        ];
        for (text, path) in cases {
            let e = NetworkConfigList::parse(text).unwrap_err();
            assert_eq!(e.path.as_str(), path, "{text}: {e}");
        }
        assert!(matches!(
            NetworkConfigList::parse(r#"{"name":"n","plugins":[]}"#)
                .unwrap_err()
                .kind,
            ConfigErrorKind::NoPlugins
        ));
        // A single config without `type` is not a config.
        let e = NetworkConfigList::parse_any(r#"{"name":"n"}"#).unwrap_err();
        assert_eq!(e.path.as_str(), "type");
    }

    #[test]
    fn accepts_what_libcni_accepts() {
        // No `plugins` key: zero plugins, to be aggregated from a directory by the loader.
        let l = NetworkConfigList::parse(r#"{"name":"n"}"#).unwrap();
        assert!(l.plugins().is_empty());
        assert!(!l.has_inline_plugins());
        assert_eq!(l.to_json_string(), r#"{"name":"n"}"#);
        // A bad `cniVersion` without `cniVersions` is a problem for later, not for parsing.
        let l =
            NetworkConfigList::parse(r#"{"name":"n","cniVersion":"x","plugins":[{"type":"a"}]}"#)
                .unwrap();
        assert!(l.effective_version().is_err());
    }

    #[test]
    fn errors_relocate_under_a_base_path() {
        let e = NetworkConfigList::parse(r#"{"name":"n","plugins":[{"x":1}]}"#)
            .unwrap_err()
            .under(&FieldPath::new("spec").field("config"));
        assert_eq!(e.path.as_str(), "spec.config.plugins[0].type");
        let e = NetworkConfigList::parse("{")
            .unwrap_err()
            .under(&FieldPath::new("spec"));
        assert_eq!(e.path.as_str(), "spec");
        assert!(e.message().starts_with("is not valid JSON"));
    }
}
