#!/usr/bin/env bash
# The simulator at scale: a 24 h scenario at 1 s steps on a 1,000-instance group
# (bench/simulate-day.toml on bench/simulate-fleet.toml), wall time of three runs and their
# median (crates/simulator/benches/day.rs, built with the release profile's optimisations).
#   bench/simulate.sh                      (SIM_BENCH_HOURS=1 SIM_BENCH_RUNS=1: one hour, once)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p flotilla-simulator --bench day
