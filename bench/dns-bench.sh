#!/usr/bin/env bash
# DNS answers per CPU-second: Flotilla's server against Knot DNS and NSD (Debian's packages),
# each with one worker, the same zone, measured with dnsperf in one run, interleaved; ratios
# per round.
#
#   bench/dns-bench.sh [ROUNDS] [SECONDS]        (defaults: 10 rounds × 3 s)
#
# Cases: `a` (www.example.test A, an answer) and `nx` (a name that does not exist: NXDOMAIN
# with the SOA). The server is pinned to core 0, dnsperf to core 1. CPU time per round is
# read from /proc/PID/stat (all threads, and NSD's child processes).
#
# Traffic goes only to 127.0.0.1; every load run is bounded by its duration.
set -euo pipefail

ROUNDS=${1:-10}
SECS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-dns-bench.XXXXXX)
RESULTS="$WORK/results.csv"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
bench_install dnsperf:dnsperf knotd:knot nsd:nsd dig:dnsutils
bench_build

P_KNOT=19401 P_FLOTILLA=19402 P_NSD=19403 ADMIN=19490

# --- Knot: one UDP and one TCP worker ------------------------------------------------------
mkdir -p "$WORK/knot"
cat > "$WORK/knot/example.test.zone" <<ZONE
\$ORIGIN example.test.
\$TTL 300
@    SOA ns1 hostmaster 1 7200 900 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
www  A   192.0.2.1
ZONE
cat > "$WORK/knot/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$P_KNOT
    rundir: $WORK/knot
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: $WORK/knot
zone:
  - domain: example.test
    file: $WORK/knot/example.test.zone
    storage: $WORK/knot
CONF
taskset -c 0 knotd -c "$WORK/knot/knot.conf" > "$WORK/knot/log" 2>&1 &
KNOT_PID=$!; PIDS+=($KNOT_PID)

# --- NSD: one server process, the same zone file, no database, no chroot, no remote control
mkdir -p "$WORK/nsd"
cp "$WORK/knot/example.test.zone" "$WORK/nsd/"
cat > "$WORK/nsd/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$P_NSD
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$WORK/nsd"
    pidfile: "$WORK/nsd/nsd.pid"
    database: ""
    zonelistfile: "$WORK/nsd/zone.list"
    xfrdfile: "$WORK/nsd/xfrd.state"
    verbosity: 0
    # no response rate limiting (Debian builds it in; 200 answers/s per /24 by default)
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: example.test
    zonefile: example.test.zone
CONF
taskset -c 0 nsd -d -c "$WORK/nsd/nsd.conf" > "$WORK/nsd/log" 2>&1 &
NSD_PID=$!; PIDS+=($NSD_PID)

# --- Flotilla: the same zone, one worker thread --------------------------------------------
cat > "$WORK/flotilla.toml" <<CONF
[cluster]
admin_bind = "127.0.0.1:$ADMIN"
state_dir = "$WORK/flotilla-state"

[dns]
bind = "127.0.0.1:$P_FLOTILLA"
[dns.zones."example.test"]
name_servers = ["ns1.example.test"]
[[dns.zones."example.test".records]]
name = "ns1"
type = "A"
values = ["127.0.0.1"]
[[dns.zones."example.test".records]]
name = "www"
type = "A"
values = ["192.0.2.1"]
CONF
RUST_LOG=warn taskset -c 0 "$FLOTILLA" up --worker-threads 1 "$WORK/flotilla.toml" &
FLOTILLA_PID=$!; PIDS+=($FLOTILLA_PID)

for port in $P_KNOT $P_NSD $P_FLOTILLA; do
  for _ in $(seq 1 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" www.example.test A 2>/dev/null | grep -q 192.0.2.1 && break
    sleep 0.1
  done
  dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" www.example.test A | grep -q 192.0.2.1 || { echo "no answer on $port"; exit 1; }
done

echo "www.example.test A" > "$WORK/a.txt"
echo "nope.example.test A" > "$WORK/nx.txt"

HZ=$(getconf CLK_TCK)
declare -A SERVER=([knot]="$KNOT_PID $P_KNOT" [nsd]="$NSD_PID $P_NSD" [flotilla]="$FLOTILLA_PID $P_FLOTILLA")

measure() { # case port name: prints "qps nan nan" (and the queries lost on stderr)
  local out
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/$1.txt" -l "$SECS" -c 4 -T 1 -q 256 2>&1) || true
  python3 -c '
import re, sys
t = sys.stdin.read()
m = re.search(r"Queries per second:\s+([\d.]+)", t)
lost = re.search(r"Queries lost:\s+(\d+)", t)
print((m.group(1) if m else "nan"), "nan", "nan")
print(" ", sys.argv[1], "queries lost:", lost.group(1) if lost else None, file=sys.stderr)
' "$3 $1" <<<"$out"
}

echo "case,round,proxy,secs,rps,p50_ms,p99_ms,cpu_s" > "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for case in a nx; do
    for name in $(printf '%s\n' "${!SERVER[@]}" | shuf); do
      read -r pid port <<<"${SERVER[$name]}"
      before=$(bench_ticks "$pid")
      read -r qps p50 p99 <<<"$(measure "$case" "$port" "$name")"
      after=$(bench_ticks "$pid")
      cpu=$(python3 -c "print(($after - $before) / $HZ)")
      echo "$case,$round,$name,$SECS,$qps,$p50,$p99,$cpu" >> "$RESULTS"
    done
  done
  echo "round $round/$ROUNDS done"
done

python3 "$HERE/edge_report.py" "$RESULTS" flotilla knot nsd | tee "$WORK/report.md"
cp "$RESULTS" "$HERE/last-dns-results.csv"
cp "$WORK/report.md" "$HERE/last-dns-report.md"
