#!/usr/bin/env bash
# Cluster mode at scale on this machine (issue 17: "50 node processes and 500 instances"):
# NODES host namespaces n01… over ZONES zones, one `flotilla node` each with SLOTS slots
# (n01–n03 also control and lb, the rest compute only), a 3-member etcd and a client
# namespace, as in bench/cluster-lib.sh. Once every node is listed, the group `web` (demo
# apps, ELB checks every 5 s) is scaled from 0 to INSTANCES through the admin API, and the
# script measures the time until all are in service and healthy, then over 30 s of steady
# state: the RSS of the nodes and of the instances, CPU used by nodes and etcd, etcd's keys,
# database size and revisions.
#
#   NODES=50 SLOTS=10 ZONES=5 INSTANCES=500 bench/cluster-scale.sh     # needs root, etcd
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=flt-cs$$
source "$ROOT/bench/cluster-lib.sh"
NODES=${NODES:-50}
SLOTS=${SLOTS:-10}
ZONES=${ZONES:-5}
INSTANCES=${INSTANCES:-500}
CHECK="python3 $ROOT/bench/cluster_check.py"
ZONE_NAMES=(az-a az-b az-c az-d az-e az-f az-g az-h)

cluster_build
hosts=()
for i in $(seq 1 "$NODES"); do hosts+=("$(printf 'n%02d' "$i"):$((100 + i))"); done
cluster_net "${hosts[@]}"
for i in 1 2 3; do etcd_start "$i"; done
etcd_wait_healthy

zones=$(printf '"%s", ' "${ZONE_NAMES[@]:0:$ZONES}")
cat >"$WORK/scale.toml" <<EOF
[cluster]
name = "scale"
zones = [${zones%, }]

[launch_templates.web]
command = ["{flotilla}", "demo-app"]
stop_timeout = "5s"

[target_groups.web.health_check]
path = "/health"
interval = "5s"
timeout = "2s"
healthy_threshold = 2

[load_balancers.front]

[[load_balancers.front.listeners]]
bind = "0.0.0.0:8080"
protocol = "http"
default_action = { type = "forward", target_group = "web" }

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 0
max_size = $INSTANCES
desired_capacity = 0
health_check_type = "elb"
health_check_grace_period = "60s"
EOF
cluster_apply "$WORK/scale.toml"

NODE_LOG=warn
for i in $(seq 1 "$NODES"); do
  h=$(printf 'n%02d' "$i")
  roles=compute; [ "$i" -le 3 ] && roles=control,lb,compute
  node_start "$h" "${ZONE_NAMES[$(( (i - 1) % ZONES ))]}" "$roles" "$SLOTS"
done
count_nodes() { api n01 GET /v1/nodes | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
all_listed() { [ "$(count_nodes)" = "$NODES" ]; }
t=$(wait_ms 180 all_listed) || { echo "only $(count_nodes || echo 0) of $NODES nodes listed; logs in $WORK" >&2; KEEP_WORK=1; exit 1; }
echo "$NODES nodes listed after $(secs 0 "$t") s"

group() { API_TIMEOUT=10 api n01 GET /v1/groups/web; }
in_service() { group | python3 -c 'import json,sys; g=json.load(sys.stdin); print(sum(i["state"] == "in_service" and i["health"] == "healthy" for i in g["instances"]), len(g["instances"]))'; }
full() { group | $CHECK steady && [ "$(group | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["instances"]))')" = "$INSTANCES" ]; }

revision() { etcdctl_ endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])'; }
rs=$(revision)
t0=$(now_ms)
api n01 PUT /v1/groups/web/capacity "{\"desired_capacity\": $INSTANCES}" >/dev/null
took=timeout
deadline=$(( t0 + ${SCALE_TIMEOUT:-900} * 1000 ))
while (( $(now_ms) < deadline )); do
  if full; then took=$(( $(now_ms) - t0 )); break; fi
  echo "  $(secs "$t0" "$(now_ms)") s: in service and healthy / instances: $(in_service || echo '?')"
  sleep 5
done
echo "scale 0 → $INSTANCES: $(secs 0 "$took") s"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
demo_pids() { local h; for h in "${!NODE_PID[@]}"; do instance_pids "$h"; done; }
sum_ticks() { local s=0 p; for p in "$@"; do s=$(( s + $(cpu_ticks "$p") )); done; echo "$s"; }

