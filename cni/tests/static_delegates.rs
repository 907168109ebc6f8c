//! The `multus` binary with static `delegates` (no Kubernetes) in a real network namespace with
//! Debian's plugins. Needs root (CI is root); fails, never skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const PLUGINS: &str = "/usr/lib/cni";

/// A named network namespace and the links the test made, removed even when the test fails.
struct Guard {
    netns: String,
    links: Vec<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
    }
}

fn setup(netns: &str, links: &[&str]) -> Guard {
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "needs root"
    );
    for p in ["bridge", "host-local"] {
        assert!(
            Path::new(PLUGINS).join(p).is_file(),
            "install containernetworking-plugins"
        );
    }
    let _ = Command::new("ip").args(["netns", "del", netns]).output();
    let out = Command::new("ip")
        .args(["netns", "add", netns])
        .output()
        .unwrap();
    assert!(out.status.success());
    Guard {
        netns: netns.into(),
        links: links.iter().map(|l| (*l).to_owned()).collect(),
    }
}

fn multus(command: &str, netns: &str, cid: &str, config: &Value) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_multus"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", format!("/var/run/netns/{netns}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Three recording plugins "one", "two", "three" added in order, then deleted in reverse.
const THREE_ADDED_AND_DELETED: [&str; 6] = [
    "one ADD",
    "two ADD",
    "three ADD",
    "three DEL",
    "two DEL",
    "one DEL",
];

/// What recording plugins log for `steps` ("one ADD", …) run one after the other: each step's
/// begin, then its end.
fn begun_and_ended(steps: &[&str]) -> Vec<String> {
    steps
        .iter()
        .flat_map(|s| [format!("{s} begin"), format!("{s} end")])
        .collect()
}

/// `multus` ADD then DEL of container `cid` in `netns`, each of which must succeed.
fn add_then_del(netns: &str, cid: &str, config: &Value) {
    for command in ["ADD", "DEL"] {
        let (ok, out) = multus(command, netns, cid, config);
        assert!(ok, "{command}: {out}");
    }
}

/// A plugin whose ADD fails ("failing on purpose") and whose other commands succeed.
const FAILING_ADD: &str = r#"cat >/dev/null
[ "$CNI_COMMAND" = ADD ] || exit 0
printf '{"cniVersion":"1.0.0","code":100,"msg":"failing on purpose"}'; exit 1
"#;

/// A script plugin's ADD branch: a veth named `$CNI_IFNAME` in the pod (both ends there), and a
/// result naming it.
const ADD_A_VETH: &str = r#"ADD) nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type veth peer name "p$$" >&2 || exit 1
     printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}]}' "$CNI_IFNAME" "$CNI_NETNS" ;;"#;

/// A plugin written as a shell script `body`, in `<dir>/bin` (returned).
fn script_plugin(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = bin.join(name);
    std::fs::write(&plugin, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

fn links_in(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-j", "link"])
        .output()
        .unwrap();
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = v
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn config(dir: &Path, second_type: &str) -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": "multus-cni-network",
        "type": "multus",
        "cniDir": dir.join("cache"),
        "binDir": PLUGINS,
        "delegates": [
            {"cniVersion":"1.0.0","name":"sd-cluster","plugins":[{"type":"bridge","bridge":"sdbr0","isGateway":true,
              "ipam":{"type":"host-local","dataDir":dir.join("ipam"),"subnet":"10.151.0.0/24"}}]},
            {"cniVersion":"1.0.0","name":"sd-second","type":second_type,"bridge":"sdbr1",
              "ipam":{"type":"host-local","dataDir":dir.join("ipam"),"subnet":"10.152.0.0/24"}}
        ]
    })
}

#[test]
fn static_delegates_add_del_and_refusals() {
    let _g = setup("sd-pod", &["sdbr0", "sdbr1"]);
    let dir = tempfile::tempdir().unwrap();

    let (ok, out) = multus("VERSION", "sd-pod", "", &json!({}));
    assert!(ok);
    assert!(out.contains("\"1.1.0\""), "{out}");

    // The result comes back in the Multus config's version (0.4.0), converted from 1.0.0.
    let (ok, out) = multus("ADD", "sd-pod", "sd1", &config(dir.path(), "bridge"));
    assert!(ok, "{out}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["cniVersion"], "0.4.0");
    assert_eq!(result["ips"][0]["version"], "4");
    assert_eq!(links_in("sd-pod"), ["eth0", "lo", "net1"]);
    let (ok, out) = multus("CHECK", "sd-pod", "sd1", &config(dir.path(), "bridge"));
    assert!(ok, "{out}");
    // Another container in the same namespace: its eth0 is taken, refused before anything runs
    // (the binary checks from its own thread; that the thread comes back to the host's namespace
    // is netns.rs' unit test).
    let (ok, out) = multus("ADD", "sd-pod", "sd-other", &config(dir.path(), "bridge"));
    assert!(!ok);
    let err: Value = serde_json::from_str(&out).unwrap();
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("\"eth0\" already exists"),
        "{err}"
    );
    assert_eq!(links_in("sd-pod"), ["eth0", "lo", "net1"]);
    assert!(
        !dir.path().join("cache").join("sd-other").exists(),
        "the refused ADD cached nothing"
    );
    let (ok, out) = multus("DEL", "sd-pod", "sd1", &config(dir.path(), "bridge"));
    assert!(ok, "{out}");
    assert_eq!(links_in("sd-pod"), ["lo"]);

    // A path as `type` is refused before anything runs: not even the first delegate.
    let (ok, out) = multus(
        "ADD",
        "sd-pod",
        "sd2",
        &config(dir.path(), "../../../bin/true"),
    );
    assert!(!ok);
    let err: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(err["code"], 7, "{err}");
    assert_eq!(links_in("sd-pod"), ["lo"]);
}

