#!/usr/bin/env bash
# Fuzzes the admin API from its own OpenAPI document with schemathesis: starts the debug binary
# on a generated config (ephemeral loopback ports, the demo app as instances), runs
# schemathesis against /openapi.json with every check (no server error, answers match the
# document) except positive_data_acceptance — a schema-valid capacity outside min..max is refused
# with 422 by design — and use_after_free: our DELETEs cancel or reset something that goes on
# being described (a cancelled instance refresh, as AWS DescribeInstanceRefreshes shows it; the
# file's weights after a reset; a zone after its drill ended), so a GET after them answers 200
# by design. POST /v1/upgrade is left out: it replaces the process under test with a successor
# (a hot upgrade), which the run would then leave behind. Stops flotilla by PID, and any
# successor it started in this run's directory.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
venv="${SCHEMATHESIS_VENV:-$work/venv}"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
admin_port="$(free_port)"
listener_port="$(free_port)"
cat > "$work/flotilla.toml" <<TOML
[cluster]
name = "schemathesis"
zones = ["az-a", "az-b"]
admin_bind = "127.0.0.1:$admin_port"

[launch_templates.web]
command = ["{flotilla}", "demo-app"]
stop_timeout = "2s"

[target_groups.web]
deregistration_delay = "1s"

[target_groups.web.health_check]
path = "/health"
interval = "500ms"
timeout = "250ms"

[load_balancers.front]
type = "application"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:$listener_port"
default_action = { type = "forward", target_group = "web" }

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 1
max_size = 3
desired_capacity = 1
TOML

cargo build --quiet --bin flotilla
./target/debug/flotilla up "$work/flotilla.toml" > "$work/flotilla.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  # Anything still running from this run's directory (a successor, its keeper, instances).
  for p in $(pgrep -f "$work" || true); do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

status=0
"$venv/bin/st" run "http://127.0.0.1:$admin_port/openapi.json" \
  --wait-for-schema 30 \
  --checks all \
  --exclude-checks positive_data_acceptance,use_after_free \
  --exclude-path /v1/upgrade \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --request-timeout 10 || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- flotilla log ---"
  tail -n 100 "$work/flotilla.log"
fi
exit "$status"
