#!/usr/bin/env bash
# Latency of the AWS API (issue 18's target: under 5 ms at p99 on this machine), measured
# against a peer in the same run: the admin API's GET /v1/groups on the same flotilla.
#
#   bash bench/aws-api.sh            # N=2000 calls per action by default
#
# Builds flotilla (release), starts it on loopback ports with [aws_api], creates a launch
# template, target group, load balancer, listener and a group of two demo-app instances
# through the API, then times N calls of each action over one keep-alive connection (raw
# Query requests, unsigned as a loopback endpoint without keys allows, so the client's own
# signing is not in the figure) and N calls through boto3 (signing and parsing included).
# Prints p50/p99/max per action and the p99 ratio to the peer. Stops flotilla by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
source "$ROOT/bench/lib.sh"
N="${N:-2000}"

bench_build
venv="${FLOTILLA_AWS_VENV:-$ROOT/target/aws-venv}"
if ! "$venv/bin/python" -c "import boto3" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet boto3 awscli
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
aws_port="$(free_port)" admin_port="$(free_port)" listener_port="$(free_port)"
cat > "$WORK/flotilla.toml" <<TOML
[cluster]
zones = ["az-a", "az-b"]
admin_bind = "127.0.0.1:$admin_port"

[aws_api]
bind = "127.0.0.1:$aws_port"
credentials_env = []

[aws_api.images]
"ami-12c6146b" = ["{flotilla}", "demo-app"]
TOML
"$FLOTILLA" up "$WORK/flotilla.toml" > "$WORK/flotilla.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do grep -q "flotilla is up" "$WORK/flotilla.log" && break; sleep 0.05; done
"$venv/bin/python" "$ROOT/bench/aws_latency.py" "$aws_port" "$admin_port" "$listener_port" "$N"
