#!/usr/bin/env bash
# Prints the path of Debian's kubectl 1.20 (package kubernetes-client), unpacking it on first use.
# The machine image's /usr/bin/kubectl (google-cloud-sdk, 1.27-1.33) conflicts with the package,
# so it is never installed: the .deb is fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into a cache dir that later runs reuse.
# Exit 0 and the path on stdout; exit 1 with the reason on stderr when it cannot be had.
# Cache dir: $SKIFF_CACHE_DIR, else /var/cache/skiff when writable, else ~/.cache/skiff.
set -euo pipefail
if [ -n "${SKIFF_CACHE_DIR:-}" ]; then
  cache=$SKIFF_CACHE_DIR
elif mkdir -p /var/cache/skiff 2>/dev/null && [ -w /var/cache/skiff ]; then
  cache=/var/cache/skiff
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/skiff
fi
dir=$cache/kubectl-1.20
bin=$dir/usr/bin/kubectl
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kubectl120: $tool not found" >&2; exit 1; }
done
mkdir -p "$cache"
work=$(mktemp -d "$cache/kubectl120.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt drops to the _apt user for downloads; let it write into the scratch dir.
chmod 0777 "$work"
fetch() { (cd "$work" && timeout 300 apt-get download -q kubernetes-client >"$work/apt.log" 2>&1); }
# A machine whose package lists were never fetched knows no kubernetes-client yet.
if ! fetch && ! { timeout 300 apt-get update -qq >/dev/null 2>&1 && fetch; }; then
  echo "kubectl120: apt-get download kubernetes-client failed:" >&2
  tail -n 5 "$work/apt.log" >&2 || true
  exit 1
fi
deb=$(ls "$work"/kubernetes-client_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "kubectl120: no .deb was downloaded" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/root"
[ -x "$work/root/usr/bin/kubectl" ] || { echo "kubectl120: the .deb has no usr/bin/kubectl" >&2; exit 1; }
# Publish atomically so a concurrent run never sees a half-unpacked tree.
rm -rf "$dir.new" && mv "$work/root" "$dir.new" && rm -rf "$dir" && mv "$dir.new" "$dir"
echo "$bin"
