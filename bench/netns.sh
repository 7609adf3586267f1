#!/usr/bin/env bash
# Network namespaces for cluster benchmarks, the shell twin of crates/cluster/tests/support:
# a bridge in a namespace of its own (NAME-br, bridge br0) and one namespace per host
# (NAME-HOST, eth0 at 10.77.0.OCTET/24), joined by veth pairs created inside the namespaces.
# No address of 10.77.0.0/24 exists in the root namespace, where it would be routed off the
# machine: run every client with `ip netns exec NAME-HOST …`.
#
# Sourced: netns_up NAME HOST:OCTET…, netns_down NAME, netns_check_route NAME FROM ADDR,
#          netns_link NAME HOST up|down.
# Run:     bench/netns.sh up NAME HOST:OCTET… | down NAME | list
#
# Needs root and iproute2; partitions are link down or blackhole routes (no iptables/netem).

NETNS_SUBNET=10.77.0

netns_up() { # NAME HOST:OCTET...
  local name=$1 item host octet
  shift
  ip netns add "$name-br"
  ip -n "$name-br" link set lo up
  ip -n "$name-br" link add br0 type bridge
  ip -n "$name-br" link set br0 up
  for item in "$@"; do
    host=${item%%:*} octet=${item#*:}
    ip netns add "$name-$host"
    ip -n "$name-br" link add "v$host" type veth peer name eth0 netns "$name-$host"
    ip -n "$name-br" link set "v$host" master br0 up
    ip -n "$name-$host" link set lo up
    ip -n "$name-$host" addr add "$NETNS_SUBNET.$octet/24" dev eth0
    ip -n "$name-$host" link set eth0 up
  done
}

# Kill what is left in NAME's namespaces (by PID) and delete them; the veths go with them.
netns_down() { # NAME
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$1-[A-Za-z0-9]+$" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

# Refuse to go on unless ADDR is reached from host FROM over its own eth0 (on-link).
netns_check_route() { # NAME FROM ADDR
  local route
  route=$(ip -n "$1-$2" route get "$3")
  if [[ $route != *"dev eth0"* || $route == *" via "* ]]; then
    echo "route from $2 to $3 leaves the test bridge: $route" >&2
    return 1
  fi
}

netns_link() { # NAME HOST up|down
  ip -n "$1-br" link set "v$2" "$3"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    up) shift; netns_up "$@" ;;
    down) netns_down "$2" ;;
    list) ip netns list | grep -E '^flt-' || true ;;
    *) echo "usage: $0 up NAME HOST:OCTET... | down NAME | list" >&2; exit 64 ;;
  esac
fi
