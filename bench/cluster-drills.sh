#!/usr/bin/env bash
# The cluster-mode failure matrix under paced load (issue 17): a real cluster on this machine
# (bench/cluster-lib.sh) — etcd e1–e3, controllers x1–x3, load balancer nodes l1 (az-a) and
# l2 (az-b), compute hosts a1 a2 (az-a), b1 b2 (az-b), c1 c2 (az-c) with 4 slots each, group
# `web` of 6 demo apps (2 per zone, ELB health checks every 1 s) — and bench/drill_load.py's
# paced client in namespace `cl` against l1, a load balancer node no drill touches. Drills:
#
#   host      SIGKILL of a compute host's node and its instances (then the host returns, empty)
#   kill      SIGKILL of the controller leader's node (then it is started again)
#   stop      SIGSTOP of the controller leader's node for 15 s, then SIGCONT
#   agent     SIGKILL of a compute node, started again 3 s later (it adopts its instances)
#   etcd      SIGKILL of etcd's raft leader, restarted after 10 s
#   quorum    SIGKILL of 2 of 3 etcd members for QUORUM_SECS (60), then restarted
#   zone      every link of az-c down until its capacity is back elsewhere (+5 s), then up
#   oneway    blackhole routes from one agent to etcd (the agent still serves the balancers)
#
# For each: requests, failed, stalled (> 0.5 s late), the drill's recovery times, and after
# it (and its heal) the invariants: instances == desired, no orphan process on any host, no
# instance under two hosts in etcd. The table goes to bench/last-cluster-drills.md.
#
#   bench/cluster-drills.sh [DRILL...]     # default: all, in the order above; needs root, etcd
#   CLIENTS=20 RATE=5 LEASE_TTL=10 GRACE=10s QUORUM_SECS=60 KEEP_WORK=1 bench/cluster-drills.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=flt-cd$$
source "$ROOT/bench/cluster-lib.sh"
CLIENTS=${CLIENTS:-20}
RATE=${RATE:-5}
GRACE=${GRACE:-10s}
QUORUM_SECS=${QUORUM_SECS:-60}
DRILLS=("$@")
[ ${#DRILLS[@]} -gt 0 ] || DRILLS=(host kill stop agent etcd quorum zone oneway)
CHECK="python3 $ROOT/bench/cluster_check.py"
REPORT="$ROOT/bench/last-cluster-drills.md"
COMPUTE=(a1 a2 b1 b2 c1 c2)
DESIRED=6

cluster_build
cluster_net x1:31 x2:32 x3:33 l1:41 l2:42 a1:51 a2:52 b1:53 b2:54 c1:55 c2:56
for i in 1 2 3; do etcd_start "$i"; done
etcd_wait_healthy

sed -e "s|@GRACE@|$GRACE|" -e "s|@DESIRED@|$DESIRED|" "$ROOT/bench/cluster-drills.toml" >"$WORK/cluster.toml"
cluster_apply "$WORK/cluster.toml"
node_start x1 az-a control; node_start x2 az-b control; node_start x3 az-c control
node_start l1 az-a lb; node_start l2 az-b lb
for h in "${COMPUTE[@]}"; do node_start "$h" "az-${h:0:1}" compute 4; done

group() { api l1 GET /v1/groups/web; }
steady() { group | $CHECK steady; }
has_capacity() { group | $CHECK capacity "$@"; } # N [EXCLUDED_ADDR...]
leader() { api l1 GET /v1/nodes | python3 -c 'import json,sys; print(next((n["name"] for n in json.load(sys.stdin) if n["leader"]), ""))'; }
leaders() { api l1 GET /v1/nodes | python3 -c 'import json,sys; print(sum(n["leader"] for n in json.load(sys.stdin)))'; }
listed() { api l1 GET /v1/nodes | python3 -c 'import json,sys; sys.exit(0 if any(n["name"] == sys.argv[1] for n in json.load(sys.stdin)) else 1)' "$1"; }
unlisted() { ! listed "$1"; }
desired() { group | python3 -c 'import json,sys; print(json.load(sys.stdin)["desired_capacity"])'; }
activity_count() { api l1 GET /v1/groups/web/activities | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# A compute host of ZONE (a, b, c) that runs at least one instance.
busy_host() { local h; for h in "${COMPUTE[@]}"; do [[ $h == "$1"* ]] && [ -n "$(instance_pids "$h")" ] && { echo "$h"; return; }; done; }
all_pids() { local h; for h in "${COMPUTE[@]}"; do instance_pids "$h" | sed "s/^/$h /"; done; }
all_ids() { local h; for h in "${COMPUTE[@]}"; do instance_ids "$h" | sed "s/^/$h /"; done; }
set_desired() { # N: until accepted (a leader answers), bounded by 30 s; prints the ms it took
  API_TIMEOUT=1 wait_ms 30 api l1 PUT /v1/groups/web/capacity "{\"desired_capacity\": $1}" >"$WORK/put.ms" || true
  cat "$WORK/put.ms"
}

# The invariants once the group has settled (at most 180 s): "ok" or what is wrong.
invariants() {
  local settle
  settle=$(wait_ms 180 steady) || true
  sleep 3 # a stopped instance's process exits after its drain
  group >"$WORK/group.json" || echo '{"instances": [], "desired_capacity": -1}' >"$WORK/group.json"
  all_ids >"$WORK/pids.txt"
  etcdctl_ get --prefix /flotilla/v1/assign/ --keys-only >"$WORK/keys.txt" 2>/dev/null || true
  etcdctl_ get --prefix /flotilla/v1/obs/ --keys-only >>"$WORK/keys.txt" 2>/dev/null || true
  $CHECK invariants "$WORK/group.json" "$WORK/pids.txt" "$WORK/keys.txt" || true
  [ "$settle" != timeout ] || echo "(not steady within 180 s)"
}

load() { # NAME SECONDS: paced load from cl against l1, in the background
  cl_run python3 "$ROOT/bench/drill_load.py" "http://$(addr l1):8080/" "$CLIENTS" "$RATE" "$2" \
    "$WORK/$1.json" >/dev/null &
  LPID=$!
  EXTRA_PIDS+=("$LPID")
  sleep 5
}

ROWS=()
row() { # NAME NOTE INVARIANTS
  wait "$LPID" || true
  ROWS+=("$(python3 - "$WORK/$1.json" "$1" "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errs = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items()))
print(f"| {sys.argv[2]} | {r['total']} | {r['failed']}{' (' + errs + ')' if errs else ''} | "
      f"{r['stalled']} | {r['max_ms']} | {sys.argv[3]} | {sys.argv[4]} |")
PY
)")
  echo "${ROWS[-1]}"
}

echo "waiting for $DESIRED instances in service"
wait_ms 180 steady >/dev/null || { echo "the cluster did not come up; logs in $WORK" >&2; KEEP_WORK=1; exit 1; }
echo "before the drills: $(invariants)"

drill_host() {
  local h a t0 gone back
  h=$(busy_host a); a=$(addr "$h")
  load host 50
  t0=$(now_ms)
  node_kill "$h"
  for pid in $(ip netns pids "$NAME-$h"); do kill -9 "$pid" 2>/dev/null || true; done
  # Capacity first: it may come back before the host's lease runs out (the balancers' health
  # checks condemn its instances sooner); both times count from the kill.
  back=$(wait_ms 90 has_capacity "$DESIRED" "$a") || true
  t1=$(now_ms); [ "$back" = timeout ] && t1=timeout
  gone=$(wait_ms 60 unlisted "$h") || true
  t2=$(now_ms); [ "$gone" = timeout ] && t2=timeout
  row host "$h lost; capacity back after $(secs "$t0" "$t1") s; unlisted (lease expired) after $(secs "$t0" "$t2") s" "$(invariants)"
  node_start "$h"
  wait_ms 60 listed "$h" >/dev/null || true
}

drill_leader() { # kill|stop
  local l t0 act n want
  l=$(leader); want=$(( $(desired) == DESIRED ? DESIRED + 1 : DESIRED ))
  load "$1" 40
  t0=$(now_ms)
  if [ "$1" = kill ]; then node_kill "$l"; else node_kill "$l" STOP; fi
  act=$(set_desired "$want")
  n=$(leader)
  if [ "$1" = stop ]; then
    while (( $(now_ms) < t0 + 15000 )); do sleep 0.2; done
    node_kill "$l" CONT
    sleep 5
  fi
  row "$1" "leader $l → $n; first write (desired $want) accepted $(secs 0 "$act") s after the $1; leaders now $(leaders)" "$(invariants)"
  [ "$1" = kill ] && node_start "$l"
  wait_ms 60 listed "$l" >/dev/null || true
}

drill_agent() {
  local h before after back
  h=$(busy_host b); before=$(instance_pids "$h" | sort | tr '\n' ' ')
  load agent 30
  node_kill "$h"
  sleep 3
  node_start "$h"
  back=$(wait_ms 60 listed "$h") || true
  sleep 5
  after=$(instance_pids "$h" | sort | tr '\n' ' ')
  row agent "$h restarted, registered after $(secs 0 "$back") s; instance pids ${before}→ ${after}($([ "$before" = "$after" ] && echo adopted || echo CHANGED))" "$(invariants)"
}

put_probe() { etcdctl_ put /flotilla-bench/probe "$(now_ms)" >/dev/null; }

drill_etcd() {
  local m w
  m=$(etcd_leader)
  load etcd 30
  etcd_kill "$m"
  w=$(wait_ms 30 put_probe) || true
  sleep 10
  etcd_start "$m"
  etcd_wait_healthy
  row etcd "member e$m (raft leader) killed; etcd writes again after $(secs 0 "$w") s; back after 10 s" "$(invariants)"
}

drill_quorum() {
  local m k1 k2 leases_before leases_after pids_before pids_after acts_before acts_after healthy
  m=$(etcd_leader); k1=$m; k2=$(( m % 3 + 1 ))
  leases_before=$(etcdctl_ lease list | grep -v found | sort | tr '\n' ' ')
  pids_before=$(all_pids | sort | tr '\n' ' '); acts_before=$(activity_count)
  load quorum $(( QUORUM_SECS + 35 ))
  etcd_kill "$k1"; etcd_kill "$k2"
  sleep "$QUORUM_SECS"
  pids_during=$(all_pids | sort | tr '\n' ' ')
  etcd_start "$k1"; etcd_start "$k2"
  healthy=$(wait_ms 60 etcdctl_ endpoint health) || true
  sleep 20
  leases_after=$(etcdctl_ lease list | grep -v found | sort | tr '\n' ' ')
  pids_after=$(all_pids | sort | tr '\n' ' '); acts_after=$(activity_count)
  nodes_after=$(api l1 GET /v1/nodes | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  local kept=0 total=0 l
  for l in $leases_before; do total=$((total + 1)); [[ " $leases_after " == *" $l "* ]] && kept=$((kept + 1)); done
  row quorum "e$k1, e$k2 down ${QUORUM_SECS} s, healthy $(secs 0 "$healthy") s after restart; instance pids $([ "$pids_before" = "$pids_during" ] && [ "$pids_before" = "$pids_after" ] && echo unchanged || echo CHANGED); activities $acts_before → $acts_after; leases kept $kept of $total; nodes listed $nodes_after of 11" "$(invariants)"
}

drill_zone() {
  local t0 back healed settled
  load zone 75
  t0=$(now_ms)
  netns_link "$NAME" c1 down; netns_link "$NAME" c2 down
  back=$(wait_ms 60 has_capacity "$DESIRED" "$(addr c1)" "$(addr c2)") || true
  sleep 5
  netns_link "$NAME" c1 up; netns_link "$NAME" c2 up
  healed=$(now_ms)
  settled=$(wait_ms 120 steady) || true
  row zone "az-c cut; capacity back in az-a/az-b after $(secs 0 "$back") s; cut for $(secs "$t0" "$healed") s; steady $(secs 0 "$settled") s after the heal" "$(invariants)"
}

drill_oneway() {
  local h a t0 gone back settled i
  h=$(busy_host a); a=$(addr "$h")
  load oneway 75
  t0=$(now_ms)
  for i in 1 2 3; do ip -n "$NAME-$h" route add blackhole "$NETNS_SUBNET.$i/32"; done
  gone=$(wait_ms 60 unlisted "$h") || true
  back=$(wait_ms 60 has_capacity "$DESIRED" "$a") && back=$(( $(now_ms) - t0 )) || true
  sleep 5
  for i in 1 2 3; do ip -n "$NAME-$h" route del blackhole "$NETNS_SUBNET.$i/32"; done
  settled=$(wait_ms 120 steady) || true
  row oneway "$h → etcd cut for $(secs "$t0" "$(now_ms)") s: unlisted after $(secs 0 "$gone") s, capacity elsewhere after $(secs 0 "$back") s; steady $(secs 0 "$settled") s after the heal" "$(invariants)"
}

for d in "${DRILLS[@]}"; do
  echo "drill: $d"
  case $d in
    host) drill_host ;;
    kill|stop) drill_leader "$d" ;;
    agent) drill_agent ;;
    etcd) drill_etcd ;;
    quorum) drill_quorum ;;
    zone) drill_zone ;;
    oneway) drill_oneway ;;
    *) echo "unknown drill $d" >&2; exit 64 ;;
  esac
done

{
  echo "Cluster drills: \`bench/cluster-drills.sh ${*:-}\` — $CLIENTS clients × $RATE req/s against l1, keep-alive, no retries, 5 s timeout; lease TTL ${LEASE_TTL:-10} s, host_lost_grace $GRACE; $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "| drill | requests | failed | stalled > 0.5 s | max ms | what happened (times from the injection) | invariants after |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} >"$REPORT"
echo
cat "$REPORT"
