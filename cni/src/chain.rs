//! Running a network configuration list, as libcni does (`AddNetworkList`, `DelNetworkList`,
//! `CheckNetworkList`, `GCNetworkList`, `GetStatusNetworkList`): every plugin gets the list's
//! `name` and `cniVersion`, the capability arguments it declares as `runtimeConfig`, and the
//! previous result as `prevResult`.

use std::future::Future;
use std::path::PathBuf;
use std::task::Poll;

use multus_crds::cni::{CniResult, CniVersion, NetworkConfigList, PluginConfig};
use serde_json::{Map, Value, json};

use crate::env::Command;
use crate::error::{Error, Result};
use crate::exec::{ExecStats, PluginEnv, StartedPlugin, find_plugin, run_plugin, start_plugin};

/// Where one attachment goes: the runtime parameters of libcni's `RuntimeConf`.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeConf<'a> {
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    /// `CNI_ARGS`, already joined.
    pub cni_args: &'a str,
    /// Values for `runtimeConfig`, given to each plugin that declares the capability.
    pub capability_args: &'a Map<String, Value>,
}

/// Runs lists with one plugin search path.
#[derive(Clone, Copy, Debug)]
pub struct Runner<'a> {
    pub path: &'a [PathBuf],
    pub stats: &'a ExecStats,
    /// Whether a list's next plugin is started while the one before runs (`startPluginsAhead`).
    pub start_ahead: bool,
}

/// One plugin's call, built: its binary and its stdin. A list's first one (ADD: its first
/// plugin; DEL: its last) can be built ahead of its turn ([`Runner::first_call`]): the engine
/// builds the next attachment's while the current one's plugin runs. Its process can be
/// started ahead too ([`Runner::start_ahead`]).
#[derive(Debug)]
pub struct PluginCall {
    binary: PathBuf,
    stdin: Vec<u8>,
    /// The plugin's process, started ahead and waiting for `stdin`.
    started: Option<StartedPlugin>,
}

/// The version a list runs in.
pub fn list_version(list: &NetworkConfigList) -> Result<CniVersion> {
    list.effective_version().map_err(|e| Error::ParseDelegate {
        what: format!("{:?}", list.name()),
        message: format!("cniVersion: {e}"),
    })
}

