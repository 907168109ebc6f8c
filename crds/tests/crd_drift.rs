//! The CRD files committed under `crds/` must be exactly what the Rust types generate.
//! Run with `MULTUS_REGENERATE_CRDS=1` to rewrite them after changing a type.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use multus_crds::crdgen;

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn regenerating() -> bool {
    std::env::var("MULTUS_REGENERATE_CRDS").is_ok_and(|v| v == "1")
}

#[test]
fn committed_crd_files_match_the_types() {
    let mut stale = Vec::new();
    for crd in crdgen::all() {
        let path = crds_dir().join(crdgen::file_name(&crd));
        let want = crdgen::file_text(&crd).unwrap();
        if regenerating() {
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(have) => {
                let line = have
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
                stale.push(format!(
                    "{} differs from the generated CRD from line {} on (committed: {:?}, generated: {:?})",
                    path.display(),
                    line + 1,
                    have.lines().nth(line).unwrap_or("<end of file>"),
                    want.lines().nth(line).unwrap_or("<end of file>"),
                ));
            }
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "CRD files are out of date with the Rust types:\n  {}\n\
         Regenerate them with: MULTUS_REGENERATE_CRDS=1 cargo test -p multus-crds --test crd_drift\n\
         and commit the result.",
        stale.join("\n  ")
    );
}

#[test]
fn no_stray_crd_files() {
    // A renamed kind would otherwise leave its old file behind, still installable.
    let expected: Vec<String> = crdgen::all().iter().map(crdgen::file_name).collect();
    for entry in std::fs::read_dir(crds_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let looks_like_crd = name.ends_with(".yaml") && name.contains('_');
        assert!(
            !looks_like_crd || expected.contains(&name),
            "crds/{name} looks like a generated CRD file but no type generates it; delete it"
        );
    }
}
