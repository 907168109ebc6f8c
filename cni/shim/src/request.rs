//! The request for `POST /cni`: the CNI environment and the config, as `multus` forwards them
//! (multus-spec §3.16).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine as _;
use serde::Deserialize;

/// The socket's file name in `daemonSocketDir`.
pub const SOCKET_NAME: &str = "multus.sock";
/// `daemonSocketDir` when the config has none (Multus' default).
pub const DEFAULT_SOCKET_DIR: &str = "/run/multus/";
/// The CNI variables forwarded to the daemon; it reads and checks them as the thin plugin does.
pub const FORWARDED_ENV: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// The few keys of the Multus config the shim itself needs; the daemon reads the rest.
#[derive(Debug, Default, Deserialize)]
pub struct ShimConfig {
    #[serde(rename = "type", default)]
    pub plugin_type: Option<String>,
    #[serde(rename = "cniVersion", default)]
    pub cni_version: Option<String>,
    #[serde(rename = "daemonSocketDir", default)]
    pub daemon_socket_dir: Option<String>,
    /// A conflist (`plugins`) is not what a runtime hands a plugin; `multus` explains it.
    #[serde(default)]
    pub plugins: Option<serde::de::IgnoredAny>,
}

impl ShimConfig {
    /// The config when it is one the shim forwards as it is: a single `multus-shim` plugin
    /// config. `None` sends the call to `multus`, which reports what is wrong with it.
    pub fn parse(stdin: &[u8]) -> Option<Self> {
        let config: Self = serde_json::from_slice(stdin).ok()?;
        (config.plugin_type.as_deref() == Some("multus-shim") && config.plugins.is_none())
            .then_some(config)
    }

    /// `<daemonSocketDir>/multus.sock`.
    pub fn socket_path(&self) -> String {
        let dir = self
            .daemon_socket_dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_SOCKET_DIR);
        let mut path = String::from(dir.trim_end_matches('/'));
        path.push('/');
        path.push_str(SOCKET_NAME);
        path
    }

    /// The version errors and results are printed in: the config's when supported, else the
    /// newest (the rule of [`crate::answer::version_of`]).
    pub fn version(&self) -> &'static str {
        crate::answer::supported_or_current(self.cni_version.as_deref())
    }
}

/// The body of `POST /cni`: `{"env": {the CNI variables that are set}, "config": base64}`.
pub fn body<'a>(env: impl Iterator<Item = (&'a str, &'a str)>, config: &[u8]) -> Vec<u8> {
    // The first of duplicate entries, as getenv(3) and the shim's own reading see it.
    let mut forwarded: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in env.filter(|(name, _)| FORWARDED_ENV.contains(name)) {
        forwarded.entry(name).or_insert(value);
    }
    let request = serde_json::json!({
        "env": forwarded,
        "config": base64::engine::general_purpose::STANDARD.encode(config),
    });
    serde_json::to_vec(&request).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forwards_a_shim_config_and_hands_anything_else_to_multus() {
        let c = ShimConfig::parse(
            br#"{"cniVersion":"0.4.0","name":"m","type":"multus-shim","daemonSocketDir":"/x/run/","delegates":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(c.socket_path(), "/x/run/multus.sock");
        assert_eq!(c.version(), "0.4.0");
        let bare = ShimConfig::parse(br#"{"type":"multus-shim"}"#).unwrap();
        assert_eq!(bare.socket_path(), "/run/multus/multus.sock");
        assert_eq!(bare.version(), crate::answer::CURRENT_VERSION);
        // An unsupported version: errors in the newest, as for a config the shim hands over.
        let odd = ShimConfig::parse(br#"{"cniVersion":"9.9.9","type":"multus-shim"}"#).unwrap();
        assert_eq!(odd.version(), crate::answer::CURRENT_VERSION);
        for other in [
            &br#"{"type":"multus"}"#[..],
            br#"{"plugins":[{"type":"multus-shim"}],"type":"multus-shim"}"#,
            br#"{"type":"multus-shim""#,
            b"",
        ] {
            assert!(ShimConfig::parse(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn the_body_carries_the_cni_variables_and_the_config_as_base64() {
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("HOME", "/root"),
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        let body = body(env.into_iter(), b"{\"type\":\"multus-shim\"}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["env"],
            serde_json::json!({"CNI_COMMAND":"ADD","CNI_CONTAINERID":"c1","CNI_PATH":"/opt/cni/bin"})
        );
        assert_eq!(v["config"], "eyJ0eXBlIjoibXVsdHVzLXNoaW0ifQ==");
    }
}
