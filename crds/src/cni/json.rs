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

/// A view of one JSON object at a known path.
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

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(self.path.field(key), "a string", other)),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(self.path.field(key), "a boolean", other)),
        }
    }

    /// An integer that fits `i64` (Go `int`).
    pub fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.present(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(self.path.field(key), "an integer", v)),
            Some(other) => Err(wrong_type(self.path.field(key), "an integer", other)),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(wrong_type(self.path.field(key), "an object", other)),
        }
    }

    /// A list of strings; `null` entries are rejected (Go would turn them into `""`, which no
    /// reader of these lists can use).
    pub fn str_list(&self, key: &str) -> Result<Option<Vec<&'a str>>, ConfigError> {
        let items = match self.present(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(wrong_type(self.path.field(key), "a list of strings", other));
            }
        };
        let path = self.path.field(key);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.as_str()),
                other => Err(wrong_type(path.index(i), "a string", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A map of capability names to booleans (`null` values read as `false`, like Go).
    pub fn bool_map(&self, key: &str) -> Result<Option<Vec<(&'a str, bool)>>, ConfigError> {
        let Some(map) = self.object(key).map_err(|e| {
            ConfigError::new(
                e.path,
                ConfigErrorKind::WrongType {
                    expected: "a map of names to booleans",
                    found: match e.kind {
                        ConfigErrorKind::WrongType { found, .. } => found,
                        _ => "another type",
                    },
                },
            )
        })?
        else {
            return Ok(None);
        };
        let path = self.path.field(key);
        map.iter()
            .map(|(name, v)| match v {
                Value::Bool(b) => Ok((name.as_str(), *b)),
                Value::Null => Ok((name.as_str(), false)),
                other => Err(wrong_type(path.key(name), "a boolean", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
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
