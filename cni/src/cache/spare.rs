//! The inodes of removed cache files, kept in `<cniDir>/.spare` for the next write.
//!
//! Every ADD writes a delegate list and a record per attachment, each to a new temporary file
//! renamed into place, and every DEL removes them. Creating a file is the expensive part: on ext4
//! the inode allocator skips inodes freed in the last minutes, and a node that starts and stops
//! pods has freed many, so one `open(O_CREAT)` cost 180–220 µs on the project's machine against
//! 26 µs for a rename (docs/benchmarks.md). So a removed file is moved here instead of unlinked,
//! a write takes a spare inode before it creates one, and a record replaced by a newer one is
//! swapped out (`RENAME_EXCHANGE`) rather than freed. Atomicity is unchanged: content is still
//! written under a temporary name and renamed over the target.
//!
//! A spare is reused only if it is still a regular file of mode 0600 with one link, opened
//! without following symlinks; it is overwritten and cut to the new length. Unlike a freed
//! inode, a recycled one can change under a reader that opened it before it was recycled, and
//! after a kernel crash a rewritten file can show its previous content: so every reader of the
//! cache checks that what it read names the container (and attachment) it asked for, and treats
//! anything else as corrupt (cache.rs). Claiming is a rename, so two processes never share a
//! spare. At most [`CAP`] are kept; beyond that a removed file is unlinked.
//!
//! The directory is read on first use, then kept up to date with what this process itself
//! claims and adds: an ADD reads it once instead of once per file, and a daemon (whose calls
//! share one [`Spares`] per cache root: `CacheDirs`) reads it again only when a call's claim
//! finds its view empty ([`Spares::new_call`]).
//! What other processes do meanwhile is seen late: a name they took fails to claim and is
//! skipped, and the count can be off by their changes, so [`CAP`] is approximate.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{CWD, OFlags, RenameFlags, renameat_with};

/// The most spare inodes kept: enough for the files of a few dozen pods deleted together.
pub const CAP: usize = 128;

static SPARE_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    /// The directory as this process knows it; read on first use.
    seen: Mutex<Option<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Spares not tried yet (as far as this process knows, the directory's files); the last
    /// one added is taken first.
    names: Vec<OsString>,
    /// Read since the last [`Spares::new_call`]: a claim that finds no name reads the
    /// directory again only when not (other processes may have put spares there since).
    current: bool,
}

impl Spares {
    pub fn new(cache_root: &Path) -> Self {
        Self {
            dir: cache_root.join(".spare"),
            seen: Mutex::new(None),
        }
    }

    /// A new call starts: a claim that finds this view empty will read the directory again,
    /// where other processes (the thin plugin, a GC) may have put spares meanwhile. Only then:
    /// a daemon in steady state takes what its own DELs put there, and a DEL (which only adds)
    /// never reads it.
    pub fn new_call(&self) {
        let mut guard = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(seen) = guard.as_mut() {
            seen.current = false;
        }
    }

    /// The names in the directory now.
    fn read_names(&self) -> Vec<OsString> {
        fs::read_dir(&self.dir)
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    }

    /// Work on what this process knows of the directory, reading it the first time.
    fn with_seen<R>(&self, work: impl FnOnce(&mut Seen) -> R) -> R {
        let mut guard = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen = guard.get_or_insert_with(|| Seen {
            names: self.read_names(),
            current: true,
        });
        work(seen)
    }

    /// Open a file at `tmp` (which must not exist) for writing: a spare inode when one is free
    /// (with its old content until cut), otherwise a new 0600 file. Cut it to what is written.
    pub fn open_temp(&self, tmp: &Path) -> io::Result<File> {
        match self.claim(tmp) {
            Some(file) => Ok(file),
            None => crate::cache::create_private_file(tmp),
        }
    }

