//! RBAC least privilege, checked against what the components really do.
//!
//! The fake API server records every resource request with its `User-Agent`
//! ([`crate::apiserver::FakeApiServer::requests`]); each component sends its own
//! (`multus_crds::constants::user_agent`). [`Policy::installed`] reads the Roles, ClusterRoles and
//! bindings `config/default` installs, maps each component to the
//! ServiceAccount its workload runs as, and [`Policy::check`] evaluates a request with the real
//! authorizer's rule semantics (verbs, API groups, `resource/subresource`, `resourceNames`, Role
//! namespaces). End-to-end tests call [`check_server`] at their end, so a request a component
//! makes that its role does not grant fails the suite, naming the component and the missing rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use multus_crds::constants::user_agent;
use serde_json::Value;

use crate::Error;
use crate::apiserver::{FakeApiServer, RecordedRequest};

/// Which workload each component's requests are authorized as. The `multus` CNI plugin runs with
/// the kubeconfig the node agent writes from its own ServiceAccount token (thin mode), so it is
/// the agent's identity.
const COMPONENTS: [(&str, &str, &str); 4] = [
    (user_agent::CONTROLLER, "Deployment", "multus-controller"),
    (user_agent::AGENT, "DaemonSet", "multus-agent"),
    (user_agent::CNI, "DaemonSet", "multus-agent"),
    (user_agent::WEBHOOK, "Deployment", "multus-webhook"),
];

/// `name/version` → `name`.
fn product(user_agent: &str) -> &str {
    user_agent.split('/').next().unwrap_or_default()
}

/// One rule of a Role or ClusterRole (non-resource URLs are not used by any component).
#[derive(Clone, Debug)]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

impl Rule {
    fn from_value(v: &Value) -> Self {
        Self {
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            verbs: strings(&v["verbs"]),
            resource_names: strings(&v["resourceNames"]),
        }
    }

    /// As `k8s.io/kubernetes/pkg/apis/rbac/v1.RuleAllows`.
    fn allows(&self, r: &RecordedRequest) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let resource = self.resources.iter().any(|x| {
            x == "*"
                || *x == r.resource_path()
                || (!r.subresource.is_empty() && *x == format!("*/{}", r.subresource))
        });
        any(&self.verbs, &r.verb)
            && any(&self.api_groups, &r.group)
            && resource
            && (self.resource_names.is_empty()
                || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
    }
}

/// Rules a ServiceAccount holds through one binding: everywhere (ClusterRoleBinding) or in one
/// namespace (RoleBinding).
#[derive(Clone, Debug)]
struct Grant {
    /// `kind/name` of the binding, for messages.
    binding: String,
    namespace: Option<String>,
    rules: Vec<Rule>,
}

/// A ServiceAccount, `namespace/name`.
type Account = (String, String);

/// The installed RBAC: which account each component runs as, and what each account may do.
#[derive(Debug)]
pub struct Policy {
    accounts: BTreeMap<&'static str, Account>,
    grants: BTreeMap<Account, Vec<Grant>>,
}

/// A request the policy does not grant.
#[derive(Debug, Clone)]
pub struct Denial {
    pub request: RecordedRequest,
    /// The component (user agent without its version).
    pub component: String,
    /// What to add, and where, as a sentence with a YAML rule.
    pub missing_rule: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.request;
        let named = if r.name.is_empty() {
            String::new()
        } else {
            format!(" {:?}", r.name)
        };
        let scope = if r.namespace.is_empty() {
            "cluster-wide".to_owned()
        } else {
            format!("in namespace {}", r.namespace)
        };
        write!(
            f,
            "{} may not {} {}{named} {scope} (API group {:?}); {}",
            self.component,
            r.verb,
            r.resource_path(),
            r.group,
            self.missing_rule
        )
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The objects a kustomization's `resources` hold, recursively (files and directories with their
/// own kustomization.yaml). Patches and transformers are not applied: `config/default` has none
/// that touch RBAC or workload identities, and every namespaced object in config/ states its
/// namespace (both checked by operator/tests/config_manifests.rs against `kubectl kustomize`).
/// Reading the files keeps the end-to-end suites independent of the kubectl version installed.
pub fn kustomization_objects(dir: &Path) -> Result<Vec<Value>, Error> {
    let failed = |path: &Path, message: String| Error::BuildManifests {
        dir: path.to_path_buf(),
        message,
    };
    let read = |path: &Path| -> Result<Vec<Value>, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| failed(path, e.to_string()))?;
        let docs =
            serde_saphyr::from_multiple::<Value>(&text).map_err(|e| failed(path, e.to_string()))?;
        Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
    };
    let kustomization = read(&dir.join("kustomization.yaml"))?;
    let mut out = Vec::new();
    for resource in kustomization
        .first()
        .map(|k| strings(&k["resources"]))
        .unwrap_or_default()
    {
        let path = dir.join(&resource);
        if path.is_dir() {
            out.extend(kustomization_objects(&path)?);
        } else {
            out.extend(read(&path)?);
        }
    }
    Ok(out)
}

