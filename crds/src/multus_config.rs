//! The Multus CNI configuration (`"type": "multus"` for the thin plugin, `"multus-shim"` for the
//! thick plugin's client): every key of upstream's `NetConf`, with its default.
//!
//! Keys are read with the spelling upstream uses (note `readinessindicatorfile`, all lower case,
//! and `globalNamespaces`, one comma-separated string). Unknown keys are kept in
//! [`MultusConfig::extra`] and written back, so a config passes through us unchanged; an unset key
//! stays unset (`None`) and its default comes from the accessor of the same name.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{
    Diagnostics, FieldPath,
    cni::{
        config::{ConfigError, NetworkConfigList},
        json::{Fields, wrong_type},
    },
};

/// `confDir` default: where CNI files for NADs without config are looked up.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// `cniDir` default: the scratch and result cache.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
/// `binDir` default: searched for delegate binaries before `CNI_PATH`.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// `multusNamespace` default, and the one entry of the `systemNamespaces` default.
pub const DEFAULT_MULTUS_NAMESPACE: &str = "kube-system";
/// The namespace that may be referenced across namespaces when `globalNamespaces` is unset.
pub const DEFAULT_GLOBAL_NAMESPACE: &str = "default";
/// `daemonSocketDir` default (shim).
pub const DEFAULT_DAEMON_SOCKET_DIR: &str = "/run/multus/";
/// `type` of the thin plugin.
pub const TYPE_THIN: &str = "multus";
/// `type` of the thick plugin's shim.
pub const TYPE_SHIM: &str = "multus-shim";
/// Upstream's message when neither `clusterNetwork` nor `delegates` is set.
pub const NO_DELEGATE_MESSAGE: &str = "at least one delegate/clusterNetwork must be specified";

/// How much Multus logs; `Panic` is the least verbose and the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Panic,
    Error,
    Verbose,
    Debug,
}

impl LogLevel {
    /// Parse a level as upstream does: case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "panic" => Some(Self::Panic),
            "error" => Some(Self::Error),
            "verbose" => Some(Self::Verbose),
            "debug" => Some(Self::Debug),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Error => "error",
            Self::Verbose => "verbose",
            Self::Debug => "debug",
        }
    }
}

/// `logOptions`: rotation of `logFile`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LogOptions {
    /// Days to keep old files (default 5).
    #[serde(rename = "maxAge", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// Megabytes before rotating (default 100).
    #[serde(rename = "maxSize", skip_serializing_if = "Option::is_none")]
    pub max_size: Option<i64>,
    /// Old files to keep (default 5).
    #[serde(rename = "maxBackups", skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<i64>,
    /// Compress rotated files (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LogOptions {
    pub fn max_age(&self) -> i64 {
        self.max_age.unwrap_or(5)
    }
    pub fn max_size(&self) -> i64 {
        self.max_size.unwrap_or(100)
    }
    pub fn max_backups(&self) -> i64 {
        self.max_backups.unwrap_or(5)
    }
    pub fn compress(&self) -> bool {
        self.compress.unwrap_or(true)
    }

    fn from_map(map: &Map<String, Value>, path: &FieldPath) -> Result<Self, ConfigError> {
        let f = Fields::new(map, path);
        const KNOWN: [&str; 4] = ["maxAge", "maxSize", "maxBackups", "compress"];
        Ok(Self {
            max_age: f.int("maxAge")?,
            max_size: f.int("maxSize")?,
            max_backups: f.int("maxBackups")?,
            compress: f.bool("compress")?,
            extra: unknown(map, &KNOWN),
        })
    }
}

