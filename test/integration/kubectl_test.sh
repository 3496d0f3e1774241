#!/usr/bin/env bash
# The real kubectl against skiff-apiserver, with the admin kubeconfig exactly as the server
# wrote it (HTTPS, its CA, its token), each client with a fresh --cache-dir:
#   - the machine's kubectl (/usr/bin/kubectl: google-cloud-sdk's dispatcher over 1.27-1.33,
#     which picks the client closest to the server's /version), and
#   - Debian's kubectl 1.20 (test/tools/kubectl120.sh). A half that cannot run makes the test
#     a skip (exit 77), not a pass.
# For Namespace, Pod, Service, ConfigMap, Secret, Endpoints, Node, Event and Lease:
# create -f (and AlreadyExists on a second create), get as a table (kubectl's column headers),
# get -o yaml, describe, delete -f (then NotFound), apply -f three times (created, configured
# with the change visible, unchanged), delete by name; and get -w seeing a new pod's row.
. "$(dirname "$0")/lib.sh"
skiff_init
skiff_need_bin skiff-apiserver

KT=60  # seconds allowed for any one kubectl command

# ---------------------------------------------------------------- manifests
M=$SKIFF_TMP/manifests
mkdir -p "$M/base" "$M/changed"
NS=kt-ns

# write KIND FILE-NAME <<YAML: base manifest; the "changed" one is derived by the caller.
cat >"$M/base/namespace.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NS-extra
  labels:
    team: a
EOF
sed 's/team: a/team: b/' "$M/base/namespace.yaml" >"$M/changed/namespace.yaml"

cat >"$M/base/pod.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: $NS
  labels:
    app: web
spec:
  containers:
  - name: web
    image: nginx:1.25
    ports:
    - containerPort: 80
EOF
sed 's/nginx:1.25/nginx:1.26/' "$M/base/pod.yaml" >"$M/changed/pod.yaml"

cat >"$M/base/service.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: $NS
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
EOF
sed 's/port: 80$/port: 8080/' "$M/base/service.yaml" >"$M/changed/service.yaml"

cat >"$M/base/configmap.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: $NS
data:
  color: blue
  size: large
EOF
# Changed: one value changes, one key is dropped (SMP null deletion), one is added.
cat >"$M/changed/configmap.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: $NS
data:
  color: green
  shape: round
EOF

cat >"$M/base/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: $NS
type: Opaque
data:
  password: $(printf 'hunter2' | base64)
EOF
sed "s/password: .*/password: $(printf 'correct-horse' | base64)/" "$M/base/secret.yaml" \
  >"$M/changed/secret.yaml"

cat >"$M/base/endpoints.yaml" <<EOF
apiVersion: v1
kind: Endpoints
metadata:
  name: web
  namespace: $NS
subsets:
- addresses:
  - ip: 10.244.1.5
  ports:
  - port: 80
    protocol: TCP
EOF
sed 's/10.244.1.5/10.244.1.6/' "$M/base/endpoints.yaml" >"$M/changed/endpoints.yaml"

cat >"$M/base/node.yaml" <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kt-node-1
  labels:
    zone: a
EOF
sed 's/zone: a/zone: b/' "$M/base/node.yaml" >"$M/changed/node.yaml"

cat >"$M/base/event.yaml" <<EOF
apiVersion: v1
kind: Event
metadata:
  name: web.started
  namespace: $NS
involvedObject:
  apiVersion: v1
  kind: Pod
  name: web
  namespace: $NS
reason: Started
message: Started container web
type: Normal
source:
  component: kubelet
EOF
sed 's/message: Started container web/message: Restarted container web/' \
  "$M/base/event.yaml" >"$M/changed/event.yaml"

cat >"$M/base/lease.yaml" <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: kt-lock
  namespace: $NS
spec:
  holderIdentity: node-a
  leaseDurationSeconds: 40
EOF
sed 's/holderIdentity: node-a/holderIdentity: node-b/' "$M/base/lease.yaml" \
  >"$M/changed/lease.yaml"

# kind  resource  name  namespaced  table-header-regex  jsonpath  base-value  changed-value
KINDS=(
  "namespace|namespaces|$NS-extra|no|^NAME +STATUS +AGE|{.metadata.labels.team}|a|b"
  "pod|pods|web|yes|^NAME +READY +STATUS +RESTARTS +AGE|{.spec.containers[0].image}|nginx:1.25|nginx:1.26"
  "service|services|web|yes|^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\\(S\\) +AGE|{.spec.ports[*].port}|80|8080"
  "configmap|configmaps|settings|yes|^NAME +DATA +AGE|{.data}|blue|green"
  "secret|secrets|creds|yes|^NAME +TYPE +DATA +AGE|{.data.password}|$(printf hunter2 | base64)|$(printf correct-horse | base64)"
  "endpoints|endpoints|web|yes|^NAME +ENDPOINTS +AGE|{.subsets[0].addresses[0].ip}|10.244.1.5|10.244.1.6"
  "node|nodes|kt-node-1|no|^NAME +STATUS +ROLES +AGE +VERSION|{.metadata.labels.zone}|a|b"
  "event|events|web.started|yes|^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE|{.message}|Started container web|Restarted container web"
  "lease|leases|kt-lock|yes|^NAME +HOLDER +AGE|{.spec.holderIdentity}|node-a|node-b"
)

