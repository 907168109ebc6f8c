//! The agent's writes under the host root, through the project's one atomic writer
//! ([`crate::agent::sriov::files`]: temporary file in the same directory, fsync, rename; 0600 files,
//! 0700 directories), and the sweep of temporaries a killed agent left behind.

use std::path::Path;

use super::error::CniAgentError;
use crate::agent::sriov::{SriovError, files};

fn convert(path: &Path, e: SriovError) -> CniAgentError {
    match e {
        SriovError::WriteFile { path, source } => CniAgentError::WriteFile { path, source },
        other => CniAgentError::WriteFile {
            path: path.to_owned(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// Write `body` to `path` atomically, mode 0600.
pub fn write_private(path: &Path, body: &[u8]) -> Result<(), CniAgentError> {
    files::write_private(path, body).map_err(|e| convert(path, e))
}

/// Write `body` to `path` atomically with `mode` (the plugin binary: 0755).
pub fn write_atomic(path: &Path, body: &[u8], mode: u32) -> Result<(), CniAgentError> {
    files::write_atomic(path, body, mode).map_err(|e| convert(path, e))
}

/// Whether `name` is a temporary of the atomic writer (`.<file>.tmp-<pid>`).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, pid)| pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Remove the temporaries `owned` says are ours (a SIGKILLed writer leaves them; they never
/// carry a CNI extension, so no reader ever sees one).
pub fn sweep_temporaries(dir: &Path, owned: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_temporary(name)
            && let Some(base) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-"))
            && owned(base.0)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Remove `path` if it exists.
pub fn remove(path: &Path) -> Result<bool, CniAgentError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CniAgentError::RemoveFile {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_writers_temporaries() {
        assert!(is_temporary(".a_b.nad.conflist.tmp-123"));
        assert!(!is_temporary("a_b.nad.conflist"));
        assert!(!is_temporary(".hidden"));
        assert!(!is_temporary(".x.tmp-abc"));
    }
}
