#!/usr/bin/env bash
# Coverage-guided fuzzing of the data plane's parsers, each target for a bounded time.
#
#   bench/fuzz.sh [SECONDS]        (default 60 s per target)
#
# Targets (crates/proxy/fuzz/fuzz_targets, entry points in crates/proxy/src/fuzz.rs):
#   http1_request   request heads: end-of-head scan, strict parser, differential against
#                   httparse, the rewritten head parses back with the same framing
#   chunked         the chunked decoder, whole against split at any point
#   http1_response  target response heads: the head rewritten for the client parses back
#                   (httparse) with the same status and unambiguous framing
#   http2_frames    one HTTP/2 connection (frames, SETTINGS, flow control, HPACK, request
#                   validation) over an in-memory pipe, paused time
#   hpack           the HPACK decoder on arbitrary blocks; encoder → decoder round trip
#
# libFuzzer comes from the libfuzzer-sys crate (its C++ source, built with the machine's
# g++); the coverage instrumentation is the one cargo-fuzz sets, given here as RUSTFLAGS, so
# the stable toolchain suffices (cargo-fuzz itself wants nightly, which a new machine of
# this project does not have). No AddressSanitizer: the code under test is safe Rust; what
# is looked for is panics (assertions, overflow checks, out-of-bounds), hangs (libFuzzer's
# -timeout) and runaway memory (-rss_limit_mb).
#
# Corpora grow in crates/proxy/fuzz/corpus/TARGET (kept between runs, not committed);
# a crash leaves its input in crates/proxy/fuzz/artifacts/TARGET/ and the script exits 1.
# Prints one line per target: executions, executions per second, corpus size, coverage.
set -euo pipefail

SECS=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
FUZZ="$ROOT/crates/proxy/fuzz"
TARGETS=(http1_request chunked http1_response http2_frames hpack)
TRIPLE=$(rustc -vV | awk '/^host:/{print $2}')

command -v c++ >/dev/null || { echo "libfuzzer-sys needs a C++ compiler (apt-get install g++)"; exit 1; }

echo "building the fuzz targets (release, coverage-instrumented, $TRIPLE)"
# --target: the flags then apply to the targets only, not to build scripts or proc macros.
(cd "$FUZZ" && RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --release -q --target "$TRIPLE")

failed=0
echo "| target | seconds | executions | per second | corpus | coverage (edges) | findings |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in "${TARGETS[@]}"; do
  mkdir -p "$FUZZ/corpus/$t" "$FUZZ/artifacts/$t"
  log=$(mktemp)
  set +e
  # Bounded: -max_total_time, and `timeout` as a guard should libFuzzer itself hang.
  timeout $((SECS + 60)) "$FUZZ/target/$TRIPLE/release/$t" \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$FUZZ/artifacts/$t/" "$FUZZ/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/stat::number_of_executed_units/{print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  corpus=$(find "$FUZZ/corpus/$t" -type f | wc -l)
  finding="none"
  if [ "$rc" -ne 0 ]; then
    finding="exit $rc: $(ls -t "$FUZZ/artifacts/$t" | head -1) ($(grep -m1 -E 'panicked|ERROR' "$log" | cut -c1-120))"
    failed=1
  fi
  python3 -c "import sys; e=int('${execs:-0}'); print(f'| $t | $SECS | {e:,} | {e//max(1,$SECS):,} | $corpus | ${cov:-?} | $finding |')"
  rm -f "$log"
done
exit $failed
