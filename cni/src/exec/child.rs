//! One plugin process: started with `posix_spawn` and an environment built once per process,
//! its stdin written and its stdout and stderr read on the calling task, its exit awaited
//! through a pidfd. Starting and finishing are separate steps ([`start`], [`Started::finish`]),
//! so a process can be started ahead of its input.
//!
//! Why not `tokio::process::Command` (std's `Command` underneath): a `Command` with any variable
//! set copies the whole environment into a map and rebuilds every `KEY=VALUE` string on each
//! spawn. That was a quarter of the daemon's instructions per call (callgrind, 92,000 per spawn
//! with 35 inherited variables; docs/benchmarks.md), and a pod's environment only grows with
//! the services of its namespace. Here the inherited variables become C strings once; a spawn
//! adds the six `CNI_*` ones.
//!
//! What the child gets is what `Command` gave it: the same argv[0] (the plugin's path), this
//! process's environment with the `CNI_*` variables of the call, pipes on 0, 1 and 2, an empty
//! signal mask and `SIGPIPE` back at its default (Rust programs ignore it). A child whose
//! future is dropped (the caller gave up) is killed and reaped, as `kill_on_drop` did.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal as NixSignal};
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{
    Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitOptions, kill_process, pidfd_open, waitid,
    waitpid,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;

/// The variables a plugin call sets; inherited ones of these names are not passed on (a thin
/// plugin's own environment holds the runtime's values for the meta-plugin's call).
pub const PER_CALL: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// How a plugin process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit status: {code}"),
            Self::Signal(signal) => match NixSignal::try_from(*signal) {
                Ok(name) => write!(f, "signal: {signal} ({})", name.as_str()),
                Err(_) => write!(f, "signal: {signal}"),
            },
        }
    }
}

/// What a finished plugin process printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// This process's environment without the per-call variables, as `KEY=VALUE` C strings, read
/// at the first spawn. Nothing in this workspace changes its environment after start (that
/// takes `unsafe`, which the workspace forbids).
fn inherited() -> &'static [CString] {
    static INHERITED: OnceLock<Vec<CString>> = OnceLock::new();
    INHERITED.get_or_init(|| {
        std::env::vars_os()
            .filter(|(key, _)| !PER_CALL.iter().any(|v| OsStr::new(v) == key))
            .filter_map(|(key, value)| {
                let mut entry = key.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                CString::new(entry).ok()
            })
            .collect()
    })
}

/// A started plugin process, killed and reaped if dropped before it was waited for.
#[derive(Debug)]
struct Running {
    pid: Pid,
    reaped: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = kill_process(self.pid, Signal::KILL);
        // Reaped off this thread: a process in uninterruptible sleep takes its time to die, and
        // this thread may be the daemon's only one.
        let pid = self.pid;
        if let Err(e) = std::thread::Builder::new()
            .name("plugin-reaper".into())
            .spawn(move || retry_interrupted(|| waitpid(Some(pid), WaitOptions::empty())))
        {
            tracing::warn!(pid = pid.as_raw_nonzero().get(), error = %e, "a killed plugin is left unreaped");
        }
    }
}

/// A plugin process started with its stdio on pipes and nothing written to it: it waits for
/// its input. Killed and reaped if dropped unfinished: killed before its pipes close (fields
/// drop in order), so a plugin waiting for its config never reads an end to it.
#[derive(Debug)]
pub struct Started {
    running: Running,
    pipes: Pipes,
}

/// A started process's pipes (its stdin's write end, its stdout's and stderr's read ends).
#[derive(Debug)]
enum Pipes {
    /// Registered with the async runtime before the spawn, as every start within a runtime
    /// does: its turn finds them ready.
    Registered(pipe::Sender, pipe::Receiver, pipe::Receiver),
    /// Plain descriptors, registered at its turn: a start before any runtime exists (the thin
    /// plugin's head start, right after reading its config; docs/decisions.md, "Plugins
    /// started ahead").
    Unregistered(OwnedFd, OwnedFd, OwnedFd),
}

