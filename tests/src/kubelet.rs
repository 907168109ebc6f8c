//! A fake kubelet for device-plugin and PodResources tests: it serves `Registration` on
//! `<dir>/kubelet.sock` (recording every request), serves `PodResourcesLister` on a socket of
//! the test's choosing (answering with what the test set), dials registered plugins like kubelet
//! does, and can "restart" the way kubelet does (delete every socket in its directory, then
//! create `kubelet.sock` anew).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multus_kubelet::deviceplugin::v1beta1::{
    Empty, RegisterRequest, device_plugin_client::DevicePluginClient, registration_server,
};
use multus_kubelet::podresources::v1::{
    self as pr, ListPodResourcesResponse, PodResources, pod_resources_lister_server,
};
use multus_kubelet::{KUBELET_SOCKET_NAME, unix};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The fake kubelet; dropping it stops its servers.
pub struct FakeKubelet {
    plugin_dir: PathBuf,
    pod_resources_socket: PathBuf,
    registrations: watch::Sender<Vec<RegisterRequest>>,
    pods: Arc<Mutex<Vec<PodResources>>>,
    registration_server: CancellationToken,
    pod_resources_server: CancellationToken,
}

#[derive(Clone)]
struct Registrar(watch::Sender<Vec<RegisterRequest>>);

#[tonic::async_trait]
impl registration_server::Registration for Registrar {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let request = request.into_inner();
        if request.version != multus_kubelet::deviceplugin::v1beta1::VERSION {
            return Err(Status::invalid_argument(
                "unsupported device plugin API version",
            ));
        }
        self.0.send_modify(|all| all.push(request));
        Ok(Response::new(Empty {}))
    }
}

#[derive(Clone)]
struct Lister(Arc<Mutex<Vec<PodResources>>>);

#[tonic::async_trait]
impl pod_resources_lister_server::PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<pr::ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        let pod_resources = self.0.lock().map(|p| p.clone()).unwrap_or_default();
        Ok(Response::new(ListPodResourcesResponse { pod_resources }))
    }
    async fn get_allocatable_resources(
        &self,
        _: Request<pr::AllocatableResourcesRequest>,
    ) -> Result<Response<pr::AllocatableResourcesResponse>, Status> {
        Ok(Response::new(pr::AllocatableResourcesResponse::default()))
    }
    async fn get(
        &self,
        request: Request<pr::GetPodResourcesRequest>,
    ) -> Result<Response<pr::GetPodResourcesResponse>, Status> {
        let r = request.into_inner();
        let pods = self.0.lock().map(|p| p.clone()).unwrap_or_default();
        let pod = pods
            .into_iter()
            .find(|p| p.name == r.pod_name && p.namespace == r.pod_namespace)
            .ok_or_else(|| Status::not_found(format!("pod {}/{}", r.pod_namespace, r.pod_name)))?;
        Ok(Response::new(pr::GetPodResourcesResponse {
            pod_resources: Some(pod),
        }))
    }
}

impl FakeKubelet {
    /// Start serving `Registration` in `plugin_dir` (created if missing) and `PodResourcesLister`
    /// on `pod_resources_socket`.
    pub async fn start(
        plugin_dir: impl Into<PathBuf>,
        pod_resources_socket: impl Into<PathBuf>,
    ) -> Result<Self, multus_kubelet::Error> {
        let plugin_dir = plugin_dir.into();
        let pod_resources_socket = pod_resources_socket.into();
        for dir in [Some(plugin_dir.as_path()), pod_resources_socket.parent()]
            .into_iter()
            .flatten()
        {
            std::fs::create_dir_all(dir).map_err(|source| multus_kubelet::Error::BindSocket {
                path: dir.to_owned(),
                source,
            })?;
        }
        let (registrations, _) = watch::channel(Vec::new());
        let pods = Arc::new(Mutex::new(Vec::new()));
        let pod_resources_server = CancellationToken::new();
        let listener = unix::bind(&pod_resources_socket)?;
        let router = tonic::transport::Server::builder().add_service(
            pod_resources_lister_server::PodResourcesListerServer::new(Lister(pods.clone())),
        );
        tokio::spawn(unix::serve(
            router,
            listener,
            pod_resources_socket.clone(),
            pod_resources_server.clone().cancelled_owned(),
        ));
        let mut kubelet = Self {
            registration_server: CancellationToken::new(),
            plugin_dir,
            pod_resources_socket,
            registrations,
            pods,
            pod_resources_server,
        };
        kubelet.serve_registration()?;
        Ok(kubelet)
    }

