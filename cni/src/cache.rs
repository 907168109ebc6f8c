//! What the plugin remembers between ADD and DEL, under `cniDir` (multus-spec §3.9):
//!
//! - the **delegate list** `<cniDir>/<containerID>`: every attachment with the exact config,
//!   interface name, `CNI_ARGS` and capability arguments it was added with, written before any
//!   delegate runs;
//! - a **result record** per attachment, `<cniDir>/results/<network>-<containerID>-<ifname>`, in
//!   libcni's `cniCacheV1` format (so libcni-based tools read it) plus the attachment itself under
//!   `multus-rs.delegate`, written with the delegate's result, so DEL can release an attachment
//!   even when the delegate list is lost (a hot-plugged attachment of a container without a list
//!   is also recorded before its plugin runs: nothing else would name it).
//!
//! Every file is written to a temporary name in the same directory and renamed (not fsynced, as
//! upstream Multus and libcni do not: see docs/decisions.md); files are 0600 and directories 0700.
//! Removed files' inodes are kept for reuse ([`spare`]): creating files is most of the cost.
//! Every name in a path is checked first, so a container ID, network name or interface name can
//! never lead outside `cniDir`.
//!
//! Delegate lists written by Go Multus (a JSON array of records with `Bytes`) are read too, so an
//! upgrade in place does not leak the attachments of running pods.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use multus_crds::attachments::interface_name;
use multus_crds::cni::{CniResult, CniVersion};
use multus_crds::names::{validate_cni_name, validate_ifname};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, PodRef, Result};

mod spare;
use spare::Spares;

/// One attachment, resolved: everything needed to add, check or delete it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    /// Position in the pod's attachment list; 0 is the master (cluster network).
    pub index: usize,
    /// The network-status `name`: `<namespace>/<nad>`, or the CNI name of a file network.
    pub status_name: String,
    pub ifname: String,
    /// The configuration as given to the delegate (name injected, deviceID, `args.cni`).
    pub config: Value,
    /// `CNI_ARGS` for this delegate.
    pub cni_args: String,
    /// `runtimeConfig` values, given to plugins that declare the capability.
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// Remove this attachment's default routes of that family after ADD (default-route handling).
    #[serde(default)]
    pub filter_v4: bool,
    #[serde(default)]
    pub filter_v6: bool,
    /// Gateways requested with `default-route` (`Some(empty)` keeps the plugin's own route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// The CNI device-info file written for this attachment, removed on DEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devinfo_file: Option<PathBuf>,
    /// An earlier ADD's attachment that could not be released, kept in a later ADD's list for
    /// the runtime's DEL; that ADD did not add it, and CHECK does not check it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub carried: bool,
}

impl Delegate {
    /// A bridge attachment of pod `p` for unit tests.
    #[cfg(test)]
    pub(crate) fn example(index: usize, name: &str, ifname: &str) -> Self {
        Delegate {
            index,
            status_name: format!("ns/{name}"),
            ifname: ifname.into(),
            config: serde_json::json!({"cniVersion":"1.0.0","name":name,"type":"bridge"}),
            cni_args: "K8S_POD_NAME=p".into(),
            capability_args: Map::new(),
            filter_v4: false,
            filter_v6: false,
            gateways: None,
            device_id: None,
            resource_name: None,
            devinfo_file: None,
            carried: false,
        }
    }

    pub fn is_master(&self) -> bool {
        self.index == 0
    }

    /// Whether `other` is the same attachment: the same network on the same interface.
    pub fn is_same_attachment(&self, other: &Delegate) -> bool {
        self.ifname == other.ifname && self.network_name() == other.network_name()
    }

    /// The CNI network name of the config (`name`), used in result-record file names.
    pub fn network_name(&self) -> &str {
        self.config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

const SCRATCH_KIND: &str = "multus-rs/delegates/v1";

/// The delegate list of one container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateList {
    pub kind: String,
    pub container_id: String,
    #[serde(default)]
    pub netns: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    pub delegates: Vec<Delegate>,
}

impl DelegateList {
    pub fn new(
        container_id: &str,
        netns: &str,
        pod: Option<PodRef>,
        delegates: Vec<Delegate>,
    ) -> Self {
        Self {
            kind: SCRATCH_KIND.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            pod,
            delegates,
        }
    }
}

/// A libcni `cniCacheV1` record with the attachment attached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The config bytes, base64 (Go's encoding of `[]byte`).
    #[serde(default)]
    pub config: String,
    #[serde(rename = "ifName")]
    pub ifname: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default)]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(
        rename = "multus-rs.delegate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delegate: Option<Delegate>,
}

