//! `/healthz`, `/readyz` and `/metrics` over HTTP/1.1 on a TCP address: liveness always, readiness
//! once the first full set of NADs is on disk (and until shutdown starts), and the agent's metrics
//! followed by the hosted daemon's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

impl crate::health::Endpoints for Health {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

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
    health: Arc<dyn crate::health::Endpoints>,
    shutdown: CancellationToken,
) -> Result<(), CniAgentError> {
    crate::health::serve(listener, health, shutdown).await;
    Ok(())
}
