//! SriovNetwork → NetworkAttachmentDefinition (sriov-spec §1.5). Same-namespace NADs carry an
//! ownerReference (garbage collection deletes them); NADs in another namespace are cleaned up
//! through the finalizer. A NAD changed or deleted by hand is restored; a NAD owned by another
//! network is never touched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::constants::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, SRIOV_LAST_NETWORK_NAMESPACE_ANNOTATION,
    SRIOV_NAD_FINALIZER, SRIOV_OWNER_REF_ANNOTATION, field_manager,
};
use multus_crds::sriov::SriovNetwork;
use multus_crds::sriov::network::{
    READY_CONDITION, REASON_NAD_INVALID, REASON_NAMESPACE_NOT_FOUND, REASON_NETWORK_READY,
};
use multus_crds::sriov::render::{owner_ref_value, render_nad};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{Context, ControllerError, status};

const NAME: &str = "sriovnetwork";
const NAD: &str = "NetworkAttachmentDefinition";

/// Run the SriovNetwork controller until shutdown.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let client = ctx.client.clone();
    let nets: Api<SriovNetwork> = Api::all(client.clone());
    let controller = Controller::new(nets, watcher::Config::default().any_semantic());
    let store = controller.store();
    let operator_ns = ctx.config.namespace.clone();
    let leadership = tokio_stream::wrappers::WatchStream::new(ctx.leadership())
        .filter_map(|leader| async move { leader.then_some(()) });
    controller
        .watches(
            Api::<NetworkAttachmentDefinition>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            move |nad| nad_owners(&nad, &operator_ns),
        )
        .watches(
            Api::<Namespace>::all(client),
            watcher::Config::default().any_semantic(),
            move |ns| {
                let name = ns.name_any();
                store
                    .state()
                    .iter()
                    .filter(|n| n.target_namespace() == Some(name.as_str()))
                    .map(|n| ObjectRef::from_obj(&**n))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(leadership)
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "sriovnetwork reconcile");
            }
        })
        .await;
    Ok(())
}

/// The networks a NAD may belong to: the one its owner-ref annotation names, else the same-named
/// network in its namespace and in the operator namespace.
fn nad_owners(
    nad: &NetworkAttachmentDefinition,
    operator_ns: &str,
) -> Vec<ObjectRef<SriovNetwork>> {
    let name = nad.name_any();
    if let Some(owner) = nad.annotations().get(SRIOV_OWNER_REF_ANNOTATION) {
        let mut parts = owner.rsplitn(3, '/');
        if let (Some(n), Some(ns), Some(kind)) = (parts.next(), parts.next(), parts.next())
            && kind.starts_with("SriovNetwork.")
        {
            return vec![ObjectRef::new(n).within(ns)];
        }
    }
    let mut refs = vec![ObjectRef::new(&name).within(operator_ns)];
    if let Some(ns) = nad.namespace().filter(|ns| ns != operator_ns) {
        refs.push(ObjectRef::new(&name).within(&ns));
    }
    refs
}

fn error_policy(_net: Arc<SriovNetwork>, error: &ControllerError, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    ctx.metrics.error(NAME, error);
    Action::requeue(Duration::from_secs(15))
}

