# Shared by the data-plane benchmarks (sourced, not run): the processes a script started and
# their cleanup, the Debian packages it needs, the release build, the loopback backends and
# the proxies' configurations.
#
# A script sets WORK (its scratch folder) and ROOT (the repository) before sourcing this.

PIDS=()

# End every process the script started (by PID), however the script ends.
bench_cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap bench_cleanup EXIT

# Install HAProxy, nginx, wrk and h2load (and any package named) from Debian's packages when
# missing. An argument is "COMMAND-OR-FILE:PACKAGE".
bench_install() {
  local need=() item probe pkg
  for item in haproxy:haproxy nginx:nginx wrk:wrk h2load:nghttp2-client "$@"; do
    probe=${item%%:*} pkg=${item#*:}
    if [ "${probe#/}" != "$probe" ]; then
      [ -e "$probe" ] || need+=("$pkg")
    else
      command -v "$probe" >/dev/null || need+=("$pkg")
    fi
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# Build Flotilla in release; sets FLOTILLA to the binary. FLOTILLA_BASE (optional, from the
# environment) names another build to measure beside it in the same run, "flotilla-base" —
# e.g. the main branch's, to check that a change costs nothing:
#   git archive main | tar -x -C /tmp/base && (cd /tmp/base && cargo build --release -p flotilla)
#   FLOTILLA_BASE=/tmp/base/target/release/flotilla bench/proxy-bench.sh 6 2
#
# FLOTILLA_BIN (optional) names a binary to measure instead of building one (e.g. a copy kept
# from before a change, for a before/after table).
bench_build() {
  if [ -n "${FLOTILLA_BIN:-}" ]; then
    [ -x "$FLOTILLA_BIN" ] || { echo "FLOTILLA_BIN=$FLOTILLA_BIN is not an executable"; exit 1; }
    FLOTILLA=$FLOTILLA_BIN FLOTILLA_BASE=${FLOTILLA_BASE:-}
    return
  fi
  echo "building flotilla (release)"
  (cd "$ROOT" && cargo build --release -q -p flotilla)
  FLOTILLA="${CARGO_TARGET_DIR:-$ROOT/target}/release/flotilla"
  FLOTILLA_BASE=${FLOTILLA_BASE:-}
  if [ -n "$FLOTILLA_BASE" ] && [ ! -x "$FLOTILLA_BASE" ]; then
    echo "FLOTILLA_BASE=$FLOTILLA_BASE is not an executable"; exit 1
  fi
}

# Start the backends on core 1: one nginx worker answering "ok" on the three ports given.
bench_backends() { # B1 B2 B3
  mkdir -p "$WORK/backend"
  cat > "$WORK/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server { listen 127.0.0.1:$1 reuseport; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$2 reuseport; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$3 reuseport; location / { return 200 "ok\n"; } }
}
CONF
  taskset -c 1 nginx -c "$WORK/backend/nginx.conf" -e "$WORK/backend/error.log" &
  PIDS+=($!)
}

# CPU time (user + system, in clock ticks) of a process, all its threads and all its
# descendants (nginx's and Varnish's workers, NSD's server two forks down).
bench_ticks() { # PID
  local total=0 p
  for p in "$1" $(pgrep -P "$1"); do
    if [ "$p" = "$1" ]; then
      # utime and stime, counted after the command name (which may hold spaces: "nsd: main")
      total=$((total + $( (sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || echo) \
        | awk '{print $12 + $13 + 0}')))
    else
      total=$((total + $(bench_ticks "$p")))
    fi
  done
  echo "$total"
}

# Wait (bounded: 10 s a port) until something answers SCHEME (http or https, certificate not
# checked) on each port given; exit if one never does.
bench_wait_scheme() { # SCHEME PORT...
  local scheme=$1 port
  shift
  for port in "$@"; do
    for _ in $(seq 1 100); do
      curl -skf -o /dev/null "$scheme://127.0.0.1:$port/" && break
      sleep 0.1
    done
    curl -skf -o /dev/null "$scheme://127.0.0.1:$port/" || { echo "nothing answers $scheme on port $port"; exit 1; }
  done
}

# Wait until something answers HTTP on each port given.
bench_wait_answers() { bench_wait_scheme http "$@"; } # PORT...

# The proxies as every benchmark configures them, over the backends B1 B2 B3 (set by the
# script): HAProxy in HTTP mode (HTTP/1.1 and h2c ports) and TCP mode, one thread, keep-alive
# to the targets.
bench_haproxy_conf() { # PORT H2PORT TCPPORT
  cat <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 10s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$1
  bind 127.0.0.1:$2 proto h2
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:$B1 maxconn 1000
  server b2 127.0.0.1:$B2 maxconn 1000
  server b3 127.0.0.1:$B3 maxconn 1000
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:$3
  default_backend be_tcp
backend be_tcp
  mode tcp
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
  server b3 127.0.0.1:$B3
CONF
}

# Flotilla like for like: an application load balancer (h2c on the same port) and a network one
# with cross-zone on (HAProxy and nginx know no zones).
bench_flotilla_conf() { # ADMIN STATE_DIR HTTPPORT TCPPORT
  cat <<CONF
[cluster]
admin_bind = "127.0.0.1:$1"
state_dir = "$2"

[target_groups.be]
targets = ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3"]
[target_groups.be.health_check]
interval = "5s"
timeout = "2s"
healthy_threshold = 2

[[load_balancers.front.listeners]]
bind = "127.0.0.1:$3"
default_action = { type = "forward", target_group = "be" }

[target_groups.be_tcp]
protocol = "tcp"
targets = ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3"]
[target_groups.be_tcp.health_check]
protocol = "tcp"
interval = "5s"
timeout = "2s"
healthy_threshold = 2

[load_balancers.nlb]
type = "network"
cross_zone = true   # like for like: HAProxy and nginx know no zones

[[load_balancers.nlb.listeners]]
bind = "127.0.0.1:$4"
protocol = "tcp"
default_action = { type = "forward", target_group = "be_tcp" }
CONF
}

# A self-signed ECDSA P-256 certificate for localhost, the one every proxy serves in the HTTPS
# cases: $WORK/cert.pem and $WORK/key.pem, and both in one file for HAProxy
# ($WORK/haproxy.pem). Needs openssl (bench_install openssl:openssl).
bench_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"
}

# HAProxy's HTTPS frontend over backend `be` of bench_haproxy_conf (append to it): TLS with
# HAProxy's defaults (stateless session tickets, its session cache), ALPN h2 and http/1.1.
bench_haproxy_tls_conf() { # PORT
  cat <<CONF
frontend fe_tls
  bind 127.0.0.1:$1 ssl crt $WORK/haproxy.pem alpn h2,http/1.1
  default_backend be
CONF
}

# Flotilla's HTTPS listener on load balancer `front` of bench_flotilla_conf (append to it).
bench_flotilla_tls_conf() { # PORT
  cat <<CONF

[[load_balancers.front.listeners]]
bind = "127.0.0.1:$1"
protocol = "https"
certificates = [{ cert = "$WORK/cert.pem", key = "$WORK/key.pem" }]
default_action = { type = "forward", target_group = "be" }
CONF
}

# Wait until something answers HTTPS on each port given.
bench_wait_tls() { bench_wait_scheme https "$@"; } # PORT...
