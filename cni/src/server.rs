//! The daemon side of thick mode (multus-spec §3.16): HTTP/1.1 over a unix socket, hosted by the
//! node agent (tests run it in-process).
//!
//! | path | answer |
//! |---|---|
//! | `POST /cni` | a CNI call from the shim: `{"env": {...}, "config": base64}` → `{"Result": ..., "printed": "..."}` for ADD, empty for the rest; 400 with a CNI error object on failure |
//! | `POST /delegate` | one network hot-plugged into a running pod: `{"env", "config": base64 of the network's config, "interfaceAttributes": {"ips", "mac", "cni-args"}}`; ADD, DEL, CHECK, STATUS; answers as `/cni` ([`Engine::run_delegate`]) |
//! | `/healthz` | 200 |
//! | `/readyz` | 200, 500 once shutting down |
//! | `/metrics` | Prometheus text: requests by command and outcome, in flight, queued, rejected |
//!
//! A burst of pods cannot exhaust memory (multus-spec §5 item 1): at most `max_concurrent` calls
//! run, at most `max_queued` more wait (each holding at most `max_body` bytes), and beyond that a
//! call is refused at once with CNI error 11 so the runtime retries it later. `/delegate` calls
//! share the same slots and queue.

use std::convert::Infallible;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use multus_crds::multus_config::MultusConfig;
use serde_json::{Map, Value};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use crate::engine::{Engine, InterfaceAttributes, ShimAnswer};
use crate::env::{Command, Invocation};
use crate::error::Error;
use crate::shim::SOCKET_NAME;

/// How long the daemon waits before accepting again after an accept failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How the daemon serves.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Directory of `multus.sock`; wiped and recreated 0700 at bind.
    pub socket_dir: PathBuf,
    /// CNI calls run at once.
    pub max_concurrent: usize,
    /// CNI calls waiting for a slot; more are refused with CNI error 11.
    pub max_queued: usize,
    /// Largest request body accepted.
    pub max_body: usize,
    /// How long a connection may take to send its request head, and then its body: a client
    /// that stalls is dropped, so it holds no slot and cannot hold up the daemon's shutdown.
    pub request_read_timeout: Duration,
    /// Daemon configuration merged over every request's config (daemon keys win), as Multus'
    /// `daemon-config.json` is.
    pub overlay: Map<String, Value>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            socket_dir: PathBuf::from(multus_crds::multus_config::DEFAULT_DAEMON_SOCKET_DIR),
            max_concurrent: 16,
            max_queued: 256,
            max_body: 1 << 20,
            request_read_timeout: Duration::from_secs(10),
            overlay: Map::new(),
        }
    }
}

/// Command × outcome counters, plus gauges.
#[derive(Default)]
struct Metrics {
    /// Indexed by endpoint (`/cni`, `/delegate`) × command (6) × outcome (ok, error).
    requests: [[[AtomicU64; 2]; 6]; 2],
    rejected: AtomicU64,
    /// Calls dropped before their answer: the shim went away (the runtime gave up on it).
    abandoned: AtomicU64,
    in_flight: AtomicUsize,
}

const COMMANDS: [Command; 6] = [
    Command::Add,
    Command::Del,
    Command::Check,
    Command::Gc,
    Command::Status,
    Command::Version,
];