#[instrument(skip_all, fields(namespace = net.namespace().unwrap_or_default(), name = net.name_any()))]
async fn reconcile(net: Arc<SriovNetwork>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if !ctx.is_leader() {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile(NAME);
    let name = net.name_any();
    let own_ns = net.namespace().unwrap_or_default();
    let nets: Api<SriovNetwork> = Api::namespaced(ctx.client.clone(), &own_ns);
    let owner = owner_ref_value(&own_ns, &name);

    if net.meta().deletion_timestamp.is_some() {
        if net.finalizers().iter().any(|f| f == SRIOV_NAD_FINALIZER) {
            for ns in nad_namespaces(&net) {
                delete_nad_if_ours(&ctx, &ns, &name, &owner).await?;
            }
            let rest: Vec<&String> = net
                .finalizers()
                .iter()
                .filter(|f| *f != SRIOV_NAD_FINALIZER)
                .collect();
            let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": net.resource_version()}});
            patch_network_metadata(&ctx, &nets, &name, &patch).await?;
        }
        return Ok(Action::await_change());
    }

    let (target, cross, rendered) =
        match desired_nad(&net, &ctx.config.namespace, &ctx.config.resource_prefix) {
            DesiredNad::Refused(msg) => {
                set_ready(&ctx, &net, false, REASON_NAD_INVALID, msg).await?;
                return Ok(Action::await_change());
            }
            DesiredNad::NoTarget => return Ok(Action::await_change()),
            DesiredNad::Nad { target, cross, nad } => (target, cross, nad),
        };

    // Metadata of the network itself: the finalizer (cross-namespace only) and the namespace the
    // NAD goes to. A NAD left in a previous target namespace is removed first.
    let last = net
        .annotations()
        .get(SRIOV_LAST_NETWORK_NAMESPACE_ANNOTATION)
        .cloned();
    if let Some(old) = last.as_deref().filter(|old| *old != target) {
        delete_nad_if_ours(&ctx, old, &name, &owner).await?;
    }
    let has_finalizer = net.finalizers().iter().any(|f| f == SRIOV_NAD_FINALIZER);
    if last.as_deref() != Some(target.as_str()) || (cross && !has_finalizer) {
        let mut finalizers: Vec<String> = net.finalizers().to_vec();
        if cross && !has_finalizer {
            finalizers.push(SRIOV_NAD_FINALIZER.to_owned());
        }
        let patch = json!({"metadata": {
            "annotations": {SRIOV_LAST_NETWORK_NAMESPACE_ANNOTATION: target},
            "finalizers": finalizers,
            "resourceVersion": net.resource_version(),
        }});
        patch_network_metadata(&ctx, &nets, &name, &patch).await?;
        // The patch triggers the next reconcile, which renders the NAD.
        return Ok(Action::await_change());
    }

    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let exists = namespaces
        .get_opt(&target)
        .await
        .map_err(|source| ControllerError::Get {
            kind: "Namespace",
            name: target.clone(),
            source,
        })?;
    if exists.is_none() {
        set_ready(
            &ctx,
            &net,
            false,
            REASON_NAMESPACE_NOT_FOUND,
            namespace_missing(&target),
        )
        .await?;
        return Ok(Action::await_change());
    }

    let desired = match rendered {
        Ok(nad) => nad,
        Err(msg) => {
            publish(&ctx, &net, EventType::Warning, "RenderFailed", msg.clone()).await;
            set_ready(&ctx, &net, false, REASON_NAD_INVALID, msg).await?;
            return Ok(Action::await_change());
        }
    };

    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(ctx.client.clone(), &target);
    let current = nads
        .get_opt(&name)
        .await
        .map_err(|source| ControllerError::Get {
            kind: NAD,
            name: format!("{target}/{name}"),
            source,
        })?;
    if let Some(msg) = current.as_ref().and_then(|cur| foreign_owner(cur, &owner)) {
        set_ready(&ctx, &net, false, REASON_NAD_INVALID, msg).await?;
        return Ok(Action::await_change());
    }
    if current.as_ref().is_none_or(|cur| !covers(cur, &desired)) {
        let mut body = serde_json::to_value(&desired).unwrap_or_default();
        body["apiVersion"] = json!("k8s.cni.cncf.io/v1");
        body["kind"] = json!(NAD);
        nads.patch(
            &name,
            &PatchParams::apply(field_manager::CONTROLLER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| ControllerError::Apply {
            kind: NAD,
            name: format!("{target}/{name}"),
            source,
        })?;
        ctx.metrics.write(NAD);
        let (reason, verb) = if current.is_some() {
            ("Updated", "updated")
        } else {
            ("Created", "created")
        };
        publish(
            &ctx,
            &net,
            EventType::Normal,
            reason,
            format!("NetworkAttachmentDefinition {target}/{name} {verb}"),
        )
        .await;
    }
    set_ready(&ctx, &net, true, REASON_NETWORK_READY, String::new()).await?;
    Ok(Action::requeue(ctx.config.resync))
}

/// What the controller wants for one SriovNetwork, decided without the API server: the reconciler
/// and the offline run (`multus-operator run`) both call it.
#[derive(Debug)]
pub enum DesiredNad {
    /// The network may not say where its NAD goes (`spec.networkNamespace` outside the operator
    /// namespace); the message is the `Ready=False` condition's.
    Refused(String),
    /// No namespace to write the NAD to.
    NoTarget,
    /// The NAD for `target` (`cross`: another namespace than the network's), or why it cannot be
    /// rendered.
    Nad {
        target: String,
        cross: bool,
        nad: Result<Box<NetworkAttachmentDefinition>, String>,
    },
}

/// The NAD `net` renders to (sriov-spec §1.5), with the controller's label and, in the same
/// namespace, the ownerReference.
pub fn desired_nad(net: &SriovNetwork, operator_ns: &str, resource_prefix: &str) -> DesiredNad {
    let own_ns = net.namespace().unwrap_or_default();
    if own_ns != operator_ns && !net.spec.network_namespace.is_empty() {
        return DesiredNad::Refused(format!(
            "spec.networkNamespace may only be set on networks in the operator namespace {operator_ns}"
        ));
    }
    let Some(target) = net.target_namespace().map(str::to_owned) else {
        return DesiredNad::NoTarget;
    };
    let cross = target != own_ns;
    let nad = render_nad(net, resource_prefix)
        .map(|mut desired| {
            desired.metadata.labels = Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )]));
            if !cross {
                desired.metadata.owner_references = net.controller_owner_ref(&()).map(|r| vec![r]);
            }
            Box::new(desired)
        })
        .map_err(|e| e.to_string());
    DesiredNad::Nad { target, cross, nad }
}

