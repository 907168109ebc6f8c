//! Running one CNI plugin binary (libcni `invoke`): find it in `binDir` then `CNI_PATH`, give it
//! the `CNI_*` environment and its config on stdin, and read its result or error object.
//!
//! A plugin `type` is checked to be a bare binary name before any lookup: a NAD is written by
//! namespace users, and a path there would run any file on the node as root.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multus_crds::cni::CniError;
use multus_crds::names::validate_plugin_type;

use crate::env::Command;
use crate::error::{Error, Result};

mod child;

/// The environment of one plugin call.
#[derive(Clone, Debug)]
pub struct PluginEnv<'a> {
    pub command: Command,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    /// Directories searched for plugins, in order (`binDir` first).
    pub path: &'a [PathBuf],
}

/// Time spent inside plugin processes, so the meta-plugin's own overhead can be measured.
#[derive(Debug, Default)]
pub struct ExecStats {
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl ExecStats {
    /// Count one plugin call that started at `started`; returns its duration in nanoseconds.
    pub fn record(&self, started: Instant) -> u64 {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        nanos
    }

    /// Total nanoseconds inside plugins and the number of calls so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.nanos.load(Ordering::Relaxed),
            self.calls.load(Ordering::Relaxed),
        )
    }
}

/// Find the binary for `plugin_type` in `dirs`, refusing anything that is not a bare name.
pub fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    validate_plugin_type(plugin_type).map_err(|reason| Error::UnsafeName {
        name: "plugin type",
        value: plugin_type.to_owned(),
        reason,
    })?;
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::FindPlugin {
            plugin: plugin_type.to_owned(),
            dirs: dirs.to_vec(),
        })
}

/// Run `binary` and return its stdout. A non-zero exit is a [`Error::PluginFailed`] with the
/// plugin's error object (or one built from its stderr when it printed none).
pub async fn run_plugin(
    binary: &Path,
    env: &PluginEnv<'_>,
    stdin: &[u8],
    stats: &ExecStats,
) -> Result<Vec<u8>> {
    let started = Instant::now();
    start_plugin(binary, env)?
        .finish_since(stdin, stats, started)
        .await
}

/// Start `binary` for the call `env` describes without giving it its config: the process
/// loads while the caller finishes what must come before the plugin may act, and it can do
/// nothing before [`StartedPlugin::finish`] writes its stdin (a CNI plugin reads its config
/// before anything else). Dropped unfinished, it is killed. Needs no async runtime.
pub fn start_plugin(binary: &Path, env: &PluginEnv<'_>) -> Result<StartedPlugin> {
    let plugin = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spawning = Instant::now();
    let started = plugin_vars(env).and_then(|vars| Ok((child::start(binary, &vars)?, vars)));
    match started {
        Ok((child, vars)) => Ok(StartedPlugin {
            plugin,
            command: env.command,
            child,
            spawn: spawning.elapsed(),
            binary: binary.to_owned(),
            vars,
        }),
        Err(source) => Err(Error::ExecPlugin { plugin, source }),
    }
}

/// The `CNI_*` variables of the call `env` describes, as the child gets them.
fn plugin_vars(env: &PluginEnv<'_>) -> std::io::Result<Vec<CString>> {
    let path = env
        .path
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let mut vars = vec![
        child::env_entry("CNI_COMMAND", env.command.as_str())?,
        child::env_entry("CNI_PATH", &path)?,
    ];
    // Per-container variables only for the commands that have a container (a GC or STATUS
    // plugin sees none, as libcni leaves them out).
    if env.command.is_per_container() {
        for (key, value) in [
            ("CNI_CONTAINERID", env.container_id),
            ("CNI_NETNS", env.netns),
            ("CNI_IFNAME", env.ifname),
            ("CNI_ARGS", env.args),
        ] {
            vars.push(child::env_entry(key, value)?);
        }
    }
    Ok(vars)
}

/// A plugin process waiting for its config ([`start_plugin`]).
#[derive(Debug)]
pub struct StartedPlugin {
    plugin: String,
    command: Command,
    child: child::Started,
    /// How long its start took: the kernel's exec of the plugin, which the caller waited for.
    spawn: Duration,
    /// What it was started as, to tell whether it is the process a call needs ([`is_for`]).
    ///
    /// [`is_for`]: Self::is_for
    binary: PathBuf,
    vars: Vec<CString>,
}

