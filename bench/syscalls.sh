#!/usr/bin/env bash
# System calls per request of Flotilla and HAProxy at full speed, counted by the kernel's
# syscall tracepoints (`perf stat -e syscalls:sys_enter_*`). Unlike `strace -c`, this does not
# slow the proxy down: under strace every request is already waiting when its connection is
# accepted, which hides the calls a fast client causes (an `EAGAIN` read, `epoll_ctl`, more
# `epoll_wait`).
#
#   bench/syscalls.sh [SECONDS]          (default 3 s of load per case and proxy)
#
# Proxies: Flotilla, HAProxy as bench/proxy-bench.sh configures it, and HAProxy with
# `defer-accept` on its HTTP binds (what Flotilla's HTTP listeners do by default). One worker
# thread each, over the same three loopback nginx backends; the proxy on core 0, load and
# backends on core 1. The count covers the whole load run, connection set-up included, and is
# divided by the requests the load generator completed. Traffic goes only to 127.0.0.1; every
# load run is bounded by its duration.
set -euo pipefail

SECS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-syscalls.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_install perf:linux-perf
bench_build

B1=19601 B2=19602 B3=19603
bench_backends $B1 $B2 $B3

# name → "http h2 tcp" ports
declare -A PORTS=([flotilla]="19611 19611 19613" [haproxy]="19621 19622 19623" [haproxy-defer]="19631 19632 19633")
declare -A PID

bench_flotilla_conf 19690 "$WORK/flotilla-state" 19611 19613 > "$WORK/flotilla.toml"
RUST_LOG=warn taskset -c 0 "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" >"$WORK/flotilla.log" 2>&1 &
PID[flotilla]=$!; PIDS+=($!)
bench_haproxy_conf 19621 19622 19623 > "$WORK/haproxy.cfg"
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PID[haproxy]=$!; PIDS+=($!)
bench_haproxy_conf 19631 19632 19633 \
  | sed -e '/bind 127.0.0.1:1963[12]/s/$/ defer-accept/' > "$WORK/haproxy-defer.cfg"
taskset -c 0 haproxy -f "$WORK/haproxy-defer.cfg" -db >"$WORK/haproxy-defer.log" 2>&1 &
PID[haproxy-defer]=$!; PIDS+=($!)

for name in flotilla haproxy haproxy-defer; do
  read -r http _ tcp <<<"${PORTS[$name]}"
  bench_wait_answers "$http" "$tcp"
done

CALLS=(accept4 recvfrom sendto read write readv writev epoll_wait epoll_ctl close shutdown
       setsockopt getsockopt clock_gettime futex)
EVENTS=$(printf 'syscalls:sys_enter_%s,' "${CALLS[@]}")
EVENTS=${EVENTS%,}

# One case against one proxy: prints "calls/request | breakdown".
count() { # name case
  local http h2 tcp out="$WORK/perf-$1-$2.csv" n
  read -r http h2 tcp <<<"${PORTS[$1]}"
  perf stat -x, -e "$EVENTS" -p "${PID[$1]}" -o "$out" -- sleep $((SECS + 1)) &
  local perf_pid=$!
  PIDS+=($perf_pid)
  sleep 0.3
  case "$2" in
    h1-c64) n=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$http/" | awk '/requests in/{print $1}') ;;
    close) n=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:$http/" | awk '/requests in/{print $1}') ;;
    h2) n=$(taskset -c 1 h2load -c64 -m1 -D "$SECS" "http://127.0.0.1:$h2/" | awk '/^requests:/{print $8}') ;;
    tcp) n=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$tcp/" | awk '/requests in/{print $1}') ;;
  esac
  wait "$perf_pid" || true
  python3 - "$out" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
calls = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
        calls[f[2].removeprefix("syscalls:sys_enter_")] = int(f[0]) / n
total = sum(calls.values())
parts = ", ".join(f"`{k}` {v:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v >= 0.01)
print(f"{total:.2f} | {parts}")
PY
}

echo "| case | proxy | system calls per request | of which (≥ 0.01 per request) |"
echo "|---|---|---:|---|"
for c in h1-c64 close h2 tcp; do
  for name in flotilla haproxy haproxy-defer; do
    echo "| $c | $name | $(count "$name" "$c") |"
  done
done