/// The `Ready=False` message of a network whose target namespace does not exist.
pub fn namespace_missing(target: &str) -> String {
    format!("namespace {target} does not exist; the NAD is written once it does")
}

/// Why an existing NAD must not be touched by the network whose owner value is `owner`: it
/// belongs to another SriovNetwork. `None`: ours, or nobody's.
pub fn foreign_owner(cur: &NetworkAttachmentDefinition, owner: &str) -> Option<String> {
    let other = cur
        .annotations()
        .get(SRIOV_OWNER_REF_ANNOTATION)
        .filter(|o| !o.is_empty() && *o != owner)?;
    Some(format!(
        "NetworkAttachmentDefinition {}/{} belongs to {other}; not touched",
        cur.namespace().unwrap_or_default(),
        cur.name_any()
    ))
}

/// Whether the stored NAD already says everything the desired one says.
fn covers(cur: &NetworkAttachmentDefinition, desired: &NetworkAttachmentDefinition) -> bool {
    let sub = |want: &Option<BTreeMap<String, String>>, have: &BTreeMap<String, String>| {
        want.iter().flatten().all(|(k, v)| have.get(k) == Some(v))
    };
    cur.spec.config == desired.spec.config
        && sub(&desired.metadata.annotations, cur.annotations())
        && sub(&desired.metadata.labels, cur.labels())
        && desired.metadata.owner_references.iter().flatten().all(|r| {
            cur.owner_references()
                .iter()
                .any(|c| c.uid == r.uid && c.controller == r.controller)
        })
}

fn nad_namespaces(net: &SriovNetwork) -> Vec<String> {
    let mut out: Vec<String> = net
        .target_namespace()
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(last) = net
        .annotations()
        .get(SRIOV_LAST_NETWORK_NAMESPACE_ANNOTATION)
        && !out.contains(last)
    {
        out.push(last.clone());
    }
    out
}

/// A merge patch of the SriovNetwork's own metadata (finalizers, the last-namespace annotation),
/// guarded by its resourceVersion, counted as a write.
async fn patch_network_metadata(
    ctx: &Context,
    nets: &Api<SriovNetwork>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), ControllerError> {
    nets.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| ControllerError::Apply {
            kind: "SriovNetwork",
            name: name.to_owned(),
            source,
        })?;
    ctx.metrics.write("SriovNetwork");
    Ok(())
}

async fn delete_nad_if_ours(
    ctx: &Context,
    ns: &str,
    name: &str,
    owner: &str,
) -> Result<(), ControllerError> {
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(ctx.client.clone(), ns);
    let Some(nad) = nads
        .get_opt(name)
        .await
        .map_err(|source| ControllerError::Get {
            kind: NAD,
            name: format!("{ns}/{name}"),
            source,
        })?
    else {
        return Ok(());
    };
    if nad
        .annotations()
        .get(SRIOV_OWNER_REF_ANNOTATION)
        .is_some_and(|o| o != owner)
    {
        return Ok(());
    }
    match nads.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.metrics.write(NAD);
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(ControllerError::Delete {
            kind: NAD,
            name: format!("{ns}/{name}"),
            source,
        }),
    }
}

async fn set_ready(
    ctx: &Context,
    net: &SriovNetwork,
    ready: bool,
    reason: &str,
    message: String,
) -> Result<(), ControllerError> {
    let current = net
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let desired = vec![status::condition(
        READY_CONDITION,
        ready,
        reason,
        message.clone(),
        net.meta().generation,
        current,
    )];
    if status::same(current, &desired) {
        return Ok(());
    }
    if !ready {
        publish(ctx, net, EventType::Warning, reason, message).await;
    }
    let name = net.name_any();
    let api: Api<SriovNetwork> =
        Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
    super::apply_conditions(ctx, &api, "SriovNetwork", name, &desired).await
}

async fn publish(ctx: &Context, net: &SriovNetwork, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &net.object_ref(&())).await {
        tracing::debug!(%error, "publishing an Event");
    }
}
