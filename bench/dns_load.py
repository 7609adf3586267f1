#!/usr/bin/env python3
"""Paced HTTP/1.1 load from clients that find the server through DNS and honour its TTL.

    dns_load.py DNS_ADDR:PORT[,DNS_ADDR:PORT...] NAME HTTP_PORT CLIENTS RATE SECONDS OUT.json
                [SPREAD] [CLIENT]

Every client resolves NAME (type A) by UDP at DNS_ADDR:PORT, keeps the answer for its TTL (as
a stub resolver with a cache does), and sends RATE requests per second on a fixed schedule
(bench/drill_load.py's rules: a late answer does not shift the schedule, no silent retries)
to http://ADDRESS:HTTP_PORT/ with `Host: NAME`, on one keep-alive connection. When the TTL has
run out it asks again before the next request; a different address closes the connection and
opens one to the new address. A DNS query unanswered within 1 s is asked again (three tries,
as a resolver does); a request fails when resolution fails, the connection fails, the answer
is not 200, or no answer comes within 5 s. Traffic goes only to the addresses DNS gives (the
drills' zones hold loopback addresses only); the run is bounded by SECONDS. The clients start
evenly over SPREAD seconds (default 0; pass the TTL so their caches expire at different
moments, as a population of clients' would). With several DNS servers (a zone's name servers),
each client starts with a different one (resolv.conf's `rotate`) and a query unanswered by one
goes to the next, as a stub resolver's does.

CLIENT is `first` (default: the first address of the answer, nothing retried) or `browser`,
what browsers and the common HTTP clients do with a multi-address answer and a kept-alive
connection: the answered addresses are tried in order, a connection refused or not established
within 1 s moving to the next (Chrome, Firefox, curl, Go's and Java's clients); a kept-alive
connection the server closed is noticed before reuse and replaced (urllib3's and Go's pool
check); and a request on a *reused* connection that fails before any byte of the answer came
is sent once more on a new connection (RFC 9110 9.2.2, idempotent requests: browsers, Go's
net/http, urllib3). A request on a fresh connection that fails, or any answer other than 200,
counts as failed; "retried" counts the resends.

Writes {"total", "failed", "errors": {kind: count}, "by_address": {addr: count},
"last_at": {addr: seconds since the start of its last answered request}, "queries",
"p50_ms", "p99_ms", "max_ms"} to OUT.json; the start is "start_unix" (time.time()).
"""

import http.client
import json
import random
import select
import socket
import struct
import sys
import threading
import time

TIMEOUT_S = 5.0
DNS_TIMEOUT_S = 1.0
DNS_TRIES = 3


def query(name):
    """A DNS query for NAME's A records (RD off: the server is authoritative)."""
    qid = random.randrange(1 << 16)
    head = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return qid, head + qname + struct.pack(">HH", 1, 1)


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def parse(msg, qid):
    """(addresses, ttl) from an answer to query QID; raises on anything else."""
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise ValueError("not our answer")
    if flags & 0xF:
        raise ValueError(f"rcode {flags & 0xF}")
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    addrs, ttl = [], None
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, rttl, rdlen = struct.unpack(">HHIH", msg[i : i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[i : i + 4]))
            ttl = rttl if ttl is None else min(ttl, rttl)
        i += rdlen
    if not addrs:
        raise ValueError("no A records")
    return addrs, ttl


def resolve(servers, name):
    """(addresses, ttl) of the answer, asked up to DNS_TRIES times of each server in turn."""
    last = None
    for attempt in range(DNS_TRIES * len(servers)):
        server = servers[attempt % len(servers)]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(DNS_TIMEOUT_S)
        try:
            qid, q = query(name)
            s.sendto(q, server)
            addrs, ttl = parse(s.recv(4096), qid)
            return addrs, ttl
        except (OSError, ValueError, struct.error, IndexError) as e:
            last = e
        finally:
            s.close()
    raise RuntimeError(f"dns: {last}")


CONNECT_TIMEOUT_S = 1.0


def dropped(conn):
    """Whether the server closed this idle kept-alive connection (readable with nothing to read
    is EOF), as urllib3 and Go check a pooled connection before reuse."""
    sock = conn.sock
    if sock is None:
        return True
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def connect_any(addrs, port):
    """A connection to the first answered address that accepts one: (address, conn)."""
    last = None
    for a in addrs:
        conn = http.client.HTTPConnection(a, port, timeout=CONNECT_TIMEOUT_S)
        try:
            conn.connect()
            conn.sock.settimeout(TIMEOUT_S)
            return a, conn
        except OSError as e:
            last = e
            conn.close()
    raise last if last is not None else OSError("no address")


def exchange(conn, name):
    conn.request("GET", "/", headers={"Host": name, "Connection": "keep-alive"})
    resp = conn.getresponse()
    resp.read()
    return resp


