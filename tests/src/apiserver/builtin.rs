//! Validation of built-in kinds that the code under test creates, as the real API server does
//! it (only what these tests' clients could get wrong).

use serde_json::Value;

use super::resources::ResourceDef;
use super::status::ApiStatus;

/// Validate `obj`, a new or updated object of the built-in `def`.
pub fn validate(def: &ResourceDef, obj: &Value) -> Result<(), ApiStatus> {
    let causes = match (def.group.as_str(), def.plural.as_str()) {
        ("", "events") => core_v1_event(obj),
        _ => Vec::new(),
    };
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(ApiStatus::invalid(&def.kind, &def.group, name, &causes))
}

/// core/v1 Event, as kube-apiserver's `legacyValidateEvent` checks it (pkg/apis/core/validation/
/// events.go): an event without `eventTime` (what client-go's recorder sends) needs its
/// involved object's namespace to be the event's; one with `eventTime` (the events.k8s.io
/// style) needs `reportingComponent`, `reportingInstance`, `action` and `reason` as well.
fn core_v1_event(obj: &Value) -> Vec<(String, String)> {
    let text = |path: &str| {
        obj.pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let mut causes = Vec::new();
    let namespace = text("/metadata/namespace");
    let involved = text("/involvedObject/namespace");
    if text("/eventTime").is_empty() {
        if !involved.is_empty() && involved != namespace {
            causes.push((
                "involvedObject.namespace".to_owned(),
                format!("Invalid value: \"{involved}\": does not match event.namespace"),
            ));
        }
        return causes;
    }
    if involved.is_empty() && namespace != "default" && namespace != "kube-system" {
        causes.push((
            "involvedObject.namespace".to_owned(),
            "Invalid value: \"\": does not match event.namespace".to_owned(),
        ));
    }
    for (field, path) in [
        ("reportingComponent", "/reportingComponent"),
        ("reportingInstance", "/reportingInstance"),
        ("action", "/action"),
        ("reason", "/reason"),
    ] {
        if text(path).is_empty() {
            causes.push((field.to_owned(), "Required value".to_owned()));
        }
    }
    causes
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_with_an_event_time_needs_its_reporter_and_action() {
        let legacy = json!({"metadata": {"name": "p.1", "namespace": "team"},
            "involvedObject": {"kind": "Pod", "namespace": "team", "name": "p"},
            "reason": "AddedInterface"});
        assert!(core_v1_event(&legacy).is_empty());
        let mut elsewhere = legacy.clone();
        elsewhere["involvedObject"]["namespace"] = json!("other");
        assert_eq!(core_v1_event(&elsewhere).len(), 1);
        let mut timed = legacy.clone();
        timed["eventTime"] = json!("2026-11-30T05:00:00.000000Z");
        timed["reportingComponent"] = json!("multus");
        let fields: Vec<String> = core_v1_event(&timed).into_iter().map(|c| c.0).collect();
        assert_eq!(fields, ["reportingInstance", "action"]);
    }
}