impl Runner<'_> {
    fn env<'b>(&'b self, command: Command, rt: &RuntimeConf<'b>) -> PluginEnv<'b> {
        PluginEnv {
            command,
            container_id: rt.container_id,
            netns: rt.netns,
            ifname: rt.ifname,
            args: rt.cni_args,
            path: self.path,
        }
    }

    fn request(
        list: &NetworkConfigList,
        plugin: &PluginConfig,
        version: CniVersion,
        rt: &RuntimeConf<'_>,
        prev: Option<&CniResult>,
    ) -> Result<Vec<u8>> {
        let mut map = list.request_config(plugin, version);
        let runtime: Map<String, Value> = plugin
            .capabilities()
            .filter(|(_, on)| *on)
            .filter_map(|(cap, _)| {
                rt.capability_args
                    .get(cap)
                    .map(|v| (cap.to_owned(), v.clone()))
            })
            .collect();
        if !runtime.is_empty() {
            map.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        if let Some(prev) = prev {
            let value = prev.to_value(version).map_err(|e| Error::PluginResult {
                plugin: plugin.plugin_type().to_owned(),
                message: e.to_string(),
            })?;
            map.insert("prevResult".into(), value);
        }
        serde_json::to_vec(&map).map_err(|e| Error::Serialize {
            what: "plugin request",
            message: e.to_string(),
        })
    }

    /// `plugin`'s call: found in the search path, its request built.
    fn build(
        &self,
        list: &NetworkConfigList,
        plugin: &PluginConfig,
        version: CniVersion,
        rt: &RuntimeConf<'_>,
        prev: Option<&CniResult>,
    ) -> Result<PluginCall> {
        Ok(PluginCall {
            binary: find_plugin(plugin.plugin_type(), self.path)?,
            stdin: Self::request(list, plugin, version, rt, prev)?,
            started: None,
        })
    }

    /// Start `call`'s plugin process now, for `command` on `rt`: it loads while the caller
    /// finishes what must come before any plugin may act (`alongside`: while another plugin
    /// runs), and gets its config (so can act) only when the call runs. A process that cannot
    /// be started is left to the call, which then starts it again and reports why it cannot.
    pub fn start_ahead(
        &self,
        call: &mut PluginCall,
        command: Command,
        rt: &RuntimeConf<'_>,
        alongside: bool,
    ) {
        if call.started.is_none() {
            call.started = start_plugin(&call.binary, &self.env(command, rt))
                .ok()
                .map(|p| if alongside { p.started_alongside() } else { p });
        }
    }

    /// Give `call` a process started before the call was built (the engine's head start, or a
    /// list's next plugin started while the one before ran), if that is the process the call
    /// would start; otherwise it is dropped, so killed unread.
    pub fn adopt(
        &self,
        call: &mut PluginCall,
        command: Command,
        rt: &RuntimeConf<'_>,
        early: StartedPlugin,
    ) {
        let needed = call.binary.display();
        if call.started.is_none() && early.is_for(&call.binary, &self.env(command, rt)) {
            tracing::debug!(plugin = %needed, %command, "using the plugin process started early");
            call.started = Some(early);
        } else {
            tracing::debug!(
                plugin = %needed,
                started = early.plugin(),
                %command,
                "the plugin process started early is not this call's: killed unread"
            );
        }
    }

    /// The process of `plugin`, the next in its list, started while the plugin before runs and
    /// given its config at its turn (docs/decisions.md, "Plugins started ahead"); `None` when
    /// plugins do not start ahead or it cannot be started (its call then starts it and reports
    /// why).
    fn start_next(
        &self,
        plugin: Option<&PluginConfig>,
        env: &PluginEnv<'_>,
    ) -> Option<StartedPlugin> {
        let plugin = plugin.filter(|_| self.start_ahead)?;
        let binary = find_plugin(plugin.plugin_type(), self.path).ok()?;
        start_plugin(&binary, env)
            .ok()
            .map(StartedPlugin::started_alongside)
    }

    /// Run a built call (on its started process, if it has one: started with `env`).
    async fn run(&self, call: PluginCall, env: &PluginEnv<'_>) -> Result<Vec<u8>> {
        match call.started {
            Some(started) => started.finish(&call.stdin, self.stats).await,
            None => run_plugin(&call.binary, env, &call.stdin, self.stats).await,
        }
    }

    /// The first call [`add`](Self::add) or [`del`](Self::del) (with its `cached` result) makes
    /// on `list`, built now; `None` for a list without plugins.
    pub fn first_call(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf<'_>,
        command: Command,
        cached: Option<&CniResult>,
    ) -> Result<Option<PluginCall>> {
        let version = list_version(list)?;
        let (plugin, prev) = match command {
            Command::Del => (
                list.plugins().last(),
                cached.filter(|_| version.supports_prev_result_on_del()),
            ),
            _ => (list.plugins().first(), None),
        };
        plugin
            .map(|plugin| self.build(list, plugin, version, rt, prev))
            .transpose()
    }

    /// ADD every plugin in order; the last result is the list's. `first`: the first plugin's
    /// call, when [`first_call`](Self::first_call) built it ahead.
    pub async fn add(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf<'_>,
        mut first: Option<PluginCall>,
    ) -> Result<CniResult> {
        let version = list_version(list)?;
        let env = self.env(Command::Add, rt);
        let mut result: Option<CniResult> = None;
        let plugins = list.plugins();
        // The next plugin's process, started while this one runs; killed unread if this one
        // fails.
        let mut ahead: Option<StartedPlugin> = None;
        for (i, plugin) in plugins.iter().enumerate() {
            let mut call = match first.take() {
                Some(call) => call,
                None => self.build(list, plugin, version, rt, result.as_ref())?,
            };
            if let Some(early) = ahead.take() {
                self.adopt(&mut call, Command::Add, rt, early);
            }
            // Not when this step ended at once (it failed before its plugin ran).
            let (env_ref, next) = (&env, plugins.get(i + 1));
            let next =
                move |ended: bool| async move { self.start_next(next.filter(|_| !ended), env_ref) };
            let (out, next) = alongside(self.run(call, &env), next).await;
            ahead = next;
            let out = out?;
            if !out.iter().all(u8::is_ascii_whitespace) {
                let text = String::from_utf8_lossy(&out);
                let parsed =
                    CniResult::parse(&text, Some(version)).map_err(|e| Error::PluginResult {
                        plugin: plugin.plugin_type().to_owned(),
                        message: e.to_string(),
                    })?;
                result = Some(parsed);
            }
        }
        Ok(result.unwrap_or_else(|| CniResult::new(version)))
    }

    /// DEL every plugin in reverse order, with the cached result as `prevResult` (≥ 0.4.0).
    /// Unlike libcni, a failing plugin does not stop the others: DEL is best effort, and an IPAM
    /// plugin later in the list must still release its address. `first`: the first call (the
    /// last plugin's), when [`first_call`](Self::first_call) built it ahead.
    pub async fn del(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf<'_>,
        cached: Option<&CniResult>,
        mut first: Option<PluginCall>,
    ) -> Result<()> {
        let version = list_version(list)?;
        let prev = cached.filter(|_| version.supports_prev_result_on_del());
        let env = self.env(Command::Del, rt);
        let mut errors = Vec::new();
        let plugins: Vec<&PluginConfig> = list.plugins().iter().rev().collect();
        // The next plugin's process (the one before in the list), started while this one runs.
        let mut ahead: Option<StartedPlugin> = None;
        for (i, plugin) in plugins.iter().enumerate() {
            let built = first.take();
            let early = ahead.take();
            let deleting = async {
                let mut call = match built {
                    Some(call) => call,
                    None => self.build(list, plugin, version, rt, prev)?,
                };
                if let Some(early) = early {
                    self.adopt(&mut call, Command::Del, rt, early);
                }
                self.run(call, &env).await
            };
            // Not when this step ended at once (its call could not be built): the next then
            // starts at its turn, and its start is counted as its own.
            let (env_ref, next) = (&env, plugins.get(i + 1).copied());
            let next =
                move |ended: bool| async move { self.start_next(next.filter(|_| !ended), env_ref) };
            let (outcome, next) = alongside(deleting, next).await;
            ahead = next;
            if let Err(e) = outcome {
                errors.push(e);
            }
        }
        several(errors)
    }

    /// CHECK every plugin in order against the cached result. Lists older than 0.4.0 and lists
    /// with `disableCheck` are skipped, as libcni does.
    pub async fn check(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf<'_>,
        cached: &CniResult,
    ) -> Result<()> {
        let version = list_version(list)?;
        if !version.supports_check() || list.disable_check() {
            return Ok(());
        }
        let env = self.env(Command::Check, rt);
        for plugin in list.plugins() {
            let call = self.build(list, plugin, version, rt, Some(cached))?;
            self.run(call, &env).await?;
        }
        Ok(())
    }

    /// GC every plugin (CNI ≥ 1.1.0, not `disableGC`) with the attachments still valid.
    pub async fn gc(&self, list: &NetworkConfigList, valid: &[(String, String)]) -> Result<()> {
        let version = list_version(list)?;
        if !version.supports_gc() || list.disable_gc() {
            return Ok(());
        }
        let attachments: Vec<Value> = valid
            .iter()
            .map(|(cid, ifname)| json!({"containerID": cid, "ifname": ifname}))
            .collect();
        let no_caps = Map::new();
        let rt = RuntimeConf {
            container_id: "",
            netns: "",
            ifname: "",
            cni_args: "",
            capability_args: &no_caps,
        };
        let env = self.env(Command::Gc, &rt);
        let mut errors = Vec::new();
        for plugin in list.plugins() {
            let outcome = async {
                let binary = find_plugin(plugin.plugin_type(), self.path)?;
                let mut map = list.request_config(plugin, version);
                map.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::Array(attachments.clone()),
                );
                map.insert(
                    "cni.dev/attachments".into(),
                    Value::Array(attachments.clone()),
                );
                let stdin = serde_json::to_vec(&map).map_err(|e| Error::Serialize {
                    what: "GC request",
                    message: e.to_string(),
                })?;
                run_plugin(&binary, &env, &stdin, self.stats).await
            }
            .await;
            if let Err(e) = outcome {
                errors.push(e);
            }
        }
        several(errors)
    }

    /// STATUS every plugin (CNI ≥ 1.1.0); the first failure is the answer.
    pub async fn status(&self, list: &NetworkConfigList) -> Result<()> {
        let version = list_version(list)?;
        if !version.supports_status() {
            return Ok(());
        }
        let no_caps = Map::new();
        let rt = RuntimeConf {
            container_id: "",
            netns: "",
            ifname: "",
            cni_args: "",
            capability_args: &no_caps,
        };
        let env = self.env(Command::Status, &rt);
        for plugin in list.plugins() {
            let call = self.build(list, plugin, version, &rt, None)?;
            self.run(call, &env).await?;
        }
        Ok(())
    }
}

/// `Ok` for no errors, the error itself for one, [`Error::Several`] for more.
pub(crate) fn several(mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Several(errors)),
    }
}

/// Run `work` while `plugin` runs: poll `plugin` once — a step whose plugin process is given its
/// config in its first poll (`Started::finish` writes it before it awaits) — then finish the
/// work, then wait for the plugin. Work for the call after thus costs the call nothing. `work`
/// is told whether the step already ended in that poll (an error before any plugin ran).
pub(crate) async fn alongside<P: Future, W: Future>(
    plugin: P,
    work: impl FnOnce(bool) -> W,
) -> (P::Output, W::Output) {
    let mut plugin = std::pin::pin!(plugin);
    let first = std::future::poll_fn(|cx| Poll::Ready(plugin.as_mut().poll(cx))).await;
    let done = work(first.is_ready()).await;
    let outcome = match first {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => plugin.await,
    };
    (outcome, done)
}
