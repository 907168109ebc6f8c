//! `labelSelector` and `fieldSelector` query parameters, parsed and matched as the real server does.

use serde_json::Value;

use super::status::ApiStatus;

#[derive(Clone, Debug, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelRequirement>);

/// Split at commas that are not inside `( )`.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiStatus> {
        let bad = |p: &str| ApiStatus::bad_request(format!("unable to parse requirement: {p}"));
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
            let req = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                LabelRequirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if words.len() == 2 {
                let rest = words[1].trim_start();
                if let Some(r) = rest.strip_prefix("notin") {
                    LabelRequirement::NotIn(
                        words[0].to_owned(),
                        set_values(r).ok_or_else(|| bad(part))?,
                    )
                } else if let Some(r) = rest.strip_prefix("in") {
                    LabelRequirement::In(
                        words[0].to_owned(),
                        set_values(r).ok_or_else(|| bad(part))?,
                    )
                } else {
                    return Err(bad(part));
                }
            } else {
                LabelRequirement::Exists(part.to_owned())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Build from a `metav1.LabelSelector` object (webhooks' namespaceSelector / objectSelector).
    pub fn from_object(sel: &Value) -> Result<Self, ApiStatus> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelRequirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(match e.get("operator").and_then(Value::as_str) {
                Some("In") => LabelRequirement::In(key, values),
                Some("NotIn") => LabelRequirement::NotIn(key, values),
                Some("Exists") => LabelRequirement::Exists(key),
                Some("DoesNotExist") => LabelRequirement::DoesNotExist(key),
                other => {
                    return Err(ApiStatus::bad_request(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            });
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// The fields each resource can be selected by; others are refused like the real server does.
fn supported_field(plural: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || match plural {
            "pods" => matches!(
                field,
                "spec.nodeName"
                    | "spec.serviceAccountName"
                    | "spec.schedulerName"
                    | "status.phase"
                    | "status.podIP"
            ),
            "events" => {
                field.starts_with("involvedObject.")
                    || matches!(field, "reason" | "type" | "source")
            }
            "secrets" => field == "type",
            _ => false,
        }
}

fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for part in field.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl FieldSelector {
    pub fn parse(s: &str, plural: &str) -> Result<Self, ApiStatus> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiStatus::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported_field(plural, field) {
                return Err(ApiStatus::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(f, equal, v)| (field_value(obj, f) == *v) == *equal)
    }
}

/// Both selectors of a list or watch request.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "a", "labels": labels}, "spec": {"nodeName": "n1"}})
    }

    #[test]
    fn every_label_operator_matches_like_kubernetes() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&p);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (web, db),tier notin (back)"));
        assert!(!m("app notin (web)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("missing notin (x)"));
        assert!(!m("missing in (x)"));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors_know_their_fields() {
        let p = pod(json!({}));
        let m = |s: &str| FieldSelector::parse(s, "pods").unwrap().matches(&p);
        assert!(m("metadata.name=p,spec.nodeName=n1"));
        assert!(!m("spec.nodeName!=n1"));
        assert!(m("metadata.namespace==a"));
        assert_eq!(
            FieldSelector::parse("spec.nodeName=x", "configmaps")
                .unwrap_err()
                .message,
            "field label not supported: spec.nodeName"
        );
    }
}
