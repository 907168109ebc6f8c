//! `multus-shim`: the thick plugin. The runtime runs it for every CNI call; it forwards the call
//! to the daemon on `<daemonSocketDir>/multus.sock` and prints the answer (see the library for
//! what it sends and prints, and docs/decisions.md, "A shim without libc", for why it has no
//! libc).
//!
//! Everything off the usual path is handed to the `multus` binary installed beside it, by
//! `execve` with the same environment and the config on a memfd as stdin: a daemon that cannot
//! be connected to (ADD waits for it, then fails with "try again later"; DEL runs from the
//! cache), and a config or command it does not forward as it is. One implementation of those
//! rules, in `multus`.
#![no_std]
#![no_main]

extern crate alloc;
// The program's entry: origin's `_start` sets up the process and calls `origin_main`.
extern crate origin;

use alloc::ffi::CString;
use alloc::format;
use alloc::vec::Vec;
use core::ffi::CStr;

use multus_shim::answer::{self, Printed};
use multus_shim::http;
use multus_shim::request::{self, ShimConfig};
use rustix::buffer::spare_capacity;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{MemfdFlags, SeekFrom};
use rustix::io::{self, Errno};
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

#[global_allocator]
static ALLOCATOR: rustix_dlmalloc::GlobalDlmalloc = rustix_dlmalloc::GlobalDlmalloc;

/// No code here panics on purpose; should a dependency (or the allocator, out of memory), the
/// call fails with an error object the runtime can read (there is no unwinder).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    let _ = rustix::io::write(
        stdout(),
        br#"{"code":100,"msg":"multus-shim failed: it panicked"}"#,
    );
    rustix::runtime::exit_group(1)
}

/// `core` and `alloc` come prebuilt for unwinding and name a personality routine in their
/// cleanup tables; built with `panic = "abort"` and with no unwinder linked, nothing here ever
/// unwinds to call it. Were it ever called, the process ends rather than return garbage.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() -> ! {
    rustix::runtime::exit_group(1)
}

/// The process' arguments and environment as the kernel laid them out.
struct Process {
    argv: *mut *mut u8,
    envp: *mut *mut u8,
    env: Vec<(&'static str, &'static str)>,
}

/// origin's `_start` calls this with the kernel's `argv` and `envp`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
unsafe fn origin_main(_argc: usize, argv: *mut *mut u8, envp: *mut *mut u8) -> i32 {
    let mut env = Vec::new();
    let mut at = envp;
    // SAFETY: `envp` is the kernel's environment block: a null-terminated array of pointers to
    // NUL-terminated strings, valid and unchanged for the life of the process (nothing here
    // calls setenv).
    unsafe {
        while !(*at).is_null() {
            let entry = CStr::from_ptr((*at).cast()).to_bytes();
            if let Ok(text) = core::str::from_utf8(entry)
                && let Some(pair) = text.split_once('=')
            {
                env.push(pair);
            }
            at = at.add(1);
        }
    }
    let process = Process { argv, envp, env };
    let printed = run(&process);
    let written = write_all(stdout(), printed.stdout.as_bytes());
    if printed.success && written.is_ok() {
        0
    } else {
        1
    }
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: the runtime gives every CNI plugin its stdin, stdout and stderr for the whole call
    // (libcni's exec). This program never closes fd 0 or 1; it replaces fd 0 only after stdin
    // has been read to its end, just before `execve` (`hand_to_multus`), and never borrows it
    // again after that.
    #[allow(unsafe_code)]
    unsafe {
        rustix::stdio::stdin()
    }
}

fn stdout() -> BorrowedFd<'static> {
    // SAFETY: as for `stdin`.
    #[allow(unsafe_code)]
    unsafe {
        rustix::stdio::stdout()
    }
}

fn run(process: &Process) -> Printed {
    let env = |name: &str| {
        process
            .env
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    let config_bytes = match read_until(stdin(), |_| false) {
        (bytes, None) => bytes,
        (_, Some(e)) => {
            let message = format!(
                "reading the network configuration from stdin: {}",
                errno_text(e)
            );
            return answer::error(answer::CURRENT_VERSION, answer::IO_FAILURE, &message);
        }
    };
    let command = env("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        return Printed {
            stdout: answer::VERSION_TEXT.into(),
            success: true,
        };
    }
    if !matches!(command, "ADD" | "DEL" | "CHECK" | "GC" | "STATUS") {
        return hand_to_multus(process, &config_bytes, HandOver::Command);
    }
    let Some(config) = ShimConfig::parse(&config_bytes) else {
        return hand_to_multus(process, &config_bytes, HandOver::Config);
    };
    let version = config.version();
    let socket = config.socket_path();
    // Built before connecting: `connect` wakes the daemon, and the request should be there
    // when it first reads, or it reads nothing, sleeps, and is woken a second time.
    let request = http::request(
        "POST",
        "/cni",
        &request::body(process.env.iter().copied(), &config_bytes),
    );
    let Ok(stream) = connect(&socket) else {
        return hand_to_multus(process, &config_bytes, HandOver::NoDaemon);
    };
    // A daemon that refuses the call (overloaded, a body too large) may answer and close before
    // it has read all of it: the send then fails, and the answer is still there to read.
    // An error after part of the answer arrived (ECONNRESET when the daemon closed without
    // reading all of the request) ends it: the parser judges what came.
    let sent = send_all(stream.as_fd(), &request);
    // Read up to the answer's length, not until the daemon closes: the close comes just after
    // the answer and would wake the shim a second time.
    let (response, cut) = read_until(stream.as_fd(), http::whole);
    drop(stream);
    if response.is_empty()
        && let Some(e) = sent.err().or(cut)
    {
        return answer::unreachable(version, &socket, &errno_text(e));
    }
    match http::parse_response(&response) {
        Ok((status, body)) => answer::from_daemon(command, version, status, &body),
        Err(what) => answer::unreachable(version, &socket, &format!("the daemon's answer: {what}")),
    }
}

