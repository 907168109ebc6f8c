//! From the Multus configuration and the pod to the ordered list of [`Delegate`]s
//! (multus-spec §2.2, §3.2–§3.6): which networks, in which order, with which interface names,
//! configurations, `CNI_ARGS` and capability arguments.
//!
//! The order and the interface names come from [`plan_attachments`], the same function the
//! webhook and `multusctl` use, so what they predict is what the plugin does.

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use multus_crds::annotations::{NetworkSelection, RawJson, parse_default_network, parse_networks};
use multus_crds::attachments::{AttachmentInputs, AttachmentOrigin, NetworkRef, plan_attachments};
use multus_crds::cni::NetworkConfigList;
use multus_crds::cni::capabilities::declared_capabilities;
use multus_crds::cni::delegate::effective_delegate_config;
use multus_crds::constants::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use multus_crds::multus_config::MultusConfig;
use multus_crds::names::validate_plugin_type;
use multus_crds::rules::isolation::{GlobalNamespaces, check_namespace_isolation};
use multus_crds::rules::pod::validate_selection_fields;
use multus_crds::{FieldPath, NetworkAttachmentDefinition};
use serde_json::{Map, Value};

use crate::cache::Delegate;
use crate::devices::PodDevices;
use crate::env::{Invocation, format_cni_args};
use crate::error::{Error, PodRef, Result};
use crate::k8s::Kube;

/// The `runtimeConfig` keys Multus takes from the runtime (multus-spec §2.1).
const RUNTIME_KEYS: [&str; 7] = [
    "portMappings",
    "bandwidth",
    "ips",
    "mac",
    "infinibandGUID",
    "deviceID",
    "CNIDeviceInfoFile",
];

/// Device IDs a pod was given, per resource name, handed out in order (multus-spec §3.14).
pub trait DeviceSource: Send + Sync {
    /// The device IDs allocated to the pod for `resource`, sorted.
    fn device_ids(&self, namespace: &str, pod: &str, resource: &str) -> Vec<String>;
}

/// What resolution needs besides the config.
pub struct Context<'a> {
    pub config: &'a MultusConfig,
    pub invocation: &'a Invocation,
    pub kube: Option<&'a Kube>,
    pub pod: Option<&'a Pod>,
    /// A fixed device source (tests); without one, kubelet is asked at `pod_resources_socket`.
    pub devices: Option<&'a dyn DeviceSource>,
    /// Kubelet's PodResources socket, asked once per ADD, at the first NAD with a
    /// `resourceName` (a node without device networks never pays for the call).
    pub pod_resources_socket: Option<&'a Path>,
    /// Device-info directory (`/var/run/k8s.cni.cncf.io/devinfo`).
    pub devinfo_dir: &'a Path,
    /// `clusterNetwork` as a path, already read by this ADD's head start: taken instead of
    /// reading the file a second time.
    pub cluster_read: Option<&'a ReadNetwork>,
}

impl<'a> Context<'a> {
    /// A resolution from the files alone: no API, no pod, no device source.
    pub fn files_only(
        config: &'a MultusConfig,
        invocation: &'a Invocation,
        devinfo_dir: &'a Path,
    ) -> Self {
        Self {
            config,
            invocation,
            kube: None,
            pod: None,
            devices: None,
            pod_resources_socket: None,
            devinfo_dir,
            cluster_read: None,
        }
    }
}

/// A network configuration read from a path given in the Multus config.
#[derive(Debug)]
pub struct ReadNetwork {
    /// The path as the config gives it.
    value: String,
    list: NetworkConfigList,
}

/// The cluster network's first plugin as the configuration alone tells it
/// ([`presumed_cluster_plugin`]).
#[derive(Debug)]
pub(crate) struct Presumed {
    pub plugin: String,
    /// `clusterNetwork` given as a path, as read for the guess.
    pub read: Option<ReadNetwork>,
}

/// A network configuration and the name its status entry carries.
struct Network {
    list: NetworkConfigList,
    status_name: String,
    resource_name: Option<String>,
}

fn annotation<'p>(pod: Option<&'p Pod>, key: &str) -> Option<&'p str> {
    pod?.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

fn check_selection(annotation: &'static str, s: &NetworkSelection) -> Result<()> {
    match selection_errors(s, &FieldPath::root()) {
        Some(message) => Err(Error::ParseAnnotation {
            annotation,
            message,
        }),
        None => Ok(()),
    }
}