/// What DEL and CHECK read of a [`ResultRecord`]: whose it is and its result. The record's
/// copies of the delegate's config are skipped unparsed (they were most of the work of reading
/// a record for its result).
#[derive(Deserialize)]
struct RecordedResult {
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(rename = "ifName")]
    ifname: String,
    #[serde(rename = "networkName")]
    network_name: String,
    #[serde(default)]
    result: Option<Value>,
}

/// Whose attachment a record read from disk says it holds.
trait Recorded {
    fn owner(&self) -> (&str, &str, &str);
}

impl Recorded for ResultRecord {
    fn owner(&self) -> (&str, &str, &str) {
        (&self.container_id, &self.network_name, &self.ifname)
    }
}

impl Recorded for RecordedResult {
    fn owner(&self) -> (&str, &str, &str) {
        (&self.container_id, &self.network_name, &self.ifname)
    }
}

/// What reading a delegate list found.
#[derive(Debug)]
pub enum CachedList {
    Found(DelegateList),
    Missing,
    Corrupt(String),
}

/// The cache directory (`cniDir`), as the calls of one process use it: [`CacheDirs`] keeps one
/// per root for a daemon's calls, the thin plugin makes one for its single call.
#[derive(Debug)]
pub struct CacheDir {
    root: PathBuf,
    spares: Spares,
}

/// The cache directories an engine has written to, kept across its calls: a daemon then knows
/// its `.spare` inodes from earlier calls and reads `.spare` again only when a write finds its
/// view empty (`Spares::new_call`), where each ADD and DEL read it before its first plugin.
#[derive(Debug, Default)]
pub struct CacheDirs(std::sync::Mutex<Vec<Arc<CacheDir>>>);

impl CacheDirs {
    /// More roots than a node's configs name are dropped oldest first: requests choose `cniDir`.
    const KEPT: usize = 8;

    /// The cache directory at `root`, as earlier calls left it.
    pub fn get(&self, root: &Path) -> Arc<CacheDir> {
        let mut dirs = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = match dirs.iter().position(|d| d.root == root) {
            Some(i) => dirs.remove(i),
            None => Arc::new(CacheDir::new(root)),
        };
        dir.spares.new_call();
        dirs.push(Arc::clone(&dir));
        if dirs.len() > Self::KEPT {
            dirs.remove(0);
        }
        dir
    }
}

/// A result record made ready by [`CacheDir::ready_result`]: everything but its result, and an
/// open temporary file beside its place. Dropped unwritten (its ADD failed), the file goes back
/// to `.spare`.
#[derive(Debug)]
pub struct ReadyResult<'c> {
    cache: &'c CacheDir,
    path: PathBuf,
    tmp: PathBuf,
    file: fs::File,
    record: ResultRecord,
    written: bool,
}

impl ReadyResult<'_> {
    /// Add `result` and write the record: into its file, then renamed into place. On failure
    /// its file goes back to `.spare` and nothing is in place.
    pub fn write(mut self, result: &CniResult) -> Result<()> {
        self.record.result = Some(result_value(result)?);
        let bytes = to_json(&self.record)?;
        match fill(&mut self.file, &bytes)
            .and_then(|()| self.cache.spares.replace(&self.tmp, &self.path))
        {
            Ok(()) => {}
            // The temporary file is gone: GC took it from under a plugin that ran longer than
            // its age, or the directory was removed meanwhile. Written anew.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.cache.write_json(&self.path, &self.record)?;
            }
            Err(source) => {
                return Err(Error::WriteCache {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        self.written = true;
        Ok(())
    }
}

impl Drop for ReadyResult<'_> {
    fn drop(&mut self) {
        if !self.written {
            let _ = self.cache.spares.remove(&self.tmp);
        }
    }
}

fn checked<'a>(
    what: &'static str,
    value: &'a str,
    check: fn(&str) -> Result<(), String>,
) -> Result<&'a str> {
    check(value).map_err(|reason| Error::UnsafeName {
        name: what,
        value: value.to_owned(),
        reason,
    })?;
    Ok(value)
}

