//! The CEL rules (`x-kubernetes-validations`) of the SR-IOV CRDs, evaluated client-side against
//! the generated `openAPIV3Schema` exactly as committed: one object that passes and one that
//! fails per rule. A failure must be a rule evaluating to false (not a compile or runtime error),
//! and must name the rule's field.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::CustomResourceExt;
use kube::core::cel::{ErrorKind, Validator};
use multus_crds::sriov::{SriovNetwork, SriovNetworkNodePolicy, SriovNetworkNodeState};
use serde_json::{Value, json};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn policy(spec: Value) -> Value {
    json!({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": "p", "namespace": "sriov-network-operator"},
        "spec": spec,
    })
}

/// A valid policy spec with `changes` merged in (a `null` removes a key).
fn policy_spec(changes: Value) -> Value {
    let mut spec = json!({
        "resourceName": "intel_netdevice",
        "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
        "numVfs": 16,
        "nicSelector": {"vendor": "8086"},
    });
    merge(&mut spec, changes);
    spec
}

fn merge(base: &mut Value, changes: Value) {
    if let (Some(base), Value::Object(changes)) = (base.as_object_mut(), changes) {
        for (k, v) in changes {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
}

fn check_policy(changes: Value) -> Result<(), Vec<(String, String)>> {
    check(
        &schema::<SriovNetworkNodePolicy>(),
        &policy(policy_spec(changes)),
    )
}

fn check(schema: &Value, object: &Value) -> Result<(), Vec<(String, String)>> {
    Validator::new()
        .validate(schema, object, None)
        .map_err(|errors| {
            errors
                .into_vec()
                .into_iter()
                .map(|e| {
                    assert_eq!(
                        e.kind,
                        ErrorKind::ValidationFailure,
                        "rule did not evaluate: {e}"
                    );
                    (e.field_path, e.message)
                })
                .collect()
        })
}

/// Assert exactly one rule failed, at `path`, with a message containing `words`.
fn assert_fails(result: Result<(), Vec<(String, String)>>, path: &str, words: &str) {
    let errors = result.expect_err("object should have been rejected");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].0.ends_with(path),
        "path {:?}, wanted {path:?}",
        errors[0].0
    );
    assert!(errors[0].1.contains(words), "message {:?}", errors[0].1);
}

#[test]
fn the_base_policy_passes() {
    assert_eq!(check_policy(json!({})), Ok(()));
}

#[test]
fn nic_selector_needs_a_field() {
    assert_fails(
        check_policy(json!({"nicSelector": {}})),
        "spec.nicSelector",
        "at least one of",
    );
    assert_fails(
        check_policy(json!({"nicSelector": {"vendor": "", "pfNames": []}})),
        "spec.nicSelector",
        "at least one of",
    );
    assert_eq!(
        check_policy(json!({"nicSelector": {"rootDevices": ["0000:3b:00.0"]}})),
        Ok(())
    );
    assert_eq!(
        check_policy(json!({"nicSelector": {"pfNames": ["eno1"]}})),
        Ok(())
    );
}

#[test]
fn net_filter_stands_alone_in_the_selector() {
    let cloud = json!({"netFilter": "openstack/NetworkID:abc"});
    assert_eq!(check_policy(json!({"nicSelector": cloud})), Ok(()));
    assert_fails(
        check_policy(
            json!({"nicSelector": {"netFilter": "openstack/NetworkID:abc", "deviceID": "1889"}}),
        ),
        "netFilter",
        "cannot be combined",
    );
}

#[test]
fn net_filter_policies_cannot_set_switch_modes() {
    let cloud = json!({"netFilter": "aws/NetworkID:subnet-1"});
    assert_eq!(
        check_policy(json!({"nicSelector": cloud, "linkType": "ETH"})),
        Ok(())
    );
    assert_fails(
        check_policy(json!({"nicSelector": cloud, "eSwitchMode": "legacy"})),
        "nicSelector.netFilter",
        "cannot set eSwitchMode",
    );
    assert_fails(
        check_policy(json!({"nicSelector": cloud, "linkType": "ib"})),
        "nicSelector.netFilter",
        "cannot set eSwitchMode",
    );
}

