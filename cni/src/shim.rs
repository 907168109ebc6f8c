//! The thick plugin's client (`type: multus-shim`): forward the CNI call to the daemon over
//! `<daemonSocketDir>/multus.sock` (multus-spec §3.16) and print its answer.
//!
//! The call goes straight to `POST /cni`. When the daemon cannot be connected to:
//! - ADD, CHECK, GC and STATUS wait for `/readyz` for a bounded time (`daemonWaitSeconds`,
//!   default 10 s) and then fail with CNI error 11, "try again later": the runtime retries the
//!   sandbox, and a pod never starts with interfaces silently missing. Running ADD in-process
//!   instead is not safe in general: the shim's config names paths as the daemon sees them.
//! - DEL runs in-process from the cache under `cniDir`, so a stopped daemon does not leak
//!   addresses; if that fails too, the error is returned (the runtime retries DEL).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use multus_crds::cni::{CniError, CniResult, CniVersion, select_version};
use multus_crds::multus_config::MultusConfig;
use serde_json::{Value, json};

use crate::engine::{Engine, EngineOptions};
use crate::env::{Command, Invocation};
use crate::error::{Error, Result};

/// Extension key: how long the shim waits for an unreachable daemon, in seconds.
pub const DAEMON_WAIT_KEY: &str = "daemonWaitSeconds";
const DEFAULT_DAEMON_WAIT: Duration = Duration::from_secs(10);
/// The socket's file name in `daemonSocketDir`.
pub const SOCKET_NAME: &str = "multus.sock";

pub fn socket_path(config: &MultusConfig) -> PathBuf {
    Path::new(config.daemon_socket_dir()).join(SOCKET_NAME)
}

/// One HTTP/1.1 request over the unix socket; returns status and body.
pub fn request_blocking(
    socket: &Path,
    method: &str,
    uri: &str,
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    exchange(UnixStream::connect(socket)?, method, uri, body)
}

/// The request and the answer as `multus-shim` makes and reads them: one file, built without std
/// there and with it here (the shim is a workspace of its own, which this one cannot depend on).
#[path = "../shim/src/http.rs"]
mod http;

/// One HTTP/1.1 exchange on a connected stream. The shim is a process per CNI call: a blocking
/// request with `Connection: close`, read to the answer's end, needs no async runtime and no
/// HTTP client stack to set up and fault in (docs/decisions.md, "The shim needs no async
/// runtime").
fn exchange(
    mut stream: UnixStream,
    method: &str,
    uri: &str,
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    // A daemon that refuses the call (overloaded, a body too large) may answer and close before
    // it has read all of it: the write then fails, or the read after the answer, and the answer
    // is still what to print.
    let sent = stream.write_all(&http::request(method, uri, body));
    // Read up to the answer's end, not until the daemon closes, as `multus-shim` does.
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let read = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                response.extend_from_slice(buf.get(..n).unwrap_or_default());
                if http::whole(&response) {
                    break Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if response.is_empty() {
        sent?;
        read?;
    }
    let (status, body) = http::parse_response(&response).map_err(|what| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the daemon's answer: {what}"),
        )
    })?;
    Ok((status, body.into_owned()))
}

