//! The HTTPS server: TLS accept, HTTP/1.1 or HTTP/2 per connection, routing, limits, and the
//! graceful drain on shutdown.
//!
//! Every request is bounded: the body by `max_body_bytes` (413 past it), the whole exchange by
//! `request_timeout` (503 past it). Anything that is not a well-formed AdmissionReview on a
//! review path gets a 400 with the reason; nothing a client sends can make the process fail.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::Error;
use crate::admit::{self, Endpoint};
use crate::context::Context;
use crate::metrics::{RejectReason, ReviewVerdict};
use crate::review::Review;

/// Limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long open connections get to finish on shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // An UPDATE review carries the object twice; each is at most the API server's 3 MiB
            // request limit in practice far less (etcd stores 1.5 MiB). See docs/decisions.
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(8),
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

type Body200 = Full<Bytes>;

/// Serve until `shutdown` completes, then let open connections finish (up to the drain timeout).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<Context>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Over TLS, hyper's vectored writes make the head and the body two TLS records (two
    // encryptions, two record headers); flattening them into one buffer first is cheaper for
    // answers of a few hundred bytes, which is all a review answer is.
    builder.http1().writev(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, limits, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: draining open connections");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
    Ok(())
}

/// Answer one request. Public so the routing can be exercised without sockets.
pub async fn handle<B>(ctx: &Context, limits: Limits, req: Request<B>) -> Response<Body200>
where
    B: Body + Send,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") if ctx.readiness.is_ready() => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "caches have not synced yet",
        ),
        (&Method::GET, "/metrics") => match ctx.metrics.encode() {
            Ok(body) => Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default(),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed",
            ),
        },
        (method, path) => match Endpoint::from_path(path) {
            None => reject(
                ctx,
                RejectReason::NotFound,
                StatusCode::NOT_FOUND,
                format!("no such path {path:?}"),
            ),
            Some(_) if method != Method::POST => reject(
                ctx,
                RejectReason::MethodNotAllowed,
                StatusCode::METHOD_NOT_ALLOWED,
                "admission reviews are POSTed".to_owned(),
            ),
            Some(endpoint) => {
                match tokio::time::timeout(
                    limits.request_timeout,
                    review(ctx, limits, endpoint, req),
                )
                .await
                {
                    Ok(response) => response,
                    Err(_) => reject(
                        ctx,
                        RejectReason::Timeout,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the review timed out".to_owned(),
                    ),
                }
            }
        },
    }
}

async fn review<B>(
    ctx: &Context,
    limits: Limits,
    endpoint: Endpoint,
    req: Request<B>,
) -> Response<Body200>
where
    B: Body + Send,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return reject(
            ctx,
            RejectReason::UnsupportedMediaType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview is sent as Content-Type: application/json".to_owned(),
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return too_large(ctx, limits);
    }
    let body = match Limited::new(req.into_body(), limits.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return too_large(ctx, limits);
        }
        Err(error) => {
            return reject(
                ctx,
                RejectReason::Malformed,
                StatusCode::BAD_REQUEST,
                format!("reading the body: {error}"),
            );
        }
    };
    let review = match Review::parse(&body) {
        Ok(r) => r,
        Err(error) => {
            return reject(
                ctx,
                RejectReason::Malformed,
                StatusCode::BAD_REQUEST,
                error.to_string(),
            );
        }
    };
    let span = tracing::debug_span!(
        "review",
        path = endpoint.path(),
        uid = %review.request.uid,
        resource = %review.request.resource.resource,
        object = %review.request.object_ref(),
    );
    let (kind, verdict) = admit::admit(ctx, endpoint, &review.request)
        .instrument(span.clone())
        .await;
    let outcome = match (&verdict.denied, verdict.patch.is_empty()) {
        (Some(message), _) => {
            span.in_scope(|| tracing::debug!(%message, "denied"));
            ReviewVerdict::Denied
        }
        (None, true) => ReviewVerdict::Allowed,
        (None, false) => ReviewVerdict::Patched,
    };
    match verdict.into_review_body(review.api_version, &review.request.uid) {
        Ok(body) => {
            ctx.metrics.observe_review(kind, outcome, started.elapsed());
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the review: {error}"),
        ),
    }
}

fn too_large(ctx: &Context, limits: Limits) -> Response<Body200> {
    reject(
        ctx,
        RejectReason::TooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {} bytes", limits.max_body_bytes),
    )
}

fn reject(
    ctx: &Context,
    reason: RejectReason,
    status: StatusCode,
    message: String,
) -> Response<Body200> {
    ctx.metrics.reject(reason);
    text(status, &message)
}

fn text(status: StatusCode, message: &str) -> Response<Body200> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .unwrap_or_default()
}
