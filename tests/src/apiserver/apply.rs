//! Server-side apply, simplified: ownership is tracked per field manager for `Apply` operations
//! only, as `managedFields` entries in the FieldsV1 format. An apply merges its configuration into
//! the live object, removes fields the same manager applied before and no longer applies (unless
//! another applier owns them), and conflicts when another applier owns a field it would change,
//! unless `force`. Non-apply writes take no ownership (see tests/README.md).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{meta, patch::merge_key, status::ApiStatus};

type FieldPath = Vec<String>;

/// Parse an apply body: YAML or JSON (JSON is YAML).
pub fn parse_config(body: &[u8]) -> Result<Value, ApiStatus> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiStatus::bad_request(format!("apply body is not UTF-8: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiStatus::bad_request(format!("error decoding YAML: {e}")))
}

fn key_element(item: &Value, key: &str) -> String {
    let mut m = Map::new();
    m.insert(
        key.to_owned(),
        item.get(key).cloned().unwrap_or(Value::Null),
    );
    format!("k:{}", Value::Object(m))
}

/// The leaf fields a configuration sets.
fn leaf_paths(
    v: &Value,
    prefix: &mut FieldPath,
    out: &mut BTreeSet<FieldPath>,
    field: &str,
    root: bool,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if root && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if prefix.len() == 1
                    && prefix[0] == "f:metadata"
                    && matches!(k.as_str(), "name" | "namespace")
                {
                    continue;
                }
                prefix.push(format!("f:{k}"));
                leaf_paths(child, prefix, out, k, false);
                prefix.pop();
            }
        }
        Value::Array(items) if merge_key(field).is_some() => {
            let key = merge_key(field).unwrap_or("name");
            for item in items {
                prefix.push(key_element(item, key));
                leaf_paths(item, prefix, out, "", false);
                prefix.pop();
            }
            if items.is_empty() {
                out.insert(prefix.clone());
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn to_fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for el in p {
            if !cur.get(el).is_some_and(Value::is_object) {
                cur[el.as_str()] = json!({});
            }
            cur = &mut cur[el.as_str()];
        }
    }
    root
}

fn from_fields_v1(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                if k == "." {
                    continue;
                }
                prefix.push(k.clone());
                from_fields_v1(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v);
    };
    let next = if let Some(f) = first.strip_prefix("f:") {
        v.get(f)?
    } else if let Some(k) = first.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        v.as_array()?
            .iter()
            .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?
    } else {
        return None;
    };
    lookup(next, rest)
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(f) = first.strip_prefix("f:") {
        if rest.is_empty() {
            if let Some(m) = v.as_object_mut() {
                m.remove(f);
            }
        } else if let Some(child) = v.get_mut(f) {
            remove_path(child, rest);
        }
    } else if let Some(k) = first.strip_prefix("k:")
        && let Ok(key) = serde_json::from_str::<Map<String, Value>>(k)
        && let Some(items) = v.as_array_mut()
    {
        let matches = |item: &Value| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv));
        if rest.is_empty() {
            items.retain(|i| !matches(i));
        } else if let Some(item) = items.iter_mut().find(|i| matches(i)) {
            remove_path(item, rest);
        }
    }
}

/// Deep merge of an applied configuration into the live object.
fn merge(live: &mut Value, config: &Value, field: &str) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, cv) in c {
                match l.get_mut(k) {
                    Some(lv) => merge(lv, cv, k),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) if merge_key(field).is_some() => {
            let key = merge_key(field).unwrap_or("name");
            for item in c {
                match l.iter_mut().find(|x| x.get(key) == item.get(key)) {
                    Some(existing) => merge(existing, item, ""),
                    None => l.push(item.clone()),
                }
            }
        }
        (l, c) => *l = c.clone(),
    }
}

fn manager_paths(entry: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    from_fields_v1(&entry["fieldsV1"], &mut Vec::new(), &mut out);
    out
}

fn managed_entry(manager: &str, api_version: &str, paths: &BTreeSet<FieldPath>) -> Value {
    json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": meta::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    })
}

