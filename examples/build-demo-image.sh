#!/usr/bin/env bash
# Builds the demo image (the flotilla binary, whose `demo-app` is the "What is the time?"
# service) from a local root filesystem and loads it into Podman (or Docker) under a tag, so
# examples/containers.toml runs on a machine without a registry.
#
#   examples/build-demo-image.sh [TAG] [BINARY]
#     TAG     default localhost/flotilla-demo:1
#     BINARY  default target/release/flotilla (else target/debug/flotilla)
#
# The root filesystem holds the binary and the shared libraries `ldd` names (a static musl
# build would need only the binary, but the musl target is not installed everywhere), plus an
# /etc/passwd and /tmp. The image is loaded with `podman import` of a tarball of it (`docker
# import` where Docker is the engine): no registry, no Dockerfile, no build daemon.
# FLOTILLA_CONTAINER_ENGINE picks the engine as Flotilla does (default: podman, else docker).
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-localhost/flotilla-demo:1}"
bin="${2:-}"
if [ -z "$bin" ]; then
  for candidate in target/release/flotilla target/debug/flotilla; do
    if [ -x "$candidate" ]; then bin="$candidate"; break; fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "no flotilla binary: run 'cargo build --release' first, or pass its path" >&2
  exit 1
fi
engine="${FLOTILLA_CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then engine=podman; else engine=docker; fi
fi

rootfs="$(mktemp -d)"
tarball="$(mktemp --suffix=.tar)"
trap 'rm -rf "$rootfs" "$tarball"' EXIT

mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp "$bin" "$rootfs/bin/flotilla"
# Every library the dynamic loader will look for, at the same path as on this machine.
ldd "$bin" | awk '/=>/ { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
  [ -n "$lib" ] && [ -e "$lib" ] || continue
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/:/bin/flotilla\nnobody:x:65534:65534:nobody:/:/bin/flotilla\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -cf "$tarball" .
# The entrypoint and command make `podman run IMAGE` start the demo app on $PORT.
"$engine" import \
  --change 'ENTRYPOINT ["/bin/flotilla"]' \
  --change 'CMD ["demo-app"]' \
  "$tarball" "$tag" >/dev/null
echo "$tag"
