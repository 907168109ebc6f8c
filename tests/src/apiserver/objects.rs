//! Object semantics shared by every verb: server-set metadata, status subresource rules,
//! generation, optimistic concurrency, finalizers, cascading deletion, and the commit step.

use serde_json::{Value, json};

use super::{
    Inner, State, Target, admission, builtin, crd, meta,
    resources::ResourceDef,
    status::ApiStatus,
    store::{StorageKey, meta_str, object_key},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// The outcome of committing a computed object.
pub enum Commit {
    Stored(Value),
    /// The object changed between read and commit; a patch recomputes, an update conflicts.
    Stale,
}

pub fn target_name(t: &Target) -> Result<&str, ApiStatus> {
    t.name.as_deref().ok_or_else(ApiStatus::method_not_allowed)
}

pub fn key_of(t: &Target, name: &str) -> String {
    object_key(
        if t.def.namespaced {
            t.namespace.as_deref()
        } else {
            None
        },
        name,
    )
}

pub fn read(state: &State, t: &Target, name: &str) -> Result<Value, ApiStatus> {
    let inner = state.lock();
    inner
        .store
        .get(&t.def.storage_key(), &key_of(t, name))
        .cloned()
        .map(|o| with_api_version(o, &t.def))
        .ok_or_else(|| ApiStatus::not_found(&t.def.group, &t.def.plural, name))
}

/// Objects are stored once per resource; they are shown in the version they were asked for.
pub fn with_api_version(mut obj: Value, def: &ResourceDef) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".to_owned(), json!(def.api_version()));
        m.insert("kind".to_owned(), json!(def.kind));
    }
    obj
}

