//! The daemon's `/delegate` (multus-spec §3.16, §3.17): one network configuration added to,
//! checked in, deleted from or asked the STATUS of, for a running pod — the hot-plug of
//! multus-dynamic-networks-controller.
//!
//! The attachment is built, cached, run and rolled back by the same code as an attachment of the
//! pod's annotation ([`crate::resolve::single_delegate`], [`Engine::add_unrecorded`], [`Engine::record`],
//! [`Engine::del_delegates`], [`Engine::check_one`]). It is also appended to the container's
//! delegate list, so the runtime's DEL of the pod releases a hot-plugged interface that was never
//! unplugged (upstream leaks its IPAM allocation). The pod's network-status is not written: the
//! controller that asked writes it (docs/decisions.md, "/delegate and network-status").

use std::borrow::Cow;

use crate::resolve::{refuse_unsafe_types, selection_errors};
use k8s_openapi::api::core::v1::Pod;
use multus_crds::FieldPath;
use multus_crds::annotations::{NetworkSelection, RawJson};
use multus_crds::cni::{CniResult, CniVersion, NetworkConfigList};
use multus_crds::multus_config::MultusConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Instrument;

use super::{Call, Engine, print_result, refuse_taken_ifnames, require_uid};
use crate::cache::{CachedList, Delegate};
use crate::env::{Command, Invocation};
use crate::error::{Error, PodRef, Result};
use crate::k8s::Kube;
use crate::resolve::single_delegate;

/// `interfaceAttributes` of a `/delegate` request: what a network-selection element would ask
/// for the interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Merged into every plugin's `args.cni`.
    #[serde(default, rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<Map<String, Value>>,
}

impl InterfaceAttributes {
    /// The attributes as a selection element, checked by the rules the webhook applies to the
    /// pod's annotation (IP and MAC syntax).
    fn selection(&self) -> Result<NetworkSelection<'static>> {
        let selection = NetworkSelection {
            // Not used to find the network (the request carries its config); a valid name keeps
            // the element rules to the attributes themselves.
            name: Cow::Borrowed("delegate"),
            ips: self
                .ips
                .as_ref()
                .map(|ips| ips.iter().cloned().map(Cow::Owned).collect()),
            mac: self.mac.clone().map(Cow::Owned),
            cni_args: self.cni_args.as_ref().map(RawJson::from_object),
            ..NetworkSelection::default()
        };
        match selection_errors(&selection, &FieldPath::root().field("interfaceAttributes")) {
            Some(message) => Err(Error::ParseDelegate {
                what: "interfaceAttributes".into(),
                message,
            }),
            None => Ok(selection),
        }
    }
}

impl Engine {
    /// Serve one `/delegate` request: `inv.config` is the network's own configuration (a plugin
    /// config or a list), `config` the daemon's Multus configuration (`cniDir`, `binDir`, ...).
    /// Returns the ADD result in CNI 1.0.0, nothing for the other commands.
    pub async fn run_delegate(
        &self,
        inv: &Invocation,
        config: &MultusConfig,
        attributes: Option<&InterfaceAttributes>,
    ) -> Result<Option<String>> {
        let cache = self.cache_dir(config);
        let call = self.call(inv, config, &cache)?;
        let span = tracing::info_span!("delegate", command = %inv.command, container = %inv.container_id, ifname = %inv.ifname);
        async {
            // Two hot-plugs of one pod (or one and the runtime's DEL) edit the same delegate
            // list: one at a time (locks.rs).
            let _container = self.locks.lock_for(inv).await;
            let text = std::str::from_utf8(&inv.config).map_err(|e| {
                Error::ParseConfig(format!(
                    "the network config given to /delegate is not UTF-8: {e}"
                ))
            })?;
            let list = NetworkConfigList::parse_any(text).map_err(|e| Error::ParseDelegate {
                what: "given to /delegate".into(),
                message: e.message(),
            })?;
            match inv.command {
                Command::Add => {
                    let result = self.hotplug_add(&call, &list, attributes).await?;
                    print_result(&result, CniVersion::V1_0_0).map(Some)
                }
                Command::Del => self.hotplug_del(&call, &list).await.map(|()| None),
                Command::Check => self.hotplug_check(&call, &list).await.map(|()| None),
                Command::Status => {
                    // The same refusal of path-like types as every other command.
                    refuse_unsafe_types(&list)?;
                    self.runner(&call).status(&list).await.map(|()| None)
                }
                Command::Gc | Command::Version => Err(Error::HotplugContext {
                    reason: "/delegate serves ADD, DEL, CHECK and STATUS only",
                }),
            }
        }
        .instrument(span)
        .await
    }

