#!/usr/bin/env bash
# Data-plane benchmark: HAProxy, nginx and Flotilla as round-robin proxies over the same three
# loopback nginx backends, interleaved in one run, ratios against HAProxy per round.
#
#   bench/proxy-bench.sh [ROUNDS] [SECONDS]        (defaults: 30 rounds × 2 s)
#   FLOTILLA_BASE=/path/to/flotilla bench/proxy-bench.sh ...   (also that build, as
#                                                   "flotilla-base", paired with this one)
#   CASES="h1-close h1-c64" bench/proxy-bench.sh ...           (only those cases)
#   CASES="tls-c64 tls-resume tls-full" bench/proxy-bench.sh ... (the HTTPS cases)
#
# On this 2-core machine the proxy under test is pinned to core 0 and everything else (load
# generator, backends) to core 1. Every proxy runs one worker thread, with upstream keep-alive
# pools at least as large as the client connection count. A second, identical HAProxy runs as
# a noise control: its ratio to the first must cover 1.0. The proxy's CPU time per round is
# read from /proc/PID/stat (all threads), giving requests per CPU-second.
#
# HTTPS cases (TLS 1.3, one self-signed ECDSA P-256 certificate served by all three, each
# proxy with its TLS defaults): keep-alive over TLS (tls-c64); a new connection per request
# whose client resumes the session with the ticket of its previous connection, as wrk does
# (tls-resume); and a new connection with a full handshake per request, which wrk and h2load
# cannot do (both resume), so TLS_CLIENTS (default 16) `openssl s_time -new` processes make
# them (tls-full: its "req/s" is handshakes/s, no latency figures).
#
# Traffic goes only to 127.0.0.1; every load run is bounded by its duration.
set -euo pipefail

ROUNDS=${1:-30}
SECS=${2:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-bench.XXXXXX)
RESULTS="$WORK/results.csv"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_install /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream openssl:openssl
bench_build
bench_cert
TLS_CLIENTS=${TLS_CLIENTS:-16}

# Ports.
B1=19101 B2=19102 B3=19103
P_HAPROXY=19201 P_HAPROXY2=19202 P_NGINX=19203 P_FLOTILLA=19204
H2_HAPROXY=19211 H2_HAPROXY2=19212 H2_NGINX=19213 H2_FLOTILLA=$P_FLOTILLA  # h2c on the same port
T_HAPROXY=19221 T_HAPROXY2=19222 T_NGINX=19223 T_FLOTILLA=19224
ADMIN=19290
S_HAPROXY=19231 S_HAPROXY2=19232 S_NGINX=19233 S_FLOTILLA=19234
P_BASE=19205 T_BASE=19225 S_BASE=19235 ADMIN_BASE=19291

# --- backends: one nginx, one worker, three ports, tiny answer -----------------------------
mkdir -p "$WORK/nginx" "$WORK/haproxy"
bench_backends $B1 $B2 $B3

# --- HAProxy (twice: the second is the noise control) --------------------------------------
{ bench_haproxy_conf $P_HAPROXY $H2_HAPROXY $T_HAPROXY; bench_haproxy_tls_conf $S_HAPROXY; } > "$WORK/haproxy/a.cfg"
{ bench_haproxy_conf $P_HAPROXY2 $H2_HAPROXY2 $T_HAPROXY2; bench_haproxy_tls_conf $S_HAPROXY2; } > "$WORK/haproxy/b.cfg"
taskset -c 0 haproxy -f "$WORK/haproxy/a.cfg" -db &
HAPROXY_PID=$!; PIDS+=($HAPROXY_PID)
taskset -c 0 haproxy -f "$WORK/haproxy/b.cfg" -db &
HAPROXY2_PID=$!; PIDS+=($HAPROXY2_PID)

# --- nginx as proxy ------------------------------------------------------------------------
cat > "$WORK/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream be {
    server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3;
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$P_NGINX;
    listen 127.0.0.1:$H2_NGINX http2;
    listen 127.0.0.1:$S_NGINX ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
stream {
  upstream be_tcp { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; }
  server { listen 127.0.0.1:$T_NGINX; proxy_pass be_tcp; }
}
CONF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!; PIDS+=($NGINX_PID)

# --- Flotilla ------------------------------------------------------------------------------
{ bench_flotilla_conf "$ADMIN" "$WORK/flotilla-state" $P_FLOTILLA $T_FLOTILLA
  bench_flotilla_tls_conf $S_FLOTILLA; } > "$WORK/flotilla.toml"
RUST_LOG=warn taskset -c 0 "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" &
FLOTILLA_PID=$!; PIDS+=($FLOTILLA_PID)
if [ -n "$FLOTILLA_BASE" ]; then
  { bench_flotilla_conf "$ADMIN_BASE" "$WORK/base-state" $P_BASE $T_BASE
    bench_flotilla_tls_conf $S_BASE; } > "$WORK/base.toml"
  RUST_LOG=warn taskset -c 0 "$FLOTILLA_BASE" up --worker-threads 1 "$WORK/base.toml" &
  BASE_PID=$!; PIDS+=($BASE_PID)
  bench_wait_answers $P_BASE $T_BASE
  bench_wait_tls $S_BASE
