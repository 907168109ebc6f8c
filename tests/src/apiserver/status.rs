//! Failures answered as `Status` objects, worded and coded like the real API server's, so clients
//! (kube's `Error::Api`, kubectl's `Error from server (NotFound)`) react to them the same way.

use serde_json::{Value, json};

/// A failed request: the HTTP code, the machine-readable reason and the message a person sees.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiStatus {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// Boxed: the error travels through every handler's Result and should stay small.
    pub details: Option<Box<Value>>,
}

/// What a message names: `pods`, or `networkattachmentdefinitions.k8s.cni.cncf.io`.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiStatus {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, group: &str, plural: &str, name: &str) -> Self {
        let mut d = json!({"name": name, "kind": plural});
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = Some(Box::new(d));
        self
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 422 with one cause per finding: `Kind.group "name" is invalid: [a: x, b: y]`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[(String, String)]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes
            .iter()
            .map(|(field, msg)| {
                if field.is_empty() {
                    msg.clone()
                } else {
                    format!("{field}: {msg}")
                }
            })
            .collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let causes_json: Vec<Value> = causes
            .iter()
            .map(
                |(field, msg)| json!({"reason": cause_reason(msg), "message": msg, "field": field}),
            )
            .collect();
        Self {
            code: 422,
            reason: "Invalid".to_owned(),
            message: format!("{qualified_kind} \"{name}\" is invalid: {list}"),
            details: Some(Box::new(
                json!({"name": name, "group": group, "kind": kind, "causes": causes_json}),
            )),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type}"
            ),
        )
    }

    pub fn gone(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = (**d).clone();
        }
        v
    }
}

/// The `StatusCause` reason a validation message corresponds to.
fn cause_reason(message: &str) -> &'static str {
    if message.starts_with("Required value") {
        "FieldValueRequired"
    } else if message.starts_with("Unsupported value") {
        "FieldValueNotSupported"
    } else if message.starts_with("Too long") {
        "FieldValueTooLong"
    } else if message.starts_with("Too many") {
        "FieldValueTooMany"
    } else if message.starts_with("Duplicate value") {
        "FieldValueDuplicate"
    } else if message.starts_with("Forbidden") {
        "FieldValueForbidden"
    } else {
        "FieldValueInvalid"
    }
}
