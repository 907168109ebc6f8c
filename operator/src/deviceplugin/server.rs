//! The `DevicePlugin` gRPC service of one pool.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use multus_kubelet::deviceplugin::v1beta1::{
    self as api, AllocateRequest, AllocateResponse, ContainerPreferredAllocationResponse,
    DevicePluginOptions, Empty, ListAndWatchResponse, NumaNode, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
    TopologyInfo,
};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use super::allocate::{UnknownDevice, allocate, preferred, rdma_device_name};
use super::devinfo;
use super::pool::Pool;
use crate::agent::sriov::sysfs::Sysfs;

/// Serves one pool; the pool is updated through the watch channel and every update is streamed
/// to kubelet by the open `ListAndWatch` calls.
#[derive(Clone)]
pub struct PoolService {
    pub prefix: String,
    pub pool: watch::Receiver<Pool>,
    pub sysfs: Sysfs,
    /// Where device-info files are written (see [`super::devinfo`]); `None`: not written.
    pub devinfo_dir: Option<std::path::PathBuf>,
}

/// The `ListAndWatch` message for a pool.
pub fn list_response(pool: &Pool) -> ListAndWatchResponse {
    ListAndWatchResponse {
        devices: pool
            .devices
            .iter()
            .map(|d| api::Device {
                id: d.pci.clone(),
                health: if d.healthy {
                    api::HEALTHY
                } else {
                    api::UNHEALTHY
                }
                .to_owned(),
                topology: d
                    .numa_node
                    .filter(|_| !pool.exclude_topology)
                    .map(|id| TopologyInfo {
                        nodes: vec![NumaNode { id }],
                    }),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl api::device_plugin_server::DevicePlugin for PoolService {
    type ListAndWatchStream =
        Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(options()))
    }

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        // The current list first, then one message per change; the stream ends when the pool
        // goes away (its sender is dropped), which tells kubelet the resource is gone.
        let mut last: Option<ListAndWatchResponse> = None;
        let stream = WatchStream::new(self.pool.clone()).filter_map(move |pool| {
            let next = list_response(&pool);
            let changed = last.as_ref() != Some(&next);
            last = Some(next.clone());
            futures::future::ready(changed.then_some(Ok(next)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let pool = self.pool.borrow().clone();
        let container_responses = request
            .into_inner()
            .container_requests
            .iter()
            .map(|c| ContainerPreferredAllocationResponse {
                device_i_ds: preferred(
                    &pool,
                    &c.available_device_i_ds,
                    &c.must_include_device_i_ds,
                    usize::try_from(c.allocation_size).unwrap_or(0),
                ),
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let pool = self.pool.borrow().clone();
        let request = request.into_inner();
        let container_responses = request
            .container_requests
            .iter()
            .map(|c| allocate(&pool, &self.prefix, &c.devices_ids, &self.sysfs))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|UnknownDevice(id)| {
                Status::invalid_argument(format!(
                    "device {id} is not in pool {}",
                    pool.resource_name
                ))
            })?;
        if let Some(dir) = &self.devinfo_dir {
            let ids = request
                .container_requests
                .iter()
                .flat_map(|c| &c.devices_ids);
            self.write_devinfo(dir, &pool, ids);
        }
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

impl PoolService {
    /// One device-info file per allocated VF. A failure is logged, not returned: the container
    /// still gets its VF (as with upstream's plugin), only without the file Multus would copy.
    fn write_devinfo<'a>(
        &self,
        dir: &std::path::Path,
        pool: &Pool,
        ids: impl Iterator<Item = &'a String>,
    ) {
        let resource = format!("{}/{}", self.prefix, pool.resource_name);
        for device in ids.filter_map(|id| pool.device(id)) {
            let rdma = pool
                .is_rdma
                .then(|| rdma_device_name(&self.sysfs, &device.pci))
                .flatten();
            if let Err(error) = devinfo::write(dir, &resource, pool, device, rdma) {
                tracing::warn!(%resource, device = %device.pci, %error, "device-info file");
            }
        }
    }
}

/// What every pool announces: preferred allocation (NUMA locality), no PreStartContainer.
pub fn options() -> DevicePluginOptions {
    DevicePluginOptions {
        pre_start_required: false,
        get_preferred_allocation_available: true,
    }
}
