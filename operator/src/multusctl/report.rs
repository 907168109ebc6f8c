//! The result of `multusctl validate`, and its two renderings: one line per problem for people,
//! and a JSON document for pipelines (documented in docs/cli.md).

use std::fmt::Write as _;

use multus_crds::{Diagnostics, Severity};
use serde::Serialize;

/// Every checked object of the input, in input order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub objects: Vec<ObjectReport>,
}

/// The verdict on one object (or on one document that did not parse).
#[derive(Debug, Serialize)]
pub struct ObjectReport {
    pub file: String,
    /// 1-based document number within the file.
    pub index: usize,
    /// 1-based line where the document starts (or where it failed to parse).
    pub line: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub valid: bool,
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub path: String,
    pub message: String,
}

impl ObjectReport {
    pub fn new(
        file: &str,
        index: usize,
        line: usize,
        kind: &str,
        namespace: &str,
        name: &str,
        diags: Diagnostics,
    ) -> Self {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        for d in diags {
            let f = Finding {
                path: d.path.to_string(),
                message: d.message,
            };
            match d.severity {
                Severity::Error => errors.push(f),
                Severity::Warning => warnings.push(f),
            }
        }
        Self {
            file: file.to_owned(),
            index,
            line,
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            valid: errors.is_empty(),
            errors,
            warnings,
        }
    }
}

impl Report {
    pub fn all_valid(&self) -> bool {
        self.objects.iter().all(|o| o.valid)
    }

    /// One line per problem: `FILE:DOC kind namespace/name: path: message`. Warnings carry a
    /// `warning:` marker before the message. A final summary line counts objects.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for o in &self.objects {
            let who = match (o.namespace.as_str(), o.name.as_str()) {
                ("", "") => String::from("-"),
                ("", n) => n.to_owned(),
                (ns, n) => format!("{ns}/{n}"),
            };
            for (f, marker) in o
                .errors
                .iter()
                .map(|f| (f, ""))
                .chain(o.warnings.iter().map(|f| (f, "warning: ")))
            {
                let path = if f.path.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", f.path)
                };
                let _ = writeln!(
                    out,
                    "{}:{} {} {}: {path}{marker}{}",
                    o.file, o.index, o.kind, who, f.message
                );
            }
        }
        let invalid = self.objects.iter().filter(|o| !o.valid).count();
        let warnings: usize = self.objects.iter().map(|o| o.warnings.len()).sum();
        let _ = writeln!(
            out,
            "{} objects checked: {} valid, {invalid} invalid, {warnings} warnings",
            self.objects.len(),
            self.objects.len() - invalid,
        );
        out
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_one_line_per_problem() {
        let mut d = Diagnostics::new();
        d.error("spec.config", "not JSON");
        d.warning("metadata.name", "differs");
        let r = Report {
            objects: vec![ObjectReport::new(
                "a.yaml",
                2,
                7,
                "NetworkAttachmentDefinition",
                "demo",
                "x",
                d,
            )],
        };
        let text = r.to_text();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0],
            "a.yaml:2 NetworkAttachmentDefinition demo/x: spec.config: not JSON"
        );
        assert_eq!(
            lines[1],
            "a.yaml:2 NetworkAttachmentDefinition demo/x: metadata.name: warning: differs"
        );
        assert!(!r.all_valid());
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["objects"][0]["valid"], false);
        assert_eq!(json["objects"][0]["errors"][0]["path"], "spec.config");
    }
}
