#!/usr/bin/env python3
"""Paced HTTP/1.1 load for the drills: many clients at a low rate each, no silent retries.

    drill_load.py URL CLIENTS RATE SECONDS OUT.json

Every client keeps one keep-alive connection and sends RATE requests per second on a fixed
schedule (a late answer does not shift the schedule, so a stalled request cannot hide the ones
behind it: they are sent late and their latency counts from when they were due). A request
fails when the connection fails, the answer is not 200, or no answer comes within 5 s; the
client then reconnects for the next request, never re-sending the failed one. Traffic goes
only to the URL given (the drills pass 127.0.0.1); the run is bounded by SECONDS.

Writes {"total", "failed", "stalled" (answered later than 0.5 s after due), "max_ms",
"p50_ms", "p99_ms", "errors": {kind: count}, "by_zone": {zone: count}, "by_instance": {id: count}} to OUT.json.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

TIMEOUT_S = 5.0
STALL_S = 0.5


def client(host, port, path, rate, start, end, out):
    conn = None
    lat, errors, zones, instances = [], {}, {}, {}
    n = 0
    while True:
        due = start + n / rate
        if due >= end:
            break
        n += 1
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
            conn.request("GET", path, headers={"Connection": "keep-alive"})
            resp = conn.getresponse()
            resp.read()
            took = time.monotonic() - due
            if resp.status != 200:
                kind = f"status {resp.status}"
                errors[kind] = errors.get(kind, 0) + 1
            else:
                lat.append(took)
                zone = resp.getheader("X-Zone", "?")
                zones[zone] = zones.get(zone, 0) + 1
                inst = resp.getheader("X-Instance-Id", "?")
                instances[inst] = instances.get(inst, 0) + 1
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # every failure is counted, none retried
            kind = type(e).__name__
            errors[kind] = errors.get(kind, 0) + 1
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    out.append((lat, errors, zones, instances))


def main():
    url, clients, rate, seconds, out_path = sys.argv[1:6]
    u = urllib.parse.urlsplit(url)
    clients, rate, seconds = int(clients), float(rate), float(seconds)
    start = time.monotonic() + 0.2
    end = start + seconds
    out = []
    threads = []
    for i in range(clients):
        # Spread the clients over one period so requests do not arrive in bursts.
        s = start + (i / clients) / rate
        t = threading.Thread(
            target=client,
            args=(u.hostname, u.port, u.path or "/", rate, s, end, out),
            daemon=True,
        )
        t.start()
        threads.append(t)
    for t in threads:
        t.join(seconds + 2 * TIMEOUT_S + 5)
    lat = sorted(x for r in out for x in r[0])
    errors, zones, instances = {}, {}, {}
    for _, e, z, i in out:
        for total, part in ((errors, e), (zones, z), (instances, i)):
            for k, v in part.items():
                total[k] = total.get(k, 0) + v
    failed = sum(errors.values())

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None

    summary = {
        "total": len(lat) + failed,
        "failed": failed,
        "stalled": sum(1 for x in lat if x > STALL_S),
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
        "by_zone": zones,
        "by_instance": instances,
    }
    with open(out_path, "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
