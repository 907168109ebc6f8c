//! `logFile` with Multus' `logOptions` rotation (multus-spec §2.1; lumberjack's behaviour): when a
//! write would take the file past `maxSize` megabytes, the file is renamed to
//! `<name>-<UTC time>.<ext>` beside it and a new one is started; then backups beyond `maxBackups`
//! (newest kept) and older than `maxAge` days are removed. 0 turns a limit off.
//!
//! `compress` is not honoured: no DEFLATE implementation is in the dependency tree, and the
//! plugin does not spawn `gzip` on a CNI hot path; backups stay uncompressed (docs/cni.md).
//!
//! Several plugin processes may append to one file at once; each knows the size at its open plus
//! its own writes, so a file may pass `maxSize` by what the others wrote since. Rotation is a
//! rename, never a truncation, so no line is lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use multus_crds::multus_config::LogOptions;

/// When to rotate and what to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Rotate before the file would exceed this many bytes (0: never).
    pub max_bytes: u64,
    /// Backups kept (0: all).
    pub max_backups: usize,
    /// Backups older than this are removed (`None`: kept whatever their age).
    pub max_age: Option<Duration>,
}

impl Limits {
    /// Multus' `logOptions` (defaults: 100 MB, 5 backups, 5 days); negative values are 0.
    pub fn from_options(o: &LogOptions) -> Self {
        let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
        let days = non_negative(o.max_age());
        Self {
            max_bytes: non_negative(o.max_size()).saturating_mul(1024 * 1024),
            max_backups: usize::try_from(non_negative(o.max_backups())).unwrap_or(usize::MAX),
            max_age: (days > 0).then(|| Duration::from_secs(days.saturating_mul(86_400))),
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
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            limits,
            file,
            size,
        })
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
        fs::rename(&self.path, &backup)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.prune();
        Ok(())
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
                name.starts_with(&prefix) && name.ends_with(&ext) && e.path() != self.path
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

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
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

    #[test]
    fn rotates_by_size_and_keeps_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let limits = Limits {
            max_bytes: 100,
            max_backups: 2,
            max_age: None,
        };
        let mut f = RotatingFile::open(&path, limits).unwrap();
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
        // Other files in the directory are not backups of this one.
        fs::write(dir.path().join("other.log"), "keep").unwrap();
        assert_eq!(f.backups().len(), 2);
    }

    #[test]
    fn limits_follow_multus_defaults_and_zero_means_off() {
        let defaults = Limits::from_options(&LogOptions::default());
        assert_eq!(defaults.max_bytes, 100 * 1024 * 1024);
        assert_eq!(defaults.max_backups, 5);
        assert_eq!(defaults.max_age, Some(Duration::from_secs(5 * 86_400)));
        let off = Limits::from_options(&LogOptions {
            max_age: Some(0),
            max_size: Some(-1),
            max_backups: Some(0),
            ..LogOptions::default()
        });
        assert_eq!(
            off,
            Limits {
                max_bytes: 0,
                max_backups: 0,
                max_age: None
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path().join("l.log"), off).unwrap();
        for _ in 0..100 {
            f.write_all(b"0123456789").unwrap();
        }
        assert!(f.backups().is_empty());
    }
}
