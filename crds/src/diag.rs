//! Structured diagnostics: what every validation rule returns.
//!
//! A rule never fails fast; it pushes [`Diagnostic`]s into a [`Diagnostics`] so a person sees every
//! problem of an object at once. The `path` names the field the way the API server would
//! (`spec.nicSelector.pfNames[0]`), with map keys in brackets
//! (`metadata.annotations[k8s.v1.cni.cncf.io/networks][2].mac`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Errors make an object invalid; warnings are shown but allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A dotted field path with bracketed indices and map keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldPath(String);

impl FieldPath {
    /// The empty path: the object itself.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// A path starting at a top-level field (`spec`, `metadata`).
    pub fn new(field: &str) -> Self {
        Self(field.to_owned())
    }

    /// `self.field`
    #[must_use]
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            return Self(name.to_owned());
        }
        let mut s = String::with_capacity(self.0.len() + 1 + name.len());
        s.push_str(&self.0);
        s.push('.');
        s.push_str(name);
        Self(s)
    }

    /// `self[index]`
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// `self[key]`, for map keys such as annotation names.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// `prefix.self`: place a path found inside an embedded object (a pod template inside a
    /// Deployment) at its position in the enclosing one.
    #[must_use]
    pub fn under(&self, prefix: &FieldPath) -> Self {
        if prefix.is_root() {
            return self.clone();
        }
        if self.is_root() {
            return prefix.clone();
        }
        let sep = if self.0.starts_with('[') { "" } else { "." };
        Self(format!("{}{sep}{}", prefix.0, self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for FieldPath {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// One finding: severity, the field it concerns, and a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: FieldPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The findings of one or more rules over one object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, path: impl Into<FieldPath>, message: impl Into<String>) {
        self.push(Severity::Error, path.into(), message.into());
    }

    pub fn warning(&mut self, path: impl Into<FieldPath>, message: impl Into<String>) {
        self.push(Severity::Warning, path.into(), message.into());
    }

    pub fn push(&mut self, severity: Severity, path: FieldPath, message: String) {
        self.0.push(Diagnostic {
            severity,
            path,
            message,
        });
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Warning)
    }

    /// Move every path under `prefix` (see [`FieldPath::under`]).
    pub fn under(mut self, prefix: &FieldPath) -> Self {
        for d in &mut self.0 {
            d.path = d.path.under(prefix);
        }
        self
    }

    /// Turn every error into a warning (e.g. `--ignore-missing-networks`).
    pub fn demote_errors(&mut self) {
        for d in &mut self.0 {
            d.severity = Severity::Warning;
        }
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_compose_like_the_api_server_names_fields() {
        let p = FieldPath::new("metadata")
            .field("annotations")
            .key("k8s.v1.cni.cncf.io/networks")
            .index(2)
            .field("mac");
        assert_eq!(
            p.as_str(),
            "metadata.annotations[k8s.v1.cni.cncf.io/networks][2].mac"
        );
        assert_eq!(FieldPath::root().field("spec").as_str(), "spec");
        let inner = FieldPath::new("metadata").field("annotations");
        let tpl = FieldPath::new("spec").field("template");
        assert_eq!(
            inner.under(&tpl).as_str(),
            "spec.template.metadata.annotations"
        );
        assert_eq!(FieldPath::root().under(&tpl), tpl);
    }

    #[test]
    fn severity_decides_validity() {
        let mut d = Diagnostics::new();
        d.warning("spec", "old cniVersion");
        assert!(!d.has_errors());
        d.error("spec.config", "not JSON");
        assert!(d.has_errors());
        assert_eq!(d.errors().count(), 1);
        assert_eq!(d.warnings().count(), 1);
        assert_eq!(
            d.iter().nth(1).map(ToString::to_string).as_deref(),
            Some("spec.config: not JSON")
        );
    }
}
