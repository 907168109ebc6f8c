//! `logFile` with Multus' `logOptions` rotation (multus-spec §2.1; lumberjack's behaviour): when a
//! write would take the file past `maxSize` megabytes, the file is renamed to
//! `<name>-<UTC time>.<ext>` beside it and a new one is started; then backups beyond `maxBackups`
//! (newest kept) and older than `maxAge` days are removed. 0 turns a limit off.
//!
//! With `compress` (the default), backups are gzipped to `<backup>.gz` (flate2 with the
//! pure-Rust miniz_oxide backend) by a background thread started at rotation, so the CNI call that
//! rotates only pays for a rename and the compression overlaps the rest of the call. The `multus`
//! binary waits for it after printing its answer ([`wait_for_compression`]): a process exiting
//! mid-way would leave every backup uncompressed, so the one call in `maxSize` megabytes of log
//! that rotates pays for what remains. Each backup is written to a temporary file, fsynced and
//! renamed before the uncompressed one is removed: at every moment one complete copy exists. A
//! process killed mid-way abandons its temporary file; the next rotation compresses what is still
//! uncompressed (and removes temporaries abandoned long ago).
//!
//! Several plugin processes may append to one file at once; each knows the size at its open plus
//! its own writes, so a file may pass `maxSize` by what the others wrote since. Rotation is a
//! rename, never a truncation, and a process whose file another one rotated away opens the new
//! one before its next line (not after it, into a backup being compressed).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use multus_crds::multus_config::LogOptions;

/// A temporary file of an abandoned compression is removed after this long.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Compressions started by rotations of this process and not yet waited for.
static COMPRESSING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Wait for every compression this process started (the `multus` binary, before it exits).
pub fn wait_for_compression() {
    let pending = std::mem::take(&mut *COMPRESSING.lock().unwrap_or_else(PoisonError::into_inner));
    for t in pending {
        let _ = t.join();
    }
}

/// When to rotate and what to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Rotate before the file would exceed this many bytes (0: never).
    pub max_bytes: u64,
    /// Backups kept (0: all).
    pub max_backups: usize,
    /// Backups older than this are removed (`None`: kept whatever their age).
    pub max_age: Option<Duration>,
    /// Gzip backups (`<backup>.gz`).
    pub compress: bool,
}

impl Limits {
    /// Multus' `logOptions` (defaults: 100 MB, 5 backups, 5 days); negative values are 0, and
    /// `maxSize` 0 is lumberjack's default of 100 MB (there is no "never rotate").
    pub fn from_options(o: &LogOptions) -> Self {
        const DEFAULT_MAX_MEGABYTES: u64 = 100;
        let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
        let days = non_negative(o.max_age());
        let megabytes = match non_negative(o.max_size()) {
            0 => DEFAULT_MAX_MEGABYTES,
            n => n,
        };
        Self {
            max_bytes: megabytes.saturating_mul(1024 * 1024),
            max_backups: usize::try_from(non_negative(o.max_backups())).unwrap_or(usize::MAX),
            max_age: (days > 0).then(|| Duration::from_secs(days.saturating_mul(86_400))),
            compress: o.compress(),
        }
    }
}