fn connect(socket: &str) -> io::Result<OwnedFd> {
    let address = SocketAddrUnix::new(socket)?;
    let stream = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&stream, &address)?;
    Ok(stream)
}

/// Why a call goes to `multus`.
#[derive(Clone, Copy)]
enum HandOver {
    /// No daemon to connect to: `multus` waits for it, or runs DEL from the cache.
    NoDaemon,
    /// A config that is not one `multus-shim` plugin config: `multus` says what is wrong.
    Config,
    /// A command the shim does not forward: `multus` answers or refuses it.
    Command,
}

/// Replace this process with `multus` from the same directory, the config on a memfd as its
/// stdin. Returns only when that cannot be done, with an error in the config's version.
fn hand_to_multus(process: &Process, config: &[u8], why: HandOver) -> Printed {
    let cannot = |what: &str, e: Errno| cannot_hand_over(why, answer::version_of(config), what, e);
    let multus = match sibling_multus() {
        Ok(path) => path,
        Err(e) => return cannot("the shim's own path", e),
    };
    let staged =
        rustix::fs::memfd_create(c"multus-shim-config", MemfdFlags::CLOEXEC).and_then(|memfd| {
            write_all(memfd.as_fd(), config)?;
            rustix::fs::seek(&memfd, SeekFrom::Start(0))?;
            // dup2 leaves the new fd 0 open across exec.
            rustix::stdio::dup2_stdin(&memfd)
        });
    if let Err(e) = staged {
        return cannot("staging the config", e);
    }
    // SAFETY: `argv` and `envp` are the kernel's own null-terminated arrays, unchanged; `multus`
    // is a NUL-terminated path. On success nothing of this process remains.
    #[allow(unsafe_code)]
    let errno = unsafe {
        rustix::runtime::execve(
            &multus,
            process.argv.cast_const().cast(),
            process.envp.cast_const().cast(),
        )
    };
    cannot(&format!("running {multus:?}"), errno)
}

/// `multus` could not take the call over. Without a daemon the runtime should retry (code 11);
/// otherwise the plugin's install is broken, which retrying does not mend.
fn cannot_hand_over(why: HandOver, version: &str, what: &str, e: Errno) -> Printed {
    let (case, code) = match why {
        HandOver::NoDaemon => (
            "the multus daemon could not be reached",
            answer::TRY_AGAIN_LATER,
        ),
        HandOver::Config => (
            "the config is not one the shim forwards",
            answer::PLUGIN_FAILED,
        ),
        HandOver::Command => (
            "the command is not one the shim forwards",
            answer::PLUGIN_FAILED,
        ),
    };
    let retry = if code == answer::TRY_AGAIN_LATER {
        "; try again later"
    } else {
        ""
    };
    let message = format!(
        "{case}, and multus, which handles that, could not be run ({what}: {}){retry}",
        errno_text(e)
    );
    answer::error(version, code, &message)
}

/// An errno as std words it ("No such file or directory (os error 2)"), for the common ones;
/// without std, rustix has only the number.
fn errno_text(e: Errno) -> alloc::string::String {
    let name = match e {
        Errno::NOENT => "No such file or directory",
        Errno::ACCESS => "Permission denied",
        Errno::CONNREFUSED => "Connection refused",
        Errno::CONNRESET => "Connection reset by peer",
        Errno::PIPE => "Broken pipe",
        Errno::NAMETOOLONG => "File name too long",
        Errno::NOEXEC => "Exec format error",
        Errno::NOMEM => "Cannot allocate memory",
        _ => return format!("os error {}", e.raw_os_error()),
    };
    format!("{name} (os error {})", e.raw_os_error())
}

/// `<the directory this binary runs from>/multus`.
fn sibling_multus() -> io::Result<CString> {
    let own = rustix::fs::readlink("/proc/self/exe", Vec::new())?;
    let own = own.as_bytes();
    let dir = own
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(&b""[..], |slash| &own[..slash]);
    let mut path = Vec::with_capacity(dir.len() + b"/multus".len());
    path.extend_from_slice(dir);
    path.extend_from_slice(b"/multus");
    CString::new(path).map_err(|_| Errno::INVAL)
}

/// What `fd` gives until its end or until `enough` says what came is whole, and the error that
/// cut it short, if one did.
fn read_until(fd: BorrowedFd<'_>, enough: impl Fn(&[u8]) -> bool) -> (Vec<u8>, Option<Errno>) {
    let mut bytes = Vec::with_capacity(16 * 1024);
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.capacity());
        }
        match rustix::io::read(fd, spare_capacity(&mut bytes)) {
            Ok(0) => return (bytes, None),
            Ok(_) if enough(&bytes) => return (bytes, None),
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return (bytes, Some(e)),
        }
    }
}

/// Send on the socket without SIGPIPE: origin installs no handler, and a runtime written in Go
/// starts plugins with SIGPIPE at its default, which would kill the shim without a word.
fn send_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
