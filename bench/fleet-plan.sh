#!/usr/bin/env bash
# The cluster-mode control core alone at 1,000 hosts and 10,000 instances (crates/control/benches/plan.rs):
# wall time per decision cycle. FLEET_SCALE=10 runs a tenth of it.
#   bench/fleet-plan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p flotilla-control --bench plan
