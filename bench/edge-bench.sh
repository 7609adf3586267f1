#!/usr/bin/env bash
# Cache hits per CPU-second: Flotilla's distribution against Varnish and nginx proxy_cache
# (Debian's packages), each one worker in front of the same nginx origin, on a small (1 KB)
# and a large (1 MiB) cacheable object, keep-alive, interleaved in one run; ratios per round.
#
#   bench/edge-bench.sh [ROUNDS] [SECONDS]        (defaults: 10 rounds × 3 s; 0 rounds: the
#                                                   spike only)
#
# Then the spike (issue 20's "a 100× spike on a cacheable page reaches the origin at most once
# per TTL per key"): `flotilla load` sends SPIKE_BASE requests/s (default 20) for SPIKE_SECS
# (default 10) to one page the origin marks `max-age=SPIKE_TTL` (default 2), then 100× that
# rate for as long; the origin's access log counts the fetches of that page in each phase,
# against the bound ⌈SPIKE_SECS ÷ SPIKE_TTL⌉ + 1 (the first fetch, then one per expiry).
#
# The cache under test is pinned to core 0, everything else (wrk, the origin) to core 1.
# Every cache is warmed first, so the measured requests are all hits (checked: the origin's
# request count must not grow during the rounds). CPU time per round is read from
# /proc/PID/stat (all threads, and nginx's worker), giving hits per CPU-second.
#
# Traffic goes only to 127.0.0.1; every load run is bounded by its duration.
set -euo pipefail

ROUNDS=${1:-10}
SECS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-edge-bench.XXXXXX)
RESULTS="$WORK/results.csv"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
trap 'bench_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
bench_install varnishd:varnish
bench_build

SPIKE_BASE=${SPIKE_BASE:-20}
SPIKE_SECS=${SPIKE_SECS:-10}
SPIKE_TTL=${SPIKE_TTL:-2}
ORIGIN=19301 P_VARNISH=19302 P_NGINX=19303 P_FLOTILLA=19304 ADMIN=19390

# --- the origin: nginx serving two files with a one-hour max-age, counting requests -------
mkdir -p "$WORK/www" "$WORK/origin" "$WORK/nginx/cache" "$WORK/varnish"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$WORK/www/small"
head -c 1048576 /dev/urandom > "$WORK/www/large"
echo ok > "$WORK/www/index.html"   # "/" answers: bench_wait_answers asks for it
cat > "$WORK/origin/nginx.conf" <<CONF
worker_processes 1;
user root;   # the workers read and write under $WORK (mktemp's mode 0700)
daemon off;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log $WORK/origin/access.log;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ORIGIN;
    root $WORK/www;
    location / { add_header Cache-Control "public, max-age=3600"; }
    location = /spike { add_header Cache-Control "public, max-age=$SPIKE_TTL"; try_files /small =404; }
  }
}
CONF
taskset -c 1 nginx -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" &
PIDS+=($!)

# --- Varnish: one thread pool, memory storage ---------------------------------------------
taskset -c 0 varnishd -F -n "$WORK/varnish" -j none -a "127.0.0.1:$P_VARNISH" \
  -b "127.0.0.1:$ORIGIN" -s malloc,512m -p thread_pools=1 -p thread_pool_min=8 \
  > "$WORK/varnish/log" 2>&1 &
VARNISH_PID=$!; PIDS+=($VARNISH_PID)

# --- nginx proxy_cache: one worker, keep-alive to the origin ------------------------------
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
user root;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  sendfile on;   # as Debian's nginx.conf: cached files go to the socket without a copy
  proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=edge:16m max_size=512m inactive=1h;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
CONF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!; PIDS+=($NGINX_PID)

# --- Flotilla: one distribution, one worker thread ----------------------------------------
cat > "$WORK/flotilla.toml" <<CONF
[cluster]
admin_bind = "127.0.0.1:$ADMIN"
state_dir = "$WORK/flotilla-state"

[distributions.edge]
listeners = [{ bind = "127.0.0.1:$P_FLOTILLA" }]
cache_size = "512MiB"
max_object_size = "2MiB"
[distributions.edge.origins.o]
address = "127.0.0.1:$ORIGIN"
[distributions.edge.default_behavior]
origin = "o"
CONF
RUST_LOG=warn taskset -c 0 "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" &
FLOTILLA_PID=$!; PIDS+=($FLOTILLA_PID)

