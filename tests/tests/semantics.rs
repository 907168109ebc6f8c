//! Object semantics of the fake API server, exercised through kube's client as components use it.
// Test code: helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
use multus_tests::apiserver::{FakeApiServer, ServerConfig};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn server() -> (FakeApiServer, Client) {
    let s = FakeApiServer::start().await.unwrap();
    let c = s.client().await.unwrap();
    (s, c)
}

#[tokio::test]
async fn crud_assigns_metadata_and_stale_updates_conflict() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let rv1: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();

    let mut changed = created.clone();
    changed.data = Some([("k".to_owned(), "w".to_owned())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);

    // The first copy is stale now.
    let status = api_error(
        api.replace("a", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );

    let dup = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let g = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(g.metadata.name.unwrap().starts_with("gen-"));

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let gone = api_error(api.get("a").await.unwrap_err());
    assert_eq!(
        (gone.code, gone.reason.as_str(), gone.message.as_str()),
        (404, "NotFound", "configmaps \"a\" not found")
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut obj = cm("f", json!({}));
    obj.metadata.finalizers = Some(vec!["multus.example/cleanup".to_owned()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn owner_references_cascade_unless_orphaned() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]);
    for name in ["child1", "child2"] {
        let mut c = cm(name, json!({}));
        c.metadata.owner_references = Some(serde_json::from_value(owner_ref.clone()).unwrap());
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("child1").await.unwrap_err()).code, 404);

    let owner = api
        .create(&PostParams::default(), &cm("owner2", json!({})))
        .await
        .unwrap();
    let mut c = cm("child3", json!({}));
    c.metadata.owner_references = Some(
        serde_json::from_value(json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.metadata.uid}]))
            .unwrap(),
    );
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    assert!(
        api.get("child3")
            .await
            .unwrap()
            .metadata
            .owner_references
            .is_none()
    );
}

#[tokio::test]
async fn label_and_field_selectors_and_pagination() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, app) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "cache")] {
        api.create(&PostParams::default(), &cm(name, json!({"app": app})))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app notin (web,db)"))
                .await
                .unwrap()
        ),
        ["d"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (db,cache),!missing"))
                .await
                .unwrap()
        ),
        ["b", "d"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name!=a"))
                .await
                .unwrap()
        ),
        ["b", "c", "d"]
    );

    let page1 = api.list(&ListParams::default().limit(3)).await.unwrap();
    let token = page1.metadata.continue_.clone().unwrap();
    assert_eq!(names(page1), ["a", "b", "c"]);
    let page2 = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert!(page2.metadata.continue_.is_none());
    assert_eq!(names(page2), ["d"]);

    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
    )
    .await
    .unwrap();
    let pods_in = |ns: &str| -> Api<Pod> { Api::namespaced(client.clone(), ns) };
    for (ns, name, node) in [
        ("default", "p1", "n1"),
        ("default", "p2", "n2"),
        ("other", "p3", "n1"),
    ] {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}}),
        )
        .unwrap();
        pods_in(ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }
    let on_n1 = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .unwrap();
    let mut found: Vec<String> = on_n1
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    found.sort();
    assert_eq!(found, ["p1", "p3"]);
    let bad = api_error(
        api.list(&ListParams::default().fields("spec.nodeName=n1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (bad.code, bad.message.as_str()),
        (400, "field label not supported: spec.nodeName")
    );
}

#[tokio::test]
async fn strategic_merge_patch_keys_containers_and_status_is_a_subresource() {
    let (_s, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]}}))
        .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let patched = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "net1"}},
                "spec": {"containers": [{"name": "app", "resources": {"limits": {"intel.com/sriov": "1"}}}]}})),
        )
        .await
        .unwrap();
    let containers = patched.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("app:1"));
    assert!(
        containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .contains_key("intel.com/sriov")
    );

    // Status written on the main resource is ignored; through /status only status changes.
    let ignored = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.unwrap().phase.as_deref(), Some("Pending"));
    let st = pods
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Running"}, "metadata": {"labels": {"x": "y"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().phase.as_deref(), Some("Running"));
    // The pod status strategy keeps metadata label and annotation changes (Multus writes
    // network-status that way); only spec, ownerReferences and deletion are reset.
    assert_eq!(
        st.metadata.labels.unwrap().get("x").map(String::as_str),
        Some("y")
    );
}

pub fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"],
                        "x-kubernetes-validations": [{"rule": "self.size >= self.minSize", "message": "size must be at least minSize"}],
                        "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 99},
                        "minSize": {"type": "integer", "default": 1},
                        "mode": {"type": "string", "enum": ["netdevice", "vfio-pci"]},
                        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}
            }]
        }
    })
}

