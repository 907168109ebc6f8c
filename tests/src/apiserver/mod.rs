//! An in-memory Kubernetes API server for tests (see tests/README.md for its deviations).
//!
//! ```no_run
//! # async fn demo() -> Result<(), multus_tests::apiserver::Error> {
//! let server = multus_tests::apiserver::FakeApiServer::start().await?;
//! let client = server.client().await?;
//! # Ok(()) }
//! ```

mod admission;
mod apply;
mod audit;
mod builtin;
mod crd;
mod discovery;
mod eviction;
mod http;
mod meta;
mod objects;
mod patch;
mod resources;
mod selectors;
mod status;
mod store;
pub mod tls;
mod watch;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::{net::TcpListener, sync::watch as signal};

pub use audit::RecordedRequest;
pub use status::ApiStatus;

pub use crate::Error;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Serve HTTPS with a freshly generated CA (written into the kubeconfig).
    pub tls: bool,
    /// 0: an ephemeral port.
    pub port: u16,
    /// How many events stay replayable for watches; older starts get 410 Gone.
    pub watch_window: usize,
    /// Where to write the kubeconfig; None: a temporary directory owned by the server.
    pub kubeconfig_out: Option<PathBuf>,
    /// Also append every recorded request ([`FakeApiServer::requests`]) to this file as a JSON
    /// line.
    pub audit_log: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            tls: false,
            port: 0,
            watch_window: 100_000,
            kubeconfig_out: None,
            audit_log: None,
        }
    }
}

pub(crate) struct Inner {
    pub store: store::Store,
    pub registry: resources::Registry,
}

pub(crate) struct State {
    inner: Mutex<Inner>,
    /// `host:port`, for the `/api` document.
    address: String,
    /// Every resource request received, for RBAC checks.
    audit: audit::AuditLog,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half-written in a way later
        // requests would misread more than the panic itself already reports.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a request addresses.
pub(crate) struct Target {
    pub def: resources::ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// A running server; dropped, it stops.
pub struct FakeApiServer {
    url: String,
    kubeconfig: PathBuf,
    state: Arc<State>,
    ca_pem: Option<String>,
    stop: signal::Sender<bool>,
    _dir: Option<tempfile::TempDir>,
}

impl FakeApiServer {
    /// Plain HTTP on 127.0.0.1 and an ephemeral port.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> Result<Self, Error> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let mut store = store::Store::new(config.watch_window);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.put(
                &objects::ns_storage(),
                ns,
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "uid": meta::uid(), "creationTimestamp": meta::now(),
                        "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            );
        }
        let state = Arc::new(State {
            inner: Mutex::new(Inner {
                store,
                registry: resources::Registry::default(),
            }),
            address: addr.to_string(),
            audit: match &config.audit_log {
                Some(path) => {
                    audit::AuditLog::to_file(path).map_err(|source| Error::WriteAuditLog {
                        path: path.clone(),
                        source,
                    })?
                }
                None => audit::AuditLog::default(),
            },
        });
        let (acceptor, ca_pem) = if config.tls {
            let bundle = tls::CertBundle::generate(&["localhost", "127.0.0.1"])?;
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                    bundle.server_config()?,
                ))),
                Some(bundle.ca_pem),
            )
        } else {
            (None, None)
        };
        let scheme = if config.tls { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let (dir, kubeconfig) = match config.kubeconfig_out {
            Some(p) => (None, p),
            None => {
                let d = tempfile::tempdir().map_err(|source| Error::WriteKubeconfig {
                    path: PathBuf::new(),
                    source,
                })?;
                let p = d.path().join("kubeconfig");
                (Some(d), p)
            }
        };
        tls::write_kubeconfig(&kubeconfig, &url, ca_pem.as_deref()).map_err(|source| {
            Error::WriteKubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        let (stop, stopped) = signal::channel(false);
        tokio::spawn(accept_loop(listener, acceptor, state.clone(), stopped));
        Ok(Self {
            url,
            kubeconfig,
            state,
            ca_pem,
            stop,
            _dir: dir,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The PEM of the CA that signed the serving certificate (TLS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.state.lock().store.resource_version()
    }

    /// A client configured from the server's kubeconfig, as any component would build one.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| Error::BuildClient(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| Error::BuildClient(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| Error::BuildClient(e.to_string()))
    }

    /// Every resource request received so far, in order (see [`RecordedRequest`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.audit.snapshot()
    }

    /// Stop accepting connections (open watches end when their clients go).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    mut stopped: signal::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _peer)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| http::serve(state.clone(), req));
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match acceptor {
                Some(a) => match a.accept(tcp).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Err(_) => return,
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// The address of a running server, for callers holding only its URL.
pub fn socket_addr(url: &str) -> Option<SocketAddr> {
    url.split("://").nth(1)?.parse().ok()
}