bench_wait_answers $ORIGIN $P_VARNISH $P_NGINX $P_FLOTILLA
for port in $P_VARNISH $P_NGINX $P_FLOTILLA; do
  for obj in small large; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/$obj"
    curl -sf -o /dev/null "http://127.0.0.1:$port/$obj"
  done
done
echo "warm: $(curl -sI http://127.0.0.1:$P_FLOTILLA/small | grep -i x-cache | tr -d '\r')"

HZ=$(getconf CLK_TCK)
origin_requests() { wc -l < "$WORK/origin/access.log"; }

declare -A CACHE=(
  [varnish]="$VARNISH_PID $P_VARNISH"
  [nginx]="$NGINX_PID $P_NGINX"
  [flotilla]="$FLOTILLA_PID $P_FLOTILLA"
)
CASES=(small-c64 large-c16)

measure() { # case port
  local out
  case "$1" in
    small-c64) out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$2/small" 2>&1) || true ;;
    large-c16) out=$(taskset -c 1 wrk -t1 -c16 -d"${SECS}s" --latency "http://127.0.0.1:$2/large" 2>&1) || true ;;
  esac
  python3 "$HERE/parse_load.py" "h1-c64" /dev/null <<<"$out"
}

before_origin=$(origin_requests)
if [ "$ROUNDS" -gt 0 ]; then
echo "case,round,proxy,secs,rps,p50_ms,p99_ms,cpu_s" > "$RESULTS"
echo "running $ROUNDS rounds × ${SECS}s × ${#CASES[@]} cases × ${#CACHE[@]} caches (results: $RESULTS)"
for round in $(seq 1 "$ROUNDS"); do
  for case in "${CASES[@]}"; do
    for name in $(printf '%s\n' "${!CACHE[@]}" | shuf); do
      read -r pid port <<<"${CACHE[$name]}"
      before=$(bench_ticks "$pid")
      read -r rps p50 p99 <<<"$(measure "$case" "$port")"
      after=$(bench_ticks "$pid")
      cpu=$(python3 -c "print(($after - $before) / $HZ)")
      echo "$case,$round,$name,$SECS,$rps,$p50,$p99,$cpu" >> "$RESULTS"
    done
  done
  echo "round $round/$ROUNDS done"
done
echo "origin requests during the rounds: $(( $(origin_requests) - before_origin )) (0: every measured request was a hit)"

python3 "$HERE/edge_report.py" "$RESULTS" flotilla varnish nginx | tee "$WORK/report.md"
cp "$RESULTS" "$HERE/last-edge-results.csv"
cp "$WORK/report.md" "$HERE/last-edge-report.md"
fi

# --- the spike: base rate, then 100× it, on one cacheable page -----------------------------
spike_fetches() { grep -c '"GET /spike ' "$WORK/origin/access.log" || true; }
spike_phase() { # NAME RPS
  local before after
  before=$(spike_fetches)
  taskset -c 1 "$FLOTILLA" load "http://127.0.0.1:$P_FLOTILLA/spike" --rps "$2" \
    --for "${SPIKE_SECS}s" --json > "$WORK/spike-$1.json" || true
  after=$(spike_fetches)
  python3 - "$WORK/spike-$1.json" "$1" "$2" "$((after - before))" "$SPIKE_SECS" "$SPIKE_TTL" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
name, rps, fetched, secs, ttl = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
bound = math.ceil(secs / ttl) + 1
errors = r["requests"] - r["ok"]
verdict = "within" if fetched <= bound else "OVER"
print(f"| {name} | {rps} | {secs:g} | {r['requests']} | {errors} | {ttl:g} | {fetched} | {bound} | {verdict} |")
PY
}
echo "spike: ${SPIKE_BASE}/s then $((SPIKE_BASE * 100))/s for ${SPIKE_SECS}s each, max-age=${SPIKE_TTL}"
{
  echo "| phase | requests/s | seconds | requests | failed | TTL s | origin fetches of the page | bound ⌈s÷TTL⌉+1 | |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
  spike_phase base "$SPIKE_BASE"
  spike_phase spike "$((SPIKE_BASE * 100))"
} | tee "$WORK/spike.md"
cp "$WORK/spike.md" "$HERE/last-edge-spike.md"
