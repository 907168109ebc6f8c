//! The two file outputs derived from other files, each kept up to date by filesystem events:
//! `00-multus` from the primary CNI config (and the readiness indicator file), the plugin's
//! kubeconfig from the service account's token and CA. Each pass re-reads its inputs and writes
//! only when the output's content would change.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::error::CniAgentError;
use super::files;
use super::kubeconfig::KubeconfigSettings;
use super::metrics::AgentMetrics;
use super::multusconf::{self, Settings};
use super::watch::{DirEvents, parent};

/// Write `body` to `path` unless it already holds exactly that; whether it wrote.
fn write_if_changed(path: &Path, body: &[u8]) -> Result<bool, CniAgentError> {
    if std::fs::read(path).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    files::write_private(path, body)?;
    Ok(true)
}

/// Where the primary follower reads and writes.
#[derive(Clone, Debug)]
pub struct PrimaryPaths {
    /// The CNI config dir under the host root.
    pub cni_conf_dir: PathBuf,
    /// The readiness indicator file under the host root.
    pub readiness: Option<PathBuf>,
}

/// What one pass of the primary follower did.
#[derive(Debug, PartialEq, Eq)]
pub enum PrimaryPass {
    Written(&'static str),
    Unchanged,
    /// The readiness indicator file is not there yet: nothing written.
    NotReady,
}

/// One pass: regenerate `00-multus` if the primary (or the readiness file) allows and it changed.
pub fn reconcile_primary(
    paths: &PrimaryPaths,
    settings: &Settings,
) -> Result<PrimaryPass, CniAgentError> {
    if let Some(r) = &paths.readiness
        && !r.exists()
    {
        return Ok(PrimaryPass::NotReady);
    }
    let primary = multusconf::find_primary(&paths.cni_conf_dir, settings.primary.as_deref())?;
    let text = std::fs::read_to_string(&primary).map_err(|source| CniAgentError::ReadFile {
        path: primary.clone(),
        source,
    })?;
    let generated = multusconf::generate(settings, &primary, &text)?;
    let out = paths.cni_conf_dir.join(generated.file_name);
    let wrote = write_if_changed(&out, &generated.body)?;
    files::remove(
        &paths
            .cni_conf_dir
            .join(multusconf::other_form(generated.file_name)),
    )?;
    Ok(if wrote {
        PrimaryPass::Written(generated.file_name)
    } else {
        PrimaryPass::Unchanged
    })
}

/// Keep `00-multus` up to date until shutdown. It is never removed, on shutdown or when the
/// primary or the readiness file goes away (multus-spec §3.18 item 9).
pub async fn follow_primary(
    paths: PrimaryPaths,
    settings: Settings,
    metrics: AgentMetrics,
    shutdown: CancellationToken,
) -> Result<(), CniAgentError> {
    let mut dirs = vec![paths.cni_conf_dir.clone()];
    if let Some(r) = &paths.readiness {
        let dir = parent(r);
        // Made below so that it can be watched, but made inside the agent's own filesystem: a
        // host directory that is not mounted into the agent never shows the file.
        if !dir.is_dir() {
            tracing::error!(
                dir = %dir.display(),
                "the readiness indicator file's directory does not exist under the host root: is it mounted into the agent? 00-multus is not written until the file appears"
            );
        }
        dirs.push(dir);
    }
    let mut events = DirEvents::watch(&dirs)?;
    let mut last_problem = String::new();
    loop {
        let span = tracing::info_span!("multus_config", dir = %paths.cni_conf_dir.display());
        let _entered = span.enter();
        match reconcile_primary(&paths, &settings) {
            Ok(pass) => {
                metrics.reconciled("multus_config");
                match pass {
                    PrimaryPass::Written(file) => {
                        metrics.written("multus_config");
                        tracing::info!(file, "wrote the Multus CNI config");
                        last_problem.clear();
                    }
                    PrimaryPass::NotReady => {
                        let problem = "waiting for the readiness indicator file".to_owned();
                        if problem != last_problem {
                            tracing::info!(file = ?paths.readiness, "{problem}");
                            last_problem = problem;
                        }
                    }
                    PrimaryPass::Unchanged => last_problem.clear(),
                }
            }
            Err(e) => {
                metrics.failed(&e);
                let problem = e.to_string();
                if problem != last_problem {
                    tracing::warn!(error = %e, "Multus CNI config not regenerated; the previous one stays");
                    last_problem = problem;
                }
            }
        }
        drop(_entered);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            changed = events.changed() => if !changed { return Ok(()) },
        }
    }
}

