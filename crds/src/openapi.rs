//! Structural validation of an object against a CRD's `openAPIV3Schema`, the way the API server
//! does it before an object is stored.
//!
//! The schema is taken as plain JSON (`serde_json::Value`) so the same code checks our generated
//! CRDs, CRDs read from YAML files and CRDs created through the in-memory API server. Findings come
//! back as [`Diagnostics`] with the field paths (`spec.nicSelector.pfNames[0]`) and the wording
//! (`Unsupported value: "x": supported values: "a", "b"`) of the real API server, so a test can
//! compare what a person would see.
//!
//! [`prune_and_validate`] also drops fields the schema does not know, as the server does for
//! structural schemas without `x-kubernetes-preserve-unknown-fields`.

use serde_json::{Map, Value};

use crate::{Diagnostics, FieldPath};

/// Validate `value` against `schema`, reporting every violation.
pub fn validate(schema: &Value, value: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    check(schema, value, &FieldPath::root(), &mut diags);
    diags
}

/// Drop unknown fields as the API server does, then validate what is left.
///
/// `value` is a whole object: its `apiVersion`, `kind` and `metadata` are always kept, as the
/// server keeps them whatever the schema says.
pub fn prune_and_validate(schema: &Value, value: &Value) -> (Value, Diagnostics) {
    let mut pruned = value.clone();
    prune_root(schema, &mut pruned);
    let diags = validate(schema, &pruned);
    (pruned, diags)
}

/// Drop fields `schema` does not declare, keeping `apiVersion`, `kind` and `metadata` at the root.
pub fn prune_root(schema: &Value, value: &mut Value) {
    let kept = take_object_header(value);
    prune(schema, value);
    restore_object_header(value, kept);
}

type ObjectHeader = Vec<(String, Value)>;

const OBJECT_HEADER_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn take_object_header(value: &mut Value) -> ObjectHeader {
    let Some(map) = value.as_object_mut() else {
        return Vec::new();
    };
    OBJECT_HEADER_FIELDS
        .iter()
        .filter_map(|k| map.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect()
}

fn restore_object_header(value: &mut Value, header: ObjectHeader) {
    if let Some(map) = value.as_object_mut() {
        // Header first, so the stored object reads like one from a real server.
        let rest = std::mem::take(map);
        map.extend(header);
        map.extend(rest);
    }
}

fn bool_flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn prune(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let embedded = bool_flag(schema, "x-kubernetes-embedded-resource");
            let header = if embedded {
                let mut v = Value::Object(std::mem::take(map));
                let h = take_object_header(&mut v);
                if let Value::Object(m) = v {
                    *map = m;
                }
                h
            } else {
                Vec::new()
            };
            prune_object(schema, map);
            if embedded {
                let mut v = Value::Object(std::mem::take(map));
                restore_object_header(&mut v, header);
                if let Value::Object(m) = v {
                    *map = m;
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(schema: &Value, map: &mut Map<String, Value>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = bool_flag(schema, "x-kubernetes-preserve-unknown-fields");
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let child_schema = properties.and_then(|p| p.get(&key)).or(match additional {
            Some(Value::Object(_)) => additional,
            _ => None,
        });
        match child_schema {
            Some(s) => {
                if let Some(child) = map.get_mut(&key) {
                    prune(s, child);
                }
            }
            None => {
                let additional_allowed = matches!(additional, Some(Value::Bool(true)));
                if !preserve && !additional_allowed {
                    map.remove(&key);
                }
            }
        }
    }
}

/// The name the API server gives a JSON value's type in messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    value.as_i64().is_some() || value.as_u64().is_some()
}

/// How a value is shown after `Invalid value:`: strings quoted, everything else as JSON.
fn show(value: &Value) -> String {
    value.to_string()
}

/// The path as it appears inside a message (`spec.x in body ...`).
fn in_body(path: &FieldPath) -> String {
    if path.is_root() {
        "body".to_owned()
    } else {
        path.to_string()
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        _ => true,
    }
}

fn check(schema: &Value, value: &Value, path: &FieldPath, diags: &mut Diagnostics) {
    if value.is_null() {
        if bool_flag(schema, "nullable") {
            return;
        }
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            diags.error(
                path.clone(),
                format!(
                    "Invalid value: \"null\": {} in body must be of type {expected}: \"null\"",
                    in_body(path)
                ),
            );
            return;
        }
    }
    if !check_type(schema, value, path, diags) {
        // The real server stops at a type error: further checks on the wrong type only add noise.
        return;
    }
    check_enum(schema, value, path, diags);
    match value {
        Value::String(s) => check_string(schema, s, value, path, diags),
        Value::Number(_) => check_number(schema, value, path, diags),
        Value::Array(items) => check_array(schema, items, path, diags),
        Value::Object(map) => check_object(schema, map, path, diags),
        _ => {}
    }
    check_combinators(schema, value, path, diags);
}

fn check_type(schema: &Value, value: &Value, path: &FieldPath, diags: &mut Diagnostics) -> bool {
    if bool_flag(schema, "x-kubernetes-int-or-string") {
        if is_integer(value) || value.is_string() {
            return true;
        }
        diags.error(
            path.clone(),
            format!(
                "Invalid value: \"{}\": {} in body must be of type integer-or-string: \"{}\"",
                type_name(value),
                in_body(path),
                type_name(value)
            ),
        );
        return false;
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return true;
    };
    if type_matches(expected, value) {
        return true;
    }
    diags.error(
        path.clone(),
        format!(
            "Invalid value: \"{}\": {} in body must be of type {expected}: \"{}\"",
            type_name(value),
            in_body(path),
            type_name(value)
        ),
    );
    false
}

fn check_enum(schema: &Value, value: &Value, path: &FieldPath, diags: &mut Diagnostics) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let supported: Vec<String> = allowed.iter().map(show).collect();
    diags.error(
        path.clone(),
        format!(
            "Unsupported value: {}: supported values: {}",
            show(value),
            supported.join(", ")
        ),
    );
}

