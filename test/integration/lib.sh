# Shared helpers for the bash integration tests. Source it: `. "$(dirname "$0")/lib.sh"`.
#
# Environment: SKIFF_BIN (build dir holding skiff-apiserver and skiffctl), SKIFF_SRC (source dir).
# Exit codes follow CTest: 0 pass, 1 fail, 77 skipped (with the reason printed).
# Everything listens on and talks to 127.0.0.1 only.
#
#   skiff_init                     temp dir ($SKIFF_TMP) + cleanup trap; call first
#   skiff_start_apiserver [ARGS]   starts skiff-apiserver on a free 127.0.0.1 port with a fresh
#                                  data dir and waits until it is ready; sets SKIFF_PID,
#                                  SKIFF_PORT, SKIFF_URL, SKIFF_DATA, SKIFF_KUBECONFIG, SKIFF_TOKEN
#   skiff_stop_apiserver           SIGTERM, then SIGKILL after 10 s
#   check DESC CMD...              runs CMD; prints "ok"/"FAIL" with DESC; counts failures
#   skiff_finish                   prints the summary and exits 0 or 1
set -uo pipefail

SKIFF_BIN=${SKIFF_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
SKIFF_SRC=${SKIFF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SKIFF_FAILS=0
SKIFF_CHECKS=0
SKIFF_PIDS=()
SKIFF_TMP=""

skiff_log() { echo "[$(date +%H:%M:%S)] $*"; }

skiff_skip() {
  echo "SKIPPED: $*"
  exit 77
}

skiff_die() {
  echo "FAIL: $*"
  exit 1
}

_skiff_cleanup() {
  local rc=$?
  local pid
  for pid in "${SKIFF_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${SKIFF_PIDS[@]}"; do
    local i
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$SKIFF_TMP" ] && [ -d "$SKIFF_TMP" ]; then
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -f "$SKIFF_TMP/apiserver.log" ]; then
      echo "---- last lines of the apiserver log ----"
      tail -n 40 "$SKIFF_TMP/apiserver.log" || true
    fi
    rm -rf "$SKIFF_TMP"
  fi
  exit "$rc"
}

skiff_init() {
  SKIFF_TMP=$(mktemp -d "${TMPDIR:-/tmp}/skiff-test.XXXXXX")
  trap _skiff_cleanup EXIT
  trap 'exit 1' INT TERM HUP
}

# Registers a background process so the cleanup trap ends it.
skiff_track() { SKIFF_PIDS+=("$1"); }

skiff_need_bin() {
  local b
  for b in "$@"; do
    [ -x "$SKIFF_BIN/$b" ] || skiff_skip "$SKIFF_BIN/$b is not built"
  done
}

# A TCP port that is free on 127.0.0.1 right now (the kernel picks it).
skiff_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until `cmd...` succeeds, up to $1 seconds. Returns 1 on timeout.
skiff_wait_for() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$end" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

_skiff_ready() {
  [ -s "$SKIFF_DATA/admin.kubeconfig" ] || return 1
  [ -s "$SKIFF_DATA/pki/admin.token" ] || return 1
  local code
  code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "$SKIFF_URL/readyz") || return 1
  [ "$code" = 200 ]
}

# skiff_start_apiserver [extra flags...]: HTTPS on a free loopback port, fresh data dir.
# SKIFF_DATA may be set beforehand to reuse a data dir (restart).
skiff_start_apiserver() {
  skiff_need_bin skiff-apiserver
  SKIFF_PORT=$(skiff_free_port)
  SKIFF_DATA=${SKIFF_DATA:-$SKIFF_TMP/data}
  mkdir -p "$SKIFF_DATA"
  SKIFF_URL="https://127.0.0.1:$SKIFF_PORT"
  SKIFF_KUBECONFIG="$SKIFF_DATA/admin.kubeconfig"
  skiff_log "starting skiff-apiserver --listen 127.0.0.1:$SKIFF_PORT --data-dir $SKIFF_DATA $*"
  "$SKIFF_BIN/skiff-apiserver" --listen "127.0.0.1:$SKIFF_PORT" --data-dir "$SKIFF_DATA" \
    "$@" >>"$SKIFF_TMP/apiserver.log" 2>&1 &
  SKIFF_PID=$!
  skiff_track "$SKIFF_PID"
  local end=$((SECONDS + 60))
  while ! _skiff_ready; do
    if ! kill -0 "$SKIFF_PID" 2>/dev/null; then
      cat "$SKIFF_TMP/apiserver.log"
      skiff_die "skiff-apiserver exited during start-up"
    fi
    [ "$SECONDS" -lt "$end" ] || skiff_die "skiff-apiserver not ready within 60 s"
    sleep 0.2
  done
  SKIFF_TOKEN=$(tr -d '\n' <"$SKIFF_DATA/pki/admin.token")
  skiff_log "apiserver ready (pid $SKIFF_PID) at $SKIFF_URL"
}

skiff_stop_apiserver() {
  [ -n "${SKIFF_PID:-}" ] || return 0
  kill -TERM "$SKIFF_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    kill -0 "$SKIFF_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SKIFF_PID" 2>/dev/null || true
  wait "$SKIFF_PID" 2>/dev/null || true
  SKIFF_PID=""
}

# check DESC CMD...: one named check; output of a failing command is shown.
check() {
  local desc=$1
  shift
  SKIFF_CHECKS=$((SKIFF_CHECKS + 1))
  local out
  if out=$("$@" 2>&1); then
    echo "ok   - $desc"
  else
    SKIFF_FAILS=$((SKIFF_FAILS + 1))
    echo "FAIL - $desc"
    echo "$out" | sed -n '1,30p' | sed 's/^/       | /'
  fi
}

# Records a failure found outside `check` (e.g. inside a helper).
fail() {
  SKIFF_CHECKS=$((SKIFF_CHECKS + 1))
  SKIFF_FAILS=$((SKIFF_FAILS + 1))
  echo "FAIL - $*"
}

pass() {
  SKIFF_CHECKS=$((SKIFF_CHECKS + 1))
  echo "ok   - $*"
}

skiff_finish() {
  echo "$((SKIFF_CHECKS - SKIFF_FAILS))/$SKIFF_CHECKS checks passed"
  [ "$SKIFF_FAILS" -eq 0 ] && exit 0
  exit 1
}

# Helpers for checks: each succeeds or prints why not.
contains() {  # contains HAYSTACK NEEDLE
  case "$1" in
    *"$2"*) return 0 ;;
  esac
  echo "expected to find: $2"
  echo "in: $1"
  return 1
}

matches() {  # matches TEXT ERE
  if grep -Eq -- "$2" <<<"$1"; then return 0; fi
  echo "expected a line matching: $2"
  echo "in: $1"
  return 1
}