#[test]
fn vfio_pci_rejects_rdma() {
    assert_eq!(
        check_policy(json!({"deviceType": "vfio-pci", "isRdma": false})),
        Ok(())
    );
    assert_eq!(
        check_policy(json!({"deviceType": "netdevice", "isRdma": true})),
        Ok(())
    );
    assert_fails(
        check_policy(json!({"deviceType": "vfio-pci", "isRdma": true})),
        "isRdma",
        "vfio-pci",
    );
}

#[test]
fn switchdev_rejects_infiniband() {
    assert_eq!(
        check_policy(json!({"linkType": "eth", "eSwitchMode": "switchdev"})),
        Ok(())
    );
    assert_eq!(
        check_policy(json!({"linkType": "IB", "eSwitchMode": "legacy"})),
        Ok(())
    );
    assert_fails(
        check_policy(json!({"linkType": "IB", "eSwitchMode": "switchdev"})),
        "eSwitchMode",
        "Ethernet",
    );
}

#[test]
fn vdpa_needs_netdevice_and_switchdev() {
    assert_eq!(
        check_policy(json!({"vdpaType": "virtio", "eSwitchMode": "switchdev"})),
        Ok(())
    );
    assert_fails(
        check_policy(json!({"vdpaType": "vhost", "eSwitchMode": "legacy"})),
        "vdpaType",
        "switchdev",
    );
    // deviceType is defaulted to netdevice before the rules run, as in the API server.
    assert_fails(
        check_policy(
            json!({"vdpaType": "vhost", "eSwitchMode": "switchdev", "deviceType": "vfio-pci"}),
        ),
        "vdpaType",
        "netdevice",
    );
}

#[test]
fn bridge_needs_switchdev() {
    let bridge = json!({"ovs": {"bridge": {"datapathType": "netdev"}}});
    assert_eq!(
        check_policy(json!({"bridge": bridge, "eSwitchMode": "switchdev"})),
        Ok(())
    );
    assert_eq!(
        check_policy(json!({"bridge": {}})),
        Ok(()),
        "an empty bridge requests nothing"
    );
    assert_fails(
        check_policy(json!({"bridge": bridge})),
        "bridge",
        "needs eSwitchMode switchdev",
    );
}

#[test]
fn bridge_rejects_externally_managed() {
    let bridge = json!({"ovs": {}});
    assert_eq!(
        check_policy(
            json!({"bridge": bridge, "eSwitchMode": "switchdev", "externallyManaged": false})
        ),
        Ok(())
    );
    assert_fails(
        check_policy(
            json!({"bridge": bridge, "eSwitchMode": "switchdev", "externallyManaged": true}),
        ),
        "bridge",
        "externallyManaged",
    );
}

#[test]
fn pf_name_ranges_fit_num_vfs() {
    let pf_names = |names: Value| json!({"nicSelector": {"pfNames": names}});
    assert_eq!(
        check_policy(pf_names(json!(["ens1f0#8-15", "eno1", "enp-1s0#0-0"]))),
        Ok(())
    );
    assert_fails(
        check_policy(pf_names(json!(["ens1f0#8-16"]))),
        "nicSelector.pfNames",
        "last < numVfs",
    );
    assert_fails(
        check_policy(pf_names(json!(["eno1", "ens1f0#9-8"]))),
        "nicSelector.pfNames",
        "first <= last",
    );
}

fn network(spec: Value) -> Value {
    json!({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetwork",
        "metadata": {"name": "n", "namespace": "sriov-network-operator"},
        "spec": spec,
    })
}

#[test]
fn tx_rates_are_ordered_unless_uncapped() {
    let s = schema::<SriovNetwork>();
    for ok in [
        json!({"resourceName": "a", "minTxRate": 100, "maxTxRate": 1000}),
        json!({"resourceName": "a", "minTxRate": 100, "maxTxRate": 0}),
        json!({"resourceName": "a", "minTxRate": 100}),
    ] {
        assert_eq!(check(&s, &network(ok.clone())), Ok(()), "{ok}");
    }
    assert_fails(
        check(
            &s,
            &network(json!({"resourceName": "a", "minTxRate": 1000, "maxTxRate": 100})),
        ),
        "minTxRate",
        "must not exceed maxTxRate",
    );
}

