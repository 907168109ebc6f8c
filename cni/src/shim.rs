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

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use multus_crds::cni::{CniError, CniResult, CniVersion, select_version};
use multus_crds::multus_config::MultusConfig;
use serde_json::{Value, json};
use tokio::net::UnixStream;

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
pub async fn request(
    socket: &Path,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> std::io::Result<(u16, Bytes)> {
    let stream = UnixStream::connect(socket).await?;
    request_on(stream, method, uri, body).await
}

/// One HTTP/1.1 request over a connected stream.
async fn request_on(
    stream: UnixStream,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> std::io::Result<(u16, Bytes)> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    let driver = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "multus")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(std::io::Error::other)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

async fn wait_ready(socket: &Path, patience: Duration) -> std::result::Result<(), String> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let last = match request(socket, "GET", "/readyz", Vec::new()).await {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => format!("/readyz answered {status}"),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forward `inv` to the daemon and turn its answer into what the plugin prints.
pub async fn forward(inv: &Invocation, config: &MultusConfig) -> Result<Option<String>> {
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
    let stream = match UnixStream::connect(&socket).await {
        Ok(stream) => stream,
        Err(e) if inv.command == Command::Del => {
            tracing::warn!(error = %e, "daemon unreachable; running DEL in-process from the cache");
            return Engine::new(EngineOptions::default(), None)
                .run_config(inv, config)
                .await;
        }
        Err(_) => {
            wait_ready(&socket, patience)
                .await
                .map_err(|message| Error::DaemonUnreachable {
                    socket: socket.clone(),
                    message,
                })?;
            UnixStream::connect(&socket)
                .await
                .map_err(|e| Error::DaemonUnreachable {
                    socket: socket.clone(),
                    message: e.to_string(),
                })?
        }
    };
    let (status, answer) = request_on(stream, "POST", "/cni", body)
        .await
        .map_err(|e| Error::DaemonUnreachable {
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
    let version = select_version(config.cni_version.as_deref(), &[])
        .map_err(|e| Error::ParseConfig(format!("cniVersion: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::DaemonFailed {
        status,
        body: e.to_string(),
    })?;
    let result = value.get("Result").cloned().unwrap_or(Value::Null);
    let printed = CniResult::from_value(result, Some(CniVersion::V1_0_0))
        .and_then(|r| r.convert(version))
        .and_then(|r| r.to_json_string(version))
        .map_err(|e| Error::DaemonFailed {
            status,
            body: e.to_string(),
        })?;
    Ok(Some(printed))
}