/// `multus` killed while its second attachment's plugin runs: the delegate list, written before
/// any plugin ran, is all a DEL needs to release the first attachment (its interface and its
/// address) and to call the second's DEL.
#[test]
fn a_del_after_multus_died_mid_add_releases_what_was_added() {
    let _g = setup("sd-crash", &["sdbr2"]);
    let dir = tempfile::tempdir().unwrap();
    // Kills its caller during ADD (once given its config, as a plugin acts), as a crash or an
    // OOM kill would; DEL succeeds.
    let bin = script_plugin(
        dir.path(),
        "kill-caller",
        "cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] && kill -9 \"$PPID\"\nexit 0\n",
    );
    let ipam = dir.path().join("ipam");
    let config = json!({
        "cniVersion": "1.0.0",
        "name": "multus-cni-network",
        "type": "multus",
        "cniDir": dir.path().join("cache"),
        "binDir": bin,
        "delegates": [
            {"cniVersion":"1.0.0","name":"sd-crash-cluster","plugins":[{"type":"bridge","bridge":"sdbr2",
              "ipam":{"type":"host-local","dataDir":ipam,"subnet":"10.154.0.0/24"}}]},
            {"cniVersion":"1.0.0","name":"sd-crash-second","type":"kill-caller"}
        ]
    });
    let allocated = || {
        std::fs::read_dir(ipam.join("sd-crash-cluster"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("10.154."))
                    .count()
            })
            .unwrap_or(0)
    };

    let (ok, out) = multus("ADD", "sd-crash", "sd-c1", &config);
    assert!(!ok, "multus was to be killed: {out}");
    assert_eq!(
        links_in("sd-crash"),
        ["eth0", "lo"],
        "the first attachment was made"
    );
    assert_eq!(allocated(), 1);
    assert!(dir.path().join("cache").join("sd-c1").is_file());

    let (ok, out) = multus("DEL", "sd-crash", "sd-c1", &config);
    assert!(ok, "{out}");
    assert_eq!(links_in("sd-crash"), ["lo"]);
    assert_eq!(allocated(), 0, "the address was released");
    assert!(!dir.path().join("cache").join("sd-c1").exists());
}

