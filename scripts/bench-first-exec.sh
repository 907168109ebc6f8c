#!/usr/bin/env bash
# Time from the `multus` binary's exec to its first delegate's exec, thin mode, for ADD and DEL
# of the cni bench's pod (bridge + host-local cluster network, macvlan, bridge; Debian's plugins),
# taken from the kernel's sched_process_exec tracepoint with `perf trace` (low overhead: no
# system calls traced). Needs root and perf (apt-get install linux-perf).
#
#   cargo build --release -p multus-cni --bin multus && scripts/bench-first-exec.sh [rounds]
set -euo pipefail

rounds=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MULTUS_BIN:-$root/target/release/multus}
plugins=/usr/lib/cni
work=
ns=fe-pod

cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    for link in feP febr0 febr1; do ip link del "$link" 2>/dev/null || true; done
    [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d)
ip netns add "$ns"
ip link add feP type veth peer name feq
ip link set feP up

# Run the binary as the node agent installs it (the whole file in one write), which is how it
# sits in the page cache when the runtime runs it; the linker's output, run in place, is slower
# to fault in (docs/benchmarks.md).
mkdir "$work/bin"
dd if="$bin" of="$work/bin/multus" bs=256M iflag=fullblock status=none
chmod 0755 "$work/bin/multus"
bin=$work/bin/multus

cat >"$work/conf.json" <<EOF
{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus","cniDir":"$work/cache","binDir":"$plugins",
 "delegates":[
  {"cniVersion":"1.0.0","name":"fe-cluster","plugins":[{"type":"bridge","bridge":"febr0","isGateway":true,
    "ipam":{"type":"host-local","dataDir":"$work/ipam","subnet":"10.171.0.0/16"}}]},
  {"cniVersion":"1.0.0","name":"fe-mac","type":"macvlan","master":"feP","mode":"bridge",
    "ipam":{"type":"host-local","dataDir":"$work/ipam","subnet":"10.172.0.0/16"}},
  {"cniVersion":"1.0.0","name":"fe-br","type":"bridge","bridge":"febr1",
    "ipam":{"type":"host-local","dataDir":"$work/ipam","subnet":"10.173.0.0/16"}}]}
EOF

# One call under perf; prints the milliseconds from multus' exec to the next exec (its first
# delegate's).
first_exec_ms() {
    local command=$1 cid=$2
    CNI_COMMAND=$command CNI_CONTAINERID=$cid CNI_NETNS=/var/run/netns/$ns CNI_IFNAME=eth0 \
        CNI_PATH=$plugins perf trace --no-syscalls -e sched:sched_process_exec \
        -o "$work/trace" "$bin" <"$work/conf.json" >/dev/null
    awk '/sched_process_exec/ { t[n++] = $1 } END { if (n >= 2) printf "%.3f\n", t[1] - t[0] }' \
        "$work/trace"
}

median() { sort -n | awk '{ v[n++] = $1 } END { print v[int((n - 1) / 2)] }'; }

: >"$work/add"
: >"$work/del"
for i in $(seq 1 "$rounds"); do
    first_exec_ms ADD "fe$i" >>"$work/add"
    first_exec_ms DEL "fe$i" >>"$work/del"
done
# A call that failed or never ran a delegate prints nothing: it must not drop out of the median.
for f in add del; do
    got=$(wc -l <"$work/$f")
    [ "$got" -eq "$rounds" ] || { echo "bench-first-exec: $got of $rounds $f calls timed" >&2; exit 1; }
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "multus exec -> first delegate exec, $rounds rounds: ADD p50 $(median <"$work/add") ms, DEL p50 $(median <"$work/del") ms"
true_ms=$( (for _ in $(seq 1 "$rounds"); do
    perf trace --no-syscalls -e sched:sched_process_exec -o "$work/trace" \
        sh -c 'exec /bin/true' >/dev/null
    awk '/sched_process_exec/ { t[n++] = $1 } END { printf "%.3f\n", t[1] - t[0] }' "$work/trace"
done) | median)
echo "for scale, sh's exec -> exec of /bin/true: p50 $true_ms ms"
