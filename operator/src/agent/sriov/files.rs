//! Atomic writes of the agent's own files: a temporary file in the same directory, fsync,
//! rename; files 0600, directories 0700 (the project's rule for every file written on a host).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::error::SriovError;

/// Write `body` to `path` atomically with mode 0600, creating missing parents with mode 0700.
pub fn write_private(path: &Path, body: &[u8]) -> Result<(), SriovError> {
    write_atomic(path, body, 0o600)
}

/// Write `body` to `path` atomically with `mode`, creating missing parents with mode 0700.
pub fn write_atomic(path: &Path, body: &[u8], mode: u32) -> Result<(), SriovError> {
    let fail = |source| SriovError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(body).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)
}
