"""Turns bench results (CSV) into the markdown table of docs/benchmarks.md.

Per case and proxy: median requests/s, p50, p99 and requests per CPU-second; and, paired by
round with HAProxy's figures, the median ratio with a 95 % bootstrap confidence interval
(fixed seed, so the same CSV always gives the same table) of requests/s, requests per
CPU-second and p99 (a p99 ratio below 1 is a shorter tail than HAProxy's).
"""
import csv
import math
import random
import statistics
import sys
from collections import defaultdict


ORDER = ["h1-c64", "h1-c256", "h1-close", "h2-c64", "tcp-c64", "tls-c64", "tls-resume", "tls-full"]


def ci(values, reps=2000, seed=7):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return (float("nan"),) * 3
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(reps))
    return statistics.median(values), meds[int(0.025 * reps)], meds[int(0.975 * reps) - 1]


def main():
    rows = defaultdict(dict)  # (case, round) -> proxy -> row
    for r in csv.DictReader(open(sys.argv[1])):
        cpu = float(r["cpu_s"])
        rps = float(r["rps"])
        r["per_cpu"] = (rps * cpu_secs_total(r)) / cpu if cpu > 0 else float("nan")
        rows[(r["case"], r["round"])][r["proxy"]] = r
    cases = sorted({c for c, _ in rows}, key=lambda c: ORDER.index(c) if c in ORDER else 99)
    proxies = ["haproxy", "haproxy2", "nginx", "flotilla", "flotilla-base"]
    print("| case | proxy | req/s | p50 ms | p99 ms | req per CPU-s | ratio req/s vs HAProxy (95% CI) | ratio req per CPU-s vs HAProxy (95% CI) | ratio p99 vs HAProxy (95% CI) |")
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    for case in cases:
        rounds = [v for (c, _), v in rows.items() if c == case]
        for p in proxies:
            mine = [r[p] for r in rounds if p in r]
            if not mine:
                continue
            med = lambda key: statistics.median([float(x[key]) for x in mine if not math.isnan(float(x[key]))] or [float("nan")])
            rr = [float(r[p]["rps"]) / float(r["haproxy"]["rps"]) for r in rounds if p in r and "haproxy" in r]
            cr = [r[p]["per_cpu"] / r["haproxy"]["per_cpu"] for r in rounds if p in r and "haproxy" in r]
            pr = [float(r[p]["p99_ms"]) / float(r["haproxy"]["p99_ms"]) for r in rounds if p in r and "haproxy" in r]
            m1, lo1, hi1 = ci(rr)
            m3, lo3, hi3 = ci(pr)
            m2, lo2, hi2 = ci(cr)
            per_cpu = statistics.median([x["per_cpu"] for x in mine if not math.isnan(x["per_cpu"])] or [float("nan")])
            print(f"| {case} | {p} | {med('rps'):,.0f} | {med('p50_ms'):.3f} | {med('p99_ms'):.3f} | {per_cpu:,.0f} | "
                  f"{m1:.3f} ({lo1:.3f}–{hi1:.3f}) | {m2:.3f} ({lo2:.3f}–{hi2:.3f}) | {m3:.3f} ({lo3:.3f}–{hi3:.3f}) |")
    versus_base(rows, cases)


def versus_base(rows, cases):
    """Flotilla against another build of itself (FLOTILLA_BASE), paired per round."""
    if not any("flotilla-base" in v for v in rows.values()):
        return
    print()
    print("| case | flotilla vs flotilla-base: req per CPU-s (95% CI) | p99 (95% CI) |")
    print("|---|---|---|")
    for case in cases:
        rounds = [v for (c, _), v in rows.items() if c == case and "flotilla" in v and "flotilla-base" in v]
        cr = [r["flotilla"]["per_cpu"] / r["flotilla-base"]["per_cpu"] for r in rounds]
        pr = [float(r["flotilla"]["p99_ms"]) / float(r["flotilla-base"]["p99_ms"]) for r in rounds]
        m2, lo2, hi2 = ci(cr)
        m3, lo3, hi3 = ci(pr)
        print(f"| {case} | {m2:.3f} ({lo2:.3f}–{hi2:.3f}) | {m3:.3f} ({lo3:.3f}–{hi3:.3f}) |")


def cpu_secs_total(r):
    """Seconds of load in the round: requests/s times this is the round's request count."""
    return float(r["secs"])


main()
