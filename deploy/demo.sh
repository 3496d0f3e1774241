#!/usr/bin/env bash
# skiff's main job today, end to end on this machine: installs dependencies, builds, starts the
# API server (HTTPS, SQLite store), and drives it with skiffctl and the real kubectl: apply,
# get, watch, describe, apply again with a change, kill -9 and restart with nothing lost, delete.
#
# Usage: deploy/demo.sh [--keep]    (--keep leaves the server running at the end)
# Env:   SKIFF_DEMO_DIR (default /tmp/skiff-demo), SKIFF_DEMO_PORT (default 6443)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
dir=${SKIFF_DEMO_DIR:-/tmp/skiff-demo}
port=${SKIFF_DEMO_PORT:-6443}
keep=0
[ "${1:-}" = "--keep" ] && keep=1

bash "$src/deploy/build.sh" skiff-apiserver skiffctl

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pid=
start_server() {
  "$build/skiff-apiserver" --listen "127.0.0.1:$port" --data-dir "$dir" --store sqlite \
    >>"$dir/apiserver.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [ -f "$dir/admin.kubeconfig" ] && curl -sfk \
      "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$dir/apiserver.log"; echo "apiserver exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "apiserver did not become ready; log: $dir/apiserver.log" >&2
  exit 1
}
cleanup() { [ "$keep" = 1 ] || { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; }; }
trap cleanup EXIT

mkdir -p "$dir"
step "starting skiff-apiserver (data dir $dir)"
start_server
export KUBECONFIG="$dir/admin.kubeconfig"
ctl() { echo "\$ skiffctl $*"; "$build/skiffctl" "$@"; }
kc() { echo "\$ kubectl $*"; kubectl --cache-dir "$dir/kubectl-cache" "$@"; }

step "apply the demo manifests with skiffctl"
ctl apply -f "$src/deploy/examples/demo.yaml"
ctl get pods,services,configmaps -n demo
ctl get pod web -n demo -o wide

step "the real kubectl reads the same objects with the admin kubeconfig"
kc version 2>/dev/null | sed -n 1,2p || true
kc get pods -n demo -o wide
kc get namespaces
kc describe service web -n demo | sed -n 1,12p

step "watch: kubectl get -w sees a change made by skiffctl"
kc get configmaps -n demo -w > "$dir/watch.out" 2>&1 &
wpid=$!
sleep 1
sed 's/hello from skiff/hello again/' "$src/deploy/examples/demo.yaml" | ctl apply -f -
sleep 1
kill "$wpid" 2>/dev/null || true
cat "$dir/watch.out"

step "kill -9 the server and restart it: nothing acknowledged is lost"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start_server
ctl get configmap web-config -n demo -o yaml | grep -E 'greeting|resourceVersion'

step "delete the namespace: everything in it goes with it"
ctl delete namespace demo
ctl get namespaces
ctl get pods,configmaps -n demo

if [ "$keep" = 1 ]; then
  step "server left running (pid $pid); KUBECONFIG=$dir/admin.kubeconfig"
fi
