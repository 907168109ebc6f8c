//! Device IDs a pod was given, read from the kubelet PodResources API (multus-spec §3.14,
//! sriov-spec §6): `List` on kubelet's socket, the entries of the pod (name + namespace) kept, the
//! IDs of every container merged per resource name and sorted.
//!
//! `List` carries no pod UID, so the pod cannot be told apart from an earlier pod of the same
//! name here; the engine has already checked the UID against the API server before resolving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use multus_kubelet::podresources::v1::{ListPodResourcesRequest, ListPodResourcesResponse};

use crate::error::{Error, Result};
use crate::resolve::DeviceSource;

/// Multus configuration key naming kubelet's PodResources socket (thin config, or the daemon's
/// configuration overlay).
pub const POD_RESOURCES_SOCKET_KEY: &str = "podResourcesSocket";

/// How long the whole `List` call may take (Multus bounds it by the same 10 s).
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// The device IDs of one pod, per resource name, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodDevices {
    by_resource: HashMap<String, Vec<String>>,
}

impl PodDevices {
    /// The devices of pod `namespace`/`name` in a `List` answer. Several containers holding the
    /// same resource contribute to one list; sorting makes the hand-out order deterministic.
    pub fn from_list(list: &ListPodResourcesResponse, namespace: &str, name: &str) -> Self {
        let mut by_resource: HashMap<String, Vec<String>> = HashMap::new();
        let containers = list
            .pod_resources
            .iter()
            .filter(|p| p.namespace == namespace && p.name == name)
            .flat_map(|p| &p.containers);
        for device in containers.flat_map(|c| &c.devices) {
            by_resource
                .entry(device.resource_name.clone())
                .or_default()
                .extend(device.device_ids.iter().cloned());
        }
        for ids in by_resource.values_mut() {
            ids.sort();
            ids.dedup();
        }
        Self { by_resource }
    }
}

impl DeviceSource for PodDevices {
    // Fetched for the one pod being attached, so the pod arguments need no check here.
    fn device_ids(&self, _namespace: &str, _pod: &str, resource: &str) -> Vec<String> {
        self.by_resource.get(resource).cloned().unwrap_or_default()
    }
}

/// Ask kubelet at `socket` for the devices of pod `namespace`/`name`.
///
/// A missing socket file means no kubelet PodResources on this node (a test node, a kubelet
/// without the API): no devices, so no deviceID is injected, with a warning. A socket that
/// exists but does not answer is an error, so the runtime retries rather than attaching a
/// device network without its device.
pub async fn fetch(socket: &Path, namespace: &str, name: &str) -> Result<PodDevices> {
    if !socket.exists() {
        tracing::warn!(
            socket = %socket.display(),
            "kubelet PodResources socket missing: no deviceIDs for resourceName networks"
        );
        return Ok(PodDevices::default());
    }
    let fail = |message: String| Error::PodResources {
        socket: socket.to_owned(),
        message,
    };
    let list = tokio::time::timeout(LIST_TIMEOUT, async {
        let mut client = multus_kubelet::unix::pod_resources_client(socket.to_path_buf())
            .await
            .map_err(|e| fail(e.to_string()))?;
        client
            .list(ListPodResourcesRequest {})
            .await
            // Inherent method of tonic::Response: the crate does not depend on tonic itself.
            .map(|response| response.into_inner())
            .map_err(|status| fail(format!("List: {status}")))
    })
    .await
    .map_err(|_| fail(format!("List took more than {} s", LIST_TIMEOUT.as_secs())))??;
    Ok(PodDevices::from_list(&list, namespace, name))
}

/// The socket to ask: the config's [`POD_RESOURCES_SOCKET_KEY`], else `default`.
pub fn socket_from_config(
    config: &multus_crds::multus_config::MultusConfig,
    default: &Path,
) -> PathBuf {
    config
        .extra
        .get(POD_RESOURCES_SOCKET_KEY)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| default.to_owned(), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use multus_kubelet::podresources::v1::{ContainerDevices, ContainerResources, PodResources};

    use super::*;

    fn container(resource: &str, ids: &[&str]) -> ContainerResources {
        ContainerResources {
            name: "c".into(),
            devices: vec![ContainerDevices {
                resource_name: resource.into(),
                device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                topology: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn merges_containers_of_the_pod_only_and_sorts() {
        let list = ListPodResourcesResponse {
            pod_resources: vec![
                PodResources {
                    name: "web".into(),
                    namespace: "team".into(),
                    containers: vec![
                        container("r/vf", &["0000:03:00.3", "0000:03:00.1"]),
                        container("r/vf", &["0000:03:00.2"]),
                    ],
                },
                PodResources {
                    name: "web".into(),
                    namespace: "other".into(),
                    containers: vec![container("r/vf", &["0000:09:00.0"])],
                },
            ],
        };
        let d = PodDevices::from_list(&list, "team", "web");
        assert_eq!(
            d.device_ids("team", "web", "r/vf"),
            ["0000:03:00.1", "0000:03:00.2", "0000:03:00.3"]
        );
        assert!(d.device_ids("team", "web", "r/other").is_empty());
    }
}
