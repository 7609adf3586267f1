#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks what it installs:
#   packaging/build-deb.sh            (release build; installs cargo-deb from crates.io if missing)
# The man page and shell completions are generated from the CLI definition (`flotilla man`,
# `flotilla completions SHELL`). Where systemd runs (not in containers or CI here), the package
# is also installed and the units started and checked; elsewhere only the contents are checked.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_INCREMENTAL=0
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
command -v dpkg-deb >/dev/null || { apt-get update -qq && apt-get install -y -qq dpkg >/dev/null; }

cargo build --release -p flotilla
BIN=target/release/flotilla
OUT=target/packaging
mkdir -p "$OUT"
"$BIN" man | gzip -9n > "$OUT/flotilla.1.gz"
"$BIN" completions bash > "$OUT/flotilla.bash"
"$BIN" completions zsh > "$OUT/_flotilla"
"$BIN" completions fish > "$OUT/flotilla.fish"

cargo deb -p flotilla --no-build --output "$OUT/"
DEB=$(ls -t "$OUT"/flotilla_*.deb | head -1)
dpkg-deb -c "$DEB" | awk '{print $NF}' > "$OUT/contents.txt"
missing=0
for f in ./usr/bin/flotilla ./lib/systemd/system/flotilla.service \
         ./lib/systemd/system/flotilla.socket ./usr/share/man/man1/flotilla.1.gz \
         ./etc/flotilla/flotilla.toml ./usr/share/bash-completion/completions/flotilla \
         ./usr/share/zsh/vendor-completions/_flotilla \
         ./usr/share/fish/vendor_completions.d/flotilla.fish; do
  grep -qx "$f" "$OUT/contents.txt" || { echo "missing from the package: $f"; missing=1; }
done
dpkg-deb -f "$DEB" Package Version Depends
dpkg-deb --ctrl-tarfile "$DEB" | tar -t | grep -qx './postinst' || { echo "no postinst"; missing=1; }
dpkg-deb --ctrl-tarfile "$DEB" | tar -t | grep -qx './conffiles' || { echo "no conffiles"; missing=1; }
zcat "$OUT/flotilla.1.gz" | grep -q 'upgrade' || { echo "the man page lacks the upgrade command"; missing=1; }
[ "$missing" -eq 0 ] || exit 1
echo "package contents checked: $DEB ($(wc -l < "$OUT/contents.txt") entries)"

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
