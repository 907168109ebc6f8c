//! The real `multus-shim` as a process, against small stand-ins for the daemon: what it prints
//! for each kind of answer, and that what it does not forward goes to the `multus` beside it.
//! No root needed: no namespace is made and no delegate runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;

use multus_tests::harness::process::{
    install_cni_binaries, run_plugin, shim_binary, workspace_binary,
};
use serde_json::{Value, json};

/// Run `binary` as the runtime would, with `env` and `config` on stdin.
fn call(binary: &Path, env: &[(&str, &str)], config: &str) -> (bool, String) {
    let out = run_plugin(binary, env, config.as_bytes()).unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

const ADD: [(&str, &str); 4] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "shim-test"),
    ("CNI_NETNS", "/var/run/netns/shim-test"),
    ("CNI_IFNAME", "eth0"),
];

fn shim_config(socket_dir: &Path) -> String {
    json!({"cniVersion":"0.4.0","name":"m","type":"multus-shim","daemonSocketDir":socket_dir,
           "daemonWaitSeconds":0.2,"clusterNetwork":"/nonexistent.conflist"})
    .to_string()
}

/// An HTTP/1.1 answer with `body` and its length.
fn http_answer(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A daemon that reads one request and answers `answer`; returns what it was sent.
fn one_answer(socket: &Path, answer: Vec<u8>) -> std::thread::JoinHandle<String> {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let got = read_request(&mut stream);
        stream.write_all(&answer).unwrap();
        got
    })
}

/// The request the shim sends, read up to its length.
fn read_request(stream: &mut std::os::unix::net::UnixStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the shim closed before its request was whole");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= len {
                break;
            }
        }
    }
    String::from_utf8(got).unwrap()
}

