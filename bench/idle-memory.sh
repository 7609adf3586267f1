#!/usr/bin/env bash
# Memory per idle keep-alive HTTP/1.1 client connection: HAProxy, nginx and Flotilla in one
# run. Each proxy in turn gets N connections (one request answered on each, then idle); its
# RSS (the process and its children, from /proc) after, minus before, divided by N.
#
#   bench/idle-memory.sh [N...]          (default: 10000)
#
# Needs file descriptors (raised here to 1,100,000) and source addresses: the client spreads
# its connections over 127.0.0.2.. (20,000 each). Traffic goes only to 127.0.0.0/8.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-idle.XXXXXX)
SIZES=("${@:-10000}")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_build
ulimit -n 1100000
sysctl -q -w net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true

B1=19801 B2=19802 B3=19803 HAP=19811 NGX=19812 FLO=19813 ADMIN=19890
bench_backends $B1 $B2 $B3
MAXCONN=$(( ${SIZES[-1]} + 1000 ))
bench_haproxy_conf $HAP 19821 19822 | sed -e "s/maxconn 8000/maxconn $MAXCONN/" \
  > "$WORK/haproxy.cfg"
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 1100000;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $MAXCONN; }
http {
  access_log off;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 64; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
# Idle timeouts stay at 60 s (Flotilla's default; HAProxy's timeout client as benchmarked):
# every measurement is taken well within them.
bench_flotilla_conf $ADMIN "$WORK/flotilla-state" $FLO 19823 > "$WORK/flotilla.toml"

haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 & PIDS+=($!); HAP_PID=$!
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" & PIDS+=($!); NGX_PID=$!
RUST_LOG=warn "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" >"$WORK/flotilla.log" 2>&1 &
PIDS+=($!); FLO_PID=$!
bench_wait_answers $HAP $NGX $FLO

rss_kb() { # pid: RSS of it and its children, in KiB
  local total=0 p
  for p in "$1" $(pgrep -P "$1"); do
    total=$((total + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

echo "| connections | proxy | RSS before (MiB) | RSS with idle connections (MiB) | bytes per idle connection |"
echo "|---:|---|---:|---:|---:|"
for n in "${SIZES[@]}"; do
  for entry in "haproxy $HAP_PID $HAP" "nginx $NGX_PID $NGX" "flotilla $FLO_PID $FLO"; do
    read -r name pid port <<<"$entry"
    before=$(rss_kb "$pid")
    coproc CLIENT { python3 "$HERE/idle_clients.py" "$port" "$n"; }
    read -r status count <&"${CLIENT[0]}"
    sleep 2
    after=$(rss_kb "$pid")
    exec {CLIENT[1]}>&-
    wait "$CLIENT_PID" 2>/dev/null || true
    python3 -c "print(f'| $n | $name | {$before/1024:.1f} | {$after/1024:.1f} | {($after-$before)*1024/$n:,.0f} |' + ('' if '$status' == 'ready' else ' ($status $count)'))"
    sleep 2
  done
done
