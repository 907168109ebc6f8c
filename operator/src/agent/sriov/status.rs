//! The NodeState status the agent publishes: discovered NICs, sync status and last error,
//! written with server-side apply (field manager `multus-agent`) only when it changed.

use kube::Api;
use kube::api::{Patch, PatchParams};
use multus_crds::constants::field_manager;
use multus_crds::sriov::{
    Interface, SriovNetworkNodeState, SriovNetworkNodeStateStatus, SyncStatus,
};

use super::discovery::Nic;
use super::error::SriovError;

/// The status for `nics`, marking PFs the spec declares externally managed.
pub fn status_of(
    nics: &[Nic],
    spec: &[Interface],
    sync_status: Option<SyncStatus>,
    last_sync_error: &str,
) -> SriovNetworkNodeStateStatus {
    let interfaces = nics
        .iter()
        .map(|n| {
            let mut s = n.status.clone();
            s.externally_managed = spec
                .iter()
                .any(|i| i.pci_address == s.pci_address && i.externally_managed);
            s
        })
        .collect();
    SriovNetworkNodeStateStatus {
        interfaces,
        sync_status,
        last_sync_error: last_sync_error.to_owned(),
        ..Default::default()
    }
}

/// Publishes a NodeState's status, skipping writes of an unchanged status.
pub struct StatusPublisher {
    api: Api<SriovNetworkNodeState>,
    name: String,
    last: Option<SriovNetworkNodeStateStatus>,
}

impl StatusPublisher {
    pub fn new(api: Api<SriovNetworkNodeState>, name: impl Into<String>) -> Self {
        Self {
            api,
            name: name.into(),
            last: None,
        }
    }

    /// Apply `status`; returns whether a write happened.
    pub async fn publish(
        &mut self,
        status: SriovNetworkNodeStateStatus,
    ) -> Result<bool, SriovError> {
        if self.last.as_ref() == Some(&status) {
            return Ok(false);
        }
        let mut body = serde_json::json!({
            "apiVersion": "sriovnetwork.openshift.io/v1",
            "kind": "SriovNetworkNodeState",
            "metadata": {"name": self.name},
            "status": status,
        });
        // Always sent, even empty: clearing the error after a successful retry must not depend
        // on server-side apply removing a field we stopped sending (which needs the server to
        // have recorded our ownership of it, and the fake API server keeps no managedFields on
        // status writes).
        body["status"]["lastSyncError"] = serde_json::Value::from(status.last_sync_error.clone());
        let params = PatchParams::apply(field_manager::AGENT).force();
        self.api
            .patch_status(&self.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|source| SriovError::PatchNodeStateStatus {
                name: self.name.clone(),
                source,
            })?;
        self.last = Some(status);
        Ok(true)
    }

    /// Forget what was published (after an error, so the next publish writes again).
    pub fn forget(&mut self) {
        self.last = None;
    }
}
