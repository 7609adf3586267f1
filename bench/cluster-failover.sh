#!/usr/bin/env bash
# Controller failover, measured: a 3-member etcd cluster and three election candidates
# (flotilla-cluster-probe, TTL 5 s), each in its own network namespace (bench/netns.sh).
# Each round SIGKILLs the leader, or SIGSTOPs it, and measures the time until another
# candidate reports that it leads (from the candidates' own wall-clock stamps); after a
# SIGSTOP it also measures how soon after SIGCONT the old leader's write is refused.
#
#   ROUNDS=5 bench/cluster-failover.sh      # needs root, etcd-server, etcd-client
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
NAME=flt-fo$$
WORK=$(mktemp -d /tmp/flt-failover.XXXXXX)
PIDS=()
source "$ROOT/bench/netns.sh"

cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  netns_down "$NAME"
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
stamp() { { grep -m1 "\"event\":\"$2\"" "$1" 2>/dev/null || true; } | grep -o '"wall_ms":[0-9]*' | cut -d: -f2 || true; }
wait_for() { # FILE EVENT [AFTER_MS]: prints the event's wall_ms, waits at most 30 s
  local deadline=$(( $(now_ms) + 30000 )) t
  while (( $(now_ms) < deadline )); do
    t=$(grep "\"event\":\"$2\"" "$1" 2>/dev/null | grep -o '"wall_ms":[0-9]*' | cut -d: -f2 | awk -v a="${3:-0}" '$1 >= a' | head -1 || true)
    [ -n "$t" ] && { echo "$t"; return 0; }
    sleep 0.05
  done
  return 1
}

echo "building flotilla-cluster-probe"
(cd "$ROOT" && cargo build -q -p flotilla-cluster --bin flotilla-cluster-probe)
PROBE=$ROOT/target/debug/flotilla-cluster-probe

netns_up "$NAME" e1:1 e2:2 e3:3 h1:11 h2:12 h3:13
for h in h1 h2 h3; do for a in 1 2 3; do netns_check_route "$NAME" "$h" "$NETNS_SUBNET.$a"; done; done
CLUSTER="e1=http://$NETNS_SUBNET.1:2380,e2=http://$NETNS_SUBNET.2:2380,e3=http://$NETNS_SUBNET.3:2380"
ENDPOINTS="http://$NETNS_SUBNET.1:2379,http://$NETNS_SUBNET.2:2379,http://$NETNS_SUBNET.3:2379"
for i in 1 2 3; do
  a=$NETNS_SUBNET.$i
  ip netns exec "$NAME-e$i" etcd --name "e$i" --data-dir "$WORK/e$i" \
    --listen-client-urls "http://$a:2379" --advertise-client-urls "http://$a:2379" \
    --listen-peer-urls "http://$a:2380" --initial-advertise-peer-urls "http://$a:2380" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --logger zap --log-level warn \
    >"$WORK/e$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 100); do
  ip netns exec "$NAME-h1" etcdctl --endpoints="$ENDPOINTS" --dial-timeout=1s endpoint health >/dev/null 2>&1 && break
  sleep 0.3
done

KILLS=() STOPS=() FENCES=()
for round in $(seq "$ROUNDS"); do
  for mode in kill stop; do
    cand=()
    for h in h1 h2 h3; do
      out=$WORK/$round-$mode-$h.jsonl
      extra=()
      [ "$mode" = stop ] && extra=(--no-self-fence)
      ip netns exec "$NAME-$h" "$PROBE" candidate --endpoints "$ENDPOINTS" --id "$h" "${extra[@]}" >"$out" 2>/dev/null &
      PIDS+=($!)
      cand+=("$h:$!:$out")
    done
    leader=""
    for _ in $(seq 600); do
      for c in "${cand[@]}"; do [ -n "$(stamp "${c##*:}" leader)" ] && { leader=$c; break 2; }; done
      sleep 0.05
    done
    [ -n "$leader" ] || { echo "round $round: no leader" >&2; exit 1; }
    IFS=: read -r lh lpid lout <<<"$leader"
    wait_for "$lout" write >/dev/null
    t0=$(now_ms)
    if [ "$mode" = kill ]; then kill -9 "$lpid"; else kill -STOP "$lpid"; fi
    new=""
    for _ in $(seq 600); do
      for c in "${cand[@]}"; do
        [ "$c" = "$leader" ] && continue
        t=$(stamp "${c##*:}" leader); [ -n "$t" ] && { new=$t; break 2; }
      done
      sleep 0.05
    done
    [ -n "$new" ] || { echo "round $round: no failover after $mode" >&2; exit 1; }
    if [ "$mode" = kill ]; then
      KILLS+=($((new - t0)))
    else
      STOPS+=($((new - t0)))
      t1=$(now_ms); kill -CONT "$lpid"
      f=$(wait_for "$lout" fenced "$t1") || { echo "round $round: resumed leader was not fenced" >&2; exit 1; }
      FENCES+=($((f - t1)))
    fi
    echo "round $round $mode: $lh → new leader after $((new - t0)) ms${f:+, fenced ${FENCES[-1]} ms after SIGCONT}"
    unset f
    for c in "${cand[@]}"; do
      IFS=: read -r _ pid _ <<<"$c"
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    # The killed candidates' election keys leave with their leases (TTL 5 s): let them go.
    for _ in $(seq 200); do
      [ -z "$(ip netns exec "$NAME-h1" etcdctl --endpoints="$ENDPOINTS" get --prefix /flotilla/v1/control/leader/ --keys-only 2>/dev/null)" ] && break
      sleep 0.1
    done
  done
done

summary() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "min %d, median %d, max %d ms (n=%d)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
echo
echo "| drill | kill/stop → another candidate leads |"
echo "|---|---|"
echo "| leader SIGKILL | $(summary "${KILLS[@]}") |"
echo "| leader SIGSTOP | $(summary "${STOPS[@]}") |"
echo "| SIGCONT → old leader's write refused | $(summary "${FENCES[@]}") |"