impl Policy {
    /// The RBAC `config/default` installs (read once per test process).
    pub fn installed() -> Result<&'static Policy, Error> {
        static INSTALLED: OnceLock<Policy> = OnceLock::new();
        if let Some(p) = INSTALLED.get() {
            return Ok(p);
        }
        let policy =
            Self::from_objects(&kustomization_objects(&workspace().join("config/default"))?)?;
        Ok(INSTALLED.get_or_init(|| policy))
    }

    /// The policy of a set of manifests: the components' ServiceAccounts from their workloads,
    /// and every binding of a ServiceAccount to a Role or ClusterRole among them.
    pub fn from_objects(objects: &[Value]) -> Result<Self, Error> {
        let find = |kind: &str, name: &str, namespace: Option<&str>| {
            objects.iter().find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && namespace.is_none_or(|ns| o["metadata"]["namespace"] == ns)
            })
        };
        let mut accounts = BTreeMap::new();
        for (agent, kind, name) in COMPONENTS {
            let Some(workload) = find(kind, name, None) else {
                continue; // not installed by these manifests (e.g. the controller, Multus only)
            };
            let account = workload["spec"]["template"]["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            let namespace = workload["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            accounts.insert(product(agent), (namespace.to_owned(), account.to_owned()));
        }
        let mut grants: BTreeMap<Account, Vec<Grant>> = BTreeMap::new();
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
        {
            let binding_ns = binding["metadata"]["namespace"].as_str();
            let role_ref = &binding["roleRef"];
            let role_kind = role_ref["kind"].as_str().unwrap_or_default();
            let role_name = role_ref["name"].as_str().unwrap_or_default();
            let role_ns = (role_kind == "Role").then_some(binding_ns).flatten();
            let at = format!(
                "{}/{}",
                binding["kind"].as_str().unwrap_or_default(),
                binding["metadata"]["name"].as_str().unwrap_or_default()
            );
            let role =
                find(role_kind, role_name, role_ns).ok_or_else(|| Error::BuildManifests {
                    dir: workspace().join("config"),
                    message: format!(
                        "{at} refers to {role_kind} {role_name}, which is not installed"
                    ),
                })?;
            let rules: Vec<Rule> = role["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Rule::from_value)
                .collect();
            let namespace = (binding["kind"] == "RoleBinding")
                .then(|| binding_ns.unwrap_or("default").to_owned());
            for subject in binding["subjects"].as_array().into_iter().flatten() {
                if subject["kind"] != "ServiceAccount" {
                    continue;
                }
                let account = (
                    subject["namespace"]
                        .as_str()
                        .or(binding_ns)
                        .unwrap_or_default()
                        .to_owned(),
                    subject["name"].as_str().unwrap_or_default().to_owned(),
                );
                grants.entry(account).or_default().push(Grant {
                    binding: at.clone(),
                    namespace: namespace.clone(),
                    rules: rules.clone(),
                });
            }
        }
        Ok(Self { accounts, grants })
    }

    /// The ServiceAccount (`namespace`, `name`) a component's requests run as, by user agent;
    /// None for user agents that are not one of ours (the tests' own client, kubectl).
    pub fn account_of(&self, user_agent: &str) -> Option<&(String, String)> {
        self.accounts.get(product(user_agent))
    }

    /// Whether the policy grants `r`. Requests of other user agents are not ours to judge; a
    /// `multus*` user agent that is not a known component, or a component this policy does not
    /// install, is refused.
    pub fn check(&self, r: &RecordedRequest) -> Result<(), Box<Denial>> {
        let component = product(&r.user_agent).to_owned();
        let deny = |missing_rule: String| {
            Box::new(Denial {
                request: r.clone(),
                component: component.clone(),
                missing_rule,
            })
        };
        let Some(account) = self.account_of(&r.user_agent) else {
            if component.starts_with("multus") {
                return Err(deny(format!(
                    "user agent {:?} is not a component config/ installs",
                    r.user_agent
                )));
            }
            return Ok(());
        };
        let granted = self.grants.get(account).into_iter().flatten().any(|g| {
            g.namespace.as_ref().is_none_or(|ns| *ns == r.namespace)
                && g.rules.iter().any(|rule| rule.allows(r))
        });
        if granted {
            return Ok(());
        }
        let bindings: Vec<_> = self
            .grants
            .get(account)
            .into_iter()
            .flatten()
            .map(|g| g.binding.as_str())
            .collect();
        let mut rule = format!(
            "missing rule for ServiceAccount {}/{} (bound by {bindings:?}): \
             {{apiGroups: [{:?}], resources: [{:?}], verbs: [{:?}]",
            account.0,
            account.1,
            r.group,
            r.resource_path(),
            r.verb
        );
        rule.push('}');
        rule.push_str(if r.namespace.is_empty() {
            " in a ClusterRole"
        } else {
            " in a Role of that namespace or a ClusterRole"
        });
        Err(deny(rule))
    }
}