impl CacheDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            spares: Spares::new(&root),
            root,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn results_dir(&self) -> PathBuf {
        self.root.join(RESULTS_DIR)
    }

    /// `<cniDir>/<containerID>`; the ID must be a CNI name (no `/`, no leading `.`) other than
    /// `results`, the records' directory beside the lists (upstream's layout, kept so an upgrade
    /// in place finds Go Multus' files): as a list's path it would have a DEL move every pod's
    /// records away, or an ADD swap the directory for a file.
    pub fn list_path(&self, container_id: &str) -> Result<PathBuf> {
        let name = checked("container ID", container_id, validate_cni_name)?;
        if name == RESULTS_DIR {
            return Err(Error::UnsafeName {
                name: "container ID",
                value: name.to_owned(),
                reason: format!(
                    "is the name of the records' directory in cniDir {:?}",
                    self.root
                ),
            });
        }
        Ok(self.root.join(name))
    }

    /// `<cniDir>/results/<network>-<containerID>-<ifname>`, every part checked.
    pub fn result_path(&self, network: &str, container_id: &str, ifname: &str) -> Result<PathBuf> {
        let network = checked("network name", network, validate_cni_name)?;
        let cid = checked("container ID", container_id, validate_cni_name)?;
        let ifname = checked("interface name", ifname, validate_ifname)?;
        Ok(self.results_dir().join(format!("{network}-{cid}-{ifname}")))
    }

    /// Written by temporary file and rename, not fsynced (docs/decisions.md, "Cache writes
    /// without fsync"): the page cache survives a crash of this process, and after a kernel
    /// crash the pods' namespaces are gone with it.
    pub fn write_list(&self, list: &DelegateList) -> Result<()> {
        let path = self.list_path(&list.container_id)?;
        self.write_json(&path, list)
    }

    /// Read a container's delegate list, in our format or Go Multus'. `runtime_ifname` and
    /// `base_args` rebuild what Go Multus did not store.
    pub fn read_list(
        &self,
        container_id: &str,
        runtime_ifname: &str,
        base_args: &str,
    ) -> Result<CachedList> {
        // No list can have been written under that ID (`list_path`): DEL goes on without one.
        if container_id == RESULTS_DIR {
            return Ok(CachedList::Missing);
        }
        let path = self.list_path(container_id)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(CachedList::Missing),
            Err(e) => return Ok(CachedList::Corrupt(e.to_string())),
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return Ok(CachedList::Corrupt(e.to_string())),
        };
        if value.is_array() {
            return Ok(
                match from_go_multus(&value, container_id, runtime_ifname, base_args) {
                    Ok(list) => CachedList::Found(list),
                    Err(e) => CachedList::Corrupt(e),
                },
            );
        }
        Ok(match serde_json::from_value::<DelegateList>(value) {
            // An inode recycled while this read had the file open (spare.rs), or a crash after
            // it was rewritten, can show another container's list: never act on that.
            Ok(list) if list.kind == SCRATCH_KIND && list.container_id != container_id => {
                CachedList::Corrupt(format!("holds container {:?}", list.container_id))
            }
            Ok(list) if list.kind == SCRATCH_KIND => CachedList::Found(list),
            Ok(list) => CachedList::Corrupt(format!("unknown kind {:?}", list.kind)),
            Err(e) => CachedList::Corrupt(e.to_string()),
        })
    }

    pub fn remove_list(&self, container_id: &str) -> Result<()> {
        if container_id == RESULTS_DIR {
            return Ok(());
        }
        self.remove_file(&self.list_path(container_id)?)
    }

    /// Write the result record of `delegate` (with its result after ADD; with none before a
    /// hot-plug ADD that no delegate list records).
    pub fn write_result(
        &self,
        delegate: &Delegate,
        container_id: &str,
        netns: &str,
        result: Option<&CniResult>,
    ) -> Result<()> {
        let (path, record) = self.result_record(delegate, container_id, netns, result)?;
        self.write_json(&path, &record)
    }

    /// [`write_result`](Self::write_result) in two steps, for a record whose result is not
    /// known yet (its plugin runs): everything but the result is built now and its temporary
    /// file taken (a spare inode when there is one, else a new file: off the ADD's path either
    /// way); [`ReadyResult::write`] then adds the result.
    pub fn ready_result(
        &self,
        delegate: &Delegate,
        container_id: &str,
        netns: &str,
    ) -> Result<ReadyResult<'_>> {
        let (path, record) = self.result_record(delegate, container_id, netns, None)?;
        let tmp = temp_path(&path);
        let file = with_dir(&path, || self.spares.open_temp(&tmp)).map_err(|source| {
            Error::WriteCache {
                path: path.clone(),
                source,
            }
        })?;
        Ok(ReadyResult {
            cache: self,
            path,
            tmp,
            file,
            record,
            written: false,
        })
    }

    /// `delegate`'s result record and where it goes.
    fn result_record(
        &self,
        delegate: &Delegate,
        container_id: &str,
        netns: &str,
        result: Option<&CniResult>,
    ) -> Result<(PathBuf, ResultRecord)> {
        let path = self.result_path(delegate.network_name(), container_id, &delegate.ifname)?;
        let config = serde_json::to_vec(&delegate.config).map_err(|e| Error::Serialize {
            what: "delegate config",
            message: e.to_string(),
        })?;
        let result = result.map(result_value).transpose()?;
        let record = ResultRecord {
            kind: "cniCacheV1".into(),
            container_id: container_id.into(),
            config: base64::engine::general_purpose::STANDARD.encode(config),
            ifname: delegate.ifname.clone(),
            network_name: delegate.network_name().into(),
            netns: netns.into(),
            cni_args: crate::env::parse_cni_args(&delegate.cni_args)
                .into_iter()
                .map(|(k, v)| [k, v])
                .collect(),
            capability_args: delegate.capability_args.clone(),
            result,
            delegate: Some(delegate.clone()),
        };
        Ok((path, record))
    }

    /// The result `delegate`'s record holds for `container_id` (what DEL and CHECK are given).
    pub fn read_cached_result(
        &self,
        delegate: &Delegate,
        container_id: &str,
    ) -> Result<Option<CniResult>> {
        Ok(self
            .read_record::<RecordedResult>(delegate, container_id)?
            .and_then(|r| r.result)
            .and_then(|v| CniResult::from_value(v, Some(CniVersion::V1_0_0)).ok()))
    }

    pub fn read_result(
        &self,
        delegate: &Delegate,
        container_id: &str,
    ) -> Result<Option<ResultRecord>> {
        self.read_record(delegate, container_id)
    }

    fn read_record<R: Recorded + serde::de::DeserializeOwned>(
        &self,
        delegate: &Delegate,
        container_id: &str,
    ) -> Result<Option<R>> {
        let path = self.result_path(delegate.network_name(), container_id, &delegate.ifname)?;
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<R>(&bytes) {
                // As for lists: a record that is not this attachment's is not acted on.
                Ok(r)
                    if r.owner()
                        != (
                            container_id,
                            delegate.network_name(),
                            delegate.ifname.as_str(),
                        ) =>
                {
                    let (container, network, ifname) = r.owner();
                    Err(Error::ReadCache {
                        path,
                        message: format!("holds {network}/{ifname} of container {container:?}"),
                    })
                }
                Ok(r) => Ok(Some(r)),
                Err(e) => Err(Error::ReadCache {
                    path,
                    message: e.to_string(),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::ReadCache {
                path,
                message: e.to_string(),
            }),
        }
    }

    pub fn remove_result(&self, delegate: &Delegate, container_id: &str) -> Result<()> {
        self.remove_file(&self.result_path(
            delegate.network_name(),
            container_id,
            &delegate.ifname,
        )?)
    }

    /// Every readable result record (unreadable ones are skipped: they cannot be acted on).
    pub fn all_results(&self) -> Vec<ResultRecord> {
        self.results_where(|_| true)
    }

    /// The readable result records whose file name passes `wanted`.
    fn results_where(&self, wanted: impl Fn(&str) -> bool) -> Vec<ResultRecord> {
        let Ok(entries) = fs::read_dir(self.results_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.') && wanted(&name)
            })
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<ResultRecord>(&b).ok())
            .collect()
    }

    /// The attachments of `container_id` known from result records, highest index first (the
    /// order DEL runs in).
    pub fn delegates_from_results(&self, container_id: &str) -> Vec<Delegate> {
        // Record names are `<network>-<containerID>-<ifname>`: only those naming the container
        // are read, not every pod's on the node.
        let infix = format!("-{container_id}-");
        let mut found: Vec<Delegate> = self
            .results_where(|name| name.contains(&infix))
            .into_iter()
            .filter(|r| r.container_id == container_id)
            .filter_map(|r| r.delegate)
            .collect();
        found.sort_by_key(|d| std::cmp::Reverse(d.index));
        found
    }

    /// Remove the temporary files of writes that never finished: a plugin killed between
    /// writing a file and renaming it into place (a runtime's timeout) leaves its
    /// `.<name>.tmp.<pid>.<n>` behind, and nothing else would ever remove it. A temporary file
    /// is taken once its inode has not changed for `older_than` (claiming, writing and renaming
    /// each change it), which must be longer than any CNI call lasts: a record made ready
    /// keeps its file open while its plugin runs. Should a plugin outlast it, its record is
    /// written anew ([`ReadyResult::write`]); and as the file is unlinked, not kept as a spare,
    /// what that writer writes into it can reach no other file. Returns how many were removed.
    pub fn sweep_leftovers(&self, older_than: Duration) -> usize {
        let now = SystemTime::now();
        [self.root.clone(), self.results_dir()]
            .iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .flatten()
            .filter(|e| is_temp_name(&e.file_name().to_string_lossy()))
            .filter(|e| {
                // Not followed: a symlink is a file of its own, taken as it is.
                e.metadata().is_ok_and(|m| {
                    let changed = SystemTime::UNIX_EPOCH
                        + Duration::new(
                            u64::try_from(m.ctime()).unwrap_or_default(),
                            u32::try_from(m.ctime_nsec()).unwrap_or_default(),
                        );
                    !m.is_dir() && now.duration_since(changed).unwrap_or_default() >= older_than
                })
            })
            .filter(|e| fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Container IDs that have a delegate list.
    pub fn listed_containers(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| validate_cni_name(n).is_ok())
            .collect()
    }
}

