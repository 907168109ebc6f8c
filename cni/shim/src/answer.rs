//! What the shim prints, and whether it succeeded, for the daemon's answer.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value, json};

/// The newest CNI version; what `VERSION` reports and errors use when the config names none.
pub const CURRENT_VERSION: &str = "1.1.0";
/// `VERSION`'s answer: the same text as `multus`' (a test in tests/ compares the two).
pub const VERSION_TEXT: &str = r#"{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#;
/// CNI error code 11: the runtime should retry later.
pub const TRY_AGAIN_LATER: u32 = 11;
/// The code of a failure that is the plugin's own (CNI reserves 100+ for plugins).
pub const PLUGIN_FAILED: u32 = 100;
/// CNI error code 5: an I/O failure (stdin could not be read).
pub const IO_FAILURE: u32 = 5;
/// The versions `VERSION` reports, oldest first.
pub const SUPPORTED: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The config's `cniVersion` when it names a supported one, read leniently (the config may be
/// one the shim does not forward); else [`CURRENT_VERSION`].
pub fn version_of(config: &[u8]) -> &'static str {
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(rename = "cniVersion")]
        cni_version: String,
    }
    let named = serde_json::from_slice::<Versioned>(config)
        .ok()
        .map(|v| v.cni_version);
    supported_or_current(named.as_deref())
}

/// `named` when it is a supported version, else [`CURRENT_VERSION`].
pub fn supported_or_current(named: Option<&str>) -> &'static str {
    SUPPORTED
        .iter()
        .find(|v| named == Some(**v))
        .copied()
        .unwrap_or(CURRENT_VERSION)
}

/// A CNI 1.0.0 result (upstream's daemon's `Result`) in `version`: 1.0.0 and 1.1.0 as it is;
/// 0.3.0–0.4.0 with `ips[].version` added and only the fields those versions know; 0.1.0 and
/// 0.2.0 with the first address of each family as `ip4`/`ip6` and that family's routes (no
/// address at all cannot be printed there). `cniVersion` is set by the caller.
fn from_1_0_0(mut result: Map<String, Value>, version: &str) -> Result<Map<String, Value>, String> {
    if matches!(version, "1.0.0" | "1.1.0") {
        return Ok(result);
    }
    let list = |result: &mut Map<String, Value>, key: &str| match result.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let dns = result.remove("dns").unwrap_or_else(|| json!({}));
    let keep = |item: &Value, keys: &[&str]| -> Map<String, Value> {
        keys.iter()
            .filter_map(|k| Some(((*k).to_string(), item.get(*k)?.clone())))
            .collect()
    };
    let is_v6 = |item: &Value, key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .is_some_and(|a| a.contains(':'))
    };
    let routes: Vec<Map<String, Value>> = list(&mut result, "routes")
        .iter()
        .map(|r| keep(r, &["dst", "gw"]))
        .collect();
    match version {
        "0.3.0" | "0.3.1" | "0.4.0" => {
            let interfaces: Vec<Value> = list(&mut result, "interfaces")
                .iter()
                .map(|i| Value::Object(keep(i, &["name", "mac", "sandbox"])))
                .collect();
            let ips: Vec<Value> = list(&mut result, "ips")
                .iter()
                .map(|ip| {
                    let mut out = keep(ip, &["interface", "address", "gateway"]);
                    let family = if is_v6(ip, "address") { "6" } else { "4" };
                    out.insert("version".into(), Value::from(family));
                    Value::Object(out)
                })
                .collect();
            let mut out = Map::new();
            out.insert("interfaces".into(), Value::Array(interfaces));
            out.insert("ips".into(), Value::Array(ips));
            out.insert(
                "routes".into(),
                Value::Array(routes.into_iter().map(Value::Object).collect()),
            );
            out.insert("dns".into(), dns);
            Ok(out)
        }
        _ => {
            let ips = list(&mut result, "ips");
            let mut out = Map::new();
            for (key, v6) in [("ip4", false), ("ip6", true)] {
                let Some(ip) = ips.iter().find(|ip| is_v6(ip, "address") == v6) else {
                    continue;
                };
                let mut legacy = Map::new();
                legacy.insert(
                    "ip".into(),
                    ip.get("address").cloned().unwrap_or(Value::Null),
                );
                if let Some(gateway) = ip.get("gateway") {
                    legacy.insert("gateway".into(), gateway.clone());
                }
                let own: Vec<Value> = routes
                    .iter()
                    .filter(|r| {
                        r.get("dst")
                            .and_then(Value::as_str)
                            .is_some_and(|d| d.contains(':') == v6)
                    })
                    .map(|r| Value::Object(r.clone()))
                    .collect();
                if !own.is_empty() {
                    legacy.insert("routes".into(), Value::Array(own));
                }
                out.insert(key.into(), Value::Object(legacy));
            }
            if out.is_empty() {
                return Err("it has no address, which 0.1.0 and 0.2.0 results need".into());
            }
            out.insert("dns".into(), dns);
            Ok(out)
        }
    }
}

