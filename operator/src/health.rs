//! The `/healthz`, `/readyz` and `/metrics` endpoints every long-running operator process serves
//! (the agent and the controller), over HTTP/1.1 on a TCP listener. Each process says what "ready"
//! means and what its metrics are through [`Endpoints`]; the serving is written once, here.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a process reports on its health endpoints.
pub trait Endpoints: Send + Sync + 'static {
    /// `/readyz` answers 200 when true, 503 otherwise (liveness, `/healthz`, is always 200).
    fn ready(&self) -> bool;
    /// The Prometheus text exposition for `/metrics`.
    fn metrics(&self) -> String;
}

/// Several parts of one process behind its one health server (the agent's CNI and SR-IOV
/// sides): ready when every part is; the metrics of all parts, with one `# EOF` trailer.
#[derive(Clone, Default)]
pub struct Combined(pub Vec<Arc<dyn Endpoints>>);

impl Combined {
    /// `first`, then these parts.
    pub fn after(&self, first: Arc<dyn Endpoints>) -> Self {
        Self(
            std::iter::once(first)
                .chain(self.0.iter().cloned())
                .collect(),
        )
    }
}

impl std::fmt::Debug for Combined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Combined({} parts)", self.0.len())
    }
}

impl Endpoints for Combined {
    fn ready(&self) -> bool {
        self.0.iter().all(|e| e.ready())
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        for part in &self.0 {
            for line in part.metrics().lines().filter(|l| *l != "# EOF") {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// The response for one request path.
pub fn answer(path: &str, endpoints: &dyn Endpoints) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/healthz" => (StatusCode::OK, "ok".to_owned()),
        "/readyz" if endpoints.ready() => (StatusCode::OK, "ok".to_owned()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned()),
        "/metrics" => (StatusCode::OK, endpoints.metrics()),
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// Serve the endpoints until `shutdown`. A failed accept (e.g. too many open files) is logged at
/// debug level and the loop goes on: health checks must not take the process down.
pub async fn serve(
    listener: TcpListener,
    endpoints: Arc<dyn Endpoints>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(error) => { tracing::debug!(%error, "health accept"); continue; }
            },
        };
        let endpoints = Arc::clone(&endpoints);
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let r = answer(req.uri().path(), endpoints.as_ref());
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Fixed(AtomicBool);
    impl Endpoints for Fixed {
        fn ready(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
        fn metrics(&self) -> String {
            "multus_test 1\n# EOF\n".to_owned()
        }
    }

    #[test]
    fn combined_parts_are_ready_together_and_end_with_one_eof() {
        let a = Arc::new(Fixed(AtomicBool::new(true)));
        let b = Arc::new(Fixed(AtomicBool::new(false)));
        let both = Combined(vec![a, b.clone()]);
        assert!(!both.ready());
        b.0.store(true, Ordering::SeqCst);
        assert!(both.ready());
        let text = both.metrics();
        assert_eq!(text, "multus_test 1\nmultus_test 1\n# EOF\n");
    }

    #[test]
    fn paths_answer_as_kubelet_probes_and_prometheus_expect() {
        let e = Fixed(AtomicBool::new(false));
        assert_eq!(answer("/healthz", &e).status(), StatusCode::OK);
        assert_eq!(
            answer("/readyz", &e).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        e.0.store(true, Ordering::SeqCst);
        assert_eq!(answer("/readyz", &e).status(), StatusCode::OK);
        assert_eq!(answer("/metrics", &e).status(), StatusCode::OK);
        assert_eq!(answer("/other", &e).status(), StatusCode::NOT_FOUND);
    }
}