/// Keep the plugin's kubeconfig in step with the service account until shutdown.
/// Write the plugin kubeconfig if its content changed (counted in `metrics` either way).
pub fn write_kubeconfig(
    settings: &KubeconfigSettings,
    metrics: &AgentMetrics,
) -> Result<(), CniAgentError> {
    match settings
        .render()
        .and_then(|body| write_if_changed(&settings.path, &body))
    {
        Ok(wrote) => {
            metrics.reconciled("kubeconfig");
            if wrote {
                metrics.written("kubeconfig");
                tracing::info!(path = %settings.path.display(), "wrote the plugin kubeconfig");
            }
            Ok(())
        }
        Err(e) => {
            metrics.failed(&e);
            Err(e)
        }
    }
}

pub async fn follow_kubeconfig(
    settings: KubeconfigSettings,
    metrics: AgentMetrics,
    shutdown: CancellationToken,
) -> Result<(), CniAgentError> {
    let mut events = DirEvents::watch(std::slice::from_ref(&settings.service_account_dir))?;
    loop {
        if let Err(e) = write_kubeconfig(&settings, &metrics) {
            tracing::warn!(error = %e, "plugin kubeconfig not written");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            changed = events.changed() => if !changed { return Ok(()) },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::time::Duration;

    use super::*;
    use crate::agent::cni::multusconf::Mode;

    const BRIDGE_V1: &str =
        r#"{"cniVersion":"1.0.0","name":"pod-net","plugins":[{"type":"bridge"}]}"#;
    const BRIDGE_V04: &str = r#"{"cniVersion":"0.4.0","name":"pod-net","type":"bridge"}"#;

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn waits_for_readiness_then_switches_forms_and_keeps_the_output_when_the_primary_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net.d");
        std::fs::create_dir_all(&dir).unwrap();
        let paths = PrimaryPaths {
            cni_conf_dir: dir.clone(),
            readiness: Some(tmp.path().join("run/ready")),
        };
        let settings = Settings::new(Mode::Thin);
        std::fs::write(dir.join("10-a.conflist"), BRIDGE_V1).unwrap();
        assert_eq!(
            reconcile_primary(&paths, &settings).unwrap(),
            PrimaryPass::NotReady
        );
        std::fs::create_dir_all(tmp.path().join("run")).unwrap();
        std::fs::write(tmp.path().join("run/ready"), "").unwrap();
        assert_eq!(
            reconcile_primary(&paths, &settings).unwrap(),
            PrimaryPass::Written("00-multus.conflist")
        );
        assert_eq!(
            reconcile_primary(&paths, &settings).unwrap(),
            PrimaryPass::Unchanged
        );
        std::fs::remove_file(dir.join("10-a.conflist")).unwrap();
        std::fs::write(dir.join("10-a.conf"), BRIDGE_V04).unwrap();
        assert_eq!(
            reconcile_primary(&paths, &settings).unwrap(),
            PrimaryPass::Written("00-multus.conf")
        );
        assert!(!dir.join("00-multus.conflist").exists());
        std::fs::remove_file(dir.join("10-a.conf")).unwrap();
        assert!(reconcile_primary(&paths, &settings).is_err());
        assert!(dir.join("00-multus.conf").exists());
    }

    #[tokio::test]
    async fn follows_primary_changes_and_token_rotation_by_filesystem_events() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net.d");
        let sa = tmp.path().join("sa");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(dir.join("10-a.conflist"), BRIDGE_V1).unwrap();
        std::fs::write(sa.join("token"), "first").unwrap();
        let shutdown = CancellationToken::new();
        let metrics = AgentMetrics::default();
        let primary = tokio::spawn(follow_primary(
            PrimaryPaths {
                cni_conf_dir: dir.clone(),
                readiness: None,
            },
            Settings::new(Mode::Thick),
            metrics.clone(),
            shutdown.clone(),
        ));
        let kubeconfig = dir.join("multus.d/multus.kubeconfig");
        let kc = tokio::spawn(follow_kubeconfig(
            KubeconfigSettings {
                service_account_dir: sa.clone(),
                server: Some("https://10.0.0.1:443".into()),
                skip_tls_verify: false,
                path: kubeconfig.clone(),
            },
            metrics.clone(),
            shutdown.clone(),
        ));
        let out = dir.join("00-multus.conflist");
        until("00-multus written", || out.exists()).await;
        until("kubeconfig written", || {
            std::fs::read_to_string(&kubeconfig).is_ok_and(|t| t.contains("first"))
        })
        .await;
        // A new primary sorting first replaces the old as the cluster network.
        std::fs::write(dir.join("05-b.conflist"), BRIDGE_V1).unwrap();
        until("00-multus regenerated", || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.contains("05-b.conflist"))
        })
        .await;
        std::fs::write(sa.join("token"), "second").unwrap();
        until("kubeconfig rewritten", || {
            std::fs::read_to_string(&kubeconfig).is_ok_and(|t| t.contains("second"))
        })
        .await;
        shutdown.cancel();
        primary.await.unwrap().unwrap();
        kc.await.unwrap().unwrap();
        // Never removed on shutdown.
        assert!(out.exists());
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);
    }
}
