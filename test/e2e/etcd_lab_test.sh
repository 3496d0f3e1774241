#!/usr/bin/env bash
# e2e on etcd: workloads_test.py (Deployments, rollouts and undo, scale, a node killed, the
# controller-manager's leader moving) in a lab whose API server stores everything in etcd
# (SKIFF_LAB_STORE=etcd: a one-member etcd on node1's loopback), under a lab name of its own.
# Exit: workloads_test's (0 pass, 1 fail, 77 skipped); 77 too when no etcd can be had.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${SKIFF_SRC:-$(cd "$here/../.." && pwd)}
if [ -z "${SKIFF_ETCD:-}" ] && ! command -v etcd >/dev/null; then
  if ! SKIFF_ETCD=$(bash "$src/test/tools/deb_unpack.sh" etcd-server usr/bin/etcd 2>&1); then
    echo "SKIPPED: no etcd: deb_unpack.sh etcd-server failed: $SKIFF_ETCD"
    exit 77
  fi
  export SKIFF_ETCD
fi
export SKIFF_LAB_STORE=etcd
export SKIFF_E2E_LAB_NAME=skiff-e2e-etcd SKIFF_E2E_LAB_DIR=/tmp/skiff-e2e-etcd
exec python3 "$here/workloads_test.py"
