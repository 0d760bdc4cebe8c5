#!/usr/bin/env bash
# Side-by-side UDP benchmark on loopback: shoal-dns (1 and 2 receive threads),
# hickory-server's Server with the same table, and unbound (if installed) serving the
# same names as local-data. Each round runs every server once per load level, so
# drift on a shared machine hits all of them alike. Prints one line per run.
#
#   bash dns/examples/compare.sh [rounds=3] [seconds=3]
#
# Loopback only; every server started here is stopped on exit.
set -euo pipefail
rounds=${1:-3}
seconds=${2:-3}
services=1000
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target-dns}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && CARGO_TARGET_DIR=$target cargo build -q --release -p shoal-dns --examples --features hickory-baseline)
bin=$target/release/examples

"$bin/serve" 127.0.0.1:5300 $services 1 2>"$work/shoal1.log" & pids+=($!)
"$bin/serve" 127.0.0.1:5303 $services 2 2>"$work/shoal2.log" & pids+=($!)
"$bin/hickory_server" 127.0.0.1:5302 $services 2>"$work/hickory.log" & pids+=($!)
servers=("shoal-1thr 5300" "shoal-2thr 5303" "hickory-server 5302")

if command -v unbound >/dev/null; then
    {
        echo "server:"
        echo "  interface: 127.0.0.1@5301"
        echo "  num-threads: 2"
        echo "  so-reuseport: yes"
        echo "  do-daemonize: no"
        echo "  chroot: \"\""
        echo "  username: \"\""
        echo "  directory: \"$work\""
        echo "  pidfile: \"$work/unbound.pid\""
        echo "  use-syslog: no"
        echo "  verbosity: 0"
        echo "  do-ip6: no"
        echo "  access-control: 127.0.0.0/8 allow"
        echo "  module-config: \"iterator\""
        for ((i = 0; i < services; i++)); do
            net="10.$(((i >> 8) & 255)).$((i & 255))"
            echo "  local-data: \"svc$i. 5 IN A $net.2\""
            for t in 3 4 5; do echo "  local-data: \"tasks.svc$i. 5 IN A $net.$t\""; done
        done
    } >"$work/unbound.conf"
    unbound -c "$work/unbound.conf" 2>"$work/unbound.log" & pids+=($!)
    servers+=("unbound 5301")
else
    echo "unbound not installed: no baseline (apt-get install unbound)" >&2
fi
sleep 1

for ((r = 1; r <= rounds; r++)); do
    for inflight in 1 16 64; do
        for s in "${servers[@]}"; do
            set -- $s
            printf '%-15s round %d  ' "$1" "$r"
            "$bin/loadgen" "127.0.0.1:$2" "$seconds" "$inflight" "$services"
        done
    done
done

if command -v dnsperf >/dev/null; then
    python3 - "$work/queries" "$services" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"svc{i} A\ntasks.svc{i} A\n")
PY
    for s in "${servers[@]}"; do
        set -- $s
        qps=$(dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries" -l "$seconds" -c 8 -q 64 2>&1 |
            awk '/Queries per second/ {print $4}')
        printf '%-15s dnsperf -c 8 -q 64: %s q/s\n' "$1" "$qps"
    done
fi