/// Plugin-level GC keeps an attachment that its container's delegate list names but that has no
/// result record yet (an ADD in progress, or one a crash cut short): its address must not be
/// collected while the runtime still holds the container valid.
#[test]
fn gc_keeps_attachments_a_delegate_list_names_before_their_record() {
    let _g = setup("sd-gc", &[]);
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("gc-request.json");
    // A CNI 1.1.0 plugin: ADD answers an empty result, except for container "gc-b" whose ADD
    // kills its caller; GC keeps the request it was given.
    let bin = script_plugin(
        dir.path(),
        "gc-recorder",
        &format!(
            "case \"$CNI_COMMAND\" in\n\
             ADD) cat >/dev/null; [ \"$CNI_CONTAINERID\" = gc-b ] && kill -9 \"$PPID\"; \
             echo '{{\"cniVersion\":\"1.1.0\"}}' ;;\n\
             GC) cat >{} ;;\n*) cat >/dev/null ;;\nesac\n",
            seen.display()
        ),
    );
    let config = |extra: Value| {
        let mut c = json!({
            "cniVersion": "1.1.0",
            "name": "multus-cni-network",
            "type": "multus",
            "cniDir": dir.path().join("cache"),
            "binDir": bin,
            "delegates": [{"cniVersion":"1.1.0","name":"gc-net","type":"gc-recorder"}]
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let (ok, out) = multus("ADD", "sd-gc", "gc-a", &config(json!({})));
    assert!(ok, "{out}");
    let (ok, out) = multus("ADD", "sd-gc", "gc-b", &config(json!({})));
    assert!(!ok, "multus was to be killed: {out}");

    let valid = json!({"cni.dev/valid-attachments": [
        {"containerID": "gc-a", "ifname": "eth0"},
        {"containerID": "gc-b", "ifname": "eth0"}]});
    let (ok, out) = multus("GC", "sd-gc", "", &config(valid));
    assert!(ok, "{out}");
    let request: Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    let mut kept: Vec<String> = request["cni.dev/valid-attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}/{}",
                a["containerID"].as_str().unwrap(),
                a["ifname"].as_str().unwrap()
            )
        })
        .collect();
    kept.sort();
    assert_eq!(kept, ["gc-a/eth0", "gc-b/eth0"], "{request}");
}

/// A node upgraded in place keeps Go Multus' delegate lists, which do not record the runtime's
/// interface name. GC has none to give, so it reads them as the runtime's eth0: a stale
/// container's cluster network is deleted as eth0 and its list removed, and a live container's
/// attachment reaches the plugins' GC as eth0 (an empty name would let a plugin free it).
#[test]
fn gc_reads_go_multus_lists_as_the_runtimes_eth0() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let seen = dir.path().join("gc-request.json");
    let bin = script_plugin(
        dir.path(),
        "go-net",
        &format!(
            "case \"$CNI_COMMAND\" in\n\
             GC) cat >{} ;;\n\
             *) cat >/dev/null; echo \"$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >>{} ;;\nesac\n",
            seen.display(),
            calls.display()
        ),
    );
    let network = json!({"cniVersion":"1.1.0","name":"go-net","type":"go-net"});
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let go_list = json!([{
        "Conf": {},
        "Name": "go-net",
        "Bytes": base64::engine::general_purpose::STANDARD.encode(network.to_string()),
    }]);
    for cid in ["go-stale", "go-live"] {
        std::fs::write(cache.join(cid), go_list.to_string()).unwrap();
    }
    let config = json!({
        "cniVersion": "1.1.0",
        "name": "multus-cni-network",
        "type": "multus",
        "cniDir": cache,
        "binDir": bin,
        "delegates": [network],
        "cni.dev/valid-attachments": [{"containerID": "go-live", "ifname": "eth0"}]
    });
    // As libcni calls GC: no container, namespace nor interface.
    let gc = |config: &Value| {
        Command::new(env!("CARGO_BIN_EXE_multus"))
            .env("CNI_COMMAND", "GC")
            .env("CNI_PATH", PLUGINS)
            .env_remove("CNI_IFNAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(config.to_string().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap()
    };
    // Without the list of valid attachments (a runtime's mistake) nothing is removed: read as
    // empty, it would have removed every pod's attachments.
    let mut unlisted = config.clone();
    unlisted
        .as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    let out = gc(&unlisted);
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("cni.dev/valid-attachments"),
        "{err}"
    );
    assert!(!calls.exists(), "no plugin ran");
    assert!(cache.join("go-stale").exists() && cache.join("go-live").exists());

    // A GC that succeeds; the plugin calls made so far.
    let gc_ok = |config: &Value| {
        let out = gc(config);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::fs::read_to_string(&calls).unwrap()
    };
    assert_eq!(gc_ok(&config), "DEL go-stale eth0\n");
    assert!(
        !cache.join("go-stale").exists(),
        "the stale list is removed"
    );
    assert!(cache.join("go-live").exists(), "the live list stays");
    let request: Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    assert_eq!(
        request["cni.dev/valid-attachments"],
        json!([{"containerID": "go-live", "ifname": "eth0"}]),
        "{request}"
    );
    // `null` is how Go's libcni writes an empty list (a node without pods): nothing is valid.
    let mut none_valid = config.clone();
    none_valid["cni.dev/valid-attachments"] = Value::Null;
    assert_eq!(gc_ok(&none_valid), "DEL go-stale eth0\nDEL go-live eth0\n");
    assert!(!cache.join("go-live").exists());
}

#[test]
fn a_record_that_cannot_be_written_fails_the_add_and_rolls_back_every_attachment() {
    let _g = setup("sd-rec", &[]);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    // Records every call, and what each DEL is given; ADD answers a result naming the interface.
    let bin = script_plugin(
        dir.path(),
        "rec",
        &format!(
            "input=$(cat); echo \"$CNI_COMMAND $CNI_IFNAME\" >>{}\n\
             [ \"$CNI_COMMAND\" = DEL ] && printf '%s' \"$input\" >{}/del-$CNI_IFNAME.json\n\
             [ \"$CNI_COMMAND\" = ADD ] && \
             echo \"{{\\\"cniVersion\\\":\\\"1.0.0\\\",\\\"interfaces\\\":[{{\\\"name\\\":\\\"$CNI_IFNAME\\\"}}]}}\"\n\
             exit 0\n",
            calls.display(),
            dir.path().display()
        ),
    );
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // A file where the records' directory goes: no record can be written.
    std::fs::write(cache.join("results"), b"not a directory").unwrap();
    let config = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "cniDir": cache, "binDir": bin,
        "delegates": [
            {"cniVersion":"1.0.0","name":"rec-first","type":"rec"},
            {"cniVersion":"1.0.0","name":"rec-second","type":"rec"}
        ]
    });
    let (ok, out) = multus("ADD", "sd-rec", "rec-c1", &config);
    assert!(!ok, "{out}");
    let err: Value = serde_json::from_str(&out).unwrap();
    let msg = err["msg"].as_str().unwrap();
    // The first attachment's record is written while the second's plugin runs, and fails.
    assert!(msg.contains("rec-first") && msg.contains("eth0"), "{msg}");
    // Both were added; both are deleted, newest first; the delegate list is gone.
    let log = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["ADD eth0", "ADD net1", "DEL net1", "DEL eth0"],
        "{log}"
    );
    assert!(!cache.join("rec-c1").exists(), "the delegate list is left");
    // Neither record was written, yet each DEL is handed its attachment's result (before
    // 2026-11-30 both went without prevResult).
    for ifname in ["eth0", "net1"] {
        let seen = std::fs::read(dir.path().join(format!("del-{ifname}.json"))).unwrap();
        let seen: Value = serde_json::from_slice(&seen).unwrap();
        assert_eq!(
            seen["prevResult"]["interfaces"][0]["name"], ifname,
            "{seen}"
        );
    }
}

