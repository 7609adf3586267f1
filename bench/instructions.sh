#!/usr/bin/env bash
# User-space instructions per request of Flotilla and HAProxy, counted by valgrind's callgrind:
# unlike CPU seconds on a shared VM, the count is the same from run to run within a few per
# cent (it moves only with how events batch), so it shows what a change to the request path
# saves. Kernel time (most of a proxy's cost here) is not counted.
#
#   bench/instructions.sh            (cases: h2 close tcp)
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

cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode http
  timeout connect 10s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$HTTP
  bind 127.0.0.1:$H2 proto h2
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
  server b3 127.0.0.1:$B3
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:$TCP
  default_backend be_tcp
backend be_tcp
  mode tcp
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
  server b3 127.0.0.1:$B3
CONF

cat > "$WORK/flotilla.toml" <<CONF
[cluster]
admin_bind = "127.0.0.1:$ADMIN"
state_dir = "$WORK/flotilla-state"
[target_groups.be]
targets = ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3"]
[[load_balancers.front.listeners]]
bind = "127.0.0.1:$HTTP"
default_action = { type = "forward", target_group = "be" }
[target_groups.be_tcp]
protocol = "tcp"
targets = ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3"]
[target_groups.be_tcp.health_check]
protocol = "tcp"
[load_balancers.nlb]
type = "network"
cross_zone = true
[[load_balancers.nlb.listeners]]
bind = "127.0.0.1:$TCP"
protocol = "tcp"
default_action = { type = "forward", target_group = "be_tcp" }
CONF

# One proxy under callgrind for one case; prints instructions per request.
count() { # proxy case
  local out="$WORK/cg-$1-$2.out" pid n h2port
  case "$1" in
    flotilla) h2port=$HTTP  # h2c on the same port
      RUST_LOG=warn taskset -c 0 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$out" "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" \
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

echo "| case | Flotilla instructions/request | HAProxy instructions/request | ratio |"
echo "|---|---:|---:|---:|"
for c in h2 close tcp; do
  f=$(count flotilla "$c")
  h=$(count haproxy "$c")
  python3 -c "print(f'| $c | {$f:,} | {$h:,} | {$f/$h:.2f} |')"
done
