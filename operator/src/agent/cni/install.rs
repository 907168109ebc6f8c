//! Installing the `multus` binary into the host's CNI bin dir: written to a temporary name in the
//! same directory and renamed over the old one, so a binary the runtime is executing never blocks
//! the update ("text file busy", multus-spec §5 item 2) and the runtime never runs half a file.

use std::path::{Path, PathBuf};

use super::error::CniAgentError;
use super::files;

/// Copy `from` to `<bin_dir>/<name>` (0755) unless an identical file is already there. Returns
/// whether it wrote.
pub fn install_binary(from: &Path, bin_dir: &Path, name: &str) -> Result<bool, CniAgentError> {
    let to: PathBuf = bin_dir.join(name);
    let fail = |source| CniAgentError::InstallBinary {
        from: from.to_owned(),
        to: to.clone(),
        source,
    };
    let body = std::fs::read(from).map_err(fail)?;
    if std::fs::read(&to).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    files::sweep_temporaries(bin_dir, |base| base == name);
    files::write_atomic(&to, &body, 0o755).map_err(|e| match e {
        CniAgentError::WriteFile { source, .. } => fail(source),
        other => other,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_a_binary_the_runtime_is_executing_and_skips_identical_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("multus");
        std::fs::write(&src, b"new binary").unwrap();
        let bin = tmp.path().join("opt/cni/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let old = bin.join("multus");
        std::fs::copy("/bin/sleep", &old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The old binary is running: writing it in place would fail with ETXTBSY.
        let mut running = std::process::Command::new(&old).arg("30").spawn().unwrap();
        let in_place = std::fs::OpenOptions::new().write(true).open(&old);
        assert_eq!(
            in_place.unwrap_err().raw_os_error(),
            Some(26),
            "ETXTBSY expected"
        );
        assert!(install_binary(&src, &bin, "multus").unwrap());
        running.kill().unwrap();
        running.wait().unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"new binary");
        let mode = std::fs::metadata(&old).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        assert!(!install_binary(&src, &bin, "multus").unwrap());
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_source_names_both_paths_and_installs_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("opt/cni/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let missing = tmp.path().join("no-such-multus-shim");
        let e = install_binary(&missing, &bin, "multus-shim").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("no-such-multus-shim"), "{text}");
        assert!(text.contains("opt/cni/bin/multus-shim"), "{text}");
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 0);
    }
}