fi

# Wait until every proxy answers (bounded).
bench_wait_answers $P_HAPROXY $P_HAPROXY2 $P_NGINX $P_FLOTILLA $T_HAPROXY $T_HAPROXY2 $T_NGINX $T_FLOTILLA
bench_wait_tls $S_HAPROXY $S_HAPROXY2 $S_NGINX $S_FLOTILLA

HZ=$(getconf CLK_TCK)

# name → "pid port h2port tcpport tlsport"
declare -A PROXY=(
  [haproxy]="$HAPROXY_PID $P_HAPROXY $H2_HAPROXY $T_HAPROXY $S_HAPROXY"
  [haproxy2]="$HAPROXY2_PID $P_HAPROXY2 $H2_HAPROXY2 $T_HAPROXY2 $S_HAPROXY2"
  [nginx]="$NGINX_PID $P_NGINX $H2_NGINX $T_NGINX $S_NGINX"
  [flotilla]="$FLOTILLA_PID $P_FLOTILLA $H2_FLOTILLA $T_FLOTILLA $S_FLOTILLA"
)
if [ -n "$FLOTILLA_BASE" ]; then
  PROXY[flotilla-base]="$BASE_PID $P_BASE $P_BASE $T_BASE $S_BASE"
fi
# CASES (environment, optional) runs a subset, e.g. CASES="h1-close" to pin down one ratio.
read -r -a CASES <<<"${CASES:-h1-c64 h1-c256 h1-close h2-c64 tcp-c64 tls-c64 tls-resume tls-full}"

# Full TLS handshakes, one per connection, from TLS_CLIENTS `openssl s_time -new` processes
# for SECS seconds each: prints "handshakes/s nan nan" (nan if none completed).
full_handshakes() { # port
  local i clients=()
  for i in $(seq 1 "$TLS_CLIENTS"); do
    # Bounded twice: s_time stops starting connections after SECS, timeout ends a hung one.
    timeout $((SECS + 10)) taskset -c 1 openssl s_time -connect "127.0.0.1:$1" -new \
      -time "$SECS" -www / > "$WORK/s_time.$i" 2>&1 &
    clients+=($!)
  done
  wait "${clients[@]}" || true
  cat "$WORK"/s_time.* | python3 -c "
import re, sys
n = sum(int(m) for m in re.findall(r'(\d+) connections in [\d.]+ real seconds', sys.stdin.read()))
print(f'{n / $SECS if n else float(\"nan\")} nan nan')"
  rm -f "$WORK"/s_time.*
}

# One measurement: prints "rps p50_ms p99_ms" (or "nan nan nan" if the tool failed).
measure() { # case port h2port tcpport tlsport
  local out
  if [ "$1" = tls-full ]; then full_handshakes "$5"; return; fi
  case "$1" in
    h1-c64)  out=$(taskset -c 1 wrk -t1 -c64  -d"${SECS}s" --latency "http://127.0.0.1:$2/" 2>&1) || true ;;
    h1-c256) out=$(taskset -c 1 wrk -t1 -c256 -d"${SECS}s" --latency "http://127.0.0.1:$2/" 2>&1) || true ;;
    h1-close) out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" --latency -H "Connection: close" "http://127.0.0.1:$2/" 2>&1) || true ;;
    h2-c64)  rm -f "$WORK/h2.log"
             out=$(taskset -c 1 h2load -c64 -m1 -D "$SECS" --warm-up-time=0 --log-file="$WORK/h2.log" "http://127.0.0.1:$3/" 2>&1) || true ;;
    tcp-c64) out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$4/" 2>&1) || true ;;
    tls-c64) out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" --latency "https://127.0.0.1:$5/" 2>&1) || true ;;
    tls-resume) out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" --latency -H "Connection: close" "https://127.0.0.1:$5/" 2>&1) || true ;;
  esac
  python3 "$HERE/parse_load.py" "$1" "$WORK/h2.log" <<<"$out"
}

echo "case,round,proxy,secs,rps,p50_ms,p99_ms,cpu_s" > "$RESULTS"
echo "running $ROUNDS rounds × ${SECS}s × ${#CASES[@]} cases × ${#PROXY[@]} proxies (results: $RESULTS)"
for round in $(seq 1 "$ROUNDS"); do
  for case in "${CASES[@]}"; do
    for name in $(printf '%s\n' "${!PROXY[@]}" | shuf); do
      read -r pid port h2port tcpport tlsport <<<"${PROXY[$name]}"
      before=$(bench_ticks "$pid")
      read -r rps p50 p99 <<<"$(measure "$case" "$port" "$h2port" "$tcpport" "$tlsport")"
      after=$(bench_ticks "$pid")
      cpu=$(python3 -c "print(($after - $before) / $HZ)")
      echo "$case,$round,$name,$SECS,$rps,$p50,$p99,$cpu" >> "$RESULTS"
    done
  done
  echo "round $round/$ROUNDS done"
done

python3 "$HERE/report.py" "$RESULTS" | tee "$WORK/report.md"
cp "$RESULTS" "$HERE/last-results.csv"
cp "$WORK/report.md" "$HERE/last-report.md"
