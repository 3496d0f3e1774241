#!/usr/bin/env bash
# skiff's main job today, end to end on this machine: installs dependencies, builds, and runs a
# one-node cluster — skiff-apiserver (HTTPS, SQLite), skiff-controller-manager, skiff-scheduler
# and skiff-kubelet — inside a network namespace of its own (`skiff-demo`, no route to the
# host's network), then drives it with skiffctl and the real kubectl: apply a two-container pod
# with a configMap and a secret, watch it start, read its logs, exec into it, reach it over the
# pod network; deploy a Deployment, scale it, roll it out and back, see a deleted pod replaced;
# kill -9 the kubelet and the API server and see nothing restart or get lost; delete everything
# and see nothing left. Then a three-node cluster in the lab (deploy/lab.sh, namespaces only):
# the same Deployment spread over the nodes, pods reaching each other across nodes over VXLAN,
# and a Service in front of it reached by ClusterIP (from a node), NodePort (from the lab's
# `outside` namespace on every node's address), by name from a pod (cluster DNS) and by its
# LoadBalancer address from outside; a StatefulSet whose pods keep their files on local-path
# volumes across deletion and answer by name, a DaemonSet on every node, and an Indexed Job.
#
# Usage: deploy/demo.sh [--keep]    (--keep leaves both clusters running; deploy/demo.sh --down
#                                    removes them)
# Env:   SKIFF_DEMO_DIR (default /tmp/skiff-demo), SKIFF_BUILD_DIR (default <repo>/build),
#        SKIFF_DEMO_NAME (default skiff-demo: the netns and cgroup name; the lab part is
#        <name>-lab), so a second demo can run beside another one
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
dir=${SKIFF_DEMO_DIR:-/tmp/skiff-demo}
ns=${SKIFF_DEMO_NAME:-skiff-demo}
[[ "$ns" =~ ^[a-z][a-z0-9-]{0,15}$ ]] ||
  { echo "SKIFF_DEMO_NAME must be 1-16 of [a-z0-9-], starting with a letter" >&2; exit 2; }
node=demo-node
cg=$ns
lab=$ns-lab  # the three-node part's deploy/lab.sh name (namespaces, cgroups)
mode=run
case "${1:-}" in
  --keep) mode=keep ;;
  --down) mode=down ;;
  "") ;;
  *) echo "usage: $0 [--keep|--down]" >&2; exit 2 ;;
esac

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }

# Removes everything the demo made: processes, pods' mounts, cgroups, the netns, the data.
teardown() {
  local pids
  for f in "$dir"/kubelet.pid "$dir"/apiserver.pid "$dir"/controller-manager.pid \
    "$dir"/scheduler.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  # Containers (their shims) live in the demo's cgroups.
  for c in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
    [ -d "$c" ] || continue
    pids=$(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  done
  # Daemons and shims of an earlier run whose pid files are gone: all run in the demo's netns.
  if [ -e "/run/netns/$ns" ]; then
    pids=$(ip netns pids "$ns" 2>/dev/null | xargs)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  fi
  sleep 0.3
  if [ -d "$dir" ]; then
    awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  for c in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
  SKIFF_LAB_NAME=$lab SKIFF_LAB_DIR=$dir-lab bash "$src/deploy/lab.sh" down >/dev/null 2>&1 || true
}

if [ "$mode" = down ]; then
  teardown
  echo "demo removed"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "the demo runs containers: run it as root" >&2; exit 1; }

bash "$src/deploy/build.sh" skiff-apiserver skiffctl skiff-kubelet skiff-shim skiff-cni \
  skiff-controller-manager skiff-scheduler skiff-netagent
bash "$src/deploy/images/build.sh" "$build/images"

teardown  # a previous run's leftovers
trap '[ "$mode" = keep ] || teardown' EXIT
mkdir -p "$dir"
ip netns add "$ns"
in_ns ip link set lo up