/// `object` printed with `cniVersion` set to `version`.
fn stamped(mut object: Map<String, Value>, version: &str, success: bool) -> Printed {
    object.insert("cniVersion".into(), Value::from(version));
    Printed {
        stdout: Value::Object(object).to_string(),
        success,
    }
}

/// Standard output and the exit status of one call.
#[derive(Debug, PartialEq, Eq)]
pub struct Printed {
    pub stdout: String,
    pub success: bool,
}

/// A CNI error object in `version`.
pub fn error(version: &str, code: u32, msg: &str) -> Printed {
    Printed {
        stdout: json!({"cniVersion": version, "code": code, "msg": msg}).to_string(),
        success: false,
    }
}

/// The exchange with the daemon failed after it accepted the call: the runtime retries.
pub fn unreachable(version: &str, socket: &str, message: &str) -> Printed {
    error(
        version,
        TRY_AGAIN_LATER,
        &format!("multus daemon at {socket:?} unreachable: {message}; try again later"),
    )
}

/// The daemon's answer to `command`. ADD prints the result the daemon rendered in the config's
/// version (`printed`); the other commands print nothing. A failure is the daemon's CNI error
/// object, in the config's version.
pub fn from_daemon(command: &str, version: &str, status: u16, body: &[u8]) -> Printed {
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    if status == 200 {
        if command != "ADD" {
            return Printed {
                stdout: String::new(),
                success: true,
            };
        }
        if let Some(printed) = answer.as_ref().and_then(|a| a.get("printed")?.as_str()) {
            return Printed {
                stdout: printed.to_string(),
                success: true,
            };
        }
        // A daemon without `printed` (upstream's) answers a 1.0.0 result, converted here to
        // the config's version as libcni converts it (and as `multus` does, with the CNI
        // result types this binary does without).
        return match answer.and_then(|mut a| a.get_mut("Result").map(Value::take)) {
            Some(Value::Object(result)) => match from_1_0_0(result, version) {
                Ok(result) => stamped(result, version, true),
                Err(why) => error(
                    version,
                    PLUGIN_FAILED,
                    &format!(
                        "multus daemon's result cannot be printed for cniVersion {version}: {why}"
                    ),
                ),
            },
            _ => error(
                version,
                PLUGIN_FAILED,
                "multus daemon answered ADD without a result",
            ),
        };
    }
    match answer {
        Some(Value::Object(object)) if object.get("code").is_some_and(Value::is_u64) => {
            stamped(object, version, false)
        }
        _ => error(
            version,
            PLUGIN_FAILED,
            &format!(
                "multus daemon answered {status}: {}",
                String::from_utf8_lossy(body)
            ),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(p: &Printed) -> Value {
        serde_json::from_str(&p.stdout).unwrap()
    }

    #[test]
    fn add_prints_the_result_the_daemon_rendered_and_the_rest_print_nothing() {
        let body = br#"{"Result":{"cniVersion":"1.0.0"},"printed":"{\"cniVersion\":\"0.4.0\",\"ips\":[]}"}"#;
        let add = from_daemon("ADD", "0.4.0", 200, body);
        assert!(add.success);
        assert_eq!(add.stdout, r#"{"cniVersion":"0.4.0","ips":[]}"#);
        assert_eq!(
            from_daemon("DEL", "0.4.0", 200, b""),
            Printed {
                stdout: String::new(),
                success: true
            }
        );
        let upstream = br#"{"Result":{"cniVersion":"1.0.0","ips":[]}}"#;
        let printable = from_daemon("ADD", "1.1.0", 200, upstream);
        assert!(printable.success);
        assert_eq!(parsed(&printable), json!({"cniVersion":"1.1.0","ips":[]}));
        // No address: nothing to print as a 0.2.0 result.
        let legacy = from_daemon("ADD", "0.2.0", 200, upstream);
        assert!(!legacy.success);
        assert_eq!(parsed(&legacy)["code"], 100);
        assert!(
            parsed(&legacy)["msg"]
                .as_str()
                .unwrap()
                .contains("cniVersion 0.2.0")
        );
        assert!(
            from_daemon("ADD", "1.0.0", 200, b"{}")
                .stdout
                .contains("without a result")
        );
    }

    /// Upstream's daemon answers only `Result`, in 1.0.0: converted as libcni converts it.
    #[test]
    fn upstreams_result_is_converted_to_the_configs_version() {
        let upstream = br#"{"Result":{"cniVersion":"1.0.0",
            "interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:00:05","mtu":1400,"sandbox":"/var/run/netns/x"}],
            "ips":[{"address":"10.244.0.5/24","gateway":"10.244.0.1","interface":0},
                   {"address":"10.244.1.5/24","interface":0},
                   {"address":"2001:db8::5/64","interface":0}],
            "routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1","mtu":1400},{"dst":"::/0"}],
            "dns":{"nameservers":["10.96.0.10"]}}}"#;
        let v04 = from_daemon("ADD", "0.3.1", 200, upstream);
        assert!(v04.success, "{}", v04.stdout);
        assert_eq!(
            parsed(&v04),
            json!({"cniVersion":"0.3.1",
                "interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:00:05","sandbox":"/var/run/netns/x"}],
                "ips":[{"version":"4","address":"10.244.0.5/24","gateway":"10.244.0.1","interface":0},
                       {"version":"4","address":"10.244.1.5/24","interface":0},
                       {"version":"6","address":"2001:db8::5/64","interface":0}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"},{"dst":"::/0"}],
                "dns":{"nameservers":["10.96.0.10"]}})
        );
        let v02 = from_daemon("ADD", "0.2.0", 200, upstream);
        assert!(v02.success, "{}", v02.stdout);
        assert_eq!(
            parsed(&v02),
            json!({"cniVersion":"0.2.0",
                "ip4":{"ip":"10.244.0.5/24","gateway":"10.244.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"}]},
                "ip6":{"ip":"2001:db8::5/64","routes":[{"dst":"::/0"}]},
                "dns":{"nameservers":["10.96.0.10"]}})
        );
        let v1 = from_daemon("ADD", "1.1.0", 200, upstream);
        assert_eq!(parsed(&v1)["interfaces"][0]["mtu"], 1400);
        assert_eq!(parsed(&v1)["cniVersion"], "1.1.0");
    }

    #[test]
    fn a_failure_is_the_daemons_error_in_the_configs_version() {
        let body =
            br#"{"cniVersion":"1.1.0","code":7,"msg":"network \"x\" not found","details":"d"}"#;
        let failed = from_daemon("ADD", "0.3.1", 400, body);
        assert!(!failed.success);
        assert_eq!(
            parsed(&failed),
            json!({"cniVersion":"0.3.1","code":7,"msg":"network \"x\" not found","details":"d"})
        );
        let garbled = from_daemon("CHECK", "1.0.0", 502, b"bad gateway");
        assert_eq!(
            parsed(&garbled),
            json!({"cniVersion":"1.0.0","code":100,"msg":"multus daemon answered 502: bad gateway"})
        );
    }

    #[test]
    fn the_version_of_any_config_is_read_leniently() {
        assert_eq!(version_of(br#"{"cniVersion":"0.3.1","type":"x"}"#), "0.3.1");
        assert_eq!(version_of(br#"{"cniVersion":"9.9.9"}"#), CURRENT_VERSION);
        assert_eq!(version_of(br#"{"cniVersion":"0.4.0""#), CURRENT_VERSION);
        assert_eq!(version_of(b""), CURRENT_VERSION);
        let listed = format!(
            r#"{{"cniVersion":"1.1.0","supportedVersions":{}}}"#,
            serde_json::to_string(&SUPPORTED).unwrap()
        );
        assert_eq!(VERSION_TEXT, listed);
    }

    #[test]
    fn a_broken_exchange_asks_the_runtime_to_try_again() {
        let p = unreachable("1.0.0", "/run/multus/multus.sock", "connection reset");
        assert!(!p.success);
        assert_eq!(parsed(&p)["code"], TRY_AGAIN_LATER);
        assert_eq!(
            parsed(&p)["msg"],
            "multus daemon at \"/run/multus/multus.sock\" unreachable: connection reset; try again later"
        );
    }
}
