//! Link the `multus` binary statically and at a fixed address in glibc builds, as the image's
//! musl build already is (docs/decisions.md, "A static `multus` binary, also in glibc builds").
//! The runtime starts it for every CNI call, on the host: it must not depend on the host's
//! glibc, and its start-up is most of the plugin's own cost. A static, non-PIE binary
//! has no dynamic loading and no relocations to apply and starts in about half the time.
//!
//! rustc does this itself with `-C target-feature=+crt-static`, but cargo cannot give that flag
//! to one binary (and given to every crate it breaks proc-macros). So the link is made static
//! with link arguments for this binary only, and the libraries rustc names for a dynamic link
//! (`-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc`, after `-Bdynamic`) are answered, from a
//! directory searched before the system's, by linker scripts that name their static archives:
//! the same inputs crt-static links.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let dir = out.join("static-libs");
    let scripts = [
        ("gcc_s", "-l:libgcc_eh.a -l:libgcc.a"),
        ("util", "-l:libutil.a"),
        ("rt", "-l:librt.a"),
        ("pthread", "-l:libpthread.a"),
        ("m", "-l:libm.a"),
        ("dl", "-l:libdl.a"),
        ("c", "-l:libc.a -l:libgcc_eh.a -l:libgcc.a"),
    ];
    let written = std::fs::create_dir_all(&dir).is_ok()
        && scripts.iter().all(|(lib, archives)| {
            std::fs::write(
                dir.join(format!("lib{lib}.so")),
                format!("INPUT({archives})\n"),
            )
            .is_ok()
        });
    if !written {
        println!("cargo:warning=could not write the static unwinder script: multus stays dynamic");
        return;
    }
    println!("cargo:rustc-link-arg-bin=multus=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bin=multus=-static");
    println!("cargo:rustc-link-arg-bin=multus=-no-pie");
}