impl StartedPlugin {
    /// Whether this process is the one a call of `binary` with `env` would start: the same
    /// binary with the same environment. Its config comes later, so nothing else tells.
    pub fn is_for(&self, binary: &Path, env: &PluginEnv<'_>) -> bool {
        self.binary == binary && plugin_vars(env).is_ok_and(|vars| vars == self.vars)
    }

    /// The plugin's binary name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// For a plugin started while another plugin ran: its start overlapped that plugin's time,
    /// so it is not counted again in [`ExecStats`].
    #[must_use]
    pub fn started_alongside(mut self) -> Self {
        self.spawn = Duration::ZERO;
        self
    }

    /// Give the plugin its config and return its stdout, as [`run_plugin`] does. Its time in
    /// [`ExecStats`] is its start (the exec, waited for; not if [`started_alongside`]
    /// another plugin) and what follows from now; in between it ran alongside the caller's own
    /// work or another plugin, whose time that is.
    ///
    /// [`started_alongside`]: Self::started_alongside
    pub async fn finish(self, stdin: &[u8], stats: &ExecStats) -> Result<Vec<u8>> {
        let now = Instant::now();
        let started = now.checked_sub(self.spawn).unwrap_or(now);
        self.finish_since(stdin, stats, started).await
    }

    async fn finish_since(
        self,
        stdin: &[u8],
        stats: &ExecStats,
        started: Instant,
    ) -> Result<Vec<u8>> {
        let Self {
            plugin,
            command,
            child,
            ..
        } = self;
        let output = match child.finish(stdin).await {
            Ok(output) => output,
            Err(source) => return Err(Error::ExecPlugin { plugin, source }),
        };
        let nanos = stats.record(started);
        // How long each delegate took is what a slow pod start is usually about (and how the
        // benchmark tells the thin plugin's own time from its delegates').
        tracing::debug!(
            plugin = %plugin,
            command = %command,
            micros = nanos / 1000,
            status = %output.exit,
            "plugin exited"
        );
        if output.exit.success() {
            return Ok(output.stdout);
        }
        let error =
            CniError::parse(&String::from_utf8_lossy(&output.stdout)).unwrap_or_else(|_| {
                let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                CniError::new(
                    multus_crds::cni::ErrorCode::Plugin(100),
                    format!("exited with {}: {stdout}{stderr}", output.exit),
                )
            });
        Err(Error::PluginFailed {
            plugin,
            error: Box::new(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_path_like_types_before_looking() {
        let dirs = [PathBuf::from("/usr/bin")];
        for bad in ["../bin/sh", "/bin/sh", "a b", "..", ""] {
            let e = find_plugin(bad, &dirs).unwrap_err();
            assert!(matches!(e, Error::UnsafeName { .. }), "{bad}: {e}");
        }
        assert!(matches!(
            find_plugin("surely-not-a-plugin", &dirs),
            Err(Error::FindPlugin { .. })
        ));
        assert_eq!(
            find_plugin("env", &dirs).unwrap(),
            PathBuf::from("/usr/bin/env")
        );
    }

    #[test]
    fn a_started_plugin_s_wait_for_its_config_is_not_counted_as_its_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = rt.enter();
        let dirs = [PathBuf::from("/bin")];
        let env = PluginEnv {
            command: Command::Add,
            container_id: "c",
            netns: "/var/run/netns/none",
            ifname: "eth0",
            args: "",
            path: &dirs,
        };
        let wait = Duration::from_millis(300);
        for alongside in [false, true] {
            let stats = ExecStats::default();
            let started = start_plugin(Path::new("/bin/sh"), &env).unwrap();
            let started = if alongside {
                started.started_alongside()
            } else {
                started
            };
            std::thread::sleep(wait);
            let out = rt
                .block_on(started.finish(b"echo \"$CNI_COMMAND $CNI_IFNAME\"", &stats))
                .unwrap();
            assert_eq!(out, b"ADD eth0\n");
            let (nanos, calls) = stats.snapshot();
            assert_eq!(calls, 1);
            assert!(
                Duration::from_nanos(nanos) < wait,
                "{nanos} ns counted (alongside: {alongside})"
            );
        }
    }
}