    /// The pod `CNI_ARGS` names, which must exist (ADD semantics for ADD and DEL alike,
    /// multus-spec §3.17) and have the UID the request gives, if it gives one.
    async fn running_pod<'c>(&self, call: &'c Call<'_>) -> Result<(&'c Kube, Pod, PodRef)> {
        let mut pod_ref = call.inv.pod().ok_or(Error::HotplugContext {
            reason: "CNI_ARGS must name the pod (K8S_POD_NAMESPACE and K8S_POD_NAME)",
        })?;
        let kube = self.kube(call).await?.ok_or(Error::HotplugContext {
            reason: "the daemon has no Kubernetes client to look the pod up",
        })?;
        let pod = kube
            .get_pod(
                &pod_ref.namespace,
                &pod_ref.name,
                &pod_ref.uid,
                self.options.pod_lookup_patience,
            )
            .await?
            .ok_or_else(|| Error::PodNotFound {
                namespace: pod_ref.namespace.clone(),
                name: pod_ref.name.clone(),
            })?;
        require_uid(&pod, &pod_ref)?;
        if pod_ref.uid.is_empty() {
            pod_ref.uid = pod.metadata.uid.clone().unwrap_or_default();
        }
        Ok((kube, pod, pod_ref))
    }

    async fn hotplug_add(
        &self,
        call: &Call<'_>,
        list: &NetworkConfigList,
        attributes: Option<&InterfaceAttributes>,
    ) -> Result<CniResult> {
        let inv = call.inv;
        let (kube, pod, pod_ref) = self.running_pod(call).await?;
        // A pod being deleted may have had its sandbox's DEL already (this call waited behind it
        // on the container's lock): nothing would ever release a network added now.
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(Error::HotplugContext {
                reason: "the pod is being deleted: no network is added to it any more",
            });
        }
        let selection = attributes.map(InterfaceAttributes::selection).transpose()?;
        let ctx = self.context(call, Some(kube), Some(&pod), None);
        // Read once: the lock (locks.rs) keeps it current until it is written back below.
        let listed = cached_list(call)?;
        let d = single_delegate(
            &ctx,
            next_index(call, &listed),
            &inv.ifname,
            selection.as_ref(),
            list,
        )?;
        let fail = |source| {
            Error::attachment(
                Error::AddNetwork,
                &pod_ref,
                &d.status_name,
                &d.ifname,
                source,
            )
        };
        refuse_taken_ifnames(
            inv,
            std::slice::from_ref(&d),
            &pod_ref,
            self.options.netns_visit,
        )?;
        // Recorded before the plugin runs, as every attachment is: in the delegate list, or
        // without one by a result record written now (see edit_list).
        if let CachedList::Found(mut known) = listed {
            known.delegates.retain(|x| !x.is_same_attachment(&d));
            known.delegates.push(d.clone());
            call.cache.write_list(&known)?;
        } else {
            call.cache
                .write_result(&d, &inv.container_id, &inv.netns, None)?;
        }
        // A result whose record could not be written still gives the rollback's DEL its
        // prevResult.
        let (source, added) = match self.add_unrecorded(call, &d, None).await {
            Ok(result) => match self.record(call, &d, &result, Some((kube, &pod))).await {
                Ok(()) => return Ok(result),
                Err(source) => (source, Some(result)),
            },
            Err(source) => (source, None),
        };
        let known: Vec<(&Delegate, &CniResult)> = added.iter().map(|r| (&d, r)).collect();
        match self
            .del_delegates(call, std::slice::from_ref(&d), &known, &pod_ref)
            .await
        {
            Ok(()) => {
                if let Err(e) = edit_list(call, |ds| ds.retain(|x| !x.is_same_attachment(&d))) {
                    tracing::warn!(error = %e, "removing the rolled-back attachment from the delegate list");
                }
            }
            Err(e) => tracing::warn!(error = %e, "rollback left the attachment for DEL"),
        }
        Err(fail(source))
    }

    async fn hotplug_del(&self, call: &Call<'_>, list: &NetworkConfigList) -> Result<()> {
        let (kube, pod, pod_ref) = self.running_pod(call).await?;
        let d = self.cached_or_built(call, Some(kube), Some(&pod), list)?;
        // Unlike the runtime's DEL, a failure is returned: the pod lives on and the caller can
        // retry; the list entry stays so the pod's own DEL retries it too.
        self.del_delegates(call, std::slice::from_ref(&d), &[], &pod_ref)
            .await?;
        edit_list(call, |ds| ds.retain(|x| !x.is_same_attachment(&d)))
    }

    async fn hotplug_check(&self, call: &Call<'_>, list: &NetworkConfigList) -> Result<()> {
        let d = self.cached_or_built(call, None, None, list)?;
        self.check_one(call, &d, &call.inv.pod().unwrap_or_default())
            .await
    }

    /// The attachment exactly as it was added (its `CNI_ARGS`, IP and MAC requests) when its
    /// result record or the delegate list has it (an ADD cut short has no record yet), else as
    /// the request's config builds it.
    fn cached_or_built(
        &self,
        call: &Call<'_>,
        kube: Option<&Kube>,
        pod: Option<&Pod>,
        list: &NetworkConfigList,
    ) -> Result<Delegate> {
        let built = single_delegate(
            &self.context(call, kube, pod, None),
            1,
            &call.inv.ifname,
            None,
            list,
        )?;
        let recorded = call
            .cache
            .read_result(&built, &call.inv.container_id)
            .ok()
            .flatten()
            .and_then(|r| r.delegate);
        let listed = || match cached_list(call) {
            Ok(CachedList::Found(l)) => l
                .delegates
                .into_iter()
                .find(|x| x.is_same_attachment(&built)),
            _ => None,
        };
        Ok(recorded.or_else(listed).unwrap_or(built))
    }
}

