//! CustomResourceDefinitions: serving a CRD's resource as soon as it is stored, and checking
//! custom objects against its `openAPIV3Schema` (defaults, pruning, structure, CEL rules).

use serde_json::{Value, json};

use super::{Inner, meta, resources::ResourceDef, status::ApiStatus, store::meta_str};

/// One resource per served version of the CRD.
pub fn defs_from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = names["kind"].as_str().unwrap_or_default();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceDef {
            group: group.to_owned(),
            version: v["name"].as_str().unwrap_or_default().to_owned(),
            plural: names["plural"].as_str().unwrap_or_default().to_owned(),
            singular: names["singular"]
                .as_str()
                .map_or_else(|| kind.to_lowercase(), str::to_owned),
            kind: kind.to_owned(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            status_subresource: v["subresources"].get("status").is_some(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            schema: v["schema"].get("openAPIV3Schema").cloned(),
            custom: true,
        })
        .collect()
}

pub fn register(registry: &mut super::resources::Registry, crd: &Value) {
    let defs = defs_from_crd(crd);
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    registry.set_custom(group, plural, defs);
}

/// A deleted CRD takes its objects with it.
pub fn unregister(inner: &mut Inner, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default().to_owned();
    let plural = crd["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    inner.registry.remove_custom(&group, &plural);
    inner.store.remove_all(&(group, plural));
}

/// The status the real server's CRD controllers write once names are accepted.
pub fn set_established_status(crd: &mut Value) {
    let names = crd["spec"]["names"].clone();
    let now = meta::now();
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    crd["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    });
}

/// Default, prune and validate a custom object as the real server does on every write.
pub fn validate_custom(
    def: &ResourceDef,
    obj: Value,
    old: Option<&Value>,
) -> Result<Value, ApiStatus> {
    let Some(schema) = &def.schema else {
        return Ok(obj);
    };
    let defaulted = kube::core::cel::apply_defaults(schema, &obj);
    let (pruned, diags) = multus_crds::openapi::prune_and_validate(schema, &defaulted);
    let name = meta_str(&pruned, "name").unwrap_or_default().to_owned();
    let mut causes: Vec<(String, String)> = diags
        .errors()
        .map(|d| (d.path.to_string(), d.message.clone()))
        .collect();
    if causes.is_empty() {
        let validator = kube::core::cel::Validator::new();
        if let Err(errors) = validator.validate(schema, &pruned, old) {
            for e in errors.as_slice() {
                let at = lookup(&pruned, &e.field_path);
                causes.push((
                    e.field_path.clone(),
                    format!("Invalid value: \"{}\": {}", type_name(at), e.message),
                ));
            }
        }
    }
    if causes.is_empty() {
        Ok(pruned)
    } else {
        Err(ApiStatus::invalid(&def.kind, &def.group, &name, &causes))
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(obj, |cur, part| cur.get(part))
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Object(_)) | None => "object",
        Some(Value::Array(_)) => "array",
        Some(Value::String(_)) => "string",
        Some(Value::Number(n)) if n.is_f64() => "number",
        Some(Value::Number(_)) => "integer",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Null) => "null",
    }
}
