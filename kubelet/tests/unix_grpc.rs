//! Both APIs served and called over a real unix socket.

use std::pin::Pin;

use futures::Stream;
use multus_kubelet::deviceplugin::v1beta1 as dp;
use multus_kubelet::podresources::v1 as pr;
use multus_kubelet::unix;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

struct Lister;

#[tonic::async_trait]
impl pr::pod_resources_lister_server::PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<pr::ListPodResourcesRequest>,
    ) -> Result<Response<pr::ListPodResourcesResponse>, Status> {
        Ok(Response::new(pr::ListPodResourcesResponse {
            pod_resources: vec![pod("web", "default", "0000:3b:02.1")],
        }))
    }
    async fn get_allocatable_resources(
        &self,
        _: Request<pr::AllocatableResourcesRequest>,
    ) -> Result<Response<pr::AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn get(
        &self,
        req: Request<pr::GetPodResourcesRequest>,
    ) -> Result<Response<pr::GetPodResourcesResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(pr::GetPodResourcesResponse {
            pod_resources: Some(pod(&r.pod_name, &r.pod_namespace, "0000:3b:02.3")),
        }))
    }
}

fn pod(name: &str, namespace: &str, device: &str) -> pr::PodResources {
    pr::PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers: vec![pr::ContainerResources {
            name: "app".into(),
            devices: vec![pr::ContainerDevices {
                resource_name: "openshift.io/fastnic".into(),
                device_ids: vec![device.into()],
                topology: Some(pr::TopologyInfo {
                    nodes: vec![pr::NumaNode { id: 1 }],
                }),
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn pod_resources_list_and_get_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubelet.sock");
    let listener = unix::bind(&path).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .add_service(pr::pod_resources_lister_server::PodResourcesListerServer::new(Lister));
    let server = tokio::spawn(unix::serve(router, listener, path.clone(), async {
        let _ = stopped.await;
    }));

    let mut client = unix::pod_resources_client(&path).await.unwrap();
    let list = client
        .list(pr::ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.pod_resources.len(), 1);
    assert_eq!(
        list.pod_resources[0].containers[0].devices[0].device_ids,
        ["0000:3b:02.1"]
    );
    let one = client
        .get(pr::GetPodResourcesRequest {
            pod_name: "db".into(),
            pod_namespace: "prod".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_resources
        .unwrap();
    assert_eq!((one.name.as_str(), one.namespace.as_str()), ("db", "prod"));
    let err = client
        .get_allocatable_resources(pr::AllocatableResourcesRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

struct Plugin;

#[tonic::async_trait]
impl dp::device_plugin_server::DevicePlugin for Plugin {
    type ListAndWatchStream =
        Pin<Box<dyn Stream<Item = Result<dp::ListAndWatchResponse, Status>> + Send>>;

    async fn get_device_plugin_options(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<dp::DevicePluginOptions>, Status> {
        Ok(Response::new(dp::DevicePluginOptions {
            get_preferred_allocation_available: true,
            ..Default::default()
        }))
    }
    async fn list_and_watch(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let devices = vec![dp::Device {
            id: "0000:3b:02.1".into(),
            health: dp::HEALTHY.into(),
            topology: None,
        }];
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            dp::ListAndWatchResponse { devices },
        )]))))
    }
    async fn get_preferred_allocation(
        &self,
        _: Request<dp::PreferredAllocationRequest>,
    ) -> Result<Response<dp::PreferredAllocationResponse>, Status> {
        Ok(Response::new(Default::default()))
    }
    async fn allocate(
        &self,
        req: Request<dp::AllocateRequest>,
    ) -> Result<Response<dp::AllocateResponse>, Status> {
        let container_responses = req
            .into_inner()
            .container_requests
            .into_iter()
            .map(|c| dp::ContainerAllocateResponse {
                envs: [("IDS".to_owned(), c.devices_ids.join(","))].into(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(dp::AllocateResponse {
            container_responses,
        }))
    }
    async fn pre_start_container(
        &self,
        _: Request<dp::PreStartContainerRequest>,
    ) -> Result<Response<dp::PreStartContainerResponse>, Status> {
        Ok(Response::new(dp::PreStartContainerResponse {}))
    }
}

#[tokio::test]
async fn device_plugin_stream_and_allocate_over_unix_socket() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.sock");
    // A stale file at the path must not stop the bind.
    std::fs::write(&path, b"stale").unwrap();
    let listener = unix::bind(&path).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .add_service(dp::device_plugin_server::DevicePluginServer::new(Plugin));
    let server = tokio::spawn(unix::serve(router, listener, path.clone(), async {
        let _ = stopped.await;
    }));

    let mut client = unix::device_plugin_client(&path).await.unwrap();
    let options = client
        .get_device_plugin_options(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(options.get_preferred_allocation_available);
    let mut stream = client
        .list_and_watch(dp::Empty {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.devices[0].id, "0000:3b:02.1");
    let alloc = client
        .allocate(dp::AllocateRequest {
            container_requests: vec![dp::ContainerAllocateRequest {
                devices_ids: vec!["a".into(), "b".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alloc.container_responses[0].envs["IDS"], "a,b");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn connecting_to_a_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let err = unix::connect(&path).await.unwrap_err();
    assert!(err.to_string().contains("absent.sock"), "{err}");
}