impl Metrics {
    fn count(&self, endpoint: Endpoint, command: Command, ok: bool) {
        if let Some(i) = COMMANDS.iter().position(|c| *c == command) {
            self.requests[endpoint as usize][i][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, queued: usize) -> String {
        let mut out = String::new();
        for (endpoint, metric, help) in [
            (
                Endpoint::Cni,
                "multus_cni_requests_total",
                "CNI calls served by the daemon.",
            ),
            (
                Endpoint::Delegate,
                "multus_delegate_requests_total",
                "Hot-plug calls (/delegate) served by the daemon.",
            ),
        ] {
            out.push_str(&format!(
                "# HELP {metric} {help}\n# TYPE {metric} counter\n"
            ));
            for (i, c) in COMMANDS.iter().enumerate() {
                for (j, outcome) in ["ok", "error"].iter().enumerate() {
                    out.push_str(&format!(
                        "{metric}{{command=\"{c}\",outcome=\"{outcome}\"}} {}\n",
                        self.requests[endpoint as usize][i][j].load(Ordering::Relaxed)
                    ));
                }
            }
        }
        out.push_str(&format!(
            "# HELP multus_cni_requests_rejected_total CNI calls refused because the queue was full.\n# TYPE multus_cni_requests_rejected_total counter\nmultus_cni_requests_rejected_total {}\n",
            self.rejected.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP multus_cni_requests_abandoned_total CNI calls dropped before their answer: the runtime gave up on them.\n# TYPE multus_cni_requests_abandoned_total counter\nmultus_cni_requests_abandoned_total {}\n",
            self.abandoned.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP multus_cni_requests_in_flight CNI calls running.\n# TYPE multus_cni_requests_in_flight gauge\nmultus_cni_requests_in_flight {}\n",
            self.in_flight.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP multus_cni_requests_queued CNI calls admitted (running or waiting).\n# TYPE multus_cni_requests_queued gauge\nmultus_cni_requests_queued {queued}\n"
        ));
        out
    }
}

/// Which API a call came in on.
#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Cni = 0,
    Delegate = 1,
}

/// The daemon: an engine behind the socket.
pub struct DaemonServer {
    engine: Arc<Engine>,
    options: ServerOptions,
    ready: AtomicBool,
    slots: Semaphore,
    admitted: AtomicUsize,
    metrics: Metrics,
    /// The last request config remembered and what it became with the overlay. Calls send the
    /// same bytes when nothing per call is injected into the node's `00-multus.conf`: ADDs of a
    /// config without capabilities (a runtime injects `runtimeConfig` for declared ones), and
    /// DELs without `prevResult`; parsing it was a tenth of such a call's work in the daemon. A
    /// config carrying `prevResult` (a runtime's DEL) is parsed but not remembered, so DELs do
    /// not push out what the ADDs between them share.
    last_config: Mutex<Option<(Vec<u8>, Arc<MultusConfig>)>>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

impl DaemonServer {
    pub fn new(engine: Engine, options: ServerOptions) -> Arc<Self> {
        Arc::new(Self {
            engine: Arc::new(engine),
            slots: Semaphore::new(options.max_concurrent.max(1)),
            options,
            ready: AtomicBool::new(true),
            admitted: AtomicUsize::new(0),
            metrics: Metrics::default(),
            last_config: Mutex::new(None),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn socket_path(&self) -> PathBuf {
        self.options.socket_dir.join(SOCKET_NAME)
    }

    /// The `/metrics` text (requests, in flight, queued), for a host that serves its own
    /// `/metrics` on another port.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(self.admitted.load(Ordering::Relaxed))
    }

    /// CNI calls admitted and not finished (running or waiting for a slot).
    pub fn queue_depth(&self) -> usize {
        self.admitted.load(Ordering::Relaxed)
    }

    /// From now on `/readyz` answers 500 (call at the start of shutdown).
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Empty the socket directory (made if missing, 0700) and listen on `multus.sock` (0600).
    /// The directory itself stays: the DaemonSet mounts the host's `/run/multus` there, and a
    /// mount point cannot be removed (`EBUSY`: the agent crash-looped in thick mode before
    /// 2026-11-30).
    pub fn bind(&self) -> std::io::Result<UnixListener> {
        let dir = &self.options.socket_dir;
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        fs::remove_dir_all(entry.path())?;
                    } else {
                        fs::remove_file(entry.path())?;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        crate::cache::create_private_dir(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let path = self.socket_path();
        let listener = UnixListener::bind(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    }

    /// Serve until `shutdown` completes; calls in progress finish first, while new ones are
    /// refused at once (the socket is gone: a shim hands its call to `multus`, which waits for
    /// the next daemon).
    pub async fn serve(
        self: Arc<Self>,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tasks.spawn(Arc::clone(&self).serve_connection(stream));
                    }
                    // Out of file descriptors in a burst, or a connection gone before it was
                    // taken: the calls in progress go on, and the next accept is tried shortly
                    // (returning would drop them all and stop the daemon).
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection on the daemon socket");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_RETRY) => {}
                        }
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        self.set_not_ready();
        drop(listener);
        let _ = fs::remove_file(self.socket_path());
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// [`serve`](Self::serve) on a thread of its own with a single-threaded runtime, for a host
    /// whose runtime has other work: a call's steps (the shim's connection, each delegate's exit,
    /// the answer) then wake one thread that has the call's state at hand, instead of being
    /// handed between a multi-threaded runtime's workers (0.1–0.2 ms less per ADD and DEL round
    /// on the project's 2-core VM, docs/benchmarks.md). The calls still run concurrently: the
    /// delegates are processes, and the daemon's own work per call is a fraction of a
    /// millisecond. Returns when serving ends; dropping the returned future does not stop the
    /// daemon (`shutdown` does). A panic on the thread is returned as an error with its message.
    pub async fn serve_on_own_thread(
        self: Arc<Self>,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = listener.into_std()?;
        let (done, finished) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("multus-daemon".into())
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = UnixListener::from_std(listener)?;
                            self.serve(listener, shutdown).await
                        })
                    });
                let _ = done.send(served);
            })?;
        match finished.await {
            Ok(served) => served,
            // The thread ended without an answer: it panicked.
            Err(_) => {
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                let why = match joined {
                    Ok(Err(panic)) => panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned()),
                    _ => "no answer".to_owned(),
                };
                Err(std::io::Error::other(format!(
                    "the daemon's thread ended early: {why}"
                )))
            }
        }
    }

    /// One connection: one request (keep-alive off), its head and body each read within
    /// `request_read_timeout`.
    async fn serve_connection(self: Arc<Self>, stream: tokio::net::UnixStream) {
        let server = Arc::clone(&self);
        let service = service_fn(move |req| {
            let server = Arc::clone(&server);
            async move { Ok::<_, Infallible>(server.handle(req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.request_read_timeout)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "daemon connection");
        }
    }

    async fn handle(&self, req: hyper::Request<Incoming>) -> Reply {
        match (req.method(), req.uri().path()) {
            (_, "/healthz") => reply(StatusCode::OK, ""),
            (_, "/readyz") if self.ready.load(Ordering::SeqCst) => reply(StatusCode::OK, ""),
            (_, "/readyz") => reply(StatusCode::INTERNAL_SERVER_ERROR, "shutting down"),
            (_, "/metrics") => reply(
                StatusCode::OK,
                self.metrics.render(self.admitted.load(Ordering::Relaxed)),
            ),
            (&Method::POST, "/cni") => self.call(req, Endpoint::Cni).await,
            (&Method::POST, "/delegate") => self.call(req, Endpoint::Delegate).await,
            (_, "/cni" | "/delegate") => reply(StatusCode::METHOD_NOT_ALLOWED, ""),
            _ => reply(StatusCode::NOT_FOUND, ""),
        }
    }

    fn refuse(e: &Error) -> Reply {
        reply(
            StatusCode::BAD_REQUEST,
            e.to_cni_error(multus_crds::cni::CniVersion::CURRENT.to_string().as_str())
                .to_json_string(),
        )
    }

    async fn call(&self, req: hyper::Request<Incoming>, endpoint: Endpoint) -> Reply {
        let limit = self.options.max_concurrent.max(1) + self.options.max_queued;
        let (_admission, admitted) = Counted::enter(&self.admitted);
        if admitted >= limit {
            self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            return Self::refuse(&Error::Overloaded { queued: admitted });
        }
        // Waiting for a slot or running: dropped before the answer, the call was abandoned.
        let unanswered = Unanswered(Some(&self.metrics.abandoned));
        let reply = self.serve_admitted(req, endpoint, admitted).await;
        unanswered.answered();
        reply
    }

    /// An admitted call: its body read, a slot waited for, then run.
    async fn serve_admitted(
        &self,
        req: hyper::Request<Incoming>,
        endpoint: Endpoint,
        admitted: usize,
    ) -> Reply {
        let body = Limited::new(req.into_body(), self.options.max_body).collect();
        let body = match tokio::time::timeout(self.options.request_read_timeout, body).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Self::refuse(&Error::ParseConfig(format!("request body: {e}"))),
            Err(_) => {
                return Self::refuse(&Error::ParseConfig(format!(
                    "request body: not whole after {:?}",
                    self.options.request_read_timeout
                )));
            }
        };
        let Ok(_slot) = self.slots.acquire().await else {
            return Self::refuse(&Error::Overloaded { queued: admitted });
        };
        let answer = {
            let _running = Counted::enter(&self.metrics.in_flight);
            self.run(&body, endpoint).await
        };
        match answer {
            Ok((command, answer)) => {
                self.metrics.count(endpoint, command, true);
                let body = match answer {
                    // `Result` as upstream's daemon answers (CNI 1.0.0, which upstream's shim
                    // converts to the config's version); `printed`, the result exactly as the
                    // thin plugin would print it (in the config's cniVersion), is what
                    // `multus-shim` prints without parsing it. Both are JSON the engine printed:
                    // they go in as they are, not parsed again.
                    ShimAnswer {
                        printed: Some(printed),
                        result_1_0_0: Some(result),
                    } => {
                        let quoted = Value::from(printed.as_str());
                        format!(r#"{{"Result":{result},"printed":{quoted}}}"#)
                    }
                    ShimAnswer { printed, .. } => printed.unwrap_or_default(),
                };
                reply(StatusCode::OK, body)
            }
            Err((command, e)) => {
                if let Some(c) = command {
                    self.metrics.count(endpoint, c, false);
                }
                Self::refuse(&e)
            }
        }
    }

    async fn run(
        &self,
        body: &[u8],
        endpoint: Endpoint,
    ) -> Result<(Command, ShimAnswer), (Option<Command>, Error)> {
        let bad = |m: String| (None, Error::ParseConfig(m));
        let request: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("request: {e}")))?;
        let env: Map<String, Value> = request
            .get("env")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let config = request
            .get("config")
            .and_then(Value::as_str)
            .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
            .transpose()
            .map_err(|e| bad(format!("config: {e}")))?
            .unwrap_or_default();
        let inv = Invocation::from_env(
            |k| env.get(k).and_then(Value::as_str).map(str::to_owned),
            config,
        )
        .map_err(|e| (None, e))?;
        let command = inv.command;
        let answer = match endpoint {
            Endpoint::Cni => {
                let config = self.overlaid(&inv.config).map_err(|e| (Some(command), e))?;
                self.engine.run_for_shim(&inv, &config).await
            }
            Endpoint::Delegate => {
                let attributes = match request.get("interfaceAttributes") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        serde_json::from_value::<InterfaceAttributes>(v.clone()).map_err(|e| {
                            (
                                Some(command),
                                Error::ParseDelegate {
                                    what: "interfaceAttributes".into(),
                                    message: e.to_string(),
                                },
                            )
                        })?,
                    ),
                };
                let config = self.daemon_config().map_err(|e| (Some(command), e))?;
                // A hot-plug ADD's result is printed in 1.0.0 already, as upstream answers it.
                self.engine
                    .run_delegate(&inv, &config, attributes.as_ref())
                    .await
                    .map(|printed| ShimAnswer {
                        result_1_0_0: printed.clone().filter(|_| command == Command::Add),
                        printed,
                    })
            }
        };
        answer
            .map(|out| (command, out))
            .map_err(|e| (Some(command), e))
    }

    /// The daemon's own configuration, for `/delegate`: its request carries a network's config,
    /// not a Multus one (upstream uses the daemon's configuration the same way).
    fn daemon_config(&self) -> Result<MultusConfig, Error> {
        let mut value = Value::Object(self.options.overlay.clone());
        if let Some(map) = value.as_object_mut() {
            map.entry("cniVersion")
                .or_insert_with(|| Value::String(multus_crds::cni::CniVersion::V1_0_0.to_string()));
            map.insert("type".into(), Value::String("multus".into()));
        }
        MultusConfig::from_value(&value).map_err(|e| Error::ParseConfig(e.message()))
    }

    /// The request's config with the daemon's keys over it; the same bytes as the last call's
    /// give the same config, parsed once.
    fn overlaid(&self, config: &[u8]) -> Result<Arc<MultusConfig>, Error> {
        let last = || {
            self.last_config
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some((bytes, parsed)) = last().as_ref()
            && bytes.as_slice() == config
        {
            return Ok(Arc::clone(parsed));
        }
        let parsed = Arc::new(self.overlay(config)?);
        if parsed.prev_result.is_none() {
            *last() = Some((config.to_vec(), Arc::clone(&parsed)));
        }
        Ok(parsed)
    }

    fn overlay(&self, config: &[u8]) -> Result<MultusConfig, Error> {
        let mut value: Value = serde_json::from_slice(config)
            .map_err(|e| Error::ParseConfig(format!("config: {e}")))?;
        if let Some(map) = value.as_object_mut() {
            for (k, v) in &self.options.overlay {
                map.insert(k.clone(), v.clone());
            }
            // The daemon runs the engine itself: the request is no longer a shim request.
            map.insert("type".into(), Value::String("multus".into()));
        }
        MultusConfig::from_value(&value).map_err(|e| Error::ParseConfig(e.message()))
    }
}