# ---------------------------------------------------------------- helpers
# kc ARGS...: the kubectl under test with the server's kubeconfig and a fresh cache dir.
kc() {
  KUBECONFIG=$SKIFF_KUBECONFIG timeout "$KT" "$KUBECTL" --kubeconfig "$SKIFF_KUBECONFIG" \
    --cache-dir "$CACHE" "$@"
}

# expect_ok DESC REGEX ARGS...: kubectl exits 0 and its output matches REGEX.
expect_ok() {
  local desc=$1 re=$2
  shift 2
  local out rc
  out=$(kc "$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && grep -Eq -- "$re" <<<"$out"; then
    pass "[$FLAVOUR] $desc"
  else
    fail "[$FLAVOUR] $desc: kubectl $* -> exit $rc, wanted output matching /$re/"
    printf '%s\n' "$out" | sed -n '1,15p' | sed 's/^/       | /'
  fi
  LAST_OUT=$out
}

# expect_fail DESC REGEX ARGS...: kubectl exits non-zero and its output matches REGEX.
expect_fail() {
  local desc=$1 re=$2
  shift 2
  local out rc
  out=$(kc "$@" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] && grep -Eq -- "$re" <<<"$out"; then
    pass "[$FLAVOUR] $desc"
  else
    fail "[$FLAVOUR] $desc: kubectl $* -> exit $rc, wanted failure matching /$re/"
    printf '%s\n' "$out" | sed -n '1,15p' | sed 's/^/       | /'
  fi
}

ns_args() { [ "$1" = yes ] && echo "-n $NS"; }

run_kind() {
  local kind res name namespaced header jp v0 v1
  IFS='|' read -r kind res name namespaced header jp v0 v1 <<<"$1"
  local f0=$M/base/$kind.yaml f1=$M/changed/$kind.yaml
  local n
  n=$(ns_args "$namespaced")
  # shellcheck disable=SC2086
  {
    expect_ok "$kind: create -f" "^$kind(\\.[a-z0-9.]+)?/$name created" create -f "$f0"
    expect_fail "$kind: second create -f is AlreadyExists" "AlreadyExists.*already exists" \
      create -f "$f0"
    expect_ok "$kind: get shows kubectl's columns" "$header" get $n "$res" "$name"
    local row=$name
    [ "$kind" = event ] && row=pod/web  # events list the object, not their own name
    if grep -Eq "(^| )$row( |$)" <<<"$LAST_OUT"; then
      pass "[$FLAVOUR] $kind: get table has a row for $row"
    else
      fail "[$FLAVOUR] $kind: get table has a row for $row"
    fi
    expect_ok "$kind: get (list) as a table" "$header" get $n "$res"
    expect_ok "$kind: get -o yaml" "name: $name" get $n "$res" -o yaml
    if ! grep -Eq "resourceVersion: \"[0-9]+\"" <<<"$LAST_OUT"; then
      fail "[$FLAVOUR] $kind: get -o yaml carries a numeric resourceVersion"
    fi
    expect_ok "$kind: get -o jsonpath shows the created value" "$v0" \
      get $n "$res" "$name" -o "jsonpath=$jp"
    expect_ok "$kind: describe" "^Name: +$name$" describe $n "$res" "$name"
    if [ "$kind" = namespace ]; then
      # Namespace deletion is two-phase (Terminating until the namespace controller empties
      # it), so this one is not deleted and re-created here: apply takes over the created
      # object instead (kubectl warns about the missing annotation and patches it in).
      expect_ok "$kind: apply -f over a created object" "^$kind/$name configured" apply -f "$f0"
    else
      expect_ok "$kind: delete -f" "\"$name\" deleted" delete -f "$f0"
      expect_fail "$kind: get after delete is NotFound" "NotFound|not found" get $n "$res" "$name"
      expect_ok "$kind: apply -f (first)" "^$kind(\\.[a-z0-9.]+)?/$name created" apply -f "$f0"
    fi
    expect_ok "$kind: apply -f (changed)" "^$kind(\\.[a-z0-9.]+)?/$name configured" apply -f "$f1"
    expect_ok "$kind: change is stored" "$v1" get $n "$res" "$name" -o "jsonpath=$jp"
    if grep -Eqw -- "$v0" <<<"$LAST_OUT"; then
      fail "[$FLAVOUR] $kind: old value '$v0' gone after apply (got: $LAST_OUT)"
    fi
    expect_ok "$kind: apply -f (same again) is unchanged" "^$kind(\\.[a-z0-9.]+)?/$name unchanged" \
      apply -f "$f1"
    expect_ok "$kind: last-applied annotation present" "last-applied-configuration" \
      get $n "$res" "$name" -o yaml
  }
}

# Checks that only make sense for some kinds, on the applied objects.
kind_details() {
  expect_ok "configmap: apply removed the dropped key (null in the SMP)" '^\{"color":"green","shape":"round"\}$|^map\[color:green shape:round\]$' \
    get -n "$NS" configmap settings -o 'jsonpath={.data}'
  expect_ok "service: port protocol defaulted to TCP" "^TCP$" \
    get -n "$NS" service web -o 'jsonpath={.spec.ports[*].protocol}'
  expect_ok "service: describe shows the port" "8080/TCP" describe -n "$NS" service web
  expect_ok "pod: describe shows the image" "Image: +nginx:1.26" describe -n "$NS" pod web
  expect_ok "pod: get -o wide" "^NAME +READY +STATUS +RESTARTS +AGE +IP +NODE" \
    get -n "$NS" pods -o wide
  expect_ok "get -A lists the pod with its namespace" "^$NS +web " get pods -A
  expect_ok "get -l selects by label" "^web " get -n "$NS" pods -l app=web
  expect_ok "get -l with no match prints nothing found" "No resources found" \
    get -n "$NS" pods -l app=nope
  expect_ok "get -o name" "^pod/web$" get -n "$NS" pods -o name
  expect_ok "get --field-selector metadata.name" "^web " get -n "$NS" pods \
    --field-selector metadata.name=web
}

# get -w in the background; a pod created afterwards must show up as a table row.
watch_check() {
  local out=$SKIFF_TMP/watch-$FLAVOUR.out
  kc get pods -n "$NS" -w >"$out" 2>&1 &
  local wpid=$!
  skiff_track "$wpid"
  sleep 2  # the list + watch request are made in this time; the row below is a later event
  kc run watched --image=busybox:1.36 -n "$NS" --restart=Never >/dev/null 2>&1 ||
    kc create -f - >/dev/null 2>&1 <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: watched
  namespace: $NS
spec:
  containers:
  - name: c
    image: busybox:1.36
EOF
  if skiff_wait_for 20 grep -Eq '^watched +[0-9]+/[0-9]+ ' "$out"; then
    pass "[$FLAVOUR] get -w shows the new pod's row"
  else
    fail "[$FLAVOUR] get -w shows the new pod's row"
    sed -n '1,20p' "$out" | sed 's/^/       | /'
  fi
  if grep -Eq '^NAME +READY +STATUS +RESTARTS +AGE' "$out"; then
    pass "[$FLAVOUR] get -w prints the pod table header"
  else
    fail "[$FLAVOUR] get -w prints the pod table header (rows must be Tables)"
    sed -n '1,20p' "$out" | sed 's/^/       | /'
  fi
  if kill -0 "$wpid" 2>/dev/null; then
    pass "[$FLAVOUR] get -w still watching"
  else
    fail "[$FLAVOUR] get -w exited early"
    sed -n '1,20p' "$out" | sed 's/^/       | /'
  fi
  kill "$wpid" 2>/dev/null
  wait "$wpid" 2>/dev/null
}

# kubectl drain deletes through a typed client: protobuf DeleteOptions bodies (1.2x and later).
# With no kubelet to confirm a graceful delete, --grace-period=0 removes the pod at once.
drain_check() {
  printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: drain-n1\n' >"$M/drain-node.yaml"
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: drain-p1\n  namespace: %s\nspec:\n  nodeName: drain-n1\n  containers:\n  - name: c\n    image: busybox\n' \
    "$NS" >"$M/drain-pod.yaml"
  expect_ok "drain: a node and a bare pod on it" "pod/drain-p1 created" \
    apply -f "$M/drain-node.yaml" -f "$M/drain-pod.yaml"
  # Both kubectls evict (pods/eviction is discovered); a pod without a budget goes at once.
  expect_ok "drain --force --grace-period=0 evicts the pod" "pod/drain-p1 (evicted|deleted)" \
    drain drain-n1 --force --grace-period=0 --timeout=60s
  expect_ok "drain: the node is cordoned" "SchedulingDisabled" get node drain-n1
  expect_fail "drain: the pod is gone" "NotFound|not found" get pod drain-p1 -n "$NS"
  expect_ok "drain: delete the node" "\"drain-n1\" deleted" delete node drain-n1
}

run_flavour() {
  FLAVOUR=$1
  KUBECTL=$2
  CACHE=$SKIFF_TMP/cache-$FLAVOUR
  export HOME=$SKIFF_TMP/home-$FLAVOUR  # nothing from ~/.kube leaks in
  mkdir -p "$HOME" "$CACHE"
  SKIFF_DATA=$SKIFF_TMP/data-$FLAVOUR
  skiff_start_apiserver
  local v
  v=$(kc version -o json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["clientVersion"]["gitVersion"], d.get("serverVersion",{}).get("gitVersion"))' 2>/dev/null)
  skiff_log "[$FLAVOUR] kubectl client/server versions: ${v:-unknown}"
  expect_ok "version reaches the server over TLS" "Server Version" version
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$NS" >"$M/ns.yaml"
  expect_ok "create -f namespace $NS" "namespace/$NS created" create -f "$M/ns.yaml"
  # Imperative create sends a protobuf body from kubectl >= 1.2x: a server that speaks only
  # JSON must refuse it as 415 UnsupportedMediaType (then kubectl says so), never 400.
  local out
  out=$(kc create namespace "$NS-imp" 2>&1)
  if grep -Eq "namespace/$NS-imp created|UnsupportedMediaType" <<<"$out"; then
    pass "[$FLAVOUR] create namespace (imperative): created, or 415 for a protobuf body"
  else
    fail "[$FLAVOUR] create namespace (imperative): created, or 415 for a protobuf body"
    printf '%s\n' "$out" | sed -n '1,5p' | sed 's/^/       | /'
  fi
  expect_ok "the default namespaces exist" "^default +Active" get namespaces
  local k
  for k in "${KINDS[@]}"; do
    run_kind "$k"
  done
  kind_details
  watch_check
  drain_check
  # skiff has no authorization yet: everything is allowed, and the server says so.
  expect_ok "auth can-i delete nodes" "^yes" auth can-i delete nodes
  expect_ok "auth can-i --list" "\\*\\.\\*" auth can-i --list
  if [ "$FLAVOUR" != v1.20 ]; then  # whoami came with kubectl 1.26
    expect_ok "auth whoami" "admin" auth whoami
  fi
  for k in "${KINDS[@]}"; do
    IFS='|' read -r kind res name namespaced _ <<<"$k"
    [ "$kind" = namespace ] && continue
    # shellcheck disable=SC2046
    expect_ok "$kind: delete by name" "\"$name\" deleted" delete $(ns_args "$namespaced") "$res" "$name"
  done
  # Namespace deletion is two-phase in Kubernetes (Terminating, then gone once emptied by the
  # namespace controller); don't wait for the second phase, but writes must be refused now.
  expect_ok "namespace: delete --wait=false" "\"$NS-extra\" deleted" delete namespace "$NS-extra" \
    --wait=false
  expect_ok "delete --wait=false of $NS" "\"$NS\" deleted" delete namespace "$NS" --wait=false
  expect_fail "create in a deleted namespace is refused" "Forbidden|NotFound|terminat|not found" \
    create -f "$M/base/configmap.yaml"
  skiff_stop_apiserver
  unset SKIFF_DATA
}

# ---------------------------------------------------------------- run
if command -v kubectl >/dev/null 2>&1; then
  run_flavour current "$(command -v kubectl)"
else
  echo "NOTE: no kubectl on PATH: the machine-kubectl half is skipped"
  NO_CURRENT=1
fi

if k120=$(bash "$SKIFF_SRC/test/tools/kubectl120.sh" 2>"$SKIFF_TMP/k120.err"); then
  run_flavour v1.20 "$k120"
else
  echo "NOTE: Debian's kubectl 1.20 could not be had: that half is SKIPPED"
  sed 's/^/       | /' "$SKIFF_TMP/k120.err"
  NO_120=1
fi

# A half that could not run is not shown: the test says so (exit 77) instead of passing, unless a
# check of the other half failed.
missing=""
[ -n "${NO_CURRENT:-}" ] && missing="the machine's kubectl (none on PATH)"
[ -n "${NO_120:-}" ] && missing="${missing:+$missing and }Debian's kubectl 1.20"
if [ -n "$missing" ] && [ "$SKIFF_FAILS" -eq 0 ]; then
  echo "$SKIFF_CHECKS/$SKIFF_CHECKS checks passed"
  skiff_skip "not shown with $missing"
fi
skiff_finish
