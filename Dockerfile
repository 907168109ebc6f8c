# syntax=docker/dockerfile:1
#
# multus-rs: one build, static binaries, distroless runtime.
#
#   docker build --target operator -t ghcr.io/multus-rs/multus-operator:0.1.0 .
#   docker build --target webhook  -t ghcr.io/multus-rs/multus-webhook:0.1.0 .
#
# Both images hold all five binaries in /usr/local/bin (multus, multus-shim, multus-operator,
# multus-webhook, multusctl); they differ only in the entrypoint. The node agent installs
# /usr/local/bin/multus and multus-shim into the host's /opt/cni/bin (MULTUS_BINARY,
# MULTUS_SHIM_BINARY), so those binaries must be static: they run on the host, not in this image. The TLS stack is rustls + ring (no OpenSSL, no aws-lc), and the
# kubelet protos are compiled with protox (no protoc), so musl needs only musl-gcc for ring's C
# and assembly parts.

ARG RUST_VERSION=1.95
ARG TARGET=x86_64-unknown-linux-musl

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
ARG TARGET
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add ${TARGET}
WORKDIR /src
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    RUSTFLAGS="-C target-feature=+crt-static"
# Dependencies first, so source edits reuse the fetched registry.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY crds crds
COPY cni cni
COPY kubelet kubelet
COPY operator operator
COPY webhooks webhooks
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --target ${TARGET} \
        -p multus-cni --bin multus \
        -p multus-operator --bin multus-operator --bin multusctl \
        -p multus-webhooks --bin multus-webhook \
 && mkdir -p /out \
 && for b in multus multus-operator multusctl multus-webhook; do \
        cp target/${TARGET}/release/$b /out/$b; \
    done
# multus-shim, the thick plugin's client, is its own cargo workspace (panic = "abort", no std)
# and links no libc at all: the host target will do, and crt-static must not apply to it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/cni/shim/target \
    RUSTFLAGS= cargo build --locked --release --manifest-path cni/shim/Cargo.toml \
 && cp cni/shim/target/release/multus-shim /out/multus-shim
# Refuse a dynamically linked result: the CNI binary runs on arbitrary hosts.
RUN for b in /out/*; do \
        if readelf -l "$b" | grep -q 'INTERP'; then echo "$b is dynamically linked" >&2; exit 1; fi; \
    done

# Shared runtime: static distroless (CA certificates, tzdata, /etc/passwd with nonroot 65532,
# no shell, no package manager).
FROM gcr.io/distroless/static-debian12 AS runtime
COPY --from=builder /out/multus /out/multus-shim /out/multus-operator /out/multusctl /out/multus-webhook /usr/local/bin/

FROM runtime AS webhook
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/multus-webhook"]

# Last stage: the default target (`docker build .`). The image user is root because the node
# agent (privileged DaemonSet) writes the host's CNI directories and sysfs; the controller's
# Deployment runs it as 65532 (runAsNonRoot, read-only root filesystem).
FROM runtime AS operator
ENTRYPOINT ["/usr/local/bin/multus-operator"]
