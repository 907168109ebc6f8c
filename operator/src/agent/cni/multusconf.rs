//! The node's Multus CNI configuration, `00-multus.conf` / `00-multus.conflist`, generated from
//! the primary network's config as upstream's thin installer (multus-spec §2.3) and thick daemon
//! (§2.4) do:
//!
//! - the primary is the named file, else the lexically first `.conf`/`.conflist` of the CNI
//!   config dir whose name does not start with `00-multus`; it must carry a `cniVersion`;
//! - `name` is `multus-cni-network` (or the primary's with `override_network_name`), the
//!   capabilities are the union of the primary's enabled ones, `cniVersion` is the primary's;
//! - thin: `type: multus`, the primary as the single element of `delegates`, `kubeconfig`;
//!   thick: `type: multus-shim`, `clusterNetwork` = the primary's path as the daemon sees it;
//! - below CNI 1.0.0 it is written as `00-multus.conf` (one plugin object), from 1.0.0 on as
//!   `00-multus.conflist` (the object as the single plugin of a list); the other form is removed.
//!
//! It is never deleted on shutdown (multus-spec §5 item 5, §3.18 item 9): with the agent down the
//! thin plugin keeps working and the shim fails loudly, rather than pods silently starting with
//! only their primary network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use multus_crds::cni::{CniVersion, NetworkConfigList};
use multus_crds::multus_config::{TYPE_SHIM, TYPE_THIN};
use serde_json::{Map, Value, json};

use super::error::CniAgentError;

/// Prefix of the generated files (never a primary candidate).
pub const OUTPUT_PREFIX: &str = "00-multus";
pub const OUTPUT_CONF: &str = "00-multus.conf";
pub const OUTPUT_CONFLIST: &str = "00-multus.conflist";
/// `name` of the generated network unless the primary's is kept.
pub const NETWORK_NAME: &str = "multus-cni-network";

/// How pods are served: the thin plugin in-process, or the shim talking to the agent's daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Thin,
    Thick,
}

/// Everything that shapes the generated file besides the primary.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    /// A primary file name in the CNI config dir; `None`: the first candidate.
    pub primary: Option<String>,
    /// Thin: the kubeconfig path as the plugin on the host sees it.
    pub kubeconfig: String,
    /// Thick: the CNI config dir as the daemon sees it (the `clusterNetwork` prefix).
    pub daemon_conf_dir: String,
    /// Thick: `daemonSocketDir` as the shim on the host sees it.
    pub daemon_socket_dir: Option<String>,
    pub readiness_indicator_file: Option<String>,
    pub namespace_isolation: bool,
    pub global_namespaces: Option<String>,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    /// Multus `confDir` when not the default.
    pub conf_dir: Option<String>,
    pub override_network_name: bool,
}

impl Settings {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            primary: None,
            kubeconfig: "/etc/cni/net.d/multus.d/multus.kubeconfig".into(),
            daemon_conf_dir: "/etc/cni/net.d".into(),
            daemon_socket_dir: None,
            readiness_indicator_file: None,
            namespace_isolation: false,
            global_namespaces: None,
            log_level: None,
            log_file: None,
            conf_dir: None,
            override_network_name: false,
        }
    }
}

/// A generated file: its name in the CNI config dir and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub file_name: &'static str,
    pub body: Vec<u8>,
}

fn is_candidate(name: &str) -> bool {
    !name.starts_with(OUTPUT_PREFIX)
        && !name.starts_with('.')
        && (name.ends_with(".conf") || name.ends_with(".conflist"))
}

/// The primary network's file in `dir`: `named`, else the first candidate in lexical order.
pub fn find_primary(dir: &Path, named: Option<&str>) -> Result<PathBuf, CniAgentError> {
    if let Some(name) = named {
        if name.starts_with(OUTPUT_PREFIX) {
            return Err(CniAgentError::PrimaryConfig {
                path: dir.join(name),
                message: "the primary cannot be the generated file itself".into(),
            });
        }
        let path = dir.join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(CniAgentError::NoPrimaryConfig {
                dir: dir.to_owned(),
            })
        };
    }
    let entries = std::fs::read_dir(dir).map_err(|source| CniAgentError::ListDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_candidate(n))
        .collect();
    names.sort();
    names
        .first()
        .map(|n| dir.join(n))
        .ok_or_else(|| CniAgentError::NoPrimaryConfig {
            dir: dir.to_owned(),
        })
}