fn wait_ready(socket: &Path, patience: Duration) -> std::result::Result<(), String> {
    let deadline = Instant::now() + patience;
    loop {
        // A daemon that accepts but never answers must not hold the shim past its patience.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let probe = UnixStream::connect(socket).and_then(|stream| {
            stream.set_read_timeout(Some(left))?;
            exchange(stream, "GET", "/readyz", &[])
        });
        let last = match probe {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => format!("/readyz answered {status}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Forward `inv` to the daemon and turn its answer into what the plugin prints.
pub fn forward(inv: &Invocation, config: &MultusConfig) -> Result<Option<String>> {
    let socket = socket_path(config);
    let patience =
        crate::engine::seconds_key(config, DAEMON_WAIT_KEY)?.unwrap_or(DEFAULT_DAEMON_WAIT);
    let body = json!({
        "env": inv.to_env(),
        "config": base64::engine::general_purpose::STANDARD.encode(&inv.config),
    })
    .to_string()
    .into_bytes();
    // A daemon that accepts the connection serves the call (one that is shutting down still
    // finishes what it accepted), so the usual path costs one connection, not a `/readyz`
    // probe first. Only a daemon that cannot be connected to is waited for.
    let stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(e) if inv.command == Command::Del => {
            tracing::warn!(error = %e, "daemon unreachable; running DEL in-process from the cache");
            return crate::plugin::block_on(
                Engine::new(EngineOptions::default(), None).run_config(inv, config),
            )?;
        }
        Err(_) => {
            wait_ready(&socket, patience).map_err(|message| Error::DaemonUnreachable {
                socket: socket.clone(),
                message,
            })?;
            UnixStream::connect(&socket).map_err(|e| Error::DaemonUnreachable {
                socket: socket.clone(),
                message: e.to_string(),
            })?
        }
    };
    let (status, answer) =
        exchange(stream, "POST", "/cni", &body).map_err(|e| Error::DaemonUnreachable {
            socket: socket.clone(),
            message: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&answer);
    if status != 200 {
        return Err(match CniError::parse(&text) {
            Ok(e) => Error::Remote(Box::new(e)),
            Err(_) => Error::DaemonFailed {
                status,
                body: text.into_owned(),
            },
        });
    }
    if inv.command != Command::Add {
        return Ok(None);
    }
    let mut value: Value = serde_json::from_str(&text).map_err(|e| Error::DaemonFailed {
        status,
        body: e.to_string(),
    })?;
    // This daemon prints the result in the config's version (`printed`), as `multus-shim`
    // prints it; upstream's answers only `Result`, a 1.0.0 result converted here.
    if let Some(Value::String(printed)) = value.get_mut("printed").map(Value::take) {
        return Ok(Some(printed));
    }
    let version = select_version(config.cni_version.as_deref(), &[])
        .map_err(|e| Error::ParseConfig(format!("cniVersion: {e}")))?;
    let result = value.get_mut("Result").map_or(Value::Null, Value::take);
    let printed = CniResult::from_value(result, Some(CniVersion::V1_0_0))
        .and_then(|r| r.convert(version))
        .and_then(|r| r.to_json_string(version))
        .map_err(|e| Error::DaemonFailed {
            status,
            body: e.to_string(),
        })?;
    Ok(Some(printed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_strange_answer_is_an_error_that_says_whose() {
        let (client, mut server) = UnixStream::pair().unwrap();
        server.write_all(b"not http at all\r\n\r\n").unwrap();
        drop(server);
        let e = exchange(client, "GET", "/readyz", &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string()
                .starts_with("the daemon's answer: not an HTTP response"),
            "{e}"
        );
    }

    #[test]
    fn a_daemon_that_accepts_but_never_answers_does_not_hold_the_shim_past_its_patience() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(SOCKET_NAME);
        // Connections queue in the listener's backlog; nothing ever answers them.
        let _silent = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let started = Instant::now();
        let outcome = wait_ready(&socket, Duration::from_millis(300));
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "waited {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_request_is_one_exchange_with_connection_close() {
        let (client, mut server) = UnixStream::pair().unwrap();
        let answering = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the 2-byte body the client sends, then answer and close.
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"{}") {
                let n = server.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed early");
                got.extend_from_slice(&buf[..n]);
            }
            server
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let (status, body) = exchange(client, "POST", "/cni", b"{}").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
        let sent = answering.join().unwrap();
        assert!(sent.starts_with("POST /cni HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("\r\ncontent-length: 2\r\n"), "{sent}");
        assert!(sent.contains("\r\nconnection: close\r\n"), "{sent}");
    }
}
