//! Shared setup of the CNI end-to-end tests: a "node" (temporary CNI directories, a cluster
//! network of bridge + host-local), the fake API server with the NAD CRD, pods as network
//! namespaces, and the `multus` binary run as the runtime runs it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use multus_crds::NetworkAttachmentDefinition;
use multus_tests::apiserver::FakeApiServer;
use multus_tests::harness::netns::{Netns, Veth};
use multus_tests::harness::process::{
    install_cni_binaries, run_plugin, spawn_plugin, workspace_binary,
};
use serde_json::{Value, json};

pub const PLUGINS: &str = "/usr/lib/cni";

/// A node with its CNI directories and an API server.
pub struct Cluster {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub cni_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub cluster_file: PathBuf,
    pub ipam_dir: PathBuf,
    pub api: FakeApiServer,
    pub client: kube::Client,
    pub binary: PathBuf,
    bridge: String,
}

/// A pod: its API object and the namespace standing in for its sandbox.
pub struct PodHandle {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub netns: Netns,
}

/// What one run of the binary printed.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    #[track_caller]
    pub fn expect_ok(self) -> String {
        assert!(
            self.success,
            "multus failed: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    #[track_caller]
    pub fn expect_err(self) -> Value {
        assert!(!self.success, "multus succeeded: {}", self.stdout);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not a CNI error ({e}): {}", self.stdout))
    }
}

/// A macvlan NAD on `master` with `static` IPAM (capability `ips`) and `tuning` (capability `mac`).
pub fn macvlan_nad(master: &str) -> String {
    json!({"cniVersion":"1.0.0","name":"macnet","plugins":[
        {"type":"macvlan","master":master,"mode":"bridge","capabilities":{"ips":true},"ipam":{"type":"static"}},
        {"type":"tuning","capabilities":{"mac":true}}]})
    .to_string()
}

/// Fail loudly when the environment cannot run these tests.
pub fn require_root_and_plugins() {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "the CNI end-to-end tests need root (network namespaces)"
    );
    for p in [
        "bridge",
        "host-local",
        "macvlan",
        "static",
        "tuning",
        "host-device",
    ] {
        assert!(
            Path::new(PLUGINS).join(p).is_file(),
            "CNI plugin {p} missing from {PLUGINS}: install containernetworking-plugins"
        );
    }
}

impl Cluster {
    /// The engine as the node agent hosts it: the cluster's client, with the agent's user agent
    /// (so the RBAC check holds its requests to the agent's role).
    pub fn agent_engine(&self) -> multus_cni::Engine {
        multus_cni::Engine::new(
            multus_cni::EngineOptions::default(),
            Some(multus_tests::rbac::as_component(
                &self.client,
                multus_crds::constants::user_agent::AGENT,
            )),
        )
    }

    /// `prefix` keeps names of this test apart from others running at once; the cluster network
    /// is 10.(100+octet).1.0/24 and a test's other subnets are 10.(100+octet).x.0/24. In use:
    /// ta 41, tb 42, tc 43, td 44, tt 46, tf 48, tg 49, th 50, hd 51, hc 52, tx 53, hn 54,
    /// tk 55, tv 57, tw 58, ty 59, hz 60, dv 61, dw 62, hs 63.
    pub async fn start(prefix: &str, octet: u8) -> Self {
        require_root_and_plugins();
        let binary = workspace_binary("multus")
            .expect("the multus binary is built by `cargo test --workspace` (cni's tests need it)");
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("multus.d");
        let cni_dir = dir.path().join("cache");
        let ipam_dir = dir.path().join("ipam");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let bridge = format!("{prefix}br0");
        let cluster_file = dir.path().join("10-cluster.conflist");
        let cluster = json!({"cniVersion":"1.0.0","name":format!("{prefix}-cluster"),"plugins":[
            {"type":"bridge","bridge":bridge,"isGateway":true,
             "ipam":{"type":"host-local","dataDir":ipam_dir,"ranges":[[{"subnet":format!("10.{}.1.0/24", 100 + u32::from(octet))}]],
                     "routes":[{"dst":"0.0.0.0/0"}]}}]});
        std::fs::write(&cluster_file, cluster.to_string()).unwrap();
        let api = FakeApiServer::start().await.unwrap();
        let client = api.client().await.unwrap();
        multus_tests::harness::seed::nad_crd_and_namespaces(&client, &["team", "other"])
            .await
            .unwrap();
        Self {
            prefix: prefix.to_owned(),
            dir,
            cni_dir,
            conf_dir,
            cluster_file,
            ipam_dir,
            api,
            client,
            binary,
            bridge,
        }
    }

