//! The AdmissionReview v1 wire format, read without copying the embedded objects.
//!
//! A review is parsed into [`ReviewRequest`] with `object` and `oldObject` left as raw JSON, so a
//! handler deserialises only the object it needs into the type it needs (a pod's annotations
//! and containers, not its whole spec). The answer is written by [`Verdict::into_review_body`].

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The review API versions the API server may send; the answer repeats the one received.
const API_VERSIONS: &[&str] = &["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<ReviewRequest<'a>>,
}

/// `request` of an AdmissionReview.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequest<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub resource: GroupVersionResource<'a>,
    #[serde(borrow, default)]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub operation: Cow<'a, str>,
    #[serde(borrow, default)]
    pub object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub old_object: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionResource<'a> {
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    #[serde(borrow, default)]
    pub resource: Cow<'a, str>,
}

/// A parsed review: the API version to answer with and the request.
#[derive(Debug)]
pub struct Review<'a> {
    pub api_version: &'static str,
    pub request: ReviewRequest<'a>,
}

/// Why a body is not an AdmissionReview; answered with HTTP 400 and this text.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not a JSON AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected kind AdmissionReview, got {0:?}")]
    Kind(String),
    #[error("unsupported apiVersion {0:?}: this webhook speaks admission.k8s.io/v1")]
    ApiVersion(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview request has an empty uid")]
    NoUid,
}

impl<'a> Review<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ReviewError> {
        let review: ReviewIn<'a> = serde_json::from_slice(body)?;
        match review.kind.as_deref() {
            Some("AdmissionReview") => {}
            other => return Err(ReviewError::Kind(other.unwrap_or_default().to_owned())),
        }
        let given = review.api_version.as_deref().unwrap_or_default();
        let api_version = API_VERSIONS
            .iter()
            .find(|v| **v == given)
            .ok_or_else(|| ReviewError::ApiVersion(given.to_owned()))?;
        let request = review.request.ok_or(ReviewError::NoRequest)?;
        if request.uid.is_empty() {
            return Err(ReviewError::NoUid);
        }
        Ok(Self {
            api_version,
            request,
        })
    }
}

impl ReviewRequest<'_> {
    pub fn is_delete(&self) -> bool {
        self.operation == "DELETE"
    }

    pub fn is_update(&self) -> bool {
        self.operation == "UPDATE"
    }

    /// `namespace/name` for messages (the name may be absent on CREATE with generateName).
    pub fn object_ref(&self) -> String {
        let name = self.name.as_deref().unwrap_or("");
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_owned(),
        }
    }
}

// === Verdict ===

/// One RFC 6902 operation of a mutation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatchOp {
    pub op: &'static str,
    pub path: String,
    pub value: serde_json::Value,
}

impl PatchOp {
    pub fn add(path: String, value: serde_json::Value) -> Self {
        Self {
            op: "add",
            path,
            value,
        }
    }
}

/// Escape one JSON-pointer segment (`/` → `~1`, `~` → `~0`); resource names contain `/`.
pub fn pointer_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains(['/', '~']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// What a handler decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// The denial message; `None` allows.
    pub denied: Option<String>,
    pub warnings: Vec<String>,
    pub patch: Vec<PatchOp>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

#[derive(Serialize)]
struct Status<'a> {
    code: u16,
    reason: &'static str,
    message: &'a str,
}

impl Verdict {
    pub fn allow() -> Self {
        Self::default()
    }

    pub fn deny(message: impl Into<String>) -> Self {
        Self {
            denied: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.denied.is_none()
    }

    /// The AdmissionReview answering `uid`, as JSON bytes.
    pub fn into_review_body(
        self,
        api_version: &str,
        uid: &str,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let patch = if self.patch.is_empty() || self.denied.is_some() {
            None
        } else {
            let json = serde_json::to_vec(&self.patch)?;
            Some(base64::engine::general_purpose::STANDARD.encode(json))
        };
        let out = ReviewOut {
            api_version,
            kind: "AdmissionReview",
            response: Response {
                uid,
                allowed: self.denied.is_none(),
                // 422 like the API server's own validation: the object is invalid, not forbidden.
                status: self.denied.as_deref().map(|message| Status {
                    code: 422,
                    reason: "Invalid",
                    message,
                }),
                warnings: &self.warnings,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
            },
        };
        serde_json::to_vec(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_is_read_and_answered_with_its_uid() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ns","operation":"CREATE","object":{"metadata":{"name":"p"}}}}"#;
        let review = Review::parse(body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(review.request.resource.resource, "pods");
        assert_eq!(
            review.request.object.map(RawValue::get),
            Some(r#"{"metadata":{"name":"p"}}"#)
        );
        let mut v = Verdict::deny("no");
        v.warnings.push("careful".into());
        let out: serde_json::Value = serde_json::from_slice(
            &v.into_review_body(review.api_version, &review.request.uid)
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["message"], "no");
        assert_eq!(out["response"]["warnings"][0], "careful");
    }

    #[test]
    fn non_reviews_are_refused_with_the_reason() {
        assert!(matches!(Review::parse(b"{"), Err(ReviewError::Json(_))));
        assert!(matches!(
            Review::parse(br#"{"apiVersion":"v1","kind":"Pod"}"#),
            Err(ReviewError::Kind(k)) if k == "Pod"
        ));
        assert!(matches!(
            Review::parse(br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview"}"#),
            Err(ReviewError::ApiVersion(_))
        ));
        assert!(matches!(
            Review::parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(ReviewError::NoRequest)
        ));
    }

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(pointer_segment("intel.com/sriov"), "intel.com~1sriov");
        assert_eq!(pointer_segment("a~b"), "a~0b");
        assert_eq!(pointer_segment("plain"), "plain");
    }
}