fn check_string(schema: &Value, s: &str, value: &Value, path: &FieldPath, diags: &mut Diagnostics) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        diags.error(
            path.clone(),
            format!("Too long: may not be more than {max} bytes"),
        );
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {}: {} in body should be at least {min} chars long",
                show(value),
                in_body(path)
            ),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => diags.error(
                path.clone(),
                format!(
                    "Invalid value: {}: {} in body should match '{pattern}'",
                    show(value),
                    in_body(path)
                ),
            ),
            Err(_) => diags.error(
                path.clone(),
                format!("Invalid value: {pattern:?}: the schema's pattern is not a valid regular expression"),
            ),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_matches(format, s)
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {}: {} in body must be of type {format}: {}",
                show(value),
                in_body(path),
                show(value)
            ),
        );
    }
}

/// The formats that are cheap to check; unknown formats pass, as in the real server.
fn format_matches(format: &str, s: &str) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match format {
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "ip" => s.parse::<IpAddr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let max = match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "mac" => {
            let parts: Vec<&str> = s.split(':').collect();
            matches!(parts.len(), 6 | 8 | 20)
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "uuid" => {
            let groups: Vec<usize> = s.split('-').map(str::len).collect();
            groups == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        }
        "date-time" => is_rfc3339(s),
        _ => true,
    }
}

fn is_rfc3339(s: &str) -> bool {
    // 2006-01-02T15:04:05Z or with fractional seconds and/or a numeric offset.
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && {
            let mut rest = &s[19..];
            if let Some(frac) = rest.strip_prefix('.') {
                let n = frac.chars().take_while(char::is_ascii_digit).count();
                if n == 0 {
                    return false;
                }
                rest = &frac[n..];
            }
            rest == "Z" || rest == "z" || {
                let r = rest.as_bytes();
                r.len() == 6
                    && matches!(r[0], b'+' | b'-')
                    && r[1..3].iter().all(u8::is_ascii_digit)
                    && r[3] == b':'
                    && r[4..6].iter().all(u8::is_ascii_digit)
            }
        }
}

