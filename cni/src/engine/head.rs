//! The head start: a call's first plugin, started as soon as the configuration is read, before
//! the work that decides its config (docs/decisions.md, "Plugins started ahead"). A Go plugin
//! spends about 3 ms starting up before it reads its config; that now overlaps the meta-plugin's
//! own work (the thin plugin starts it before even its async runtime).
//!
//! - ADD: the cluster network's first plugin, presumed from the files alone
//!   ([`presumed_cluster_plugin`]), started before the pod is looked up and its networks
//!   resolved. ADD checks the guess against the first attachment it resolves; a process that is
//!   not the one that attachment needs (another default network for the pod, a NAD changed
//!   since the node's copy) is killed unread, as is one whose ADD fails before its turn.
//! - DEL (the thin plugin's; the daemon has none): the last plugin of the last attachment of
//!   the container's delegate list, which DEL releases first; the list read for it is the one
//!   DEL then uses.

use std::path::PathBuf;

use multus_crds::multus_config::MultusConfig;

use super::{parse_delegate, starts_ahead};
use crate::cache::{CacheDir, CachedList, DelegateList};
use crate::env::{Command, Invocation};
use crate::error::Result;
use crate::exec::{PluginEnv, StartedPlugin, find_plugin, start_plugin};
use crate::resolve::{Presumed, ReadNetwork, delegate_cni_args, presumed_cluster_plugin};

/// What a head start began: the process, if any, and what it read for it, which the call then
/// uses rather than read it again.
#[derive(Debug, Default)]
pub struct HeadStart {
    /// For the first call to adopt if it is the one it needs.
    pub(super) process: Option<StartedPlugin>,
    /// DEL: the delegate list.
    pub(super) list: Option<Result<CachedList>>,
    /// ADD: `clusterNetwork` given as a path, as read to presume its plugin.
    pub(super) cluster_read: Option<ReadNetwork>,
}

impl HeadStart {
    /// For an ADD or DEL that may start plugins ahead ([`super::START_AHEAD_KEY`]), start its
    /// first plugin as its call would: for ADD only when the readiness file, if the config
    /// names one, is there. Nothing is started when the files do not tell which plugin that is
    /// or it cannot be started; the plugin then starts at its turn, which reports any error.
    pub fn begin(inv: &Invocation, config: &MultusConfig) -> Self {
        if !starts_ahead(config).unwrap_or(false) {
            return Self::default();
        }
        match inv.command {
            Command::Add => {
                let (process, cluster_read) = add_process(inv, config);
                Self {
                    process,
                    list: None,
                    cluster_read,
                }
            }
            Command::Del => {
                let list = CacheDir::new(config.cni_dir()).read_list(
                    &inv.container_id,
                    &inv.ifname,
                    &inv.args,
                );
                let process = match &list {
                    Ok(CachedList::Found(found)) => {
                        del_process(inv, &plugin_dirs(inv, config), found)
                    }
                    _ => None,
                };
                Self {
                    process,
                    list: Some(list),
                    cluster_read: None,
                }
            }
            _ => Self::default(),
        }
    }
}

/// ADD's: the cluster network's presumed first plugin, for the runtime's interface, and
/// `clusterNetwork` as read from its path, if it is one.
fn add_process(
    inv: &Invocation,
    config: &MultusConfig,
) -> (Option<StartedPlugin>, Option<ReadNetwork>) {
    let ready = config
        .readiness_indicator_file
        .as_deref()
        .is_none_or(|f| f.is_empty() || std::path::Path::new(f).exists());
    let Some(Presumed { plugin, read }) = presumed_cluster_plugin(config).filter(|_| ready) else {
        return (None, None);
    };
    let path = plugin_dirs(inv, config);
    let args = delegate_cni_args(inv, &[]);
    let env = PluginEnv {
        command: Command::Add,
        container_id: &inv.container_id,
        netns: &inv.netns,
        ifname: &inv.ifname,
        args: &args,
        path: &path,
    };
    let process = find_plugin(&plugin, &path)
        .ok()
        .and_then(|binary| start_plugin(&binary, &env).ok());
    (process, read)
}

/// DEL's: the last attachment's last plugin (DEL releases attachments, and a list's plugins,
/// newest first).
fn del_process(inv: &Invocation, path: &[PathBuf], list: &DelegateList) -> Option<StartedPlugin> {
    let last = list.delegates.last()?;
    let plugins = parse_delegate(last).ok()?;
    let binary = find_plugin(plugins.plugins().last()?.plugin_type(), path).ok()?;
    let env = PluginEnv {
        command: Command::Del,
        container_id: &inv.container_id,
        netns: &inv.netns,
        ifname: &last.ifname,
        args: &last.cni_args,
        path,
    };
    start_plugin(&binary, &env).ok()
}

/// Where a call looks for plugins: `binDir`, then the runtime's `CNI_PATH`.
pub(super) fn plugin_dirs(inv: &Invocation, config: &MultusConfig) -> Vec<PathBuf> {
    let mut path = vec![PathBuf::from(config.bin_dir())];
    path.extend(inv.path.iter().cloned());
    path
}
