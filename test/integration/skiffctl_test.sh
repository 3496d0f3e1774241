#!/usr/bin/env bash
# skiffctl against a real skiff-apiserver (HTTPS, the admin kubeconfig as the server wrote it):
# create/apply (created, configured, unchanged; the last-applied annotation kubectl reads),
# get (tables, -o wide|yaml|json|name, -l, -A, several types), describe with events, delete
# (by name, -f, -l), server errors in kubectl's words with exit code 1, get -w seeing a change,
# and the flag-based connection (--server --token --certificate-authority).
. "$(dirname "$0")/lib.sh"
skiff_init
skiff_need_bin skiff-apiserver skiffctl
skiff_start_apiserver --store memory

T=30  # seconds allowed for any one skiffctl command
ctl() { timeout "$T" "$SKIFF_BIN/skiffctl" --kubeconfig "$SKIFF_KUBECONFIG" "$@"; }
M=$SKIFF_TMP/m
mkdir -p "$M/dir"

cat >"$M/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx:1.25
    ports:
    - containerPort: 80
YAML
sed 's/nginx:1.25/nginx:1.26/' "$M/pod.yaml" >"$M/pod2.yaml"
cat >"$M/dir/svc.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels: {app: web}
data:
  a: "1"
YAML
cat >"$M/dir/list.json" <<'JSON'
{"apiVersion":"v1","kind":"List","items":[
 {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"from-list"},"data":{"x":"y"}}]}
JSON

# ------------------------------------------------------------------ apply and create
out=$(ctl apply -f "$M/pod.yaml" 2>&1)
check "apply creates" contains "$out" "pod/web created"
out=$(ctl apply -f "$M/pod.yaml" 2>&1)
check "apply again is unchanged" contains "$out" "pod/web unchanged"
out=$(ctl apply -f "$M/pod2.yaml" 2>&1)
check "apply with a change configures" contains "$out" "pod/web configured"
out=$(ctl get pod web -o json 2>&1)
check "the change is stored" contains "$out" '"image": "nginx:1.26"'
check "last-applied annotation kept up to date" contains "$out" 'nginx:1.26\"'
out=$(ctl apply -f "$M/dir" 2>&1)
check "apply a directory (multi-doc YAML and a JSON List)" \
  bash -c "grep -q 'service/web created' <<<'$out' && grep -q 'configmap/cfg created' <<<'$out' && grep -q 'configmap/from-list created' <<<'$out'"
out=$(cat "$M/pod.yaml" | sed 's/name: web$/name: stdin-pod/' | ctl create -f - 2>&1)
check "create -f - from stdin" contains "$out" "pod/stdin-pod created"
out=$(ctl create -f "$M/pod.yaml" 2>&1); rc=$?
check "create of an existing object fails with exit 1" test "$rc" = 1
check "AlreadyExists as kubectl prints it" contains "$out" \
  "Error from server (AlreadyExists): error when creating \"$M/pod.yaml\""

# ------------------------------------------------------------------ get
out=$(ctl get pods 2>&1)
check "get pods table header" matches "$out" '^NAME +READY +STATUS +RESTARTS +AGE$'
check "get pods lists web" matches "$out" '^web +'
out=$(ctl get pods -o wide 2>&1)
check "-o wide shows priority-1 columns" matches "$out" '^NAME .* IP +NODE'
out=$(ctl get pods -A 2>&1)
check "-A adds NAMESPACE" matches "$out" '^NAMESPACE +NAME +READY'
check "-A rows carry the namespace" matches "$out" '^default +web +'
out=$(ctl get po,svc 2>&1)
check "several types print kind/name" bash -c "grep -q '^pod/web ' <<<'$out' && grep -q '^service/web ' <<<'$out'"
out=$(ctl get configmaps -l app=web -o name 2>&1)
check "-l with -o name" test "$out" = "configmap/cfg"
out=$(ctl get pods -o yaml 2>&1)
check "-o yaml is a List" bash -c "grep -q '^kind: List' <<<'$out' && grep -q '^- apiVersion: v1' <<<'$out'"
out=$(ctl get pods web --show-labels 2>&1)
check "--show-labels" matches "$out" 'app=web$'
out=$(ctl get pods -n empty-ns 2>&1)
check "empty namespace message" contains "$out" "No resources found in empty-ns namespace."
out=$(ctl get pod nope 2>&1); rc=$?
check "NotFound as kubectl prints it" contains "$out" 'Error from server (NotFound): pods "nope" not found'
check "NotFound exits 1" test "$rc" = 1
out=$(ctl get frobs 2>&1); rc=$?
check "unknown type" contains "$out" 'the server doesn'"'"'t have a resource type "frobs"'

# ------------------------------------------------------------------ describe
out=$(ctl describe pod web 2>&1)
check "describe pod" bash -c "grep -Eq '^Name: +web$' <<<'$out' && grep -Eq '^Namespace: +default$' <<<'$out' && grep -Eq 'Image: +nginx:1.26' <<<'$out' && grep -q '^Events:' <<<'$out'"
out=$(ctl describe svc web 2>&1)
check "describe service" bash -c "grep -Eq '^Selector: +app=web$' <<<'$out' && grep -Eq '^Port: +<unset> +80/TCP$' <<<'$out'"
out=$(ctl describe configmap cfg 2>&1)
check "describe (generic)" bash -c "grep -Eq '^Name: +cfg$' <<<'$out' && grep -q 'a:' <<<'$out'"

# ------------------------------------------------------------------ watch
ctl get configmaps -w >"$SKIFF_TMP/watch.out" 2>&1 &
WPID=$!
skiff_track "$WPID"
sleep 1
ctl create -f - >/dev/null 2>&1 <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata: {name: watched}
YAML
if skiff_wait_for 20 grep -q '^watched ' "$SKIFF_TMP/watch.out"; then
  pass "get -w prints the new object's row"
else
  fail "get -w prints the new object's row: $(cat "$SKIFF_TMP/watch.out")"
fi
kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null

# ------------------------------------------------------------------ flags instead of kubeconfig
out=$(timeout "$T" "$SKIFF_BIN/skiffctl" --kubeconfig /nonexistent-skiff --server "$SKIFF_URL" \
  --token "$SKIFF_TOKEN" --certificate-authority "$SKIFF_DATA/pki/ca.crt" get pod web -o name 2>&1)
if [ -f "$SKIFF_DATA/pki/ca.crt" ]; then
  check "--server --token --certificate-authority" test "$out" = "pod/web"
fi
out=$(timeout "$T" "$SKIFF_BIN/skiffctl" --kubeconfig /nonexistent-skiff --server "$SKIFF_URL" \
  --insecure-skip-tls-verify --token wrong get pods 2>&1); rc=$?
check "a wrong token is Unauthorized" contains "$out" "You must be logged in to the server"

# ------------------------------------------------------------------ delete
out=$(ctl delete pod web stdin-pod 2>&1)
check "delete by name" bash -c "grep -q 'pod \"web\" deleted' <<<'$out' && grep -q 'pod \"stdin-pod\" deleted' <<<'$out'"
out=$(ctl delete -f "$M/dir" 2>&1)
check "delete -f" contains "$out" 'service "web" deleted'
ctl apply -f "$M/dir" >/dev/null 2>&1
out=$(ctl delete configmaps -l app=web 2>&1)
check "delete -l" contains "$out" 'configmap "cfg" deleted'
out=$(ctl delete pod web 2>&1); rc=$?
check "delete of a missing object" contains "$out" 'Error from server (NotFound): pods "web" not found'
check "delete of a missing object exits 1" test "$rc" = 1

skiff_finish