/// An answer in chunks of at most `size` bytes.
fn chunked_answer(body: &str, size: usize) -> Vec<u8> {
    let mut answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for piece in body.as_bytes().chunks(size) {
        answer.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        answer.extend_from_slice(piece);
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(b"0\r\n\r\n");
    answer
}

/// Both clients (`multus-shim`, and `multus` given a shim config) read the answer up to its
/// length, or its last chunk: they do not wait for the daemon's close, which would wake them a
/// second time. This daemon keeps the connection open until the client has closed its end (or
/// 20 s have passed, which fails the test).
#[test]
fn the_clients_are_done_at_the_answers_end_without_waiting_for_the_close() {
    let body = json!({"printed": r#"{"cniVersion":"0.4.0"}"#}).to_string();
    let answers = [http_answer("200 OK", &body), chunked_answer(&body, 7)];
    for binary in [shim_binary().unwrap(), workspace_binary("multus").unwrap()] {
        for answer in answers.clone() {
            let dir = tempfile::tempdir().unwrap();
            let listener = UnixListener::bind(dir.path().join("multus.sock")).unwrap();
            let daemon = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                read_request(&mut stream);
                stream.write_all(&answer).unwrap();
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                // 0 bytes: the client closed first. A timeout: it was waiting for us.
                stream.read(&mut [0u8; 16]).map_err(|e| e.kind())
            });
            let (ok, out) = call(&binary, &ADD, &shim_config(dir.path()));
            assert!(ok, "{}: {out}", binary.display());
            assert_eq!(out, r#"{"cniVersion":"0.4.0"}"#);
            assert_eq!(
                daemon.join().unwrap(),
                Ok(0),
                "{} waited for the close",
                binary.display()
            );
        }
    }
}

#[test]
fn version_is_answered_as_multus_answers_it() {
    let env = [("CNI_COMMAND", "VERSION")];
    let shim = call(&shim_binary().unwrap(), &env, "{}");
    let multus = call(&workspace_binary("multus").unwrap(), &env, "{}");
    assert!(shim.0, "{}", shim.1);
    assert_eq!(shim, multus);
}

/// Both clients forward the call the same way (the runtime's environment, the config as it
/// came, base64) and print the daemon's rendering (`printed`) as it is: `multus-shim`, and
/// `multus` when it serves `type: multus-shim` itself (`Result` here differs, so converting it
/// would show).
#[test]
fn the_call_is_forwarded_and_the_daemons_rendering_printed() {
    use base64::Engine as _;
    for binary in [workspace_binary("multus").unwrap(), shim_binary().unwrap()] {
        let which = binary.display();
        let dir = tempfile::tempdir().unwrap();
        let daemon = one_answer(
            &dir.path().join("multus.sock"),
            http_answer(
                "200 OK",
                &json!({"Result": {}, "printed": r#"{"cniVersion":"0.4.0","ips":[]}"#}).to_string(),
            ),
        );
        let config = shim_config(dir.path());
        let (ok, out) = call(&binary, &ADD, &config);
        let sent = daemon.join().unwrap();
        assert!(ok, "{which}: {out}");
        assert_eq!(out, r#"{"cniVersion":"0.4.0","ips":[]}"#, "{which}");
        assert!(
            sent.starts_with("POST /cni HTTP/1.1\r\n"),
            "{which}: {sent}"
        );
        let body: Value = serde_json::from_str(sent.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["env"]["CNI_COMMAND"], "ADD", "{which}");
        assert_eq!(body["env"]["CNI_CONTAINERID"], "shim-test", "{which}");
        let forwarded = base64::engine::general_purpose::STANDARD
            .decode(body["config"].as_str().unwrap())
            .unwrap();
        assert_eq!(forwarded, config.as_bytes(), "{which}");
    }
}

/// Upstream's Go daemon sends a long answer in chunks (Go's server chunks a body it has not
/// buffered whole), with only `Result`: both clients decode it and print what they print for
/// the same answer sent with its length.
#[test]
fn a_chunked_answer_is_read_as_the_same_answer_sent_whole() {
    let ips: Vec<Value> = (0..64)
        .map(|i| json!({"address": format!("10.1.{i}.3/24"), "interface": 0}))
        .collect();
    let body =
        json!({"Result": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": ips}})
            .to_string();
    let chunked = chunked_answer(&body, 1000);
    for binary in [workspace_binary("multus").unwrap(), shim_binary().unwrap()] {
        let which = binary.display();
        let mut printed = Vec::new();
        for answer in [http_answer("200 OK", &body), chunked.clone()] {
            let dir = tempfile::tempdir().unwrap();
            let mut config: Value = serde_json::from_str(&shim_config(dir.path())).unwrap();
            config["cniVersion"] = json!("1.0.0");
            let daemon = one_answer(&dir.path().join("multus.sock"), answer);
            let (ok, out) = call(&binary, &ADD, &config.to_string());
            daemon.join().unwrap();
            assert!(ok, "{which}: {out}");
            printed.push(out);
        }
        assert_eq!(printed[0], printed[1], "{which}");
        assert!(
            printed[0].contains("10.1.63.3/24"),
            "{which}: {}",
            printed[0]
        );
    }
}

/// Upstream's Go daemon answers ADD with `Result` alone, a CNI 1.0.0 result: both clients
/// print it in the config's version, converted alike (`multus` with the CNI result types,
/// `multus-shim` without them), for every version a config may name.
#[test]
fn upstreams_result_is_printed_alike_by_both_clients_in_every_version() {
    let result = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:00:05", "mtu": 1400, "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "10.244.0.5/24", "gateway": "10.244.0.1", "interface": 0},
                {"address": "10.244.1.5/24", "interface": 0},
                {"address": "2001:db8::5/64", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.0.1", "mtu": 1400}, {"dst": "::/0"}],
        "dns": {"nameservers": ["10.96.0.10"]}});
    let answer = json!({"Result": result}).to_string();
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let mut printed = Vec::new();
        for binary in [workspace_binary("multus").unwrap(), shim_binary().unwrap()] {
            let dir = tempfile::tempdir().unwrap();
            let mut config: Value = serde_json::from_str(&shim_config(dir.path())).unwrap();
            config["cniVersion"] = json!(version);
            let daemon = one_answer(
                &dir.path().join("multus.sock"),
                http_answer("200 OK", &answer),
            );
            let (ok, out) = call(&binary, &ADD, &config.to_string());
            daemon.join().unwrap();
            assert!(ok, "{} {version}: {out}", binary.display());
            printed.push(serde_json::from_str::<Value>(&out).unwrap());
        }
        assert_eq!(printed[0], printed[1], "{version}");
        assert_eq!(printed[0]["cniVersion"], version);
    }
}

#[test]
fn a_daemons_error_is_printed_in_the_configs_version_and_garbage_asks_to_try_again() {
    for binary in [workspace_binary("multus").unwrap(), shim_binary().unwrap()] {
        let which = binary.display();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("multus.sock");
        let daemon = one_answer(
            &socket,
            http_answer(
                "400 Bad Request",
                &json!({"cniVersion": "1.1.0", "code": 7, "msg": "no network \"x\""}).to_string(),
            ),
        );
        let (ok, out) = call(&binary, &ADD, &shim_config(dir.path()));
        daemon.join().unwrap();
        assert!(!ok, "{which}");
        let err: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            err,
            json!({"cniVersion":"0.4.0","code":7,"msg":"no network \"x\""}),
            "{which}"
        );

        std::fs::remove_file(&socket).unwrap();
        let daemon = one_answer(&socket, b"garbage".to_vec());
        let (ok, out) = call(&binary, &ADD, &shim_config(dir.path()));
        daemon.join().unwrap();
        assert!(!ok, "{which}");
        let err: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(err["code"], 11, "{which}: {err}");
        assert!(
            err["msg"].as_str().unwrap().contains("the daemon's answer"),
            "{which}: {err}"
        );
    }
}

#[test]
fn del_succeeds_with_nothing_printed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = one_answer(&dir.path().join("multus.sock"), http_answer("200 OK", ""));
    let del = [("CNI_COMMAND", "DEL"), ADD[1], ADD[2], ADD[3]];
    let out = call(&shim_binary().unwrap(), &del, &shim_config(dir.path()));
    assert!(daemon.join().unwrap().contains("\"CNI_COMMAND\":\"DEL\""));
    assert_eq!(out, (true, String::new()));
}

/// A daemon that refuses a call answers and closes before reading it all (an overloaded one,
/// or a body over its limit): the shim is not killed by SIGPIPE and prints that answer; nor is
/// `multus` serving `type: multus-shim` itself.
#[test]
fn a_daemon_that_answers_before_reading_the_whole_request_is_heard() {
    for binary in [shim_binary().unwrap(), workspace_binary("multus").unwrap()] {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("multus.sock")).unwrap();
        let daemon = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = [0u8; 1000];
            stream.read_exact(&mut head).unwrap();
            let refusal = json!({"cniVersion":"1.1.0","code":11,"msg":"multus daemon is busy"});
            stream
                .write_all(&http_answer("400 Bad Request", &refusal.to_string()))
                .unwrap();
            // Closed with most of the request unread.
        });
        // A config far larger than the socket's buffers: the shim is still sending at the close.
        let mut config: Value = serde_json::from_str(&shim_config(dir.path())).unwrap();
        config["padding"] = json!("x".repeat(4 << 20));
        let (ok, out) = call(&binary, &ADD, &config.to_string());
        daemon.join().unwrap();
        assert!(!ok, "{}", binary.display());
        let err: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{}: {e}: {out:?}", binary.display()));
        assert_eq!(err["cniVersion"], "0.4.0", "{}", binary.display());
        assert_eq!(err["code"], 11, "{}", binary.display());
        assert!(
            err["msg"]
                .as_str()
                .unwrap()
                .starts_with("multus daemon is busy"),
            "{}: {err}",
            binary.display()
        );
    }
}