    /// Put the content written at `tmp` in place at `path`. When `path` already exists the two
    /// are exchanged and its old inode is kept as a spare instead of being freed.
    ///
    /// A new file is the usual case (an ADD's list and records; DEL moved the old ones here), so
    /// the rename that refuses to replace is tried first: one system call for it.
    pub fn replace(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        match renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::EXIST => {}
            // A filesystem without renameat2's flags: a plain rename is still atomic.
            Err(_) => return fs::rename(tmp, path),
        }
        match renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE) {
            Ok(()) => {
                // The new content is in place; failing to keep the old inode loses nothing.
                let _ = self.remove(tmp);
                Ok(())
            }
            // Removed meanwhile (ENOENT), or a filesystem that cannot exchange.
            Err(_) => fs::rename(tmp, path),
        }
    }

    /// Remove `path`, keeping its inode as a spare while there is room. A missing file is not
    /// an error.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        if self.has_room() {
            let spare = self.dir.join(format!(
                "{}.{}",
                std::process::id(),
                SPARE_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let mut moved = fs::rename(path, &spare);
            // ENOENT is either the file (already gone) or `.spare` (not made yet): make it once.
            if matches!(&moved, Err(e) if e.kind() == io::ErrorKind::NotFound)
                && fs::symlink_metadata(path).is_ok()
                && crate::cache::create_private_dir(&self.dir).is_ok()
            {
                moved = fs::rename(path, &spare);
            }
            match moved {
                Ok(()) => {
                    if let Some(name) = spare.file_name() {
                        self.with_seen(|seen| seen.names.push(name.to_owned()));
                    }
                    return Ok(());
                }
                Err(e) if absent(&e) => return Ok(()),
                Err(_) => {}
            }
        }
        match fs::remove_file(path) {
            Err(e) if !absent(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Move a spare to `tmp` and open it emptied, or `None` when there is none usable.
    fn claim(&self, tmp: &Path) -> Option<File> {
        loop {
            let name = self.with_seen(|seen| {
                seen.names.pop().or_else(|| {
                    if seen.current {
                        return None;
                    }
                    seen.names = self.read_names();
                    seen.current = true;
                    seen.names.pop()
                })
            })?;
            // Another process may have taken it first: then the rename fails and we go on. Unless
            // `tmp`'s directory is missing: every rename would fail, so the name goes back and
            // the caller makes the directory (`with_dir`).
            if let Err(e) = fs::rename(self.dir.join(&name), tmp) {
                if e.kind() == io::ErrorKind::NotFound
                    && tmp.parent().is_some_and(|dir| !dir.is_dir())
                {
                    self.with_seen(|seen| seen.names.push(name));
                    return None;
                }
                continue;
            }
            match open_spare(tmp) {
                Some(file) => return Some(file),
                None => {
                    let _ = fs::remove_file(tmp);
                }
            }
        }
    }

    fn has_room(&self) -> bool {
        self.with_seen(|seen| seen.names.len() < CAP)
    }
}

/// Open a claimed spare for writing if it is a plain file of ours: not a symlink (refused by
/// `O_NOFOLLOW`), a regular file, one link, so the write cannot reach any other file.
fn open_spare(tmp: &Path) -> Option<File> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(tmp)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.nlink() != 1 || meta.mode() & 0o777 != 0o600 {
        return None;
    }
    Some(file)
}

/// The error of a file that is not there: missing, or under a path that is not a directory
/// (no file can be).
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(spares: &Spares, path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        crate::cache::fill(&mut spares.open_temp(&tmp).unwrap(), text.as_bytes()).unwrap();
        spares.replace(&tmp, path).unwrap();
    }

    fn spare_count(spares: &Spares) -> usize {
        fs::read_dir(&spares.dir).map_or(0, |d| d.count())
    }

    #[test]
    fn removed_files_are_reused_and_replaced_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::new(dir.path());
        let a = dir.path().join("a");
        write(&spares, &a, "first, longer content");
        assert_eq!(spare_count(&spares), 0);
        let ino = fs::metadata(&a).unwrap().ino();

        // Replacing keeps the old inode as a spare; the next new file takes it, cut to length.
        write(&spares, &a, "second");
        assert_eq!(fs::read_to_string(&a).unwrap(), "second");
        assert_eq!(spare_count(&spares), 1);
        let b = dir.path().join("b");
        write(&spares, &b, "b");
        assert_eq!(fs::read_to_string(&b).unwrap(), "b");
        assert_eq!(fs::metadata(&b).unwrap().ino(), ino);
        assert_eq!(spare_count(&spares), 0);

        // Removal keeps the inode; removing a missing file is not an error.
        spares.remove(&a).unwrap();
        assert!(!a.exists());
        assert_eq!(spare_count(&spares), 1);
        spares.remove(&a).unwrap();
        let mode = fs::metadata(&b).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn spares_that_are_not_plain_private_files_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::new(dir.path());
        fs::create_dir(&spares.dir).unwrap();
        // A symlink to a file outside, a hard-linked file and a world-readable file.
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, spares.dir.join("link")).unwrap();
        fs::hard_link(&victim, spares.dir.join("hard")).unwrap();
        fs::write(spares.dir.join("open"), "x").unwrap();
        fs::set_permissions(spares.dir.join("open"), fs::Permissions::from_mode(0o644)).unwrap();

        let c = dir.path().join("c");
        write(&spares, &c, "new");
        assert_eq!(fs::read_to_string(&c).unwrap(), "new");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(
            fs::metadata(&c).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(spare_count(&spares), 0, "unusable spares are dropped");
    }

    #[test]
    fn a_spare_another_call_took_meanwhile_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        fs::write(&first, "1").unwrap();
        fs::write(&second, "2").unwrap();
        let ours = Spares::new(dir.path());
        ours.remove(&first).unwrap();
        // Another call (another process) reads the directory and takes the spare first.
        let theirs = Spares::new(dir.path());
        theirs.remove(&second).unwrap();
        assert_eq!(spare_count(&theirs), 2);
        write(&theirs, &dir.path().join("t1"), "t1");
        write(&theirs, &dir.path().join("t2"), "t2");
        assert_eq!(spare_count(&theirs), 0);
        // Ours still lists its own spare: the claim fails, is skipped, and a new file is made.
        let o = dir.path().join("o");
        write(&ours, &o, "ours");
        assert_eq!(fs::read_to_string(&o).unwrap(), "ours");
        assert_eq!(
            fs::metadata(&o).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn at_most_cap_spares_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::new(dir.path());
        for i in 0..CAP + 5 {
            let p = dir.path().join(format!("f{i}"));
            fs::write(&p, "x").unwrap();
            spares.remove(&p).unwrap();
            assert!(!p.exists());
        }
        assert_eq!(spare_count(&spares), CAP);
    }
}
