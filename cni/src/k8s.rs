//! The Kubernetes API calls the plugin makes: the pod, NADs, the network-status write-back and
//! events. Field manager and event source are `multus-cni`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::constants::{NETWORK_STATUS_ANNOTATION, field_manager};

use crate::error::{Error, Result};

/// Annotation the kubelet puts on pods; anything but `api` is a static pod, whose mirror pod has
/// another UID than the one the runtime passes.
const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// Where a pod's service-account credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Build a client from a kubeconfig file (the thin plugin's `kubeconfig` key).
pub async fn client_from_kubeconfig(path: &str) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::BuildKubeClient {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    client_from(kubeconfig, path).await
}

async fn client_from(kubeconfig: Kubeconfig, source: &str) -> Result<Client> {
    let err = |message: String| Error::BuildKubeClient {
        path: source.to_owned(),
        message,
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(10));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(multus_crds::constants::user_agent::CNI),
    ));
    // kube retries 429/503/504 up to 15 times with backoff growing to 1000 s: a CNI call must
    // answer the runtime in seconds, so the plugin bounds its own retries (pod lookup, status).
    config.default_retry = false;
    Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// In-cluster credentials as client-go reads them: the API server at
/// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (`get` looks a variable up), the
/// service account's `token` (re-read as kubelet rotates it) and `ca.crt` from `sa_dir`.
/// `Ok(None)` when the variables are not both set: not running in a cluster.
pub async fn in_cluster_client(
    get: impl Fn(&str) -> Option<String>,
    sa_dir: &Path,
) -> Result<Option<Client>> {
    let (Some(host), Some(port)) = (
        get("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty()),
        get("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty()),
    ) else {
        return Ok(None);
    };
    let source = format!("in-cluster credentials in {}", sa_dir.display());
    let err = |message: String| Error::BuildKubeClient {
        path: source.clone(),
        message,
    };
    let port: u16 = port
        .parse()
        .map_err(|_| err(format!("KUBERNETES_SERVICE_PORT {port:?} is not a port")))?;
    let server = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => format!("https://{}", std::net::SocketAddr::new(ip, port)),
        Err(_) => format!("https://{host}:{port}"),
    };
    let (token, ca) = (sa_dir.join("token"), sa_dir.join("ca.crt"));
    for file in [&token, &ca] {
        if !file.is_file() {
            return Err(err(format!("{} is missing", file.display())));
        }
    }
    let kubeconfig: Kubeconfig = serde_json::from_value(serde_json::json!({
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": server, "certificate-authority": ca}}],
        "users": [{"name": "service-account", "user": {"tokenFile": token}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": "in-cluster", "user": "service-account"}}],
        "current-context": "in-cluster",
    }))
    .map_err(|e| err(e.to_string()))?;
    client_from(kubeconfig, &source).await.map(Some)
}

/// The thin plugin's client (multus-spec §2.1 `kubeconfig`): the kubeconfig file when the config
/// names one; else in-cluster credentials from `sa_dir` when given and the service variables
/// are set; else none (static delegates only).
pub async fn client_for_config(
    kubeconfig: Option<&str>,
    sa_dir: Option<&Path>,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<Client>> {
    match (kubeconfig.filter(|k| !k.is_empty()), sa_dir) {
        (Some(file), _) => client_from_kubeconfig(file).await.map(Some),
        (None, Some(dir)) => in_cluster_client(get, dir).await,
        (None, None) => Ok(None),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict())
}

/// Worth retrying: the server is unreachable or says it is unavailable.
fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 500 | 503 | 429),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Whether the runtime's UID is the pod's (static pods are exempt).
pub fn uid_matches(pod: &Pod, expected: &str) -> bool {
    let is_static = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s != "api");
    expected.is_empty() || is_static || pod.metadata.uid.as_deref() == Some(expected)
}

/// Objects the caller already holds (the node agent's watch caches), consulted before the API.
/// A miss falls through to a live GET, so a cache that lags never loses an object.
pub trait ObjectCache: Send + Sync {
    fn pod(&self, namespace: &str, name: &str) -> Option<Pod>;
    fn nad(&self, namespace: &str, name: &str) -> Option<NetworkAttachmentDefinition>;
}

/// The Kubernetes calls, over one client.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    cache: Option<Arc<dyn ObjectCache>>,
}

impl Kube {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: None,
        }
    }

    /// Answer pod and NAD lookups from `cache` first.
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<dyn ObjectCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Get a pod; `None` when it does not exist. Unavailability is retried every 250 ms until
    /// `patience` has passed (multus-spec §3.17). A cached pod whose UID is not `uid` (when
    /// given) is an earlier pod of that name the watch has not replaced yet: asked live instead,
    /// so a recreated pod (a StatefulSet's) is not refused for a UID mismatch.
    pub async fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        patience: Duration,
    ) -> Result<Option<Pod>> {
        let cached = self.cache.as_ref().and_then(|c| c.pod(namespace, name));
        if let Some(pod) =
            cached.filter(|p| uid.is_empty() || p.metadata.uid.as_deref() == Some(uid))
        {
            return Ok(Some(pod));
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match api.get(name).await {
                Ok(pod) => return Ok(Some(pod)),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) if is_transient(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(source) => {
                    return Err(Error::GetPod {
                        namespace: namespace.into(),
                        name: name.into(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    /// Get a NAD; `None` when it does not exist. Read as a dynamic object so that a NAD without
    /// `spec` (legal) still reads.
    pub async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>> {
        if let Some(nad) = self.cache.as_ref().and_then(|c| c.nad(namespace, name)) {
            return Ok(Some(nad));
        }
        let ar = ApiResource::erase::<NetworkAttachmentDefinition>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let err = |source| Error::GetNetwork {
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        };
        let Some(obj) = api.get_opt(name).await.map_err(err)? else {
            return Ok(None);
        };
        let value = serde_json::to_value(obj).map_err(|e| err(kube::Error::SerdeError(e)))?;
        NetworkAttachmentDefinition::from_value(value)
            .map(Some)
            .map_err(|e| err(kube::Error::SerdeError(e)))
    }

    /// Set the pod's network-status annotation: live GET, set, `UpdateStatus`, retried on
    /// conflict. A pod that is gone (or replaced by one with another UID) is not an error.
    pub async fn set_network_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        value: &str,
    ) -> Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let err = |source| Error::UpdateStatus {
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        };
        let pp = PostParams {
            field_manager: Some(field_manager::CNI.into()),
            ..PostParams::default()
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(mut pod) = api.get_opt(name).await.map_err(err)? else {
                return Ok(());
            };
            if !uid_matches(&pod, uid) {
                return Ok(());
            }
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(NETWORK_STATUS_ANNOTATION.into(), value.into());
            match api.replace_status(name, &pp, &pod).await {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) && attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                }
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Record an event on the pod (source `multus`). Best effort: a failed event never fails a
    /// CNI command.
    ///
    /// A core/v1 event as client-go's recorder (upstream's) makes it: no `eventTime`, which would
    /// make the API server require `reportingInstance` and `action` too and refuse this one (it
    /// did until 2026-11-30: no event reached a real cluster; the fake API server now checks it).
    pub async fn event(&self, pod: &Pod, warning: bool, reason: &str, message: &str) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{pod_name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name),
                namespace: Some(namespace.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some("multus".into()),
                host: None,
            }),
            reporting_component: Some("multus".into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(reason, error = %e, "event not recorded");
        }
    }
}