/// One in a count (calls admitted, calls running) for as long as it lives: given back when the
/// call ends, however it ends. A call whose shim went away (the runtime gave up on it) is
/// dropped in the middle, and must not stay counted.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Count one more; also returns the count before.
    fn enter(count: &'a AtomicUsize) -> (Self, usize) {
        let before = count.fetch_add(1, Ordering::SeqCst);
        (Self(count), before)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts the call as abandoned if it is dropped before [`Unanswered::answered`].
struct Unanswered<'a>(Option<&'a AtomicU64>);

impl Unanswered<'_> {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(abandoned) = self.0 {
            abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether `path` is a socket some daemon listens on (for the shim's diagnostics and tests).
pub fn is_listening(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineOptions;

    fn config(name: &str) -> Vec<u8> {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{name}","type":"multus-shim","cniDir":"/request"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_config_seen_again_is_parsed_once_and_a_changed_one_at_once() {
        let mut overlay = Map::new();
        overlay.insert("cniDir".into(), Value::String("/daemon".into()));
        let server = DaemonServer::new(
            Engine::new(EngineOptions::default(), None),
            ServerOptions {
                overlay,
                ..ServerOptions::default()
            },
        );
        let first = server.overlaid(&config("one")).unwrap();
        assert_eq!(first.name.as_deref(), Some("one"));
        assert_eq!(
            first.cni_dir.as_deref(),
            Some("/daemon"),
            "the daemon's keys win"
        );
        assert_eq!(first.plugin_type.as_deref(), Some("multus"));
        assert!(Arc::ptr_eq(
            &first,
            &server.overlaid(&config("one")).unwrap()
        ));
        let changed = server.overlaid(&config("two")).unwrap();
        assert_eq!(changed.name.as_deref(), Some("two"));
        // A DEL's config, with the ADD's result in it: parsed, and the ADDs' config kept.
        let del = br#"{"cniVersion":"1.0.0","name":"two","type":"multus-shim","prevResult":{"cniVersion":"1.0.0"}}"#;
        assert!(server.overlaid(del).unwrap().prev_result.is_some());
        assert!(Arc::ptr_eq(
            &changed,
            &server.overlaid(&config("two")).unwrap()
        ));
        assert!(server.overlaid(b"{").is_err());
        // A bad config is not remembered in place of the last good one.
        assert!(Arc::ptr_eq(
            &changed,
            &server.overlaid(&config("two")).unwrap()
        ));
    }
}