/// A Multus configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultusConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `type`: [`TYPE_THIN`] or [`TYPE_SHIM`].
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub plugin_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Static delegates; the first is the cluster network. Ignored when `clusterNetwork` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegates: Option<Vec<NetworkConfigList>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_networks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_namespaces: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multus_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_isolation: Option<bool>,
    /// Comma-separated, as upstream writes it; see [`global_namespaces`](Self::global_namespaces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_namespaces: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_to_stderr: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_options: Option<LogOptions>,
    #[serde(
        rename = "readinessindicatorfile",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_indicator_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<BTreeMap<String, bool>>,
    /// Filled by the runtime from the declared `capabilities`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Map<String, Value>>,
    #[serde(
        rename = "auxiliaryCNIChainName",
        skip_serializing_if = "Option::is_none"
    )]
    pub auxiliary_cni_chain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delete_on_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_socket_dir: Option<String>,
    /// Written by upstream's thin-plugin installer but read by nothing; kept so the file round
    /// trips, never used in place of `confDir` (see docs/decisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_conf: Option<String>,
    /// Every other key, as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Every key [`MultusConfig`] reads.
const KNOWN_KEYS: [&str; 26] = [
    "cniVersion",
    "name",
    "type",
    "kubeconfig",
    "delegates",
    "clusterNetwork",
    "defaultNetworks",
    "systemNamespaces",
    "multusNamespace",
    "namespaceIsolation",
    "globalNamespaces",
    "confDir",
    "cniDir",
    "binDir",
    "logFile",
    "logLevel",
    "logToStderr",
    "logOptions",
    "readinessindicatorfile",
    "capabilities",
    "runtimeConfig",
    "auxiliaryCNIChainName",
    "retryDeleteOnError",
    "prevResult",
    "daemonSocketDir",
    "cniConf",
];

