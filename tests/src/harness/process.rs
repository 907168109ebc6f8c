//! Workspace binaries as processes, with their output collected and printed when a test fails.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

use super::wait::wait_for;
use crate::Error;

/// Where cargo put a workspace binary: next to the running test's `deps/` directory.
pub fn workspace_binary(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|_| Error::FindBinary(name.to_owned()))?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::FindBinary(name.to_owned()))
}

/// `multus-shim`, built on its own (cni/shim is a workspace of its own: no std, no libc):
/// `MULTUS_SHIM_BIN`, else that workspace's release build. Under cargo the build is brought up
/// to date first, once per test process (a no-op when fresh): the main workspace's build does
/// not see the shim's sources, and a test must never run a stale shim. This is the one place
/// the tests' shim is built.
pub fn shim_binary() -> Result<PathBuf, Error> {
    let missing = || Error::FindBinary("multus-shim".to_owned());
    if let Some(path) = std::env::var_os("MULTUS_SHIM_BIN") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path).ok_or_else(missing);
    }
    let shim_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(missing)?
        .join("cni/shim");
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Some(cargo) = std::env::var_os("CARGO") {
        BUILT
            .get_or_init(|| build_shim(&cargo, &shim_dir))
            .clone()
            .map_err(|message| Error::BuildShim { message })?;
    }
    let path = shim_dir.join("target/release/multus-shim");
    path.is_file().then_some(path).ok_or_else(missing)
}

fn build_shim(cargo: &std::ffi::OsStr, shim_dir: &Path) -> Result<(), String> {
    let out = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(shim_dir.join("Cargo.toml"))
        // Where this harness looks, whatever CARGO_TARGET_DIR says.
        .arg("--target-dir")
        .arg(shim_dir.join("target"))
        // Built for this machine, even when the main workspace is cross-built.
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| format!("running {}: {e}", cargo.to_string_lossy()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// `multus` and `multus-shim` copied into `bin_dir`, as the node agent installs them: the shim
/// hands `multus` beside it what it does not forward. Returns the shim's path.
pub fn install_cni_binaries(bin_dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(bin_dir).map_err(|source| Error::WriteFile {
        path: bin_dir.to_owned(),
        source,
    })?;
    for (name, from) in [
        ("multus", workspace_binary("multus")?),
        ("multus-shim", shim_binary()?),
    ] {
        let to = bin_dir.join(name);
        std::fs::copy(&from, &to).map_err(|source| Error::WriteFile { path: to, source })?;
    }
    Ok(bin_dir.join("multus-shim"))
}

/// Run a CNI plugin binary as a runtime does: `env` added to this process' environment,
/// `stdin` written to it; waits for it and returns its output.
pub fn run_plugin(
    binary: &Path,
    env: &[(impl AsRef<OsStr>, impl AsRef<OsStr>)],
    stdin: &[u8],
) -> Result<std::process::Output, Error> {
    spawn_plugin(binary, env, stdin)?
        .wait_with_output()
        .map_err(|source| spawn_error(binary, source))
}

/// [`run_plugin`] without waiting: the plugin's process, `stdin` written and closed, its output
/// piped.
pub fn spawn_plugin(
    binary: &Path,
    env: &[(impl AsRef<OsStr>, impl AsRef<OsStr>)],
    stdin: &[u8],
) -> Result<std::process::Child, Error> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_error(binary, source))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin)
            .map_err(|source| spawn_error(binary, source))?;
    }
    Ok(child)
}

fn spawn_error(binary: &Path, source: std::io::Error) -> Error {
    Error::SpawnProcess {
        program: binary.display().to_string(),
        source,
    }
}

/// A running process; killed when dropped, its logs printed if the test is failing.
pub struct Process {
    name: String,
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Process {
    /// Start `program` with `args`, and `KUBECONFIG` set when `kubeconfig` is given.
    pub fn spawn(program: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Result<Self, Error> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut child = cmd.spawn().map_err(|source| Error::SpawnProcess {
            program: program.display().to_string(),
            source,
        })?;
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, logs.clone()));
        }
        Ok(Self { name, child, logs })
    }

    /// Everything the process printed so far (stdout and stderr, interleaved by line).
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait until a line containing `needle` was printed; returns that line.
    pub async fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String, Error> {
        wait_for(
            &format!("{} to print {needle:?}", self.name),
            timeout,
            || async {
                self.logs()
                    .lines()
                    .find(|l| l.contains(needle))
                    .map(str::to_owned)
            },
        )
        .await
    }

    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }
}

async fn collect(stream: impl AsyncRead + Unpin, logs: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut l = logs.lock().unwrap_or_else(PoisonError::into_inner);
        l.push_str(&line);
        l.push('\n');
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "----- logs of {} -----\n{}----- end of {} -----",
                self.name,
                self.logs(),
                self.name
            );
        }
    }
}

/// A loopback TCP port free at the time of asking, for a process under test to listen on.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether process `pid` has ended within 2 s: gone, or a zombie not yet reaped (a plugin the
/// thin `multus` killed is reaped by whoever inherits it once `multus` exits).
pub fn process_ended(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let state = status.lines().find_map(|l| l.strip_prefix("State:"));
        if state.is_none_or(|s| s.trim_start().starts_with('Z')) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
