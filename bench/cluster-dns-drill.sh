#!/usr/bin/env bash
# Issue 20's cluster-mode DNS drill: during the loss of a load balancer node, clients that
# find the balancer through Flotilla's DNS and honour its TTL must see 0 failed requests.
#
#   bench/cluster-dns-drill.sh [SECONDS]          (default 130 s of load per round; needs root, etcd)
#   CLIENTS=20 RATE=10 KILL_AT=65 LEASE_TTL=5 KINDS="browser first" LOSSES="kill vanish" KEEP_WORK=1 bench/cluster-dns-drill.sh
#
# A real cluster on this machine (bench/cluster-lib.sh): etcd e1–e3, a controller x1, compute
# hosts a1 b1 c1 (one per zone) running group `web` of 3 demo apps, and load balancer nodes
# l1 l2 l3 (one per zone), each serving listener :8080 and the config's `[dns]` on its own
# address (port 5353), zone `example.test` whose apex is an alias to load balancer `front`:
# every lb node's DNS answers with all three lb nodes (TTL 60 s, as Route 53's alias).
#
# Load: bench/dns_load.py from namespace `cl`, CLIENTS clients at RATE requests/s each, asking
# the three name servers (each client its own order, the next one when one does not answer),
# each keeping the answer for its TTL, their starts spread over one TTL. One round per client
# kind in KINDS: `browser` tries the answered addresses in order, a refused connection moving
# to the next, replaces a kept-alive connection the server closed before reusing it, and sends
# a request once more when it failed on a reused connection before any answer byte (what
# browsers, Go's net/http and urllib3 do; see dns_load.py) — the target's client; `first`
# uses the first address only and retries nothing (the contrast: what a TTL alone gives).
# KILL_AT s into each round (after the last client started: every client then holds an answer,
# each expiring at its own moment of the next 60 s), l3 is lost, one way per LOSSES entry
# (default `kill`): `kill` SIGKILLs its node (its address stays, nothing listens: connections
# are refused at once; started again after the round); `vanish` sets its link down (the host
# is gone from the network: connections time out, and the node, cut off from etcd, loses its
# lease; the link comes back after the round and the node re-registers).
# Counted: failed requests (target 0 for `browser`), resends, requests per lb node, and when
# l3's address left every other node's DNS answer (bound: lease TTL + the watch). The table
# goes to bench/last-cluster-dns-drill.md.
#
# Every request is sent from a namespace; every process started is killed by PID and every
# namespace deleted by name on exit (bench/cluster-lib.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=flt-dd$$
source "$ROOT/bench/cluster-lib.sh"
SECS=${1:-130}
CLIENTS=${CLIENTS:-20}
RATE=${RATE:-10}
KILL_AT=${KILL_AT:-65}
LEASE_TTL=${LEASE_TTL:-5}
DNS_PORT=5353
REPORT="$ROOT/bench/last-cluster-dns-drill.md"
LBS=(l1 l2 l3)
KINDS=${KINDS:-browser first}
LOSSES=${LOSSES:-kill}

cluster_build
cluster_net x1:31 l1:41 l2:42 l3:43 a1:51 b1:53 c1:55
for i in 1 2 3; do etcd_start "$i"; done
etcd_wait_healthy

sed -e "s|@GRACE@|10s|" -e "s|@DESIRED@|3|" "$ROOT/bench/cluster-drills.toml" >"$WORK/cluster.toml"
cat >>"$WORK/cluster.toml" <<CONF

[dns]
bind = "0.0.0.0:$DNS_PORT"

[dns.zones."example.test"]
name_servers = ["l1.example.test", "l2.example.test", "l3.example.test"]

[[dns.zones."example.test".records]]
name = "@"
type = "A"
alias = { load_balancer = "front", evaluate_target_health = true }
CONF
for h in "${LBS[@]}"; do
  printf '\n[[dns.zones."example.test".records]]\nname = "%s"\ntype = "A"\nvalues = ["%s"]\n' \
    "$h" "$(addr "$h")" >>"$WORK/cluster.toml"