/// Values the OpenAPI part of the schema constrains (enforced by the API server's structural
/// validation, not by CEL): check they are present in the generated schema.
#[test]
fn openapi_limits_are_in_the_schemas() {
    let policy = schema::<SriovNetworkNodePolicy>();
    let p = &policy["properties"]["spec"]["properties"];
    assert_eq!(p["priority"]["minimum"], json!(0.0));
    assert_eq!(p["priority"]["maximum"], json!(99.0));
    assert_eq!(p["numVfs"]["minimum"], json!(0.0));
    assert_eq!(p["mtu"]["minimum"], json!(1.0));
    assert_eq!(p["resourceName"]["maxLength"], json!(63));
    assert_eq!(
        p["resourceName"]["pattern"],
        json!(multus_crds::sriov::policy::RESOURCE_NAME_PATTERN)
    );
    assert_eq!(p["deviceType"]["enum"], json!(["netdevice", "vfio-pci"]));
    assert_eq!(p["deviceType"]["default"], json!("netdevice"));
    assert_eq!(p["linkType"]["enum"], json!(["eth", "ETH", "ib", "IB"]));
    assert_eq!(
        p["eSwitchMode"]["enum"],
        json!(["legacy", "switchdev", null])
    );
    assert_eq!(p["vdpaType"]["enum"], json!(["virtio", "vhost", null]));
    assert_eq!(
        p["bridge"]["properties"]["ovs"]["properties"]["bridge"]["properties"]["failMode"]["enum"],
        json!(["secure", "standalone", null])
    );
    let required: Vec<&str> = policy["properties"]["spec"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        ["nicSelector", "nodeSelector", "numVfs", "resourceName"]
    );

    let network = schema::<SriovNetwork>();
    let n = &network["properties"]["spec"]["properties"];
    assert_eq!(
        (n["vlan"]["minimum"].clone(), n["vlan"]["maximum"].clone()),
        (json!(0.0), json!(4094.0))
    );
    assert_eq!(
        (
            n["vlanQoS"]["minimum"].clone(),
            n["vlanQoS"]["maximum"].clone()
        ),
        (json!(0.0), json!(7.0))
    );
    assert_eq!(n["minTxRate"]["minimum"], json!(0.0));
    assert_eq!(n["maxTxRate"]["minimum"], json!(0.0));
    assert_eq!(
        n["vlanProto"]["enum"],
        json!(["802.1q", "802.1Q", "802.1ad", "802.1AD"])
    );
    assert_eq!(n["spoofChk"]["enum"], json!(["on", "off"]));
    assert_eq!(n["trust"]["enum"], json!(["on", "off"]));
    assert_eq!(n["linkState"]["enum"], json!(["auto", "enable", "disable"]));
    assert_eq!(
        n["logLevel"]["enum"],
        json!(["panic", "error", "warning", "info", "debug", ""])
    );
    assert_eq!(n["logLevel"]["default"], json!("info"));
    assert_eq!(
        network["properties"]["status"]["properties"]["conditions"]["x-kubernetes-list-type"],
        json!("map")
    );

    let state = schema::<SriovNetworkNodeState>();
    let st = &state["properties"]["status"]["properties"];
    assert_eq!(
        st["syncStatus"]["enum"],
        json!(["Succeeded", "InProgress", "Failed", null])
    );
    assert_eq!(
        st["system"]["properties"]["rdmaMode"]["enum"],
        json!(["shared", "exclusive", null])
    );
    let iface = &st["interfaces"]["items"]["properties"];
    for key in [
        "totalvfs",
        "Vfs",
        "altNames",
        "linkSpeed",
        "linkAdminState",
        "netFilter",
    ] {
        assert!(iface.get(key).is_some(), "status interface key {key}");
    }
    let vf = &iface["Vfs"]["items"]["properties"];
    for key in [
        "vfID",
        "Vlan",
        "assigned",
        "guid",
        "representorName",
        "vdpaType",
    ] {
        assert!(vf.get(key).is_some(), "VF key {key}");
    }
    let group = &state["properties"]["spec"]["properties"]["interfaces"]["items"]["properties"]["vfGroups"]
        ["items"]["properties"];
    assert_eq!(
        group["vfRange"]["pattern"],
        json!(multus_crds::sriov::nodestate::VF_RANGE_PATTERN)
    );
}

/// The shipped examples pass every CEL rule of their CRD.
#[test]
fn examples_pass_the_cel_rules() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sriov");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let object: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let schema = match object["kind"].as_str() {
            Some("SriovNetworkNodePolicy") => schema::<SriovNetworkNodePolicy>(),
            Some("SriovNetwork") => schema::<SriovNetwork>(),
            Some("SriovNetworkNodeState") => schema::<SriovNetworkNodeState>(),
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        };
        assert_eq!(check(&schema, &object), Ok(()), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 5);
}

