# Shared by the data-plane benchmarks (sourced, not run): the processes a script started and
# their cleanup, the Debian packages it needs, the release build, and the loopback backends.
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

# Build Flotilla in release; sets FLOTILLA to the binary.
bench_build() {
  echo "building flotilla (release)"
  (cd "$ROOT" && cargo build --release -q -p flotilla)
  FLOTILLA="$ROOT/target/release/flotilla"
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
