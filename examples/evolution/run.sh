#!/usr/bin/env bash
# Simulates every step of the course's story under the same day (day.toml: a daily cycle, a
# 100× spike at noon, zone az-a down at 18:00 for an hour) and prints the table; charts and
# per-second CSVs go to target/evolution/STEP/.
#   examples/evolution/run.sh [path/to/flotilla]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
flotilla="${1:-flotilla}"
exec "$flotilla" simulate "$here/day.toml" --out "${OUT:-target/evolution}" \
    --compare "$here"/[1-7]-*.toml
