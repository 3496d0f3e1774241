#!/usr/bin/env bash
# Prints the path of Debian's kubectl 1.20 (package kubernetes-client), unpacking it on first use.
# The machine image's /usr/bin/kubectl (google-cloud-sdk, 1.27-1.33) conflicts with the package,
# so it is never installed: deb_unpack.sh fetches the .deb and unpacks it into a cache dir.
# Exit 0 and the path on stdout; exit 1 with the reason on stderr when it cannot be had.
set -euo pipefail
exec bash "$(dirname "$0")/deb_unpack.sh" kubernetes-client usr/bin/kubectl
