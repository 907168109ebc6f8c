//! The cluster controller, in process, against the fake API server: SriovNetwork → NAD lifecycle,
//! policy conflicts as conditions and Events, node labels → NodeState spec, no writes in steady
//! state, and leader failover without losing a write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use multus_crds::NetworkAttachmentDefinition;
use multus_crds::sriov::{SriovNetwork, SriovNetworkNodePolicy, SriovNetworkNodeState};
use multus_operator::controller::{self, Config, Context};
use multus_tests::apiserver::FakeApiServer;
use multus_tests::harness::wait::wait_for;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NS: &str = "sriov-network-operator";
const T: Duration = Duration::from_secs(20);

async fn cluster() -> (FakeApiServer, kube::Client) {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in multus_crds::crdgen::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    for ns in [NS, "app"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
    (server, client)
}

struct Running {
    ctx: Arc<Context>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), controller::ControllerError>>,
}

fn start(client: &kube::Client, identity: &str) -> Running {
    let mut config = Config::new(NS, identity);
    config.node_selector = BTreeMap::from([("sriov".into(), "true".into())]);
    config.lease.duration = Duration::from_secs(2);
    config.lease.renew = Duration::from_millis(300);
    config.state_removal_delay = Duration::from_secs(1);
    config.debounce = Duration::from_millis(50);
    let client =
        multus_tests::rbac::as_component(client, multus_crds::constants::user_agent::CONTROLLER);
    let (ctx, leader) = Context::new(client, config);
    let stop = CancellationToken::new();
    let task = tokio::spawn(controller::run(Arc::clone(&ctx), leader, stop.clone()));
    Running { ctx, stop, task }
}

async fn nad(client: &kube::Client, ns: &str, name: &str) -> Option<NetworkAttachmentDefinition> {
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

fn network(name: &str, ns: &str, spec: serde_json::Value) -> SriovNetwork {
    serde_json::from_value(
        json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetwork",
        "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
    .unwrap()
}

async fn wait_leader(r: &Running) {
    assert!(!r.task.is_finished(), "the controller stopped early");
    let ctx = Arc::clone(&r.ctx);
    wait_for("leadership", T, || {
        let ctx = Arc::clone(&ctx);
        async move { ctx.is_leader().then_some(()) }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sriov_network_nad_follows_create_update_edit_and_delete() {
    let (_server, client) = cluster().await;
    let r = start(&client, "a");
    wait_leader(&r).await;
    let nets: Api<SriovNetwork> = Api::namespaced(client.clone(), NS);
    nets.create(
        &PostParams::default(),
        &network(
            "net-a",
            NS,
            json!({"resourceName": "fastnic", "networkNamespace": "app", "vlan": 120}),
        ),
    )
    .await
    .unwrap();
    let c = client.clone();
    let got = wait_for("the NAD in app", T, || {
        let c = c.clone();
        async move { nad(&c, "app", "net-a").await }
    })
    .await
    .unwrap();
    assert_eq!(got.resource_name(), Some("openshift.io/fastnic"));
    assert!(got.config().unwrap().contains("\"vlan\": 120"));
    assert!(
        got.owner_references().is_empty(),
        "cross-namespace: no ownerReference"
    );
    let n = nets.get("net-a").await.unwrap();
    assert!(
        n.finalizers()
            .iter()
            .any(|f| f == multus_crds::constants::SRIOV_NAD_FINALIZER)
    );
    let c = client.clone();
    wait_for("Ready=True", T, || {
        let c = c.clone();
        async move {
            let n = Api::<SriovNetwork>::namespaced(c, NS)
                .get("net-a")
                .await
                .ok()?;
            (n.ready_condition()?.status == "True").then_some(())
        }
    })
    .await
    .unwrap();

    // update → NAD follows
    nets.patch(
        "net-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"vlan": 130}})),
    )
    .await
    .unwrap();
    let c = client.clone();
    wait_for("vlan 130 in the NAD", T, || {
        let c = c.clone();
        async move {
            nad(&c, "app", "net-a")
                .await
                .filter(|n| n.config().unwrap_or_default().contains("\"vlan\": 130"))
        }
    })
    .await
    .unwrap();

    // a hand edit is reverted, a hand delete restored
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), "app")
        .patch(
            "net-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": "{}"}})),
        )
        .await
        .unwrap();
    let c = client.clone();
    wait_for("the edited NAD restored", T, || {
        let c = c.clone();
        async move {
            nad(&c, "app", "net-a")
                .await
                .filter(|n| n.config().unwrap_or_default().contains("\"vlan\": 130"))
        }
    })
    .await
    .unwrap();
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), "app")
        .delete("net-a", &DeleteParams::default())
        .await
        .unwrap();
    let c = client.clone();
    wait_for("the deleted NAD recreated", T, || {
        let c = c.clone();
        async move { nad(&c, "app", "net-a").await }
    })
    .await
    .unwrap();

    // same-namespace network: ownerReference
    Api::<SriovNetwork>::namespaced(client.clone(), "app")
        .create(
            &PostParams::default(),
            &network("local", "app", json!({"resourceName": "r"})),
        )
        .await
        .unwrap();
    let c = client.clone();
    let local = wait_for("the same-namespace NAD", T, || {
        let c = c.clone();
        async move { nad(&c, "app", "local").await }
    })
    .await
    .unwrap();
    assert_eq!(local.owner_references()[0].kind, "SriovNetwork");

    // steady state: once the writes that follow the last change (the new network's status, its
    // Event) have landed, nothing more is written. A hot loop never settles and fails below.
    let settle_until = std::time::Instant::now() + T;
    let mut before = r.ctx.metrics.writes_total();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = r.ctx.metrics.writes_total();
        if now == before || std::time::Instant::now() > settle_until {
            break;
        }
        before = now;
    }
    let before = r.ctx.metrics.writes_total();
    let reconciles = r.ctx.metrics.reconciles_total("sriovnetwork");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        r.ctx.metrics.writes_total(),
        before,
        "writes in steady state"
    );
    assert!(r.ctx.metrics.reconciles_total("sriovnetwork") >= reconciles);

    // delete → NAD in the other namespace removed, finalizer released
    nets.delete("net-a", &DeleteParams::default())
        .await
        .unwrap();
    let c = client.clone();
    wait_for("the NAD and the network gone", T, || {
        let c = c.clone();
        async move {
            let gone_nad = nad(&c, "app", "net-a").await.is_none();
            let gone_net = Api::<SriovNetwork>::namespaced(c, NS)
                .get_opt("net-a")
                .await
                .unwrap()
                .is_none();
            (gone_nad && gone_net).then_some(())
        }
    })
    .await
    .unwrap();
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
    multus_tests::rbac::check_server(&_server, &[multus_crds::constants::user_agent::CONTROLLER])
        .unwrap();
}

