//! ADD+DEL rounds of a pod with the cluster network and two secondary networks (bridge, macvlan,
//! bridge from Debian's plugins, static delegates, no Kubernetes), thin and thick, reporting p50
//! and p99 of the whole round and of the meta-plugin's own overhead (total minus time inside
//! delegate processes); plus the daemon's peak RSS during 100 concurrent ADDs and the binary's
//! start-up cost. Needs root. Run:
//!
//! ```text
//! cargo build --release -p multus-cni --bin multus
//! cargo build --release --manifest-path cni/shim/Cargo.toml    # multus-shim, for thick and burst
//! cargo bench -p multus-cni --bench round   # ROUNDS=100 (default): sample size; MODES=alone,engine,thin,thick,burst,firstexec,startup;
//!                                          # PREV_RESULT=0: thin and thick DELs without prevResult;
//!                                          # MULTUS_BIN / MULTUS_SHIM_BIN=path: other builds
//!                                          # BENCH_TRACE=path: the in-process engine's and the
//!                                          # daemon's debug log, with timestamps, to a file
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::cpu_seconds;
use multus_cni::chain::{Runner, RuntimeConf};
use multus_cni::exec::ExecStats;
use multus_cni::{DaemonServer, Engine, EngineOptions, ServerOptions};
use multus_crds::cni::NetworkConfigList;
use serde_json::{Map, Value, json};

const PLUGINS: &str = "/usr/lib/cni";

fn ip(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            ip(&a);
        }
    }
}

fn delegates(dir: &Path) -> Vec<Value> {
    vec![
        json!({"cniVersion":"1.0.0","name":"bn-cluster","plugins":[{"type":"bridge","bridge":"bnbr0","isGateway":true,
              "ipam":{"type":"host-local","dataDir":dir.join("ipam"),"subnet":"10.161.0.0/16"}}]}),
        json!({"cniVersion":"1.0.0","name":"bn-mac","type":"macvlan","master":"bnP","mode":"bridge",
              "ipam":{"type":"host-local","dataDir":dir.join("ipam"),"subnet":"10.162.0.0/16"}}),
        json!({"cniVersion":"1.0.0","name":"bn-br","type":"bridge","bridge":"bnbr1",
              "ipam":{"type":"host-local","dataDir":dir.join("ipam"),"subnet":"10.163.0.0/16"}}),
    ]
}

fn config(dir: &Path, kind: &str, socket_dir: &Path) -> Value {
    json!({"cniVersion":"1.0.0","name":"multus-cni-network","type":kind,"cniDir":dir.join("cache"),
           "binDir":PLUGINS,"daemonSocketDir":socket_dir,"delegates":delegates(dir)})
}

/// `config` with `prevResult` set to what ADD printed, as libcni hands DEL the cached result
/// (spliced as bytes: the bench's own work stays out of the timed round).
/// `PREV_RESULT=0`: DEL gets the ADD's config unchanged, as the bench did before 2026-11-30
/// 08:30.
fn with_prev(config: &[u8], added: &[u8]) -> Vec<u8> {
    if std::env::var("PREV_RESULT").is_ok_and(|v| v == "0") {
        return config.to_vec();
    }
    let body = config.strip_suffix(b"}").expect("a JSON object");
    [body, b",\"prevResult\":", added.trim_ascii(), b"}"].concat()
}