/// What [`check_requests`] checked: distinct requests per component.
pub type Summary = BTreeMap<String, usize>;

/// Check every request of our components; all denials in one error. `expect`: user agents that
/// must have made at least one request (so a component that lost its user agent cannot pass by
/// being invisible).
pub fn check_requests(
    policy: &Policy,
    requests: &[RecordedRequest],
    expect: &[&str],
) -> Result<Summary, Error> {
    let distinct: BTreeSet<_> = requests
        .iter()
        .map(|r| RecordedRequest {
            version: String::new(),
            ..r.clone()
        })
        .collect();
    let mut summary = Summary::new();
    let mut denials = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &distinct {
        if !product(&r.user_agent).starts_with("multus") {
            continue;
        }
        seen.insert(product(&r.user_agent));
        match policy.check(r) {
            Ok(()) => {
                *summary
                    .entry(product(&r.user_agent).to_owned())
                    .or_default() += 1
            }
            Err(d) => denials.push(d.to_string()),
        }
    }
    for want in expect {
        if !seen.contains(product(want)) {
            denials.push(format!(
                "{} made no API request the server recorded (is its User-Agent set?)",
                product(want)
            ));
        }
    }
    if denials.is_empty() {
        Ok(summary)
    } else {
        Err(Error::RequestsNotGranted {
            denials: denials.join("\n  "),
        })
    }
}

/// Check the requests `server` recorded against the RBAC of `config/default`.
pub fn check_server(server: &FakeApiServer, expect: &[&str]) -> Result<Summary, Error> {
    check_requests(Policy::installed()?, &server.requests(), expect)
}