/// One variable of a plugin call as [`start`] takes it: `KEY=VALUE`, refused if either holds
/// a NUL.
pub fn env_entry(key: &str, value: &str) -> io::Result<CString> {
    CString::new(format!("{key}={value}"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Start `binary` with `vars` ([`env_entry`]) added to the inherited environment;
/// [`Started::finish`] gives it its input. Needs no async runtime.
pub fn start(binary: &Path, vars: &[CString]) -> io::Result<Started> {
    let (child_in, to_child) = pipe_with(PipeFlags::CLOEXEC)?;
    let (from_child, child_out) = pipe_with(PipeFlags::CLOEXEC)?;
    let (from_child_err, child_err) = pipe_with(PipeFlags::CLOEXEC)?;
    // Registered before the spawn: a failure then leaves no process to kill.
    let pipes = match tokio::runtime::Handle::try_current() {
        Ok(_) => {
            let (to_child, out, err) = register(to_child, from_child, from_child_err)?;
            Pipes::Registered(to_child, out, err)
        }
        Err(_) => Pipes::Unregistered(to_child, from_child, from_child_err),
    };
    let pid = spawn(binary, vars, [&child_in, &child_out, &child_err])?;
    Ok(Started {
        running: Running { pid, reaped: false },
        pipes,
    })
}

impl Started {
    /// Write `stdin` to the process, read what it prints until it closes its output, and wait
    /// for it to exit.
    pub async fn finish(self, stdin: &[u8]) -> io::Result<Output> {
        let Self { mut running, pipes } = self;
        let (mut to_child, mut from_child, mut from_child_err) = match pipes {
            Pipes::Registered(to_child, out, err) => (to_child, out, err),
            Pipes::Unregistered(to_child, from_child, from_child_err) => {
                // Tokio closes a descriptor it fails to register: a duplicate of the process's
                // stdin keeps that pipe open until the process is killed, so a failure never
                // lets it read an end to its config.
                let stdin_kept = match to_child.try_clone() {
                    Ok(kept) => kept,
                    Err(e) => {
                        drop(running);
                        return Err(e);
                    }
                };
                match register(to_child, from_child, from_child_err) {
                    Ok(pipes) => pipes,
                    Err(e) => {
                        drop(running);
                        drop(stdin_kept);
                        return Err(e);
                    }
                }
            }
        };
        // The config is written in this poll: a pipe has no readiness until the runtime's driver
        // next turns, and the caller may do other work (start the next plugin) before that
        // (`chain::alongside`). A config fits the pipe's buffer; what does not is written as
        // the plugin reads. A plugin that exits without reading stdin closes the pipe: the
        // error is left to the write below, which ignores it, and its exit status tells.
        let written = rustix::io::write(&to_child, stdin).unwrap_or(0);
        let rest = &stdin[written..];
        let write = async move {
            if !rest.is_empty() {
                let _ = to_child.write_all(rest).await;
            }
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let ((), out, err) = tokio::join!(
            write,
            from_child.read_to_end(&mut stdout),
            from_child_err.read_to_end(&mut stderr)
        );
        out?;
        err?;
        let exit = wait(running.pid).await?;
        running.reaped = true;
        Ok(Output {
            exit,
            stdout,
            stderr,
        })
    }
}

/// A started process's pipes, registered with the async runtime.
fn register(
    to_child: OwnedFd,
    from_child: OwnedFd,
    from_child_err: OwnedFd,
) -> io::Result<(pipe::Sender, pipe::Receiver, pipe::Receiver)> {
    let out = pipe::Receiver::from_owned_fd(from_child)?;
    let err = pipe::Receiver::from_owned_fd(from_child_err)?;
    Ok((pipe::Sender::from_owned_fd(to_child)?, out, err))
}

/// `posix_spawn` with `stdio` on 0, 1 and 2.
fn spawn(binary: &Path, vars: &[CString], stdio: [&OwnedFd; 3]) -> io::Result<Pid> {
    let env: Vec<&CStr> = inherited()
        .iter()
        .chain(vars)
        .map(CString::as_c_str)
        .collect();
    let argv = [CString::new(binary.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?];
    let mut actions = PosixSpawnFileActions::init()?;
    for (fd, target) in stdio.iter().zip(0..) {
        actions.add_dup2(fd.as_raw_fd(), target)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    attr.set_sigmask(&SigSet::empty())?;
    let mut default = SigSet::empty();
    default.add(NixSignal::SIGPIPE);
    attr.set_sigdefault(&default)?;
    let pid = posix_spawn(binary, &actions, &attr, &argv, &env)?;
    Pid::from_raw(pid.as_raw()).ok_or_else(|| io::Error::other("posix_spawn gave no pid"))
}

/// Wait for `pid` to exit and reap it: on its pidfd, without a thread. Where a pidfd cannot be
/// had or waited on (kernels before 5.4: `pidfd_open` came in 5.3, `waitid(P_PIDFD)` in 5.4;
/// no descriptor left), on a blocking thread that only waits; the reaping is done here, in the
/// same poll that returns, so the pid stays this child's until [`Running`] knows it is reaped
/// (a thread that reaped could outlive a dropped call, and reap a later child given the same
/// pid).
async fn wait(pid: Pid) -> io::Result<Exit> {
    // Once a pidfd could not be waited on, this kernel never will: later calls go straight to
    // the blocking wait.
    static NO_PIDFD_WAIT: AtomicBool = AtomicBool::new(false);
    if !NO_PIDFD_WAIT.load(Ordering::Relaxed)
        && let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty())
    {
        match wait_on_pidfd(pidfd).await {
            PidfdWait::Exited(waited) => return waited,
            PidfdWait::Unsupported => NO_PIDFD_WAIT.store(true, Ordering::Relaxed),
            PidfdWait::NotRegistered => {}
        }
    }
    wait_blocking(pid).await
}

/// How a wait on a pidfd ended; but for `Exited`, nothing was reaped.
enum PidfdWait {
    Exited(io::Result<Exit>),
    /// This kernel cannot wait on a pidfd (`waitid(P_PIDFD)` came in 5.4).
    Unsupported,
    /// The pidfd could not be registered with the runtime this time.
    NotRegistered,
}

async fn wait_on_pidfd(pidfd: OwnedFd) -> PidfdWait {
    // Deprecated as unsound for values whose descriptor can be closed behind the registration
    // (tokio#8587); an `OwnedFd` moved in is owned by the `AsyncFd` until it is dropped, and
    // the safe replacement is an `unsafe fn`, which this workspace forbids.
    #[allow(deprecated)]
    let Ok(pidfd) = AsyncFd::with_interest(pidfd, Interest::READABLE) else {
        return PidfdWait::NotRegistered;
    };
    loop {
        let mut ready = match pidfd.readable().await {
            Ok(ready) => ready,
            Err(e) => return PidfdWait::Exited(Err(e)),
        };
        match waitid(
            WaitId::PidFd(pidfd.get_ref().as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(status)) => {
                return PidfdWait::Exited(exit(status.exit_status(), status.terminating_signal()));
            }
            Ok(None) => ready.clear_ready(),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                return PidfdWait::Unsupported;
            }
            Err(e) => return PidfdWait::Exited(Err(e.into())),
        }
    }
}

async fn wait_blocking(pid: Pid) -> io::Result<Exit> {
    tokio::task::spawn_blocking(move || {
        retry_interrupted(|| {
            waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            )
        })
    })
    .await
    .map_err(io::Error::other)??;
    match retry_interrupted(|| waitpid(Some(pid), WaitOptions::NOHANG))? {
        Some((_, status)) => exit(status.exit_status(), status.terminating_signal()),
        None => Err(io::Error::other(
            "the plugin exited but could not be reaped",
        )),
    }
}

fn retry_interrupted<T>(mut call: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match call() {
            Err(rustix::io::Errno::INTR) => {}
            done => return done,
        }
    }
}

fn exit(code: Option<i32>, signal: Option<i32>) -> io::Result<Exit> {
    match (code, signal) {
        (Some(code), _) => Ok(Exit::Code(code)),
        (None, Some(signal)) => Ok(Exit::Signal(signal)),
        (None, None) => Err(io::Error::other("the plugin neither exited nor was killed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Run `binary` with `vars` and `stdin`, as a plugin call does.
    async fn run(binary: &Path, vars: &[(&str, &str)], stdin: &[u8]) -> io::Result<Output> {
        let vars = vars
            .iter()
            .map(|(key, value)| env_entry(key, value))
            .collect::<io::Result<Vec<_>>>()?;
        start(binary, &vars)?.finish(stdin).await
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// `/bin/sh` given no arguments reads its script from stdin.
    fn sh(vars: &[(&str, &str)], script: &str) -> Output {
        rt().block_on(run(Path::new("/bin/sh"), vars, script.as_bytes()))
            .unwrap()
    }

    #[test]
    fn a_child_reads_stdin_sees_its_variables_and_its_exit_code_is_told() {
        let out = sh(
            &[("CNI_COMMAND", "ADD"), ("CNI_PATH", "/x:/y")],
            r#"echo "$CNI_COMMAND|$CNI_PATH|$0"; echo oops >&2; exit 3"#,
        );
        assert_eq!(out.exit, Exit::Code(3));
        assert_eq!(out.exit.to_string(), "exit status: 3");
        assert!(!out.exit.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ADD|/x:/y|/bin/sh\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
        assert!(sh(&[], "exit 0").exit.success());
    }

    #[test]
    fn the_environment_is_this_process_s_with_the_call_s_variables_once() {
        let out = rt()
            .block_on(run(
                Path::new("/usr/bin/env"),
                &[("CNI_COMMAND", "DEL"), ("CNI_IFNAME", "net1")],
                b"",
            ))
            .unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = env.lines().collect();
        assert!(lines.contains(&"CNI_COMMAND=DEL"), "{env}");
        assert!(lines.contains(&"CNI_IFNAME=net1"), "{env}");
        for var in PER_CALL {
            let n = lines
                .iter()
                .filter(|l| l.starts_with(&format!("{var}=")))
                .count();
            assert!(n <= 1, "{var} {n} times: {env}");
        }
        let path = std::env::var("PATH").unwrap();
        assert!(lines.contains(&format!("PATH={path}").as_str()), "{env}");
    }

    #[test]
    fn a_killed_child_is_told_and_a_dropped_one_is_killed_and_reaped() {
        let out = sh(&[], "kill -9 $$");
        assert_eq!(out.exit, Exit::Signal(9));
        assert_eq!(out.exit.to_string(), "signal: 9 (SIGKILL)");

        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let gave_up = rt().block_on(async {
            tokio::time::timeout(
                Duration::from_millis(300),
                run(Path::new("/bin/sh"), &[], script.as_bytes()),
            )
            .await
        });
        assert!(gave_up.is_err(), "{gave_up:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = Pid::from_raw(pid.trim().parse().unwrap()).unwrap();
        assert!(gone(pid), "pid {pid:?} still there after 2 s");
    }

    /// Whether `pid` is gone within 2 s: killed and reaped (a zombie keeps its /proc entry).
    fn gone(pid: Pid) -> bool {
        let proc_entry = Path::new("/proc").join(pid.as_raw_nonzero().to_string());
        (0..100).any(|_| {
            let gone = !proc_entry.exists();
            if !gone {
                std::thread::sleep(Duration::from_millis(20));
            }
            gone
        })
    }

    #[test]
    fn a_started_child_waits_for_its_input_and_one_never_given_it_is_killed_and_reaped() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("ran");
        let script = format!("touch {}; echo done", marker.display());

        // `sh` reads its script from stdin: until that is written, it runs nothing. Started
        // before any async runtime exists, as the thin plugin starts its first plugin.
        let started = start(Path::new("/bin/sh"), &[]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!marker.exists());
        let rt = rt();
        let out = rt.block_on(started.finish(script.as_bytes())).unwrap();
        assert_eq!(
            (out.exit, out.stdout.as_slice()),
            (Exit::Code(0), &b"done\n"[..])
        );
        assert!(marker.exists());

        std::fs::remove_file(&marker).unwrap();
        let unused = start(Path::new("/bin/sh"), &[]).unwrap();
        let pid = unused.running.pid;
        drop(unused);
        assert!(gone(pid), "pid {pid:?} still there after 2 s");
        assert!(!marker.exists());
    }

    #[test]
    fn without_pidfds_the_exit_is_awaited_on_a_blocking_thread() {
        let (child_in, to_child) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let (_from_child, child_out) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        rustix::io::write(&to_child, b"exit 7\n").unwrap();
        drop(to_child);
        let pid = spawn(
            Path::new("/bin/sh"),
            &[],
            [&child_in, &child_out, &child_out],
        )
        .unwrap();
        assert_eq!(rt().block_on(wait_blocking(pid)).unwrap(), Exit::Code(7));
    }

    #[test]
    fn a_missing_binary_is_an_error_of_the_spawn() {
        let e = rt()
            .block_on(run(Path::new("/nonexistent/plugin"), &[], b""))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