/// The container's delegate list, when it has one.
fn cached_list(call: &Call<'_>) -> Result<CachedList> {
    call.cache.read_list(
        &call.inv.container_id,
        crate::cache::GO_MULTUS_RUNTIME_IFNAME,
        &call.inv.args,
    )
}

/// Edit the container's delegate list. Without a list (or with an unreadable one) nothing is
/// written: the attachment's result record is what a later DEL finds it by, and a list holding
/// only the hot-plugged attachment would hide the others from that DEL.
fn edit_list(call: &Call<'_>, edit: impl FnOnce(&mut Vec<Delegate>)) -> Result<()> {
    if let CachedList::Found(mut list) = cached_list(call)? {
        edit(&mut list.delegates);
        call.cache.write_list(&list)?;
    }
    Ok(())
}

/// A position after every attachment of the container, so DEL (highest first) releases the
/// hot-plugged ones before the pod's own, and never 0 (the cluster network's).
fn next_index(call: &Call<'_>, listed: &CachedList) -> usize {
    // A list holds every attachment, hot-plugged ones included; only without one are the
    // result records the account.
    let recorded;
    let known: &[Delegate] = match listed {
        CachedList::Found(list) => &list.delegates,
        _ => {
            recorded = call.cache.delegates_from_results(&call.inv.container_id);
            &recorded
        }
    };
    known.iter().map(|d| d.index + 1).max().unwrap_or(1).max(1)
}