fn check_number(schema: &Value, value: &Value, path: &FieldPath, diags: &mut Diagnostics) {
    let Some(n) = value.as_f64() else {
        return;
    };
    let shown = show(value);
    let at = in_body(path);
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = bool_flag(schema, "exclusiveMaximum");
        if exclusive && n >= max {
            diags.error(
                path.clone(),
                format!(
                    "Invalid value: {shown}: {at} in body should be less than {}",
                    bound(schema, "maximum")
                ),
            );
        } else if !exclusive && n > max {
            diags.error(
                path.clone(),
                format!(
                    "Invalid value: {shown}: {at} in body should be less than or equal to {}",
                    bound(schema, "maximum")
                ),
            );
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = bool_flag(schema, "exclusiveMinimum");
        if exclusive && n <= min {
            diags.error(
                path.clone(),
                format!(
                    "Invalid value: {shown}: {at} in body should be greater than {}",
                    bound(schema, "minimum")
                ),
            );
        } else if !exclusive && n < min {
            diags.error(
                path.clone(),
                format!(
                    "Invalid value: {shown}: {at} in body should be greater than or equal to {}",
                    bound(schema, "minimum")
                ),
            );
        }
    }
    if let Some(multiple) = schema.get("multipleOf").and_then(Value::as_f64)
        && multiple > 0.0
        && (n / multiple).fract() != 0.0
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {shown}: {at} in body should be a multiple of {}",
                bound(schema, "multipleOf")
            ),
        );
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let fits = match format {
            "int32" => value.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            "int64" => value.as_i64().is_some(),
            _ => true,
        };
        if !fits && is_integer(value) {
            diags.error(
                path.clone(),
                format!("Invalid value: {shown}: {at} in body must be of type {format}: {shown}"),
            );
        }
    }
}

/// A bound as written in the schema (`99`, not `99.0`).
fn bound(schema: &Value, key: &str) -> String {
    schema.get(key).map(Value::to_string).unwrap_or_default()
}

fn check_array(schema: &Value, items: &[Value], path: &FieldPath, diags: &mut Diagnostics) {
    let len = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        diags.error(
            path.clone(),
            format!("Too many: {len}: must have at most {max} items"),
        );
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {len}: {} in body should have at least {min} items",
                in_body(path)
            ),
        );
    }
    if bool_flag(schema, "uniqueItems") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                diags.error(path.index(i), format!("Duplicate value: {}", show(item)));
            }
        }
    }
    check_list_map_keys(schema, items, path, diags);
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &path.index(i), diags);
        }
    }
}

