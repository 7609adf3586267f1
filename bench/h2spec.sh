#!/usr/bin/env bash
# HTTP/2 conformance of Flotilla's HTTP/2 engine with h2spec 2.6.0 (146 cases), over TLS
# (ALPN h2, self-signed ECDSA P-256 certificate) and on h2c (prior knowledge on the shared
# HTTP/1 port).
#
#   H2SPEC_SRC=/path/to/h2spec bench/h2spec.sh
#
# h2spec builds offline from Debian's packages (golang-go and the golang-*-dev libraries it
# imports, installed here when missing) in GOPATH mode, from its source at H2SPEC_SRC: a
# checkout of github summerwind/h2spec at af83a65 (2.6.0, unpatched). An `h2spec` already on
# PATH is used as is. Reference (../shared/reference/h2spec.md): 146/146 over TLS, 145/146
# on h2c (3.5/2: an invalid preface on the shared HTTP/1 + h2c port is answered as HTTP/1).
# Exits 1 when TLS falls below 146. Traffic goes only to 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/flotilla-h2spec.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_install go:golang-go openssl:openssl \
  /usr/share/gocode/src/github.com/spf13/cobra:golang-github-spf13-cobra-dev \
  /usr/share/gocode/src/golang.org/x/net:golang-golang-x-net-dev \
  /usr/share/gocode/src/github.com/fatih/color:golang-github-fatih-color-dev \
  /usr/share/gocode/src/github.com/mattn/go-colorable:golang-github-mattn-go-colorable-dev \
  /usr/share/gocode/src/github.com/mattn/go-isatty:golang-github-mattn-go-isatty-dev \
  /usr/share/gocode/src/github.com/spf13/pflag:golang-github-spf13-pflag-dev \
  /usr/share/gocode/src/golang.org/x/sys:golang-golang-x-sys-dev \
  /usr/share/gocode/src/github.com/inconshreveable/mousetrap:golang-github-inconshreveable-mousetrap-dev

H2SPEC=$(command -v h2spec || true)
if [ -z "$H2SPEC" ]; then
  if [ -z "${H2SPEC_SRC:-}" ] || [ ! -d "$H2SPEC_SRC/cmd/h2spec" ]; then
    echo "no h2spec on PATH: set H2SPEC_SRC to a checkout of summerwind/h2spec (af83a65)"; exit 1
  fi
  G="$WORK/go"
  mkdir -p "$G/src/github.com/summerwind"
  cp -r "$H2SPEC_SRC" "$G/src/github.com/summerwind/h2spec"
  echo "building h2spec 2.6.0 (GOPATH mode, Debian's Go libraries)"
  (cd "$G/src/github.com/summerwind/h2spec" && GO111MODULE=off GOPROXY=off GOFLAGS= \
    GOPATH="$G:/usr/share/gocode" GOCACHE="$WORK/gocache" \
    go build -ldflags "-X main.VERSION=2.6.0" -o "$WORK/h2spec" ./cmd/h2spec)
  H2SPEC="$WORK/h2spec"
fi
bench_build

B1=19701 B2=19702 B3=19703 HTTP=19711 HTTPS=19712 ADMIN=19790
bench_backends $B1 $B2 $B3
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
bench_flotilla_conf $ADMIN "$WORK/flotilla-state" $HTTP 19713 > "$WORK/flotilla.toml"
cat >> "$WORK/flotilla.toml" <<CONF

[[load_balancers.front.listeners]]
bind = "127.0.0.1:$HTTPS"
protocol = "https"
certificates = [{ cert = "$WORK/cert.pem", key = "$WORK/key.pem" }]
default_action = { type = "forward", target_group = "be" }
CONF
RUST_LOG=warn "$FLOTILLA" up "$WORK/flotilla.toml" >"$WORK/flotilla.log" 2>&1 &
PIDS+=($!)
bench_wait_answers $HTTP
for _ in $(seq 1 100); do
  curl -skf -o /dev/null "https://127.0.0.1:$HTTPS/" && break
  sleep 0.1
done

# One h2spec run: prints "passed/total" (bounded: 5 min).
run() { # label args...
  local label=$1; shift
  timeout 300 "$H2SPEC" -h 127.0.0.1 "$@" -j "$WORK/$label.xml" >"$WORK/$label.txt" 2>&1 || true
  python3 - "$WORK/$label.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
total = failed = 0
names = []
for c in cases:
    total += 1
    if c.find("failure") is not None or c.find("error") is not None:
        failed += 1
        names.append(c.get("package", "") + " " + c.get("name", ""))
print(f"{total - failed}/{total}" + ("" if not names else "  failed: " + "; ".join(names)))
PY
}

tls=$(run tls -p $HTTPS -t -k)
h2c=$(run h2c -p $HTTP)
echo "| transport | h2spec 2.6.0 passed |"
echo "|---|---|"
echo "| TLS (ALPN h2) | $tls |"
echo "| h2c (prior knowledge) | $h2c |"
case "$tls" in 146/146*) ;; *) echo "TLS below 146/146"; exit 1 ;; esac