fn render(path: &[String]) -> String {
    path.iter()
        .map(|p| {
            if let Some(f) = p.strip_prefix("f:") {
                format!(".{f}")
            } else {
                format!("[{}]", &p[2..])
            }
        })
        .collect()
}

/// The object an apply of `config` by `manager` produces from `live` (None: create).
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiStatus> {
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut applied = BTreeSet::new();
    leaf_paths(config, &mut Vec::new(), &mut applied, "", true);
    let Some(live) = live else {
        let mut obj = config.clone();
        obj["metadata"]["managedFields"] = json!([managed_entry(manager, &api_version, &applied)]);
        return Ok(obj);
    };
    let mut obj = live.clone();
    let entries: Vec<Value> = live["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .filter(|e| {
            e["manager"].as_str() == Some(manager) && e["operation"].as_str() == Some("Apply")
        })
        .flat_map(manager_paths)
        .collect();
    let mut others: Vec<(String, BTreeSet<FieldPath>, Value)> = entries
        .iter()
        .filter(|e| {
            !(e["manager"].as_str() == Some(manager) && e["operation"].as_str() == Some("Apply"))
        })
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or_default().to_owned(),
                manager_paths(e),
                e.clone(),
            )
        })
        .collect();
    let mut conflicts = Vec::new();
    for (other, paths, entry) in &mut others {
        if entry["operation"].as_str() != Some("Apply") {
            continue;
        }
        let contested: Vec<FieldPath> = paths
            .iter()
            .filter(|p| applied.contains(*p) && lookup(live, p) != lookup(config, p))
            .cloned()
            .collect();
        if force {
            for p in &contested {
                paths.remove(p);
            }
        } else {
            conflicts.extend(
                contested
                    .iter()
                    .map(|p| format!("conflict with \"{other}\": {}", render(p))),
            );
        }
    }
    if !conflicts.is_empty() {
        let n = conflicts.len();
        let plural = if n == 1 { "conflict" } else { "conflicts" };
        return Err(ApiStatus::new(
            409,
            "Conflict",
            format!("Apply failed with {n} {plural}: {}", conflicts.join(", ")),
        ));
    }
    for gone in previous.difference(&applied) {
        if !others.iter().any(|(_, paths, _)| paths.contains(gone)) {
            remove_path(&mut obj, gone);
        }
    }
    merge(&mut obj, config, "");
    let mut managed: Vec<Value> = others
        .into_iter()
        .filter(|(_, paths, _)| !paths.is_empty())
        .map(|(_, paths, mut entry)| {
            if entry["operation"].as_str() == Some("Apply") {
                entry["fieldsV1"] = to_fields_v1(&paths);
            }
            entry
        })
        .collect();
    managed.push(managed_entry(manager, &api_version, &applied));
    obj["metadata"]["managedFields"] = json!(managed);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    #[test]
    fn apply_creates_merges_and_removes_what_the_manager_stopped_applying() {
        let created = apply(None, &cm(json!({"a": "1", "b": "2"})), "one", false).unwrap();
        assert_eq!(
            created["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        );
        let mut live = created.clone();
        live["data"]["z"] = json!("by-update");
        let next = apply(Some(&live), &cm(json!({"a": "1"})), "one", false).unwrap();
        assert_eq!(next["data"], json!({"a": "1", "z": "by-update"}));
    }

    #[test]
    fn another_applier_conflicts_unless_forced() {
        let live = apply(None, &cm(json!({"a": "1"})), "one", false).unwrap();
        let err = apply(Some(&live), &cm(json!({"a": "2"})), "two", false).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.a"
        );
        // Same value: shared ownership, no conflict.
        assert!(apply(Some(&live), &cm(json!({"a": "1"})), "two", false).is_ok());
        let forced = apply(Some(&live), &cm(json!({"a": "2"})), "two", true).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["two"]);
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let pod = |c: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": c}});
        let live = apply(
            None,
            &pod(json!([{"name": "a", "image": "a"}])),
            "one",
            false,
        )
        .unwrap();
        let both = apply(
            Some(&live),
            &pod(json!([{"name": "b", "image": "b"}])),
            "two",
            false,
        )
        .unwrap();
        assert_eq!(
            both["spec"]["containers"],
            json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])
        );
    }
}
