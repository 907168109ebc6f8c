//! # The cluster controller (`multus-operator controller`)
//!
//! Two reconcilers over one set of watches, writing only while this replica holds the Lease:
//!
//! - [`network`]: each SriovNetwork → its NetworkAttachmentDefinition (rendered by
//!   `multus_crds::sriov::render`), with ownership, cleanup across namespaces, `Ready` conditions
//!   and Events.
//! - [`nodestate`]: all SriovNetworkNodePolicies + Nodes + each node's discovered NICs → every
//!   node's `SriovNetworkNodeState.spec` (merged by `multus_crds::sriov::merge`), policy
//!   conditions and conflict Events, NodeStates created for selected nodes and removed after a
//!   delay for vanished ones.
//!
//! Every replica watches; [`lease`] decides who writes. Writes are server-side apply with the one
//! field manager `multus-controller`, and only when the desired object differs from the stored one.

pub mod error;
pub mod lease;
pub mod metrics;
pub mod network;
pub mod nodestate;
pub mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use error::ControllerError;
pub use lease::LeaseConfig;
pub use metrics::{Metrics, Readiness};

/// What the controller is told at start.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator namespace: policies are read from it, NodeStates and the Lease live in it.
    pub namespace: String,
    /// Device-plugin resource prefix in the NADs' `resourceName` annotation.
    pub resource_prefix: String,
    /// Labels a node must carry to get a NodeState (upstream's `configDaemonNodeSelector`).
    pub node_selector: BTreeMap<String, String>,
    /// How long the NodeState of a vanished node is kept.
    pub state_removal_delay: Duration,
    /// Full resync period of both reconcilers.
    pub resync: Duration,
    /// Quiet time after a change before the cluster-wide policy sync runs.
    pub debounce: Duration,
    pub lease: LeaseConfig,
    /// Where `/healthz`, `/readyz`, `/metrics` are served; `None`: not served.
    pub health_addr: Option<SocketAddr>,
}

impl Config {
    /// Defaults for `namespace`, upstream's default node selector (Linux workers), identity `id`.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            resource_prefix: multus_crds::constants::DEFAULT_RESOURCE_PREFIX.to_owned(),
            node_selector: BTreeMap::from([
                ("node-role.kubernetes.io/worker".to_owned(), String::new()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ]),
            state_removal_delay: Duration::from_secs(300),
            resync: Duration::from_secs(300),
            debounce: Duration::from_millis(200),
            lease: LeaseConfig {
                name: "multus-controller".to_owned(),
                namespace: namespace.to_owned(),
                identity: identity.to_owned(),
                duration: Duration::from_secs(15),
                renew: Duration::from_secs(5),
            },
            health_addr: None,
        }
    }
}

/// What every reconcile gets: the client, the configuration, one shared Event recorder (it
/// deduplicates), the metrics and the leadership flag.
pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    leader: watch::Receiver<bool>,
}

impl Context {
    /// A context and the sender that flips leadership (driven by [`lease::run`]).
    pub fn new(client: kube::Client, config: Config) -> (Arc<Self>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: multus_crds::constants::field_manager::CONTROLLER.to_owned(),
                instance: Some(config.lease.identity.clone()),
            },
        );
        let ctx = Self {
            client,
            config,
            recorder,
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Readiness::default()),
            leader: rx,
        };
        (Arc::new(ctx), tx)
    }

    /// Whether this replica may write now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// A receiver of leadership changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }
}

/// Run the lease, both reconcilers and the health server until shutdown or a fatal error (such as
/// a lost Lease). Returns the first error.
pub async fn run(
    ctx: Arc<Context>,
    leader: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    // One child token: any task ending with an error stops the others.
    let stop = shutdown.child_token();
    let health = match ctx.config.health_addr {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let guard = |fut: futures::future::BoxFuture<'static, Result<(), ControllerError>>| {
        let stop = stop.clone();
        async move {
            let r = fut.await;
            stop.cancel();
            r
        }
    };
    let metrics_leader = {
        let ctx = Arc::clone(&ctx);
        let mut rx = ctx.leadership();
        let stop = stop.clone();
        async move {
            loop {
                ctx.metrics.set_leader(*rx.borrow_and_update());
                tokio::select! {
                    () = stop.cancelled() => return Ok::<(), ControllerError>(()),
                    r = rx.changed() => if r.is_err() { return Ok(()) },
                }
            }
        }
    };
    let health_task = {
        let (m, r, s) = (
            Arc::clone(&ctx.metrics),
            Arc::clone(&ctx.readiness),
            stop.clone(),
        );
        async move {
            match health {
                Some(listener) => metrics::serve(listener, m, r, s).await,
                None => {
                    s.cancelled().await;
                    Ok(())
                }
            }
        }
    };
    let results = tokio::join!(
        guard(Box::pin(lease::run(
            ctx.client.clone(),
            ctx.config.lease.clone(),
            leader,
            stop.clone()
        ))),
        guard(Box::pin(network::run(Arc::clone(&ctx), stop.clone()))),
        guard(Box::pin(nodestate::run(Arc::clone(&ctx), stop.clone()))),
        guard(Box::pin(health_task)),
        metrics_leader,
    );
    results.0?;
    results.1?;
    results.2?;
    results.3?;
    results.4
}

/// Server-side apply of `conditions` as the status of the `kind` object `name` through `api`
/// (one field manager for the controller), counted as a write.
async fn apply_conditions<K>(
    ctx: &Context,
    api: &kube::Api<K>,
    kind: &'static str,
    name: String,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Result<(), error::ControllerError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": kind,
        "status": {"conditions": conditions},
    });
    api.patch_status(
        &name,
        &kube::api::PatchParams::apply(multus_crds::constants::field_manager::CONTROLLER).force(),
        &kube::api::Patch::Apply(&body),
    )
    .await
    .map_err(|source| error::ControllerError::PatchStatus { kind, name, source })?;
    ctx.metrics.write(kind);
    Ok(())
}