/// DEL hands every attachment's plugin the result its own ADD returned, as `prevResult` (the
/// engine reads the next attachment's cached result while the current plugin runs).
#[test]
fn del_hands_each_attachment_its_own_cached_result() {
    let _g = setup("sd-prev", &[]);
    let dir = tempfile::tempdir().unwrap();
    let seen_dir = dir.path().join("seen");
    std::fs::create_dir(&seen_dir).unwrap();
    let bin = script_plugin(
        dir.path(),
        "recorder",
        &format!(
            r#"input=$(cat)
case "$CNI_IFNAME" in eth0) n=1;; net1) n=2;; *) n=3;; esac
case "$CNI_COMMAND" in
ADD) printf '{{"cniVersion":"1.0.0","interfaces":[{{"name":"%s"}}],"ips":[{{"address":"10.9.9.%s/24","interface":0}}]}}' "$CNI_IFNAME" "$n" ;;
DEL) printf '%s' "$input" > "{}/del-$CNI_IFNAME.json" ;;
esac
"#,
            seen_dir.display()
        ),
    );
    let net = |name: &str| json!({"cniVersion":"1.0.0","name":name,"type":"recorder"});
    let config = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "cniDir": dir.path().join("cache"), "binDir": bin,
        "delegates": [net("sd-p0"), net("sd-p1"), net("sd-p2")]
    });
    let (ok, out) = multus("ADD", "sd-prev", "prev1", &config);
    assert!(ok, "{out}");
    let (ok, out) = multus("DEL", "sd-prev", "prev1", &config);
    assert!(ok, "{out}");
    for (ifname, n) in [("eth0", 1), ("net1", 2), ("net2", 3)] {
        let seen = std::fs::read(seen_dir.join(format!("del-{ifname}.json"))).unwrap();
        let seen: Value = serde_json::from_slice(&seen).unwrap();
        let prev = &seen["prevResult"];
        assert_eq!(prev["interfaces"][0]["name"], ifname, "{seen}");
        assert_eq!(
            prev["ips"][0]["address"],
            format!("10.9.9.{n}/24"),
            "{seen}"
        );
    }
}

/// DEL of a list runs every plugin even when one cannot be found: a list whose last plugin is
/// missing fails its ADD there, and the rollback's DEL still reaches the first plugin, which holds
/// what the ADD took (the engine builds each attachment's first DEL call ahead of its turn; one
/// that cannot be built must not end the list's DEL).
#[test]
fn a_list_whose_last_plugin_is_missing_is_still_released_by_its_first() {
    let _g = setup("sd-chain", &[]);
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("released");
    let bin = script_plugin(
        dir.path(),
        "holder",
        &format!(
            r#"cat >/dev/null
case "$CNI_COMMAND" in
ADD) printf '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.8.1/24"}}]}}' ;;
DEL) touch "{}" ;;
esac
"#,
            seen.display()
        ),
    );
    let config = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "cniDir": dir.path().join("cache"), "binDir": bin,
        "delegates": [{"cniVersion":"1.0.0","name":"sd-chain",
                       "plugins":[{"type":"holder"},{"type":"sd-no-such-plugin"}]}]
    });
    let (ok, out) = multus("ADD", "sd-chain", "chain1", &config);
    assert!(!ok, "{out}");
    assert!(out.contains("sd-no-such-plugin"), "{out}");
    assert!(
        seen.exists(),
        "the rollback did not DEL the list's first plugin: {out}"
    );
}

/// A Multus config whose static delegates are the script plugins `types` of `bin`, each its
/// own network `sd-<type>`, in that order.
fn scripted_config(dir: &Path, bin: &Path, types: &[&str]) -> Value {
    let delegates: Vec<Value> = types
        .iter()
        .map(|t| json!({"cniVersion":"1.0.0","name":format!("sd-{t}"),"type":t}))
        .collect();
    json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "cniDir": dir.join("cache"), "binDir": bin, "delegates": delegates
    })
}

/// An ADD of container `cid` in namespace `netns` through the daemon's engine (in this process,
/// its namespace visitor thread and all): what `multus` would print, or the error.
fn engine_add(
    engine: &multus_cni::Engine,
    rt: &tokio::runtime::Runtime,
    config: &Value,
    cid: &str,
    netns: &str,
) -> Result<Option<String>, multus_cni::error::Error> {
    let env = |k: &str| match k {
        "CNI_COMMAND" => Some("ADD".to_owned()),
        "CNI_CONTAINERID" => Some(cid.to_owned()),
        "CNI_NETNS" => Some(format!("/var/run/netns/{netns}")),
        "CNI_IFNAME" => Some("eth0".to_owned()),
        "CNI_PATH" => Some(PLUGINS.to_owned()),
        _ => None,
    };
    let inv = multus_cni::Invocation::from_env(env, config.to_string().into_bytes()).unwrap();
    rt.block_on(engine.run(&inv))
}

/// The daemon's engine (whose namespace check runs alongside the list write) retrying an ADD
/// whose previous attempt left an attachment it cannot release: the retry is refused because
/// that attachment still holds its interface name, and the previous attempt's delegate list
/// stays for the runtime's DEL instead of being replaced and then taken back.
#[test]
fn a_refused_retry_keeps_the_previous_attempts_list() {
    let _g = setup("sd-keep", &[]);
    let dir = tempfile::tempdir().unwrap();
    script_plugin(
        dir.path(),
        "sticky",
        r#"cat >/dev/null
case "$CNI_COMMAND" in
ADD) nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type veth peer name "sk$$" >&2 || exit 1
     printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}]}' "$CNI_IFNAME" "$CNI_NETNS" ;;
