#!/usr/bin/env bash
# deb_unpack.sh PACKAGE PATH-IN-PACKAGE: prints the path of one file of a Debian package that is
# not (or must not be) installed, unpacking the package on first use. Used for binaries that
# conflict with what the machine has (Debian's kubectl 1.20 against the image's kubectl) or that
# would start a system service when installed (etcd-server, the reference bench_api runs).
# The .deb is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache dir
# that later runs reuse. Exit 0 and the path on stdout; exit 1 with the reason on stderr.
# Cache dir: $SKIFF_CACHE_DIR, else /var/cache/skiff when writable, else ~/.cache/skiff.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: deb_unpack.sh PACKAGE PATH-IN-PACKAGE (e.g. usr/bin/etcd)" >&2; exit 2; }
pkg=$1
rel=${2#/}
[[ $pkg =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || { echo "deb_unpack: '$pkg' is not a package name" >&2; exit 2; }
if [ -n "${SKIFF_CACHE_DIR:-}" ]; then
  cache=$SKIFF_CACHE_DIR
elif mkdir -p /var/cache/skiff 2>/dev/null && [ -w /var/cache/skiff ]; then
  cache=/var/cache/skiff
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/skiff
fi
dir=$cache/deb-$pkg
if [ -e "$dir/$rel" ]; then
  echo "$dir/$rel"
  exit 0
fi
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deb_unpack: $tool not found" >&2; exit 1; }
done
mkdir -p "$cache"
work=$(mktemp -d "$cache/$pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt drops to the _apt user for downloads; let it write into the scratch dir.
chmod 0777 "$work"
fetch() { (cd "$work" && timeout 300 apt-get download -q "$pkg" >"$work/apt.log" 2>&1); }
# A machine whose package lists were never fetched does not know the package yet.
if ! fetch && ! { timeout 300 apt-get update -qq >/dev/null 2>&1 && fetch; }; then
  echo "deb_unpack: apt-get download $pkg failed:" >&2
  tail -n 5 "$work/apt.log" >&2 || true
  exit 1
fi
deb=$(ls "$work"/"${pkg}"_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "deb_unpack: no .deb of $pkg was downloaded" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/root"
[ -e "$work/root/$rel" ] || { echo "deb_unpack: $pkg has no $rel" >&2; exit 1; }
# Publish atomically so a concurrent run never sees a half-unpacked tree.
rm -rf "$dir.new" && mv "$work/root" "$dir.new" && rm -rf "$dir" && mv "$dir.new" "$dir"
echo "$dir/$rel"