wait_for() {  # wait_for DESC TIMEOUT_S CMD...
  local desc=$1 t=$2; shift 2
  for _ in $(seq 1 $((t * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "timed out waiting for $desc" >&2
  return 1
}

start_apiserver() {
  # nsenter execs the daemon itself, so $! is the daemon's pid (a shell function would fork).
  nsenter --net="/run/netns/$ns" "$build/skiff-apiserver" --listen 127.0.0.1:6443 --data-dir "$dir/apiserver" \
    >>"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"
  disown
  wait_for "the API server" 30 in_ns curl -sfk https://127.0.0.1:6443/readyz ||
    { tail -20 "$dir/apiserver.log"; exit 1; }
}
start_kubelet() {
  nsenter --net="/run/netns/$ns" "$build/skiff-kubelet" --kubeconfig "$dir/apiserver/admin.kubeconfig" \
    --node-name "$node" --data-dir "$dir/node" --run-dir "$dir/run" --log-dir "$dir/log" \
    --cgroup-parent "$cg" --cni-conf-dir "$dir/cni" --pod-cidr 10.244.0.0/24 \
    --client-token-file "$dir/apiserver/pki/kubelet-client.token" --v 1 \
    >>"$dir/kubelet.log" 2>&1 &
  echo $! >"$dir/kubelet.pid"
  disown
}
start_control() {  # start_control NAME: skiff-controller-manager or skiff-scheduler
  nsenter --net="/run/netns/$ns" "$build/skiff-$1" --kubeconfig "$dir/apiserver/admin.kubeconfig" \
    >>"$dir/$1.log" 2>&1 &
  echo $! >"$dir/$1.pid"
  disown
}
export KUBECONFIG="$dir/apiserver/admin.kubeconfig"
ctl() { echo "\$ skiffctl $*"; in_ns "$build/skiffctl" "$@"; }
kc() { echo "\$ kubectl $*"; in_ns kubectl --cache-dir "$dir/kubectl-cache" "$@"; }

step "a network namespace '$ns' for the cluster; skiff-apiserver on 127.0.0.1:6443 inside it"
start_apiserver

step "skiff-controller-manager and skiff-scheduler (each leader-elected through a Lease)"
start_control controller-manager
start_control scheduler
wait_for "the controller-manager's Lease" 30 in_ns kubectl get lease -n kube-system \
  skiff-controller-manager || { tail -20 "$dir/controller-manager.log"; exit 1; }
wait_for "the scheduler's Lease" 30 in_ns kubectl get lease -n kube-system skiff-scheduler ||
  { tail -20 "$dir/scheduler.log"; exit 1; }
kc get lease -n kube-system

step "skiff-kubelet: import the busybox image, register node $node"
"$build/skiff-kubelet" image import "$build/images/busybox.oci.tar" --data-dir "$dir/node"
start_kubelet
wait_for "node $node Ready" 60 sh -c "nsenter --net=/run/netns/$ns kubectl get node $node \
  -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True" ||
  { tail -20 "$dir/kubelet.log"; exit 1; }
kc get nodes -o wide

step "apply the demo manifests: a pod with two containers, a configMap, a secret, a service"
ctl apply -f "$src/deploy/examples/demo.yaml"
wait_for "pod web Ready" 60 sh -c "nsenter --net=/run/netns/$ns kubectl -n demo get pod web \
  -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True" ||
  { kc -n demo describe pod web; tail -30 "$dir/kubelet.log"; exit 1; }
kc -n demo get pods -o wide
grep -h 'pod-start demo/web' "$dir/kubelet.log" | tail -1 | sed 's/^.*pod-start/kubelet: pod-start/'

step "inside the pod: shared network and hostname, separate processes, volumes, env"
kc -n demo exec web -c web -- sh -c 'echo "hostname: $(hostname)"; echo "processes seen by web:"; ps'
kc -n demo exec web -c poller -- sh -c 'echo "processes seen by poller:"; ps; echo "GREETING=$GREETING"'
kc -n demo exec web -c web -- ls -l /etc/token/ /www/
echo "kubectl exec -- sh -c 'exit 3' exits with:"
set +e; in_ns kubectl -n demo exec web -c web -- sh -c 'exit 3'; echo "  status $?"; set -e

step "logs: the poller reaches the web container on localhost"
sleep 2
kc -n demo logs web -c poller --tail 3

step "the node reaches the pod on its own IP over the pod network"
ip=$(in_ns kubectl -n demo get pod web -o jsonpath='{.status.podIP}')
echo "\$ wget -qO- http://$ip:8080/"
in_ns busybox wget -qO- "http://$ip:8080/"

step "kubectl describe"
kc -n demo describe pod web | sed -n '/^Containers:/,/^Conditions:/p' | grep -E '^  [a-z]|State|Ready|Restart|Image:' | head -14
kc -n demo describe pod web | sed -n '/^Events:/,$p'

step "a Deployment: 3 replicas of busybox httpd, scheduled, started, Ready"
ctl apply -f "$src/deploy/examples/hello.yaml"
kc -n hello rollout status deployment/hello --timeout 120s
kc -n hello get deploy,rs,pods -o wide
ip=$(in_ns kubectl -n hello get pods -l app=hello -o jsonpath='{.items[0].status.podIP}')
echo "\$ wget -qO- http://$ip:8080/"
in_ns busybox wget -qO- "http://$ip:8080/"

step "scale to 5, roll out a new template, roll it back, delete a pod: all converge"
ctl scale deployment/hello -n hello --replicas 5
ctl rollout status deployment/hello -n hello --timeout 120s
kc -n hello set env deployment/hello GREETING=bonjour
kc -n hello rollout status deployment/hello --timeout 120s
ip=$(in_ns kubectl -n hello get pods -l app=hello -o jsonpath='{.items[0].status.podIP}')
in_ns busybox wget -qO- "http://$ip:8080/"
ctl rollout history deployment/hello -n hello
ctl rollout undo deployment/hello -n hello
kc -n hello rollout status deployment/hello --timeout 120s
victim=$(in_ns kubectl -n hello get pods -l app=hello -o jsonpath='{.items[0].metadata.name}')
kc -n hello delete pod "$victim" --wait=false
wait_for "a replacement for $victim" 60 sh -c "nsenter --net=/run/netns/$ns kubectl -n hello \
  get deploy hello -o jsonpath='{.status.readyReplicas}' | grep -qx 5"
kc -n hello get pods -o wide
ctl delete namespace hello
wait_for "the Deployment's containers to go" 60 sh -c "! grep -lqE \
  '\"skiff.pod.namespace\": *\"hello\"' $dir/run/containers/*/config.json"

step "kill -9 the kubelet and start it again: the containers keep running, same PIDs"
pids_before=$(grep -oh '"pid":[0-9]*' "$dir"/run/containers/*/state.json | cut -d: -f2 | sort | xargs)
kill -9 "$(cat "$dir/kubelet.pid")"; sleep 0.5
start_kubelet
sleep 3
pids_after=$(grep -oh '"pid":[0-9]*' "$dir"/run/containers/*/state.json | cut -d: -f2 | sort | xargs)
echo "container pids before: $pids_before"
echo "container pids after:  $pids_after"
kc -n demo get pod web
[ "$pids_before" = "$pids_after" ] || { echo "container PIDs changed" >&2; exit 1; }

step "kill -9 the API server and restart it: nothing acknowledged is lost"
kill -9 "$(cat "$dir/apiserver.pid")"; sleep 0.3
start_apiserver
ctl get configmap web-config -n demo -o yaml | grep -E 'greeting|resourceVersion'

step "delete the namespace: the pod stops, and nothing of it is left on the node"
ctl delete namespace demo
wait_for "the pod's containers to go" 60 sh -c "! ls $dir/run/containers/*/state.json"
ctl get pods -n demo
echo "containers left: $(ls "$dir/run/containers" 2>/dev/null | wc -l)," \
  "sandboxes left: $(ls "$dir/run/pods" 2>/dev/null | wc -l)," \
  "pod cgroups left: $(ls -d /sys/fs/cgroup/memory/$cg/pod* 2>/dev/null | wc -l)"

step "three nodes on this machine (deploy/lab.sh): nodes are namespaces on a lab LAN of their own"
export SKIFF_LAB_NAME=$lab SKIFF_LAB_DIR=$dir-lab SKIFF_LAB_NOBUILD=1 SKIFF_BUILD_DIR=$build
labx() { echo "\$ [$1] ${*:2}"; bash "$src/deploy/lab.sh" exec "$@"; }
bash "$src/deploy/lab.sh" up 3
labx node1 kubectl get nodes -o wide
bash "$src/deploy/lab.sh" exec node1 kubectl apply -f - <"$src/deploy/examples/hello.yaml"
labx node1 kubectl -n hello rollout status deployment/hello --timeout 120s
labx node1 kubectl -n hello get pods -o wide

step "pod to pod across nodes (VXLAN): each pod answers with its own name"
pod1=$(bash "$src/deploy/lab.sh" exec node1 kubectl -n hello get pods -o jsonpath='{.items[0].metadata.name}')
for podip in $(bash "$src/deploy/lab.sh" exec node1 kubectl -n hello get pods \
    -o jsonpath='{range .items[*]}{.status.podIP}{" "}{end}'); do
  labx node1 kubectl -n hello exec "$pod1" -- \
    sh -c "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $podip 8080 | tail -1"
done
labx node1 sh -c 'ip route | grep skiff'

step "a Service in front of the Deployment: by ClusterIP, by NodePort, by name, by LoadBalancer IP"
# Prints CMD's output once it succeeds (retried for up to T s: rules, ARP and DNS converge in
# moments); fails the demo with DESC otherwise.
until_ok() {  # until_ok DESC T CMD...
  local desc=$1 t=$2 o=""; shift 2
  for _ in $(seq 1 $((t * 2))); do
    if o=$("$@" 2>&1); then printf '%s\n' "$o"; return 0; fi
    sleep 0.5
  done
  printf '%s\n' "$o" >&2
  echo "demo: $desc did not work within ${t}s" >&2
  return 1
}
lk() { bash "$src/deploy/lab.sh" exec node1 kubectl -n hello "$@"; }
if ! grep -q -- --service-cluster-ip-range <<<"$("$build/skiff-apiserver" --help 2>&1)"; then
  echo "(this build of skiff-apiserver has no Services yet: skipped)"
else
  if grep -q -- --target-port <<<"$("$build/skiffctl" expose --help 2>&1)"; then
    labx node1 skiffctl expose deployment hello -n hello --port 80 --target-port 8080 \
      --type NodePort
  else
    echo "\$ [node1] kubectl apply -f -   # Service hello: NodePort, port 80 -> 8080"
    lk apply -f - <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: hello, namespace: hello}
spec:
  type: NodePort
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
YAML
  fi
  until_ok "Endpoints hello with the 3 pods" 60 sh -c "bash '$src/deploy/lab.sh' exec node1 \
    kubectl -n hello get endpoints hello -o jsonpath='{.subsets[*].addresses[*].ip}' |
    wc -w | grep -qx 3" >/dev/null || exit 1
  labx node1 kubectl -n hello get svc,endpoints -o wide
  cip=$(lk get svc hello -o jsonpath='{.spec.clusterIP}')
  np=$(lk get svc hello -o jsonpath='{.spec.ports[0].nodePort}')
  echo "-- by ClusterIP $cip from node2's netns (a new connection each time: any pod answers)"
  for _ in 1 2 3 4; do
    until_ok "curl http://$cip/ on node2" 20 bash "$src/deploy/lab.sh" exec node2 \
      curl -sf --max-time 3 "http://$cip/" || exit 1
  done
  echo "-- by NodePort $np on every node's address, from the lab's outside namespace"
  for i in 1 2 3; do
    echo "\$ [outside] curl http://10.250.0.1$i:$np/"
    until_ok "NodePort $np on node$i from outside" 20 bash "$src/deploy/lab.sh" exec outside \
      curl -sf --max-time 3 "http://10.250.0.1$i:$np/" || exit 1
  done
  if grep -q -- --cluster-dns <<<"$("$build/skiff-netagent" --help 2>&1)"; then
    echo "-- by name, from pod $pod1 (cluster DNS on 10.96.0.10, served by skiff-netagent)"
    labx node1 kubectl -n hello exec "$pod1" -- cat /etc/resolv.conf
    labx node1 kubectl -n hello exec "$pod1" -- nslookup -type=a hello.hello.svc.cluster.local || true
    for name in hello hello.hello.svc.cluster.local; do
      echo "\$ [node1] kubectl -n hello exec $pod1 -- wget -qO- http://$name/"
      until_ok "wget http://$name/ in $pod1" 20 bash "$src/deploy/lab.sh" exec node1 \
        kubectl -n hello exec "$pod1" -- timeout 5 wget -qO- "http://$name/" || exit 1
    done
  else
    echo "(this build of skiff-netagent has no cluster DNS yet: the by-name part is skipped)"
  fi
  if "$build/skiff-controller-manager" --help 2>&1 | grep -q -- --lb-pool; then
    echo "-- type LoadBalancer: an address from the lab's pool 10.250.0.200-250, announced by ARP"
    labx node1 kubectl -n hello patch svc hello -p '{"spec":{"type":"LoadBalancer"}}'
    lbip=$(until_ok "an EXTERNAL-IP for Service hello" 30 sh -c "bash '$src/deploy/lab.sh' \
      exec node1 kubectl -n hello get svc hello \
      -o jsonpath='{.status.loadBalancer.ingress[0].ip}' | grep ." ) || exit 1
    labx node1 kubectl -n hello get svc hello
    echo "\$ [outside] curl http://$lbip/"
    until_ok "curl http://$lbip/ from outside" 20 bash "$src/deploy/lab.sh" exec outside \
      curl -sf --max-time 3 "http://$lbip/" || exit 1
    labx node1 kubectl get lease -n kube-system "skiff-lb-${lbip//./-}"
  else
    echo "(this build of skiff-controller-manager has no --lb-pool yet: LoadBalancer skipped)"
  fi
fi

step "a StatefulSet with a volume per pod, a DaemonSet on every node, an Indexed Job"
ls_() { bash "$src/deploy/lab.sh" exec node1 kubectl -n stateful "$@"; }
bash "$src/deploy/lab.sh" exec node1 kubectl apply -f - <"$src/deploy/examples/stateful.yaml"
labx node1 kubectl -n stateful rollout status statefulset/web --timeout 180s || exit 1
labx node1 kubectl -n stateful get statefulset,pods,pvc -o wide
labx node1 kubectl get pv
node=$(ls_ get pod web-1 -o jsonpath='{.spec.nodeName}')
echo "-- web-1 runs on $node; its log on its volume:"
labx node1 kubectl -n stateful exec web-1 -- cat /data/log
uid=$(ls_ get pod web-1 -o jsonpath='{.metadata.uid}')
labx node1 kubectl -n stateful delete pod web-1
until_ok "a new web-1" 120 sh -c "bash '$src/deploy/lab.sh' exec node1 kubectl -n stateful \
  get pod web-1 -o jsonpath='{.metadata.uid} {.status.containerStatuses[0].ready}' |
  grep -v '^$uid' | grep -q ' true$'" >/dev/null || exit 1
echo "-- the new web-1 (on $(ls_ get pod web-1 -o jsonpath='{.spec.nodeName}')) finds the old log:"
labx node1 kubectl -n stateful exec web-1 -- cat /data/log
echo "-- web-0.web resolves to web-0's address, from web-2:"
labx node1 kubectl -n stateful get pod web-0 -o jsonpath='{.status.podIP}{"\n"}'
until_ok "web-0.web by name" 20 bash "$src/deploy/lab.sh" exec node1 kubectl -n stateful exec \
  web-2 -- nslookup -type=a web-0.web.stateful.svc.cluster.local || exit 1
labx node1 kubectl -n stateful rollout status daemonset/agent --timeout 120s || exit 1
labx node1 kubectl -n stateful get pods -l app=agent -o wide
labx node1 kubectl -n stateful wait --for=condition=complete job/count --timeout 120s || exit 1
labx node1 kubectl -n stateful get job count
labx node1 kubectl -n stateful logs job/count

if [ "$mode" = keep ]; then
  ctl apply -f "$src/deploy/examples/demo.yaml" >/dev/null
  step "cluster left running. Use it with:"
  echo "  sudo nsenter --net=/run/netns/$ns env KUBECONFIG=$KUBECONFIG bash"
  echo "  kubectl -n demo get pods; $build/skiffctl logs web -n demo -c poller -f"
  echo "the three-node lab: SKIFF_LAB_NAME=$lab deploy/lab.sh exec node1 kubectl get pods -A -o wide"
  echo "remove both with: deploy/demo.sh --down"
fi