DEL) printf '{"cniVersion":"1.0.0","code":100,"msg":"sticky cannot release"}'; exit 1 ;;
esac
"#,
    );
    let bin = script_plugin(dir.path(), "failing", FAILING_ADD);
    let config = scripted_config(dir.path(), &bin, &["sticky", "failing"]);
    let engine = multus_cni::Engine::new(multus_cni::EngineOptions::default(), None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let add = || engine_add(&engine, &rt, &config, "keep1", "sd-keep");
    let list = dir.path().join("cache").join("keep1");

    // net1 fails; the rollback cannot release eth0, so the list stays for DEL.
    let first = add().unwrap_err().to_string();
    assert!(first.contains("failing on purpose"), "{first}");
    assert_eq!(
        links_in("sd-keep").iter().filter(|l| *l == "eth0").count(),
        1
    );
    let kept = std::fs::read(&list).expect("the list the rollback kept");

    // The retry releases what it can, is refused for eth0, and leaves that list alone.
    let retry = add().unwrap_err().to_string();
    assert!(retry.contains("\"eth0\" already exists"), "{retry}");
    assert_eq!(
        std::fs::read(&list).ok(),
        Some(kept),
        "the previous attempt's list"
    );

    // A list that cannot be read is no less the previous attempt's: a refused retry leaves it
    // for the runtime's DEL (and whoever looks at it) as it found it.
    std::fs::write(&list, b"{ not a list").unwrap();
    let retry = add().unwrap_err().to_string();
    assert!(retry.contains("\"eth0\" already exists"), "{retry}");
    assert_eq!(
        std::fs::read(&list).unwrap(),
        b"{ not a list",
        "the unreadable list"
    );
}

/// The daemon's engine (whose look at the pod's interfaces starts as the ADD begins) retrying an
/// ADD whose previous attempt left eth0 behind, which the retry's release now removes: the
/// retry must look at the namespace again after that release, or eth0, gone by then, would
/// refuse it as "already exists".
#[test]
fn a_retry_looks_at_the_pods_interfaces_again_after_releasing_the_previous_attempt() {
    let _g = setup("sd-relook", &[]);
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().display();
    // eth0: a veth in the pod; its first DEL fails (so the first attempt's rollback leaves it).
    script_plugin(
        dir.path(),
        "once-sticky",
        &format!(
            r#"cat >/dev/null
case "$CNI_COMMAND" in
{ADD_A_VETH}
DEL) if [ ! -e {marks}/del-failed ]; then touch {marks}/del-failed
       printf '{{"cniVersion":"1.0.0","code":100,"msg":"not this time"}}'; exit 1; fi
     nsenter --net="$CNI_NETNS" ip link del "$CNI_IFNAME" 2>/dev/null; true ;;
esac
"#
        ),
    );
    // net1: its first ADD fails, the next ones succeed.
    let bin = script_plugin(
        dir.path(),
        "once-failing",
        &format!(
            r#"cat >/dev/null
[ "$CNI_COMMAND" = ADD ] || exit 0
if [ ! -e {marks}/add-failed ]; then touch {marks}/add-failed
  printf '{{"cniVersion":"1.0.0","code":100,"msg":"failing once"}}'; exit 1; fi
printf '{{"cniVersion":"1.0.0"}}'
"#
        ),
    );
    let config = scripted_config(dir.path(), &bin, &["once-sticky", "once-failing"]);
    let engine = multus_cni::Engine::new(multus_cni::EngineOptions::default(), None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let add = || engine_add(&engine, &rt, &config, "relook1", "sd-relook");

    let first = add().unwrap_err().to_string();
    assert!(first.contains("failing once"), "{first}");
    assert!(
        links_in("sd-relook").contains(&"eth0".to_owned()),
        "left by the rollback"
    );
    assert!(
        dir.path().join("cache").join("relook1").exists(),
        "its list kept"
    );

    // The retry releases eth0 first, then finds its name free and adds both again.
    let retry = add().map(|printed| printed.unwrap_or_default());
    assert!(retry.is_ok(), "{retry:?}");
    assert_eq!(
        links_in("sd-relook")
            .iter()
            .filter(|l| *l == "eth0")
            .count(),
        1
    );
}