/// Generate the Multus config from the primary's `path` (its name) and `text` (pure).
pub fn generate(settings: &Settings, path: &Path, text: &str) -> Result<Generated, CniAgentError> {
    let bad = |message: String| CniAgentError::PrimaryConfig {
        path: path.to_owned(),
        message,
    };
    let is_list = path.extension().is_some_and(|e| e == "conflist");
    let list = if is_list {
        NetworkConfigList::parse(text)
    } else {
        NetworkConfigList::parse_any(text)
    }
    .map_err(|e| bad(e.message()))?;
    let version_text = list
        .cni_version()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("the primary config has no cniVersion".into()))?;
    let version = CniVersion::parse(version_text).map_err(|e| bad(e.to_string()))?;

    let mut capabilities = BTreeMap::new();
    for plugin in list.plugins() {
        for (cap, on) in plugin.capabilities() {
            if on {
                capabilities.insert(cap.to_owned(), true);
            }
        }
    }
    let name = if settings.override_network_name && !list.name().is_empty() {
        list.name().to_owned()
    } else {
        NETWORK_NAME.to_owned()
    };

    let mut conf = Map::new();
    conf.insert("cniVersion".into(), json!(version_text));
    conf.insert("name".into(), json!(name));
    match settings.mode {
        Mode::Thin => {
            conf.insert("type".into(), json!(TYPE_THIN));
        }
        Mode::Thick => {
            conf.insert("type".into(), json!(TYPE_SHIM));
        }
    }
    if !capabilities.is_empty() {
        conf.insert("capabilities".into(), json!(capabilities));
    }
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match settings.mode {
        Mode::Thin => {
            conf.insert("kubeconfig".into(), json!(settings.kubeconfig));
            let primary: Value =
                serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
            conf.insert("delegates".into(), Value::Array(vec![primary]));
        }
        Mode::Thick => {
            let dir = settings.daemon_conf_dir.trim_end_matches('/');
            conf.insert("clusterNetwork".into(), json!(format!("{dir}/{file}")));
            if let Some(socket) = &settings.daemon_socket_dir {
                conf.insert("daemonSocketDir".into(), json!(socket));
            }
        }
    }
    if settings.namespace_isolation {
        conf.insert("namespaceIsolation".into(), json!(true));
    }
    let optional = [
        ("globalNamespaces", &settings.global_namespaces),
        ("logLevel", &settings.log_level),
        ("logFile", &settings.log_file),
        ("confDir", &settings.conf_dir),
        ("readinessindicatorfile", &settings.readiness_indicator_file),
    ];
    for (key, value) in optional {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            conf.insert(key.into(), json!(v));
        }
    }

    let (file_name, doc) = if version < CniVersion::V1_0_0 {
        (OUTPUT_CONF, Value::Object(conf))
    } else {
        let version = conf.remove("cniVersion").unwrap_or(Value::Null);
        let name = conf.remove("name").unwrap_or(Value::Null);
        (
            OUTPUT_CONFLIST,
            json!({"cniVersion": version, "name": name, "plugins": [Value::Object(conf)]}),
        )
    };
    let mut body = serde_json::to_vec_pretty(&doc).map_err(|e| bad(e.to_string()))?;
    body.push(b'\n');
    Ok(Generated { file_name, body })
}