#[test]
fn what_the_shim_does_not_forward_is_multus_answer() {
    let dir = tempfile::tempdir().unwrap();
    let shim = install_cni_binaries(&dir.path().join("bin")).unwrap();
    let multus = dir.path().join("bin/multus");
    // No daemon: ADD waits `daemonWaitSeconds` in `multus`, then asks to try again.
    let config = shim_config(dir.path());
    let (ok, out) = call(&shim, &ADD, &config);
    assert!(!ok);
    assert_eq!(
        (ok, out.clone()),
        call(&multus, &ADD, &config),
        "the shim's answer is multus' own"
    );
    let err: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(err["code"], 11, "{err}");
    assert!(
        err["msg"].as_str().unwrap().contains("unreachable"),
        "{err}"
    );
    // A config that is not a shim config, and a missing CNI_COMMAND: multus words the error.
    for (env, config) in [
        (
            &ADD[..],
            r#"{"cniVersion":"0.4.0","type":"multus-shim""#.to_owned(),
        ),
        (&ADD[1..], config.clone()),
    ] {
        let from_shim = call(&shim, env, &config);
        assert!(!from_shim.0, "{}", from_shim.1);
        assert_eq!(from_shim, call(&multus, env, &config));
    }
}

#[test]
fn without_multus_beside_it_the_shim_says_so_and_asks_to_try_again() {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("multus-shim");
    std::fs::copy(shim_binary().unwrap(), &alone).unwrap();
    let (ok, out) = call(&alone, &ADD, &shim_config(dir.path()));
    assert!(!ok);
    let err: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(err["cniVersion"], "0.4.0");
    assert_eq!(err["code"], 11, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{:?}", dir.path().join("multus"))),
        "{msg}"
    );
}