/// An appending log file that rotates itself.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    limits: Limits,
    file: File,
    size: u64,
    /// Device and inode of `file`: told apart from what `path` names now with one `stat`.
    id: (u64, u64),
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl RotatingFile {
    pub fn open(path: impl Into<PathBuf>, limits: Limits) -> io::Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        let meta = file.metadata()?;
        Ok(Self {
            path,
            limits,
            file,
            size: meta.len(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Open the file at `path` again (a new one when it is gone), with `mode` when given: the
    /// mode of the file it replaces, as lumberjack keeps it, so an administrator who opened the
    /// log to a log shipper keeps it open across rotations.
    fn reopen(&mut self, mode: Option<fs::Permissions>) -> io::Result<()> {
        self.file = open_append(&self.path)?;
        if let Some(mode) = mode {
            let _ = self.file.set_permissions(mode);
        }
        let meta = self.file.metadata()?;
        self.size = meta.len();
        self.id = (meta.dev(), meta.ino());
        Ok(())
    }

    /// `(stem-, .ext)`: what the names of this file's backups start and end with.
    fn backup_affixes(&self) -> (String, String) {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = self
            .path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        (format!("{stem}-"), ext)
    }

    fn backup_path(&self) -> PathBuf {
        let (prefix, ext) = self.backup_affixes();
        let now = jiff::Timestamp::now();
        let name = format!(
            "{prefix}{}.{:03}{ext}",
            now.strftime("%Y-%m-%dT%H-%M-%S"),
            now.subsec_millisecond()
        );
        self.path.with_file_name(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let mut backup = self.backup_path();
        // Two rotations within one millisecond: never rename over an earlier backup.
        let mut n = 1;
        while backup.exists() {
            let (prefix, ext) = self.backup_affixes();
            let name = backup.file_name().map(|b| b.to_string_lossy().into_owned());
            let stamp = name
                .as_deref()
                .and_then(|b| b.strip_prefix(&prefix))
                .and_then(|b| b.strip_suffix(&ext))
                .unwrap_or_default()
                .to_owned();
            backup = self
                .path
                .with_file_name(format!("{prefix}{stamp}-{n}{ext}"));
            n += 1;
        }
        let mode = self.file.metadata().map(|m| m.permissions()).ok();
        fs::rename(&self.path, &backup)?;
        self.reopen(mode)?;
        self.prune();
        if self.limits.compress {
            self.start_compression();
        }
        Ok(())
    }

    /// Gzip every uncompressed backup on a background thread, unless an earlier rotation's
    /// thread is still at work (the next rotation picks up what it leaves).
    fn start_compression(&mut self) {
        let mut running = COMPRESSING.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|t| !t.is_finished());
        if !running.is_empty() {
            return;
        }
        let pending: Vec<PathBuf> = self
            .backups()
            .into_iter()
            .filter(|b| b.extension().is_none_or(|e| e != "gz"))
            .collect();
        let dir = self.path.parent().map(Path::to_owned);
        let (prefix, _) = self.backup_affixes();
        let started = std::thread::Builder::new()
            .name("log-compress".into())
            .spawn(move || {
                if let Some(dir) = dir {
                    remove_stale_temps(&dir, &format!(".{prefix}"));
                }
                for b in pending {
                    // A failure leaves the uncompressed backup; the next rotation tries again.
                    let _ = gzip_file(&b);
                }
            });
        // Without a thread the backups stay uncompressed until a later rotation.
        if let Ok(t) = started {
            running.push(t);
        }
    }

    /// The backups of this file, oldest first.
    pub fn backups(&self) -> Vec<PathBuf> {
        let (prefix, ext) = self.backup_affixes();
        let Some(dir) = self.path.parent() else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<(SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let plain = name.strip_suffix(".gz").unwrap_or(&name);
                plain
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(&ext))
                    .is_some_and(is_backup_stamp)
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// Remove backups beyond `max_backups` (oldest first) and older than `max_age`; failures
    /// are ignored (the next rotation tries again).
    fn prune(&self) {
        let backups = self.backups();
        let excess = match self.limits.max_backups {
            0 => 0,
            keep => backups.len().saturating_sub(keep),
        };
        let now = SystemTime::now();
        for (i, b) in backups.iter().enumerate() {
            let too_old = self.limits.max_age.is_some_and(|age| {
                fs::metadata(b)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|d| d > age)
            });
            if i < excess || too_old {
                let _ = fs::remove_file(b);
            }
        }
    }
}

/// Whether `stamp` is what [`RotatingFile::backup_path`] puts between a backup's prefix and
/// extension: `YYYY-MM-DDTHH-MM-SS.mmm`, with `-N` after it for a second backup within one
/// millisecond. Another file that only shares the prefix (`multus-daemon.log` beside
/// `multus.log`) is no backup: it is neither compressed nor pruned.
fn is_backup_stamp(stamp: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd-dd-dd.ddd";
    let bytes = stamp.as_bytes();
    let Some((time, rest)) = bytes.split_at_checked(SHAPE.len()) else {
        return false;
    };
    let time_ok = time.iter().zip(SHAPE).all(|(c, shape)| match shape {
        b'd' => c.is_ascii_digit(),
        other => c == other,
    });
    let rest_ok = match rest {
        [] => true,
        [b'-', n @ ..] => !n.is_empty() && n.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    time_ok && rest_ok
}

/// `<backup>.gz` from `backup` (keeping its modification time, which orders backups and ages
/// them), then `backup` removed. Written to a temporary file, fsynced and renamed first.
fn gzip_file(backup: &Path) -> io::Result<()> {
    let name = backup
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = backup.with_file_name(format!("{name}.gz"));
    let temp = backup.with_file_name(format!(".{name}.gz.{}.tmp", std::process::id()));
    let written = (|| {
        let mut input = File::open(backup)?;
        let modified = input.metadata()?.modified()?;
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        let mut gz = GzEncoder::new(out, Compression::fast());
        io::copy(&mut input, &mut gz)?;
        let out = gz.finish()?;
        out.set_modified(modified)?;
        out.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if written.is_err() {
        // Only a temporary file this call created is removed (create_new refused any other).
        if !matches!(&written, Err(e) if e.kind() == io::ErrorKind::AlreadyExists) {
            let _ = fs::remove_file(&temp);
        }
        return written;
    }
    fs::remove_file(backup)
}

/// Remove temporaries (`<prefix>...tmp`) of compressions abandoned long ago.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP);
        if name.starts_with(prefix) && name.ends_with(".tmp") && stale {
            let _ = fs::remove_file(e.path());
        }
    }
}

impl RotatingFile {
    /// Open the file at `path` again when it is not the one this process has open: another
    /// process rotated it away (or it was removed), and a line written to the old one would go
    /// into a backup, perhaps one being compressed.
    fn follow_rotation(&mut self) -> io::Result<()> {
        let same = fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if same {
            return Ok(());
        }
        let mode = self.file.metadata().map(|m| m.permissions()).ok();
        self.reopen(mode)
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.follow_rotation()?;
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.limits.max_bytes > 0
            && self.size > 0
            && self.size.saturating_add(len) > self.limits.max_bytes
        {
            self.rotate()?;
        }
        let written = self.file.write(buf)?;
        self.size += u64::try_from(written).unwrap_or(0);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rotate past 100 bytes, keep two backups.
    fn small(compress: bool) -> Limits {
        Limits {
            max_bytes: 100,
            max_backups: 2,
            max_age: None,
            compress,
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let mut f = RotatingFile::open(&path, small(false)).unwrap();
        let line = [b'x'; 39];
        for i in 0..12u8 {
            let mut l = line.to_vec();
            l[0] = b'a' + i;
            l.push(b'\n');
            f.write_all(&l).unwrap();
            // Backups are ordered by modification time, which may not tick between writes.
            std::thread::sleep(Duration::from_millis(15));
        }
        // 40-byte lines, 100-byte files: two lines per file, six files written, two backups kept.
        let current = fs::read_to_string(&path).unwrap();
        assert_eq!(current.len(), 80);
        assert!(current.starts_with('k'), "{current}");
        let backups = f.backups();
        assert_eq!(backups.len(), 2, "{backups:?}");
        let newest = fs::read_to_string(&backups[1]).unwrap();
        assert!(newest.starts_with('i'), "{newest}");
        for b in &backups {
            let name = b.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("multus-") && name.ends_with(".log"),
                "{name}"
            );
        }
        // Other files in the directory are not backups of this one, even one that shares the
        // prefix: another component's live log beside it.
        fs::write(dir.path().join("other.log"), "keep").unwrap();
        fs::write(dir.path().join("multus-daemon.log"), "live").unwrap();
        assert_eq!(f.backups().len(), 2);
        assert!(is_backup_stamp("2026-11-30T05-20-01.123"));
        assert!(is_backup_stamp("2026-11-30T05-20-01.123-2"));
        for not in [
            "daemon",
            "2026-11-30T05-20-01",
            "2026-11-30T05-20-01.123-",
            "2026-11-30T05-20-01.123x",
        ] {
            assert!(!is_backup_stamp(not), "{not}");
        }
    }

    /// Two processes append to one log; one rotates it. The other's next line goes to the new
    /// file, not into the backup (which a compression may be reading), and the new file keeps
    /// the old one's mode.
    #[test]
    fn a_file_rotated_by_another_process_is_followed_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let mut rotating = RotatingFile::open(&path, small(false)).unwrap();
        let mut other = RotatingFile::open(
            &path,
            Limits {
                max_bytes: 0,
                ..small(false)
            },
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        rotating.write_all(&[b'a'; 60]).unwrap();
        rotating.write_all(&[b'b'; 60]).unwrap(); // rotates: "a…" is the backup now
        other.write_all(b"from the other process\n").unwrap();
        let backups = rotating.backups();
        assert_eq!(backups.len(), 1);
        assert_eq!(fs::read(&backups[0]).unwrap(), [b'a'; 60]);
        let current = fs::read_to_string(&path).unwrap();
        assert!(current.ends_with("from the other process\n"), "{current}");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn limits_follow_multus_defaults_and_zero_means_off() {
        let defaults = Limits::from_options(&LogOptions::default());
        assert_eq!(defaults.max_bytes, 100 * 1024 * 1024);
        assert_eq!(defaults.max_backups, 5);
        assert_eq!(defaults.max_age, Some(Duration::from_secs(5 * 86_400)));
        assert!(defaults.compress);
        let off = Limits::from_options(&LogOptions {
            max_age: Some(0),
            max_size: Some(-1),
            max_backups: Some(0),
            compress: Some(false),
            ..LogOptions::default()
        });
        // maxSize 0 (or less) is lumberjack's default size: no log grows without bound.
        assert_eq!(
            off,
            Limits {
                max_bytes: 100 * 1024 * 1024,
                max_backups: 0,
                max_age: None,
                compress: false,
            }
        );
        let off = Limits {
            max_bytes: 0,
            ..off
        };
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path().join("l.log"), off).unwrap();
        for _ in 0..100 {
            f.write_all(b"0123456789").unwrap();
        }
        assert!(f.backups().is_empty());
    }

    #[test]
    fn compressed_backups_are_gzip_of_the_old_content() {
        use std::io::Read;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let mut f = RotatingFile::open(&path, small(true)).unwrap();
        let mut written = Vec::new();
        for i in 0..8u8 {
            let line = format!("{}{}\n", char::from(b'a' + i), "x".repeat(38));
            f.write_all(line.as_bytes()).unwrap();
            written.push(line);
            wait_for_compression();
            std::thread::sleep(Duration::from_millis(15));
        }
        wait_for_compression();
        // Four files of two lines: the current one and two gzipped backups (the oldest pruned).
        assert_eq!(fs::read_to_string(&path).unwrap(), written[6..].concat());
        let backups = f.backups();
        assert_eq!(backups.len(), 2, "{backups:?}");
        for (b, lines) in backups.iter().zip([&written[2..4], &written[4..6]]) {
            let name = b.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("multus-") && name.ends_with(".log.gz"),
                "{name}"
            );
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(b).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, lines.concat());
        }
        // Nothing else: no uncompressed copy, no temporary file.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn an_interrupted_compression_leaves_the_backup_and_is_redone() {
        use std::io::Read;

        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("multus-2026-01-01T00-00-00.000.log");
        fs::write(&backup, "old lines\n").unwrap();
        // The temporary file of an attempt that never finished is in the way: this attempt
        // fails without touching the backup or that file, and a later one succeeds.
        let temp = dir.path().join(format!(
            ".multus-2026-01-01T00-00-00.000.log.gz.{}.tmp",
            std::process::id()
        ));
        fs::write(&temp, "partial").unwrap();
        assert!(gzip_file(&backup).is_err());
        assert_eq!(fs::read_to_string(&backup).unwrap(), "old lines\n");
        assert!(temp.exists());
        fs::remove_file(&temp).unwrap();
        gzip_file(&backup).unwrap();
        assert!(!backup.exists());
        let gz = dir.path().join("multus-2026-01-01T00-00-00.000.log.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(gz).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "old lines\n");
    }
}
