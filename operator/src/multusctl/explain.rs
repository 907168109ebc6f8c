//! `multusctl explain`: the attachments a pod will get, in order, with the interface names Multus
//! gives them — computed by the same plan function the CNI plugin runs on ADD and DEL.

use std::{collections::BTreeMap, fmt::Write as _, io::Write};

use multus_crds::{
    FieldPath, NetworkAttachmentDefinition,
    annotations::{NetworkSelection, parse_default_network, parse_networks},
    attachments::{AttachmentInputs, NetworkRef, plan_attachments},
    cni::NetworkConfigList,
    constants::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION},
    rules::pod::{NadIndex, validate_pod_networks_at},
};
use serde::Serialize;
use serde_json::Value;

use super::{
    ExplainArgs, Outcome, Output, input,
    objects::{self, Kind},
    report::Finding,
    validate::pod_rule_options,
};
use crate::Error;

#[derive(Debug, Default, Serialize)]
pub struct Explanation {
    pub pods: Vec<PodPlan>,
}

/// The plan for one pod or pod template.
#[derive(Debug, Serialize)]
pub struct PodPlan {
    pub file: String,
    pub index: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// False when the pod's network annotations are invalid or name unknown NADs; the plan is
    /// then empty and `errors` says why.
    pub valid: bool,
    pub errors: Vec<Finding>,
    pub attachments: Vec<PlannedAttachment>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAttachment {
    pub index: usize,
    pub interface: String,
    /// `namespace/name` of the NAD, or the configured cluster/default network.
    pub network: String,
    /// Plugin types of the network's chain, in order; empty when unknown (no NAD in the input, or
    /// a NAD that names a CNI file on the node).
    pub plugins: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_route: Vec<String>,
    /// Requested port mappings as `hostPort:containerPort/protocol`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

pub fn run(args: &ExplainArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let docs = input::load(&args.files)?;
    let values: Vec<(&input::Document, Value)> = docs
        .iter()
        .filter_map(|d| d.content.as_ref().ok().map(|v| (d, v)))
        .flat_map(|(d, v)| {
            objects::expand_lists(v.clone())
                .into_iter()
                .map(move |v| (d, v))
        })
        .collect();

    let index: NadIndex = values
        .iter()
        .filter(|(_, v)| objects::classify(v) == Kind::NetworkAttachmentDefinition)
        .filter_map(|(_, v)| {
            let mut nad = NetworkAttachmentDefinition::from_value(v.clone()).ok()?;
            nad.metadata
                .namespace
                .get_or_insert_with(|| "default".to_owned());
            Some(nad)
        })
        .collect();

    let mut explanation = Explanation::default();
    for (doc, value) in &values {
        let kind = objects::classify(value);
        let template = match &kind {
            Kind::Pod => FieldPath::root(),
            Kind::Workload { template, .. } => template.clone(),
            _ => continue,
        };
        let (name, namespace) = objects::name_and_namespace(value);
        let namespace = namespace.unwrap_or_else(|| "default".to_owned());
        explanation.pods.push(plan_pod(
            args,
            &index,
            PodSource {
                file: &doc.file,
                doc_index: doc.index,
                kind: kind.label(),
                namespace: &namespace,
                name: &name,
                annotations: &annotations_at(value, &template),
                metadata_path: FieldPath::new("metadata").under(&template),
            },
        ));
    }

    let text = match args.output {
        Output::Text => explanation.to_text(),
        Output::Json => {
            serde_json::to_string_pretty(&explanation).map_err(Error::EncodeReport)? + "\n"
        }
    };
    out.write_all(text.as_bytes()).map_err(Error::WriteOutput)?;
    Ok(if explanation.pods.iter().all(|p| p.valid) {
        Outcome::Valid
    } else {
        Outcome::Invalid
    })
}

struct PodSource<'a> {
    file: &'a str,
    doc_index: usize,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    annotations: &'a BTreeMap<String, String>,
    metadata_path: FieldPath,
}

fn annotations_at(value: &Value, template: &FieldPath) -> BTreeMap<String, String> {
    objects::at(value, template)
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn plan_pod(args: &ExplainArgs, index: &NadIndex, pod: PodSource<'_>) -> PodPlan {
    let mut opts = pod_rule_options(&args.cluster);
    opts.default_networks = args.default_networks.clone();
    opts.system_namespaces = args.system_namespaces.clone();
    let diags = validate_pod_networks_at(
        &pod.metadata_path,
        pod.namespace,
        pod.annotations,
        index,
        &opts,
    );
    let errors: Vec<Finding> = diags
        .errors()
        .map(|d| Finding {
            path: d.path.to_string(),
            message: d.message.clone(),
        })
        .collect();
    let mut plan = PodPlan {
        file: pod.file.to_owned(),
        index: pod.doc_index,
        kind: pod.kind.to_owned(),
        namespace: pod.namespace.to_owned(),
        name: pod.name.to_owned(),
        valid: errors.is_empty(),
        errors,
        attachments: Vec::new(),
    };
    if !plan.valid {
        return plan;
    }
    // The rules above passed, so both annotations parse.
    let selections: Vec<NetworkSelection> = pod
        .annotations
        .get(NETWORKS_ANNOTATION)
        .and_then(|v| parse_networks(v).ok())
        .unwrap_or_default();
    let override_selection = pod
        .annotations
        .get(DEFAULT_NETWORK_ANNOTATION)
        .and_then(|v| parse_default_network(v).ok());
    let inputs = AttachmentInputs {
        pod_namespace: pod.namespace,
        runtime_ifname: "eth0",
        cluster_network: &args.cluster_network,
        default_network_override: override_selection.as_ref(),
        default_networks: &args.default_networks,
        system_namespaces: &args.system_namespaces,
        multus_namespace: &args.cluster.multus_namespace,
        selections: &selections,
    };
    for attachment in plan_attachments(&inputs) {
        let nad = match attachment.network {
            NetworkRef::Nad { namespace, name } => index.get_nad(namespace, name),
            NetworkRef::Configured { value } => {
                index.get_nad(&args.cluster.multus_namespace, value)
            }
        };
        let selection = attachment.selection;
        plan.attachments.push(PlannedAttachment {
            index: attachment.index,
            interface: attachment.ifname.clone(),
            network: attachment.network.to_string(),
            plugins: nad.map(plugin_types).unwrap_or_default(),
            ips: selection.map(|s| owned(&s.ips)).unwrap_or_default(),
            mac: selection.and_then(|s| s.mac.as_deref().map(str::to_owned)),
            default_route: selection
                .map(|s| owned(&s.default_route))
                .unwrap_or_default(),
            port_mappings: selection
                .and_then(|s| s.port_mappings.as_ref())
                .map(|pms| {
                    pms.iter()
                        .map(|pm| {
                            format!(
                                "{}:{}/{}",
                                pm.host_port.unwrap_or_default(),
                                pm.container_port.unwrap_or_default(),
                                pm.protocol.as_deref().unwrap_or("tcp").to_ascii_lowercase()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            resource_name: nad.and_then(|n| n.resource_name()).map(str::to_owned),
        });
    }
    plan
}

/// The plugin types of a NAD's chain, in order.
fn plugin_types(nad: &NetworkAttachmentDefinition) -> Vec<String> {
    nad.config()
        .and_then(|c| NetworkConfigList::parse_any(c).ok())
        .map(|list| {
            list.plugins()
                .iter()
                .map(|p| p.plugin_type().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Explanation {
    /// A table per pod.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for pod in &self.pods {
            let _ = writeln!(
                out,
                "{} {}/{} ({}:{})",
                pod.kind, pod.namespace, pod.name, pod.file, pod.index
            );
            if !pod.valid {
                for e in &pod.errors {
                    let _ = writeln!(out, "  error: {}: {}", e.path, e.message);
                }
                out.push('\n');
                continue;
            }
            let rows: Vec<[String; 5]> = pod
                .attachments
                .iter()
                .map(|a| {
                    let mut requests = Vec::new();
                    if !a.ips.is_empty() {
                        requests.push(format!("ips={}", a.ips.join(",")));
                    }
                    if let Some(mac) = &a.mac {
                        requests.push(format!("mac={mac}"));
                    }
                    if !a.port_mappings.is_empty() {
                        requests.push(format!("ports={}", a.port_mappings.join(",")));
                    }
                    if !a.default_route.is_empty() {
                        requests.push(format!("default-route={}", a.default_route.join(",")));
                    }
                    [
                        a.interface.clone(),
                        a.network.clone(),
                        dash_if_empty(a.plugins.join(",")),
                        dash_if_empty(requests.join(" ")),
                        a.resource_name.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let header = ["INTERFACE", "NETWORK", "PLUGINS", "REQUESTS", "RESOURCE"];
            let widths: Vec<usize> = (0..5)
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].len())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
                let line: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                let _ = writeln!(out, "  {}", line.join("  ").trim_end());
            }
            out.push('\n');
        }
        out
    }
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

/// The strings of an optional list, owned (empty when absent).
fn owned(list: &Option<Vec<std::borrow::Cow<'_, str>>>) -> Vec<String> {
    list.iter().flatten().map(|s| s.to_string()).collect()
}
