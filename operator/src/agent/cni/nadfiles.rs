//! NetworkAttachmentDefinitions rendered into the Multus `confDir`, one file per NAD, so the node
//! can resolve its networks without the API server.
//!
//! A NAD `ns/name` becomes `<confDir>/ns_name.nad.conflist` holding its delegate configuration in
//! list form (the config with the NAD's name injected when it has none — exactly what the plugin
//! runs). `_` cannot appear in a namespace or NAD name, so the file name is unambiguous, and the
//! `.nad.conflist` suffix marks the files the agent owns: every other file in the directory is
//! left alone. NADs without a config (they name a file in `confDir` themselves) are not rendered;
//! NADs that fail [`validate_nad`] are not rendered either (logged and counted), and a file
//! rendered before they turned invalid is removed.
//!
//! [`NadFiles`] is the one writer: it remembers a digest of every file it owns, so an unchanged
//! NAD costs no write, and [`NadFiles::converge`] brings the directory to exactly a given set of
//! NADs — after a restart, that removes the files of NADs deleted while the agent was down.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use multus_crds::NetworkAttachmentDefinition;
use multus_crds::cni::delegate::effective_delegate_config;
use multus_crds::rules::nad::validate_nad;

use super::error::CniAgentError;
use super::metrics::AgentMetrics;
use super::{batch, files};

/// Suffix of the files the agent owns in `confDir`.
pub const SUFFIX: &str = multus_cni::resolve::RENDERED_NAD_SUFFIX;
const KIND: &str = "nad";

/// The file name of NAD `namespace/name`: the one the plugin looks for when the API cannot
/// answer ([`multus_cni::resolve::rendered_nad_path`]).
pub fn file_name(namespace: &str, name: &str) -> String {
    let path = multus_cni::resolve::rendered_nad_path(std::path::Path::new(""), namespace, name);
    path.to_string_lossy().into_owned()
}

/// The NAD a file name of ours stands for; `None` for files the agent does not own.
pub fn parse_file_name(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(SUFFIX)?;
    let (namespace, name) = stem.split_once('_')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('_')).then_some((namespace, name))
}

/// What a NAD renders to.
#[derive(Debug, PartialEq, Eq)]
pub enum Rendered {
    /// The file's content.
    File(Vec<u8>),
    /// No `spec.config`: the NAD refers to a file in `confDir` by name; nothing to write.
    NoConfig,
    /// The NAD fails validation; the messages of its errors.
    Rejected(String),
}

/// Render one NAD (pure).
pub fn render(nad: &NetworkAttachmentDefinition) -> Rendered {
    let diagnostics = validate_nad(nad);
    if diagnostics.has_errors() {
        let message = diagnostics
            .errors()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Rendered::Rejected(message);
    }
    match effective_delegate_config(nad) {
        None => Rendered::NoConfig,
        Some(Err(e)) => Rendered::Rejected(e.message()),
        Some(Ok(list)) => {
            let mut body = serde_json::to_vec(&list.to_list_value()).unwrap_or_default();
            body.push(b'\n');
            Rendered::File(body)
        }
    }
}

fn digest(body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// What one change did to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
    Removed,
    Absent,
}

/// Counts of one [`NadFiles::converge`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Converged {
    pub written: usize,
    pub removed: usize,
    pub rejected: usize,
}

/// The writer of rendered NAD files.
pub struct NadFiles {
    dir: PathBuf,
    /// File name → digest of the content on disk, for every file of ours.
    owned: HashMap<String, u64>,
    /// The last fsync of the directory failed.
    unsynced: bool,
    /// File name → why its NAD was not rendered, for every NAD invalid now: a NAD is logged and
    /// counted when it turns invalid or its problem changes, not at every pass over it.
    rejected: HashMap<String, String>,
    metrics: AgentMetrics,
}