/// The element rules' errors for `s` (IP, MAC, interface syntax…), joined, if it has any.
pub(crate) fn selection_errors(s: &NetworkSelection, path: &FieldPath) -> Option<String> {
    let d = validate_selection_fields(s, path);
    d.has_errors().then(|| {
        d.errors()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Resolve every attachment of the pod (or, without a pod, of the configuration alone). Every
/// error names the pod (`[namespace/name/uid:network]` for one attachment's failure,
/// `[namespace/name/uid]` for the pod's annotations and default routes).
pub async fn resolve(ctx: &Context<'_>) -> Result<Vec<Delegate>> {
    let pod_ref = ctx.invocation.pod().unwrap_or_default();
    resolve_attachments(ctx, &pod_ref)
        .await
        .map_err(|e| match e {
            Error::ResolveNetwork(_) => e,
            other => other.in_pod(&pod_ref),
        })
}

async fn resolve_attachments(ctx: &Context<'_>, pod_ref: &PodRef) -> Result<Vec<Delegate>> {
    let config = ctx.config;
    let selections = match annotation(ctx.pod, NETWORKS_ANNOTATION) {
        Some(v) => parse_networks(v).map_err(|e| Error::ParseAnnotation {
            annotation: NETWORKS_ANNOTATION,
            message: e.to_string(),
        })?,
        None => Vec::new(),
    };
    for s in &selections {
        check_selection(NETWORKS_ANNOTATION, s)?;
    }
    let override_sel = annotation(ctx.pod, DEFAULT_NETWORK_ANNOTATION)
        .map(parse_default_network)
        .transpose()
        .map_err(|e| Error::ParseAnnotation {
            annotation: DEFAULT_NETWORK_ANNOTATION,
            message: e.to_string(),
        })?;
    if let Some(s) = &override_sel {
        check_selection(DEFAULT_NETWORK_ANNOTATION, s)?;
    }

    let statics = config.delegates();
    let static_mode = config.cluster_network.as_deref().is_none_or(str::is_empty);
    if static_mode && statics.is_empty() {
        return Err(Error::ParseConfig(
            multus_crds::multus_config::NO_DELEGATE_MESSAGE.into(),
        ));
    }
    // Static delegates take the places of the cluster network and `defaultNetworks` in the plan.
    let static_names: Vec<String> = (1..statics.len())
        .map(|i| format!("delegates[{i}]"))
        .collect();
    let pod_namespace = ctx
        .pod
        .and_then(|p| p.metadata.namespace.as_deref())
        .unwrap_or_default();
    let system_namespaces: Vec<String> = config
        .system_namespaces()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let inputs = AttachmentInputs {
        pod_namespace,
        runtime_ifname: &ctx.invocation.ifname,
        cluster_network: config.cluster_network.as_deref().unwrap_or_default(),
        default_network_override: override_sel.as_ref(),
        default_networks: if static_mode {
            &static_names
        } else {
            config.default_networks()
        },
        system_namespaces: if static_mode { &[] } else { &system_namespaces },
        multus_namespace: config.multus_namespace(),
        selections: &selections,
    };
    let plan = plan_attachments(&inputs);

    let globals = GlobalNamespaces::from_setting(config.global_namespaces.as_deref());
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut device_cursor: HashMap<String, usize> = HashMap::new();
    let mut fetched: Option<PodDevices> = None;
    let mut delegates = Vec::with_capacity(plan.len());
    for attachment in &plan {
        let reference = match (attachment.origin, attachment.network) {
            (AttachmentOrigin::ClusterNetwork, _) if static_mode => statics[0].name().to_owned(),
            (AttachmentOrigin::DefaultNetworks(i), _) if static_mode => {
                statics[i + 1].name().to_owned()
            }
            (_, network) => network.to_string(),
        };
        let wrap = |source| {
            Error::attachment(
                Error::ResolveNetwork,
                pod_ref,
                &reference,
                &attachment.ifname,
                source,
            )
        };
        let network = match (attachment.origin, attachment.network) {
            (AttachmentOrigin::ClusterNetwork, _) if static_mode => static_network(&statics[0]),
            (AttachmentOrigin::DefaultNetworks(i), _) if static_mode => {
                static_network(&statics[i + 1])
            }
            (_, NetworkRef::Configured { value }) => {
                configured_network(ctx, value).await.map_err(wrap)?
            }
            (origin, NetworkRef::Nad { namespace, name }) => {
                if config.namespace_isolation()
                    && matches!(origin, AttachmentOrigin::NetworksAnnotation(_))
                {
                    check_namespace_isolation(pod_namespace, namespace, name, &globals)
                        .map_err(|e| wrap(e.into()))?;
                }
                nad_network(ctx, namespace, name).await.map_err(wrap)?
            }
        };
        let label = network.status_name.clone();
        if let Some(first) = seen.insert(attachment.ifname.clone(), label.clone()) {
            return Err(Error::DuplicateInterface {
                ifname: attachment.ifname.clone(),
                first,
                second: label,
            });
        }
        if network.resource_name.is_some() && ctx.devices.is_none() && fetched.is_none() {
            fetched = fetch_pod_devices(ctx).await.map_err(wrap)?;
        }
        let devices = ctx
            .devices
            .or(fetched.as_ref().map(|d| d as &dyn DeviceSource));
        delegates.push(
            build_delegate(
                ctx,
                attachment.index,
                &attachment.ifname,
                attachment.selection,
                network,
                devices,
                &mut device_cursor,
            )
            .map_err(wrap)?,
        );
    }
    apply_default_routes(&mut delegates, &plan_gateways(&plan))?;
    if let Some(aux) = crate::subdir::auxiliary_chain(ctx, &delegates)? {
        delegates.push(aux);
    }
    Ok(delegates)
}

/// The pod's devices from kubelet; `None` without a socket or a named pod (multus-spec §3.14:
/// only pods with a name and namespace get deviceIDs).
async fn fetch_pod_devices(ctx: &Context<'_>) -> Result<Option<PodDevices>> {
    let (Some(socket), Some(pod)) = (ctx.pod_resources_socket, ctx.pod) else {
        return Ok(None);
    };
    let (Some(namespace), Some(name)) = (
        pod.metadata.namespace.as_deref().filter(|s| !s.is_empty()),
        pod.metadata.name.as_deref().filter(|s| !s.is_empty()),
    ) else {
        return Ok(None);
    };
    crate::devices::fetch(socket, namespace, name)
        .await
        .map(Some)
}

fn plan_gateways(plan: &[multus_crds::attachments::Attachment<'_>]) -> Vec<Option<Vec<String>>> {
    plan.iter()
        .map(|a| {
            a.selection.and_then(|s| {
                s.default_route
                    .as_ref()
                    .map(|gws| gws.iter().map(|gw| gw.to_string()).collect())
            })
        })
        .collect()
}

/// One attachment of a configuration given whole (the daemon's `/delegate`: a hot-plugged
/// network), built exactly as an attachment of the pod's annotation is: same `CNI_ARGS`, `ips` /
/// `mac` requests, `args.cni` and type checks. It is never the cluster network (`index` > 0), so
/// no runtime-provided value reaches it.
pub(crate) fn single_delegate(
    ctx: &Context<'_>,
    index: usize,
    ifname: &str,
    selection: Option<&NetworkSelection>,
    list: &NetworkConfigList,
) -> Result<Delegate> {
    build_delegate(
        ctx,
        index.max(1),
        ifname,
        selection,
        static_network(list),
        None,
        &mut HashMap::new(),
    )
}

fn static_network(list: &NetworkConfigList) -> Network {
    Network {
        status_name: list.name().to_owned(),
        list: list.clone(),
        resource_name: None,
    }
}

/// The `type` of the cluster network's first plugin as the configuration alone tells it,
/// without the API or the pod: from the first static delegate, or `clusterNetwork` as a path or
/// as the agent's copy of its NAD. It is a guess, to start that plugin before the pod is looked
/// up: the API may hold a newer NAD and the pod may name another default network (the engine
/// checks the guess against what [`resolve`] finds). `None` when one file does not tell: a
/// `confDir` scan for a file of that name (which also holds every rendered NAD) would cost
/// more than the guess saves.
pub(crate) fn presumed_cluster_plugin(config: &MultusConfig) -> Option<Presumed> {
    let first =
        |list: &NetworkConfigList| list.plugins().first().map(|p| p.plugin_type().to_owned());
    let presumed = |plugin| Presumed { plugin, read: None };
    match config.cluster_network.as_deref().filter(|v| !v.is_empty()) {
        None => config.delegates().first().and_then(first).map(presumed),
        Some(value) if value.contains('/') => {
            let list = network_at_path(value).ok()?;
            Some(Presumed {
                plugin: first(&list)?,
                read: Some(ReadNetwork {
                    value: value.to_owned(),
                    list,
                }),
            })
        }
        Some(value) => {
            let conf_dir = Path::new(config.conf_dir());
            let rendered = rendered_nad(conf_dir, config.multus_namespace(), value);
            rendered
                .ok()
                .flatten()
                .as_ref()
                .and_then(first)
                .map(presumed)
        }
    }
}

/// A `clusterNetwork` / `defaultNetworks` entry given as a path: a directory's first file, a
/// `.conflist` with the plugins of its directory's subdirectory, or a single file.
fn network_at_path(value: &str) -> Result<NetworkConfigList> {
    let path = Path::new(value);
    if path.is_dir() {
        let file = conf_files(path)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::FindNetworkFile {
                name: value.into(),
                dir: path.to_owned(),
            })?;
        load_file(&file)
    } else if path.extension().is_some_and(|e| e == "conflist") {
        // A `.conflist` named by path is loaded as libcni loads it: with the plugins of
        // `<its directory>/<name>/*.conf` (multus-spec §2.2).
        let list = load_file(path)?;
        crate::subdir::aggregate(list, path.parent().unwrap_or(Path::new("/")))
    } else {
        load_file(path)
    }
}

/// A `clusterNetwork` / `defaultNetworks` entry: a path, else a NAD in `multusNamespace`, else a
/// file in `confDir` with that CNI name (multus-spec §2.2).
async fn configured_network(ctx: &Context<'_>, value: &str) -> Result<Network> {
    if value.contains('/') {
        let list = match ctx.cluster_read.filter(|read| read.value == value) {
            Some(read) => read.list.clone(),
            None => network_at_path(value)?,
        };
        return Ok(Network {
            status_name: list.name().to_owned(),
            list,
            resource_name: None,
        });
    }
    let namespace = ctx.config.multus_namespace();
    if let Some(kube) = ctx.kube {
        match kube.get_nad(namespace, value).await {
            Ok(Some(nad)) => return nad_to_network(ctx, &nad, namespace, value),
            Ok(None) => return conf_dir_network(ctx, value),
            // Unreachable API: the agent's copy of the NAD, else the file of that name.
            Err(e) => return offline_network(ctx, namespace, value, e, FileNamed::ByCniName),
        }
    }
    // No API at all: the agent's copy of the NAD stands in for it, as with an unreachable API.
    if let Some(list) = rendered_nad(conf_dir(ctx), namespace, value)? {
        return Ok(Network {
            list,
            status_name: format!("{namespace}/{value}"),
            resource_name: None,
        });
    }
    conf_dir_network(ctx, value)
}

fn conf_dir<'a>(ctx: &Context<'a>) -> &'a Path {
    Path::new(ctx.config.conf_dir())
}

fn conf_dir_network(ctx: &Context<'_>, name: &str) -> Result<Network> {
    let list = find_in_conf_dir(conf_dir(ctx), name)?;
    Ok(Network {
        status_name: list.name().to_owned(),
        list,
        resource_name: None,
    })
}

/// Suffix of the files in which the node agent renders every NAD into `confDir`
/// (`operator/src/agent/cni/nadfiles.rs`): `<namespace>_<name>.nad.conflist`, the NAD's
/// delegate configuration in list form. `_` cannot appear in a namespace or NAD name.
pub const RENDERED_NAD_SUFFIX: &str = ".nad.conflist";

/// The file the node agent renders NAD `namespace/name` into, inside `conf_dir`.
pub fn rendered_nad_path(conf_dir: &Path, namespace: &str, name: &str) -> PathBuf {
    conf_dir.join(format!("{namespace}_{name}{RENDERED_NAD_SUFFIX}"))
}

/// The agent's rendering of NAD `namespace/name`, when it exists. The names come from the
/// pod's annotation: a name that could leave `confDir` is refused (names of NADs never can).
fn rendered_nad(conf_dir: &Path, namespace: &str, name: &str) -> Result<Option<NetworkConfigList>> {
    for part in [namespace, name] {
        multus_crds::names::validate_cni_name(part).map_err(|reason| Error::UnsafeName {
            name: "network name",
            value: format!("{namespace}/{name}"),
            reason,
        })?;
    }
    let path = rendered_nad_path(conf_dir, namespace, name);
    if !path.is_file() {
        return Ok(None);
    }
    load_file(&path).map(Some)
}

/// How network-status names a network that an unreachable API left to a plain `confDir` file.
#[derive(Clone, Copy, Debug)]
enum FileNamed {
    /// As the pod's annotation asked for it, `namespace/name`.
    ByReference,
    /// By the file's own CNI name, as when the API answers that there is no such NAD
    /// (`clusterNetwork`, `defaultNetworks`). A NAD without config, which names such a file,
    /// is named `namespace/name` while the API answers: offline the two cannot be told apart,
    /// and the agent renders every NAD with a config, so a file found here is most likely not a
    /// NAD's.
    ByCniName,
}

/// NAD `namespace/name` while the API server cannot be asked (`api` says why): the agent's
/// rendering of it, else a `confDir` file whose CNI name is the NAD's name (Multus' fallback).
/// Neither → the API error, with the places looked at.
fn offline_network(
    ctx: &Context<'_>,
    namespace: &str,
    name: &str,
    api: Error,
    file_named: FileNamed,
) -> Result<Network> {
    let status_name = format!("{namespace}/{name}");
    let dir = conf_dir(ctx);
    if let Some(list) = rendered_nad(dir, namespace, name)? {
        tracing::warn!(network = %status_name, error = %api, "API server unreachable: using the node's rendered copy of the NAD");
        return Ok(Network {
            list,
            status_name,
            resource_name: None,
        });
    }
    match find_in_conf_dir(dir, name) {
        Ok(list) => {
            tracing::warn!(network = %status_name, error = %api, "API server unreachable: using the confDir file of that name");
            let status_name = match file_named {
                FileNamed::ByReference => status_name,
                FileNamed::ByCniName => list.name().to_owned(),
            };
            Ok(Network {
                list,
                status_name,
                resource_name: None,
            })
        }
        Err(_) => Err(Error::NetworkOffline {
            namespace: namespace.into(),
            name: name.into(),
            file: rendered_nad_path(dir, namespace, name),
            api: Box::new(api),
        }),
    }
}

async fn nad_network(ctx: &Context<'_>, namespace: &str, name: &str) -> Result<Network> {
    let Some(kube) = ctx.kube else {
        return Err(Error::NetworkNotFound {
            namespace: namespace.into(),
            name: name.into(),
        });
    };
    match kube.get_nad(namespace, name).await {
        Ok(Some(nad)) => nad_to_network(ctx, &nad, namespace, name),
        Ok(None) => {
            if let Some(pod) = ctx.pod {
                let msg = format!(
                    "cannot find a network-attachment-definition ({name}) in namespace ({namespace})"
                );
                kube.event(pod, true, "NoNetworkFound", &msg).await;
            }
            Err(Error::NetworkNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        Err(e) => offline_network(ctx, namespace, name, e, FileNamed::ByReference),
    }
}

fn nad_to_network(
    ctx: &Context<'_>,
    nad: &NetworkAttachmentDefinition,
    namespace: &str,
    name: &str,
) -> Result<Network> {
    let list = match effective_delegate_config(nad) {
        Some(parsed) => parsed.map_err(|e| Error::ParseDelegate {
            what: format!("of NetworkAttachmentDefinition {namespace}/{name}"),
            message: e.message(),
        })?,
        None => find_in_conf_dir(conf_dir(ctx), name)?,
    };
    Ok(Network {
        list,
        status_name: format!("{namespace}/{name}"),
        resource_name: nad.resource_name().map(str::to_owned),
    })
}

/// `.conf`, `.json` and `.conflist` files of `dir`, in lexical order, but the agent's renderings
/// of NADs: those are found only by their exact namespace and name ([`rendered_nad`]). Found by
/// CNI name they would let any namespace's NAD stand in for a network of another namespace (or
/// for the cluster network), past namespace isolation.
fn conf_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = files_with_extension(dir, &["conf", "json", "conflist"]).map_err(|e| {
        Error::ReadNetworkFile {
            path: dir.to_owned(),
            message: e.to_string(),
        }
    })?;
    files.retain(|f| {
        !f.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(RENDERED_NAD_SUFFIX))
    });
    Ok(files)
}

/// The files of `dir` whose extension is one of `extensions`, in lexical order (libcni's order).
pub(crate) fn files_with_extension(
    dir: &Path,
    extensions: &[&str],
) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e));
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn load_file(path: &Path) -> Result<NetworkConfigList> {
    let err = |message: String| Error::ReadNetworkFile {
        path: path.to_owned(),
        message,
    };
    let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    if path.extension().is_some_and(|e| e == "conflist") {
        NetworkConfigList::parse(&text)
    } else {
        NetworkConfigList::parse_any(&text)
    }
    .map_err(|e| err(e.message()))
}