async fn add_node(client: &kube::Client, name: &str, labels: serde_json::Value) {
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
}

async fn report_nics(client: &kube::Client, node: &str) {
    let api: Api<SriovNetworkNodeState> = Api::namespaced(client.clone(), NS);
    let status = json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
    "status": {"interfaces": [
        {"name": "eno1", "pciAddress": "0000:3b:00.0", "vendor": "8086", "deviceID": "159b", "totalvfs": 64},
        {"name": "eno2", "pciAddress": "0000:3b:00.1", "vendor": "8086", "deviceID": "159b", "totalvfs": 64}
    ]}});
    api.patch_status(
        node,
        &PatchParams::apply("multus-agent").force(),
        &Patch::Apply(&status),
    )
    .await
    .unwrap();
}

fn policy(
    name: &str,
    prio: i32,
    selector: serde_json::Value,
    pf: &str,
    res: &str,
) -> SriovNetworkNodePolicy {
    serde_json::from_value(
        json!({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"resourceName": res, "nodeSelector": selector, "priority": prio, "numVfs": 8,
                 "nicSelector": {"pfNames": [pf]}}}),
    )
    .unwrap()
}

async fn state_of(client: &kube::Client, node: &str) -> Option<SriovNetworkNodeState> {
    Api::<SriovNetworkNodeState>::namespaced(client.clone(), NS)
        .get_opt(node)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_node_labels_drive_node_states_and_conflicts_surface() {
    let (_server, client) = cluster().await;
    add_node(&client, "w0", json!({"sriov": "true", "zone": "a"})).await;
    add_node(&client, "other", json!({"kubernetes.io/os": "linux"})).await;
    let r = start(&client, "a");
    let c = client.clone();
    wait_for("a NodeState for w0", T, || {
        let c = c.clone();
        async move { state_of(&c, "w0").await }
    })
    .await
    .unwrap();
    assert!(
        state_of(&client, "other").await.is_none(),
        "unselected node gets no NodeState"
    );
    report_nics(&client, "w0").await;

    let pols: Api<SriovNetworkNodePolicy> = Api::namespaced(client.clone(), NS);
    pols.create(
        &PostParams::default(),
        &policy("p1", 20, json!({"zone": "a"}), "eno1#0-3", "a"),
    )
    .await
    .unwrap();
    let c = client.clone();
    wait_for("w0 gets p1's VF group", T, || {
        let c = c.clone();
        async move {
            let s = state_of(&c, "w0").await?;
            (s.spec.interfaces.len() == 1 && s.spec.interfaces[0].vf_groups[0].vf_range == "0-3")
                .then_some(())
        }
    })
    .await
    .unwrap();

    // overlapping p2 → Degraded on both and a Warning Event
    pols.create(
        &PostParams::default(),
        &policy("p2", 10, json!({"sriov": "true"}), "eno1#2-5", "b"),
    )
    .await
    .unwrap();
    let c = client.clone();
    let cond = wait_for("Degraded=True on p1", T, || {
        let c = c.clone();
        async move {
            let p = Api::<SriovNetworkNodePolicy>::namespaced(c, NS)
                .get("p1")
                .await
                .ok()?;
            p.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded" && c.status == "True")
        }
    })
    .await
    .unwrap();
    assert_eq!(cond.reason, "VfRangeOverlap");
    assert!(cond.message.contains("p2"), "{}", cond.message);
    let c = client.clone();
    wait_for("a VfRangeOverlap Event", T, || {
        let c = c.clone();
        async move {
            let evs = Api::<Event>::namespaced(c, NS)
                .list(&ListParams::default())
                .await
                .ok()?;
            evs.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("VfRangeOverlap"))
        }
    })
    .await
    .unwrap();
    let s = state_of(&client, "w0").await.unwrap();
    assert_eq!(
        s.spec.interfaces[0].vf_groups.len(),
        1,
        "the overlapped group is dropped"
    );
    assert_eq!(s.spec.interfaces[0].vf_groups[0].policy_name, "p2");

    // a policy selecting no NIC
    pols.create(
        &PostParams::default(),
        &policy("p3", 30, json!({"sriov": "true"}), "ens9", "c"),
    )
    .await
    .unwrap();
    let c = client.clone();
    wait_for("Ready=False NoNicSelected on p3", T, || {
        let c = c.clone();
        async move {
            let p = Api::<SriovNetworkNodePolicy>::namespaced(c, NS)
                .get("p3")
                .await
                .ok()?;
            p.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.reason == "NoNicSelected")
        }
    })
    .await
    .unwrap();

    // node labels change: zone a removed → p1 no longer applies
    Api::<Node>::all(client.clone())
        .patch(
            "w0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"zone": null}}})),
        )
        .await
        .unwrap();
    pols.delete("p2", &DeleteParams::default()).await.unwrap();
    let c = client.clone();
    wait_for("w0 spec without p1 and p2", T, || {
        let c = c.clone();
        async move {
            state_of(&c, "w0")
                .await
                .filter(|s| s.spec.interfaces.is_empty())
                .map(|_| ())
        }
    })
    .await
    .unwrap();

    // steady state: no writes
    let c = client.clone();
    wait_for("p1 NoNodeSelected", T, || {
        let c = c.clone();
        async move {
            let p = Api::<SriovNetworkNodePolicy>::namespaced(c, NS)
                .get("p1")
                .await
                .ok()?;
            p.status?
                .conditions
                .into_iter()
                .find(|c| c.reason == "NoNodeSelected")
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = r.ctx.metrics.writes_total();
    // a change that alters nothing the controller writes
    Api::<Node>::all(client.clone())
        .patch(
            "w0",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"unrelated": "x"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        r.ctx.metrics.writes_total(),
        before,
        "no writes when nothing changed"
    );

    // node gone → NodeState removed after the delay
    Api::<Node>::all(client.clone())
        .delete("w0", &DeleteParams::default())
        .await
        .unwrap();
    let c = client.clone();
    wait_for("w0's NodeState removed", T, || {
        let c = c.clone();
        async move { state_of(&c, "w0").await.is_none().then_some(()) }
    })
    .await
    .unwrap();
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
    multus_tests::rbac::check_server(&_server, &[multus_crds::constants::user_agent::CONTROLLER])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_when_the_leader_dies_and_no_write_is_lost() {
    let (_server, client) = cluster().await;
    let a = start(&client, "a");
    wait_leader(&a).await;
    let b = start(&client, "b");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!b.ctx.is_leader(), "only one leader");
    // the leader dies without releasing the Lease
    a.task.abort();
    // a write made while nobody leads
    Api::<SriovNetwork>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &network(
                "late",
                NS,
                json!({"resourceName": "r", "networkNamespace": "app"}),
            ),
        )
        .await
        .unwrap();
    wait_leader(&b).await;
    let c = client.clone();
    wait_for("the standby renders the NAD", T, || {
        let c = c.clone();
        async move { nad(&c, "app", "late").await }
    })
    .await
    .unwrap();
    b.stop.cancel();
    b.task.await.unwrap().unwrap();
    multus_tests::rbac::check_server(&_server, &[multus_crds::constants::user_agent::CONTROLLER])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_the_lease_stops() {
    let (_server, client) = cluster().await;
    let a = start(&client, "a");
    wait_leader(&a).await;
    // someone else takes the Lease
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), NS);
    leases
        .patch(
            "multus-controller",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "intruder"}})),
        )
        .await
        .unwrap();
    let result = tokio::time::timeout(T, a.task).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(controller::ControllerError::LostLease { .. })),
        "{result:?}"
    );
    let _ = a.stop;
    multus_tests::rbac::check_server(&_server, &[multus_crds::constants::user_agent::CONTROLLER])
        .unwrap();
}
