#!/usr/bin/env bash
# Failure drills under steady load (issue 6): failed/total requests, requests answered later
# than 0.5 s after they were due, and latency, for
#   (a) SIGKILL of a random instance every 2 s
#   (b) a zone outage (plus seconds until the lost capacity is back in the other zones)
#   (c) an instance refresh to a new release
#   (d) 20 config reloads
#   (e) a canary rollout (0 → 10 → 50 → 100 %, live weight shifts) and a rollback to 0 %
#   (f) upgrade: three hot upgrades of flotilla itself (`flotilla upgrade`); instance pids and
#       activities must be the same afterwards, and no process or socket left over
#   (g) crash-restart: SIGKILL of flotilla under socket activation (bench/socket_activate.py
#       plays systemd: it keeps the listening socket and restarts flotilla at once)
#
#   bench/drills.sh [SECONDS] [DRILL...]   (default 30 s of load per drill; the refresh runs
#                                           longer; DRILL: kill outage refresh reloads canary
#                                           upgrade crash-restart, default all)
#   FLOTILLA_BIN=/path/to/flotilla bench/drills.sh ...   (a release binary built elsewhere; the
#                                           upgrade drill starts the file at that path again)
#   KEEP_WORK=1 bench/drills.sh ...         (keeps the scratch folder with flotilla's logs)
#
# Load: bench/drill_load.py, CLIENTS clients (default 50) at RATE requests/s each (default 4),
# keep-alive, no retries, a 5 s timeout. The cluster is bench/drills.toml: the quickstart's
# default settings (no retry or ejection tuning), 3 zones × 2 instances. Each drill starts a
# fresh `flotilla up` (fresh state directory) and stops it afterwards. Traffic goes only to
# 127.0.0.1; every load run is bounded by its duration; the only processes signalled are the
# flotilla started here and the instances it started (by the pids its API reports).
set -euo pipefail

