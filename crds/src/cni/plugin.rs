//! One plugin configuration: an element of a list's `plugins`, or a whole single-plugin `.conf`.
//!
//! Held as the ordered JSON object it was written as, so keys a plugin defines for itself
//! (`master`, `bridge`, `ranges`, ...) survive parse → serialise unchanged; the keys the CNI spec
//! defines are checked at parse time and read through typed accessors.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{
    config::{ConfigError, ConfigErrorKind},
    json::{At, Fields, as_bool, as_bool_map, as_object, as_str, as_str_list, wrong_type},
};
use crate::FieldPath;

/// Keys the runtime generates for a plugin invocation; an administrator's config must not set
/// them (CNI spec §"Plugin configuration objects"). Keys starting with `cni.dev/` are reserved too.
pub const RESERVED_PLUGIN_KEYS: [&str; 2] = ["runtimeConfig", "args"];
/// Prefix of the keys the CNI spec reserves for itself.
pub const RESERVED_KEY_PREFIX: &str = "cni.dev/";

/// The `dns` object of a plugin configuration or a result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Decode a `dns` object, naming the offending key on a type mismatch.
    pub(crate) fn from_map(
        map: &Map<String, Value>,
        path: &FieldPath,
    ) -> Result<Self, ConfigError> {
        let f = Fields::new(map, path);
        let owned = |v: Option<Vec<&str>>| {
            v.unwrap_or_default()
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        Ok(Self {
            nameservers: owned(f.str_list("nameservers")?),
            domain: f.str("domain")?.map(str::to_owned),
            search: owned(f.str_list("search")?),
            options: owned(f.str_list("options")?),
        })
    }

    /// The type checks of [`from_map`](Self::from_map) without building the value.
    pub(crate) fn check(map: &Map<String, Value>, path: &FieldPath) -> Result<(), ConfigError> {
        for (key, value) in map {
            let at = At {
                parent: path,
                name: key,
            };
            match key.as_str() {
                "nameservers" | "search" | "options" => {
                    as_str_list(value, at)?;
                }
                "domain" => {
                    as_str(value, at)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A plugin configuration. Invariant: `type` is a non-empty string, and every spec-defined key
/// present has the type the spec gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginConfig {
    map: Map<String, Value>,
}

impl PluginConfig {
    /// Parse a single-plugin configuration (`.conf`) from JSON text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(ConfigError::json)?;
        Self::from_value(value)
    }

    /// Read a plugin configuration from a JSON value (errors name paths from the value's root).
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        Self::from_value_at(value, &FieldPath::root())
    }

    /// As [`from_value`](Self::from_value), with errors located under `path` (e.g. `plugins[2]`).
    pub fn from_value_at(value: Value, path: &FieldPath) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Self::from_map_at(map, path),
            other => Err(wrong_type(path.clone(), "a JSON object", &other)),
        }
    }

    pub(crate) fn from_map_at(
        map: Map<String, Value>,
        path: &FieldPath,
    ) -> Result<Self, ConfigError> {
        check_spec_keys(&map, path)?;
        Ok(Self { map })
    }

    /// The plugin binary to run.
    pub fn plugin_type(&self) -> &str {
        self.str("type").unwrap_or_default()
    }

    /// `name`, when the plugin object carries one (single configs, or as injected by a runtime).
    pub fn name(&self) -> Option<&str> {
        self.str("name")
    }

    /// `cniVersion` as written, when the plugin object carries one.
    pub fn cni_version(&self) -> Option<&str> {
        self.str("cniVersion")
    }

    /// The capabilities this plugin declares, with their values, in written order.
    pub fn capabilities(&self) -> impl Iterator<Item = (&str, bool)> {
        self.object("capabilities")
            .into_iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| (k.as_str(), v.as_bool().unwrap_or(false)))
    }

    /// Whether the plugin declares `capability: true`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities().any(|(k, on)| on && k == capability)
    }

    /// The `ipam` object.
    pub fn ipam(&self) -> Option<&Map<String, Value>> {
        self.object("ipam")
    }

    /// `ipam.type`: the IPAM plugin binary to run.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam()
            .and_then(|m| m.get("type"))
            .and_then(Value::as_str)
    }

    /// The `dns` object, decoded.
    pub fn dns(&self) -> Option<Dns> {
        let map = self.object("dns")?;
        Dns::from_map(map, &FieldPath::root()).ok()
    }

    /// `ipMasq`.
    pub fn ip_masq(&self) -> Option<bool> {
        self.map.get("ipMasq").and_then(Value::as_bool)
    }

    /// `prevResult`, as a runtime injects it for chained plugins.
    pub fn prev_result(&self) -> Option<&Map<String, Value>> {
        self.object("prevResult")
    }

    /// The runtime-generated keys this (administrator-written) config sets: `runtimeConfig`,
    /// `args`, and any `cni.dev/` key.
    pub fn reserved_keys(&self) -> impl Iterator<Item = &str> {
        self.map
            .keys()
            .map(String::as_str)
            .filter(|k| is_reserved_key(k))
    }

    /// Any key, spec-defined or plugin-specific.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// Set a key. Spec-defined keys are checked as at parse time, so the invariants hold; on error
    /// the config is unchanged.
    pub fn insert(&mut self, key: &str, value: Value) -> Result<Option<Value>, ConfigError> {
        let root = FieldPath::root();
        check_spec_key(key, &value, &root)?;
        if key == "type" && value.as_str().is_none_or(str::is_empty) {
            return Err(missing_type(&root));
        }
        Ok(self.map.insert(key.to_owned(), value))
    }

    /// Remove a key. `type` cannot be removed.
    pub fn remove(&mut self, key: &str) -> Result<Option<Value>, ConfigError> {
        if key == "type" {
            return Err(missing_type(&FieldPath::root()));
        }
        Ok(self.map.shift_remove(key))
    }

    /// The object as written.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Value::as_str)
    }

    fn object(&self, key: &str) -> Option<&Map<String, Value>> {
        self.map.get(key).and_then(Value::as_object)
    }
}

