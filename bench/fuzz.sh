#!/usr/bin/env bash
# Coverage-guided fuzzing of the data plane's parsers and the kept DNS answers, each target
# for a bounded time.
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
#   dns_kept_answers (crates/dns/fuzz, entry point crates/dns/src/fuzz.rs) arbitrary bytes
#                   as a UDP query: a kept answer (crates/dns/src/fast.rs), when given, must be
#                   the full path's bytes
#
# libFuzzer comes from the libfuzzer-sys crate (its C++ source, built with the machine's
# g++); the coverage instrumentation is the one cargo-fuzz sets, given here as RUSTFLAGS, so
# the stable toolchain suffices (cargo-fuzz itself wants nightly, which a new machine of
# this project does not have). No AddressSanitizer: the code under test is safe Rust; what
# is looked for is panics (assertions, overflow checks, out-of-bounds), hangs (libFuzzer's
# -timeout) and runaway memory (-rss_limit_mb).
#
# Corpora grow in crates/{proxy,dns}/fuzz/corpus/TARGET (kept between runs, not committed);
# a crash leaves its input in crates/{proxy,dns}/fuzz/artifacts/TARGET/ and the script exits 1.
# TARGETS="dns_kept_answers" bench/fuzz.sh 300 runs some targets only.
# Prints one line per target: executions, executions per second, corpus size, coverage.
set -euo pipefail

SECS=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
read -r -a TARGETS <<< "${TARGETS:-http1_request chunked http1_response http2_frames hpack dns_kept_answers}"
fuzz_dir() { # target: the fuzz crate that holds it
  case "$1" in
    dns_*) echo "$ROOT/crates/dns/fuzz" ;;
    *) echo "$ROOT/crates/proxy/fuzz" ;;
  esac
}
TRIPLE=$(rustc -vV | awk '/^host:/{print $2}')

command -v c++ >/dev/null || { echo "libfuzzer-sys needs a C++ compiler (apt-get install g++)"; exit 1; }

echo "building the fuzz targets (release, coverage-instrumented, $TRIPLE)"
# --target: the flags then apply to the targets only, not to build scripts or proc macros.
for FUZZ in $(for t in "${TARGETS[@]}"; do fuzz_dir "$t"; done | sort -u); do
(cd "$FUZZ" && RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --release -q --target "$TRIPLE")
done

# Seeds for an empty corpus: a few well-formed inputs, so that the fuzzer starts from inside
# each grammar instead of having to find a request line or a frame layout by chance.
seed() { # target name printf-format
  local dir
  dir="$(fuzz_dir "$1")/corpus/$1"
  mkdir -p "$dir"
  [ -e "$dir/seed-$2" ] || printf "$3" > "$dir/seed-$2"
}
for t in "${TARGETS[@]}"; do mkdir -p "$(fuzz_dir "$t")/corpus/$t" "$(fuzz_dir "$t")/artifacts/$t"; done
seed http1_request get 'GET /a?b=c HTTP/1.1\r\nHost: example.test\r\nCookie: AWSALB=x\r\n\r\n'
seed http1_request chunked 'POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n\r\n'
seed http1_request length 'PUT http://a:8080/x HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n'
seed http1_request upgrade 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'
seed http1_request http10 'HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
seed chunked body '\0055\r\nhello\r\n3;ext="v"\r\nabc\r\n0\r\nTrailer-A: b\r\n\r\n'
seed http1_response length '\000HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok'
seed http1_response chunked '\002HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=b\r\n\r\n'
seed http1_response interim '\010HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'
seed http1_response close '\004HTTP/1.0 204 No Content\r\nContent-Length: 5\r\n\r\n'
# SETTINGS; HEADERS GET / (stream 1, END_STREAM); HEADERS POST (stream 3) and DATA "hi";
# WINDOW_UPDATE; PING; RST_STREAM.
seed http2_frames streams '\0\0\0\4\0\0\0\0\0\0\0\6\1\5\0\0\0\1\202\206\204\101\1a\0\0\6\1\4\0\0\0\3\203\206\204\101\1a\0\0\2\0\1\0\0\0\3hi\0\0\4\10\0\0\0\0\0\0\0\1\0\0\0\10\6\0\0\0\0\0abcdefgh\0\0\4\3\0\0\0\0\5\0\0\0\10'
# DNS queries (ID, RD, one question): www.example.test A; nope.example.test A with an OPT;
# host.sub.example.test CAA; x.wild.example.test TXT; b.ent.example.test MX.
Q='\022\064\001\000\000\001\000\000\000\000\000'
seed dns_kept_answers a "$Q\000\003www\007example\004test\000\000\001\000\001"
seed dns_kept_answers nx "$Q\001\004nope\007example\004test\000\000\001\000\001\000\000\051\004\320\000\000\000\000\000\000"
seed dns_kept_answers nodata "$Q\000\004host\003sub\007example\004test\000\001\001\000\001"
seed dns_kept_answers wild "$Q\000\001x\004wild\007example\004test\000\000\020\000\001"
seed dns_kept_answers ent "$Q\000\001b\003ent\007example\004test\000\000\017\000\001"
seed hpack blocks '\202\206\204\101\1a\377\100\3abc\3xyz\377\202\206\204\101\214\361\343\302\345\362\072\153\240\253\220\364\377\377\077\341\037'

failed=0
echo "| target | seconds | executions | per second | corpus | coverage (edges) | findings |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in "${TARGETS[@]}"; do
  FUZZ=$(fuzz_dir "$t")
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
  FINDING=$finding python3 -c "import os; e=int('${execs:-0}'); print(f'| $t | $SECS | {e:,} | {e//max(1,$SECS):,} | $corpus | ${cov:-?} | ' + os.environ['FINDING'] + ' |')"
  rm -f "$log"
done
exit $failed
