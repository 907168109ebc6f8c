//! HTTP: routing paths to resources, query parameters, and the handlers for each verb.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use super::{
    State, Target, apply, discovery, eviction,
    objects::{self, Commit, Operation, Propagation},
    patch,
    selectors::{FieldSelector, LabelSelector, Selection},
    status::ApiStatus,
    store::{meta_str, object_key},
    watch,
};

pub type Body = BoxBody<Bytes, Infallible>;

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn status_response(s: &ApiStatus) -> Response<Body> {
    let mut r = json_response(s.code, &s.to_json());
    // As the real server: a Status asking for a later retry says so in the header clients read.
    if let Some(after) = s
        .details
        .as_ref()
        .and_then(|d| d["retryAfterSeconds"].as_u64())
    {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(after));
    }
    r
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub async fn serve(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let user_agent = req.headers().get(header::USER_AGENT);
    let user_agent = user_agent.and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(r) = super::audit::RecordedRequest::parse(user_agent, &method, &path, &query) {
        state.audit.record(r);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(status_response(&ApiStatus::bad_request(format!(
                "reading body: {e}"
            ))));
        }
    };
    let response = route(state, &method, &path, &query, &content_type, body).await;
    Ok(response.unwrap_or_else(|s| status_response(&s)))
}

async fn route(
    state: Arc<State>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: Bytes,
) -> Result<Response<Body>, ApiStatus> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || {
        ApiStatus::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(json_response(200, &discovery::version())),
        ["healthz" | "readyz" | "livez"] => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain"),
            );
            return Ok(r);
        }
        ["openapi", "v2"] => {
            // An empty OpenAPI document: kubectl skips client-side validation of unknown kinds.
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            return Ok(r);
        }
        ["api"] => {
            return Ok(json_response(
                200,
                &discovery::core_versions(&state.address),
            ));
        }
        ["apis"] => {
            return Ok(json_response(
                200,
                &discovery::group_list(&state.lock().registry),
            ));
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g] => {
            return discovery::group(&state.lock().registry, g)
                .map(|v| json_response(200, &v))
                .ok_or_else(not_found);
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    if rest.is_empty() {
        return discovery::resource_list(&state.lock().registry, group, version)
            .map(|v| json_response(200, &v))
            .ok_or_else(not_found);
    }
    // Namespaced paths: namespaces/{ns}/{plural}[/{name}[/{sub}]]; namespaces/{name}[/status] is
    // the namespace itself.
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            (
                Some((*ns).to_owned()),
                *plural,
                tail.first().copied(),
                tail.get(1).copied(),
            )
        }
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => return Err(not_found()),
    };
    let def = state
        .lock()
        .registry
        .find(group, version, plural)
        .cloned()
        .ok_or_else(not_found)?;
    if !def.namespaced && namespace.is_some() {
        return Err(not_found());
    }
    let eviction = sub == Some("eviction") && def.group.is_empty() && def.plural == "pods";
    if let Some(s) = sub
        && !(s == "status" && def.status_subresource)
        && !eviction
    {
        return Err(not_found());
    }
    let t = Target {
        def,
        namespace,
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    // Only JSON (and YAML for apply) bodies are understood; protobuf is refused as a server
    // without that codec would.
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiStatus::unsupported_media_type(content_type));
    }
    if eviction {
        return match (method, &t.name) {
            (&Method::POST, Some(name)) => {
                eviction::evict(&state, &t, name, &body, query).map(|v| json_response(201, &v))
            }
            _ => Err(ApiStatus::method_not_allowed()),
        };
    }
    match (method, &t.name) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(state, &t, query)
        }
        (&Method::GET, None) => list(&state, &t, query).map(|v| json_response(200, &v)),
        (&Method::GET, Some(name)) => {
            objects::read(&state, &t, name).map(|v| json_response(200, &v))
        }
        (&Method::POST, None) => create(&state, &t, &body, dry_run)
            .await
            .map(|v| json_response(201, &v)),
        (&Method::PUT, Some(_)) => update(&state, &t, &body, dry_run)
            .await
            .map(|v| json_response(200, &v)),
        (&Method::PATCH, Some(_)) => patch(&state, &t, content_type, &body, query, dry_run).await,
        (&Method::DELETE, Some(name)) => delete(&state, &t, name, &body, query, dry_run)
            .await
            .map(|v| json_response(200, &v)),
        (&Method::DELETE, None) => delete_collection(&state, &t, &body, query)
            .await
            .map(|v| json_response(200, &v)),
        _ => Err(ApiStatus::method_not_allowed()),
    }
}

