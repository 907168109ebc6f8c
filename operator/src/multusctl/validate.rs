//! `multusctl validate`: every object of the input through the same rule functions the webhook
//! and the controllers call, then every network reference against the NADs found in the input.

use std::{collections::BTreeMap, io::Write};

use multus_crds::{
    Diagnostics, FieldPath, NetworkAttachmentDefinition,
    multus_config::MultusConfig,
    rules::{
        self,
        isolation::GlobalNamespaces,
        pod::{NadIndex, PodRuleOptions},
    },
    sriov::{SriovNetwork, SriovNetworkNodePolicy, SriovNetworkNodeState, nics::SupportedNics},
};
use serde_json::Value;

use super::{
    ClusterArgs, Outcome, Output, ValidateArgs,
    input::{self, Document},
    objects::{self, Kind},
    report::{ObjectReport, Report},
};
use crate::Error;

/// The kind reported for a document that is not valid YAML/JSON.
pub const UNPARSABLE_KIND: &str = "Unparsable";

/// One recognised object of the input, ready for the rules.
struct Item<'a> {
    doc: &'a Document,
    value: Value,
    kind: Kind,
    name: String,
    namespace: String,
}

/// Settings for one validation run.
pub struct Settings {
    pub pod_rules: PodRuleOptions,
    /// `None`: upstream's DEV_MODE, no supported-NIC checks (never from the command line).
    pub nics: Option<SupportedNics>,
    pub operator_namespace: String,
}

impl Settings {
    pub fn from_args(args: &ValidateArgs) -> Result<Self, Error> {
        let nics = match &args.supported_nics {
            None => Some(SupportedNics::builtin()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::ReadInput {
                    path: path.clone(),
                    source,
                })?;
                Some(
                    SupportedNics::parse(&text).map_err(|e| Error::SupportedNics {
                        path: path.clone(),
                        message: e.to_string(),
                    })?,
                )
            }
        };
        let mut pod_rules = pod_rule_options(&args.cluster);
        pod_rules.unknown_networks_are_errors = !args.ignore_missing_networks;
        Ok(Self {
            pod_rules,
            nics,
            operator_namespace: args.operator_namespace.clone(),
        })
    }
}

/// The pod-rule options a cluster's Multus settings imply.
pub fn pod_rule_options(cluster: &ClusterArgs) -> PodRuleOptions {
    PodRuleOptions {
        namespace_isolation: cluster.namespace_isolation,
        global_namespaces: GlobalNamespaces::from_setting(Some(
            &cluster.global_namespaces.join(","),
        )),
        multus_namespace: cluster.multus_namespace.clone(),
        ..PodRuleOptions::default()
    }
}

pub fn run(args: &ValidateArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let settings = Settings::from_args(args)?;
    let docs = input::load(&args.files)?;
    let report = validate_documents(&docs, &settings);
    let text = match args.output {
        Output::Text => report.to_text(),
        Output::Json => report.to_json().map_err(Error::EncodeReport)? + "\n",
    };
    out.write_all(text.as_bytes()).map_err(Error::WriteOutput)?;
    Ok(if report.all_valid() {
        Outcome::Valid
    } else {
        Outcome::Invalid
    })
}