#[tokio::test]
async fn crds_serve_at_once_with_schema_cel_status_and_generation() {
    let (_s, client) = server().await;
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let widget = |spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec, "status": {"ready": true}})).unwrap()
    };

    let invalid = api_error(
        api.create(
            &PostParams::default(),
            &widget(json!({"size": 100, "mode": "x", "name": "ABCDEFG"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(invalid.code, 422);
    assert_eq!(invalid.reason, "Invalid");
    assert_eq!(
        invalid.message,
        "Widget.example.com \"w\" is invalid: [spec.size: Invalid value: 100: spec.size in body should be less than or equal to 99, \
         spec.mode: Unsupported value: \"x\": supported values: \"netdevice\", \"vfio-pci\", \
         spec.name: Too long: may not be more than 5 bytes, \
         spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$']"
    );
    let missing = api_error(
        api.create(&PostParams::default(), &widget(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        missing.message,
        "Widget.example.com \"w\" is invalid: spec.size: Required value"
    );
    let cel = api_error(
        api.create(
            &PostParams::default(),
            &widget(json!({"size": 2, "minSize": 3})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        cel.message.contains("size must be at least minSize"),
        "{}",
        cel.message
    );

    let created = api
        .create(
            &PostParams::default(),
            &widget(json!({"size": 2, "unknown": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"],
        json!({"size": 2, "minSize": 1}),
        "defaulted and pruned"
    );
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    assert_eq!(created.metadata.generation, Some(1));

    let st = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    let spec = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}, "status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(
        spec.data["status"]["ready"],
        json!(true),
        "status ignored on the main resource"
    );
    let smp = api_error(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 4}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(smp.code, 415);

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("w").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_detects_conflicts() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cfg = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    let created = api
        .patch(
            "ssa",
            &PatchParams::apply("one"),
            &Patch::Apply(cfg(json!({"a": "1", "b": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        created.metadata.managed_fields.as_ref().unwrap()[0]
            .manager
            .as_deref(),
        Some("one")
    );
    let conflict = api_error(
        api.patch(
            "ssa",
            &PatchParams::apply("two"),
            &Patch::Apply(cfg(json!({"a": "2"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(conflict.code, 409);
    assert!(
        conflict.message.starts_with("Apply failed with 1 conflict"),
        "{}",
        conflict.message
    );
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("two").force(),
            &Patch::Apply(cfg(json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "2");
    let dropped = api
        .patch(
            "ssa",
            &PatchParams::apply("one"),
            &Patch::Apply(cfg(json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(
        dropped.data.unwrap().into_iter().collect::<Vec<_>>(),
        [("a".to_owned(), "2".to_owned())]
    );
}

#[tokio::test]
async fn watch_older_than_the_window_is_gone() {
    let s = FakeApiServer::start_with(ServerConfig {
        watch_window: 5,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let client = s.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &cm("w0", json!({})))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.unwrap();
    for i in 1..10 {
        api.create(&PostParams::default(), &cm(&format!("w{i}"), json!({})))
            .await
            .unwrap();
    }
    use futures::StreamExt;
    let mut stream = api
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Err(kube::Error::Api(status))) => assert_eq!(status.code, 410),
        Some(Ok(kube::core::WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // A recent resourceVersion still replays what came after it.
    let recent = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("later", json!({})))
        .await
        .unwrap();
    let mut stream = api
        .watch(&kube::api::WatchParams::default(), &recent)
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(kube::core::WatchEvent::Added(o))) => {
            assert_eq!(o.metadata.name.as_deref(), Some("later"))
        }
        other => panic!("expected ADDED later, got {other:?}"),
    }
}

async fn running_pod(pods: &Api<Pod>, name: &str, labels: serde_json::Value) {
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Pending pods are evicted whatever the budget says, as on the real server.
    let status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test]
async fn eviction_deletes_unless_a_disruption_budget_refuses() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::EvictParams;

    let s = FakeApiServer::start().await.unwrap();
    // kube retries 429 by default (15 times, honouring Retry-After): see the refusal at once.
    let kubeconfig = kube::config::Kubeconfig::read_from(s.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    for name in ["web-1", "web-2"] {
        running_pod(&pods, name, json!({"app": "web"})).await;
    }
    running_pod(&pods, "lone", json!({"app": "other"})).await;

    // No budget selects it: evicted at once, answered 201 with a Success Status.
    let ok = pods.evict("lone", &EvictParams::default()).await.unwrap();
    assert_eq!(ok.code, 201);
    assert_eq!(api_error(pods.get("lone").await.unwrap_err()).code, 404);

    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let refused = api_error(
        pods.evict("web-1", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 429);
    assert_eq!(refused.reason, "TooManyRequests");
    assert_eq!(
        refused.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    pods.get("web-1").await.unwrap();

    // Relaxed to one: one pod may go, and then the budget is spent again.
    let relax = json!({"spec": {"minAvailable": 1}});
    pdbs.patch("web", &PatchParams::default(), &Patch::Merge(&relax))
        .await
        .unwrap();
    pods.evict("web-1", &EvictParams::default()).await.unwrap();
    assert_eq!(api_error(pods.get("web-1").await.unwrap_err()).code, 404);
    let spent = api_error(
        pods.evict("web-2", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(spent.code, 429);

    // A finalizer holds an evicted pod, as it holds a deleted one.
    running_pod(&pods, "held", json!({"app": "other"})).await;
    let finalizer = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    pods.patch("held", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .unwrap();
    pods.evict("held", &EvictParams::default()).await.unwrap();
    let held = pods.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());

    let missing = api_error(
        pods.evict("missing", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(missing.code, 404);
    assert_eq!(missing.message, "pods \"missing\" not found");
}