/// The first file of `dir` whose CNI `name` is `name` (lexical order, as Multus reads).
pub fn find_in_conf_dir(dir: &Path, name: &str) -> Result<NetworkConfigList> {
    let not_found = || Error::FindNetworkFile {
        name: name.into(),
        dir: dir.to_owned(),
    };
    for file in conf_files(dir).map_err(|_| not_found())? {
        if let Ok(list) = load_file(&file)
            && list.name() == name
        {
            return Ok(list);
        }
    }
    Err(not_found())
}

/// Insert `key: value` into every plugin of a list, or at the top of a single config.
fn set_in_plugins(config: &mut Value, f: &dyn Fn(&mut Map<String, Value>)) {
    if let Some(Value::Array(plugins)) = config.get_mut("plugins") {
        for p in plugins.iter_mut().filter_map(Value::as_object_mut) {
            f(p);
        }
    } else if let Some(top) = config.as_object_mut() {
        f(top);
    }
}

fn build_delegate(
    ctx: &Context<'_>,
    index: usize,
    ifname: &str,
    selection: Option<&NetworkSelection>,
    network: Network,
    devices: Option<&dyn DeviceSource>,
    device_cursor: &mut HashMap<String, usize>,
) -> Result<Delegate> {
    refuse_unsafe_types(&network.list)?;
    let mut config = network.list.to_value();
    let declared = declared_capabilities(&config);
    // Runtime-provided values go to the cluster network only (multi-net-spec §7.5).
    let mut caps: Map<String, Value> = if index == 0 {
        ctx.config
            .runtime_config
            .iter()
            .flatten()
            .filter(|(k, _)| RUNTIME_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        Map::new()
    };
    let mut extra_args: Vec<(String, String)> = Vec::new();
    if let Some(s) = selection {
        for cap in s.requested_capabilities().iter() {
            if !declared.contains(cap.cni_key()) {
                return Err(Error::UndeclaredCapability {
                    network: network.status_name.clone(),
                    capability: cap.cni_key().into(),
                });
            }
        }
        if let Some(ips) = s.ips.as_ref().filter(|v| !v.is_empty()) {
            caps.insert("ips".into(), serde_json::json!(ips));
            extra_args.push(("IP".into(), ips.join(",")));
        }
        if let Some(mac) = s.mac() {
            caps.insert("mac".into(), Value::String(mac.into()));
            extra_args.push(("MAC".into(), mac.into()));
        }
        if let Some(pm) = s.port_mappings.as_ref().filter(|v| !v.is_empty()) {
            caps.insert(
                "portMappings".into(),
                serde_json::to_value(pm).unwrap_or(Value::Null),
            );
        }
        if let Some(bw) = s.bandwidth.as_ref().filter(|b| b.shapes()) {
            caps.insert(
                "bandwidth".into(),
                serde_json::to_value(bw).unwrap_or(Value::Null),
            );
        }
        if let Some(guid) = s.infiniband_guid() {
            caps.insert("infinibandGUID".into(), Value::String(guid.into()));
        }
        // Kept as text by the parse (see `RawJson`); read here, its only reader.
        if let Some(args) = s
            .cni_args
            .as_ref()
            .and_then(RawJson::to_object)
            .filter(|a| !a.is_empty())
        {
            set_in_plugins(&mut config, &|plugin| {
                let args_obj = plugin
                    .entry("args")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !args_obj.is_object() {
                    *args_obj = Value::Object(Map::new());
                }
                if let Some(obj) = args_obj.as_object_mut() {
                    let cni = obj
                        .entry("cni")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !cni.is_object() {
                        *cni = Value::Object(Map::new());
                    }
                    if let Some(cni) = cni.as_object_mut() {
                        cni.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            });
        }
    }

    // deviceID: the next device of the NAD's resource, else the one the element names.
    let mut device_id = None;
    if let (Some(resource), Some(devices), Some(pod)) = (&network.resource_name, devices, ctx.pod) {
        let ids = devices.device_ids(
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
            resource,
        );
        let cursor = device_cursor.entry(resource.clone()).or_default();
        device_id = ids.get(*cursor).cloned();
        *cursor += 1;
    }
    let from_resource = device_id.is_some();
    if device_id.is_none() {
        device_id = selection
            .and_then(NetworkSelection::device_id)
            .map(str::to_owned);
    }
    let mut devinfo_file = None;
    if let Some(id) = &device_id {
        caps.insert("deviceID".into(), Value::String(id.clone()));
        if from_resource {
            let id_value = Value::String(id.clone());
            set_in_plugins(&mut config, &|plugin| {
                plugin.insert("deviceID".into(), id_value.clone());
                plugin.insert("pciBusID".into(), id_value.clone());
            });
            let file_name = format!(
                "{}-{}_{ifname}",
                network.list.name(),
                ctx.invocation.container_id
            )
            .replace('/', "-");
            let path = ctx.devinfo_dir.join("cni").join(file_name);
            caps.insert(
                "CNIDeviceInfoFile".into(),
                Value::String(path.to_string_lossy().into_owned()),
            );
            devinfo_file = Some(path);
        }
    }

    Ok(Delegate {
        index,
        status_name: network.status_name,
        ifname: ifname.to_owned(),
        config,
        cni_args: delegate_cni_args(ctx.invocation, &extra_args),
        capability_args: caps,
        filter_v4: false,
        filter_v6: false,
        gateways: None,
        device_id,
        resource_name: network.resource_name,
        devinfo_file,
        carried: false,
    })
}

/// Every plugin `type` and IPAM `type` of a chain must be a bare binary name. Checked for all
/// attachments before any delegate runs, so a bad NAD cannot half-attach a pod.
pub(crate) fn refuse_unsafe_types(list: &NetworkConfigList) -> Result<()> {
    for plugin in list.plugins() {
        for t in std::iter::once(plugin.plugin_type()).chain(plugin.ipam_type()) {
            validate_plugin_type(t).map_err(|reason| Error::UnsafeName {
                name: "plugin type",
                value: t.to_owned(),
                reason: format!("network {:?}: {reason}", list.name()),
            })?;
        }
    }
    Ok(())
}

/// `CNI_ARGS` for a delegate: the pod keys (in Multus' order), the runtime's other keys, then
/// `MAC=` / `IP=` requests.
/// A delegate's `CNI_ARGS`: the runtime's, with the pod's names, then `extra` (the IP and MAC a
/// selection asks for).
pub(crate) fn delegate_cni_args(inv: &Invocation, extra: &[(String, String)]) -> String {
    let runtime = inv.cni_args();
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(runtime.len() + 6);
    if let Some(pod) = inv.pod() {
        pairs.push(("IgnoreUnknown".into(), "true".into()));
        pairs.push(("K8S_POD_NAMESPACE".into(), pod.namespace));
        pairs.push(("K8S_POD_NAME".into(), pod.name));
        pairs.push((
            "K8S_POD_INFRA_CONTAINER_ID".into(),
            inv.container_id.clone(),
        ));
        pairs.push(("K8S_POD_UID".into(), pod.uid));
    }
    for (k, v) in runtime {
        if let Some(existing) = pairs.iter_mut().find(|(ek, _)| *ek == k) {
            if existing.1.is_empty() {
                existing.1 = v;
            }
        } else {
            pairs.push((k, v));
        }
    }
    for (k, v) in extra {
        pairs.retain(|(ek, _)| ek != k);
        pairs.push((k.clone(), v.clone()));
    }
    format_cni_args(&pairs)
}

/// Validate `default-route` requests and mark which attachments lose their default routes
/// (multus-spec §3.6).
fn apply_default_routes(
    delegates: &mut [Delegate],
    requests: &[Option<Vec<String>>],
) -> Result<()> {
    if requests.iter().all(Option::is_none) {
        return Ok(());
    }
    let mut parsed: Vec<Option<Vec<IpAddr>>> = Vec::with_capacity(requests.len());
    let (mut v4, mut v6) = (0, 0);
    for r in requests {
        let Some(list) = r else {
            parsed.push(None);
            continue;
        };
        let mut ips = Vec::with_capacity(list.len());
        for g in list {
            let ip: IpAddr = g
                .parse()
                .map_err(|_| Error::DefaultRoute(format!("{g:?} is not an IP address")))?;
            if ip.is_ipv4() {
                v4 += 1;
            } else {
                v6 += 1;
            }
            ips.push(ip);
        }
        parsed.push(Some(ips));
    }
    if v4 > 1 || v6 > 1 {
        return Err(Error::DefaultRoute(format!(
            "{v4} IPv4 and {v6} IPv6 gateways requested; at most one of each"
        )));
    }
    for (d, gws) in delegates.iter_mut().zip(parsed) {
        match &gws {
            // An empty list keeps the plugin's own default route.
            Some(list) if list.is_empty() => {}
            // Its requested gateways replace that family's default routes (engine.rs); a family
            // it did not ask for loses its default routes only to another attachment's request.
            Some(list) => {
                d.filter_v4 = v4 > 0 && !list.iter().any(IpAddr::is_ipv4);
                d.filter_v6 = v6 > 0 && !list.iter().any(IpAddr::is_ipv6);
            }
            None => {
                d.filter_v4 = v4 > 0;
                d.filter_v6 = v6 > 0;
            }
        }
        d.gateways = gws;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegates(n: usize) -> Vec<Delegate> {
        (0..n)
            .map(|i| Delegate::example(i, &format!("n{i}"), &format!("net{i}")))
            .collect()
    }

    fn filters(d: &[Delegate]) -> Vec<(bool, bool)> {
        d.iter().map(|d| (d.filter_v4, d.filter_v6)).collect()
    }

    /// docs/decisions.md, "Default-route filtering": a family's default routes go only where
    /// some attachment asked for a gateway of that family — the requesting network's own
    /// other family included.
    #[test]
    fn a_family_loses_its_default_routes_only_to_a_request_of_that_family() {
        let mut d = delegates(2);
        let v4_only = [None, Some(vec!["10.1.0.1".to_owned()])];
        apply_default_routes(&mut d, &v4_only).unwrap();
        assert_eq!(filters(&d), [(true, false), (false, false)]);
        assert_eq!(d[1].gateways, Some(vec!["10.1.0.1".parse().unwrap()]));

        let mut d = delegates(3);
        let split = [
            None,
            Some(vec!["10.1.0.1".to_owned()]),
            Some(vec!["fd00::1".to_owned()]),
        ];
        apply_default_routes(&mut d, &split).unwrap();
        assert_eq!(filters(&d), [(true, true), (false, true), (true, false)]);

        let mut d = delegates(2);
        let keep_own = [None, Some(Vec::new())];
        apply_default_routes(&mut d, &keep_own).unwrap();
        assert_eq!(filters(&d), [(false, false), (false, false)]);
    }

    #[test]
    fn refuses_two_gateways_of_a_family_and_what_is_not_an_address() {
        let mut d = delegates(3);
        let two = [
            None,
            Some(vec!["10.1.0.1".to_owned()]),
            Some(vec!["10.2.0.1".to_owned()]),
        ];
        assert!(apply_default_routes(&mut d, &two).is_err());
        let mut d = delegates(2);
        let bad = [None, Some(vec!["gateway".to_owned()])];
        let e = apply_default_routes(&mut d, &bad).unwrap_err();
        assert!(
            e.to_string().contains("\"gateway\" is not an IP address"),
            "{e}"
        );
    }

    /// A `clusterNetwork` path read by the head start (to presume its plugin) is resolved from
    /// that reading, not read again: here the file is gone by the time of the resolution.
    #[test]
    fn the_cluster_network_read_by_the_head_start_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("10-k8s.conflist");
        std::fs::write(
            &file,
            r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
        )
        .unwrap();
        let config = MultusConfig::from_value(&serde_json::json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "clusterNetwork": file, "confDir": dir.path(),
        }))
        .unwrap();
        let presumed = presumed_cluster_plugin(&config).unwrap();
        assert_eq!(presumed.plugin, "bridge");
        let read = presumed.read.expect("read from the path");
        std::fs::remove_file(&file).unwrap();

        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
        ];
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let inv = Invocation::from_env(get, Vec::new()).unwrap();
        let context = |cluster_read| Context {
            cluster_read,
            ..Context::files_only(&config, &inv, dir.path())
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let delegates = rt.block_on(resolve(&context(Some(&read)))).unwrap();
        let types: Vec<&str> = delegates[0].config["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["bridge", "tuning"]);
        // Without it, the file is read, and is gone.
        assert!(rt.block_on(resolve(&context(None))).is_err());
    }
}
