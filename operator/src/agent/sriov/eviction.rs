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
/// for at most `timeout`.
pub async fn evict_and_wait(
    client: &kube::Client,
    pods: &[PodRef],
    timeout: Duration,
) -> Result<(), SriovError> {
    let deadline = Instant::now() + timeout;
    let mut remaining: Vec<PodRef> = pods.to_vec();
    let mut delay = Duration::from_millis(50);
    while !remaining.is_empty() {
        let mut still = Vec::new();
        for pod in remaining {
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
            match api.evict(&pod.name, &EvictParams::default()).await {
                Ok(_) => {
                    tracing::info!(%pod, "evicted: it holds VFs of a PF being reconfigured");
                }
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                // 429: a PodDisruptionBudget forbids it now; try again later.
                Err(kube::Error::Api(e)) if e.code == 429 => {}
                Err(source) => {
                    return Err(SriovError::EvictPod {
                        pod: pod.to_string(),
                        source,
                    });
                }
            }
            match api.get_opt(&pod.name).await {
                Ok(None) => {}
                Ok(Some(_)) => still.push(pod),
                Err(source) => {
                    return Err(SriovError::EvictPod {
                        pod: pod.to_string(),
                        source,
                    });
                }
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
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Ok(())
}
