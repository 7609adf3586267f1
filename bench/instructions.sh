#!/usr/bin/env bash
# User-space instructions per request of Flotilla and HAProxy, counted by valgrind's callgrind:
# unlike CPU seconds on a shared VM, the count is the same from run to run within a few per
# cent (it moves only with how events batch), so it shows what a change to the request path
# saves. Kernel time (most of a proxy's cost here) is not counted.
#
#   bench/instructions.sh            (cases: h2 close tcp)
#   FLOTILLA_BASE=/path/to/flotilla bench/instructions.sh   (that build counted too)
#   FLOTILLA_LOG=info bench/instructions.sh   (Flotilla's log level, default warn; info is
#                                             the binary's own default)
#
# Each proxy runs alone under callgrind with one worker thread over the same three loopback
# nginx backends as bench/proxy-bench.sh; counting is switched on after a warm-up and off
# before the dump. Traffic goes only to 127.0.0.1; every load run is bounded.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-instr.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_install valgrind:valgrind
bench_build

B1=19501 B2=19502 B3=19503 HTTP=19511 H2=19512 TCP=19513 ADMIN=19590
bench_backends $B1 $B2 $B3

bench_haproxy_conf $HTTP $H2 $TCP > "$WORK/haproxy.cfg"
bench_flotilla_conf $ADMIN "$WORK/flotilla-state" $HTTP $TCP > "$WORK/flotilla.toml"

# One proxy under callgrind for one case; prints instructions per request.
count() { # proxy case
  local out="$WORK/cg-$1-$2.out" pid n h2port
  case "$1" in
    flotilla|flotilla-base) h2port=$HTTP  # h2c on the same port
      local bin=$FLOTILLA
      [ "$1" = flotilla-base ] && bin=$FLOTILLA_BASE
      RUST_LOG=${FLOTILLA_LOG:-warn} taskset -c 0 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$out" "$bin" up --worker-threads 1 "$WORK/flotilla.toml" \
        >"$WORK/$1.log" 2>&1 &
      ;;
    haproxy) h2port=$H2
      taskset -c 0 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$out" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/$1.log" 2>&1 &
      ;;
  esac
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$HTTP/" && curl -sf -o /dev/null "http://127.0.0.1:$TCP/" && break
    sleep 0.3
  done
  # Warm-up: pooled target connections, allocator, tables.
  taskset -c 1 h2load -c64 -m1 -n 2000 "http://127.0.0.1:$h2port/" >/dev/null
  taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$TCP/" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  case "$2" in
    h2) n=$(taskset -c 1 h2load -c64 -m1 -n 20000 "http://127.0.0.1:$h2port/" | awk '/^requests:/{print $4}') ;;
    close) n=$(taskset -c 1 wrk -t1 -c16 -d6s -H "Connection: close" "http://127.0.0.1:$HTTP/" | awk '/requests in/{print $1}') ;;
    tcp) n=$(taskset -c 1 wrk -t1 -c64 -d5s "http://127.0.0.1:$TCP/" | awk '/requests in/{print $1}') ;;
  esac
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$WORK/flotilla-state"
  local total=0 f
  for f in "$out"*; do
    total=$((total + $(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print ($1 ~ /^[0-9]+$/) ? $1 : 0; exit}')))
  done
  echo $((total / n))
}

if [ -z "$FLOTILLA_BASE" ]; then
  echo "| case | Flotilla instructions/request | HAProxy instructions/request | ratio |"
  echo "|---|---:|---:|---:|"
else
  echo "| case | Flotilla instructions/request | HAProxy instructions/request | ratio | flotilla-base instructions/request | Flotilla / base |"
  echo "|---|---:|---:|---:|---:|---:|"
fi
for c in h2 close tcp; do
  f=$(count flotilla "$c")
  h=$(count haproxy "$c")
  if [ -z "$FLOTILLA_BASE" ]; then
    python3 -c "print(f'| $c | {$f:,} | {$h:,} | {$f/$h:.2f} |')"
  else
    b=$(count flotilla-base "$c")
    python3 -c "print(f'| $c | {$f:,} | {$h:,} | {$f/$h:.2f} | {$b:,} | {$f/$b:.3f} |')"
  fi
done