def send(state, name, port, browser):
    """One request on the client's connection (made when there is none); returns (response,
    address, resent). `first` clients connect to the first answered address and retry
    nothing; `browser` clients replace a connection the server closed before reusing it,
    connect to the first answered address that accepts, and send once more when a request on
    a reused connection failed before any byte of its answer."""
    if not browser:
        if state["conn"] is None:
            state["addr"] = state["addrs"][0]
            state["conn"] = http.client.HTTPConnection(state["addr"], port, timeout=TIMEOUT_S)
        return exchange(state["conn"], name), state["addr"], False
    if state["conn"] is not None and dropped(state["conn"]):
        state["conn"].close()
        state["conn"] = None
    reused = state["conn"] is not None
    if not reused:
        state["addr"], state["conn"] = connect_any(state["addrs"], port)
    try:
        return exchange(state["conn"], name), state["addr"], False
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        state["conn"].close()
        state["conn"] = None
        if not reused:
            raise
    state["addr"], state["conn"] = connect_any(state["addrs"], port)
    return exchange(state["conn"], name), state["addr"], True


def close(state):
    if state["conn"] is not None:
        state["conn"].close()
    state["conn"] = None


def client(servers, name, port, rate, start, end, t0, out, browser):
    """One client's paced requests (`browser` or `first`, see the module's doc)."""
    state = {"conn": None, "addr": None, "addrs": []}
    expires = 0.0
    lat, errors, by_addr, last_at = [], {}, {}, {}
    queries, n, retried = 0, 0, 0
    while True:
        due = start + n / rate
        if due >= end:
            break
        n += 1
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        try:
            if time.monotonic() >= expires:
                queries += 1
                addrs, ttl = resolve(servers, name)
                expires = time.monotonic() + ttl
                if not browser:
                    addrs = addrs[:1]  # the first address only
                if state["addr"] not in addrs:
                    close(state)
                state["addrs"] = addrs
            sent = time.monotonic()
            resp, addr, again = send(state, name, port, browser)
            retried += again
            if resp.status != 200:
                kind = f"status {resp.status}"
                errors[kind] = errors.get(kind, 0) + 1
            else:
                lat.append(time.monotonic() - due)
                by_addr[addr] = by_addr.get(addr, 0) + 1
                last_at[addr] = max(last_at.get(addr, 0.0), sent - t0)
            if resp.getheader("Connection", "").lower() == "close":
                close(state)
        except Exception as e:  # every failure is counted
            kind = "DNS" if isinstance(e, RuntimeError) else type(e).__name__
            errors[kind] = errors.get(kind, 0) + 1
            close(state)
    close(state)
    out.append((lat, errors, by_addr, last_at, queries, retried))


def main():
    dns, name, port, clients, rate, seconds, out_path = sys.argv[1:8]
    spread = float(sys.argv[8]) if len(sys.argv) > 8 else 0.0
    kind = sys.argv[9] if len(sys.argv) > 9 else "first"
    if kind not in ("first", "browser"):
        sys.exit(f"CLIENT is first or browser, not {kind}")
    servers = []
    for one in dns.split(","):
        host, dport = one.rsplit(":", 1)
        servers.append((host, int(dport)))
    port, clients, rate, seconds = int(port), int(clients), float(rate), float(seconds)
    start_unix = time.time()
    t0 = time.monotonic()
    start = t0 + 0.2
    end = start + seconds
    out, threads = [], []
    for i in range(clients):
        s = start + (i / clients) * max(spread, 1 / rate)  # no bursts
        # Each client asks the name servers in its own order (resolv.conf's `rotate`).
        mine = servers[i % len(servers) :] + servers[: i % len(servers)]
        t = threading.Thread(
            target=client,
            args=(mine, name, port, rate, s, end, t0, out, kind == "browser"),
            daemon=True,
        )
        t.start()
        threads.append(t)
    for t in threads:
        t.join(seconds + 2 * TIMEOUT_S + DNS_TRIES * DNS_TIMEOUT_S + 5)
    lat = sorted(x for r in out for x in r[0])
    errors, by_addr, last_at = {}, {}, {}
    for _, e, b, last, _, _ in out:
        for total, part in ((errors, e), (by_addr, b)):
            for k, v in part.items():
                total[k] = total.get(k, 0) + v
        for k, v in last.items():
            last_at[k] = round(max(last_at.get(k, 0.0), v), 3)
    failed = sum(errors.values())

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None

    summary = {
        "start_unix": start_unix,
        "clients": len(out),
        "total": len(lat) + failed,
        "failed": failed,
        "errors": errors,
        "by_address": by_addr,
        "last_at": last_at,
        "queries": sum(r[4] for r in out),
        "retried": sum(r[5] for r in out),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
    }
    with open(out_path, "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