    fn serve_registration(&mut self) -> Result<(), multus_kubelet::Error> {
        let path = self.plugin_dir.join(KUBELET_SOCKET_NAME);
        let listener = unix::bind(&path)?;
        let router = tonic::transport::Server::builder().add_service(
            registration_server::RegistrationServer::new(Registrar(self.registrations.clone())),
        );
        self.registration_server = CancellationToken::new();
        tokio::spawn(unix::serve(
            router,
            listener,
            path,
            self.registration_server.clone().cancelled_owned(),
        ));
        Ok(())
    }

    pub fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
    }

    pub fn pod_resources_socket(&self) -> &Path {
        &self.pod_resources_socket
    }

    /// Every registration received so far, in order.
    pub fn registrations(&self) -> Vec<RegisterRequest> {
        self.registrations.borrow().clone()
    }

    /// Wait until `resource` has registered at least `times` times in total.
    pub async fn wait_registered(
        &self,
        resource: &str,
        times: usize,
        timeout: Duration,
    ) -> Option<RegisterRequest> {
        let mut rx = self.registrations.subscribe();
        tokio::time::timeout(
            timeout,
            rx.wait_for(|all| all.iter().filter(|r| r.resource_name == resource).count() >= times),
        )
        .await
        .ok()?
        .ok()?
        .iter()
        .rev()
        .find(|r| r.resource_name == resource)
        .cloned()
    }

    /// Dial the plugin that registered `request`, as kubelet does.
    pub async fn dial(
        &self,
        request: &RegisterRequest,
    ) -> Result<DevicePluginClient<Channel>, multus_kubelet::Error> {
        unix::device_plugin_client(self.plugin_dir.join(&request.endpoint)).await
    }

    /// What `List` answers from now on.
    pub fn set_pod_resources(&self, pods: Vec<PodResources>) {
        if let Ok(mut p) = self.pods.lock() {
            *p = pods;
        }
    }

    /// Restart like kubelet: stop, delete every socket in the plugin directory, serve anew.
    pub async fn restart(&mut self) -> Result<(), multus_kubelet::Error> {
        self.registration_server.cancel();
        for entry in std::fs::read_dir(&self.plugin_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".sock"))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        self.serve_registration()
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.registration_server.cancel();
        self.pod_resources_server.cancel();
    }
}

/// One pod holding `devices` of `resource` in a container named `app`.
pub fn pod_with_devices(
    namespace: &str,
    name: &str,
    resource: &str,
    devices: &[&str],
) -> PodResources {
    PodResources {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        containers: vec![pr::ContainerResources {
            name: "app".to_owned(),
            devices: vec![pr::ContainerDevices {
                resource_name: resource.to_owned(),
                device_ids: devices.iter().map(|d| (*d).to_owned()).collect(),
                topology: None,
            }],
            ..Default::default()
        }],
    }
}

/// Read the next `ListAndWatch` message, failing after `timeout`.
pub async fn next_list(
    stream: &mut tonic::Streaming<multus_kubelet::deviceplugin::v1beta1::ListAndWatchResponse>,
    timeout: Duration,
) -> Option<multus_kubelet::deviceplugin::v1beta1::ListAndWatchResponse> {
    tokio::time::timeout(timeout, stream.message())
        .await
        .ok()?
        .ok()?
}
