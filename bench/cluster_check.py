#!/usr/bin/env python3
"""Checks of a cluster-mode group for bench/cluster-drills.sh and bench/cluster-scale.sh.

    cluster_check.py capacity N [ADDR...] < GROUP.json
        exit 0 when at least N instances are in service and healthy, not counting those on
        the addresses given (a lost or cut-off host's).
    cluster_check.py steady < GROUP.json
        exit 0 when the group has exactly `desired_capacity` instances, all in service and
        healthy.
    cluster_check.py invariants GROUP.json PIDS.txt KEYS.txt
        the invariants after a drill: instances == desired (all in service, healthy); every
        demo app running on a host (PIDS.txt: "HOST PID INSTANCE_ID" lines) is an instance of
        the group, every instance runs, none twice (no orphan, none missing); no instance id under two hosts in etcd
        (KEYS.txt: the keys of assign/ and obs/). Prints "ok" or what is wrong; exit 1 then.
"""

import json
import sys


def healthy(i):
    return i["state"] == "in_service" and i["health"] == "healthy"


def capacity(group, n, excluded):
    up = [i for i in group["instances"]
          if healthy(i) and (i.get("address") or "").split(":")[0] not in excluded]
    return len(up) >= n


def steady(group):
    inst = group["instances"]
    return len(inst) == group["desired_capacity"] and all(healthy(i) for i in inst)


def invariants(group, pid_lines, keys):
    wrong = []
    inst = group["instances"]
    if not steady(group):
        states = sorted(f"{i['state']}/{i['health']}" for i in inst)
        wrong.append(f"{len(inst)} instances for desired {group['desired_capacity']}: {states}")
    running = {}
    for line in pid_lines:
        host, pid, iid = line.split()
        running.setdefault(iid, []).append(f"{host}:{pid}")
    known = {i["id"] for i in inst}
    orphans = sorted(f"{p} ({iid})" for iid, ps in running.items() if iid not in known for p in ps)
    missing = sorted(iid for iid in known if iid not in running)
    twice = sorted(f"{iid} {ps}" for iid, ps in running.items() if len(ps) > 1)
    if orphans:
        wrong.append(f"orphan processes {orphans}")
    if missing:
        wrong.append(f"instances not running {missing}")
    if twice:
        wrong.append(f"instances running twice {twice}")
    for kind in ("assign", "obs"):
        hosts = {}
        for key in keys:
            parts = key.strip().split("/")
            if len(parts) >= 5 and parts[3] == kind:
                hosts.setdefault(parts[5] if len(parts) > 5 else "", set()).add(parts[4])
        twice = sorted(k for k, v in hosts.items() if len(v) > 1)
        if twice:
            wrong.append(f"{kind}: instances under two hosts {twice}")
    return wrong


def main():
    cmd = sys.argv[1]
    if cmd == "capacity":
        sys.exit(0 if capacity(json.load(sys.stdin), int(sys.argv[2]), set(sys.argv[3:])) else 1)
    if cmd == "steady":
        sys.exit(0 if steady(json.load(sys.stdin)) else 1)
    if cmd == "invariants":
        group = json.load(open(sys.argv[2]))
        pids = [l for l in open(sys.argv[3]) if l.strip()]
        keys = [l for l in open(sys.argv[4]) if l.startswith("/")]
        wrong = invariants(group, pids, keys)
        print("; ".join(wrong) if wrong else "ok")
        sys.exit(1 if wrong else 0)
    sys.exit(f"unknown check {cmd}")


if __name__ == "__main__":
    main()