    /// The thin plugin's config with `extra` keys over it.
    pub fn thin_config(&self, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": "multus-cni-network",
            "type": "multus",
            "kubeconfig": self.api.kubeconfig_path(),
            "clusterNetwork": self.cluster_file,
            "confDir": self.conf_dir,
            "cniDir": self.cni_dir,
            "binDir": PLUGINS,
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    /// A veth pair left in the host namespace (macvlan parent, host-device source).
    pub fn veth_parent(&self, host: &str, peer: &str) -> Veth {
        let _ = Command::new("ip").args(["link", "del", host]).output();
        Veth::create(host, peer, None).unwrap()
    }

    pub async fn nad(&self, namespace: &str, name: &str, config: &str) {
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

    pub async fn pod(&self, namespace: &str, name: &str, networks: Option<&str>) -> PodHandle {
        let networks = networks.map(|n| (multus_crds::constants::NETWORKS_ANNOTATION, n));
        self.annotated_pod(namespace, name, networks.as_slice())
            .await
    }

    /// A pod with these annotations.
    pub async fn annotated_pod(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> PodHandle {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        if !annotations.is_empty() {
            pod.metadata.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let created = api.create(&PostParams::default(), &pod).await.unwrap();
        let ns_name = format!("{}-{name}", self.prefix);
        let _ = Command::new("ip").args(["netns", "del", &ns_name]).output();
        PodHandle {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: created.metadata.uid.unwrap_or_default(),
            container_id: format!("{}-{name}-cid", self.prefix),
            netns: Netns::create(&ns_name).unwrap(),
        }
    }

    pub async fn delete_pod(&self, pod: &PodHandle) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        api.delete(&pod.name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Run the binary as the runtime would for `pod`.
    pub fn cni(&self, command: &str, pod: &PodHandle, config: &Value) -> Outcome {
        run_multus(&self.binary, command, pod, config)
    }

    pub async fn network_status(&self, pod: &PodHandle) -> Vec<Value> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let p = api.get(&pod.name).await.unwrap();
        let text = p
            .metadata
            .annotations
            .unwrap_or_default()
            .get(multus_crds::constants::NETWORK_STATUS_ANNOTATION)
            .cloned()
            .expect("no network-status annotation");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn events(&self, pod: &PodHandle) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod.name.as_str()))
            .filter_map(|e| e.reason)
            .collect()
    }

    pub async fn all_event_reasons(&self) -> Vec<String> {
        let api: Api<Event> = Api::all(self.client.clone());
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    /// The bridge a test may use for a second network: removed with the cluster, as the
    /// cluster network's is.
    pub fn second_bridge(&self) -> String {
        self.bridge.replace("br0", "br1")
    }

    /// The delegate list cached for `pod`'s container, as JSON.
    pub fn delegate_list(&self, pod: &PodHandle) -> Value {
        let bytes = std::fs::read(self.cni_dir.join(&pod.container_id)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Addresses host-local still holds (files named after IPs in its data directory).
    pub fn host_local_allocations(&self) -> Vec<String> {
        let Ok(networks) = std::fs::read_dir(&self.ipam_dir) else {
            return Vec::new();
        };
        networks
            .flatten()
            .flat_map(|n| std::fs::read_dir(n.path()).unwrap().flatten())
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .filter(|f| !f.starts_with("last_reserved_ip") && f != "lock")
            .collect()
    }

    /// Files left in the plugin cache (delegate lists and result records).
    pub fn cache_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [self.cni_dir.clone(), self.cni_dir.join("results")] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                out.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().unwrap().is_file())
                        .map(|e| e.path().to_string_lossy().into_owned()),
                );
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The cluster network's bridge, and a test's second one, even when the test failed
        // before its DEL.
        for bridge in [self.bridge.clone(), self.second_bridge()] {
            let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        }
        // Every API request the plugin made in this test is granted by the agent's RBAC.
        if !std::thread::panicking()
            && let Err(e) = multus_tests::rbac::check_server(&self.api, &[])
        {
            panic!("{e}");
        }
    }
}

pub fn run_multus(binary: &Path, command: &str, pod: &PodHandle, config: &Value) -> Outcome {
    run_multus_as(binary, command, pod, &pod.container_id, config)
}

/// [`run_multus`] for another sandbox (`container_id`) of the pod, in the pod's namespace.
pub fn run_multus_as(
    binary: &Path,
    command: &str,
    pod: &PodHandle,
    container_id: &str,
    config: &Value,
) -> Outcome {
    let env = cni_env(command, pod, container_id);
    let out = run_plugin(binary, &env, config.to_string().as_bytes()).unwrap();
    Outcome {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The runtime's environment for a call of `pod`'s sandbox `container_id`.
pub fn cni_env(command: &str, pod: &PodHandle, container_id: &str) -> Vec<(&'static str, String)> {
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.uid
    );
    vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", container_id.to_owned()),
        ("CNI_NETNS", pod.netns.path()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_ARGS", args),
        ("CNI_PATH", PLUGINS.to_owned()),
    ]
}

/// [`run_multus`] without waiting: the call's process, for a test that plays a runtime giving
/// up on it.
pub fn spawn_multus(
    binary: &Path,
    command: &str,
    pod: &PodHandle,
    config: &Value,
) -> std::process::Child {
    spawn_plugin(
        binary,
        &cni_env(command, pod, &pod.container_id),
        config.to_string().as_bytes(),
    )
    .unwrap()
}

/// `ip -j addr` of a namespace.
pub struct Addrs(Vec<Value>);

impl PodHandle {
    pub fn netns_addrs(&self) -> Addrs {
        let out = Command::new("ip")
            .args(["-n", self.netns.name(), "-j", "addr"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Addrs(serde_json::from_slice(&out.stdout).unwrap())
    }
}

impl Addrs {
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .0
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    }

    fn link(&self, ifname: &str) -> &Value {
        self.0
            .iter()
            .find(|l| l["ifname"] == ifname)
            .unwrap_or_else(|| panic!("no {ifname} in {:?}", self.names()))
    }

    pub fn ipv4(&self, ifname: &str) -> Vec<String> {
        self.link(ifname)["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }

    pub fn mac(&self, ifname: &str) -> String {
        self.link(ifname)["address"].as_str().unwrap().to_owned()
    }
}

/// An HTTP proxy in front of the API server that answers 503 ("etcd unavailable") to every
/// request whose path contains `refused`, and forwards the rest: an API server that is up for
/// pods but cannot serve NetworkAttachmentDefinitions. Stops when dropped.
pub struct FailingApi {
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl FailingApi {
    pub async fn start(upstream: &str, refused: &'static str) -> Self {
        use http_body_util::{BodyExt, Full};
        use hyper_util::rt::TokioIo;

        let upstream = multus_tests::apiserver::socket_addr(upstream).expect("plain HTTP upstream");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| async move {
                            if req.uri().path().contains(refused) {
                                let body = json!({"kind":"Status","apiVersion":"v1","status":"Failure",
                                    "message":"etcd unavailable","reason":"ServiceUnavailable","code":503});
                                let resp = hyper::Response::builder()
                                    .status(503)
                                    .header("content-type", "application/json")
                                    .body(Full::new(bytes::Bytes::from(body.to_string())))
                                    .unwrap();
                                return Ok::<_, std::convert::Infallible>(resp);
                            }
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let stream = tokio::net::TcpStream::connect(upstream).await.unwrap();
                            let (mut sender, conn) =
                                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                                    .await
                                    .unwrap();
                            tokio::spawn(conn);
                            let resp = sender
                                .send_request(hyper::Request::from_parts(parts, Full::new(body)))
                                .await
                                .unwrap();
                            let (parts, body) = resp.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            Ok(hyper::Response::from_parts(parts, Full::new(body)))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let config = json!({"apiVersion":"v1","kind":"Config",
            "clusters":[{"name":"proxy","cluster":{"server":url}}],
            "users":[{"name":"u","user":{}}],
            "contexts":[{"name":"proxy","context":{"cluster":"proxy","user":"u"}}],
            "current-context":"proxy"});
        std::fs::write(&kubeconfig, config.to_string()).unwrap();
        Self {
            kubeconfig,
            _dir: dir,
            task,
        }
    }
}

impl Drop for FailingApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Write `config` where the node agent renders NAD `namespace/name` in `conf_dir`.
pub fn render_nad(conf_dir: &Path, namespace: &str, name: &str, config: &Value) {
    let path = multus_cni::resolve::rendered_nad_path(conf_dir, namespace, name);
    std::fs::write(path, config.to_string()).unwrap();
}

/// The daemon server on a unix socket under the cluster's directory, as the node agent hosts
/// it, and the shim config the runtime's calls use.
pub struct Daemon {
    pub socket: PathBuf,
    pub shim: Value,
    /// The real `multus-shim`, installed beside `multus` as the agent installs them.
    pub shim_binary: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    /// `options` as the test wants them; the socket directory and the overlay of the node's
    /// CNI directories are set here.
    pub fn start(t: &Cluster, options: multus_cni::ServerOptions) -> Self {
        Self::start_with_plugins(t, options, Path::new(PLUGINS))
    }

    /// [`Daemon::start`] with the node's plugins in `bin_dir`.
    pub fn start_with_plugins(
        t: &Cluster,
        options: multus_cni::ServerOptions,
        bin_dir: &Path,
    ) -> Self {
        let socket_dir = t.dir.path().join("run");
        let overlay: serde_json::Map<String, Value> = json!({
            "confDir": t.conf_dir, "cniDir": t.cni_dir, "binDir": bin_dir,
        })
        .as_object()
        .unwrap()
        .clone();
        let server = multus_cni::DaemonServer::new(
            t.agent_engine(),
            multus_cni::ServerOptions {
                socket_dir: socket_dir.clone(),
                overlay,
                ..options
            },
        );
        let socket = server.socket_path();
        let listener = server.bind().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(Arc::clone(&server).serve(listener, async {
            let _ = stopped.await;
        }));
        let shim_binary = install_cni_binaries(&t.dir.path().join("bin"))
            .expect("multus and multus-shim are built (tests/src/harness/process.rs)");
        let shim = json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim",
            "daemonSocketDir": socket_dir, "clusterNetwork": t.cluster_file,
            "confDir": t.conf_dir, "cniDir": t.cni_dir, "binDir": PLUGINS, "daemonWaitSeconds": 1,
        });
        Self {
            socket,
            shim,
            shim_binary,
            stop,
            serving,
        }
    }

    /// The runtime's call for `pod`, through the real `multus-shim`.
    pub async fn runtime(&self, command: &'static str, pod: &Arc<PodHandle>) -> Outcome {
        let (pod, shim, binary) = (Arc::clone(pod), self.shim.clone(), self.shim_binary.clone());
        tokio::task::spawn_blocking(move || run_multus(&binary, command, &pod, &shim))
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.serving.await.unwrap().unwrap();
    }
}