fn selection(t: &Target, query: &HashMap<String, String>) -> Result<Selection, ApiStatus> {
    Ok(Selection {
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(
            query.get("fieldSelector").map_or("", String::as_str),
            &t.def.plural,
        )?,
    })
}

fn parse_body(body: &[u8]) -> Result<Value, ApiStatus> {
    serde_json::from_slice(body)
        .map_err(|e| ApiStatus::bad_request(format!("error decoding request body: {e}")))
}

fn list(state: &State, t: &Target, query: &HashMap<String, String>) -> Result<Value, ApiStatus> {
    let sel = selection(t, query)?;
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_continue(c)?),
        None => None,
    };
    let inner = state.lock();
    let rv = inner.store.resource_version();
    let mut items = Vec::new();
    let mut next = None;
    let ns = if t.def.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    for (key, obj) in inner
        .store
        .range(&t.def.storage_key(), ns, after.as_deref())
    {
        if !sel.matches(obj) {
            continue;
        }
        if limit.is_some_and(|l| items.len() == l) {
            next = Some(key.clone());
            break;
        }
        items.push(objects::with_api_version(obj.clone(), &t.def));
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(last) = next.and(items.last()) {
        let last_key = object_key(
            meta_str(last, "namespace"),
            meta_str(last, "name").unwrap_or_default(),
        );
        metadata["continue"] = json!(encode_continue(&last_key));
    }
    Ok(
        json!({"apiVersion": t.def.api_version(), "kind": format!("{}List", t.def.kind), "metadata": metadata, "items": items}),
    )
}

fn encode_continue(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"start": key}).to_string())
}

fn decode_continue(token: &str) -> Result<String, ApiStatus> {
    use base64::Engine;
    let bad = || ApiStatus::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v["start"].as_str().map(str::to_owned).ok_or_else(bad)
}

fn watch(
    state: Arc<State>,
    t: &Target,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiStatus> {
    let resource_version = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiStatus::bad_request(format!("invalid resource version: {v}")))?,
        ),
        None => None,
    };
    let send_initial_events = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    if send_initial_events
        && query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiStatus::invalid("ListOptions", "meta.k8s.io", "", &[(
            "resourceVersionMatch".to_owned(),
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".to_owned(),
        )]));
    }
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let req = watch::WatchRequest {
        resource_version,
        selection: selection(t, query)?,
        bookmarks: query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true"),
        send_initial_events,
        timeout: Duration::from_secs(timeout),
    };
    let rx = watch::start(state, t, req);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::TRANSFER_ENCODING,
        header::HeaderValue::from_static("chunked"),
    );
    Ok(r)
}

async fn create(state: &State, t: &Target, body: &[u8], dry_run: bool) -> Result<Value, ApiStatus> {
    if t.subresource.is_some() {
        return Err(ApiStatus::method_not_allowed());
    }
    let obj = objects::prepare_create(state, t, parse_body(body)?)?;
    let obj = objects::admit(state, t, Operation::Create, Some(obj), None, dry_run)
        .await?
        .unwrap_or_default();
    match objects::commit(state, t, None, obj, dry_run)? {
        Commit::Stored(v) => Ok(v),
        Commit::Stale => Err(ApiStatus::internal("object changed during create")),
    }
}

async fn update(state: &State, t: &Target, body: &[u8], dry_run: bool) -> Result<Value, ApiStatus> {
    let name = objects::target_name(t)?;
    let new = parse_body(body)?;
    let old = objects::read(state, t, name)?;
    if let Some(rv) = meta_str(&new, "resourceVersion")
        && Some(rv) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiStatus::conflict(&t.def.group, &t.def.plural, name));
    }
    let new = objects::prepare_update(t, &old, new)?;
    let new = objects::admit(state, t, Operation::Update, Some(new), Some(&old), dry_run)
        .await?
        .unwrap_or_default();
    match objects::commit(state, t, Some(&old), new, dry_run)? {
        Commit::Stored(v) => Ok(v),
        Commit::Stale => Err(ApiStatus::conflict(&t.def.group, &t.def.plural, name)),
    }
}