/// The runtime's interface name to read Go Multus' delegate lists with when the call has none
/// of its own (GC, a hot-plug): those lists do not record it, and runtimes ask for eth0.
pub const GO_MULTUS_RUNTIME_IFNAME: &str = "eth0";

/// Read Go Multus' delegate list: `[{"Bytes": base64 config, "Name", "ifnameRequest",
/// "macRequest", "ipRequest", "IsFilterV4Gateway", "IsFilterV6Gateway", "deviceID"}]`.
fn from_go_multus(
    value: &Value,
    container_id: &str,
    runtime_ifname: &str,
    base_args: &str,
) -> Result<DelegateList, String> {
    let items = value.as_array().ok_or("not a list")?;
    let mut delegates = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let text = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text("Bytes").ok_or(format!("entry {index} has no Bytes"))?)
            .map_err(|e| format!("entry {index}: {e}"))?;
        let config: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("entry {index}: {e}"))?;
        let mut capability_args = Map::new();
        let mut cni_args = base_args.to_owned();
        if let Some(mac) = text("macRequest") {
            capability_args.insert("mac".into(), Value::String(mac.into()));
            cni_args.push_str(&format!(";MAC={mac}"));
        }
        if let Some(ips) = item
            .get("ipRequest")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            capability_args.insert("ips".into(), Value::Array(ips.clone()));
            let joined: Vec<&str> = ips.iter().filter_map(Value::as_str).collect();
            cni_args.push_str(&format!(";IP={}", joined.join(",")));
        }
        let flag = |k: &str| item.get(k).and_then(Value::as_bool).unwrap_or(false);
        delegates.push(Delegate {
            index,
            status_name: text("Name").unwrap_or_default().to_owned(),
            ifname: interface_name(index, text("ifnameRequest"), runtime_ifname),
            config,
            cni_args,
            capability_args,
            filter_v4: flag("IsFilterV4Gateway"),
            filter_v6: flag("IsFilterV6Gateway"),
            gateways: None,
            device_id: text("deviceID").map(str::to_owned),
            resource_name: None,
            devinfo_file: None,
            carried: false,
        });
    }
    Ok(DelegateList::new(container_id, "", None, delegates))
}

