#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs every unit, integration and e2e test
# through CTest. Tests that need root or a kernel feature report "skipped" when they cannot run.
# Usage: test/run.sh [ctest args...]     (e.g. -R store, --output-on-failure is always on)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
bash "$src/deploy/build.sh"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