/// The OpenAPI limits, enforced through the structural validator (`multus_crds::openapi`) on the
/// same generated schemas: one accepted and one rejected value per limit.
#[test]
fn openapi_limits_reject_out_of_range_values() {
    let policy_schema = schema::<SriovNetworkNodePolicy>();
    let policy_errors = |changes: Value| -> Vec<String> {
        multus_crds::openapi::validate(&policy_schema, &policy(policy_spec(changes)))
            .errors()
            .map(|d| d.path.to_string())
            .collect()
    };
    assert!(policy_errors(json!({"priority": 0, "mtu": 1, "numVfs": 0})).is_empty());
    assert!(policy_errors(json!({"priority": 99, "resourceName": "a-b_c"})).is_empty());
    for (changes, path) in [
        (json!({"priority": 100}), "spec.priority"),
        (json!({"priority": -1}), "spec.priority"),
        (json!({"numVfs": -1}), "spec.numVfs"),
        (json!({"mtu": 0}), "spec.mtu"),
        (json!({"resourceName": "a.b"}), "spec.resourceName"),
        (json!({"resourceName": "x".repeat(64)}), "spec.resourceName"),
        (json!({"deviceType": "vfio"}), "spec.deviceType"),
        (json!({"linkType": "Eth"}), "spec.linkType"),
        (json!({"eSwitchMode": "offload"}), "spec.eSwitchMode"),
        (json!({"vdpaType": "vdpa"}), "spec.vdpaType"),
        (
            json!({"nicSelector": {"pfNames": ["eth0#1"]}}),
            "spec.nicSelector.pfNames[0]",
        ),
    ] {
        assert_eq!(policy_errors(changes.clone()), [path], "{changes}");
    }

    let network_schema = schema::<SriovNetwork>();
    let network_errors = |spec: Value| -> Vec<String> {
        multus_crds::openapi::validate(&network_schema, &network(spec))
            .errors()
            .map(|d| d.path.to_string())
            .collect()
    };
    assert!(
        network_errors(
            json!({"resourceName": "a", "vlan": 4094, "vlanQoS": 7, "vlanProto": "802.1ad",
            "spoofChk": "on", "trust": "off", "linkState": "auto", "logLevel": "", "minTxRate": 0})
        )
        .is_empty()
    );
    for (field, bad) in [
        ("vlan", json!(4095)),
        ("vlanQoS", json!(8)),
        ("vlanProto", json!("802.1x")),
        ("spoofChk", json!("yes")),
        ("trust", json!("true")),
        ("linkState", json!("up")),
        ("logLevel", json!("trace")),
        ("maxTxRate", json!(-1)),
    ] {
        let mut spec = json!({"resourceName": "a"});
        spec[field] = bad;
        assert_eq!(network_errors(spec), [format!("spec.{field}")], "{field}");
    }

    let state_schema = schema::<SriovNetworkNodeState>();
    let state = |sync: &str, range: &str| {
        json!({
            "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
            "metadata": {"name": "worker-0", "namespace": "sriov-network-operator"},
            "spec": {"interfaces": [{"pciAddress": "0000:3b:00.0", "numVfs": 8,
                "vfGroups": [{"resourceName": "a", "vfRange": range}]}]},
            "status": {"syncStatus": sync},
        })
    };
    let state_errors = |v: Value| -> Vec<String> {
        multus_crds::openapi::validate(&state_schema, &v)
            .errors()
            .map(|d| d.path.to_string())
            .collect()
    };
    assert!(state_errors(state("InProgress", "0-7")).is_empty());
    assert_eq!(state_errors(state("Done", "0-7")), ["status.syncStatus"]);
    assert_eq!(
        state_errors(state("Succeeded", "0,2")),
        ["spec.interfaces[0].vfGroups[0].vfRange"]
    );
}

/// The shipped examples are accepted by the structural schema too.
#[test]
fn examples_pass_the_structural_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sriov");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let object: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let schema = match object["kind"].as_str() {
            Some("SriovNetworkNodePolicy") => schema::<SriovNetworkNodePolicy>(),
            Some("SriovNetwork") => schema::<SriovNetwork>(),
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        };
        let diags = multus_crds::openapi::validate(&schema, &object);
        assert!(diags.is_empty(), "{}: {diags:?}", path.display());
    }
}
