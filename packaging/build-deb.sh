#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks what it installs:
#   packaging/build-deb.sh            release build (the package to ship)
#   FLOTILLA_BIN=target/debug/flotilla packaging/build-deb.sh
#                                     packages that binary (no build; stripped, fast compression):
#                                     CI's check, on the debug binary its tests built anyway
# cargo-deb is installed from crates.io if missing. The man page and shell completions are
# generated from the CLI definition (`flotilla man`, `flotilla completions SHELL`). The package
# is checked for every asset, its conffile and postinst, and its binary validates the example
# config. Where systemd runs (not in containers or CI here), the package is also installed and
# the units started and checked; elsewhere only the contents are checked, and it says so.
set -euo pipefail
BIN=${FLOTILLA_BIN:+$(realpath -m "$FLOTILLA_BIN")} # resolved where the caller stands
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_INCREMENTAL=0
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
command -v dpkg-deb >/dev/null || { apt-get update -qq && apt-get install -y -qq dpkg >/dev/null; }

OUT=target/packaging # the manifest's asset list names these generated files by this path
rm -rf "$OUT"
mkdir -p "$OUT"
if [ -n "${FLOTILLA_BIN:-}" ]; then
  # The manifest lists the binary as target/release/flotilla, which cargo-deb resolves in the
  # target directory: stage a copy in a target directory of its own, so neither the given
  # binary nor a release build is touched. Stripped (cargo-deb keeps symbols when the profile
  # has debug info) and fast compression: 8 s instead of 86 s for a 160 MB debug binary.
  [ -x "$BIN" ] || { echo "FLOTILLA_BIN=$FLOTILLA_BIN is not an executable file"; exit 1; }
  mkdir -p "$OUT/stage/release"
  cp "$BIN" "$OUT/stage/release/flotilla"
  DEB_TARGET_DIR="$ROOT/$OUT/stage"
  DEB_FLAGS=(--fast --strip)
else
  cargo build --release -p flotilla
  DEB_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  BIN="$DEB_TARGET_DIR/release/flotilla"
  DEB_FLAGS=()
fi
"$BIN" man | gzip -9n > "$OUT/flotilla.1.gz"
"$BIN" completions bash > "$OUT/flotilla.bash"
"$BIN" completions zsh > "$OUT/_flotilla"
"$BIN" completions fish > "$OUT/flotilla.fish"

# cargo-deb warns that the generated ../../target/packaging/* assets "will not be built": they
# are not meant to be (this script generated them above).
CARGO_TARGET_DIR="$DEB_TARGET_DIR" cargo deb -p flotilla --no-build "${DEB_FLAGS[@]}" --output "$OUT/"
rm -rf "$OUT/stage"
DEB=$(ls -t "$OUT"/flotilla_*.deb | head -1)
dpkg-deb -c "$DEB" | awk '{print $NF}' > "$OUT/contents.txt"
dpkg-deb --ctrl-tarfile "$DEB" | tar -t > "$OUT/control.txt"
missing=0
for f in ./usr/bin/flotilla ./lib/systemd/system/flotilla.service \
         ./lib/systemd/system/flotilla.socket ./usr/share/man/man1/flotilla.1.gz \
         ./etc/flotilla/flotilla.toml ./usr/share/bash-completion/completions/flotilla \
         ./usr/share/zsh/vendor-completions/_flotilla \
         ./usr/share/fish/vendor_completions.d/flotilla.fish; do
  grep -qx "$f" "$OUT/contents.txt" || { echo "missing from the package: $f"; missing=1; }
done
grep -qx './postinst' "$OUT/control.txt" || { echo "no postinst"; missing=1; }
dpkg-deb -I "$DEB" conffiles 2>/dev/null | grep -qx '/etc/flotilla/flotilla.toml' \
  || { echo "/etc/flotilla/flotilla.toml is not a conffile"; missing=1; }
zcat "$OUT/flotilla.1.gz" | grep -q 'upgrade' || { echo "the man page lacks the upgrade command"; missing=1; }
[ "$missing" -eq 0 ] || exit 1
dpkg-deb -f "$DEB" Package Version Depends
# The packaged (stripped) binary runs and accepts the packaged example config.
dpkg-deb -x "$DEB" "$OUT/root"
"$OUT/root/usr/bin/flotilla" validate "$OUT/root/etc/flotilla/flotilla.toml"
rm -rf "$OUT/root"
echo "package contents checked: $DEB ($(wc -l < "$OUT/contents.txt") entries, $(du -h "$DEB" | cut -f1))"

if [ -d /run/systemd/system ]; then
  apt-get install -y "./$DEB"
  systemctl enable --now flotilla.socket flotilla.service
  systemctl is-active flotilla.service
  curl -fsS http://127.0.0.1:9090/v1/groups > /dev/null
  systemctl stop flotilla.service flotilla.socket
  echo "unit installed, started and stopped"
else
  echo "systemd is not running here: the package was not installed; its contents were checked"
fi