/// The records' directory in `cniDir`, beside the containers' delegate lists.
const RESULTS_DIR: &str = "results";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The age after which a temporary cache file is a killed writer's ([`CacheDir::sweep_leftovers`]):
/// runtimes give up on a CNI call after minutes, so no write in progress is this old.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(60 * 60);

/// Create `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// A new 0600 file at `path` (which must not exist), open for writing.
pub(crate) fn create_private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Write `bytes` over `file` from its start and cut it there (a spare inode holds its old
/// content until then).
pub(crate) fn fill(file: &mut fs::File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)
}

/// Run `write`, which creates a file beside `path`; when `path`'s directory is missing (never
/// made, or removed since), make it (0700) and run it once more. Cache directories are made
/// when a write finds them gone instead of being made sure of before every write.
fn with_dir<T>(path: &Path, write: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match write() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .ok_or_else(|| io::Error::other("path has no parent"))?;
            create_private_dir(dir)?;
            write()
        }
        outcome => outcome,
    }
}

/// A result as a record holds it: in the version it was made in.
fn result_value(result: &CniResult) -> Result<Value> {
    result
        .to_value(result.cni_version)
        .map_err(|e| Error::Serialize {
            what: "delegate result",
            message: e.to_string(),
        })
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Serialize {
        what: "cache record",
        message: e.to_string(),
    })
}