SECS=${1:-30}
shift || true
ONLY=("$@")
want() { [ ${#ONLY[@]} -eq 0 ] || [[ " ${ONLY[*]} " == *" $1 "* ]]; }
CLIENTS=${CLIENTS:-50}
RATE=${RATE:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-drills.XXXXXX)
LISTENER=${LISTENER:-18480}
ADMIN=${ADMIN:-18490}
# A run of every drill reports to last-drills.md; one of some drills to last-drills-NAMES.md.
REPORT="$HERE/last-drills${ONLY[*]:+-$(IFS=-; echo "${ONLY[*]}")}.md"
FPID=""

cleanup() {
  if [ -n "$FPID" ] && kill -0 "$FPID" 2>/dev/null; then
    kill -TERM "$FPID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$FPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$FPID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

# The release build (or FLOTILLA_BIN, a binary built elsewhere: see bench/lib.sh). lib.sh's
# cleanup is for the benchmarks' PIDS; this script's own replaces it.
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
trap cleanup EXIT
bench_build

# render RELEASE INTERVAL WEB_WEIGHT CANARY_WEIGHT: writes the config flotilla runs.
render() {
  sed -e "s|@STATE@|$WORK/state|" -e "s|@ADMIN@|$ADMIN|" -e "s|@LISTENER@|$LISTENER|" \
      -e "s|@RELEASE@|$1|" -e "s|@INTERVAL@|$2|" -e "s|@WEB_WEIGHT@|$3|" \
      -e "s|@CANARY_WEIGHT@|$4|" "$HERE/drills.toml" > "$WORK/flotilla.toml"
}

api() { # api METHOD PATH [JSON]
  if [ $# -ge 3 ]; then
    curl -sS -m 5 -X "$1" -H 'content-type: application/json' -d "$3" "http://127.0.0.1:$ADMIN$2"
  else
    curl -sS -m 5 -X "$1" "http://127.0.0.1:$ADMIN$2"
  fi
}

# in_service GROUP [EXCLUDED_ZONE]: in-service instances that the target group reports healthy.
in_service() {
  local g h
  g=$(api GET "/v1/groups/$1" 2>/dev/null) || { echo 0; return; }
  h=$(api GET "/v1/target-groups/$1/health" 2>/dev/null) || { echo 0; return; }
  python3 - "$g" "$h" "${2:-}" <<'PY'
import json, sys
g, h, skip = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
healthy = {t["instance_id"] for t in h if t["state"] == "healthy"}
print(sum(1 for i in g["instances"]
          if i["state"] == "in_service" and i["zone"] != skip and i["id"] in healthy))
PY
}

# wait_until SECONDS COMMAND...: polls every 100 ms; fails after SECONDS.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
has() { [ "$(in_service "$1" "${3:-}")" -ge "$2" ]; }

start() {
  rm -rf "$WORK/state"
  render v1 2s 100 0
  "$FLOTILLA" up "$WORK/flotilla.toml" > "$WORK/flotilla-$1.log" 2>&1 &
  FPID=$!
  wait_until 90 has web 6 && wait_until 60 has canary 3 \
    || { echo "flotilla did not come up; log: $WORK/flotilla-$1.log" >&2; exit 1; }
}

stop() {
  cleanup
  wait "$FPID" 2>/dev/null || true
  FPID=""
}

load() { # load NAME SECONDS: background load, results in $WORK/NAME.json
  python3 "$HERE/drill_load.py" "http://127.0.0.1:$LISTENER/" "$CLIENTS" "$RATE" "$2" \
    "$WORK/$1.json" > /dev/null &
  LPID=$!
}

ROWS=()
NOTES=()
row() { # row NAME NOTE: one line of the table from $WORK/NAME.json
  ROWS+=("$(python3 - "$WORK/$1.json" "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errs = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
print(f"| {sys.argv[2]} | {r['total']} | {r['failed']} ({errs}) | {r['stalled']} | "
      f"{r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {sys.argv[3]} |")
PY
)")
  echo "${ROWS[-1]}"
}

random_pid() { # a random in-service instance's pid of group web
  api GET /v1/groups/web | python3 -c '
import json, random, sys
ps = [i["pid"] for i in json.load(sys.stdin)["instances"] if i["state"] == "in_service" and i["pid"]]
print(random.choice(ps) if ps else "")'
}

pids_of() { api GET /v1/groups/web | python3 -c 'import json,sys; print(sorted(i["pid"] for i in json.load(sys.stdin)["instances"]))'; }
acts_of() { api GET /v1/groups/web/activities | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# procs_with TEXT: pids of the processes whose command line contains TEXT.
procs_with() {
  python3 - "$1" <<'PY'
import os, sys
me = os.getpid()
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == me:
        continue
    try:
        cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    if sys.argv[1] in cmd:
        print(p)
PY
}
# listening PORT: listening TCP sockets on 127.0.0.1:PORT (a socket shared by two processes
# is one line).
listening() { ss -Hltn "sport = :$1" | wc -l; }
# sockets PID: its socket descriptors, as listening + TCP connections (the proxy's keep-alive
# connections to instances and clients') + the rest (unix sockets: the keeper's, …).
sockets() {
  local all l c
  all=$(find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l)
  l=$(ss -Hltnp | grep -c "pid=$1,") || true
  c=$(ss -Htnp | grep -c "pid=$1,") || true
  echo "$l listening + $c connections + $((all - l - c)) other"
}

if want kill; then
# (a) SIGKILL a random instance every 2 s.
echo "(a) kill a random instance every 2 s"
start kill
load kill "$SECS"
kills=0
for _ in $(seq 1 $(( SECS / 2 - 1 ))); do
  sleep 2
  pid=$(random_pid)
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1)) || true; fi
done
wait "$LPID"
row kill "$kills instances SIGKILLed"
stop
fi

if want outage; then
# (b) Zone outage: every instance of az-a SIGKILLed, no launches there for 20 s.
echo "(b) zone outage"
start outage
load outage "$SECS"
sleep 5
t0=$(date +%s.%N)
api POST /v1/zones/az-a/outage '{"duration": "20s"}' > /dev/null
restored=none
for _ in $(seq 1 300); do
  if [ "$(in_service web az-a)" -ge 6 ]; then
    restored=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
    break
  fi
  sleep 0.1
done
wait "$LPID"
row outage "capacity (6 healthy outside az-a) restored in ${restored} s"
stop
fi

if want refresh; then
# (c) Instance refresh to release v2 (min healthy 90 %, warm-up 2 s).
echo "(c) instance refresh"
start refresh
RSECS=$(( SECS > 80 ? SECS : 80 ))
load refresh "$RSECS"
sleep 3
render v2 2s 100 0
api POST /v1/reload '{}' > /dev/null
t0=$(date +%s)
api POST /v1/groups/web/instance-refresh '{"min_healthy_percentage": 90, "instance_warmup": "2s"}' > /dev/null
status=""
deadline=$(( t0 + RSECS - 5 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  status=$(api GET /v1/groups/web/instance-refresh \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], "-", r["status_reason"])') || true
  case "$status" in Pending*|InProgress*) sleep 0.2 ;; *) break ;; esac
done
took=$(( $(date +%s) - t0 ))
wait "$LPID"
row refresh "refresh of 6 instances after ${took} s: $status"
stop
fi

if want reloads; then
# (d) 20 reloads that change health check settings (every target group is updated in place).
echo "(d) 20 reloads"
start reloads
load reloads "$SECS"
ok=0
for i in $(seq 1 20); do
  sleep "$(python3 -c "print($SECS / 21)")"
  if [ $((i % 2)) -eq 1 ]; then render v1 3s 100 0; else render v1 2s 100 0; fi
  api POST /v1/reload '{}' | grep -q '"changes"' && ok=$((ok + 1)) || true
done
wait "$LPID"
row reloads "$ok of 20 reloads applied"
stop
fi

if want canary; then
# (e) Canary, by the operator's weight shifts (`flotilla shift-weights`, live, no reload):
# web/canary 100/0 → 90/10 → 50/50 → 0/100, then rolled back to 100/0.
echo "(e) canary rollout and rollback"
start canary
load canary "$SECS"
step=$(python3 -c "print($SECS / 5)")
shifts=0
for w in 90 50 0 100; do
  sleep "$step"
  "$FLOTILLA" shift-weights front --rule default --admin "http://127.0.0.1:$ADMIN" \
    "web=$w" "canary=$((100 - w))" > /dev/null && shifts=$((shifts + 1)) || true
done
wait "$LPID"
share=$(api GET /v1/groups/canary | python3 -c '
import json, sys
ids = {i["id"] for i in json.load(sys.stdin)["instances"]}
r = json.load(open(sys.argv[1]))
n = sum(v for k, v in r["by_instance"].items() if k in ids)
total = max(1, r["total"])
print(round(100 * n / total))' "$WORK/canary.json")
row canary "$shifts of 4 weight shifts applied; the canary served ${share} % of requests"
stop
fi

# (f) Three hot upgrades under load: no failed request, the same instance pids; afterwards one
# flotilla, one instance keeper, one socket per listening port, the last process's sockets
# beside its connections as many as the first's, no upgrade socket left — once stopped, nothing.
if want upgrade; then
echo "(f) three hot upgrades"
start upgrade
before=$(pids_of); acts=$(acts_of); fds0=$(sockets "$FPID"); first=$FPID
load upgrade "$SECS"
ups=0
for _ in 1 2 3; do
  sleep "$(python3 -c "print($SECS / 4)")"
  new=$("$FLOTILLA" upgrade --admin "http://127.0.0.1:$ADMIN" | sed -n 's/.*flotilla pid \([0-9]*\) now serves.*/\1/p')
  if [ -n "$new" ]; then ups=$((ups + 1)); FPID=$new; fi
done
wait "$LPID"
wait "$first" 2>/dev/null || true  # the first process was this script's child: reap it
after=$(pids_of)
same=$([ "$before" = "$after" ] && echo "same instance pids" || echo "INSTANCE PIDS CHANGED")
ups_left=$(procs_with "$WORK/flotilla.toml" | wc -l)
keepers=$(procs_with "$WORK/state/keeper.sock" | wc -l)
leftover="$ups_left flotilla up, $keepers keeper, listening sockets $(listening "$LISTENER") on the listener and $(listening "$ADMIN") on the admin port, sockets of the first process $fds0, of the last $(sockets "$FPID")"
[ -e "$WORK/state/upgrade.sock" ] && leftover="$leftover, UPGRADE SOCKET LEFT"
instances=$(echo "$after" | tr -d '[],')
row upgrade "$ups of 3 upgrades; $same; activities $acts → $(acts_of); after: $leftover"
stop
alive=0
for p in $instances $(procs_with "$WORK/state/keeper.sock") $(procs_with "$WORK/flotilla.toml"); do
  kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
done
NOTES+=("upgrade, after the stop: $alive of the instances, keeper and flotilla processes still alive")
echo "${NOTES[-1]}"
fi

# (g) Crash restart: SIGKILL of flotilla; the socket stays with the stand-in for systemd, which
# restarts flotilla at once; the instances die with it and are launched again.
if want crash-restart; then
echo "(g) crash restart with socket activation"
rm -rf "$WORK/state"
render v1 2s 100 0
python3 "$HERE/socket_activate.py" "127.0.0.1:$LISTENER" "$WORK/flotilla.pid" 1 -- \
  "$FLOTILLA" up "$WORK/flotilla.toml" > "$WORK/flotilla-crash.log" 2>&1 &
SPID=$!
wait_until 90 has web 6 && wait_until 60 has canary 3 \
  || { echo "flotilla did not come up; log: $WORK/flotilla-crash.log" >&2; exit 1; }
load crash "$SECS"
sleep 5
before=$(pids_of)
killed=$(cat "$WORK/flotilla.pid")
t0=$(date +%s.%N)
kill -KILL "$killed"
# The restarted process (a new pid in the pid file) must report the 6 healthy itself.
back=none
for _ in $(seq 1 600); do
  if [ "$(cat "$WORK/flotilla.pid")" != "$killed" ] && has web 6 2>/dev/null; then
    back=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')"); break
  fi
  sleep 0.1
done
wait "$LPID"
kept=$(python3 -c "import sys; a, b = eval(sys.argv[1]), eval(sys.argv[2]); print(len(set(a) & set(b)))" "$before" "$(pids_of)")
row crash "SIGKILL, restarted at once on the kept socket; 6 healthy again after ${back} s; $kept of 6 instance pids the same"
FPID=$(cat "$WORK/flotilla.pid"); stop
wait "$SPID" 2>/dev/null || true
fi

{
  echo "Drills: \`bench/drills.sh $SECS${ONLY[*]:+ ${ONLY[*]}}\` — $CLIENTS clients × $RATE req/s, keep-alive, no retries, 5 s timeout; $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "| drill | requests | failed | stalled > 0.5 s | p50 ms | p99 ms | max ms | note |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  if [ ${#NOTES[@]} -gt 0 ]; then echo; printf '%s\n' "${NOTES[@]}"; fi
} > "$REPORT"
echo
cat "$REPORT"
if [ -n "${KEEP_WORK:-}" ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