/// A client sending `user_agent` over `client`: for components run in process by a test (the
/// controller), so their requests are told apart from the test's own, as the binaries' are.
pub fn as_component(client: &kube::Client, user_agent: &'static str) -> kube::Client {
    let inner = client.clone();
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        request.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(user_agent),
        );
        async move { inner.send(request).await }
    });
    kube::Client::new(service, client.default_namespace().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(
        ua: &str,
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        name: &str,
    ) -> RecordedRequest {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        RecordedRequest {
            user_agent: ua.to_owned(),
            verb: verb.to_owned(),
            group: group.to_owned(),
            version: "v1".to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A webhook with one ClusterRole and one Role, as config/ shapes them.
    fn small_policy() -> Policy {
        let objects = vec![
            json!({"kind": "Deployment", "metadata": {"name": "multus-webhook", "namespace": "sys"},
                "spec": {"template": {"spec": {"serviceAccountName": "hook"}}}}),
            json!({"kind": "ClusterRole", "metadata": {"name": "cr"},
                "rules": [{"apiGroups": ["k8s.cni.cncf.io"], "resources": ["network-attachment-definitions"],
                           "verbs": ["get", "list", "watch"]}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
                "roleRef": {"kind": "ClusterRole", "name": "cr"},
                "subjects": [{"kind": "ServiceAccount", "name": "hook", "namespace": "sys"}]}),
            json!({"kind": "Role", "metadata": {"name": "r", "namespace": "op"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["nics"], "verbs": ["get"]},
                          {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "op"},
                "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "hook", "namespace": "sys"}]}),
        ];
        Policy::from_objects(&objects).unwrap()
    }

    #[test]
    fn requests_outside_the_role_are_refused() {
        let p = small_policy();
        let ua = user_agent::WEBHOOK;
        let nad = "network-attachment-definitions";
        assert!(
            p.check(&request(ua, "watch", "k8s.cni.cncf.io", nad, "", ""))
                .is_ok()
        );
        assert!(
            p.check(&request(ua, "get", "k8s.cni.cncf.io", nad, "team", "a"))
                .is_ok()
        );
        // a verb, a group, a subresource, a namespace, a name the rules do not give
        let d = p
            .check(&request(ua, "delete", "k8s.cni.cncf.io", nad, "team", "a"))
            .unwrap_err();
        assert_eq!(d.component, "multus-webhook");
        let text = d.to_string();
        assert!(
            text.contains("may not delete network-attachment-definitions \"a\" in namespace team"),
            "{text}"
        );
        assert!(
            text.contains("verbs: [\"delete\"]") && text.contains("sys/hook"),
            "{text}"
        );
        assert!(p.check(&request(ua, "get", "", nad, "team", "a")).is_err());
        assert!(
            p.check(&request(
                ua,
                "get",
                "k8s.cni.cncf.io",
                "network-attachment-definitions/status",
                "team",
                "a"
            ))
            .is_err()
        );
        assert!(
            p.check(&request(ua, "get", "", "configmaps", "op", "nics"))
                .is_ok()
        );
        assert!(
            p.check(&request(ua, "get", "", "configmaps", "op", "other"))
                .is_err()
        );
        assert!(
            p.check(&request(ua, "list", "", "configmaps", "op", ""))
                .is_err()
        );
        assert!(
            p.check(&request(ua, "get", "", "configmaps", "elsewhere", "nics"))
                .is_err()
        );
        assert!(
            p.check(&request(ua, "create", "", "pods/eviction", "op", "p"))
                .is_ok()
        );
        assert!(
            p.check(&request(ua, "create", "", "pods", "op", ""))
                .is_err()
        );
        // a component the manifests do not install, and an unknown one of ours
        assert!(
            p.check(&request(
                user_agent::CONTROLLER,
                "get",
                "",
                "nodes",
                "",
                "n"
            ))
            .is_err()
        );
        assert!(
            p.check(&request("multus-typo/1", "get", "", "nodes", "", "n"))
                .is_err()
        );
        // other clients (the test's own, kubectl) are not judged
        assert!(
            p.check(&request("kubectl/v1.32", "delete", "", "nodes", "", "n"))
                .is_ok()
        );
        assert!(
            p.check(&request("", "delete", "", "nodes", "", "n"))
                .is_ok()
        );
    }

    #[test]
    fn the_installed_policy_grants_each_component_its_own_work_only() {
        let p = Policy::installed().unwrap();
        let (agent, cni, ctl, hook) = (
            user_agent::AGENT,
            user_agent::CNI,
            user_agent::CONTROLLER,
            user_agent::WEBHOOK,
        );
        let op = "sriov-network-operator";
        let sriov = "sriovnetwork.openshift.io";
        let ok = [
            (agent, "watch", "", "pods", "", ""),
            (agent, "create", "", "pods/eviction", "team", "p"),
            (agent, "get", sriov, "sriovnetworknodestates", op, "node-1"),
            (
                agent,
                "patch",
                sriov,
                "sriovnetworknodestates/status",
                op,
                "node-1",
            ),
            (cni, "update", "", "pods/status", "team", "p"),
            (
                cni,
                "get",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "team",
                "n",
            ),
            (
                ctl,
                "update",
                "coordination.k8s.io",
                "leases",
                op,
                "multus-controller",
            ),
            (
                ctl,
                "create",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "app",
                "n",
            ),
            (hook, "get", "", "configmaps", op, "supported-nic-ids"),
        ];
        for (ua, verb, group, resource, ns, name) in ok {
            let r = request(ua, verb, group, resource, ns, name);
            assert!(p.check(&r).is_ok(), "{r:?}");
        }
        let refused = [
            (agent, "delete", "", "pods", "team", "p"),
            (
                agent,
                "patch",
                sriov,
                "sriovnetworknodestates",
                op,
                "node-1",
            ),
            (
                agent,
                "get",
                sriov,
                "sriovnetworknodestates",
                "elsewhere",
                "node-1",
            ),
            (cni, "get", "", "secrets", "team", "s"),
            (ctl, "create", "", "pods/eviction", "team", "p"),
            (
                ctl,
                "update",
                "coordination.k8s.io",
                "leases",
                "kube-system",
                "x",
            ),
            (hook, "get", "", "configmaps", op, "other"),
            (
                hook,
                "create",
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "team",
                "",
            ),
        ];
        for (ua, verb, group, resource, ns, name) in refused {
            let r = request(ua, verb, group, resource, ns, name);
            assert!(p.check(&r).is_err(), "{r:?}");
        }
    }

    #[test]
    fn check_requests_names_every_denial_and_missing_components() {
        let p = small_policy();
        let ok = request(
            user_agent::WEBHOOK,
            "list",
            "k8s.cni.cncf.io",
            "network-attachment-definitions",
            "",
            "",
        );
        let bad = request(user_agent::WEBHOOK, "patch", "", "pods/status", "team", "p");
        let summary =
            check_requests(&p, &[ok.clone(), ok.clone()], &[user_agent::WEBHOOK]).unwrap();
        assert_eq!(summary["multus-webhook"], 1);
        let err = check_requests(&p, &[ok.clone(), bad], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("may not patch pods/status \"p\" in namespace team"),
            "{err}"
        );
        let err = check_requests(&p, &[ok], &[user_agent::AGENT])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("multus-operator-agent made no API request"),
            "{err}"
        );
    }
}