/// A number of seconds the config gets wrong is a CNI error that names the key: `multus` used to
/// panic on a negative or huge `daemonWaitSeconds` (printing nothing), and to take any
/// `readinessIndicatorTimeoutSeconds` that was not a number as the default.
#[test]
fn a_bad_number_of_seconds_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let multus = workspace_binary("multus").unwrap();
    let shim: Value = serde_json::from_str(&shim_config(dir.path())).unwrap();
    let thin = json!({"cniVersion":"1.0.0","name":"m","type":"multus",
        "readinessindicatorfile":"/nonexistent/ready","cniDir": dir.path().join("cache"),
        "delegates":[{"cniVersion":"1.0.0","name":"d","type":"bridge"}]});
    for (key, value, base) in [
        ("daemonWaitSeconds", json!(-1), &shim),
        ("daemonWaitSeconds", json!(1e30), &shim),
        ("readinessIndicatorTimeoutSeconds", json!("soon"), &thin),
    ] {
        let mut config = base.clone();
        config[key] = value.clone();
        let (ok, out) = call(&multus, &ADD, &config.to_string());
        assert!(!ok, "{key} {value}: {out}");
        let err: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{key} {value}: not a CNI error ({e}): {out:?}"));
        assert!(
            err["msg"].as_str().unwrap().contains(key),
            "{key} {value}: {err}"
        );
    }
}

/// `logFile` with `logToStderr`: a failed call's error goes to both, as Multus logs it (the file
/// "also"); with `logToStderr: false`, to the file alone.
#[test]
fn a_log_file_and_stderr_both_get_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let multus = workspace_binary("multus").unwrap();
    for to_stderr in [true, false] {
        let log = dir.path().join(format!("multus-{to_stderr}.log"));
        let config = json!({"cniVersion":"1.0.0","name":"m","type":"multus",
            "logFile": log, "logLevel": "error", "logToStderr": to_stderr,
            "cniDir": dir.path().join("cache"),
            "delegates":[{"cniVersion":"1.0.0","name":"d","type":"bridge"}]});
        // The namespace does not exist: the ADD fails before any delegate runs.
        let out = run_plugin(&multus, &ADD, config.to_string().as_bytes()).unwrap();
        assert!(!out.status.success());
        let file = std::fs::read_to_string(&log).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(file.contains("CNI command failed"), "{file}");
        assert_eq!(
            stderr.contains("CNI command failed"),
            to_stderr,
            "logToStderr {to_stderr}: {stderr}"
        );
    }
}