/// A retried ADD whose previous attempt left an attachment it cannot release, and which asks
/// for fewer networks this time (the pod's annotation changed): before 2026-11-30 the retry
/// wrote its own delegate list over the previous one, and nothing named net1 for the runtime's
/// DEL any more. Now the retry carries net1 over into its list without adding it again, so the
/// runtime's DEL releases it.
#[test]
fn a_retry_for_other_networks_does_not_forget_what_the_previous_attempt_left() {
    let _g = setup("sd-leak", &[]);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    script_plugin(
        dir.path(),
        "quiet",
        &format!(
            r#"cat >/dev/null
echo "$CNI_COMMAND $CNI_IFNAME" >>{}
[ "$CNI_COMMAND" = ADD ] && printf '{{"cniVersion":"1.0.0","interfaces":[],"ips":[]}}'
exit 0
"#,
            calls.display()
        ),
    );
    script_plugin(
        dir.path(),
        "sticky",
        &format!(
            r#"cat >/dev/null
echo "$CNI_COMMAND $CNI_IFNAME" >>{}
case "$CNI_COMMAND" in
ADD) nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type veth peer name "sl$$" >&2 || exit 1
     printf '{{"cniVersion":"1.0.0","interfaces":[{{"name":"%s","sandbox":"%s"}}]}}' "$CNI_IFNAME" "$CNI_NETNS" ;;
DEL) [ -e {} ] || {{ printf '{{"cniVersion":"1.0.0","code":100,"msg":"sticky cannot release"}}'; exit 1; }}
     nsenter --net="$CNI_NETNS" ip link del "$CNI_IFNAME" >&2 ;;
esac
"#,
            calls.display(),
            dir.path().join("releases").display()
        ),
    );
    let bin = script_plugin(dir.path(), "failing", FAILING_ADD);
    let config = |delegates: Value| {
        json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "cniDir": dir.path().join("cache"), "binDir": bin, "delegates": delegates
        })
    };
    let three = config(json!([
        {"cniVersion":"1.0.0","name":"sl-cluster","type":"quiet"},
        {"cniVersion":"1.0.0","name":"sl-sticky","type":"sticky"},
        {"cniVersion":"1.0.0","name":"sl-failing","type":"failing"}
    ]));
    let one = config(json!([{"cniVersion":"1.0.0","name":"sl-cluster","type":"quiet"}]));
    let calls_since = |from: usize| {
        let log = std::fs::read_to_string(&calls).unwrap_or_default();
        log.lines()
            .skip(from)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    // net2 fails; the rollback cannot release net1, so the list stays for DEL.
    let (ok, out) = multus("ADD", "sd-leak", "leak1", &three);
    assert!(!ok && out.contains("failing on purpose"), "{out}");
    assert!(links_in("sd-leak").contains(&"net1".to_owned()));
    let before = calls_since(0).len();

    // The retry asks for eth0 only: it tries net1 again, cannot release it, and adds eth0 alone.
    let (ok, out) = multus("ADD", "sd-leak", "leak1", &one);
    assert!(ok, "{out}");
    assert_eq!(
        calls_since(before),
        ["DEL net1", "DEL eth0", "ADD eth0"],
        "the retry's plugin calls"
    );
    assert!(links_in("sd-leak").contains(&"net1".to_owned()));
    // Only what could not be released is carried (net2's DEL succeeded), marked so; CHECK
    // checks the pod's own attachments.
    let list: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cache").join("leak1")).unwrap())
            .unwrap();
    let carried: Vec<(&str, bool)> = list["delegates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["ifname"].as_str().unwrap(), d["carried"] == true))
        .collect();
    assert_eq!(carried, [("net1", true), ("eth0", false)], "{list}");
    let (ok, out) = multus("CHECK", "sd-leak", "leak1", &one);
    assert!(ok, "{out}");
    let before = calls_since(0).len();

    // Once net1 can be released, the runtime's DEL finds it in the retry's list.
    std::fs::write(dir.path().join("releases"), b"").unwrap();
    let (ok, out) = multus("DEL", "sd-leak", "leak1", &one);
    assert!(ok, "{out}");
    assert_eq!(
        calls_since(before),
        ["DEL eth0", "DEL net1"],
        "the DEL's plugin calls"
    );
    assert!(
        !links_in("sd-leak").contains(&"net1".to_owned()),
        "net1 leaked"
    );
}

/// A retry asking again for a network and interface that the previous attempt added and could
/// not release, but with another config (its NAD changed meanwhile): the two would share one
/// result record, so the retry is refused (try again later) and the previous list stays for
/// the runtime's DEL, which releases the old attachment with its own config.
#[test]
fn a_retry_for_an_unreleased_attachment_with_another_config_waits_for_del() {
    let _g = setup("sd-conf", &[]);
    let dir = tempfile::tempdir().unwrap();
    // ADD makes the interface; DEL removes it but reports failure until `releases` exists.
    script_plugin(
        dir.path(),
        "half",
        &format!(
            r#"cat >/dev/null
case "$CNI_COMMAND" in
{ADD_A_VETH}
DEL) nsenter --net="$CNI_NETNS" ip link del "$CNI_IFNAME" 2>/dev/null
     [ -e {} ] || {{ printf '{{"cniVersion":"1.0.0","code":100,"msg":"half released"}}'; exit 1; }} ;;
esac
"#,
            dir.path().join("releases").display()
        ),
    );
    let bin = script_plugin(dir.path(), "failing", FAILING_ADD);
    let config = |mtu: u32, third: bool| {
        let mut delegates =
            vec![json!({"cniVersion":"1.0.0","name":"sc-half","type":"half","mtu":mtu})];
        if third {
            delegates.push(json!({"cniVersion":"1.0.0","name":"sc-failing","type":"failing"}));
        }
        json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "cniDir": dir.path().join("cache"), "binDir": bin, "delegates": delegates
        })
    };
    let list = dir.path().join("cache").join("conf1");

    // net1 fails; the rollback removes eth0's link but reports a failure: the list stays.
    let (ok, out) = multus("ADD", "sd-conf", "conf1", &config(1400, true));
    assert!(!ok && out.contains("failing on purpose"), "{out}");
    let kept = std::fs::read(&list).expect("the list the rollback kept");

    // The retry asks for eth0 on the same network with another config: refused, code 11.
    let (ok, out) = multus("ADD", "sd-conf", "conf1", &config(1500, false));
    assert!(!ok, "{out}");
    let error: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(error["code"], 11, "{out}");
    assert!(
        error["msg"]
            .as_str()
            .is_some_and(|m| m.contains("another configuration")),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&list).ok(),
        Some(kept),
        "the previous attempt's list"
    );

    // The runtime's DEL releases it; then the retry succeeds.
    std::fs::write(dir.path().join("releases"), b"").unwrap();
    let (ok, out) = multus("DEL", "sd-conf", "conf1", &config(1500, false));
    assert!(ok, "{out}");
    let (ok, out) = multus("ADD", "sd-conf", "conf1", &config(1500, false));
    assert!(ok, "{out}");
}