fn run(binary: &Path, command: &str, netns: &str, cid: &str, config: &[u8]) -> Vec<u8> {
    let mut child = Command::new(binary)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", format!("/var/run/netns/{netns}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(config).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// The ADD half of a mode's rounds: how long a pod waits for its networks (the plugins started
/// ahead shorten it, not the overhead; docs/decisions.md, "Plugins started ahead").
fn report_adds(mode: &str, mut adds: Vec<f64>) {
    adds.sort_by(f64::total_cmp);
    println!(
        "{mode} ADD alone: p50 {:.2} ms  p90 {:.2} ms",
        pct(&adds, 0.5),
        pct(&adds, 0.9)
    );
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut total: Vec<f64>, mut overhead: Vec<f64>) {
    total.sort_by(f64::total_cmp);
    overhead.sort_by(f64::total_cmp);
    println!(
        "{what:<34} round p50 {:7.2} ms  p99 {:7.2} ms | overhead p50 {:6.2} ms  p99 {:6.2} ms",
        pct(&total, 0.5),
        pct(&total, 0.99),
        pct(&overhead, 0.5),
        pct(&overhead, 0.99)
    );
}

/// Milliseconds inside plugins according to the plugin's debug log: the sum of every
/// `micros=N` of its "plugin exited" lines.
fn logged_plugin_ms(log: &str) -> f64 {
    log.lines()
        .filter(|l| l.contains("plugin exited"))
        .filter_map(|l| l.split("micros=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e3
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn cpu_total() -> f64 {
    let (own, children) = cpu_seconds();
    own + children
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Whether `MODES` (a comma list of alone, engine, thin, thick, burst, firstexec, startup; all when unset)
/// asks for `mode`.
fn wants(mode: &str) -> bool {
    std::env::var("MODES").map_or(true, |m| m.split(',').any(|x| x.trim() == mode))
}

/// A mode's figures and its CPU per round, compared with the delegates alone when their rounds
/// ran (`MODES` has `alone`).
fn report_with_cpu(
    what: &str,
    total: Vec<f64>,
    overhead: Vec<f64>,
    whose: &str,
    cpu_ms: f64,
    alone_ms: Option<f64>,
) {
    report(what, total, overhead);
    let versus = alone_ms.map_or_else(String::new, |a| {
        format!(", {:.2} ms more than the delegates alone", cpu_ms - a)
    });
    println!("    CPU per round{whose}: {cpu_ms:.2} ms{versus}");
}

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MULTUS_BIN") {
        return PathBuf::from(bin);
    }
    // Benches live in target/release/deps; the binary is built next to it by `cargo bench`.
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("multus");
    assert!(
        bin.is_file(),
        "build the binary first: cargo build --release -p multus-cni"
    );
    bin
}

/// `multus-shim`, its own build (cni/shim): `MULTUS_SHIM_BIN`, else that build's release binary.
fn shim_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MULTUS_SHIM_BIN") {
        return PathBuf::from(bin);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("shim/target/release/multus-shim");
    assert!(
        bin.is_file(),
        "build the shim first: cargo build --release --manifest-path cni/shim/Cargo.toml"
    );
    bin
}

/// The binary as the node agent installs it (`install_binary`: the whole file in one write),
/// which is also how it is in the page cache when the runtime runs it: in large folios, up to
/// 2 MiB, that a fault maps whole. The file the linker wrote, run in place, is not: its cached
/// pages are small, each fault maps fewer of them, and a thin round cost ≈ 1 ms more
/// (docs/benchmarks.md). Written by `dd` with one block, so the copy does not count in this
/// process' peak RSS, which the burst reports as the daemon's.
fn installed(binary: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join("bin").join(name);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = Command::new("dd")
        .arg(format!("if={}", binary.display()))
        .arg(format!("of={}", to.display()))
        .args(["bs=256M", "iflag=fullblock", "status=none"])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "dd could not install {}",
        binary.display()
    );
    std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    to
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Ok(path) = std::env::var("BENCH_TRACE") {
        let file = std::fs::File::create(path).unwrap();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", load.trim());
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let binary = installed(&binary(), dir.path(), "multus");
    // Beside `multus`, as the agent installs it: the shim hands `multus` what it does not forward.
    let shim = installed(&shim_binary(), dir.path(), "multus-shim");
    let socket_dir = dir.path().join("run");
    ip(&["netns", "del", "bn-pod"]);
    ip(&["link", "del", "bnP"]);
    ip(&["netns", "add", "bn-pod"]);
    ip(&["link", "add", "bnP", "type", "veth", "peer", "name", "bnq"]);
    ip(&["link", "set", "bnP", "up"]);
    let _cleanup = Cleanup(
        [
            ["netns", "del", "bn-pod"],
            ["link", "del", "bnP"],
            ["link", "del", "bnbr0"],
            ["link", "del", "bnbr1"],
        ]
        .iter()
        .map(|a| a.iter().map(|s| (*s).to_owned()).collect())
        .collect(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Delegates alone: the same plugin calls, made directly.
    let stats = ExecStats::default();
    let path = [PathBuf::from(PLUGINS)];
    // As libcni runs them: each plugin started at its turn.
    let runner = Runner {
        path: &path,
        stats: &stats,
        start_ahead: false,
    };
    let lists: Vec<NetworkConfigList> = delegates(dir.path())
        .into_iter()
        .map(|v| NetworkConfigList::from_value_any(v).unwrap())
        .collect();
    let no_caps = Map::new();
    let mut alone = Vec::with_capacity(rounds);
    let alone_round = |cid: &str| {
        rt.block_on(async {
            // The interface names Multus gives them: eth0, then net1, net2, …
            let ifnames: Vec<String> = (0..lists.len())
                .map(|i| multus_crds::attachments::interface_name(i, None, "eth0"))
                .collect();
            let rc = |i: usize| RuntimeConf {
                container_id: cid,
                netns: "/var/run/netns/bn-pod",
                ifname: &ifnames[i],
                cni_args: "",
                capability_args: &no_caps,
            };
            for (i, list) in lists.iter().enumerate() {
                runner.add(list, &rc(i), None).await.unwrap();
            }
            for (i, list) in lists.iter().enumerate().rev() {
                runner.del(list, &rc(i), None, None).await.unwrap();
            }
        });
    };
    let cpu0 = cpu_total();
    let alone_rounds = if wants("alone") { rounds } else { 0 };
    for r in 0..alone_rounds {
        let start = Instant::now();
        alone_round(&format!("alone{r}"));
        alone.push(ms(start.elapsed()));
    }
    // The CPU the delegates alone take per round, when measured: the other modes compare with it.
    let alone_cpu = (alone_rounds > 0).then(|| (cpu_total() - cpu0) / rounds as f64 * 1e3);
    if let Some(alone_cpu) = alone_cpu {
        report(
            "delegates alone (bridge,macvlan,bridge)",
            alone.clone(),
            vec![0.0],
        );
        println!("    CPU per round (delegates alone): {alone_cpu:.2} ms");
    }

    // In-process engine: exact overhead from the time spent inside plugins.
    let engine = Engine::new(EngineOptions::default(), None);
    let thin_conf = serde_json::to_vec(&config(dir.path(), "multus", &socket_dir)).unwrap();
    let (mut total, mut over) = (Vec::new(), Vec::new());
    let cpu0 = cpu_total();
    let engine_rounds = if wants("engine") { rounds } else { 0 };
    for r in 0..engine_rounds {
        let (before, _) = engine.exec_stats().snapshot();
        let start = Instant::now();
        for command in ["ADD", "DEL"] {
            let env = |k: &str| match k {
                "CNI_COMMAND" => Some(command.to_owned()),
                "CNI_CONTAINERID" => Some(format!("lib{r}")),
                "CNI_NETNS" => Some("/var/run/netns/bn-pod".to_owned()),
                "CNI_IFNAME" => Some("eth0".to_owned()),
                "CNI_PATH" => Some(PLUGINS.to_owned()),
                _ => None,
            };
            let inv = multus_cni::Invocation::from_env(env, thin_conf.clone()).unwrap();
            rt.block_on(engine.run(&inv)).unwrap();
        }
        let elapsed = ms(start.elapsed());
        let (after, _) = engine.exec_stats().snapshot();
        total.push(elapsed);
        over.push(elapsed - (after - before) as f64 / 1e6);
    }
    if engine_rounds > 0 {
        let cpu = (cpu_total() - cpu0) / rounds as f64 * 1e3;
        report_with_cpu(
            "engine in-process (library)",
            total,
            over,
            "",
            cpu,
            alone_cpu,
        );
    }

    // Thin: the binary per call, logging at debug level to a file: it logs how long each
    // delegate ran ("plugin exited … micros=N"), so the overhead is the round minus the time
    // inside delegates, as for the other modes. Each round is also paired with a
    // delegates-alone round run just before it (same machine load) for the CPU comparison and
    // for the difference of the two rounds, a second, noisier estimate.
    let log = dir.path().join("thin.log");
    let mut thin_logged = config(dir.path(), "multus", &socket_dir);
    thin_logged["logLevel"] = json!("debug");
    thin_logged["logFile"] = json!(log);
    // The file only, as before 2026-11-30 (debug lines on the bench's stderr otherwise).
    thin_logged["logToStderr"] = json!(false);
    let thin_logged = serde_json::to_vec(&thin_logged).unwrap();
    let (mut total, mut over, mut paired) = (Vec::new(), Vec::new(), Vec::new());
    let (mut thin_cpu, mut paired_cpu) = (0.0, 0.0);
    let thin_rounds = if wants("thin") { rounds } else { 0 };
    let mut thin_adds = Vec::new();
    for r in 0..thin_rounds {
        let c0 = cpu_total();
        let start = Instant::now();
        alone_round(&format!("pair{r}"));
        let alone_ms = ms(start.elapsed());
        let c1 = cpu_total();
        let start = Instant::now();
        let added = run(&binary, "ADD", "bn-pod", &format!("thin{r}"), &thin_logged);
        thin_adds.push(ms(start.elapsed()));
        let del = with_prev(&thin_logged, &added);
        run(&binary, "DEL", "bn-pod", &format!("thin{r}"), &del);
        let thin_ms = ms(start.elapsed());
        let c2 = cpu_total();
        paired_cpu += c1 - c0;
        thin_cpu += c2 - c1;
        let logged = &std::fs::read_to_string(&log).unwrap();
        // Emptied, not removed, outside the timed part: the next call appends to the same inode
        // rather than paying for a new file.
        std::fs::File::options()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        // Every delegate's ADD and DEL must be timed, or the overhead would be overstated.
        let timed = logged
            .lines()
            .filter(|l| l.contains("plugin exited"))
            .count();
        assert_eq!(
            timed,
            2 * lists.len(),
            "plugin run times missing in: {logged}"
        );
        let in_plugins = logged_plugin_ms(logged);
        total.push(thin_ms);
        over.push(thin_ms - in_plugins);
        paired.push(thin_ms - alone_ms);
    }
    if thin_rounds > 0 {
        report("thin (multus binary)", total, over);
        report_adds("thin", thin_adds);
        paired.sort_by(f64::total_cmp);
        println!(
            "    CPU per round: {:.2} ms, {:.2} ms more than the paired delegates-alone rounds; round minus the paired round: p50 {:.2} ms",
            thin_cpu / rounds as f64 * 1e3,
            (thin_cpu - paired_cpu) / rounds as f64 * 1e3,
            pct(&paired, 0.5)
        );
    }

    // Thick: shim binary → in-process daemon; overhead = total − time inside plugins.
    let server = DaemonServer::new(
        Engine::new(EngineOptions::default(), None),
        ServerOptions {
            socket_dir: socket_dir.clone(),
            max_concurrent: 16,
            max_queued: 256,
            ..ServerOptions::default()
        },
    );
    // Hosted as the agent hosts it: on a thread of its own (`DAEMON_RT=shared`: on the bench's
    // multi-threaded runtime instead, as before 2026-11-30 08:00).
    let listener = rt.block_on(async { server.bind() }).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let serving = if std::env::var("DAEMON_RT").is_ok_and(|v| v == "shared") {
        rt.spawn(Arc::clone(&server).serve(listener, shutdown))
    } else {
        rt.spawn(Arc::clone(&server).serve_on_own_thread(listener, shutdown))
    };
    let shim_conf = serde_json::to_vec(&config(dir.path(), "multus-shim", &socket_dir)).unwrap();
    let (mut total, mut over) = (Vec::new(), Vec::new());
    let cpu0 = cpu_total();
    let thick_rounds = if wants("thick") { rounds } else { 0 };
    // The thread is started by the serving task: give it a moment to exist.
    let waiting_since = Instant::now();
    let mut daemon0 = daemon_thread_schedstat();
    while daemon0.is_none() && thick_rounds > 0 && waiting_since.elapsed() < Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(5));
        daemon0 = daemon_thread_schedstat();
    }
    let mut thick_adds = Vec::new();
    for r in 0..thick_rounds {
        let (before, _) = server.engine().exec_stats().snapshot();
        let start = Instant::now();
        let added = run(&shim, "ADD", "bn-pod", &format!("thick{r}"), &shim_conf);
        thick_adds.push(ms(start.elapsed()));
        let del = with_prev(&shim_conf, &added);
        run(&shim, "DEL", "bn-pod", &format!("thick{r}"), &del);
        let elapsed = ms(start.elapsed());
        let (after, _) = server.engine().exec_stats().snapshot();
        total.push(elapsed);
        over.push(elapsed - (after - before) as f64 / 1e6);
    }
    if thick_rounds > 0 {
        let cpu = (cpu_total() - cpu0) / rounds as f64 * 1e3;
        let whose = " (shims + daemon + delegates)";
        report_with_cpu("thick (shim → daemon)", total, over, whose, cpu, alone_cpu);
        report_adds("thick", thick_adds);
        if let (Some((run0, wait0)), Some((run1, wait1))) = (daemon0, daemon_thread_schedstat()) {
            let per_round = |ns: u64| ns as f64 / 1e6 / thick_rounds as f64;
            println!(
                "    daemon's thread per round: {:.2} ms on a CPU, {:.2} ms runnable but waiting for one (after a plugin's spawn, mostly: docs/benchmarks.md)",
                per_round(run1 - run0),
                per_round(wait1 - wait0)
            );
        }
    }
    if wants("burst") {
        burst(&shim, &shim_conf);
    }
    if wants("firstexec") {
        // The delegates from a directory of this bench's own (links to Debian's plugins), so an
        // exec from it is one of this bench's delegates whatever else runs plugins meanwhile.
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        for p in ["bridge", "macvlan", "host-local"] {
            std::os::unix::fs::symlink(Path::new(PLUGINS).join(p), plugins.join(p)).unwrap();
        }
        let own = |kind: &str| {
            let mut c = config(dir.path(), kind, &socket_dir);
            c["binDir"] = json!(plugins);
            serde_json::to_vec(&c).unwrap()
        };
        let (thin_own, shim_own) = (own("multus"), own("multus-shim"));
        let calls = [
            ("thin ADD", &binary, "ADD", &thin_own),
            ("thin DEL", &binary, "DEL", &thin_own),
            ("thick ADD", &shim, "ADD", &shim_own),
            ("thick DEL", &shim, "DEL", &shim_own),
        ];
        first_exec(&calls, rounds, dir.path(), &plugins);
    }
    stop.send(()).unwrap();
    rt.block_on(serving).unwrap().unwrap();
    if wants("startup") {
        startup(&binary, &shim, rounds);
    }
}

/// The daemon's thread (named `multus-daemon` by `serve_on_own_thread`): nanoseconds on a CPU
/// and runnable but waiting for one, from its `schedstat`. `None` when it cannot be read (the
/// daemon on the bench's runtime, `DAEMON_RT=shared`).
fn daemon_thread_schedstat() -> Option<(u64, u64)> {
    let tid = std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .find(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .is_ok_and(|c| c.trim() == "multus-daemon")
        })?;
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

/// 100 concurrent ADDs through the daemon, one namespace per pod; peak RSS of this process,
/// which is the daemon's host here.
fn burst(shim: &Path, shim_conf: &[u8]) {
    let names: Vec<String> = (0..100).map(|i| format!("bnc{i}")).collect();
    for n in &names {
        ip(&["netns", "add", n]);
    }
    let _ns_cleanup = Cleanup(
        names
            .iter()
            .map(|n| vec!["netns".into(), "del".into(), n.clone()])
            .collect(),
    );
    let start = Instant::now();
    std::thread::scope(|s| {
        for n in &names {
            s.spawn(move || run(shim, "ADD", n, &format!("{n}-cid"), shim_conf));
        }
    });
    let burst = start.elapsed();
    std::thread::scope(|s| {
        for n in &names {
            s.spawn(move || run(shim, "DEL", n, &format!("{n}-cid"), shim_conf));
        }
    });
    println!(
        "100 concurrent ADDs through the daemon: {:.0} ms; peak RSS of the daemon process {:.1} MiB",
        ms(burst),
        peak_rss_mib()
    );
}

/// One kind of call for [`first_exec`]: its label, the binary the runtime runs, the CNI command
/// and the config.
type Call<'a> = (&'a str, &'a PathBuf, &'a str, &'a Vec<u8>);

/// From the exec of the binary the runtime runs (`multus`, or `multus-shim` in thick mode) to the
/// exec of the first delegate, from the kernel's `sched_process_exec` tracepoint. The tracing is
/// system-wide (`perf trace -a`) because in thick mode the daemon, not the process the runtime
/// started, runs the delegates. The calls are interleaved round by round so every kind sees the
/// same machine load.
fn first_exec(calls: &[Call<'_>], rounds: usize, dir: &Path, plugins: &Path) {
    let trace = dir.join("exec-trace");
    let mut perf = Command::new("perf")
        .args([
            "trace",
            "-a",
            "--no-syscalls",
            "-e",
            "sched:sched_process_exec",
            "-o",
        ])
        .arg(&trace)
        .stdout(Stdio::null())
        .spawn()
        .expect("perf (apt-get install linux-perf)");
    // perf writes its file only when it stops, so readiness cannot be polled: wait, then exec a
    // marker that must appear before the first measured call, or the figures are refused.
    std::thread::sleep(Duration::from_secs(2));
    let marker = dir.join("perf-ready");
    std::fs::copy("/bin/true", &marker).unwrap();
    Command::new(&marker).status().unwrap();
    for r in 0..rounds {
        for (label, binary, command, config) in calls {
            let cid = format!("fe{r}-{}", &label[..label.find(' ').unwrap()]);
            run(binary, command, "bn-pod", &cid, config);
        }
    }
    Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status()
        .unwrap();
    perf.wait().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let execs: Vec<(f64, &str)> = text
        .lines()
        .filter_map(|l| {
            let t = l.split_whitespace().next()?.parse().ok()?;
            let file = l.split("filename: \"").nth(1)?.split('"').next()?;
            Some((t, file))
        })
        .collect();
    let marker = marker.to_string_lossy();
    let ours: Vec<String> = calls
        .iter()
        .map(|(_, b, _, _)| b.to_string_lossy().into_owned())
        .collect();
    let ours_from = execs.iter().position(|(_, f)| ours.iter().any(|o| o == f));
    let marked = execs.iter().position(|(_, f)| *f == marker);
    assert!(
        marked.is_some() && marked < ours_from,
        "perf was not tracing yet when the first call ran"
    );
    // Each started binary, then the next exec of one of its delegates: one figure per call, in
    // order.
    let plugins = format!("{}/", plugins.display());
    let mut figures: Vec<f64> = Vec::new();
    let mut started: Option<f64> = None;
    for (t, file) in execs {
        if ours.iter().any(|o| o == file) {
            assert!(started.is_none(), "a call ran no delegate");
            started = Some(t);
        } else if let Some(s) = started.filter(|_| file.starts_with(&plugins)) {
            figures.push(t - s);
            started = None;
        }
    }
    assert_eq!(figures.len(), rounds * calls.len(), "calls timed");
    for (i, (label, ..)) in calls.iter().enumerate() {
        let mut v: Vec<f64> = figures
            .iter()
            .skip(i)
            .step_by(calls.len())
            .copied()
            .collect();
        v.sort_by(f64::total_cmp);
        println!(
            "exec of the binary → exec of its first delegate, {label:<9} p50 {:.3} ms  p90 {:.3} ms",
            pct(&v, 0.5),
            pct(&v, 0.9)
        );
    }
}

/// Start-up: `multus` and `multus-shim` answering VERSION, against /bin/true.
fn startup(binary: &Path, shim: &Path, rounds: usize) {
    let time = |program: &Path, args: &[(&str, &str)]| {
        let mut v: Vec<f64> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let mut c = Command::new(program);
                for (k, val) in args {
                    c.env(k, val);
                }
                c.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                ms(start.elapsed())
            })
            .collect();
        v.sort_by(f64::total_cmp);
        pct(&v, 0.5)
    };
    let multus = time(binary, &[("CNI_COMMAND", "VERSION")]);
    let shim = time(shim, &[("CNI_COMMAND", "VERSION")]);
    let truth = time(Path::new("/bin/true"), &[]);
    println!(
        "process start: multus VERSION p50 {multus:.2} ms, multus-shim VERSION p50 {shim:.2} ms, /bin/true p50 {truth:.2} ms → multus start-up ≈ {:.2} ms",
        multus - truth
    );
    let (cpuid, fault) = machine_costs();
    println!(
        "this machine: one cpuid {cpuid:.2} µs (glibc's start runs 43, std's feature detection 7), first write to a fresh page {fault:.2} µs"
    );
}

#[cfg(target_arch = "x86_64")]
fn cpuid(leaf: u32) {
    std::hint::black_box(std::arch::x86_64::__cpuid_count(4, leaf));
}

/// Other machines: no figure to give (the line then shows the loop alone).
#[cfg(not(target_arch = "x86_64"))]
fn cpuid(leaf: u32) {
    std::hint::black_box(leaf);
}

/// What a process start is made of on this machine, for reading the figures above: one `cpuid`
/// (a trap to the hypervisor on a VM; glibc probes the CPU with it before `main`) and the first
/// write to a page (an anonymous page fault), each the median of several batches.
fn machine_costs() -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cpuid = median(
        (0..20)
            .map(|_| {
                let start = Instant::now();
                for leaf in 0..100u32 {
                    cpuid(leaf % 4);
                }
                start.elapsed().as_secs_f64() * 1e6 / 100.0
            })
            .collect(),
    );
    // Above glibc's largest mmap threshold (32 MiB), so every block comes fresh from mmap,
    // its pages untouched (a smaller one would come from the heap, already written by calloc).
    const PAGES: usize = 16 << 10;
    let fault = median(
        (0..5)
            .map(|_| {
                let mut block = vec![0u8; PAGES * 4096];
                // Escaped before the clock is read, so the writes cannot move past it.
                std::hint::black_box(&mut block);
                let start = Instant::now();
                for page in 0..PAGES {
                    block[page * 4096] = 1;
                }
                let elapsed = start.elapsed();
                std::hint::black_box(&block);
                elapsed.as_secs_f64() * 1e6 / PAGES as f64
            })
            .collect(),
    );
    (cpuid, fault)
}
