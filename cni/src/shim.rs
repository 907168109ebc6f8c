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

/// One HTTP/1.1 exchange on a connected stream. The shim is a process per CNI call: a blocking
/// request with `Connection: close`, read to the end, needs no async runtime and no HTTP client
/// stack to set up and fault in (docs/decisions.md, "The shim needs no async runtime").
fn exchange(
    mut stream: UnixStream,
    method: &str,
    uri: &str,
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let head = format!(
        "{method} {uri} HTTP/1.1\r\nhost: multus\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    // A daemon that refuses the call (overloaded, a body too large) may answer and close before
    // it has read all of it: the write then fails, or the read after the answer, and the answer
    // is still what to print.
    let sent = stream.write_all(&request);
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    if response.is_empty() {
        sent?;
        read?;
    }
    parse_response(&response)
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the daemon's answer: {what}"),
    )
}

/// Status and body of a whole HTTP/1.1 response (the connection closed after it).
/// `multus-shim` reads the same answers with its own no_std parser (cni/shim/src/http.rs): the
/// shim is a workspace of its own (no std, `panic = "abort"`), which the main workspace cannot
/// depend on, so tests/tests/cni_shim.rs runs both binaries against one stand-in daemon.
fn parse_response(bytes: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(malformed("the connection closed in its head"));
        }
        Err(e) => return Err(malformed(&e.to_string())),
    };
    let status = response.code.ok_or_else(|| malformed("no status"))?;
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let rest = &bytes[head_len..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        dechunk(rest)?
    } else if let Some(value) = header("content-length") {
        let len: usize = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| malformed("unreadable content-length"))?;
        rest.get(..len)
            .ok_or_else(|| malformed("the connection closed in its body"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

/// A chunked body, decoded.
fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((start, size))) => (start, size),
            Ok(httparse::Status::Partial) => {
                return Err(malformed("the connection closed in a chunk"));
            }
            Err(_) => return Err(malformed("unreadable chunk size")),
        };
        if size == 0 {
            return Ok(body);
        }
        // The chunk and the CRLF after it; a size near usize::MAX must not overflow.
        let (chunk, after) = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .and_then(|end| Some((rest.get(start..end)?, rest.get(end.checked_add(2)?..)?)))
            .ok_or_else(|| malformed("the connection closed in a chunk"))?;
        body.extend_from_slice(chunk);
        rest = after;
    }
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
    let patience = config
        .extra
        .get(DAEMON_WAIT_KEY)
        .and_then(Value::as_f64)
        .map_or(DEFAULT_DAEMON_WAIT, Duration::from_secs_f64);
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
    fn reads_a_response_by_content_length_chunks_or_close() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(sized).unwrap(), (200, b"hello".to_vec()));
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nab\n\r\n2\r\ncd\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (400, b"ab\ncd".to_vec()));
        let closed = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_response(closed).unwrap(), (204, Vec::new()));
    }

    #[test]
    fn a_cut_or_garbled_response_is_an_error_that_says_where() {
        for (bytes, says) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Le"[..], "in its head"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
                "in its body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "content-length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab",
                "in a chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            // The size ends the chunk one byte short of usize::MAX: the CRLF after it must not overflow.
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffec\r\nab",
                "in a chunk",
            ),
            (b"not http at all\r\n\r\n", "the daemon's answer"),
        ] {
            let e = parse_response(bytes).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains(says), "{e} should say {says}");
        }
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