/// Whether a plugin key is one the runtime generates.
pub fn is_reserved_key(key: &str) -> bool {
    RESERVED_PLUGIN_KEYS.contains(&key) || key.starts_with(RESERVED_KEY_PREFIX)
}

fn missing_type(path: &FieldPath) -> ConfigError {
    ConfigError::new(
        path.field("type"),
        ConfigErrorKind::Missing {
            hint: "every plugin configuration needs the plugin binary to run",
        },
    )
}

/// The keys of libcni's `types.NetConf`, typed as Go decodes them, in document order (so the
/// first error is the one Go reports); then libcni's rule that a plugin without a non-empty `type`
/// is not a plugin. One pass over the entries: this runs for every plugin of every config read.
fn check_spec_keys(map: &Map<String, Value>, path: &FieldPath) -> Result<(), ConfigError> {
    let mut has_type = false;
    for (key, value) in map {
        check_spec_key(key, value, path)?;
        if key == "type" {
            has_type = value.as_str().is_some_and(|t| !t.is_empty());
        }
    }
    if has_type {
        Ok(())
    } else {
        Err(missing_type(path))
    }
}

/// One key of a plugin object; keys the spec does not define are the plugin's business.
fn check_spec_key(key: &str, value: &Value, path: &FieldPath) -> Result<(), ConfigError> {
    let at = At {
        parent: path,
        name: key,
    };
    match key {
        "type" | "name" | "cniVersion" => {
            as_str(value, at)?;
        }
        "capabilities" => {
            as_bool_map(value, at)?;
        }
        "ipMasq" => {
            as_bool(value, at)?;
        }
        "prevResult" => {
            as_object(value, at)?;
        }
        "ipam" => {
            if let Some(ipam) = as_object(value, at)? {
                Fields::new(ipam, &at.path()).str("type")?;
            }
        }
        "dns" => {
            if let Some(dns) = as_object(value, at)? {
                Dns::check(dns, &at.path())?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Serialize for PluginConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PluginConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_unknown_keys_in_order() {
        let text =
            r#"{"type":"macvlan","zeta":1,"master":"eth0","alpha":{"x":[1,2]},"mode":"bridge"}"#;
        let p = PluginConfig::parse(text).unwrap();
        assert_eq!(p.plugin_type(), "macvlan");
        assert_eq!(serde_json::to_string(&p).unwrap(), text);
        assert_eq!(p.get("master"), Some(&json!("eth0")));
    }

    #[test]
    fn typed_accessors() {
        let p = PluginConfig::from_value(json!({
            "type":"bridge","name":"n","cniVersion":"1.0.0","ipMasq":true,
            "capabilities":{"portMappings":true,"mac":false},
            "ipam":{"type":"host-local","subnet":"10.0.0.0/24"},
            "dns":{"nameservers":["10.0.0.1"],"domain":"example.org"},
            "runtimeConfig":{},"cni.dev/x":1
        }))
        .unwrap();
        assert_eq!(p.name(), Some("n"));
        assert_eq!(p.cni_version(), Some("1.0.0"));
        assert_eq!(p.ip_masq(), Some(true));
        assert!(p.has_capability("portMappings"));
        assert!(!p.has_capability("mac"));
        assert_eq!(p.ipam_type(), Some("host-local"));
        let dns = p.dns().unwrap();
        assert_eq!(dns.nameservers, vec!["10.0.0.1"]);
        assert_eq!(dns.domain.as_deref(), Some("example.org"));
        assert_eq!(
            p.reserved_keys().collect::<Vec<_>>(),
            vec!["runtimeConfig", "cni.dev/x"]
        );
    }

    #[test]
    fn type_is_required_and_a_non_empty_string() {
        for (v, path) in [
            (json!({}), "type"),
            (json!({"type":""}), "type"),
            (json!({"type":null}), "type"),
            (json!({"type":7}), "type"),
        ] {
            assert_eq!(PluginConfig::from_value(v).unwrap_err().path.as_str(), path);
        }
        let e = PluginConfig::from_value_at(json!({"x":1}), &FieldPath::new("plugins").index(1))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugins[1].type is required: every plugin configuration needs the plugin binary to run"
        );
    }

    #[test]
    fn spec_keys_are_typed_like_libcni() {
        for (v, path) in [
            (
                json!({"type":"x","capabilities":{"ips":"yes"}}),
                "capabilities[ips]",
            ),
            (json!({"type":"x","capabilities":[]}), "capabilities"),
            (json!({"type":"x","ipam":"host-local"}), "ipam"),
            (json!({"type":"x","ipam":{"type":1}}), "ipam.type"),
            (
                json!({"type":"x","dns":{"nameservers":"1.1.1.1"}}),
                "dns.nameservers",
            ),
            (json!({"type":"x","ipMasq":"true"}), "ipMasq"),
            (json!({"type":"x","name":5}), "name"),
            (json!({"type":"x","cniVersion":1.0}), "cniVersion"),
            (json!("x"), ""),
        ] {
            let e = PluginConfig::from_value(v.clone()).unwrap_err();
            assert_eq!(e.path.as_str(), path, "{v}");
        }
        // null reads as absent, as Go decodes it.
        assert!(PluginConfig::from_value(json!({"type":"x","ipam":null,"dns":null})).is_ok());
    }

    #[test]
    fn insert_keeps_the_invariants() {
        let mut p = PluginConfig::from_value(json!({"type":"x"})).unwrap();
        assert!(p.insert("type", json!("")).is_err());
        assert!(p.insert("capabilities", json!({"ips":1})).is_err());
        assert_eq!(p.plugin_type(), "x");
        p.insert("deviceID", json!("0000:00:01.0")).unwrap();
        p.insert("type", json!("sriov")).unwrap();
        assert_eq!(p.plugin_type(), "sriov");
        assert!(p.remove("type").is_err());
        assert_eq!(p.remove("deviceID").unwrap(), Some(json!("0000:00:01.0")));
    }
}
