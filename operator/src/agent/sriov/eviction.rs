//! Targeted eviction: before a PF's VFs are destroyed or rebound, only the pods that hold VFs of
//! that PF are evicted — not the whole node drained, which is upstream's top complaint (nodes
//! left cordoned, NodeStates stuck `InProgress`; sriov-spec §8 items 1–2).
//!
//! Which pod holds which VF is kubelet's knowledge: its PodResources `List` gives every pod's
//! device IDs per resource. Pods are evicted through the Eviction API, so PodDisruptionBudgets
//! are respected (a blocked eviction, HTTP 429, is retried); after the timeout the apply fails
//! with the pods still holding VFs named in `lastSyncError`, and nothing is cordoned.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::EvictParams;
use multus_kubelet::podresources::v1::ListPodResourcesRequest;
use multus_kubelet::unix;
use tokio::time::Instant;

use super::error::SriovError;

/// A pod by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The pods holding any of `devices` under a resource with `prefix`, per kubelet.
pub async fn pods_holding(
    pod_resources_socket: &Path,
    prefix: &str,
    devices: &BTreeSet<String>,
) -> Result<Vec<PodRef>, SriovError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let mut client = unix::pod_resources_client(pod_resources_socket).await?;
    let list = client
        .list(ListPodResourcesRequest {})
        .await
        .map_err(SriovError::ListPodResources)?
        .into_inner();
    let ours = format!("{prefix}/");
    let mut pods: Vec<PodRef> = list
        .pod_resources
        .into_iter()
        .filter(|p| {
            p.containers.iter().flat_map(|c| &c.devices).any(|d| {
                d.resource_name.starts_with(&ours)
                    && d.device_ids.iter().any(|id| devices.contains(id))
            })
        })
        .map(|p| PodRef {
            namespace: p.namespace,
            name: p.name,
        })
        .collect();
    pods.sort();
    pods.dedup();
    Ok(pods)
}

/// Evict `pods` and wait until they are gone, retrying evictions a PodDisruptionBudget blocks,
/// for at most `timeout`. The pods are handled concurrently, so one pod a budget protects does
/// not hold up the eviction of the others. Returns how many pods this call evicted.
pub async fn evict_and_wait(
    client: &kube::Client,
    pods: &[PodRef],
    timeout: Duration,
) -> Result<usize, SriovError> {
    let deadline = Instant::now() + timeout;
    let mut remaining: Vec<PodRef> = pods.to_vec();
    let mut delay = Duration::from_millis(50);
    let mut evicted = 0;
    while !remaining.is_empty() {
        let rounds = remaining
            .iter()
            .map(|pod| evict_once(client, pod, deadline));
        let mut still = Vec::new();
        for (pod, outcome) in remaining
            .iter()
            .zip(futures::future::join_all(rounds).await)
        {
            let outcome = outcome?;
            evicted += usize::from(outcome.evicted);
            if !outcome.gone {
                still.push(pod.clone());
            }
        }
        remaining = still;
        if remaining.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(SriovError::EvictionTimeout {
                pods: remaining.iter().map(ToString::to_string).collect(),
                seconds: timeout.as_secs(),
                evicted,
            });
        }
        tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Ok(evicted)
}

/// What one eviction attempt achieved.
struct Outcome {
    /// The Eviction API accepted this attempt.
    evicted: bool,
    /// The pod no longer exists.
    gone: bool,
}

/// One eviction attempt of `pod`.
async fn evict_once(
    client: &kube::Client,
    pod: &PodRef,
    deadline: Instant,
) -> Result<Outcome, SriovError> {
    let fail = |source| SriovError::EvictPod {
        pod: pod.to_string(),
        source,
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    // kube's default client retries a 429 itself, sleeping the server's Retry-After (10 s) up
    // to 15 times: bound the call by our deadline so the timeout holds.
    let left = deadline.saturating_duration_since(Instant::now());
    let params = EvictParams::default();
    let evicted = match tokio::time::timeout(left, api.evict(&pod.name, &params)).await {
        // Out of time while the client waited on a PodDisruptionBudget: still there.
        Err(_elapsed) => {
            return Ok(Outcome {
                evicted: false,
                gone: false,
            });
        }
        Ok(Ok(_)) => {
            tracing::info!(%pod, "evicted: it holds VFs of a PF being reconfigured");
            true
        }
        Ok(Err(kube::Error::Api(e))) if e.code == 404 => {
            return Ok(Outcome {
                evicted: false,
                gone: true,
            });
        }
        // 429: a PodDisruptionBudget forbids it now; try again later.
        Ok(Err(kube::Error::Api(e))) if e.code == 429 => false,
        Ok(Err(source)) => return Err(fail(source)),
    };
    // Evicted pods may linger (finalizers, graceful termination): gone means gone.
    let gone = api.get_opt(&pod.name).await.map_err(fail)?.is_none();
    Ok(Outcome { evicted, gone })
}
