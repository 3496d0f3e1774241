#!/bin/bash
# bench/api_fs.sh: bench_api's creates on a filesystem made for the run, so the single-client
# figure can be compared across filesystem layouts on one machine (the root filesystem of a VM
# may have no journal, as on the machine this was written on, where Debian's installer makes
# ext4 with one).
#
#   bench/api_fs.sh journal|nojournal|both [bench_api args...]   (as root)
#
# For each layout: a 2 GiB sparse image under $SKIFF_BENCH_DIR (default /var/tmp), a loop
# device on it (--direct-io=on: no second page cache), ext4 with its tables written at mkfs
# (no lazy init writing beside the run), with or without a journal, mounted on a directory of
# its own; then `bench_api --only creates --tmp <that dir>` with the remaining arguments. The
# floor probes, fio, etcd and the minimal durable server all run on that filesystem, in the
# same run, as on any --tmp. Everything is unmounted, detached and removed at exit, also on
# failure or interrupt. Exit 77 (skipped) without root, losetup or mkfs.ext4.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bench=${SKIFF_BENCH_API:-$(cd "$here/.." && pwd)/build/bench/bench_api}
layouts=${1:-both}
shift || true
case $layouts in
  journal|nojournal) ;;
  both) layouts="journal nojournal" ;;
  *) echo "usage: $0 journal|nojournal|both [bench_api args...]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null || ! command -v mkfs.ext4 >/dev/null; then
  echo "SKIPPED: bench/api_fs.sh needs root, losetup and mkfs.ext4 (e2fsprogs)"
  exit 77
fi
[ -x "$bench" ] || { echo "$0: no bench_api at $bench (ninja -C build bench_api)" >&2; exit 2; }

work=$(mktemp -d "${SKIFF_BENCH_DIR:-/var/tmp}/skiff-bench-fs.XXXXXX") || exit 1
loop=""
cleanup() {
  if mountpoint -q "$work/mnt" 2>/dev/null; then umount "$work/mnt" || umount -l "$work/mnt"; fi
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  loop=""
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

rc=0
for layout in $layouts; do
  truncate -s 2G "$work/disk.img" || exit 1
  loop=$(losetup -f --show --direct-io=on "$work/disk.img") || exit 1
  if [ "$layout" = journal ]; then
    features=has_journal; opts=lazy_itable_init=0,lazy_journal_init=0
  else
    features=^has_journal; opts=lazy_itable_init=0
  fi
  mkfs.ext4 -q -F -O "$features" -E "$opts" "$loop" || exit 1
  mkdir -p "$work/mnt" && mount "$loop" "$work/mnt" || exit 1
  backing=$(df --output=source "$work" | tail -1)
  echo "== ext4 $( [ "$layout" = journal ] && echo with || echo without ) a journal, on $loop" \
       "(direct I/O, a sparse image on $backing)"
  "$bench" --only creates --tmp "$work/mnt" "$@" || rc=$?
  echo
  umount "$work/mnt" && losetup -d "$loop" && loop="" && rm -f "$work/disk.img" || exit 1
done
exit $rc