# The load balancer nodes write their first health vote on each new target one at a time
# (1500 for 500 instances and 3 nodes): wait until etcd's revision stands still for 5 s
# (bounded), so the steady window measures what keeps writing, not that backlog.
quiet=$(now_ms); last=$(revision); settled=timeout
while (( $(now_ms) < quiet + 300000 )); do
  sleep 5
  r=$(revision)
  if [ "$r" = "$last" ]; then settled=$(( $(now_ms) - quiet - 5000 )); break; fi
  last=$r
done
echo "writes settled $(secs 0 "$settled") s after the scale-out"

node_pids=("${NODE_PID[@]}")
etcd_pids=("${ETCD_PIDS[@]:1}")
n0=$(sum_ticks "${node_pids[@]}"); e0=$(sum_ticks "${etcd_pids[@]}"); r0=$(revision)
sleep 30
n1=$(sum_ticks "${node_pids[@]}"); e1=$(sum_ticks "${etcd_pids[@]}"); r1=$(revision)
hz=$(getconf CLK_TCK)
# What wrote during the steady window, by kind of key: a watch from r0+1 replays the history
# (lease keep-alives are not revisions and do not show).
writers=$( (timeout 5 ip netns exec "$NAME-cl" etcdctl --endpoints="$ENDPOINTS" watch --prefix /flotilla/ \
  --rev $((r0 + 1)) || true) | python3 -c '
import collections, sys
lines = sys.stdin.read().split("\n")
count = collections.Counter()
for i, line in enumerate(lines[:-1]):
    if line in ("PUT", "DELETE") and lines[i + 1].startswith("/flotilla/"):
        parts = lines[i + 1].split("/")[3:]
        kind = parts[0] + ("/…/" + parts[-1] if len(parts) > 2 and parts[0] == "groups" else "")
        count[line.lower() + " " + kind] += 1
print(", ".join(f"{k} {n}" for k, n in count.most_common()) or "none")
' "$r1")

node_rss=$(for p in "${node_pids[@]}"; do rss_kb "$p"; done | sort -n)
demo=$(demo_pids)
demo_rss=$(for p in $demo; do rss_kb "$p"; done | awk '{s += $1} END {print s}')
keys=$(etcdctl_ get --prefix /flotilla/ --keys-only | grep -c . || true)
db=$(etcdctl_ endpoint status -w json | python3 -c 'import json,sys; print(max(s["Status"]["dbSize"] for s in json.load(sys.stdin)))')
etcd_rss=$(for p in "${etcd_pids[@]}"; do rss_kb "$p"; done | awk '{s += $1} END {print s}')
summary=$(python3 - "$node_rss" <<'PY'
import sys
v = sorted(int(x) for x in sys.argv[1].split())
print(f"median {v[len(v) // 2] / 1024:.1f} MiB, max {v[-1] / 1024:.1f} MiB, total {sum(v) / 1024:.0f} MiB")
PY
)
{
  echo "Cluster scale: \`NODES=$NODES SLOTS=$SLOTS ZONES=$ZONES INSTANCES=$INSTANCES bench/cluster-scale.sh\`, $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| nodes listed after start | $(secs 0 "$t") s |"
  echo "| scale 0 → $INSTANCES, until all in service and healthy | $(secs 0 "$took") s |"
  echo "| demo apps running | $(echo "$demo" | grep -c . || true) |"
  echo "| node RSS ($NODES nodes) | $summary |"
  echo "| instance RSS (all) | $(( ${demo_rss:-0} / 1024 )) MiB |"
  echo "| node CPU, steady 30 s (all nodes) | $(python3 -c "print(f'{($n1 - $n0) / $hz / 30 * 100:.0f} % of a core')") |"
  echo "| etcd CPU, steady 30 s (3 members) | $(python3 -c "print(f'{($e1 - $e0) / $hz / 30 * 100:.0f} % of a core')") |"
  echo "| etcd writes during the scale-out, until they settle | $(( r0 - rs )) revisions, settled $(secs 0 "$settled") s after all were healthy |"
  echo "| etcd writes, steady 30 s | $(( r1 - r0 )) revisions ($(python3 -c "print(f'{($r1 - $r0) / 30:.1f}')")/s) |"
  echo "| … by kind of key (a watch replaying the window; may run past it) | $writers |"
  echo "| etcd keys under /flotilla/, db size, RSS (3 members) | $keys keys, $(( db / 1024 )) KiB, $(( ${etcd_rss:-0} / 1024 )) MiB |"
} | tee "$ROOT/bench/last-cluster-scale.md"
