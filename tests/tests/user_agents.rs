//! The binaries, not only the in-process engines, identify themselves: `multus-operator
//! controller` and `multus-operator agent` run as processes against the fake API server, each
//! request they make carries their own `User-Agent`, and every one is granted by the RBAC
//! `config/default` installs (tests/src/rbac.rs). Without this, a binary that lost its user agent
//! would pass the end-to-end RBAC checks by being invisible to them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use multus_crds::constants::user_agent;
use multus_tests::apiserver::FakeApiServer;
use multus_tests::harness::process::{Process, workspace_binary};
use multus_tests::harness::wait::wait_for;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_and_agent_binaries_send_their_user_agent_and_stay_within_their_roles() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in multus_crds::crdgen::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    for ns in ["sriov-network-operator", "team"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
    let kubeconfig = server.kubeconfig_path();
    let operator = workspace_binary("multus-operator").unwrap();
    let host = tempfile::tempdir().unwrap();
    // Thin mode writes the plugin kubeconfig from the service account before anything else.
    let service_account = host.path().join("serviceaccount");
    std::fs::create_dir_all(&service_account).unwrap();
    std::fs::write(service_account.join("token"), "token-1").unwrap();
    std::fs::write(
        service_account.join("ca.crt"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    )
    .unwrap();
    let port = |p: u16| format!("127.0.0.1:{p}");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let _controller = Process::spawn(
        &operator,
        &[
            "controller",
            "--identity",
            "c-0",
            "--health-addr",
            &port(free()),
        ],
        Some(kubeconfig),
    )
    .unwrap();
    let _agent = Process::spawn(
        &operator,
        &[
            "agent",
            "--node-name",
            "node-1",
            "--host-root",
            host.path().to_str().unwrap(),
            "--cni-mode",
            "thin",
            "--kubeconfig-server",
            "https://10.96.0.1:443",
            "--service-account-dir",
            service_account.to_str().unwrap(),
            "--health-addr",
            &port(free()),
        ],
        Some(kubeconfig),
    )
    .unwrap();
    // The controller takes its Lease; the agent watches NADs, its node's pods and its NodeState.
    let seen = |ua: &'static str, resource: &'static str| {
        let requests = server.requests();
        async move {
            requests
                .iter()
                .any(|r| r.user_agent == ua && r.resource == resource)
                .then_some(())
        }
    };
    wait_for(
        "the controller's Lease request",
        Duration::from_secs(30),
        || seen(user_agent::CONTROLLER, "leases"),
    )
    .await
    .unwrap();
    wait_for("the agent's NAD watch", Duration::from_secs(30), || {
        seen(user_agent::AGENT, "network-attachment-definitions")
    })
    .await
    .unwrap();
    wait_for(
        "the agent's NodeState request",
        Duration::from_secs(30),
        || seen(user_agent::AGENT, "sriovnetworknodestates"),
    )
    .await
    .unwrap();
    // The agent's SR-IOV side also needs its kubelet; what it asked the API server so far counts.
    let summary =
        multus_tests::rbac::check_server(&server, &[user_agent::CONTROLLER, user_agent::AGENT])
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(summary["multus-operator-controller"] >= 2, "{summary:?}");
    assert!(summary["multus-operator-agent"] >= 3, "{summary:?}");
}
