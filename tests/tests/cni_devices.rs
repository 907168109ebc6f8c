//! deviceID discovery (multus-spec §3.14) end to end: the thin `multus` binary asks the fake
//! kubelet's PodResources API for the pod's devices and hands one device to each attachment of a
//! NAD carrying `k8s.v1.cni.cncf.io/resourceName`. The delegate is a script that records the
//! configuration it was given. Needs root (CI is root); fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cni_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cni_common::*;
use kube::api::{Api, PostParams};
use multus_crds::NetworkAttachmentDefinition;
use multus_tests::kubelet::{FakeKubelet, pod_with_devices};
use serde_json::{Value, json};

const RESOURCE: &str = "example.com/sriov_vf";

/// A plugin that writes its stdin to `<bin dir>/<command>-<ifname>.json` and succeeds.
fn recording_plugin(bin: &Path) {
    let script = format!(
        "#!/bin/sh\ncat > '{}'/\"$CNI_COMMAND-$CNI_IFNAME.json\"\n\
         [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\"}}'\nexit 0\n",
        bin.display()
    );
    let path = bin.join("record-dev");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn recorded(bin: &Path, command: &str, ifname: &str) -> Value {
    let text = std::fs::read_to_string(bin.join(format!("{command}-{ifname}.json")))
        .unwrap_or_else(|e| panic!("{command} {ifname} not recorded: {e}"));
    serde_json::from_str(&text).unwrap()
}

async fn device_nad(t: &Cluster, name: &str) {
    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(t.client.clone(), "team");
    let mut nad = NetworkAttachmentDefinition::new(name, Default::default());
    nad.metadata.annotations = Some(
        [(
            "k8s.v1.cni.cncf.io/resourceName".to_owned(),
            RESOURCE.to_owned(),
        )]
        .into(),
    );
    nad.spec.config = Some(
        json!({"cniVersion":"1.0.0","type":"record-dev","capabilities":{"deviceID":true}})
            .to_string(),
    );
    api.create(&PostParams::default(), &nad).await.unwrap();
}

/// Two devices, three attachments of the resource: the first two get the devices in sorted
/// order (config `deviceID`/`pciBusID` and the `deviceID` capability argument, the selection's
/// own `deviceID` ignored), the third gets none and still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attachment_of_a_resource_gets_the_next_device() {
    let t = Cluster::start("dv", 61).await;
    let bin: PathBuf = t.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    recording_plugin(&bin);
    let socket = t.dir.path().join("pod-resources/kubelet.sock");
    let kubelet = FakeKubelet::start(t.dir.path().join("device-plugins"), &socket)
        .await
        .unwrap();
    kubelet.set_pod_resources(vec![
        pod_with_devices("other", "web", RESOURCE, &["0000:09:00.0"]),
        pod_with_devices("team", "web", RESOURCE, &["0000:03:00.2", "0000:03:00.1"]),
    ]);
    device_nad(&t, "vf").await;
    let annotation = json!([
        {"name":"vf","deviceID":"0000:ff:00.0"},
        {"name":"vf","interface":"net2"},
        {"name":"vf","interface":"net3"}
    ])
    .to_string();
    let pod = t.pod("team", "web", Some(&annotation)).await;
    let config = t.thin_config(json!({"binDir": bin, "podResourcesSocket": socket}));

    t.cni("ADD", &pod, &config).expect_ok();

    let net1 = recorded(&bin, "ADD", "net1");
    let net2 = recorded(&bin, "ADD", "net2");
    let net3 = recorded(&bin, "ADD", "net3");
    assert_eq!(net1["deviceID"], "0000:03:00.1", "{net1}");
    assert_eq!(net1["pciBusID"], "0000:03:00.1", "{net1}");
    assert_eq!(net1["runtimeConfig"]["deviceID"], "0000:03:00.1", "{net1}");
    assert_eq!(net2["deviceID"], "0000:03:00.2", "{net2}");
    assert_eq!(net2["pciBusID"], "0000:03:00.2", "{net2}");
    assert_eq!(net2["runtimeConfig"]["deviceID"], "0000:03:00.2", "{net2}");
    assert!(net3.get("deviceID").is_none(), "{net3}");
    assert!(net3.get("pciBusID").is_none(), "{net3}");

    // DEL hands each delegate the configuration ADD gave it, without asking kubelet again.
    drop(kubelet);
    t.cni("DEL", &pod, &config).expect_ok();
    assert_eq!(recorded(&bin, "DEL", "net2")["deviceID"], "0000:03:00.2");
}

/// Kubelet's socket missing (no PodResources on this node): no deviceID, the ADD succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_kubelet_socket_no_device_is_injected() {
    let t = Cluster::start("dw", 62).await;
    let bin: PathBuf = t.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    recording_plugin(&bin);
    device_nad(&t, "vf").await;
    let pod = t.pod("team", "web", Some("vf")).await;
    let socket = t.dir.path().join("absent/kubelet.sock");
    let config = t.thin_config(json!({"binDir": bin, "podResourcesSocket": socket}));

    t.cni("ADD", &pod, &config).expect_ok();
    let net1 = recorded(&bin, "ADD", "net1");
    assert!(net1.get("deviceID").is_none(), "{net1}");
    t.cni("DEL", &pod, &config).expect_ok();
}
