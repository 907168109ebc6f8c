//! Recognising what a document is: a Kubernetes object `multusctl` has rules for (NAD, Pod, a
//! workload with a pod template, an SR-IOV kind), a node's CNI config file, or a Multus config.

use multus_crds::FieldPath;
use serde_json::Value;

/// What a document holds, as far as the rules are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    NetworkAttachmentDefinition,
    Pod,
    /// A workload; the path is where its pod template sits.
    Workload {
        kind: String,
        template: FieldPath,
    },
    SriovNetworkNodePolicy,
    SriovNetwork,
    SriovNetworkNodeState,
    /// A plain CNI network configuration (`.conf`/`.conflist`).
    CniConfig,
    /// A Multus configuration (`type: multus` or `multus-shim`).
    MultusConfig,
    /// Any other Kubernetes object: not checked.
    Other(String),
}

impl Kind {
    /// The name shown in reports.
    pub fn label(&self) -> &str {
        match self {
            Kind::NetworkAttachmentDefinition => "NetworkAttachmentDefinition",
            Kind::Pod => "Pod",
            Kind::Workload { kind, .. } | Kind::Other(kind) => kind,
            Kind::SriovNetworkNodePolicy => "SriovNetworkNodePolicy",
            Kind::SriovNetwork => "SriovNetwork",
            Kind::SriovNetworkNodeState => "SriovNetworkNodeState",
            Kind::CniConfig => "CNIConfig",
            Kind::MultusConfig => "MultusConfig",
        }
    }
}

/// Classify one parsed document.
pub fn classify(doc: &Value) -> Kind {
    let kind = doc.get("kind").and_then(Value::as_str);
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("k8s.cni.cncf.io", Some("NetworkAttachmentDefinition")) => {
            Kind::NetworkAttachmentDefinition
        }
        ("", Some("Pod")) => Kind::Pod,
        ("sriovnetwork.openshift.io", Some("SriovNetworkNodePolicy")) => {
            Kind::SriovNetworkNodePolicy
        }
        ("sriovnetwork.openshift.io", Some("SriovNetwork")) => Kind::SriovNetwork,
        ("sriovnetwork.openshift.io", Some("SriovNetworkNodeState")) => Kind::SriovNetworkNodeState,
        (_, Some(k)) if !api_version.is_empty() => {
            match multus_crds::workloads::pod_template_path(k) {
                Some(path) => Kind::Workload {
                    kind: k.to_owned(),
                    template: path.iter().fold(FieldPath::root(), |p, seg| p.field(seg)),
                },
                None => Kind::Other(k.to_owned()),
            }
        }
        _ => match doc.get("type").and_then(Value::as_str) {
            Some("multus" | "multus-shim") => Kind::MultusConfig,
            _ => Kind::CniConfig,
        },
    }
}

/// Expand `kind: List` (and `*List`) documents into their items; other documents stay as they are.
pub fn expand_lists(doc: Value) -> Vec<Value> {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && doc.get("items").is_some_and(Value::is_array);
    if !is_list {
        return vec![doc];
    }
    match doc {
        Value::Object(mut map) => match map.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Follow a field path made of plain fields (no indices) into a value.
pub fn at<'a>(value: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    if path.is_root() {
        return Some(value);
    }
    path.as_str()
        .split('.')
        .try_fold(value, |v, seg| v.get(seg))
}

/// `metadata.name` and `metadata.namespace` of an object.
pub fn name_and_namespace(doc: &Value) -> (String, Option<String>) {
    let meta = doc.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    (
        get("name")
            .or_else(|| doc.get("name").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default(),
        get("namespace"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_are_recognised() {
        assert_eq!(
            classify(
                &json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition"})
            ),
            Kind::NetworkAttachmentDefinition
        );
        assert_eq!(
            classify(&json!({"apiVersion":"v1","kind":"Pod"})),
            Kind::Pod
        );
        let cron = classify(&json!({"apiVersion":"batch/v1","kind":"CronJob"}));
        match cron {
            Kind::Workload { template, .. } => {
                assert_eq!(template.as_str(), "spec.jobTemplate.spec.template")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(&json!({"cniVersion":"1.0.0","name":"m","type":"multus-shim"})),
            Kind::MultusConfig
        );
        assert_eq!(
            classify(&json!({"cniVersion":"1.0.0","name":"b","plugins":[]})),
            Kind::CniConfig
        );
        assert_eq!(
            classify(&json!({"apiVersion":"v1","kind":"Service"})),
            Kind::Other("Service".into())
        );
    }

    #[test]
    fn lists_expand() {
        let l = json!({"apiVersion":"v1","kind":"List","items":[{"kind":"Pod"},{"kind":"Pod"}]});
        assert_eq!(expand_lists(l).len(), 2);
        let p = json!({"kind":"Pod"});
        assert_eq!(expand_lists(p).len(), 1);
    }
}
