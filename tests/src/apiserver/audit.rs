//! The request log: every resource request the server receives, with the attributes RBAC
//! authorizes on (user agent, verb, API group, resource, subresource, namespace, name), so a test
//! can check each component's requests against the roles in `config/` (`crate::rbac`).
//!
//! Attributes follow the real server's `RequestInfo`: `GET` on a collection is `list` (or `watch`
//! with `watch=true`), `DELETE` on one is `deletecollection`, a `metadata.name=` field selector
//! names the object of a list or watch, and `/api/v1/namespaces/{ns}` is in namespace `{ns}`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use http::Method;
use serde::Serialize;

/// One resource request, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RecordedRequest {
    /// The `User-Agent` header ("" without one).
    pub user_agent: String,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// The API group ("" for the core group).
    pub group: String,
    pub version: String,
    /// The plural resource name (`pods`).
    pub resource: String,
    /// `status`, `eviction`, … ("" for the object itself).
    pub subresource: String,
    /// "" for cluster-scoped resources and requests across all namespaces.
    pub namespace: String,
    /// The object's name ("" for collections without a `metadata.name` field selector).
    pub name: String,
}

impl RecordedRequest {
    /// `resource` or `resource/subresource`, as written in RBAC rules.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The attributes of a request, or None for non-resource paths (`/version`, discovery,
    /// `/healthz`): those are granted to every authenticated user by `system:discovery`.
    pub fn parse(
        user_agent: &str,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
    ) -> Option<Self> {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, parts) = match rest {
            // The namespace itself (and its status/finalize subresources).
            ["namespaces", ns] => (*ns, rest),
            ["namespaces", ns, sub]
                if group.is_empty() && matches!(*sub, "status" | "finalize") =>
            {
                (*ns, rest)
            }
            ["namespaces", ns, tail @ ..] => (*ns, tail),
            _ => ("", rest),
        };
        let (resource, name, subresource) = match parts {
            [resource] => (*resource, "", ""),
            [resource, name] => (*resource, *name, ""),
            [resource, name, sub, ..] => (*resource, *name, *sub),
            [] => return None,
        };
        let selected_name = || {
            query
                .get("fieldSelector")
                .into_iter()
                .flat_map(|s| s.split(','))
                .find_map(|t| t.trim().strip_prefix("metadata.name="))
                .unwrap_or_default()
        };
        let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let (verb, name) = match (method, name) {
            (&Method::GET | &Method::HEAD, "") if watching => ("watch", selected_name()),
            (&Method::GET | &Method::HEAD, "") => ("list", selected_name()),
            (&Method::GET | &Method::HEAD, n) => ("get", n),
            (&Method::POST, n) => ("create", n),
            (&Method::PUT, n) => ("update", n),
            (&Method::PATCH, n) => ("patch", n),
            (&Method::DELETE, "") => ("deletecollection", ""),
            (&Method::DELETE, n) => ("delete", n),
            _ => return None,
        };
        Some(Self {
            user_agent: user_agent.to_owned(),
            verb: verb.to_owned(),
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The log: in memory, and as JSON lines in a file when the server is told to write one.
#[derive(Default)]
pub(crate) struct AuditLog {
    entries: Mutex<Vec<RecordedRequest>>,
    file: Option<Mutex<std::fs::File>>,
}

impl AuditLog {
    pub(crate) fn to_file(path: &PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            entries: Mutex::default(),
            file: Some(Mutex::new(file)),
        })
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        if let Some(file) = &self.file
            && let Ok(mut line) = serde_json::to_vec(&request)
        {
            line.push(b'\n');
            let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(error) = f.write_all(&line) {
                tracing::warn!(%error, "writing the audit log");
            }
        }
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str, query: &[(&str, &str)]) -> RecordedRequest {
        let q = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RecordedRequest::parse("ua/1", &method, path, &q).unwrap_or_else(|| RecordedRequest {
            user_agent: "none".into(),
            verb: String::new(),
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
        })
    }

    #[test]
    fn the_file_log_holds_one_json_line_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::to_file(&path).unwrap();
        log.record(parse(Method::GET, "/api/v1/namespaces/a/pods/p", &[]));
        log.record(parse(
            Method::POST,
            "/api/v1/namespaces/a/pods/p/eviction",
            &[],
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["verb"], "create");
        assert_eq!(lines[1]["subresource"], "eviction");
        assert_eq!(lines[0]["user_agent"], "ua/1");
        assert_eq!(log.snapshot().len(), 2);
    }

    #[test]
    fn attributes_follow_the_real_request_info() {
        let r = parse(
            Method::POST,
            "/api/v1/namespaces/team/pods/p1/eviction",
            &[],
        );
        assert_eq!(
            (
                r.verb.as_str(),
                r.group.as_str(),
                r.resource_path(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("create", "", "pods/eviction".to_owned(), "team", "p1")
        );
        let r = parse(
            Method::PATCH,
            "/apis/sriovnetwork.openshift.io/v1/namespaces/op/sriovnetworknodestates/n1/status",
            &[],
        );
        assert_eq!(r.group, "sriovnetwork.openshift.io");
        assert_eq!(r.resource_path(), "sriovnetworknodestates/status");
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("patch", "n1"));
        let r = parse(
            Method::GET,
            "/api/v1/pods",
            &[("watch", "true"), ("fieldSelector", "spec.nodeName=n1")],
        );
        assert_eq!(
            (r.verb.as_str(), r.namespace.as_str(), r.name.as_str()),
            ("watch", "", "")
        );
        let r = parse(
            Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/op/leases",
            &[("fieldSelector", "metadata.name=lock")],
        );
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("list", "lock"));
        let r = parse(Method::GET, "/api/v1/namespaces/team", &[]);
        assert_eq!(
            (
                r.verb.as_str(),
                r.resource.as_str(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("get", "namespaces", "team", "team")
        );
        let r = parse(Method::DELETE, "/api/v1/namespaces/team/configmaps", &[]);
        assert_eq!(r.verb, "deletecollection");
        assert_eq!(parse(Method::GET, "/apis/apps/v1", &[]).user_agent, "none");
        assert_eq!(parse(Method::GET, "/version", &[]).user_agent, "none");
    }
}
