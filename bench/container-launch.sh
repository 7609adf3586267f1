#!/usr/bin/env bash
# Time from launch to healthy: an image instance (Podman, the demo image built from a rootfs)
# against the same app as a process, in one run of one flotilla (issue 22's target: the image
# within 0.5 s of the process).
#
#   bench/container-launch.sh [ROUNDS]     (default 10 rounds of each kind, alternating)
#   BIN=target/debug/flotilla bench/container-launch.sh   (that binary, no release build)
#
# Two groups behind their own target groups, both desired 0: each round scales one to 1 and
# polls its target group's health (every 10 ms, through the admin API) until the target is
# healthy, then scales it back to 0 and waits until it is gone. Health checks every 100 ms,
# healthy after 2 in a row, for both. Traffic goes only to 127.0.0.1; the only processes
# signalled are the flotilla started here (by pid), whose shutdown stops its instances; its
# containers are removed by label afterwards in any case.
set -euo pipefail

ROUNDS=${1:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-container-launch.XXXXXX)
ADMIN=${ADMIN:-18590}
IMAGE=localhost/flotilla-bench-demo:1
BIN=$(realpath "${BIN:-$ROOT/target/release/flotilla}")
FPID=""

cleanup() {
  if [ -n "$FPID" ]; then kill -TERM "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true; fi
  podman ps -aq --filter "label=flotilla.home=$WORK/state" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${BIN_GIVEN:-}" ] && [ "$BIN" = "$ROOT/target/release/flotilla" ]; then
  (cd "$ROOT" && cargo build --release -q)
fi
"$ROOT/examples/build-demo-image.sh" "$IMAGE" "$BIN" >/dev/null 2>&1

cat >"$WORK/bench.toml" <<EOF
[cluster]
name = "container-launch"
zones = ["az-a"]
state_dir = "$WORK/state"
admin_bind = "127.0.0.1:$ADMIN"

[launch_templates.process]
command = ["$BIN", "demo-app"]

[launch_templates.image]
image = "$IMAGE"
pull = "never"
args = ["demo-app"]

[target_groups.process.health_check]
path = "/health"
interval = "100ms"
timeout = "90ms"
healthy_threshold = 2

[target_groups.image.health_check]
path = "/health"
interval = "100ms"
timeout = "90ms"
healthy_threshold = 2

[auto_scaling_groups.process]
launch_template = "process"
target_groups = ["process"]
min_size = 0
max_size = 1
desired_capacity = 0

[auto_scaling_groups.image]
launch_template = "image"
target_groups = ["image"]
min_size = 0
max_size = 1
desired_capacity = 0
EOF

"$BIN" up "$WORK/bench.toml" >"$WORK/flotilla.log" 2>&1 &
FPID=$!
for _ in $(seq 200); do
  grep -q "flotilla is up" "$WORK/flotilla.log" && break
  sleep 0.05
done

now_ms() { date +%s%3N; }
health() { curl -s "http://127.0.0.1:$ADMIN/v1/target-groups/$1/health"; }

# One round: ms from the scale-out to a healthy target (prints it).
round() {
  local kind=$1 start end
  start=$(now_ms)
  "$BIN" scale "$kind" 1 --admin "http://127.0.0.1:$ADMIN" >/dev/null
  until health "$kind" | grep -q '"state":"healthy"'; do
    if [ $(( $(now_ms) - start )) -gt 60000 ]; then echo "timeout" >&2; exit 1; fi
    sleep 0.01
  done
  end=$(now_ms)
  echo $(( end - start ))
  "$BIN" scale "$kind" 0 --admin "http://127.0.0.1:$ADMIN" >/dev/null
  until [ "$(health "$kind")" = "[]" ]; do sleep 0.05; done
}

: >"$WORK/results"
for _ in $(seq "$ROUNDS"); do
  for kind in process image; do
    echo "$kind $(round "$kind")" >>"$WORK/results"
  done
done

python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for kind, ms in rows:
    by.setdefault(kind, []).append(int(ms))
med = {k: statistics.median(v) for k, v in by.items()}
print("| instance | rounds | median ms | min ms | max ms |")
print("|---|---|---|---|---|")
for k in ("process", "image"):
    v = by[k]
    print(f"| {k} | {len(v)} | {med[k]:.0f} | {min(v)} | {max(v)} |")
print(f"\nimage − process, medians: {med['image'] - med['process']:.0f} ms; ratio {med['image'] / med['process']:.2f}")
PY