/// Write `bytes` to `path` atomically: a 0600 temporary file in the same directory, renamed over
/// `path`. Readers never see a partial file. Not fsynced: what the plugin writes describes
/// network namespaces that do not survive a reboot (docs/decisions.md, "Cache writes without
/// fsync"); an fsync cost ~15 ms per ADD on a busy disk, most of the plugin's own overhead.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    with_dir(path, || write_atomic_with(path, bytes, None))
}

/// A temporary name beside `path`, unique in this process and among processes.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Whether `name` is one [`temp_path`] makes: `.<name>.tmp.<pid>.<n>`.
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let mut tail = rest.rsplitn(3, '.');
    let numbers = [tail.next(), tail.next()]
        .iter()
        .all(|n| n.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
    numbers
        && tail
            .next()
            .is_some_and(|head| head.ends_with(".tmp") && head.len() > 4)
}

/// [`write_atomic`] into an existing directory, taking the temporary file from `spares` and
/// keeping a replaced file's inode there when given.
fn write_atomic_with(path: &Path, bytes: &[u8], spares: Option<&Spares>) -> io::Result<()> {
    let tmp = temp_path(path);
    let outcome = (|| match spares {
        Some(spares) => {
            fill(&mut spares.open_temp(&tmp)?, bytes)?;
            spares.replace(&tmp, path)
        }
        None => {
            create_private_file(&tmp)?.write_all(bytes)?;
            fs::rename(&tmp, path)
        }
    })();
    if outcome.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    outcome
}

impl CacheDir {
    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let bytes = to_json(value)?;
        with_dir(path, || write_atomic_with(path, &bytes, Some(&self.spares))).map_err(|source| {
            Error::WriteCache {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// Remove a cache file (its inode kept as a spare); a missing file is not an error.
    fn remove_file(&self, path: &Path) -> Result<()> {
        self.spares
            .remove(path)
            .map_err(|source| Error::WriteCache {
                path: path.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn delegate(index: usize, name: &str, ifname: &str) -> Delegate {
        Delegate::example(index, name, ifname)
    }

    #[test]
    fn writes_private_files_atomically_and_reads_them_back() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path().join("multus"));
        let list = DelegateList::new(
            "c1",
            "/n",
            None,
            vec![delegate(0, "a", "eth0"), delegate(1, "b", "net1")],
        );
        cache.write_list(&list).unwrap();
        let path = cache.list_path("c1").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(cache.root()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        match cache.read_list("c1", "eth0", "").unwrap() {
            CachedList::Found(back) => assert_eq!(back, list),
            other => panic!("{other:?}"),
        }
        for d in &list.delegates {
            cache.write_result(d, "c1", "/n", None).unwrap();
        }
        let found = cache.delegates_from_results("c1");
        assert_eq!(
            found.iter().map(|d| d.index).collect::<Vec<_>>(),
            vec![1, 0]
        );
        assert!(
            fs::read_dir(cache.root())
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().contains(".tmp."))
        );
    }

    #[test]
    fn a_daemons_calls_share_one_view_that_survives_removed_dirs_and_sees_others_spares() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("multus");
        let dirs = CacheDirs::default();
        let d = delegate(0, "a", "eth0");
        let first = dirs.get(&root);
        first.write_result(&d, "c1", "/n", None).unwrap();
        let second = dirs.get(&root);
        assert!(Arc::ptr_eq(&first, &second), "one view per root");

        // The directories were made by an earlier call; removed since, they are made again.
        fs::remove_dir_all(&root).unwrap();
        second.write_result(&d, "c1", "/n", None).unwrap();
        second
            .write_list(&DelegateList::new("c1", "/n", None, vec![d.clone()]))
            .unwrap();
        assert!(second.read_result(&d, "c1").unwrap().is_some());

        // The shared view has no spare; another process (a thin plugin) then leaves one: the
        // next call looks again and reuses its inode instead of creating a file.
        let thin = CacheDir::new(&root);
        thin.remove_result(&d, "c1").unwrap();
        let spare = fs::read_dir(root.join(".spare"))
            .unwrap()
            .flatten()
            .next()
            .unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&spare.metadata().unwrap());
        let third = dirs.get(&root);
        third.write_result(&d, "c2", "/n", None).unwrap();
        let written =
            fs::metadata(third.result_path(d.network_name(), "c2", "eth0").unwrap()).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&written), inode);
    }

