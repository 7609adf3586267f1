#!/usr/bin/env bash
# Latency of the AWS API (issue 18's target: under 5 ms at p99 on this machine), against the
# reference emulator in the same run: moto's server (`moto_server`, from PyPI) on loopback.
#
#   bash bench/aws-api.sh            # N=2000 calls per action and endpoint, ROUNDS=5
#
# Builds flotilla (release; FLOTILLA_BIN to measure another binary), starts it on loopback
# with [aws_api] and an access key (so every call's SigV4 signature is verified, as with keys
# configured), starts moto_server beside it, and runs bench/aws_latency.py: the same
# resources on both, then each action timed in rounds alternating the two endpoints (raw
# signed Query requests over keep-alive connections; see the script). Prints p50/p99 per
# action and endpoint and the median per-round ratio of the p99s. Stops both by PID.
#
# BENCH_RT=1 runs Flotilla, moto and the client under SCHED_RR (`chrt -r 20`, needs root), so
# builds running on the same cores do not preempt them: the tail then shows the servers' own
# work rather than the run queue's length. Both endpoints get the same treatment.
#
# boto3 and moto[server] come from PyPI into the venv FLOTILLA_AWS_VENV (default
# target/aws-venv, the one .ci/run creates; moto is added when missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
source "$ROOT/bench/lib.sh"
N="${N:-2000}" ROUNDS="${ROUNDS:-5}"
RT=()
[ "${BENCH_RT:-0}" = 1 ] && RT=(chrt -r 20)

bench_build
venv="${FLOTILLA_AWS_VENV:-$ROOT/target/aws-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import boto3" 2>/dev/null || "$venv/bin/pip" install --quiet boto3 awscli
[ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install --quiet "moto[server]"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
aws_port="$(free_port)" admin_port="$(free_port)" listener_port="$(free_port)" moto_port="$(free_port)"
cat > "$WORK/flotilla.toml" <<TOML
[cluster]
zones = ["az-a", "az-b"]
admin_bind = "127.0.0.1:$admin_port"
state_dir = "$WORK/state"

[aws_api]
bind = "127.0.0.1:$aws_port"
credentials_env = ["BENCH_AWS_KEYS"]

[aws_api.images]
"ami-12c6146b" = ["{flotilla}", "demo-app"]
TOML
BENCH_AWS_KEYS=test:test "${RT[@]}" "$FLOTILLA" up "$WORK/flotilla.toml" > "$WORK/flotilla.log" 2>&1 &
PIDS+=($!)
"${RT[@]}" "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do grep -q "flotilla is up" "$WORK/flotilla.log" && break; sleep 0.05; done
for _ in $(seq 1 200); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $moto_port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
echo "flotilla $("$FLOTILLA" --version 2>/dev/null || true), moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)'), ${RT[*]:-normal priority}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"${RT[@]}" "$venv/bin/python" "$ROOT/bench/aws_latency.py" "$aws_port" "$moto_port" "$listener_port" "$N" "$ROUNDS"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
