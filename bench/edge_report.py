"""Turns an edge or DNS bench CSV (case,round,proxy,secs,rps,p50_ms,p99_ms,cpu_s) into a
markdown table: per case and server, median requests/s, p99 and requests per CPU-second, and,
paired by round, the median ratio of the first server named to each other one with a 95 %
bootstrap confidence interval (fixed seed: the same CSV always gives the same table).

    python3 bench/edge_report.py RESULTS.csv flotilla varnish nginx
"""
import csv
import math
import random
import statistics
import sys
from collections import defaultdict


def ci(values, reps=2000, seed=7):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return (float("nan"),) * 3
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(reps))
    return statistics.median(values), meds[int(0.025 * reps)], meds[int(0.975 * reps) - 1]


def main():
    path, ours, *peers = sys.argv[1:]
    rows = defaultdict(dict)
    for r in csv.DictReader(open(path)):
        cpu, rps = float(r["cpu_s"]), float(r["rps"])
        r["per_cpu"] = rps * float(r["secs"]) / cpu if cpu > 0 else float("nan")
        rows[(r["case"], r["round"])][r["proxy"]] = r
    cases = sorted({c for c, _ in rows})
    print(f"| case | server | req/s | p99 ms | req per CPU-s | {ours} ÷ server, req per CPU-s (95% CI) | {ours} ÷ server, req/s (95% CI) |")
    print("|---|---|---:|---:|---:|---|---|")
    for case in cases:
        rounds = [v for (c, _), v in rows.items() if c == case]
        for p in [ours, *peers]:
            mine = [r[p] for r in rounds if p in r]
            if not mine:
                continue
            med = lambda k: statistics.median([float(x[k]) for x in mine if not math.isnan(float(x[k]))] or [float("nan")])
            per_cpu = statistics.median([x["per_cpu"] for x in mine if not math.isnan(x["per_cpu"])] or [float("nan")])
            if p == ours:
                ratio_cpu = ratio_rps = "—"
            else:
                c = ci([r[ours]["per_cpu"] / r[p]["per_cpu"] for r in rounds if ours in r and p in r])
                q = ci([float(r[ours]["rps"]) / float(r[p]["rps"]) for r in rounds if ours in r and p in r])
                ratio_cpu = f"{c[0]:.3f} ({c[1]:.3f}–{c[2]:.3f})"
                ratio_rps = f"{q[0]:.3f} ({q[1]:.3f}–{q[2]:.3f})"
            print(f"| {case} | {p} | {med('rps'):,.0f} | {med('p99_ms'):.3f} | {per_cpu:,.0f} | {ratio_cpu} | {ratio_rps} |")


main()
