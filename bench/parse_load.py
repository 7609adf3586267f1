"""Reads wrk or h2load output on stdin (and h2load's per-request log, when its path is the second
argument); prints "rps p50_ms p99_ms" (nan when absent)."""
import re
import sys

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ms(value, unit):
    return float(value) * UNITS[unit]


def main():
    case = sys.argv[1]
    text = sys.stdin.read()
    rps = p50 = p99 = float("nan")
    if case.startswith("h2"):
        m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
        if m:
            rps = float(m.group(1))
        # h2load prints no percentiles; its per-request log (argv[2]) has the latency of
        # each request in microseconds (third column).
        if len(sys.argv) > 2:
            lat = []
            try:
                for line in open(sys.argv[2]):
                    cols = line.split()
                    if len(cols) >= 3 and cols[1].startswith("2"):
                        lat.append(int(cols[2]) / 1000.0)
            except OSError:
                pass
            if lat:
                lat.sort()
                p50 = lat[len(lat) // 2]
                p99 = lat[min(len(lat) - 1, (len(lat) * 99) // 100)]
        ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", text)
        if not ok or int(ok.group(1)) == 0 or int(ok.group(2)) > 0:
            rps = p50 = p99 = float("nan")
    else:
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        if m:
            rps = float(m.group(1))
        m = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
        if m:
            p50 = ms(m.group(1), m.group(2))
        m = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
        if m:
            p99 = ms(m.group(1), m.group(2))
        if re.search(r"Non-2xx or 3xx responses", text):
            rps = float("nan")
    print(f"{rps} {p50} {p99}")


main()