/// `x-kubernetes-list-type: set|map` forbids duplicates, as the server enforces.
fn check_list_map_keys(schema: &Value, items: &[Value], path: &FieldPath, diags: &mut Diagnostics) {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    diags.error(path.index(i), format!("Duplicate value: {}", show(item)));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| -> Vec<Value> {
                keys.iter()
                    .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                    .collect()
            };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i].iter().any(|earlier| key_of(earlier) == key) {
                    let shown: Map<String, Value> = keys
                        .iter()
                        .map(|k| {
                            (
                                (*k).to_owned(),
                                item.get(*k).cloned().unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    diags.error(
                        path.index(i),
                        format!("Duplicate value: {}", Value::Object(shown)),
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &FieldPath,
    diags: &mut Diagnostics,
) {
    let len = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && len > max
    {
        diags.error(
            path.clone(),
            format!("Too many: {len}: must have at most {max} items"),
        );
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && len < min
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {len}: {} in body should have at least {min} properties",
                in_body(path)
            ),
        );
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                diags.error(path.field(name), "Required value");
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let embedded = bool_flag(schema, "x-kubernetes-embedded-resource");
    for (key, child) in map {
        if embedded
            && OBJECT_HEADER_FIELDS.contains(&key.as_str())
            && properties.is_none_or(|p| !p.contains_key(key))
        {
            continue;
        }
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check(child_schema, child, &path.field(key), diags);
        } else if let Some(extra @ Value::Object(_)) = additional {
            check(extra, child, &path.field(key), diags);
        } else if matches!(additional, Some(Value::Bool(false))) {
            diags.error(path.field(key), "Forbidden: field not declared in schema");
        }
    }
    if embedded {
        for name in ["apiVersion", "kind"] {
            if map
                .get(name)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                diags.error(path.field(name), "Required value: must not be empty");
            }
        }
    }
}

fn check_combinators(schema: &Value, value: &Value, path: &FieldPath, diags: &mut Diagnostics) {
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(sub, value, path, diags);
        }
    }
    let passes = |sub: &Value| {
        let mut scratch = Diagnostics::new();
        check(sub, value, path, &mut scratch);
        !scratch.has_errors()
    };
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(passes)
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {}: {} in body must validate at least one schema (anyOf)",
                show(value),
                in_body(path)
            ),
        );
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|s| passes(s)).count() != 1
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {}: {} in body must validate one and only one schema (oneOf)",
                show(value),
                in_body(path)
            ),
        );
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        diags.error(
            path.clone(),
            format!(
                "Invalid value: {}: {} in body should not validate the schema (not)",
                show(value),
                in_body(path)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(d: &Diagnostics) -> Vec<String> {
        d.iter().map(ToString::to_string).collect()
    }

    fn policy_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["numVfs", "resourceName"],
                    "properties": {
                        "numVfs": {"type": "integer", "minimum": 0, "maximum": 256},
                        "priority": {"type": "integer", "minimum": 0, "maximum": 99},
                        "mtu": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
                        "resourceName": {"type": "string", "pattern": "^[a-zA-Z0-9_]+$", "maxLength": 8, "minLength": 1},
                        "deviceType": {"type": "string", "enum": ["netdevice", "vfio-pci"]},
                        "ratio": {"type": "number", "maximum": 1.5},
                        "nicSelector": {
                            "type": "object",
                            "properties": {
                                "pfNames": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string", "minLength": 2}}
                            }
                        },
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
                        "port": {"x-kubernetes-int-or-string": true},
                        "note": {"type": "string", "nullable": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "template": {
                            "type": "object",
                            "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object"}}
                        },
                        "ip": {"type": "string", "format": "ipv4"},
                        "small": {"type": "integer", "format": "int32"}
                    }
                }
            }
        })
    }

    fn valid_policy() -> Value {
        json!({"spec": {"numVfs": 4, "resourceName": "intel", "deviceType": "netdevice"}})
    }

    #[test]
    fn a_valid_object_has_no_findings() {
        assert!(validate(&policy_schema(), &valid_policy()).is_empty());
    }

    #[test]
    fn integer_is_not_number_and_type_errors_are_worded_like_the_server() {
        let mut v = valid_policy();
        v["spec"]["numVfs"] = json!(1.5);
        v["spec"]["ratio"] = json!(1);
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                r#"spec.numVfs: Invalid value: "number": spec.numVfs in body must be of type integer: "number""#
            ]
        );
        v["spec"]["numVfs"] = json!("4");
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                r#"spec.numVfs: Invalid value: "string": spec.numVfs in body must be of type integer: "string""#
            ]
        );
    }

    #[test]
    fn enum_reports_the_supported_values() {
        let mut v = valid_policy();
        v["spec"]["deviceType"] = json!("x");
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                r#"spec.deviceType: Unsupported value: "x": supported values: "netdevice", "vfio-pci""#
            ]
        );
    }

    #[test]
    fn bounds_are_inclusive_unless_exclusive() {
        let mut v = valid_policy();
        v["spec"]["priority"] = json!(100);
        v["spec"]["mtu"] = json!(0);
        v["spec"]["ratio"] = json!(2.0);
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.priority: Invalid value: 100: spec.priority in body should be less than or equal to 99",
                "spec.mtu: Invalid value: 0: spec.mtu in body should be greater than 0",
                "spec.ratio: Invalid value: 2.0: spec.ratio in body should be less than or equal to 1.5",
            ]
        );
        v["spec"]["priority"] = json!(99);
        v["spec"]["mtu"] = json!(1);
        v["spec"]["ratio"] = json!(1.5);
        assert!(validate(&policy_schema(), &v).is_empty());
    }

    #[test]
    fn required_fields_are_named_by_path() {
        let v = json!({"spec": {"deviceType": "netdevice"}});
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.numVfs: Required value",
                "spec.resourceName: Required value"
            ]
        );
    }

    #[test]
    fn strings_check_pattern_and_lengths() {
        let mut v = valid_policy();
        v["spec"]["resourceName"] = json!("bad-name!");
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.resourceName: Too long: may not be more than 8 bytes",
                r#"spec.resourceName: Invalid value: "bad-name!": spec.resourceName in body should match '^[a-zA-Z0-9_]+$'"#,
            ]
        );
        v["spec"]["resourceName"] = json!("");
        let found = messages(&validate(&policy_schema(), &v));
        assert_eq!(
            found[0],
            r#"spec.resourceName: Invalid value: "": spec.resourceName in body should be at least 1 chars long"#
        );
    }

    #[test]
    fn array_items_get_indexed_paths_and_count_limits() {
        let mut v = valid_policy();
        v["spec"]["nicSelector"] = json!({"pfNames": ["ens1", "e", "ens3"]});
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.nicSelector.pfNames: Too many: 3: must have at most 2 items",
                r#"spec.nicSelector.pfNames[1]: Invalid value: "e": spec.nicSelector.pfNames[1] in body should be at least 2 chars long"#,
            ]
        );
        v["spec"]["nicSelector"] = json!({"pfNames": []});
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.nicSelector.pfNames: Invalid value: 0: spec.nicSelector.pfNames in body should have at least 1 items"
            ]
        );
    }

    #[test]
    fn maps_validate_values_and_count_properties() {
        let mut v = valid_policy();
        v["spec"]["labels"] = json!({"a": "x", "b": 1, "c": "z"});
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.labels: Too many: 3: must have at most 2 items",
                r#"spec.labels.b: Invalid value: "integer": spec.labels.b in body must be of type string: "integer""#,
            ]
        );
    }

    #[test]
    fn int_or_string_nullable_and_format() {
        let mut v = valid_policy();
        v["spec"]["port"] = json!("http");
        v["spec"]["note"] = Value::Null;
        v["spec"]["ip"] = json!("10.0.0.1");
        v["spec"]["small"] = json!(7);
        assert!(validate(&policy_schema(), &v).is_empty());
        v["spec"]["port"] = json!(true);
        v["spec"]["ip"] = json!("10.0.0.300");
        v["spec"]["small"] = json!(3_000_000_000_i64);
        v["spec"]["deviceType"] = Value::Null;
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                r#"spec.deviceType: Invalid value: "null": spec.deviceType in body must be of type string: "null""#,
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer-or-string: "boolean""#,
                r#"spec.ip: Invalid value: "10.0.0.300": spec.ip in body must be of type ipv4: "10.0.0.300""#,
                "spec.small: Invalid value: 3000000000: spec.small in body must be of type int32: 3000000000",
            ]
        );
    }

    #[test]
    fn pruning_drops_unknown_fields_but_keeps_preserved_and_embedded_headers() {
        let v = json!({
            "apiVersion": "sriovnetwork.openshift.io/v1",
            "kind": "SriovNetworkNodePolicy",
            "metadata": {"name": "p", "anything": 1},
            "status": {"x": 1},
            "spec": {
                "numVfs": 4, "resourceName": "intel", "unknown": true,
                "extra": {"free": {"form": 1}},
                "nicSelector": {"pfNames": ["ens1"], "vendor": "8086"},
                "labels": {"keep": "me"},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}, "junk": 1}
            }
        });
        let (pruned, diags) = prune_and_validate(&policy_schema(), &v);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            pruned,
            json!({
                "apiVersion": "sriovnetwork.openshift.io/v1",
                "kind": "SriovNetworkNodePolicy",
                "metadata": {"name": "p", "anything": 1},
                "spec": {
                    "numVfs": 4, "resourceName": "intel",
                    "extra": {"free": {"form": 1}},
                    "nicSelector": {"pfNames": ["ens1"]},
                    "labels": {"keep": "me"},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}
                }
            })
        );
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let mut v = valid_policy();
        v["spec"]["template"] = json!({"spec": {}});
        assert_eq!(
            messages(&validate(&policy_schema(), &v)),
            vec![
                "spec.template.apiVersion: Required value: must not be empty",
                "spec.template.kind: Required value: must not be empty",
            ]
        );
    }

    #[test]
    fn list_type_map_rejects_duplicate_keys() {
        let schema = json!({
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object"}
        });
        let d = validate(
            &schema,
            &json!([{"name": "a"}, {"name": "b"}, {"name": "a", "x": 1}]),
        );
        assert_eq!(messages(&d), vec![r#"[2]: Duplicate value: {"name":"a"}"#]);
    }

    #[test]
    fn combinators_and_date_time() {
        let schema =
            json!({"anyOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]});
        assert!(validate(&schema, &json!(3)).is_empty());
        assert!(validate(&schema, &json!("2024-01-02T03:04:05.123+02:00")).is_empty());
        assert_eq!(
            messages(&validate(&schema, &json!("yesterday"))),
            vec![
                r#"Invalid value: "yesterday": body in body must validate at least one schema (anyOf)"#
            ]
        );
    }

    #[test]
    fn the_generated_nad_crd_schema_accepts_a_nad() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(crate::NetworkAttachmentDefinition::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "macvlan"},
            "spec": {"config": "{}"}
        });
        let (pruned, diags) = prune_and_validate(schema, &nad);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(pruned, nad);
    }
}
