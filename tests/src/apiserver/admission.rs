//! Admission webhooks: the server calls matching mutating webhooks (applying their JSON patches),
//! then validating ones, with AdmissionReview v1 over HTTPS verified against `caBundle`.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};

use super::{
    State, Target, meta, objects::Operation, selectors::LabelSelector, status::ApiStatus,
    store::meta_str,
};

const MUTATING: (&str, &str) = (
    "admissionregistration.k8s.io",
    "mutatingwebhookconfigurations",
);
const VALIDATING: (&str, &str) = (
    "admissionregistration.k8s.io",
    "validatingwebhookconfigurations",
);

fn webhooks(state: &State, kind: (&str, &str)) -> Vec<Value> {
    let inner = state.lock();
    let storage = (kind.0.to_owned(), kind.1.to_owned());
    let mut hooks: Vec<(String, Value)> = inner
        .store
        .range(&storage, None, None)
        .flat_map(|(k, cfg)| {
            cfg["webhooks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |w| (k.clone(), w))
        })
        .collect();
    // The real server orders by configuration name, then by position.
    hooks.sort_by(|a, b| a.0.cmp(&b.0));
    hooks.into_iter().map(|(_, w)| w).collect()
}

fn matches_list(list: &Value, value: &str) -> bool {
    list.as_array().is_some_and(|l| {
        l.iter()
            .any(|x| x.as_str() == Some("*") || x.as_str() == Some(value))
    })
}

fn rule_matches(rule: &Value, t: &Target, op: Operation) -> bool {
    let resource = match &t.subresource {
        Some(s) => format!("{}/{s}", t.def.plural),
        None => t.def.plural.clone(),
    };
    let resources_ok = rule["resources"].as_array().is_some_and(|rs| {
        rs.iter().filter_map(Value::as_str).any(|r| {
            r == "*/*"
                || r == resource
                || (r == "*" && t.subresource.is_none())
                || r == format!("{}/*", t.def.plural)
        })
    });
    let scope_ok = match rule["scope"].as_str() {
        Some("Namespaced") => t.def.namespaced,
        Some("Cluster") => !t.def.namespaced,
        _ => true,
    };
    matches_list(&rule["operations"], op.as_str())
        && matches_list(&rule["apiGroups"], &t.def.group)
        && matches_list(&rule["apiVersions"], &t.def.version)
        && resources_ok
        && scope_ok
}

fn selector_matches(
    state: &State,
    hook: &Value,
    t: &Target,
    obj: &Value,
) -> Result<bool, ApiStatus> {
    let object_ok = match hook.get("objectSelector") {
        Some(sel) => LabelSelector::from_object(sel)?.matches(obj),
        None => true,
    };
    let namespace_ok = match (hook.get("namespaceSelector"), t.def.namespaced) {
        (Some(sel), true) => {
            let ns = meta_str(obj, "namespace").unwrap_or_default().to_owned();
            let ns_obj = state
                .lock()
                .store
                .get(&super::objects::ns_storage(), &ns)
                .cloned()
                .unwrap_or(json!({}));
            LabelSelector::from_object(sel)?.matches(&ns_obj)
        }
        _ => true,
    };
    Ok(object_ok && namespace_ok)
}

/// Run admission for a write; returns the (possibly mutated) object.
pub async fn admit(
    state: &State,
    t: &Target,
    op: Operation,
    new: Option<Value>,
    old: Option<&Value>,
    dry_run: bool,
) -> Result<Option<Value>, ApiStatus> {
    // Webhook configurations themselves are never sent to webhooks, as in the real server.
    if t.def.group == "admissionregistration.k8s.io" {
        return Ok(new);
    }
    let mut new = new;
    for (kind, mutating) in [(MUTATING, true), (VALIDATING, false)] {
        for hook in webhooks(state, kind) {
            let subject = new.as_ref().or(old).cloned().unwrap_or(json!({}));
            if !hook["rules"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| rule_matches(r, t, op)))
                || !selector_matches(state, &hook, t, &subject)?
            {
                continue;
            }
            let name = hook["name"].as_str().unwrap_or_default().to_owned();
            let review = review_request(t, op, new.as_ref(), old, dry_run);
            let response = match call(&hook, &review).await {
                Ok(r) => r,
                Err(e) if hook["failurePolicy"].as_str() == Some("Ignore") => {
                    tracing::debug!(webhook = %name, error = %e, "webhook call failed, ignored by failurePolicy");
                    continue;
                }
                Err(e) => {
                    return Err(ApiStatus::internal(format!(
                        "failed calling webhook \"{name}\": {e}"
                    )));
                }
            };
            let resp = &response["response"];
            if resp["allowed"].as_bool() != Some(true) {
                return Err(denial(&name, &resp["status"]));
            }
            if mutating && let (Some(p), Some(obj)) = (resp["patch"].as_str(), new.as_mut()) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .map_err(|e| {
                        ApiStatus::internal(format!(
                            "webhook \"{name}\" returned an undecodable patch: {e}"
                        ))
                    })?;
                super::patch::json_patch(obj, &bytes).map_err(|e| {
                    ApiStatus::internal(format!(
                        "webhook \"{name}\" returned a patch that does not apply: {}",
                        e.message
                    ))
                })?;
            }
        }
    }
    Ok(new)
}