fn unknown(map: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl MultusConfig {
    /// Parse a Multus configuration from JSON text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ConfigError::new(
                FieldPath::root(),
                crate::cni::ConfigErrorKind::Json(e.to_string()),
            )
        })?;
        Self::from_value(&value)
    }

    /// Read a Multus configuration from a JSON value. Keys of the wrong type are errors (upstream
    /// fails to load such a config too); values are checked by [`validate`](Self::validate).
    pub fn from_value(value: &Value) -> Result<Self, ConfigError> {
        let root = FieldPath::root();
        let Value::Object(map) = value else {
            return Err(wrong_type(root, "a JSON object", value));
        };
        let f = Fields::new(map, &root);
        let string = |key: &str| f.str(key).map(|s| s.map(str::to_owned));
        let strings = |key: &str| {
            f.str_list(key)
                .map(|l| l.map(|l| l.into_iter().map(str::to_owned).collect()))
        };
        let delegates = match f.present("delegates") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let path = root.field("delegates").index(i);
                        NetworkConfigList::from_value_any(item.clone()).map_err(|e| e.under(&path))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => {
                return Err(wrong_type(
                    root.field("delegates"),
                    "a list of CNI configurations",
                    other,
                ));
            }
        };
        Ok(Self {
            cni_version: string("cniVersion")?,
            name: string("name")?,
            plugin_type: string("type")?,
            kubeconfig: string("kubeconfig")?,
            delegates,
            cluster_network: string("clusterNetwork")?,
            default_networks: strings("defaultNetworks")?,
            system_namespaces: strings("systemNamespaces")?,
            multus_namespace: string("multusNamespace")?,
            namespace_isolation: f.bool("namespaceIsolation")?,
            global_namespaces: string("globalNamespaces")?,
            conf_dir: string("confDir")?,
            cni_dir: string("cniDir")?,
            bin_dir: string("binDir")?,
            log_file: string("logFile")?,
            log_level: string("logLevel")?,
            log_to_stderr: f.bool("logToStderr")?,
            log_options: f
                .object("logOptions")?
                .map(|m| LogOptions::from_map(m, &root.field("logOptions")))
                .transpose()?,
            readiness_indicator_file: string("readinessindicatorfile")?,
            capabilities: f
                .bool_map("capabilities")?
                .map(|caps| caps.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            runtime_config: f.object("runtimeConfig")?.cloned(),
            auxiliary_cni_chain_name: string("auxiliaryCNIChainName")?,
            retry_delete_on_error: f.bool("retryDeleteOnError")?,
            prev_result: f.object("prevResult")?.cloned(),
            daemon_socket_dir: string("daemonSocketDir")?,
            cni_conf: string("cniConf")?,
            extra: unknown(map, &KNOWN_KEYS),
        })
    }

    /// The Multus config a runtime passes when Multus is the one plugin of a configuration list
    /// (upstream writes `00-multus.conflist` this way from CNI 1.0.0 on): that plugin object with
    /// the list's `name` and selected `cniVersion`, as libcni builds it.
    pub fn from_network_config(list: &NetworkConfigList) -> Result<Self, ConfigError> {
        let not_multus = || {
            ConfigError::new(
                FieldPath::new("plugins"),
                crate::cni::ConfigErrorKind::Missing {
                    hint: "a plugin of type \"multus\" or \"multus-shim\"",
                },
            )
        };
        let plugin = list
            .plugins()
            .iter()
            .find(|p| matches!(p.plugin_type(), TYPE_THIN | TYPE_SHIM))
            .ok_or_else(not_multus)?;
        let version = list.effective_version().map_err(|e| {
            ConfigError::new(
                FieldPath::new("cniVersion"),
                crate::cni::ConfigErrorKind::Version(e),
            )
        })?;
        Self::from_value(&Value::Object(list.request_config(plugin, version)))
    }

    /// The config as a JSON value.
    pub fn to_value(&self) -> Value {
        // Strings, numbers, booleans and JSON maps always serialise.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Compact JSON text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether this is the thick plugin's shim (`type: multus-shim`).
    pub fn is_shim(&self) -> bool {
        self.plugin_type.as_deref() == Some(TYPE_SHIM)
    }

    pub fn conf_dir(&self) -> &str {
        non_empty(&self.conf_dir).unwrap_or(DEFAULT_CONF_DIR)
    }

    pub fn cni_dir(&self) -> &str {
        non_empty(&self.cni_dir).unwrap_or(DEFAULT_CNI_DIR)
    }

    pub fn bin_dir(&self) -> &str {
        non_empty(&self.bin_dir).unwrap_or(DEFAULT_BIN_DIR)
    }

    pub fn daemon_socket_dir(&self) -> &str {
        non_empty(&self.daemon_socket_dir).unwrap_or(DEFAULT_DAEMON_SOCKET_DIR)
    }

    pub fn multus_namespace(&self) -> &str {
        non_empty(&self.multus_namespace).unwrap_or(DEFAULT_MULTUS_NAMESPACE)
    }

    /// Namespaces whose pods do not get `defaultNetworks` (default `["kube-system"]`).
    pub fn system_namespaces(&self) -> Vec<&str> {
        match &self.system_namespaces {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => vec![DEFAULT_MULTUS_NAMESPACE],
        }
    }

    /// Namespaces whose NADs may be used from any namespace under isolation: the comma-separated
    /// `globalNamespaces` (entries trimmed, empty ones dropped), or `["default"]` when unset.
    pub fn global_namespaces(&self) -> Vec<&str> {
        match non_empty(&self.global_namespaces) {
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec![DEFAULT_GLOBAL_NAMESPACE],
        }
    }

    pub fn default_networks(&self) -> &[String] {
        self.default_networks.as_deref().unwrap_or_default()
    }

    pub fn namespace_isolation(&self) -> bool {
        self.namespace_isolation.unwrap_or(false)
    }

    pub fn retry_delete_on_error(&self) -> bool {
        self.retry_delete_on_error.unwrap_or(false)
    }

    /// `logToStderr`: on by default for the thin plugin, off for the shim.
    pub fn log_to_stderr(&self) -> bool {
        self.log_to_stderr.unwrap_or(!self.is_shim())
    }

    /// `logLevel`; an unknown value reads as the default `panic`, as upstream ignores it.
    pub fn log_level(&self) -> LogLevel {
        self.log_level
            .as_deref()
            .and_then(LogLevel::parse)
            .unwrap_or(LogLevel::Panic)
    }

    /// `logOptions` with defaults for what is unset.
    pub fn log_options(&self) -> LogOptions {
        self.log_options.clone().unwrap_or_default()
    }

    /// The static delegates (empty when unset).
    pub fn delegates(&self) -> &[NetworkConfigList] {
        self.delegates.as_deref().unwrap_or_default()
    }

    /// Every problem a person should fix in this config, with paths under `base`.
    pub fn validate(&self, base: &FieldPath) -> Diagnostics {
        validation::validate(self, base)
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

impl<'de> Deserialize<'de> for MultusConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(&Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The rules of [`MultusConfig::validate`].
mod validation {
    use super::{LogLevel, MultusConfig, NO_DELEGATE_MESSAGE, TYPE_SHIM, TYPE_THIN, non_empty};
    use crate::{
        Diagnostics, FieldPath,
        cni::CniVersion,
        names::{validate_cni_name, validate_dns1123_label},
        rules::cniconf::{NameSource, unsupported, validate_network_config},
    };

    pub(super) fn validate(cfg: &MultusConfig, base: &FieldPath) -> Diagnostics {
        let mut d = Diagnostics::new();
        plugin_identity(cfg, base, &mut d);
        delegation(cfg, base, &mut d);
        logging(cfg, base, &mut d);
        paths(cfg, base, &mut d);
        namespaces(cfg, base, &mut d);
        if let Some(aux) = non_empty(&cfg.auxiliary_cni_chain_name)
            && let Err(e) = validate_cni_name(aux)
        {
            d.error(base.field("auxiliaryCNIChainName"), e);
        }
        if cfg.cni_conf.is_some() {
            d.warning(
                base.field("cniConf"),
                "is not read by Multus (upstream's installer writes it, meaning the directory of \
                 NAD files); set confDir instead",
            );
        }
        d
    }

    fn plugin_identity(cfg: &MultusConfig, base: &FieldPath, d: &mut Diagnostics) {
        match cfg.plugin_type.as_deref() {
            None | Some("") => d.error(
                base.field("type"),
                "is required: \"multus\" (thin plugin) or \"multus-shim\" (thick plugin)",
            ),
            Some(TYPE_THIN | TYPE_SHIM) => {}
            Some(other) => d.error(
                base.field("type"),
                format!("must be \"multus\" or \"multus-shim\", not {other:?}"),
            ),
        }
        match non_empty(&cfg.name) {
            None => d.error(
                base.field("name"),
                "is required: the CNI network name (generated configs use \"multus-cni-network\")",
            ),
            Some(name) => {
                if let Err(e) = validate_cni_name(name) {
                    d.error(base.field("name"), e);
                }
            }
        }
        let path = base.field("cniVersion");
        match non_empty(&cfg.cni_version) {
            None => d.warning(
                path,
                "is not set, so runtimes use 0.1.0 (no CHECK, no GC); set the version of the \
                 cluster network's configuration",
            ),
            Some(text) => match CniVersion::parse(text) {
                Err(e) => d.error(path, e.to_string()),
                Ok(v) if !v.is_supported() => d.error(path, unsupported(v)),
                Ok(_) => {}
            },
        }
    }

    fn delegation(cfg: &MultusConfig, base: &FieldPath, d: &mut Diagnostics) {
        let cluster = non_empty(&cfg.cluster_network);
        let delegates = cfg.delegates();
        if cluster.is_none() && delegates.is_empty() {
            d.error(base.clone(), NO_DELEGATE_MESSAGE);
        }
        if cluster.is_some() && !delegates.is_empty() {
            d.warning(
                base.field("delegates"),
                "are ignored because clusterNetwork is set",
            );
        }
        if let Some(net) = cluster {
            network_reference(net, &base.field("clusterNetwork"), d);
        }
        for (i, net) in cfg.default_networks().iter().enumerate() {
            network_reference(net, &base.field("defaultNetworks").index(i), d);
        }
        for (i, delegate) in delegates.iter().enumerate() {
            let path = base.field("delegates").index(i);
            d.extend(validate_network_config(
                delegate,
                &path,
                NameSource::Required,
            ));
        }
    }

    /// `clusterNetwork` / `defaultNetworks` entries: a NAD or CNI network name, or (with a `/`) a
    /// file or directory path.
    fn network_reference(value: &str, path: &FieldPath, d: &mut Diagnostics) {
        if value.contains('/') {
            if !value.starts_with('/') {
                d.error(
                    path.clone(),
                    format!(
                        "{value:?} contains '/', so Multus reads it as a file path, and a relative \
                         path depends on the runtime's working directory; give an absolute path, \
                         or a network name (looked up as a NAD in multusNamespace, then in confDir)"
                    ),
                );
            }
        } else if let Err(e) = validate_cni_name(value) {
            d.error(path.clone(), format!("is not a network name: {e}"));
        }
    }

    fn logging(cfg: &MultusConfig, base: &FieldPath, d: &mut Diagnostics) {
        if let Some(level) = cfg.log_level.as_deref()
            && !level.is_empty()
            && LogLevel::parse(level).is_none()
        {
            d.error(
                base.field("logLevel"),
                format!("must be one of debug, verbose, error, panic, not {level:?}"),
            );
        }
        if let Some(opts) = &cfg.log_options {
            let path = base.field("logOptions");
            for (key, value) in [
                ("maxAge", opts.max_age),
                ("maxSize", opts.max_size),
                ("maxBackups", opts.max_backups),
            ] {
                if let Some(n) = value.filter(|n| *n < 0) {
                    d.error(path.field(key), format!("must not be negative, not {n}"));
                }
            }
        }
    }

    fn paths(cfg: &MultusConfig, base: &FieldPath, d: &mut Diagnostics) {
        for (key, value) in [
            ("kubeconfig", &cfg.kubeconfig),
            ("confDir", &cfg.conf_dir),
            ("cniDir", &cfg.cni_dir),
            ("binDir", &cfg.bin_dir),
            ("logFile", &cfg.log_file),
            ("readinessindicatorfile", &cfg.readiness_indicator_file),
            ("daemonSocketDir", &cfg.daemon_socket_dir),
        ] {
            if let Some(p) = non_empty(value)
                && !p.starts_with('/')
            {
                d.error(
                    base.field(key),
                    format!(
                        "{p:?} must be an absolute path: the plugin runs with the runtime's \
                         working directory"
                    ),
                );
            }
        }
    }

    fn namespaces(cfg: &MultusConfig, base: &FieldPath, d: &mut Diagnostics) {
        if let Some(ns) = non_empty(&cfg.multus_namespace)
            && let Err(e) = validate_dns1123_label(ns)
        {
            d.error(
                base.field("multusNamespace"),
                format!("is not a namespace: {e}"),
            );
        }
        for (i, ns) in cfg.system_namespaces.iter().flatten().enumerate() {
            if let Err(e) = validate_dns1123_label(ns) {
                d.error(
                    base.field("systemNamespaces").index(i),
                    format!("is not a namespace: {e}"),
                );
            }
        }
        if non_empty(&cfg.global_namespaces).is_some() {
            for ns in cfg.global_namespaces() {
                if let Err(e) = validate_dns1123_label(ns) {
                    d.error(
                        base.field("globalNamespaces"),
                        format!("is a comma-separated list of namespaces; entry {e}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const THIN: &str = r#"{
      "cniVersion": "0.4.0",
      "name": "multus-cni-network",
      "type": "multus",
      "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
      "clusterNetwork": "/etc/cni/net.d/10-flannel.conflist",
      "defaultNetworks": ["audit-net"],
      "namespaceIsolation": true,
      "globalNamespaces": "default, shared-nets",
      "logLevel": "verbose",
      "readinessindicatorfile": "/run/flannel/subnet.env",
      "x-site": {"rack": 4}
    }"#;

    fn messages(d: &Diagnostics) -> Vec<String> {
        d.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reads_every_key_and_keeps_unknown_ones() {
        let c = MultusConfig::parse(THIN).unwrap();
        assert_eq!(c.plugin_type.as_deref(), Some("multus"));
        assert_eq!(c.global_namespaces(), vec!["default", "shared-nets"]);
        assert_eq!(c.log_level(), LogLevel::Verbose);
        assert_eq!(
            c.readiness_indicator_file.as_deref(),
            Some("/run/flannel/subnet.env")
        );
        assert_eq!(c.extra.get("x-site"), Some(&json!({"rack": 4})));
        let again = MultusConfig::parse(&c.to_json_string()).unwrap();
        assert_eq!(again, c);
        assert!(
            c.validate(&FieldPath::root()).is_empty(),
            "{:?}",
            messages(&c.validate(&FieldPath::root()))
        );
    }

    #[test]
    fn defaults_match_upstream() {
        let c = MultusConfig::parse(
            r#"{"type":"multus","name":"m","delegates":[{"type":"flannel","name":"cbr0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.conf_dir(), "/etc/cni/multus/net.d");
        assert_eq!(c.cni_dir(), "/var/lib/cni/multus");
        assert_eq!(c.bin_dir(), "/opt/cni/bin");
        assert_eq!(c.system_namespaces(), vec!["kube-system"]);
        assert_eq!(c.multus_namespace(), "kube-system");
        assert_eq!(c.global_namespaces(), vec!["default"]);
        assert_eq!(c.log_level(), LogLevel::Panic);
        assert!(c.log_to_stderr());
        assert!(!c.namespace_isolation());
        assert!(!c.retry_delete_on_error());
        assert_eq!(c.daemon_socket_dir(), "/run/multus/");
        let o = c.log_options();
        assert_eq!(
            (o.max_age(), o.max_size(), o.max_backups(), o.compress()),
            (5, 100, 5, true)
        );
        let shim = MultusConfig::parse(r#"{"type":"multus-shim"}"#).unwrap();
        assert!(!shim.log_to_stderr());
        assert_eq!(c.delegates()[0].name(), "cbr0");
    }

    #[test]
    fn every_key_round_trips() {
        let v = json!({
            "cniVersion":"1.0.0","name":"m","type":"multus-shim","kubeconfig":"/k",
            "delegates":[{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]},{"type":"macvlan","name":"x"}],
            "clusterNetwork":"cbr0","defaultNetworks":["a","b"],"systemNamespaces":["kube-system","ops"],
            "multusNamespace":"multus","namespaceIsolation":false,"globalNamespaces":"default",
            "confDir":"/c","cniDir":"/d","binDir":"/b","logFile":"/l","logLevel":"debug","logToStderr":true,
            "logOptions":{"maxAge":1,"maxSize":2,"maxBackups":3,"compress":false,"other":1},
            "readinessindicatorfile":"/r","capabilities":{"portMappings":true,"bandwidth":false},
            "runtimeConfig":{"portMappings":[]},"auxiliaryCNIChainName":"aux","retryDeleteOnError":true,
            "prevResult":{"cniVersion":"1.0.0"},"daemonSocketDir":"/run/multus/","cniConf":"/host/etc/cni/multus/net.d",
            "unknown":[1,2]
        });
        let c = MultusConfig::from_value(&v).unwrap();
        assert_eq!(c.to_value(), v);
        assert!(c.extra.contains_key("unknown"));
        assert_eq!(c.log_options().extra.get("other"), Some(&json!(1)));
    }

    #[test]
    fn wrong_types_are_parse_errors_with_paths() {
        for (text, path) in [
            ("[]", ""),
            (r#"{"namespaceIsolation":"true"}"#, "namespaceIsolation"),
            (r#"{"globalNamespaces":["a"]}"#, "globalNamespaces"),
            (r#"{"defaultNetworks":"a"}"#, "defaultNetworks"),
            (r#"{"systemNamespaces":[1]}"#, "systemNamespaces[0]"),
            (r#"{"capabilities":{"ips":"yes"}}"#, "capabilities[ips]"),
            (r#"{"logOptions":{"maxAge":"5"}}"#, "logOptions.maxAge"),
            (r#"{"delegates":{}}"#, "delegates"),
            (
                r#"{"delegates":[{"name":"x","plugins":[{"bridge":"b"}]}]}"#,
                "delegates[0].plugins[0].type",
            ),
        ] {
            assert_eq!(
                MultusConfig::parse(text).unwrap_err().path.as_str(),
                path,
                "{text}"
            );
        }
    }

    #[test]
    fn reads_the_multus_plugin_of_a_conflist() {
        let list = NetworkConfigList::parse(
            r#"{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"multus-shim","clusterNetwork":"/etc/cni/net.d/10-calico.conflist"}]}"#,
        )
        .unwrap();
        let c = MultusConfig::from_network_config(&list).unwrap();
        assert!(c.is_shim());
        assert_eq!(c.name.as_deref(), Some("multus-cni-network"));
        assert_eq!(c.cni_version.as_deref(), Some("1.0.0"));
        assert_eq!(
            c.cluster_network.as_deref(),
            Some("/etc/cni/net.d/10-calico.conflist")
        );
        let other =
            NetworkConfigList::parse(r#"{"name":"n","plugins":[{"type":"bridge"}]}"#).unwrap();
        assert_eq!(
            MultusConfig::from_network_config(&other)
                .unwrap_err()
                .path
                .as_str(),
            "plugins"
        );
    }

    #[test]
    fn requires_a_cluster_network_or_delegates() {
        let c = MultusConfig::parse(
            r#"{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[]}"#,
        )
        .unwrap();
        let d = c.validate(&FieldPath::root());
        assert_eq!(messages(&d), vec![NO_DELEGATE_MESSAGE.to_owned()]);
        let c = MultusConfig::parse(
            r#"{"cniVersion":"1.0.0","name":"m","type":"multus","clusterNetwork":"cbr0"}"#,
        )
        .unwrap();
        assert!(c.validate(&FieldPath::root()).is_empty());
    }

    #[test]
    fn reports_bad_values_with_paths() {
        let c = MultusConfig::parse(
            r#"{"cniVersion":"9.9.9","name":"-m","type":"flannel","clusterNetwork":"nets/x",
                "delegates":[{"name":"cbr0","type":"../../bin/sh"}],
                "defaultNetworks":["ok","bad name"],"logLevel":"trace","confDir":"etc/cni",
                "multusNamespace":"Kube","systemNamespaces":["a_b"],"globalNamespaces":"default,-x",
                "logOptions":{"maxAge":-1},"auxiliaryCNIChainName":"a b","cniConf":"/x"}"#,
        )
        .unwrap();
        let d = c.validate(&FieldPath::new("data"));
        let paths: Vec<&str> = d.iter().map(|x| x.path.as_str()).collect();
        for p in [
            "data.type",
            "data.name",
            "data.cniVersion",
            "data.clusterNetwork",
            "data.delegates",
            "data.delegates[0].type",
            "data.defaultNetworks[1]",
            "data.logLevel",
            "data.confDir",
            "data.multusNamespace",
            "data.systemNamespaces[0]",
            "data.globalNamespaces",
            "data.logOptions.maxAge",
            "data.auxiliaryCNIChainName",
            "data.cniConf",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        assert!(d.warnings().any(|w| w.path.as_str() == "data.cniConf"));
        assert!(d.warnings().any(|w| w.path.as_str() == "data.delegates"));
        // Upper-case levels are accepted, as upstream lower-cases them.
        let c = MultusConfig::parse(r#"{"cniVersion":"1.0.0","name":"m","type":"multus","clusterNetwork":"c","logLevel":"DEBUG"}"#).unwrap();
        assert!(c.validate(&FieldPath::root()).is_empty());
        assert_eq!(c.log_level(), LogLevel::Debug);
    }
}
