//! Shared setup of the agent's end-to-end tests: a host root of plain directories, the fake API
//! server with the NAD CRD, and the real `multus-operator agent` as a process (SIGTERM, SIGKILL,
//! restart), its logs printed when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, PostParams};
use multus_crds::NetworkAttachmentDefinition;
use multus_tests::apiserver::FakeApiServer;
use multus_tests::harness::process::workspace_binary;
use serde_json::json;

pub struct Node {
    pub root: tempfile::TempDir,
    pub api: FakeApiServer,
    pub client: kube::Client,
    pub sa_dir: PathBuf,
    pub health_port: u16,
}

pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Wait for the process to exit; its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- agent logs -----\n{}----- end -----", self.logs());
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Every API request the agent made in this test is granted by its RBAC (config/agent).
        if !std::thread::panicking()
            && let Err(e) = multus_tests::rbac::check_server(&self.api, &[])
        {
            panic!("{e}");
        }
    }
}

pub fn free_port() -> u16 {
    multus_tests::harness::process::free_port().unwrap()
}

impl Node {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let api = FakeApiServer::start().await.unwrap();
        let client = api.client().await.unwrap();
        multus_tests::harness::seed::nad_crd_and_namespaces(&client, &["team", "other"])
            .await
            .unwrap();
        let sa_dir = root.path().join("serviceaccount");
        std::fs::create_dir_all(&sa_dir).unwrap();
        std::fs::write(sa_dir.join("token"), "token-1").unwrap();
        std::fs::write(sa_dir.join("ca.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        Self {
            root,
            api,
            client,
            sa_dir,
            health_port: free_port(),
        }
    }

    pub fn host(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.host("/etc/cni/net.d")
    }

    pub fn multus_conf_dir(&self) -> PathBuf {
        self.host("/etc/cni/multus/net.d")
    }

    /// Start the agent with `extra` flags (after the common ones).
    pub fn agent(&self, extra: &[&str]) -> Agent {
        let binary = workspace_binary("multus-operator")
            .expect("multus-operator is built by `cargo test --workspace`");
        let log = self.root.path().join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("agent")
            .args(["--node-name", "node-1", "--sriov=false"])
            .arg("--host-root")
            .arg(self.root.path())
            .arg("--service-account-dir")
            .arg(&self.sa_dir)
            .args(["--kubeconfig-server", "https://10.96.0.1:443"])
            .args(["--health-addr", &format!("127.0.0.1:{}", self.health_port)])
            .args(extra)
            .env("KUBECONFIG", self.api.kubeconfig_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    pub async fn put_nad(&self, namespace: &str, name: &str, config: &str) {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), namespace);
        let mut nad = NetworkAttachmentDefinition::new(name, Default::default());
        nad.spec.config = Some(config.to_owned());
        if let Some(old) = api.get_opt(name).await.unwrap() {
            nad.metadata.resource_version = old.metadata.resource_version;
            api.replace(name, &PostParams::default(), &nad)
                .await
                .unwrap();
        } else {
            api.create(&PostParams::default(), &nad).await.unwrap();
        }
    }

    pub async fn delete_nad(&self, namespace: &str, name: &str) {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), namespace);
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }

    /// `GET http://127.0.0.1:<health>/<path>`: status and body.
    pub async fn health(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.health_port))
            .await
            .ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        let status = buf.split_whitespace().nth(1)?.parse().ok()?;
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }
}

/// Poll `f` every millisecond until it holds; the time it took.
pub fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

pub async fn until_async(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn bridge(name: &str, bridge: &str) -> String {
    json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"bridge","bridge":bridge}]})
        .to_string()
}