/// Validate parsed documents. Pure apart from its inputs: the tests call it directly.
pub fn validate_documents(docs: &[Document], settings: &Settings) -> Report {
    let mut report = Report::default();
    let mut items = Vec::new();
    for doc in docs {
        match &doc.content {
            Err(e) => {
                let mut d = Diagnostics::new();
                d.error(FieldPath::root(), format!("line {}: {}", e.line, e.message));
                report.objects.push(ObjectReport::new(
                    &doc.file,
                    doc.index,
                    e.line,
                    UNPARSABLE_KIND,
                    "",
                    "",
                    d,
                ));
            }
            Ok(value) => {
                for value in objects::expand_lists(value.clone()) {
                    let kind = objects::classify(&value);
                    let (name, namespace) = objects::name_and_namespace(&value);
                    items.push(Item {
                        doc,
                        value,
                        kind,
                        name,
                        namespace: namespace.unwrap_or_else(|| "default".to_owned()),
                    });
                }
            }
        }
    }

    // NADs first: pods are checked against every NAD of the input, wherever it appears.
    let mut index = NadIndex::default();
    let mut nads: BTreeMap<usize, Result<NetworkAttachmentDefinition, Diagnostics>> =
        BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.kind == Kind::NetworkAttachmentDefinition {
            let parsed = typed::<NetworkAttachmentDefinition>(&item.value, true);
            if let Ok(nad) = &parsed {
                let mut nad = nad.clone();
                nad.metadata.namespace = Some(item.namespace.clone());
                index.insert(nad);
            }
            nads.insert(i, parsed);
        }
    }
    // The NADs the controller will render from valid SriovNetworks exist for pods too, as they
    // do once the network is applied to a cluster.
    for item in &items {
        if item.kind != Kind::SriovNetwork {
            continue;
        }
        let Ok(mut net) = typed::<SriovNetwork>(&item.value, false) else {
            continue;
        };
        net.metadata.namespace = Some(item.namespace.clone());
        if rules::sriov::validate_network(&net, &settings.operator_namespace).has_errors() {
            continue;
        }
        if let Ok(nad) = multus_crds::sriov::render::render_nad(
            &net,
            multus_crds::constants::DEFAULT_RESOURCE_PREFIX,
        ) {
            index.insert(nad);
        }
    }

    for (i, item) in items.iter().enumerate() {
        let diags = match &item.kind {
            Kind::Other(_) => continue,
            Kind::NetworkAttachmentDefinition => match nads.remove(&i) {
                Some(Ok(nad)) => with_schema(
                    &item.value,
                    &crd_schema::<NetworkAttachmentDefinition>(),
                    rules::nad::validate_nad(&nad),
                ),
                Some(Err(d)) => d,
                None => continue,
            },
            Kind::Pod => pod_diagnostics(
                &item.value,
                &FieldPath::root(),
                &item.namespace,
                &index,
                settings,
            ),
            Kind::Workload { template, .. } => {
                pod_diagnostics(&item.value, template, &item.namespace, &index, settings)
            }
            Kind::SriovNetworkNodePolicy => {
                match typed::<SriovNetworkNodePolicy>(&item.value, false) {
                    Ok(p) => with_schema(
                        &item.value,
                        &crd_schema::<SriovNetworkNodePolicy>(),
                        rules::sriov::validate_policy(
                            &p,
                            settings.nics.as_ref(),
                            &settings.operator_namespace,
                        ),
                    ),
                    Err(d) => d,
                }
            }
            Kind::SriovNetwork => match typed::<SriovNetwork>(&item.value, false) {
                Ok(n) => with_schema(
                    &item.value,
                    &crd_schema::<SriovNetwork>(),
                    rules::sriov::validate_network(&n, &settings.operator_namespace),
                ),
                Err(d) => d,
            },
            Kind::SriovNetworkNodeState => match typed::<SriovNetworkNodeState>(&item.value, false)
            {
                Ok(s) => with_schema(
                    &item.value,
                    &crd_schema::<SriovNetworkNodeState>(),
                    rules::sriov::validate_node_state(&s),
                ),
                Err(d) => d,
            },
            Kind::CniConfig => {
                let text = item.value.to_string();
                rules::cniconf::validate_cni_config(&text, &FieldPath::root()).1
            }
            Kind::MultusConfig => match MultusConfig::from_value(&item.value) {
                Ok(conf) => conf.validate(&FieldPath::root()),
                Err(e) => {
                    let mut d = Diagnostics::new();
                    d.error(FieldPath::root(), e.to_string());
                    d
                }
            },
        };
        report.objects.push(ObjectReport::new(
            &item.doc.file,
            item.doc.index,
            item.doc.line,
            item.kind.label(),
            if matches!(item.kind, Kind::CniConfig | Kind::MultusConfig) {
                ""
            } else {
                &item.namespace
            },
            &item.name,
            diags,
        ));
    }
    report
}

/// The pod rules on a pod, or on the pod template at `template` inside a workload.
fn pod_diagnostics(
    value: &Value,
    template: &FieldPath,
    namespace: &str,
    index: &NadIndex,
    settings: &Settings,
) -> Diagnostics {
    let annotations: BTreeMap<String, String> = objects::at(value, template)
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    rules::pod::validate_pod_networks_at(
        &FieldPath::new("metadata").under(template),
        namespace,
        &annotations,
        index,
        &settings.pod_rules,
    )
}

/// Decode a document into its Rust type; a mismatch is reported at the field serde names.
fn typed<T: serde::de::DeserializeOwned>(
    value: &Value,
    allow_missing_spec: bool,
) -> Result<T, Diagnostics> {
    let mut value = value.clone();
    if allow_missing_spec && let Some(obj) = value.as_object_mut() {
        obj.entry("spec")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut d = Diagnostics::new();
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        d.error(FieldPath::from(path.as_str()), e.inner().to_string());
        d
    })
}

/// The `openAPIV3Schema` the API server would check a custom resource against: the generated
/// CRD of `crdgen` (which, e.g., does not require a NAD's `spec`).
fn crd_schema<K: kube::Resource<DynamicType = ()>>() -> Value {
    let kind = K::kind(&());
    multus_crds::crdgen::all()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .and_then(|crd| crd.spec.versions.into_iter().next())
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Rule findings plus what the CRD schema alone rejects, without reporting a field twice (the
/// schema and a rule often catch the same mistake; the rule's message is the more helpful one).
fn with_schema(value: &Value, schema: &Value, mut diags: Diagnostics) -> Diagnostics {
    if schema.is_null() {
        return diags;
    }
    let schema_findings = multus_crds::openapi::validate(schema, value);
    let reported: Vec<String> = diags.iter().map(|d| d.path.to_string()).collect();
    let mut extra = Diagnostics::new();
    for d in schema_findings {
        let p = d.path.to_string();
        if !reported.iter().any(|r| {
            r == &p
                || r.starts_with(&format!("{p}."))
                || r.starts_with(&format!("{p}["))
                || p.starts_with(&format!("{r}."))
                || p.starts_with(&format!("{r}["))
        }) {
            extra.push(d.severity, d.path, d.message);
        }
    }
    diags.extend(extra);
    diags
}