/// The real server's wording for a denial.
fn denial(name: &str, status: &Value) -> ApiStatus {
    let denied_by = format!("admission webhook \"{name}\" denied the request");
    let message = match status["message"].as_str() {
        Some(m) if !m.is_empty() => format!("{denied_by}: {m}"),
        _ => format!("{denied_by} without explanation"),
    };
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c != 0)
        .unwrap_or(403);
    let reason = status["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or("Forbidden");
    ApiStatus::new(code, reason, message)
}

fn review_request(
    t: &Target,
    op: Operation,
    new: Option<&Value>,
    old: Option<&Value>,
    dry_run: bool,
) -> Value {
    let subject = new.or(old);
    let gvk = json!({"group": t.def.group, "version": t.def.version, "kind": t.def.kind});
    let gvr = json!({"group": t.def.group, "version": t.def.version, "resource": t.def.plural});
    let options_kind = match op {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
    };
    let mut req = json!({
        "uid": meta::uid(),
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": subject.and_then(|s| meta_str(s, "name")).unwrap_or_default(),
        "operation": op.as_str(),
        "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
        "object": new.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    });
    if let Some(ns) = t.namespace.as_deref().filter(|_| t.def.namespaced) {
        req["namespace"] = json!(ns);
    }
    if let Some(s) = &t.subresource {
        req["subResource"] = json!(s);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(
        "webhook has no clientConfig.url (service references cannot be resolved by this server)"
    )]
    NoUrl,
    #[error("bad webhook URL {0}")]
    BadUrl(String),
    #[error("bad caBundle: {0}")]
    BadCaBundle(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] http::Error),
    #[error("context deadline exceeded")]
    Timeout,
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    #[error("invalid AdmissionReview: {0}")]
    Decode(#[from] serde_json::Error),
}

async fn call(hook: &Value, review: &Value) -> Result<Value, CallError> {
    let timeout = Duration::from_secs(hook["timeoutSeconds"].as_u64().unwrap_or(10));
    tokio::time::timeout(timeout, call_inner(hook, review))
        .await
        .map_err(|_| CallError::Timeout)?
}

async fn call_inner(hook: &Value, review: &Value) -> Result<Value, CallError> {
    let cc = &hook["clientConfig"];
    let url = cc["url"].as_str().ok_or(CallError::NoUrl)?;
    let uri: http::Uri = url.parse().map_err(|_| CallError::BadUrl(url.to_owned()))?;
    let host = uri
        .host()
        .ok_or_else(|| CallError::BadUrl(url.to_owned()))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let mut roots = rustls::RootCertStore::empty();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cc["caBundle"].as_str().unwrap_or_default())
        .map_err(|e| CallError::BadCaBundle(e.to_string()))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| CallError::BadCaBundle(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| CallError::BadCaBundle(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CallError::BadCaBundle(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| CallError::BadUrl(url.to_owned()))?;
    let tcp =
        tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = http::Request::post(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(review.to_string())))?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(CallError::Status(response.status().as_u16()));
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}
