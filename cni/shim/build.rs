//! `multus-shim` brings its own program entry (origin's `_start`), has no libc and no dynamic
//! loader: linked static and at a fixed address, without the C start files.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only the binary: the library's unit tests are ordinary programs with std.
    println!("cargo:rustc-link-arg-bins=-nostartfiles");
    println!("cargo:rustc-link-arg-bins=-static");
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