fn metadata_mut(obj: &mut Value) -> Result<&mut serde_json::Map<String, Value>, ApiStatus> {
    if !obj.is_object() {
        return Err(ApiStatus::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiStatus::bad_request("metadata is not an object"))
}

/// Fill in what the server sets on create.
pub fn prepare_create(state: &State, t: &Target, mut obj: Value) -> Result<Value, ApiStatus> {
    let def = &t.def;
    let url_ns = t.namespace.clone();
    let meta = metadata_mut(&mut obj)?;
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let name = meta::generated_name(prefix);
                meta.insert("name".to_owned(), json!(name));
            }
            _ => {
                return Err(ApiStatus::invalid(
                    &def.kind,
                    &def.group,
                    "",
                    &[(
                        "metadata.name".to_owned(),
                        "Required value: name or generateName is required".to_owned(),
                    )],
                ));
            }
        }
    }
    if def.namespaced {
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ns = match (url_ns, body_ns) {
            (Some(u), Some(b)) if u != b => {
                return Err(ApiStatus::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(u), _) => u,
            (None, Some(b)) => b,
            (None, None) => "default".to_owned(),
        };
        meta.insert("namespace".to_owned(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    for server_owned in [
        "uid",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    meta.insert("uid".to_owned(), json!(meta::uid()));
    meta.insert("creationTimestamp".to_owned(), json!(meta::now()));
    if def.tracks_generation() {
        meta.insert("generation".to_owned(), json!(1));
    } else {
        meta.remove("generation");
    }
    let mut obj = with_api_version(obj, def);
    if def.status_subresource {
        // Status is written through /status only; creation starts from the server's own status.
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        match (def.group.as_str(), def.plural.as_str()) {
            ("", "namespaces") => obj["status"] = json!({"phase": "Active"}),
            ("", "pods") => obj["status"] = json!({"phase": "Pending"}),
            _ => {}
        }
    }
    if def.namespaced {
        let ns = meta_str(&obj, "namespace").unwrap_or_default().to_owned();
        let exists = state.lock().store.get(&ns_storage(), &ns).is_some();
        if !exists {
            return Err(ApiStatus::not_found("", "namespaces", &ns));
        }
    }
    Ok(obj)
}

pub fn ns_storage() -> StorageKey {
    (String::new(), "namespaces".to_owned())
}

/// Apply the update rules to a computed new object: identity and server fields come from the
/// old object; the status subresource decides which half of the object a write may change.
pub fn prepare_update(t: &Target, old: &Value, mut new: Value) -> Result<Value, ApiStatus> {
    let def = &t.def;
    let name = meta_str(old, "name").unwrap_or_default().to_owned();
    if let Some(n) = meta_str(&new, "name")
        && n != name
    {
        return Err(ApiStatus::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let status_write = t.subresource.as_deref() == Some("status");
    if status_write {
        // Only status changes; everything else is kept from the stored object.
        let mut merged = old.clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // Pods: the real pod status strategy keeps label and annotation changes made through
        // /status (Multus writes network-status with UpdateStatus).
        if def.group.is_empty() && def.plural == "pods" {
            for key in ["labels", "annotations"] {
                match new.pointer(&format!("/metadata/{key}")) {
                    Some(v) => merged["metadata"][key] = v.clone(),
                    None => {
                        if let Some(m) = merged["metadata"].as_object_mut() {
                            m.remove(key);
                        }
                    }
                }
            }
        }
        new = merged;
    } else if def.status_subresource {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    let meta = metadata_mut(&mut new)?;
    for kept in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ] {
        match old.get("metadata").and_then(|m| m.get(kept)) {
            Some(v) => meta.insert(kept.to_owned(), v.clone()),
            None => meta.remove(kept),
        };
    }
    meta.insert("name".to_owned(), json!(name));
    if meta.get("managedFields").is_none()
        && let Some(mf) = old.get("metadata").and_then(|m| m.get("managedFields"))
    {
        meta.insert("managedFields".to_owned(), mf.clone());
    }
    let mut new = with_api_version(new, def);
    if def.tracks_generation() && !status_write && spec_changed(old, &new) {
        let generation = old
            .get("metadata")
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    Ok(new)
}

/// Anything outside metadata and status changed.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            for k in ["metadata", "status", "apiVersion", "kind"] {
                m.remove(k);
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Equal but for the resourceVersion: a write that changes nothing stores nothing.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// Validation of custom resources, then admission, ahead of the commit.
pub async fn admit(
    state: &State,
    t: &Target,
    op: Operation,
    new: Option<Value>,
    old: Option<&Value>,
    dry_run: bool,
) -> Result<Option<Value>, ApiStatus> {
    let validate = |obj: Value| -> Result<Value, ApiStatus> {
        if t.def.custom {
            return crd::validate_custom(&t.def, obj, old);
        }
        builtin::validate(&t.def, &obj)?;
        Ok(obj)
    };
    let validated = new.map(validate).transpose()?;
    let mutated = admission::admit(state, t, op, validated, old, dry_run).await?;
    mutated.map(validate).transpose()
}

/// Store `new` if the stored object is still `expected_rv` (None: must not exist yet).
pub fn commit(
    state: &State,
    t: &Target,
    expected: Option<&Value>,
    mut new: Value,
    dry_run: bool,
) -> Result<Commit, ApiStatus> {
    let name = meta_str(&new, "name").unwrap_or_default().to_owned();
    let key = key_of_obj(&t.def, &new);
    let storage = t.def.storage_key();
    let mut inner = state.lock();
    let current = inner.store.get(&storage, &key);
    match (expected, current) {
        (None, Some(_)) => {
            return Err(ApiStatus::already_exists(
                &t.def.group,
                &t.def.plural,
                &name,
            ));
        }
        (Some(_), None) => return Err(ApiStatus::not_found(&t.def.group, &t.def.plural, &name)),
        (Some(e), Some(c)) if meta_str(e, "resourceVersion") != meta_str(c, "resourceVersion") => {
            return Ok(Commit::Stale);
        }
        _ => {}
    }
    if let Some(old) = expected
        && same_object(old, &new)
    {
        return Ok(Commit::Stored(with_api_version(old.clone(), &t.def)));
    }
    if is_crd(&t.def) {
        crd::set_established_status(&mut new);
    }
    if dry_run {
        return Ok(Commit::Stored(new));
    }
    let finished_deleting = new
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some()
        && new
            .get("metadata")
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if finished_deleting {
        let stored = inner.store.put(&storage, &key, new);
        delete_now(&mut inner, &storage, &key, Propagation::Background);
        return Ok(Commit::Stored(with_api_version(stored, &t.def)));
    }
    let stored = inner.store.put(&storage, &key, new);
    if is_crd(&t.def) {
        crd::register(&mut inner.registry, &stored);
    }
    Ok(Commit::Stored(with_api_version(stored, &t.def)))
}

fn key_of_obj(def: &ResourceDef, obj: &Value) -> String {
    let ns = if def.namespaced {
        meta_str(obj, "namespace")
    } else {
        None
    };
    object_key(ns, meta_str(obj, "name").unwrap_or_default())
}

pub fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiStatus> {
        match s {
            None | Some("Background") => Ok(Self::Background),
            Some("Foreground") => Ok(Self::Foreground),
            Some("Orphan") => Ok(Self::Orphan),
            Some(other) => Err(ApiStatus::bad_request(format!(
                "unsupported propagationPolicy: {other:?}"
            ))),
        }
    }
}

/// Begin deleting an object: with finalizers it only gets a deletionTimestamp; without, it goes.
pub fn delete_locked(
    inner: &mut Inner,
    storage: &StorageKey,
    key: &str,
    policy: Propagation,
) -> Option<Value> {
    let mut obj = inner.store.get(storage, key)?.clone();
    let finalizers = obj
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if finalizers {
        if obj
            .get("metadata")
            .and_then(|m| m.get("deletionTimestamp"))
            .is_some()
        {
            return Some(obj);
        }
        obj["metadata"]["deletionTimestamp"] = json!(meta::now());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        return Some(inner.store.put(storage, key, obj));
    }
    delete_now(inner, storage, key, policy)
}

/// Remove an object and deal with what depended on it.
fn delete_now(
    inner: &mut Inner,
    storage: &StorageKey,
    key: &str,
    policy: Propagation,
) -> Option<Value> {
    let removed = inner.store.remove(storage, key)?;
    let uid = meta_str(&removed, "uid").unwrap_or_default().to_owned();
    collect_dependents(inner, &uid, policy);
    if storage.0 == "apiextensions.k8s.io" && storage.1 == "customresourcedefinitions" {
        crd::unregister(inner, &removed);
    }
    if storage.0.is_empty() && storage.1 == "namespaces" {
        let ns = meta_str(&removed, "name").unwrap_or_default().to_owned();
        let contents: Vec<(StorageKey, String)> = inner
            .store
            .all()
            .filter(|(_, _, v)| meta_str(v, "namespace") == Some(ns.as_str()))
            .map(|(s, k, _)| (s.clone(), k.clone()))
            .collect();
        for (s, k) in contents {
            delete_locked(inner, &s, &k, Propagation::Background);
        }
    }
    Some(removed)
}

/// The garbage collector's work for one deleted owner: dependents owned only by it are deleted
/// (or orphaned), other dependents lose the reference.
fn collect_dependents(inner: &mut Inner, owner_uid: &str, policy: Propagation) {
    if owner_uid.is_empty() {
        return;
    }
    let dependents: Vec<(StorageKey, String, Value)> = inner
        .store
        .all()
        .filter(|(_, _, v)| {
            owner_refs(v)
                .iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
        })
        .map(|(s, k, v)| (s.clone(), k.clone(), v.clone()))
        .collect();
    for (storage, key, mut obj) in dependents {
        let remaining: Vec<Value> = owner_refs(&obj)
            .into_iter()
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
            .collect();
        if policy == Propagation::Orphan || !remaining.is_empty() {
            obj["metadata"]["ownerReferences"] = json!(remaining);
            if remaining.is_empty()
                && let Some(m) = obj["metadata"].as_object_mut()
            {
                m.remove("ownerReferences");
            }
            inner.store.put(&storage, &key, obj);
        } else {
            delete_locked(inner, &storage, &key, Propagation::Background);
        }
    }
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}
