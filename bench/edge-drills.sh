#!/usr/bin/env bash
# The edge's drill (issue 20): a blue/green flip by weighted DNS, under load from clients that
# honour TTLs, must fail no request.
#
#   bench/edge-drills.sh [SECONDS]      (default 45 s of load)
#
# `flotilla up` runs two load balancers, blue (127.0.0.2:PORT) and green (127.0.0.3:PORT), each
# over its own auto scaling group of two demo apps, and DNS with `www.example.test` as a
# weighted record set: blue weight 100, green weight 0, both with a TTL of TTL seconds (default
# 5). Load: bench/dns_load.py, CLIENTS clients (default 20) at RATE requests/s each (default
# 10), each resolving the name through Flotilla's DNS by UDP, keeping the answer for its TTL,
# and connecting to the address it got; their starts are spread over one TTL, so their caches
# expire at different moments. 10 s into the load the weights flip (blue 0, green 100)
# through the admin API; TTL + 3 s later a reload removes blue altogether (its listener closes,
# its instances stop). Counted: failed requests (target 0), requests per address, and when
# the last request reached blue after the flip (bound: the TTL).
#
# Traffic goes only to loopback addresses; every load run is bounded by its duration; the only
# process signalled is the flotilla started here (its instances stop with it).
set -euo pipefail

SECS=${1:-45}
CLIENTS=${CLIENTS:-20}
RATE=${RATE:-10}
TTL=${TTL:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-edge-drills.XXXXXX)
PORT=${PORT:-18580}
DNS=${DNS:-18553}
ADMIN=${ADMIN:-18590}
BLUE=127.0.0.2 GREEN=127.0.0.3
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
bench_install dig:dnsutils curl:curl
bench_build

# render WITH_BLUE BLUE_WEIGHT GREEN_WEIGHT: the config flotilla runs.
render() {
  {
    cat <<CONF
[cluster]
name = "edge-drills"
zones = ["az-a", "az-b"]
state_dir = "$WORK/state"
admin_bind = "127.0.0.1:$ADMIN"

[dns]
bind = "127.0.0.1:$DNS"

[dns.zones."example.test"]
name_servers = ["ns1.example.test"]

[[dns.zones."example.test".records]]
name = "ns1"
type = "A"
values = ["127.0.0.1"]
CONF
    for color in blue green; do
      if [ "$color" = blue ] && [ "$1" = no ]; then continue; fi
      local addr=$GREEN weight=$3
      [ "$color" = blue ] && addr=$BLUE weight=$2
      cat <<CONF

[[dns.zones."example.test".records]]
name = "www"
type = "A"
ttl = $TTL
routing = "weighted"
set_identifier = "$color"
weight = $weight
values = ["$addr"]

[launch_templates.$color]
command = ["{flotilla}", "demo-app"]
stop_signal = "SIGTERM"
stop_timeout = "10s"
env = { RELEASE = "$color" }

[target_groups.$color]
deregistration_delay = "5s"
health_check = { path = "/health", interval = "2s", timeout = "1s", healthy_threshold = 2, unhealthy_threshold = 2 }

[load_balancers.$color]
type = "application"

[[load_balancers.$color.listeners]]
bind = "$addr:$PORT"
default_action = { type = "forward", target_group = "$color" }

[auto_scaling_groups.$color]
launch_template = "$color"
target_groups = ["$color"]
min_size = 2
max_size = 4
desired_capacity = 2
health_check_type = "elb"
health_check_grace_period = "10s"
CONF
    done
  } > "$WORK/flotilla.toml"
}

api() { # api METHOD PATH [JSON]
  if [ $# -ge 3 ]; then
    curl -sS -m 5 -X "$1" -H 'content-type: application/json' -d "$3" "http://127.0.0.1:$ADMIN$2"
  else
    curl -sS -m 5 -X "$1" "http://127.0.0.1:$ADMIN$2"
  fi
}

# serving ADDR: 10 answers in a row with 200 from the load balancer at ADDR.
serving() {
  local _
  for _ in $(seq 1 10); do
    curl -sf -m 2 -o /dev/null "http://$1:$PORT/" || return 1
  done
}
wait_until() { # SECONDS COMMAND...: polls every 200 ms; fails after SECONDS
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
now() { python3 -c 'import time; print(time.time())'; }

render yes 100 0
RUST_LOG=warn "$FLOTILLA" up "$WORK/flotilla.toml" > "$WORK/flotilla.log" 2>&1 &
FPID=$!; PIDS+=($FPID)
wait_until 90 serving $BLUE && wait_until 60 serving $GREEN \
  || { echo "the load balancers did not come up:"; tail -20 "$WORK/flotilla.log"; exit 1; }
echo "blue and green serving; www.example.test → $(dig +short @127.0.0.1 -p "$DNS" www.example.test A)"

echo "blue/green flip: $CLIENTS clients × $RATE/s for ${SECS}s, TTL ${TTL}s"
python3 "$HERE/dns_load.py" "127.0.0.1:$DNS" www.example.test "$PORT" "$CLIENTS" "$RATE" \
  "$SECS" "$WORK/flip.json" "$TTL" > /dev/null &
LPID=$!
sleep 10
flip_at=$(now)
api PUT /v1/dns/zones/example.test/records "$(cat <<JSON
{"name": "www", "type": "A", "record_sets": [
  {"name": "www", "type": "A", "ttl": $TTL, "routing": "weighted", "set_identifier": "blue",
   "weight": 0, "values": ["$BLUE"]},
  {"name": "www", "type": "A", "ttl": $TTL, "routing": "weighted", "set_identifier": "green",
   "weight": 100, "values": ["$GREEN"]}]}
JSON
)" > /dev/null
echo "flipped: www.example.test → $(dig +short @127.0.0.1 -p "$DNS" www.example.test A)"
sleep $(( TTL + 3 ))
render no 0 100
stop_at=$(now)
api POST /v1/reload '{}' > /dev/null
wait_until 10 bash -c "! curl -s -m 1 -o /dev/null http://$BLUE:$PORT/" \
  && echo "blue removed (its listener refuses)" || echo "blue still answers after the reload"
wait "$LPID"

python3 - "$WORK/flip.json" "$flip_at" "$stop_at" "$BLUE" "$GREEN" "$TTL" <<'PY' | tee "$WORK/report.md"
import json, sys
r = json.load(open(sys.argv[1]))
flip, stop = float(sys.argv[2]) - r["start_unix"], float(sys.argv[3]) - r["start_unix"]
blue, green, ttl = sys.argv[4], sys.argv[5], float(sys.argv[6])
errs = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
last_blue = r["last_at"].get(blue)
after = f"{last_blue - flip:.1f} s" if last_blue is not None else "never"
print("| drill | requests | failed | to blue | to green | DNS queries | last request to blue after the flip (TTL) | blue removed after the flip | p99 ms | max ms |")
print("|---|---:|---|---:|---:|---:|---|---|---:|---:|")
print(f"| blue/green flip by weighted DNS | {r['total']} | {r['failed']} ({errs}) | "
      f"{r['by_address'].get(blue, 0)} | {r['by_address'].get(green, 0)} | {r['queries']} | "
      f"{after} ({ttl:g} s) | {stop - flip:.1f} s | {r['p99_ms']} | {r['max_ms']} |")
PY
cp "$WORK/report.md" "$HERE/last-edge-drills.md"