impl NadFiles {
    /// Take over `dir`: remember the files of ours already there (their digests) and remove the
    /// temporaries a killed agent left. The directory is created (0700) if missing.
    pub fn open(dir: impl Into<PathBuf>, metrics: AgentMetrics) -> Result<Self, CniAgentError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        files::sweep_temporaries(&dir, |base| parse_file_name(base).is_some());
        let entries = std::fs::read_dir(&dir).map_err(|source| CniAgentError::ListDir {
            path: dir.clone(),
            source,
        })?;
        let mut owned = HashMap::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if parse_file_name(&name).is_none() {
                continue;
            }
            // Unreadable: digest 0 forces a rewrite.
            let d = std::fs::read(entry.path()).map(|b| digest(&b)).unwrap_or(0);
            owned.insert(name, d);
        }
        metrics.nad_files.set(owned.len() as i64);
        Ok(Self {
            dir,
            owned,
            unsynced: false,
            rejected: HashMap::new(),
            metrics,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many files of ours are on disk.
    pub fn len(&self) -> usize {
        self.owned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owned.is_empty()
    }

    /// Bring the file of one NAD up to date.
    pub fn apply(&mut self, nad: &NetworkAttachmentDefinition) -> Result<Outcome, CniAgentError> {
        let namespace = nad.metadata.namespace.as_deref().unwrap_or_default();
        let name = nad.metadata.name.as_deref().unwrap_or_default();
        let file = file_name(namespace, name);
        let outcome = match render(nad) {
            Rendered::File(body) => {
                self.valid_again(&file);
                self.write(file, &body)
            }
            Rendered::NoConfig => {
                self.valid_again(&file);
                self.remove(&file)
            }
            Rendered::Rejected(message) => {
                self.report_rejected(&file, &message);
                self.rejected.insert(file.clone(), message);
                self.metrics.nads_invalid.set(self.rejected.len() as i64);
                self.remove(&file)
            }
        };
        self.metrics.reconciled(KIND);
        outcome
    }

    /// Remove the file of a deleted NAD.
    pub fn delete(&mut self, namespace: &str, name: &str) -> Result<Outcome, CniAgentError> {
        let file = file_name(namespace, name);
        self.valid_again(&file);
        let outcome = self.remove(&file);
        self.metrics.reconciled(KIND);
        outcome
    }

    /// Log and count that the NAD of `file` is invalid, unless it already was for the same
    /// reason (a retry pass or a re-list over an unchanged NAD).
    fn report_rejected(&self, file: &str, message: &str) {
        if self.rejected.get(file).map(String::as_str) != Some(message) {
            let nad = parse_file_name(file).map(|(namespace, name)| format!("{namespace}/{name}"));
            tracing::warn!(nad = nad.as_deref().unwrap_or(file), file = %file, %message, "NetworkAttachmentDefinition not rendered: invalid");
            self.metrics.nads_rejected.inc();
        }
    }

    /// The NAD of `file` is valid now, or gone.
    fn valid_again(&mut self, file: &str) {
        if self.rejected.remove(file).is_some() {
            self.metrics.nads_invalid.set(self.rejected.len() as i64);
        }
    }

    /// Make the directory hold exactly the files of `nads`: write what differs, remove files of
    /// ours that no NAD of the set renders to, then fsync the directory once, so what it returns
    /// is on disk. NADs are rendered and written on the [`batch`] pool (each file still through
    /// the atomic writer). Errors on single files are counted and logged, and the pass goes on;
    /// the first one is returned at the end.
    pub fn converge<'a>(
        &mut self,
        nads: impl IntoIterator<Item = &'a NetworkAttachmentDefinition>,
    ) -> Result<Converged, CniAgentError> {
        // One entry per file (the last NAD of a name wins, as a sequence of applies would): two
        // workers must never write the same file, they would share its temporary.
        let mut by_file: HashMap<String, &NetworkAttachmentDefinition> = HashMap::new();
        for nad in nads {
            let namespace = nad.metadata.namespace.as_deref().unwrap_or_default();
            let name = nad.metadata.name.as_deref().unwrap_or_default();
            by_file.insert(file_name(namespace, name), nad);
        }
        let work: Vec<(String, &NetworkAttachmentDefinition)> = by_file.into_iter().collect();
        let (dir, owned) = (&self.dir, &self.owned);
        let steps = batch::map_parallel(&work, |(file, nad)| step(dir, owned, file, nad));

        let mut counts = Converged::default();
        let mut keep = HashSet::new();
        // The set is exactly the invalid NADs among `nads`: one no longer listed drops out.
        let mut rejected = HashMap::new();
        let mut first_error = None;
        for ((file, _), step) in work.iter().zip(steps) {
            match step {
                Step::Written(d) => {
                    self.owned.insert(file.clone(), d);
                    self.metrics.written(KIND);
                    counts.written += 1;
                    keep.insert(file.as_str());
                }
                Step::Unchanged => {
                    keep.insert(file.as_str());
                }
                // The old file, if any, stays: a failed write is retried, not turned into a
                // missing network.
                Step::Failed(e) => {
                    self.metrics.failed(&e);
                    first_error.get_or_insert(e);
                    keep.insert(file.as_str());
                }
                Step::NoConfig => {}
                Step::Rejected(message) => {
                    self.report_rejected(file, &message);
                    rejected.insert(file.clone(), message);
                    counts.rejected += 1;
                }
            }
        }
        self.metrics.nads_invalid.set(rejected.len() as i64);
        self.rejected = rejected;
        let stale: Vec<String> = self
            .owned
            .keys()
            .filter(|f| !keep.contains(f.as_str()))
            .cloned()
            .collect();
        for file in stale {
            match self.remove_unsynced(&file) {
                Ok(Outcome::Removed) => counts.removed += 1,
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.metrics.nad_files.set(self.owned.len() as i64);
        if (counts.written + counts.removed > 0 || self.unsynced)
            && let Err(e) = self.sync()
        {
            first_error.get_or_insert(e);
        }
        self.metrics.reconciled(KIND);
        match first_error {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    }

    /// Write one file and fsync the directory (apply: one change, durable when it returns).
    fn write(&mut self, file: String, body: &[u8]) -> Result<Outcome, CniAgentError> {
        let d = digest(body);
        if self.owned.get(&file) == Some(&d) {
            return Ok(Outcome::Unchanged);
        }
        let path = self.dir.join(&file);
        if let Err(e) = files::write_private(&path, body) {
            self.metrics.failed(&e);
            return Err(e);
        }
        self.owned.insert(file, d);
        self.metrics.written(KIND);
        self.metrics.nad_files.set(self.owned.len() as i64);
        self.sync()?;
        Ok(Outcome::Written)
    }

    fn remove(&mut self, file: &str) -> Result<Outcome, CniAgentError> {
        let outcome = self.remove_unsynced(file)?;
        if outcome == Outcome::Removed {
            self.sync()?;
        }
        Ok(outcome)
    }

    /// Remove a file of ours. It stays ours until it is gone: a removal that failed is tried
    /// again by the next pass over the NADs (the agent's retry), which finds it stale.
    fn remove_unsynced(&mut self, file: &str) -> Result<Outcome, CniAgentError> {
        if !self.owned.contains_key(file) {
            return Ok(Outcome::Absent);
        }
        match files::remove(&self.dir.join(file)) {
            Ok(_) => {
                self.owned.remove(file);
                self.metrics.nad_files.set(self.owned.len() as i64);
                self.metrics.removed(KIND);
                Ok(Outcome::Removed)
            }
            Err(e) => {
                self.metrics.failed(&e);
                Err(e)
            }
        }
    }

    /// fsync the directory. One that failed is owed: the next pass syncs even if it changes
    /// nothing, so it does not report the directory up to date before it is on disk.
    fn sync(&mut self) -> Result<(), CniAgentError> {
        let synced = batch::sync_dir(&self.dir).inspect_err(|e| self.metrics.failed(e));
        self.unsynced = synced.is_err();
        synced
    }
}

/// What [`NadFiles::converge`] did with one NAD, on a worker of the pool.
enum Step {
    Written(u64),
    Unchanged,
    Failed(CniAgentError),
    NoConfig,
    Rejected(String),
}

/// Render one NAD and write its file if it differs from what `owned` says is on disk.
fn step(
    dir: &Path,
    owned: &HashMap<String, u64>,
    file: &str,
    nad: &NetworkAttachmentDefinition,
) -> Step {
    match render(nad) {
        Rendered::File(body) => {
            let d = digest(&body);
            if owned.get(file) == Some(&d) {
                return Step::Unchanged;
            }
            match files::write_private(&dir.join(file), &body) {
                Ok(()) => Step::Written(d),
                Err(e) => Step::Failed(e),
            }
        }
        Rendered::NoConfig => Step::NoConfig,
        Rendered::Rejected(message) => Step::Rejected(message),
    }
}

/// Create `dir` and its parents with mode 0700 (an existing directory keeps its mode).
pub fn create_private_dir(dir: &Path) -> Result<(), CniAgentError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CniAgentError::WriteFile {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn nad(ns: &str, name: &str, config: Option<&str>) -> NetworkAttachmentDefinition {
        let mut n = NetworkAttachmentDefinition::new(name, Default::default());
        n.metadata.namespace = Some(ns.into());
        n.spec.config = config.map(str::to_owned);
        n
    }

    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","type":"bridge","bridge":"br0"}"#;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn file_names_round_trip_and_foreign_files_are_not_ours() {
        assert_eq!(
            file_name("team-a", "blue.net"),
            "team-a_blue.net.nad.conflist"
        );
        assert_eq!(
            parse_file_name("team-a_blue.net.nad.conflist"),
            Some(("team-a", "blue.net"))
        );
        assert_eq!(parse_file_name("10-flannel.conflist"), None);
        assert_eq!(parse_file_name("macvlan.conf"), None);
        assert_eq!(parse_file_name("_x.nad.conflist"), None);
        assert_eq!(parse_file_name("a_b_c.nad.conflist"), None);
    }

    #[test]
    fn renders_the_delegate_config_in_list_form_with_the_name_injected() {
        let Rendered::File(body) = render(&nad("ns", "blue", Some(BRIDGE))) else {
            panic!("not rendered")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["name"], "blue");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(v["plugins"][0]["bridge"], "br0");
        // The plugin reads it back as the very list it would run.
        let list = multus_crds::cni::NetworkConfigList::parse(std::str::from_utf8(&body).unwrap())
            .unwrap();
        assert_eq!(list.name(), "blue");
        assert_eq!(render(&nad("ns", "x", None)), Rendered::NoConfig);
        assert!(matches!(
            render(&nad("ns", "bad", Some(r#"{"cniVersion":"1.0.0"}"#))),
            Rendered::Rejected(_)
        ));
    }

    #[test]
    fn writes_changes_removes_and_leaves_foreign_files_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("10-static.conf"), BRIDGE).unwrap();
        let metrics = AgentMetrics::default();
        let mut files = NadFiles::open(&dir, metrics.clone()).unwrap();
        let a = nad("ns", "a", Some(BRIDGE));
        assert_eq!(files.apply(&a).unwrap(), Outcome::Written);
        assert_eq!(files.apply(&a).unwrap(), Outcome::Unchanged);
        let path = dir.join("ns_a.nad.conflist");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let changed = nad(
            "ns",
            "a",
            Some(r#"{"cniVersion":"1.0.0","type":"bridge","bridge":"br1"}"#),
        );
        assert_eq!(files.apply(&changed).unwrap(), Outcome::Written);
        assert!(std::fs::read_to_string(&path).unwrap().contains("br1"));
        // Turning invalid removes the file.
        let invalid = nad("ns", "a", Some("{not json"));
        assert_eq!(files.apply(&invalid).unwrap(), Outcome::Removed);
        assert_eq!(metrics.nads_rejected.get(), 1);
        assert_eq!(files.apply(&a).unwrap(), Outcome::Written);
        assert_eq!(files.delete("ns", "a").unwrap(), Outcome::Removed);
        assert_eq!(files.delete("ns", "a").unwrap(), Outcome::Absent);
        assert_eq!(listing(&dir), vec!["10-static.conf"]);
    }

    #[test]
    fn converges_after_a_restart_to_exactly_the_current_nads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("foreign_x.conflist"), BRIDGE).unwrap();
        let (a, b, c) = (
            nad("ns", "a", Some(BRIDGE)),
            nad("ns", "b", Some(BRIDGE)),
            nad("other", "c", Some(BRIDGE)),
        );
        {
            let mut files = NadFiles::open(&dir, AgentMetrics::default()).unwrap();
            let n = files.converge([&a, &b, &c]).unwrap();
            assert_eq!(n.written, 3);
        }
        // A killed writer's temporary, and a deleted NAD's file, from before the restart.
        std::fs::write(dir.join(".ns_z.nad.conflist.tmp-999"), "{").unwrap();
        let mut files = NadFiles::open(&dir, AgentMetrics::default()).unwrap();
        assert_eq!(files.len(), 3);
        let n = files.converge([&a, &c]).unwrap();
        assert_eq!(
            n,
            Converged {
                written: 0,
                removed: 1,
                rejected: 0
            }
        );
        assert_eq!(
            listing(&dir),
            vec![
                "foreign_x.conflist",
                "ns_a.nad.conflist",
                "other_c.nad.conflist"
            ]
        );
    }

    /// An invalid NAD is counted when it turns invalid and when its problem changes, not at each
    /// pass that finds it unchanged (the agent's retry passes, re-lists); `nads_invalid` is how
    /// many are invalid now.
    #[test]
    fn an_invalid_nad_is_counted_once_per_version_and_the_gauge_tracks_the_current_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = AgentMetrics::default();
        let mut files = NadFiles::open(tmp.path(), metrics.clone()).unwrap();
        let good = nad("ns", "a", Some(BRIDGE));
        let bad = nad("ns", "b", Some("{not json"));
        let worse = nad("ns", "b", Some(r#"{"cniVersion":"1.0.0","type":"../sh"}"#));
        let counts = |m: &AgentMetrics| (m.nads_rejected.get(), m.nads_invalid.get());

        for _ in 0..3 {
            assert_eq!(files.converge([&good, &bad]).unwrap().rejected, 1);
        }
        assert_eq!(counts(&metrics), (1, 1));
        files.apply(&bad).unwrap();
        assert_eq!(counts(&metrics), (1, 1));
        // Edited, and still invalid for another reason: counted again.
        files.apply(&worse).unwrap();
        files.converge([&good, &worse]).unwrap();
        assert_eq!(counts(&metrics), (2, 1));
        // Fixed, then broken again: a new rejection.
        files.apply(&nad("ns", "b", Some(BRIDGE))).unwrap();
        assert_eq!(counts(&metrics), (2, 0));
        files.apply(&worse).unwrap();
        assert_eq!(counts(&metrics), (3, 1));
        // Deleted: no longer invalid, whether by its delete event or by a re-list without it.
        files.delete("ns", "b").unwrap();
        assert_eq!(counts(&metrics), (3, 0));
        files.converge([&good, &worse]).unwrap();
        assert_eq!(counts(&metrics), (4, 1));
        files.converge([&good]).unwrap();
        assert_eq!(counts(&metrics), (4, 0));
        assert_eq!(listing(tmp.path()), vec!["ns_a.nad.conflist"]);
    }
}