    #[test]
    fn a_record_made_ready_is_the_same_record_and_one_never_written_leaves_only_a_spare() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        let d = delegate(0, "a", "eth0");
        let result = CniResult::parse(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24"}]}"#,
            None,
        )
        .unwrap();
        cache.write_result(&d, "one", "/n", Some(&result)).unwrap();
        let ready = cache.ready_result(&d, "two", "/n").unwrap();
        assert!(
            cache.read_result(&d, "two").unwrap().is_none(),
            "nothing in place before its result"
        );
        ready.write(&result).unwrap();
        let (one, two) = (
            cache.read_result(&d, "one").unwrap().unwrap(),
            cache.read_result(&d, "two").unwrap().unwrap(),
        );
        assert_eq!(
            cache.read_cached_result(&d, "two").unwrap(),
            Some(result.clone())
        );
        assert_eq!(
            (two.config, two.result, two.delegate),
            (one.config, one.result, one.delegate)
        );

        // An ADD that fails drops the record unwritten: no temporary file is left, its inode
        // goes to `.spare`, and nothing is in place.
        let results = tmp.path().join("results");
        let entries = |dir: &Path| fs::read_dir(dir).map_or(0, |d| d.count());
        let spares_before = entries(&tmp.path().join(".spare"));
        drop(cache.ready_result(&d, "three", "/n").unwrap());
        assert_eq!(entries(&results), 2, "only the two records");
        assert_eq!(entries(&tmp.path().join(".spare")), spares_before + 1);
        assert!(cache.read_result(&d, "three").unwrap().is_none());
    }

    #[test]
    fn corrupt_and_missing_lists_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        assert!(matches!(
            cache.read_list("c1", "eth0", "").unwrap(),
            CachedList::Missing
        ));
        fs::write(tmp.path().join("c1"), b"{\"kind\":").unwrap();
        assert!(matches!(
            cache.read_list("c1", "eth0", "").unwrap(),
            CachedList::Corrupt(_)
        ));
    }

    #[test]
    fn files_holding_another_containers_state_are_not_acted_on() {
        // What a recycled inode read at the wrong moment, or a crash after a rewrite, can show.
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        let d = delegate(0, "a", "eth0");
        cache
            .write_list(&DelegateList::new("c2", "/n", None, vec![d.clone()]))
            .unwrap();
        cache.write_result(&d, "c2", "/n", None).unwrap();
        fs::rename(
            cache.list_path("c2").unwrap(),
            cache.list_path("c1").unwrap(),
        )
        .unwrap();
        fs::rename(
            cache.result_path("a", "c2", "eth0").unwrap(),
            cache.result_path("a", "c1", "eth0").unwrap(),
        )
        .unwrap();
        match cache.read_list("c1", "eth0", "").unwrap() {
            CachedList::Corrupt(why) => assert!(why.contains("c2"), "{why}"),
            other => panic!("{other:?}"),
        }
        let err = cache.read_result(&d, "c1").unwrap_err().to_string();
        assert!(err.contains("c2"), "{err}");
        // DEL's and CHECK's read, which skips the rest of the record, refuses it the same way.
        let err = cache.read_cached_result(&d, "c1").unwrap_err().to_string();
        assert!(err.contains("c2"), "{err}");
        assert!(cache.delegates_from_results("c1").is_empty());
    }

    #[test]
    fn names_cannot_escape_the_cache_dir() {
        let cache = CacheDir::new("/var/lib/cni/multus");
        for (net, cid, ifname) in [
            ("../x", "c", "eth0"),
            ("n", "../../etc", "eth0"),
            ("n", "c", "a/b"),
            ("n", ".hidden", "e"),
        ] {
            assert!(
                cache.result_path(net, cid, ifname).is_err(),
                "{net} {cid} {ifname}"
            );
        }
        assert!(cache.list_path("..").is_err());
        assert!(cache.list_path("a/b").is_err());
    }

    /// A container ID may be `results` (a CNI name), which is the records' directory: no list
    /// is written under it, and reading or removing its list touches nothing — a DEL used to
    /// move every pod's records into `.spare`, an ADD to swap the directory for a file.
    #[test]
    fn the_records_directory_is_never_taken_for_a_containers_list() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        let d = delegate(0, "net", "eth0");
        let result = CniResult::new(CniVersion::V1_0_0);
        cache
            .write_result(&d, "c1", "/var/run/netns/p", Some(&result))
            .unwrap();
        let e = cache
            .write_list(&DelegateList::new("results", "", None, vec![d.clone()]))
            .unwrap_err();
        assert!(e.to_string().contains("records' directory"), "{e}");
        assert!(matches!(
            cache.read_list("results", "eth0", ""),
            Ok(CachedList::Missing)
        ));
        cache.remove_list("results").unwrap();
        assert!(tmp.path().join("results").is_dir());
        assert!(cache.read_result(&d, "c1").unwrap().is_some());
    }

    #[test]
    fn reads_go_multus_delegate_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let go = serde_json::json!([
            {"Conf":{},"Name":"cbr0","Bytes": b64(r#"{"cniVersion":"0.3.1","name":"cbr0","type":"bridge"}"#)},
            {"Name":"ns/mv","ifnameRequest":"","macRequest":"02:00:00:00:00:01","Bytes": b64(r#"{"name":"mv","type":"macvlan"}"#)},
        ]);
        fs::write(tmp.path().join("c9"), go.to_string()).unwrap();
        let CachedList::Found(list) = cache.read_list("c9", "eth0", "K8S_POD_NAME=p").unwrap()
        else {
            panic!("not read")
        };
        assert_eq!(list.delegates[0].ifname, "eth0");
        assert_eq!(list.delegates[1].ifname, "net1");
        assert_eq!(
            list.delegates[1].cni_args,
            "K8S_POD_NAME=p;MAC=02:00:00:00:00:01"
        );
        assert_eq!(list.delegates[1].network_name(), "mv");
    }

    #[test]
    fn temporary_files_of_unfinished_writes_are_removed_once_old() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        let d = delegate(0, "net", "eth0");
        cache
            .write_result(
                &d,
                "c1",
                "/var/run/netns/p",
                Some(&CniResult::new(CniVersion::V1_0_0)),
            )
            .unwrap();
        cache
            .write_list(&DelegateList::new("c1", "", None, vec![d]))
            .unwrap();
        // What a plugin killed between writing and renaming leaves, next to names that only
        // look alike.
        let results = tmp.path().join("results");
        let leftovers = [
            tmp.path().join(".c2.tmp.4242.0"),
            results.join(".net-c2-eth0.tmp.4242.1"),
        ];
        let kept = [
            tmp.path().join("c3.tmp.4242.0"),
            tmp.path().join(".c3.tmp.x.0"),
            tmp.path().join(".tmp.4242.0"),
            results.join(".net-c3-eth0.tmp.4242"),
        ];
        for p in leftovers.iter().chain(&kept) {
            fs::write(p, b"half").unwrap();
        }
        let names = |dir: &Path| {
            let mut v: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let before = (names(tmp.path()), names(&results));

        // What `temp_path` makes is what the sweep takes.
        let made = temp_path(&results.join("net-c1-eth0"));
        assert!(is_temp_name(&made.file_name().unwrap().to_string_lossy()));

        // A write in progress is younger than the age: nothing is touched.
        assert_eq!(cache.sweep_leftovers(Duration::from_secs(3600)), 0);
        assert_eq!((names(tmp.path()), names(&results)), before);

        assert_eq!(cache.sweep_leftovers(Duration::ZERO), 2);
        for p in &leftovers {
            assert!(!p.exists(), "{}", p.display());
        }
        for p in &kept {
            assert!(p.exists(), "{}", p.display());
        }
        // The records stay readable; the leftovers are gone, not kept as spares.
        assert!(matches!(
            cache.read_list("c1", "eth0", ""),
            Ok(CachedList::Found(_))
        ));
        assert_eq!(cache.all_results().len(), 1);
        assert!(!tmp.path().join(".spare").exists());

        // A record made ready whose plugin outlasts the age: its open file is taken, and the
        // record is still written, readable, in place.
        let long = delegate(1, "slow", "net1");
        let ready = cache.ready_result(&long, "c1", "/var/run/netns/p").unwrap();
        assert_eq!(cache.sweep_leftovers(Duration::ZERO), 1);
        ready.write(&CniResult::new(CniVersion::V1_0_0)).unwrap();
        assert!(cache.read_cached_result(&long, "c1").unwrap().is_some());
        assert!(
            names(&results).iter().all(|n| !is_temp_name(n)),
            "{:?}",
            names(&results)
        );
    }
}
