#!/usr/bin/env bash
# Installs dependencies (deploy/deps.sh) and builds skiff into ./build (or $SKIFF_BUILD_DIR).
# Usage: deploy/build.sh [ninja targets...]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
bash "$src/deploy/deps.sh"
werror=OFF
[ "${CI:-}" = true ] && werror=ON
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKIFF_WERROR=$werror >/dev/null
fi
ninja -C "$build" -j"$(nproc)" "$@"
