//! Free-form values of a selection element (`cni-args`, vendor keys) kept as their JSON text.
//!
//! The webhook and the plugin parse every pod's networks annotation, but only the plugin's
//! delegate builder ever looks inside `cni-args`, and nothing looks inside a vendor key's value.
//! Building a `serde_json::Map` for each at parse time (an IndexMap, a SipHash per key, an
//! allocation per key and string) was a fifth of the parse; the text is borrowed instead and
//! read into a [`Value`] by the one consumer that needs it.

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// The JSON text of one value, as written in the annotation (or as serde_json writes a value).
///
/// Always valid JSON: it is only made by the parsers, which check it, or from a [`Value`]. Two
/// texts are equal when they read as the same value (`{"a":1}` equals `{ "a": 1 }`), as two
/// `Value`s would be. Serialised as the value it reads as, so a selection writes it back as
/// serde_json reads and writes it.
#[derive(Clone)]
pub struct RawJson<'a>(Cow<'a, str>);

impl<'a> RawJson<'a> {
    /// The text, if serde_json reads it as a value.
    pub fn parse(text: impl Into<Cow<'a, str>>) -> Result<Self, serde_json::Error> {
        let text = text.into();
        serde_json::from_str::<Value>(&text)?;
        Ok(Self(text))
    }

    /// Text the caller has checked is one JSON value that serde_json reads.
    pub(super) fn checked(text: &'a str) -> Self {
        Self(Cow::Borrowed(text))
    }

    /// The text of a value.
    pub fn from_value(value: &Value) -> Self {
        Self(Cow::Owned(value.to_string()))
    }

    /// The text of an object.
    pub fn from_object(object: &Map<String, Value>) -> Self {
        // Writing a map with string keys to a String cannot fail; "{}" keeps the type's promise.
        Self(Cow::Owned(
            serde_json::to_string(object).unwrap_or_else(|_| "{}".to_owned()),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value the text reads as.
    pub fn to_value(&self) -> Value {
        // Valid by construction; `Null` is unreachable.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The members, when the value is an object.
    pub fn to_object(&self) -> Option<Map<String, Value>> {
        match self.to_value() {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    pub fn into_owned(self) -> RawJson<'static> {
        RawJson(Cow::Owned(self.0.into_owned()))
    }
}

impl PartialEq for RawJson<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || self.to_value() == other.to_value()
    }
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Through `Value`, so any serializer (not only serde_json's) gets the value itself, and
        // the output is what the `Map`-based type wrote before.
        self.to_value().serialize(s)
    }
}

/// The keys of a selection element that are not multi-net-spec keys (vendor keys), in the order
/// they were first written, each with its value's text. A repeated key keeps its first position
/// and its last value, as a `serde_json::Map` (and Go's decoder) does.
#[derive(Clone, Debug, Default)]
pub struct VendorKeys<'a>(Vec<(Cow<'a, str>, RawJson<'a>)>);

impl<'a> VendorKeys<'a> {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sets `key`; returns its previous value, if any.
    pub fn insert(
        &mut self,
        key: impl Into<Cow<'a, str>>,
        value: RawJson<'a>,
    ) -> Option<RawJson<'a>> {
        let key = key.into();
        // A handful of keys at most: a linear search beats hashing.
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&RawJson<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawJson<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn into_owned(self) -> VendorKeys<'static> {
        VendorKeys(
            self.0
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
        )
    }
}

/// Equal when they hold the same keys with equal values, in any order (as `Map`s compare).
impl PartialEq for VendorKeys<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<'a, K: Into<Cow<'a, str>>> FromIterator<(K, RawJson<'a>)> for VendorKeys<'a> {
    fn from_iter<I: IntoIterator<Item = (K, RawJson<'a>)>>(iter: I) -> Self {
        let mut keys = Self::new();
        for (k, v) in iter {
            keys.insert(k, v);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_compare_as_the_values_they_read_as() {
        let a = RawJson::parse(r#"{"a":1,"b":[true]}"#).unwrap();
        let b = RawJson::parse("{ \"b\" : [ true ], \"a\": 1 }").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, RawJson::parse(r#"{"a":2,"b":[true]}"#).unwrap());
        assert_eq!(a.to_object().unwrap()["a"], json!(1));
        assert_eq!(RawJson::parse("[1]").unwrap().to_object(), None);
        assert!(RawJson::parse("{").is_err());
        assert!(RawJson::parse("1e400").is_err());
    }

    #[test]
    fn serialised_as_the_value_itself() {
        let raw = RawJson::parse("{ \"vlan\" : 42 }").unwrap();
        assert_eq!(serde_json::to_string(&raw).unwrap(), r#"{"vlan":42}"#);
        assert_eq!(serde_json::to_value(&raw).unwrap(), json!({"vlan": 42}));
    }

    #[test]
    fn a_repeated_vendor_key_keeps_its_place_and_takes_the_last_value() {
        let mut keys = VendorKeys::new();
        keys.insert("org.a", RawJson::from_value(&json!(1)));
        keys.insert("org.b", RawJson::from_value(&json!(2)));
        let old = keys.insert("org.a", RawJson::from_value(&json!(3)));
        assert_eq!(old, Some(RawJson::from_value(&json!(1))));
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["org.a", "org.b"]);
        assert_eq!(keys.get("org.a").map(RawJson::to_value), Some(json!(3)));
        let reordered: VendorKeys = [
            ("org.b", RawJson::from_value(&json!(2))),
            ("org.a", RawJson::from_value(&json!(3))),
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, reordered);
    }
}
