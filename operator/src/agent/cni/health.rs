//! `/healthz`, `/readyz` and `/metrics` over HTTP/1.1 on a TCP address: liveness always, readiness
//! once the first full set of NADs is on disk (and until shutdown starts), and the agent's metrics
//! followed by the hosted daemon's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use multus_cni::DaemonServer;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::error::CniAgentError;

/// What the endpoints report.
pub struct Health {
    pub ready: AtomicBool,
    pub registry: Registry,
    pub daemon: Option<Arc<DaemonServer>>,
}

impl Health {
    fn metrics(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if let Some(d) = &self.daemon {
            out.push_str(&format!(
                "# HELP multus_agent_daemon_queue_depth CNI calls admitted by the daemon and not finished.\n# TYPE multus_agent_daemon_queue_depth gauge\nmultus_agent_daemon_queue_depth {}\n",
                d.queue_depth()
            ));
            out.push_str(&d.metrics_text());
        }
        prometheus_client::encoding::text::encode_eof(&mut out).ok();
        out
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body) = match path {
            "/healthz" => (StatusCode::OK, "ok".to_owned()),
            "/readyz" if self.ready.load(Ordering::SeqCst) => (StatusCode::OK, "ok".to_owned()),
            "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned()),
            "/metrics" => (StatusCode::OK, self.metrics()),
            _ => (StatusCode::NOT_FOUND, String::new()),
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    }
}

/// Bind `addr` now (so a bad address fails at start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, CniAgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CniAgentError::ServeHealth {
            addr: addr.to_string(),
            source,
        })
}

/// Serve until shutdown.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), CniAgentError> {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(error) => { tracing::debug!(%error, "health accept"); continue; }
            },
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let health = Arc::clone(&health);
                async move { Ok::<_, Infallible>(health.answer(req.uri().path())) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
