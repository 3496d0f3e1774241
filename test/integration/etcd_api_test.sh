#!/usr/bin/env bash
# The API and durability tests again, with skiff-apiserver on etcd (--store etcd): every
# testlib.Server that does not pick a store gets a one-member etcd of its own
# (SKIFF_TEST_STORE=etcd; etcd is Debian's etcd-server, unpacked by test/tools/deb_unpack.sh).
# Exit: 0 both passed, 1 one failed, 77 skipped (no etcd can be had; the reason is printed).
set -u
export SKIFF_TEST_STORE=etcd
here=$(cd "$(dirname "$0")" && pwd)
skipped=0
for t in api_https_test.py durability_test.py; do
  echo "==== $t on etcd"
  python3 "$here/$t"
  rc=$?
  case $rc in
    0) ;;
    77) skipped=1 ;;
    *) echo "FAIL: $t on etcd exited $rc"; exit 1 ;;
  esac
done
[ "$skipped" = 0 ] || { echo "SKIPPED: a test could not run on etcd (see above)"; exit 77; }
echo "both passed on etcd"
