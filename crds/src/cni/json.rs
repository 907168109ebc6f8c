//! Typed reads of keys from a JSON object, with errors that name the key. Shared by the CNI
//! configuration and the Multus configuration, which both keep the object as written (unknown
//! keys preserved) and check the keys they know.
//!
//! `null` reads as absent for optional keys, as Go's `encoding/json` leaves the field at its zero
//! value: a config libcni accepts must not be rejected here.

use serde_json::{Map, Value};

use super::config::{ConfigError, ConfigErrorKind};
use crate::FieldPath;

/// How a JSON value's type is named in messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn wrong_type(path: FieldPath, expected: &'static str, found: &Value) -> ConfigError {
    ConfigError::new(
        path,
        ConfigErrorKind::WrongType {
            expected,
            found: json_type(found),
        },
    )
}

/// Where a value sits: the key `name` of the object at `parent`. The full path is built only
/// when an error needs it, since these checks run on every parse.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub parent: &'a FieldPath,
    pub name: &'a str,
}

impl At<'_> {
    pub fn path(&self) -> FieldPath {
        self.parent.field(self.name)
    }
}

pub(crate) fn as_str<'v>(value: &'v Value, at: At<'_>) -> Result<Option<&'v str>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(wrong_type(at.path(), "a string", other)),
    }
}

pub(crate) fn as_bool(value: &Value, at: At<'_>) -> Result<Option<bool>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(wrong_type(at.path(), "a boolean", other)),
    }
}

/// An integer that fits `i64` (Go `int`).
pub(crate) fn as_int(value: &Value, at: At<'_>) -> Result<Option<i64>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| wrong_type(at.path(), "an integer", value)),
        other => Err(wrong_type(at.path(), "an integer", other)),
    }
}

pub(crate) fn as_object<'v>(
    value: &'v Value,
    at: At<'_>,
) -> Result<Option<&'v Map<String, Value>>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        other => Err(wrong_type(at.path(), "an object", other)),
    }
}

/// A list of strings; `null` entries are rejected (Go would turn them into `""`, which no reader
/// of these lists can use).
pub(crate) fn as_str_list<'v>(
    value: &'v Value,
    at: At<'_>,
) -> Result<Option<Vec<&'v str>>, ConfigError> {
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        other => return Err(wrong_type(at.path(), "a list of strings", other)),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.as_str()),
            other => Err(wrong_type(at.path().index(i), "a string", other)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A map of capability names to booleans (`null` values read as `false`, like Go).
pub(crate) fn as_bool_map<'v>(
    value: &'v Value,
    at: At<'_>,
) -> Result<Option<Vec<(&'v str, bool)>>, ConfigError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(m) => m,
        other => return Err(wrong_type(at.path(), "a map of names to booleans", other)),
    };
    map.iter()
        .map(|(name, v)| match v {
            Value::Bool(b) => Ok((name.as_str(), *b)),
            Value::Null => Ok((name.as_str(), false)),
            other => Err(wrong_type(at.path().key(name), "a boolean", other)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A view of one JSON object at a known path, reading keys by name.
pub(crate) struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a FieldPath,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, path: &'a FieldPath) -> Self {
        Self { map, path }
    }

    /// The value of `key`, treating `null` as absent.
    pub fn present(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn read<T>(
        &self,
        key: &str,
        read: impl FnOnce(&'a Value, At<'_>) -> Result<Option<T>, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => read(
                v,
                At {
                    parent: self.path,
                    name: key,
                },
            ),
        }
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        self.read(key, as_str)
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.read(key, as_bool)
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.read(key, as_int)
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
        self.read(key, as_object)
    }

    pub fn str_list(&self, key: &str) -> Result<Option<Vec<&'a str>>, ConfigError> {
        self.read(key, as_str_list)
    }

    pub fn bool_map(&self, key: &str) -> Result<Option<Vec<(&'a str, bool)>>, ConfigError> {
        self.read(key, as_bool_map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn typed_reads_name_the_key_on_mismatch() {
        let m =
            obj(json!({"s":"x","n":null,"b":"true","l":["a",1],"c":{"ips":true,"mac":null,"x":1}}));
        let root = FieldPath::new("spec");
        let f = Fields::new(&m, &root);
        assert_eq!(f.str("s").unwrap(), Some("x"));
        assert_eq!(f.str("n").unwrap(), None);
        assert_eq!(f.str("missing").unwrap(), None);
        let e = f.bool("b").unwrap_err();
        assert_eq!(e.path.as_str(), "spec.b");
        assert_eq!(e.to_string(), "spec.b must be a boolean, not a string");
        assert_eq!(f.str_list("l").unwrap_err().path.as_str(), "spec.l[1]");
        assert_eq!(f.bool_map("c").unwrap_err().path.as_str(), "spec.c[x]");
        let m = obj(json!({"c":{"ips":true,"mac":null}, "d": 3, "i": 1.5}));
        let f = Fields::new(&m, &root);
        assert_eq!(
            f.bool_map("c").unwrap().unwrap(),
            vec![("ips", true), ("mac", false)]
        );
        assert!(
            f.bool_map("d")
                .unwrap_err()
                .to_string()
                .contains("map of names to booleans")
        );
        assert!(f.int("i").is_err());
    }
}