done
cluster_apply "$WORK/cluster.toml"
node_start x1 az-a control
node_start l1 az-a lb; node_start l2 az-b lb; node_start l3 az-c lb
node_start a1 az-a compute 4; node_start b1 az-b compute 4; node_start c1 az-c compute 4

# The sorted A records lb node VIA's DNS answers for the apex.
answer() { cl_run dig +short +tries=1 +time=1 -p "$DNS_PORT" @"$(addr "$1")" example.test A | sort | tr '\n' ' '; }
want_all="$(for h in "${LBS[@]}"; do addr "$h"; done | sort | tr '\n' ' ')"
want_two="$(for h in l1 l2; do addr "$h"; done | sort | tr '\n' ' ')"
answers_are() { # WANT VIA...
  local want=$1 via
  shift
  for via in "$@"; do [ "$(answer "$via")" = "$want" ] || return 1; done
}

echo "waiting for every lb node's DNS to answer with all three lb nodes"
wait_ms 180 answers_are "$want_all" "${LBS[@]}" >/dev/null || {
  echo "the cluster did not come up; logs in $WORK" >&2
  KEEP_WORK=1
  exit 1
}

servers="$(addr l1):$DNS_PORT,$(addr l2):$DNS_PORT,$(addr l3):$DNS_PORT"
ROWS=()
# round KIND LOSS: load with client KIND, l3 lost (LOSS: kill or vanish) KILL_AT s in, a row
# of figures; then l3 comes back and is answered by every node before the next round.
round() {
  local kind=$1 loss=$2 lpid t0 t1 withdrawn
  cl_run python3 "$ROOT/bench/dns_load.py" "$servers" example.test 8080 "$CLIENTS" "$RATE" \
    "$SECS" "$WORK/load-$kind-$loss.json" 60 "$kind" >/dev/null &
  lpid=$!
  EXTRA_PIDS+=("$lpid")
  sleep "$KILL_AT"
  t0=$(now_ms)
  case $loss in
    kill) node_kill l3 ;;
    vanish) netns_link "$NAME" l3 down ;;
    *) echo "unknown loss $loss (kill or vanish)" >&2; exit 1 ;;
  esac
  withdrawn=$(wait_ms 60 answers_are "$want_two" l1 l2) || true
  t1=$(now_ms); [ "$withdrawn" = timeout ] && t1=timeout
  wait "$lpid" || true
  ROWS+=("$(python3 - "$WORK/load-$kind-$loss.json" "$kind $loss" "$(secs "$t0" "$t1")" "$(addr l1)" "$(addr l2)" "$(addr l3)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errs = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items()))
per = " / ".join(str(r["by_address"].get(a, 0)) for a in sys.argv[4:7])
print(f"| `{sys.argv[2]}` | {r['total']} | {r['failed']}{' (' + errs + ')' if errs else ''} | "
      f"{r['retried']} | {per} | {r['queries']} | {sys.argv[3]} s | {r['p99_ms']} | {r['max_ms']} |")
PY
)")
  echo "${ROWS[-1]}"
  case $loss in
    kill) node_start l3 ;;
    vanish) netns_link "$NAME" l3 up ;;
  esac
  wait_ms 120 answers_are "$want_all" "${LBS[@]}" >/dev/null || echo "l3 is not answered again" >&2
}

for loss in $LOSSES; do
  for kind in $KINDS; do round "$kind" "$loss"; done
done
{
  echo "# Cluster-mode DNS drill: the loss of an lb node ($LOSSES) under TTL-honouring load"
  echo
  echo "\`bench/cluster-dns-drill.sh $SECS\` (CLIENTS=$CLIENTS RATE=$RATE KILL_AT=$KILL_AT LEASE_TTL=$LEASE_TTL LOSSES=\"$LOSSES\","
  echo "alias TTL 60 s, clients spread over 60 s), $(date -u +%Y-%m-%d), $(nproc) cores."
  echo
  echo "| client, loss | requests | failed | resent | served by l1 / l2 / l3 | DNS queries | l3 left l1's and l2's answers after | p99 ms | max ms |"
  echo "|---|---:|---|---:|---|---:|---|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} >"$REPORT"
cat "$REPORT"
