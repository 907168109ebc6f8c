//! The thin plugin's kubeconfig, `<cni conf dir>/multus.d/multus.kubeconfig` (0600, atomic), built
//! from the agent's service account as upstream's installer does (multus-spec §2.3 step 2): the
//! bound token inline, the CA as `certificate-authority-data` (or `insecure-skip-tls-verify`), the
//! server from `KUBERNETES_SERVICE_{PROTOCOL,HOST,PORT}`.
//!
//! Bound tokens expire (multus-spec §5 item 3): the agent follows the service-account directory
//! with filesystem events and rewrites the file whenever the token or the CA changes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use super::error::CniAgentError;

/// Where kubelet projects the service account.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The service account's token and CA, as read from its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub token: String,
    pub ca: Option<Vec<u8>>,
}

/// Read `token` and `ca.crt` from `dir` (the CA is optional).
pub fn read_service_account(dir: &Path) -> Result<ServiceAccount, CniAgentError> {
    let token_path = dir.join("token");
    let token = std::fs::read_to_string(&token_path).map_err(|source| CniAgentError::ReadFile {
        path: token_path,
        source,
    })?;
    let ca = std::fs::read(dir.join("ca.crt"))
        .ok()
        .filter(|c| !c.is_empty());
    Ok(ServiceAccount {
        token: token.trim().to_owned(),
        ca,
    })
}

/// `https://host:port` from the in-cluster environment (IPv6 hosts bracketed).
pub fn server_from_env(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let host = get("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty())?;
    let port = get("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty())?;
    let protocol = get("KUBERNETES_SERVICE_PROTOCOL")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "https".into());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("{protocol}://{host}:{port}"))
}

/// The kubeconfig text (JSON, which every kubeconfig reader accepts as YAML).
pub fn render(server: &str, sa: &ServiceAccount, skip_tls_verify: bool) -> Vec<u8> {
    let mut cluster = serde_json::Map::new();
    cluster.insert("server".into(), json!(server));
    match (&sa.ca, skip_tls_verify) {
        (Some(ca), false) => {
            cluster.insert(
                "certificate-authority-data".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(ca)),
            );
        }
        _ => {
            cluster.insert("insecure-skip-tls-verify".into(), json!(true));
        }
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "multus", "user": {"token": sa.token}}],
        "contexts": [{"name": "multus-context", "context": {"cluster": "local", "user": "multus"}}],
        "current-context": "multus-context",
    });
    let mut body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    body.push(b'\n');
    body
}

/// What the kubeconfig writer needs.
#[derive(Clone, Debug)]
pub struct KubeconfigSettings {
    pub service_account_dir: PathBuf,
    /// The API server URL; `None`: from the in-cluster environment.
    pub server: Option<String>,
    pub skip_tls_verify: bool,
    /// Where to write (under the host root).
    pub path: PathBuf,
}

impl KubeconfigSettings {
    /// Render from the current service account; `None` if unchanged from `last`.
    pub fn render(&self) -> Result<Vec<u8>, CniAgentError> {
        let server = self
            .server
            .clone()
            .or_else(|| server_from_env(|k| std::env::var(k).ok()))
            .ok_or(CniAgentError::NoApiServer)?;
        let sa = read_service_account(&self.service_account_dir)?;
        Ok(render(&server, &sa, self.skip_tls_verify))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn server_comes_from_the_in_cluster_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            server_from_env(env(&[
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("KUBERNETES_SERVICE_PORT", "443")
            ])),
            Some("https://10.96.0.1:443".into())
        );
        assert_eq!(
            server_from_env(env(&[
                ("KUBERNETES_SERVICE_HOST", "fd00::1"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
                ("KUBERNETES_SERVICE_PROTOCOL", "http")
            ])),
            Some("http://[fd00::1]:6443".into())
        );
        assert_eq!(server_from_env(env(&[])), None);
    }

    #[test]
    fn renders_a_kubeconfig_kube_reads() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("token"), "tok-1\n").unwrap();
        std::fs::write(tmp.path().join("ca.crt"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        let sa = read_service_account(tmp.path()).unwrap();
        assert_eq!(sa.token, "tok-1");
        let body = render("https://10.0.0.1:443", &sa, false);
        let text = String::from_utf8(body).unwrap();
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.1:443"));
        assert!(cluster.certificate_authority_data.is_some());
        let insecure = render(
            "https://x:1",
            &ServiceAccount {
                token: "t".into(),
                ca: None,
            },
            false,
        );
        assert!(
            String::from_utf8(insecure)
                .unwrap()
                .contains("insecure-skip-tls-verify")
        );
    }
}
