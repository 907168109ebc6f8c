//! libcni's sub-directory aggregation (multus-spec §2.2, §4.1): a configuration list named
//! `<name>` takes, after its inlined `plugins`, the plugin configs of `<dir>/<name>/*.conf`, in
//! lexical order, unless it says `loadOnlyInlinedPlugins: true`. Used for a `clusterNetwork` (or
//! `defaultNetworks`) path ending `.conflist` and for the auxiliary CNI chain, built here too.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use multus_crds::cni::{NetworkConfigList, PluginConfig};
use multus_crds::names::validate_cni_name;
use serde_json::Value;

use crate::cache::Delegate;
use crate::error::{Error, Result};
use crate::resolve::Context;

/// `list` with the plugins of `<dir>/<list name>/*.conf` appended. A missing sub-directory adds
/// nothing; an unreadable or invalid plugin file is an error, and so is a list left without any
/// plugin ("no plugin configs found", as libcni says).
pub fn aggregate(list: NetworkConfigList, dir: &Path) -> Result<NetworkConfigList> {
    let fail = |path: PathBuf, message: String| Error::ReadNetworkFile { path, message };
    if list.load_only_inlined_plugins() {
        return Ok(list);
    }
    // The name becomes a directory name: it must be a CNI name (no `/`, no leading `.`).
    validate_cni_name(list.name())
        .map_err(|e| fail(dir.to_owned(), format!("invalid network config name: {e}")))?;
    let sub = dir.join(list.name());
    let extra = plugin_files(&sub)
        .map_err(|e| fail(sub.clone(), format!("reading plugin configs: {e}")))?
        .into_iter()
        .map(|file| {
            let text = fs::read_to_string(&file).map_err(|e| fail(file.clone(), e.to_string()))?;
            PluginConfig::parse(&text)
                .map(|p| p.to_value())
                .map_err(|e| fail(file, e.message()))
        })
        .collect::<Result<Vec<Value>>>()?;
    if list.plugins().len() + extra.len() == 0 {
        return Err(fail(sub, "no plugin configs found".into()));
    }
    if extra.is_empty() {
        return Ok(list);
    }
    let mut value = list.to_list_value();
    if let Some(top) = value.as_object_mut() {
        let plugins = top
            .entry("plugins")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = plugins {
            items.extend(extra);
        }
    }
    NetworkConfigList::from_value(value).map_err(|e| fail(sub, e.message()))
}

/// The plugins of the auxiliary CNI chain (multus-spec §3.1 step 9): a list named
/// `auxiliaryCNIChainName` starting with `passthru`, aggregated from
/// `<directory of clusterNetwork>/<chain>/*.conf`, run as the last attachment (`net<n>`) when
/// that directory adds at least one plugin. It sees the pod's sandbox after every network is
/// attached (e.g. to add routes or sysctls).
pub(crate) fn auxiliary_chain(
    ctx: &Context<'_>,
    delegates: &[Delegate],
) -> Result<Option<Delegate>> {
    let Some(chain) = ctx
        .config
        .auxiliary_cni_chain_name
        .as_deref()
        .filter(|c| !c.is_empty())
    else {
        return Ok(None);
    };
    let cluster = ctx.config.cluster_network.as_deref().unwrap_or_default();
    if !cluster.contains('/') {
        return Err(Error::ParseConfig(format!(
            "auxiliaryCNIChainName {chain:?} is set, so clusterNetwork must be a path (the chain's \
             plugins are in <its directory>/{chain}/), and {cluster:?} is not one"
        )));
    }
    let dir = Path::new(cluster).parent().unwrap_or(Path::new("/"));
    let base = serde_json::json!({
        "cniVersion": ctx.config.cni_version.as_deref().unwrap_or_default(),
        "name": chain,
        "plugins": [{"type": "passthru", "name": "passthru-cni"}],
    });
    let list = NetworkConfigList::from_value(base).map_err(|e| Error::ParseDelegate {
        what: format!("of auxiliary CNI chain {chain:?}"),
        message: e.message(),
    })?;
    let list = aggregate(list, dir)?;
    if list.plugins().len() <= 1 {
        return Ok(None);
    }
    let index = delegates.len();
    let ifname = multus_crds::attachments::interface_name(index, None, &ctx.invocation.ifname);
    if let Some(taken) = delegates.iter().find(|d| d.ifname == ifname) {
        return Err(Error::DuplicateInterface {
            ifname,
            first: taken.status_name.clone(),
            second: chain.to_owned(),
        });
    }
    crate::resolve::single_delegate(ctx, index, &ifname, None, &list).map(Some)
}

/// The `.conf` files of `dir` in lexical order; none when `dir` does not exist.
fn plugin_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match crate::resolve::files_with_extension(dir, &["conf"]) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        found => found,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn types(list: &NetworkConfigList) -> Vec<&str> {
        list.plugins()
            .iter()
            .map(PluginConfig::plugin_type)
            .collect()
    }

    fn list(text: &str) -> NetworkConfigList {
        NetworkConfigList::parse(text).unwrap()
    }

    #[test]
    fn appends_the_sub_directory_plugins_in_lexical_order() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("k8s-pod-network");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("20-b.conf"), r#"{"type":"tuning"}"#).unwrap();
        fs::write(
            sub.join("10-a.conf"),
            r#"{"type":"portmap","capabilities":{"portMappings":true}}"#,
        )
        .unwrap();
        fs::write(sub.join("30-c.conflist"), r#"{"type":"ignored"}"#).unwrap();
        fs::create_dir(sub.join("40-d.conf")).unwrap();
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"bridge"}]}"#,
        );
        let l = aggregate(l, dir.path()).unwrap();
        assert_eq!(types(&l), ["bridge", "portmap", "tuning"]);
        assert_eq!(l.name(), "k8s-pod-network");
        assert_eq!(l.cni_version(), Some("1.0.0"));

        // Without a `plugins` key, the directory is the whole chain.
        let l = aggregate(
            list(r#"{"cniVersion":"1.0.0","name":"k8s-pod-network"}"#),
            dir.path(),
        )
        .unwrap();
        assert_eq!(types(&l), ["portmap", "tuning"]);
    }

    #[test]
    fn load_only_inlined_plugins_and_missing_directories_add_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("net");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("a.conf"), r#"{"type":"tuning"}"#).unwrap();
        let inlined = list(
            r#"{"cniVersion":"1.0.0","name":"net","loadOnlyInlinedPlugins":true,"plugins":[{"type":"bridge"}]}"#,
        );
        assert_eq!(types(&aggregate(inlined, dir.path()).unwrap()), ["bridge"]);
        let other = list(r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}"#);
        assert_eq!(types(&aggregate(other, dir.path()).unwrap()), ["bridge"]);
    }

    #[test]
    fn no_plugins_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            aggregate(list(r#"{"cniVersion":"1.0.0","name":"empty"}"#), dir.path()).unwrap_err();
        assert!(err.to_string().contains("no plugin configs found"), "{err}");

        let sub = dir.path().join("net");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("a.conf"), r#"{"mtu":1400}"#).unwrap();
        let err =
            aggregate(list(r#"{"cniVersion":"1.0.0","name":"net"}"#), dir.path()).unwrap_err();
        assert!(err.to_string().contains("a.conf"), "{err}");

        let err = aggregate(
            list(r#"{"cniVersion":"1.0.0","name":"../x","plugins":[{"type":"bridge"}]}"#),
            dir.path(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("invalid network config name"),
            "{err}"
        );
    }
}
