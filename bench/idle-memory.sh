#!/usr/bin/env bash
# Memory per idle keep-alive client connection: HAProxy, nginx and Flotilla in one run. Each
# proxy in turn gets N connections of one protocol (one request answered on each, then idle);
# its RSS (the process and its children, from /proc) after, minus before, divided by N.
#
#   bench/idle-memory.sh [N...]          (default: 8000)
#   MODES="h1 h2c tls-h1 tls-h2" bench/idle-memory.sh 10000
#
# Protocols (MODES, default all four): h1 = HTTP/1.1, h2c = HTTP/2 with prior knowledge,
# tls-h1 / tls-h2 = HTTPS (TLS 1.3, ECDSA P-256 certificate) with ALPN http/1.1 / h2.
# Needs file descriptors (raised here to 1,100,000 if allowed; HAProxy refuses to start
# unless the limit is 2 × (N + 1,000): under a hard limit of 20,000, N is at most 8,990) and
# source addresses: the client spreads its connections over 127.0.0.2.. (20,000 each).
# Traffic goes only to 127.0.0.0/8.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-idle.XXXXXX)
SIZES=("${@:-8000}")
read -r -a MODES <<<"${MODES:-h1 h2c tls-h1 tls-h2}"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_install openssl:openssl
bench_build
# Where the hard limit cannot be raised (a container), it is what we get.
ulimit -n 1100000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
sysctl -q -w net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true

B1=19801 B2=19802 B3=19803 ADMIN=19890
HAP=19811 NGX=19812 FLO=19813
HAP_H2=19821 NGX_H2=19822
HAP_TLS=19831 NGX_TLS=19832 FLO_TLS=19833
bench_backends $B1 $B2 $B3
bench_cert

MAXCONN=$(( ${SIZES[-1]} + 1000 ))
{
  bench_haproxy_conf $HAP $HAP_H2 19841 | sed -e "s/maxconn 8000/maxconn $MAXCONN/"
  bench_haproxy_tls_conf $HAP_TLS
} > "$WORK/haproxy.cfg"
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $MAXCONN; }
http {
  access_log off;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 64; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://be; } }
  server { listen 127.0.0.1:$NGX_H2 http2; location / { proxy_pass http://be; } }
  server {
    listen 127.0.0.1:$NGX_TLS ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    location / { proxy_pass http://be; }
  }
}
CONF
# Idle timeouts stay at 60 s (Flotilla's default; HAProxy's timeout client as benchmarked):
# every measurement is taken well within them.
{
  bench_flotilla_conf $ADMIN "$WORK/flotilla-state" $FLO 19843
  bench_flotilla_tls_conf $FLO_TLS
} > "$WORK/flotilla.toml"

# Each protocol is measured on freshly started proxies: memory a process freed after an
# earlier protocol's connections would otherwise be reused and flatter the later ones.
start_proxies() {
  haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 & PIDS+=($!); HAP_PID=$!
  nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" & PIDS+=($!); NGX_PID=$!
  RUST_LOG=warn "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" >"$WORK/flotilla.log" 2>&1 &
  PIDS+=($!); FLO_PID=$!
  bench_wait_answers $HAP $NGX $FLO
  bench_wait_tls $HAP_TLS $NGX_TLS $FLO_TLS
}

stop_proxies() {
  local pid
  for pid in $HAP_PID $NGX_PID $FLO_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

rss_kb() { # pid: RSS of it and its children, in KiB
  local total=0 p
  for p in "$1" $(pgrep -P "$1"); do
    total=$((total + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

port_of() { # proxy mode
  case "$1:$2" in
    haproxy:h1) echo $HAP ;; haproxy:h2c) echo $HAP_H2 ;; haproxy:tls-*) echo $HAP_TLS ;;
    nginx:h1) echo $NGX ;; nginx:h2c) echo $NGX_H2 ;; nginx:tls-*) echo $NGX_TLS ;;
    flotilla:h1 | flotilla:h2c) echo $FLO ;; flotilla:tls-*) echo $FLO_TLS ;;
  esac
}

echo "| connections | protocol | proxy | RSS before (MiB) | RSS with idle connections (MiB) | bytes per idle connection |"
echo "|---:|---|---|---:|---:|---:|"
for n in "${SIZES[@]}"; do
  for mode in "${MODES[@]}"; do
    start_proxies
    declare -A per=()
    for entry in "haproxy $HAP_PID" "nginx $NGX_PID" "flotilla $FLO_PID"; do
      read -r name pid <<<"$entry"
      before=$(rss_kb "$pid")
      coproc CLIENT { python3 "$HERE/idle_clients.py" "$(port_of "$name" "$mode")" "$n" "$mode"; }
      read -r status count <&"${CLIENT[0]}"
      sleep 2
      after=$(rss_kb "$pid")
      exec {CLIENT[1]}>&-
      wait "$CLIENT_PID" 2>/dev/null || true
      per[$name]=$(( (after - before) * 1024 / n ))
      python3 -c "print(f'| $n | $mode | $name | {$before/1024:.1f} | {$after/1024:.1f} | {${per[$name]}:,} |' + ('' if '$status' == 'ready' else ' ($status $count)'))"
      sleep 2
    done
    python3 -c "f, h, x = ${per[flotilla]}, ${per[haproxy]}, ${per[nginx]}; print(f'| $n | $mode | Flotilla ÷ HAProxy, ÷ nginx | | | {f / max(h, 1):.2f}, {f / max(x, 1):.2f} |')"
    unset per
    stop_proxies
  done
done