async fn patch(
    state: &State,
    t: &Target,
    content_type: &str,
    body: &[u8],
    query: &HashMap<String, String>,
    dry_run: bool,
) -> Result<Response<Body>, ApiStatus> {
    let name = objects::target_name(t)?.to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let force = query.get("force").is_some_and(|f| f == "true");
    let manager = query.get("fieldManager").cloned().unwrap_or_default();
    // A patch recomputes against the newest object when it loses a race, as the real server does.
    for _ in 0..16 {
        let current = match objects::read(state, t, &name) {
            Ok(c) => Some(c),
            Err(e) if e.code == 404 && media == "application/apply-patch+yaml" => None,
            Err(e) => return Err(e),
        };
        let mut base = current.clone().unwrap_or_default();
        match media {
            "application/json-patch+json" => patch::json_patch(&mut base, body)?,
            "application/merge-patch+json" => patch::merge_patch(&mut base, body)?,
            "application/strategic-merge-patch+json" if t.def.custom => {
                return Err(ApiStatus::unsupported_media_type(media));
            }
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&mut base, body)?
            }
            "application/apply-patch+yaml" => {
                if manager.is_empty() {
                    return Err(ApiStatus::bad_request(
                        "PATCH, fieldManager is required for apply requests",
                    ));
                }
                let config = apply::parse_config(body)?;
                if meta_str(&config, "name").is_some_and(|n| n != name) {
                    return Err(ApiStatus::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                // Apply to /status applies to status only; the rest of the configuration is ignored.
                base = apply::apply(current.as_ref(), &config, &manager, force)?;
                if current.is_none() {
                    let v = create(state, t, base.to_string().as_bytes(), dry_run).await?;
                    return Ok(json_response(201, &v));
                }
            }
            other => return Err(ApiStatus::unsupported_media_type(other)),
        }
        let Some(old) = current else {
            return Err(ApiStatus::not_found(&t.def.group, &t.def.plural, &name));
        };
        if let Some(rv) = meta_str(&base, "resourceVersion")
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiStatus::conflict(&t.def.group, &t.def.plural, &name));
        }
        let new = objects::prepare_update(t, &old, base)?;
        let new = objects::admit(state, t, Operation::Update, Some(new), Some(&old), dry_run)
            .await?
            .unwrap_or_default();
        if let Commit::Stored(v) = objects::commit(state, t, Some(&old), new, dry_run)? {
            return Ok(json_response(200, &v));
        }
    }
    Err(ApiStatus::conflict(&t.def.group, &t.def.plural, &name))
}

struct DeleteOptions {
    policy: Propagation,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_options(
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<DeleteOptions, ApiStatus> {
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        parse_body(body)?
    };
    let policy = opts["propagationPolicy"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| query.get("propagationPolicy").cloned())
        .or_else(|| match opts["orphanDependents"].as_bool() {
            Some(true) => Some("Orphan".to_owned()),
            _ => None,
        });
    Ok(DeleteOptions {
        policy: Propagation::parse(policy.as_deref())?,
        uid: opts["preconditions"]["uid"].as_str().map(str::to_owned),
        rv: opts["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
    })
}

async fn delete(
    state: &State,
    t: &Target,
    name: &str,
    body: &[u8],
    query: &HashMap<String, String>,
    dry_run: bool,
) -> Result<Value, ApiStatus> {
    if t.subresource.is_some() {
        return Err(ApiStatus::method_not_allowed());
    }
    let opts = delete_options(body, query)?;
    let old = objects::read(state, t, name)?;
    let precondition_failed = opts
        .uid
        .as_deref()
        .is_some_and(|u| Some(u) != meta_str(&old, "uid"))
        || opts
            .rv
            .as_deref()
            .is_some_and(|r| Some(r) != meta_str(&old, "resourceVersion"));
    if precondition_failed {
        return Err(ApiStatus::conflict(&t.def.group, &t.def.plural, name));
    }
    objects::admit(state, t, Operation::Delete, None, Some(&old), dry_run).await?;
    if dry_run {
        return Ok(old);
    }
    let mut inner = state.lock();
    let key = objects::key_of(t, name);
    // Like the real server: the object as deleted, or as it stays while finalizers run.
    objects::delete_locked(&mut inner, &t.def.storage_key(), &key, opts.policy)
        .map(|v| objects::with_api_version(v, &t.def))
        .ok_or_else(|| ApiStatus::not_found(&t.def.group, &t.def.plural, name))
}

async fn delete_collection(
    state: &State,
    t: &Target,
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<Value, ApiStatus> {
    let listed = list(state, t, query)?;
    let opts = delete_options(body, query)?;
    for item in listed["items"].as_array().into_iter().flatten() {
        let name = meta_str(item, "name").unwrap_or_default();
        let old = objects::read(state, t, name)?;
        objects::admit(state, t, Operation::Delete, None, Some(&old), false).await?;
        let mut inner = state.lock();
        let key = object_key(meta_str(item, "namespace"), name);
        objects::delete_locked(&mut inner, &t.def.storage_key(), &key, opts.policy);
    }
    Ok(listed)
}
