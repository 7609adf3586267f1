# A real Flotilla cluster on one machine for the cluster-mode benchmarks (sourced, not run):
# a 3-member etcd (e1–e3 at 10.77.0.1–3), a client namespace `cl` (10.77.0.21) and one
# `flotilla node` per host namespace, on the topology of bench/netns.sh. Every request is sent
# from a namespace (`cl_run`): no packet to a 10.77 address ever leaves the root namespace.
#
# A script sets ROOT and NAME (the namespace prefix, unique per run) and sources this; it
# gets WORK (scratch), FLOTILLA (the release binary), ENDPOINTS and a trap that kills every
# process it started by PID and deletes its namespaces by name.

source "$ROOT/bench/netns.sh"

WORK=$(mktemp -d /tmp/flt-cluster.XXXXXX)
TOKEN=bench-token
declare -A NODE_PID=() NODE_ARGS=() HOST_OCTET=()
ETCD_PIDS=(0 0 0 0)
EXTRA_PIDS=()
ENDPOINTS="http://$NETNS_SUBNET.1:2379,http://$NETNS_SUBNET.2:2379,http://$NETNS_SUBNET.3:2379"

cluster_cleanup() {
  local pid
  for pid in "${NODE_PID[@]}" "${ETCD_PIDS[@]}" "${EXTRA_PIDS[@]:-}"; do
    [ -n "$pid" ] && [ "$pid" != 0 ] && kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  netns_down "$NAME" # the instances: every process left in the namespaces, by PID
  [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cluster_cleanup EXIT

now_ms() { date +%s%3N; }
# secs FROM_MS TO_MS: seconds between them, or "never" when one is not a number (a timeout).
secs() {
  python3 -c "import sys; a, b = sys.argv[1:3]; print(f'{(int(b) - int(a)) / 1000:.1f}' if a.isdigit() and b.isdigit() else 'never')" "$1" "$2"
}

# Builds the release binary once; CARGO_TARGET_DIR is honoured; FLOTILLA_BIN=PATH runs that
# binary instead (as bench/lib.sh's bench_build).
cluster_build() {
  if [ -n "${FLOTILLA_BIN:-}" ]; then
    [ -x "$FLOTILLA_BIN" ] || { echo "FLOTILLA_BIN=$FLOTILLA_BIN is not an executable"; exit 1; }
    FLOTILLA=$FLOTILLA_BIN
    return
  fi
  echo "building flotilla (release)"
  (cd "$ROOT" && cargo build --release -q -p flotilla)
  FLOTILLA="${CARGO_TARGET_DIR:-$ROOT/target}/release/flotilla"
}

# The namespaces: e1–e3, cl and every HOST:OCTET given; the route from cl to each checked.
cluster_net() { # HOST:OCTET...
  local item
  netns_up "$NAME" e1:1 e2:2 e3:3 cl:21 "$@"
  for item in "$@"; do
    HOST_OCTET[${item%%:*}]=${item#*:}
    netns_check_route "$NAME" cl "$NETNS_SUBNET.${item#*:}"
    netns_check_route "$NAME" "${item%%:*}" "$NETNS_SUBNET.1"
  done
}

addr() { echo "$NETNS_SUBNET.${HOST_OCTET[$1]}"; }
cl_run() { ip netns exec "$NAME-cl" "$@"; }
etcdctl_() { cl_run etcdctl --endpoints="$ENDPOINTS" --dial-timeout=1s --command-timeout=2s "$@"; }

etcd_start() { # MEMBER (1..3); same data directory on a restart
  local i=$1 a=$NETNS_SUBNET.$1
  local cluster="e1=http://$NETNS_SUBNET.1:2380,e2=http://$NETNS_SUBNET.2:2380,e3=http://$NETNS_SUBNET.3:2380"
  ip netns exec "$NAME-e$i" etcd --name "e$i" --data-dir "$WORK/e$i" \
    --listen-client-urls "http://$a:2379" --advertise-client-urls "http://$a:2379" \
    --listen-peer-urls "http://$a:2380" --initial-advertise-peer-urls "http://$a:2380" \
    --initial-cluster "$cluster" --initial-cluster-state new --logger zap --log-level warn \
    >>"$WORK/e$i.log" 2>&1 &
  ETCD_PIDS[$i]=$!
}

etcd_kill() { kill -9 "${ETCD_PIDS[$1]}" 2>/dev/null || true; wait "${ETCD_PIDS[$1]}" 2>/dev/null || true; }

etcd_wait_healthy() { # bounded: 60 s
  local _
  for _ in $(seq 200); do
    etcdctl_ endpoint health >/dev/null 2>&1 && return 0
    sleep 0.3
  done
  echo "etcd did not become healthy" >&2
  return 1
}

# The member number (1..3) of etcd's raft leader.
etcd_leader() {
  etcdctl_ endpoint status -w json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(s["Endpoint"].split("//")[1].split(":")[0].rsplit(".", 1)[1]); break'
}

# Starts host HOST's node (`ip netns exec` execs it: the PID is the node's) with its zone and
# roles; later calls restart it with the same arguments.
node_start() { # HOST [ZONE ROLES [SLOTS]]
  local h=$1 a
  a=$(addr "$h")
  if [ $# -gt 1 ]; then NODE_ARGS[$h]="$2 $3 ${4:-4}"; fi
  read -r zone roles slots <<<"${NODE_ARGS[$h]}"
  FLOTILLA_ADMIN_TOKEN=$TOKEN RUST_LOG=${NODE_LOG:-info} ip netns exec "$NAME-$h" "$FLOTILLA" node \
    --etcd "$ENDPOINTS" --name "$h" --zone "$zone" --address "$a" --roles "$roles" \
    --slots "$slots" --admin-bind "$a:9090" --state-dir "$WORK/$h" \
    ${LEASE_TTL:+--lease-ttl "$LEASE_TTL"} </dev/null >>"$WORK/$h.log" 2>&1 &
  NODE_PID[$h]=$!
}

node_kill() { # HOST [SIGNAL]
  kill "-${2:-KILL}" "${NODE_PID[$1]}" 2>/dev/null || true
  [ "${2:-KILL}" = KILL ] && { wait "${NODE_PID[$1]}" 2>/dev/null || true; }
  return 0
}

# `flotilla apply` of FILE from the client namespace.
cluster_apply() { cl_run "$FLOTILLA" apply "$1" --etcd "$ENDPOINTS"; }

# The admin API of host VIA (from the client namespace): api VIA METHOD PATH [JSON].
api() {
  local url="http://$(addr "$1"):9090$3"
  if [ $# -ge 4 ]; then
    cl_run curl -sS -f -m "${API_TIMEOUT:-3}" -X "$2" -H "authorization: Bearer $TOKEN" \
      -H 'content-type: application/json' -d "$4" "$url"
  else
    cl_run curl -sS -f -m "${API_TIMEOUT:-3}" -X "$2" -H "authorization: Bearer $TOKEN" "$url"
  fi
}

# PIDs of the demo apps running in host HOST's namespace, one a line.
instance_pids() {
  local pid
  for pid in $(ip netns pids "$NAME-$1" 2>/dev/null); do
    grep -qa demo-app "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
  done
  return 0
}

# "PID INSTANCE_ID" of each demo app on host HOST (the id from the environment its agent gave
# it: cluster mode's API reports no pids, as they belong to the hosts).
instance_ids() {
  local pid id
  for pid in $(instance_pids "$1"); do
    id=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^FLOTILLA_INSTANCE_ID=//p')
    echo "$pid ${id:-?}"
  done
}

# Waits (polling every 200 ms, at most SECS) until COMMAND succeeds; prints the ms it took.
wait_ms() { # SECS COMMAND...
  local t0 deadline
  t0=$(now_ms); deadline=$(( t0 + $1 * 1000 )); shift
  until "$@" >/dev/null 2>&1; do
    (( $(now_ms) < deadline )) || { echo "timeout"; return 1; }
    sleep 0.2
  done
  echo $(( $(now_ms) - t0 ))
}