/// Whether the process `pid` has ended: gone, or a zombie left to the machine's init (the
/// thin plugin exits right after killing it).
fn ended(pid: &str) -> bool {
    let stat = Path::new("/proc").join(pid).join("stat");
    (0..100).any(|_| {
        let ended = std::fs::read_to_string(&stat).map_or(true, |s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('Z'))
        });
        if !ended {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        ended
    })
}

#[test]
fn a_refused_add_gives_its_first_plugin_no_config_and_leaves_no_process() {
    let _g = setup("sd-ahead", &[]);
    let dir = tempfile::tempdir().unwrap();
    // The first plugin's process is started before the names are checked (decisions.md, "The
    // first plugin started ahead"); like every CNI plugin this one reads its config first.
    let (started, acted) = (dir.path().join("started"), dir.path().join("acted"));
    let body = format!(
        "echo $$ >> {}\nconf=$(cat)\necho \"$CNI_COMMAND\" >> {}\n",
        started.display(),
        acted.display()
    );
    let bin = script_plugin(dir.path(), "recorder", &body);
    let config = json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "cniDir": dir.path().join("cache"), "binDir": bin,
        "delegates": [{"cniVersion": "1.0.0", "name": "sd-recorder", "type": "recorder"}]
    });
    let out = Command::new("ip")
        .args([
            "-n", "sd-ahead", "link", "add", "eth0", "type", "veth", "peer", "name", "sdpeer",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (ok, out) = multus("ADD", "sd-ahead", "ahead1", &config);
    let err: Value = serde_json::from_str(&out).unwrap();
    let msg = err["msg"].as_str().unwrap_or_default();
    assert!(!ok && msg.contains("\"eth0\" already exists"), "{out}");
    assert!(
        !acted.exists(),
        "the refused ADD's plugin was given its config"
    );
    let pids = std::fs::read_to_string(&started).unwrap_or_default();
    for pid in pids.lines() {
        assert!(ended(pid), "the plugin process {pid} still runs");
    }
    assert!(!dir.path().join("cache").join("ahead1").exists());

    // With the name free the same plugin is given its config once.
    let out = Command::new("ip")
        .args(["-n", "sd-ahead", "link", "del", "eth0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (ok, out) = multus("ADD", "sd-ahead", "ahead1", &config);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&acted).unwrap(), "ADD\n");
}

#[test]
fn plugins_started_ahead_act_one_at_a_time_in_order_and_not_after_a_failure() {
    let _g = setup("sd-order", &[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Each attachment's plugin is started while the one before runs; each must still act
    // only once given its config, after the one before has exited.
    let recorder = |name: &str| {
        format!(
            "conf=$(cat)\necho \"{name} $CNI_COMMAND begin\" >> {log}\nsleep 0.05\necho \"{name} $CNI_COMMAND end\" >> {log}\n",
            log = log.display()
        )
    };
    for name in ["one", "two", "three"] {
        script_plugin(dir.path(), name, &recorder(name));
    }
    let bin = script_plugin(dir.path(), "failing", FAILING_ADD);
    let config = |second: &str| scripted_config(dir.path(), &bin, &["one", second, "three"]);
    let logged = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().map(str::to_owned).collect::<Vec<_>>()
    };

    add_then_del("sd-order", "order1", &config("two"));
    assert_eq!(logged(), begun_and_ended(&THREE_ADDED_AND_DELETED));

    // The second fails: the third, started while it ran, never gets its config; the first is
    // rolled back.
    std::fs::remove_file(&log).unwrap();
    let (ok, out) = multus("ADD", "sd-order", "order2", &config("failing"));
    assert!(!ok && out.contains("failing on purpose"), "{out}");
    assert_eq!(logged(), begun_and_ended(&["one ADD", "one DEL"]));
}

#[test]
fn with_start_plugins_ahead_false_a_plugin_starts_only_at_its_turn() {
    let _g = setup("sd-late", &[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // The first attachment's plugin takes 0.2 s once given its config; the second's logs when
    // its process starts, before reading its config: the kind of plugin the key is for.
    script_plugin(
        dir.path(),
        "slow",
        &format!(
            "cat >/dev/null\nsleep 0.2\necho \"slow $CNI_COMMAND done\" >> {}\n",
            log.display()
        ),
    );
    let bin = script_plugin(
        dir.path(),
        "early",
        &format!(
            "echo \"early $CNI_COMMAND started\" >> {}\ncat >/dev/null\n",
            log.display()
        ),
    );
    let config = |ahead: Value| {
        json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "cniDir": dir.path().join("cache"), "binDir": bin, "startPluginsAhead": ahead,
            "delegates": [{"cniVersion": "1.0.0", "name": "sd-slow", "type": "slow"},
                          {"cniVersion": "1.0.0", "name": "sd-early", "type": "early"}]
        })
    };
    // The same two plugins as one list: its next plugin starts while the one before runs.
    let listed = |ahead: Value| {
        json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "cniDir": dir.path().join("cache"), "binDir": bin, "startPluginsAhead": ahead,
            "delegates": [{"cniVersion": "1.0.0", "name": "sd-list",
                           "plugins": [{"type": "slow"}, {"type": "early"}]}]
        })
    };
    let logged = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text
    };

    // By default the second is started while the first runs.
    let (ok, out) = multus("ADD", "sd-late", "late1", &config(json!(true)));
    assert!(ok, "{out}");
    assert_eq!(logged(), "early ADD started\nslow ADD done\n");
    let (ok, out) = multus("DEL", "sd-late", "late1", &config(json!(true)));
    assert!(ok, "{out}");
    logged();

    let (ok, out) = multus("ADD", "sd-late", "late4", &listed(json!(true)));
    assert!(ok, "{out}");
    assert_eq!(logged(), "early ADD started\nslow ADD done\n");
    let (ok, out) = multus("DEL", "sd-late", "late4", &listed(json!(true)));
    assert!(ok, "{out}");
    logged();

    // `false`: each at its turn, attachments and a list's plugins alike.
    for (cid, config) in [
        ("late2", config(json!(false))),
        ("late5", listed(json!(false))),
    ] {
        let (ok, out) = multus("ADD", "sd-late", cid, &config);
        assert!(ok, "{out}");
        assert_eq!(logged(), "slow ADD done\nearly ADD started\n", "{cid}");
        let (ok, out) = multus("DEL", "sd-late", cid, &config);
        assert!(ok, "{out}");
        assert_eq!(logged(), "early DEL started\nslow DEL done\n", "{cid}");
    }

    let (ok, out) = multus("ADD", "sd-late", "late3", &config(json!("no")));
    assert!(!ok, "{out}");
    let err: Value = serde_json::from_str(&out).unwrap();
    let msg = err["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("startPluginsAhead") && msg.contains("\"no\""),
        "{out}"
    );
    assert_eq!(logged(), "", "a refused config starts nothing");
}

