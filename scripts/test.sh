#!/usr/bin/env bash
# Runs every multus-rs test on a fresh machine: installs what the tests need (Debian packages and
# the pinned Rust components), then formatting, lints, and the whole workspace's tests.
#
# The end-to-end tests need root: they create network namespaces and run Debian's CNI plugins.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, with a file each one provides so we only touch apt when missing.
#   containernetworking-plugins: real bridge/macvlan/host-device/host-local/static/tuning plugins
#   kubernetes-client:           kubectl, run against the fake API server
#   iproute2:                    `ip netns`, `ip link` for namespaces that stand in for pods
#   gcc, libc6-dev:              the C toolchain and glibc's static archives: the `multus`
#                                binary is linked statically (cni/build.rs)
declare -A needs=(
  [gcc]=/usr/bin/gcc
  [libc6-dev]=/usr/include/stdio.h
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [kubernetes-client]=/usr/bin/kubectl
  [iproute2]=/usr/sbin/ip
)
missing=()
for pkg in "${!needs[@]}"; do
  [ -e "${needs[$pkg]}" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: need root to install ${missing[*]} (and to run the network-namespace tests)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# rust-toolchain.toml pins the toolchain and asks for rustfmt and clippy; make sure they are there.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# One build, run once: incremental state would only add gigabytes to the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "test.sh: cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path cni/shim/Cargo.toml --check
echo "test.sh: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --manifest-path cni/shim/Cargo.toml --all-targets --locked -- -D warnings
# multus-shim is a workspace of its own (no std, no libc, panic = "abort"): its unit tests here;
# the end-to-end tests build the release binary they run (tests/src/harness/process.rs).
echo "test.sh: multus-shim"
cargo test --manifest-path cni/shim/Cargo.toml --locked
echo "test.sh: cargo test"
cargo test --workspace --locked --no-fail-fast