/// The other form's file name (removed when this one is written).
pub fn other_form(file_name: &str) -> &'static str {
    if file_name == OUTPUT_CONF {
        OUTPUT_CONFLIST
    } else {
        OUTPUT_CONF
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use multus_crds::multus_config::MultusConfig;

    use super::*;

    const FLANNEL: &str = r#"{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel","delegate":{"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;
    const CALICO: &str = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"calico","capabilities":{"bandwidth":true}},{"type":"portmap","capabilities":{"portMappings":true,"other":false}}]}"#;

    #[test]
    fn thin_below_1_0_0_is_a_conf_wrapping_the_primary_as_the_delegate() {
        let mut s = Settings::new(Mode::Thin);
        s.namespace_isolation = true;
        s.global_namespaces = Some("default,shared".into());
        s.readiness_indicator_file = Some("/run/flannel/subnet.env".into());
        let g = generate(&s, Path::new("/x/10-flannel.conflist"), FLANNEL).unwrap();
        assert_eq!(g.file_name, OUTPUT_CONF);
        let v: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(v["type"], "multus");
        assert_eq!(v["name"], NETWORK_NAME);
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["capabilities"], json!({"portMappings": true}));
        assert_eq!(
            v["delegates"][0],
            serde_json::from_str::<Value>(FLANNEL).unwrap()
        );
        assert_eq!(v["kubeconfig"], "/etc/cni/net.d/multus.d/multus.kubeconfig");
        assert_eq!(v["namespaceIsolation"], true);
        assert_eq!(v["readinessindicatorfile"], "/run/flannel/subnet.env");
        // The plugin reads it as its config.
        let c = MultusConfig::parse(std::str::from_utf8(&g.body).unwrap()).unwrap();
        assert!(!c.is_shim());
        assert_eq!(c.delegates.unwrap().len(), 1);
    }

    #[test]
    fn thick_from_1_0_0_is_a_conflist_naming_the_primary_as_cluster_network() {
        let mut s = Settings::new(Mode::Thick);
        s.daemon_conf_dir = "/host/etc/cni/net.d/".into();
        s.daemon_socket_dir = Some("/run/multus/".into());
        let g = generate(&s, Path::new("/x/10-calico.conflist"), CALICO).unwrap();
        assert_eq!(g.file_name, OUTPUT_CONFLIST);
        let list = NetworkConfigList::parse(std::str::from_utf8(&g.body).unwrap()).unwrap();
        let c = MultusConfig::from_network_config(&list).unwrap();
        assert!(c.is_shim());
        assert_eq!(c.name.as_deref(), Some(NETWORK_NAME));
        assert_eq!(
            c.cluster_network.as_deref(),
            Some("/host/etc/cni/net.d/10-calico.conflist")
        );
        assert_eq!(
            c.capabilities.unwrap().into_keys().collect::<Vec<_>>(),
            vec!["bandwidth", "portMappings"]
        );
        assert_eq!(c.daemon_socket_dir.as_deref(), Some("/run/multus/"));
    }

    #[test]
    fn override_network_name_keeps_the_primarys() {
        let mut s = Settings::new(Mode::Thick);
        s.override_network_name = true;
        let g = generate(&s, Path::new("/x/10-calico.conflist"), CALICO).unwrap();
        let v: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(v["name"], "k8s-pod-network");
    }

    #[test]
    fn a_primary_without_cni_version_is_refused() {
        let s = Settings::new(Mode::Thin);
        let e = generate(
            &s,
            Path::new("/x/10-a.conf"),
            r#"{"name":"a","type":"bridge"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("cniVersion"), "{e}");
    }

    #[test]
    fn the_primary_is_the_first_candidate_never_our_own_output() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in [
            "00-multus.conf",
            "20-b.conflist",
            "10-a.conf",
            "05-x.json",
            ".hidden.conf",
        ] {
            std::fs::write(d.join(f), "{}").unwrap();
        }
        assert_eq!(find_primary(d, None).unwrap(), d.join("10-a.conf"));
        assert_eq!(
            find_primary(d, Some("20-b.conflist")).unwrap(),
            d.join("20-b.conflist")
        );
        assert!(find_primary(d, Some("00-multus.conf")).is_err());
        assert!(find_primary(d, Some("missing.conf")).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            find_primary(empty.path(), None),
            Err(CniAgentError::NoPrimaryConfig { .. })
        ));
    }
}