#[test]
fn a_list_s_next_plugin_starts_while_the_one_before_runs_and_acts_only_after_it() {
    let _g = setup("sd-listahead", &[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Each plugin notes its start, reads its config, then (given the name of the plugin after
    // it for this command, an extended regex) waits up to 5 s for that one to have started: it
    // can only have if it was started while this one runs.
    let plugin = |name: &str, next_add: &str, next_del: &str| {
        let body = format!(
            r#"echo "{name} $CNI_COMMAND started $$" >> {log}
conf=$(cat)
echo "{name} $CNI_COMMAND begin" >> {log}
case "$CNI_COMMAND" in ADD) next="{next_add}" ;; *) next="{next_del}" ;; esac
if [ -n "$next" ]; then
  n=0
  until grep -Eq "^($next) $CNI_COMMAND started" {log}; do
    n=$((n+1)); [ $n -gt 500 ] && {{ echo "{name} $CNI_COMMAND gave up" >> {log}; break; }}
    sleep 0.01
  done
fi
[ "$CNI_COMMAND" = ADD ] && [ "{name}" = failing ] && {{
  printf '{{"cniVersion":"1.0.0","code":100,"msg":"failing on purpose"}}'; exit 1; }}
echo "{name} $CNI_COMMAND end" >> {log}
"#,
            log = log.display()
        );
        script_plugin(dir.path(), name, &body)
    };
    plugin("one", "two|failing", "");
    plugin("two", "three", "one");
    plugin("failing", "three", "one");
    let bin = plugin("three", "", "two|failing");
    let config = |second: &str| {
        json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "cniDir": dir.path().join("cache"), "binDir": bin,
            "delegates": [{"cniVersion": "1.0.0", "name": "sd-chain",
                "plugins": [{"type": "one"}, {"type": second}, {"type": "three"}]}]
        })
    };
    let steps = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .filter(|l| !l.contains(" started "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    add_then_del("sd-listahead", "chain1", &config("two"));
    assert_eq!(steps(), begun_and_ended(&THREE_ADDED_AND_DELETED));

    // The second fails: the third, started while it ran, never gets its config and is gone;
    // the rollback's DELs run in reverse as before.
    std::fs::remove_file(&log).unwrap();
    let (ok, out) = multus("ADD", "sd-listahead", "chain2", &config("failing"));
    assert!(!ok && out.contains("failing on purpose"), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("three ADD begin") && !text.contains("gave up"),
        "{text}"
    );
    let third = text
        .lines()
        .find_map(|l| l.strip_prefix("three ADD started "))
        .expect("the third plugin was started while the second ran");
    assert!(
        ended(third),
        "the third plugin's process {third} still runs"
    );
    // Read again once it has ended: a process left to read its stdin's end would have gone on.
    let rolled_back = [
        "one ADD begin",
        "one ADD end",
        "failing ADD begin",
        "three DEL begin",
        "three DEL end",
        "failing DEL begin",
        "failing DEL end",
        "one DEL begin",
        "one DEL end",
    ];
    assert_eq!(steps(), rolled_back);
}
