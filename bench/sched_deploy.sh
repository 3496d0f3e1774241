#!/usr/bin/env bash
# bench/sched_deploy.sh: how long a Deployment takes to go from 0 to N Running pods on one real
# node (issue 5's second bench_sched figure; target: 0 -> 100 in <= 5 s). Not a test: it prints
# what it measured.
#
# A one-node lab (deploy/lab.sh up 1: skiff-apiserver, skiff-controller-manager, skiff-scheduler,
# skiff-kubelet, skiff-netagent in network namespace <name>-node1), a Deployment `sched-bench`
# with replicas 0 (busybox:1.35 `sleep 3600`, requests cpu 10m / memory 16Mi, grace period 1 s).
# Then, per round: one PATCH of its scale subresource to N, and a watch on its pods until all N
# are Running. Printed per round: the time from the scale call to the first, the 50th percent
# and the last pod Running; the same for pods created (seen on the watch) and bound (nodeName
# set); when the Deployment's status.readyReplicas reached N; the kubelet's per-pod `pod-start`
# stage breakdown (its --v 1 log) for these pods; the CPU time (user+sys, /proc/<pid>/stat) each
# daemon used from the scale call to the last pod Running. Between rounds it scales to 0 and
# waits until the pods are gone. At the end (unless --no-podstart) bench_podstart's serial
# per-pod figure (one pod at a time, its own apiserver + kubelet) for comparison.
#
# Usage: bench/sched_deploy.sh [--replicas N] [--rounds R] [--no-podstart] [--podstart-pods P]
#                              [--keep] [--force]
#   --replicas N      pods per round (default 100; the kubelet's --max-pods is 110)
#   --rounds R        scale-ups measured (default 3; between them the Deployment goes back to 0)
#   --no-podstart     do not run bench_podstart (--only b) at the end
#   --podstart-pods P pods for bench_podstart (default 20)
#   --keep            leave the lab up at the end (`SKIFF_LAB_NAME=... deploy/lab.sh down`)
#   --force           replace a running lab of the same name (without it, the benchmark refuses)
# Env: SKIFF_BUILD_DIR (default <repo>/build; needs what lab.sh runs, skiff-scheduler included,
#      and bench/bench_podstart for the last part), SKIFF_LAB_NAME (default skiff-benchsched: a
#      lab of its own beside others), SKIFF_LAB_DIR (default /tmp/<name>; its file system is
#      printed: the kubelet's dirs and the API server's SQLite live there), SKIFF_LAB_NOBUILD=1
#      (passed to lab.sh).
# Needs root, nsenter, python3. All traffic stays inside the lab's namespaces; every wait has a
# time limit; the lab this script brought up is taken down at the end (also on Ctrl-C).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
export SKIFF_BUILD_DIR=$build
lab="$src/deploy/lab.sh"
# A lab of its own name, so it runs beside the e2e tests' and other benchmarks' labs.
export SKIFF_LAB_NAME=${SKIFF_LAB_NAME:-skiff-benchsched}
lab_dir=${SKIFF_LAB_DIR:-/tmp/$SKIFF_LAB_NAME}
export SKIFF_LAB_DIR=$lab_dir
lab_marker=/run/skiff-lab/$SKIFF_LAB_NAME.dir
replicas=100
rounds=3
podstart=1
podstart_pods=20
keep=0
force=0

usage() { sed -n '/^# Usage:/,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
num() { [[ ${2:-} =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] ||
  { echo "sched_deploy.sh: $1 needs $3..$4" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) num "$1" "${2:-}" 1 110; replicas=$2; shift 2 ;;
    --rounds) num "$1" "${2:-}" 1 10; rounds=$2; shift 2 ;;
    --no-podstart) podstart=0; shift ;;
    --podstart-pods) num "$1" "${2:-}" 2 100; podstart_pods=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --force) force=1; shift ;;
    -h | --help) usage ;;
    *) echo "sched_deploy.sh: unknown flag '$1'" >&2; usage ;;
  esac
done

[ "$(id -u)" = 0 ] || { echo "sched_deploy.sh: needs root (the lab's namespaces)" >&2; exit 1; }
for t in nsenter python3; do
  command -v "$t" >/dev/null || { echo "sched_deploy.sh: $t missing" >&2; exit 1; }
done
[ -x "$build/skiff-scheduler" ] ||
  { echo "sched_deploy.sh: $build/skiff-scheduler missing (ninja -C $build skiff-scheduler)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/skiff-bench-sched.XXXXXX)
lab_up=0
lab_is_mine() { [ "$(cat "$lab_marker" 2>/dev/null)" = "$lab_dir" ]; }
cleanup() {
  if [ "$lab_up" = 1 ] && [ "$keep" = 0 ] && lab_is_mine; then
    bash "$lab" down >/dev/null 2>&1
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -e "$lab_marker" ] && [ "$force" = 0 ]; then
  echo "sched_deploy.sh: a lab named $SKIFF_LAB_NAME is running ($(cat "$lab_marker")); --force replaces it" >&2
  exit 1
fi

log "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The file system under the lab dir matters: the kubelet's --data-dir/--run-dir and the API
# server's SQLite live there (see bench/README.md: ext4 vs tmpfs).
lab_fs=$(findmnt -no FSTYPE -T "$(dirname "$lab_dir")" 2>/dev/null || echo unknown)
log "lab $SKIFF_LAB_NAME: deploy/lab.sh up 1 (build $build, dir $lab_dir on $lab_fs)"
lab_up=1
if ! bash "$lab" up 1 >"$tmp/lab-up.log" 2>&1; then
  tail -30 "$tmp/lab-up.log" >&2
  echo "sched_deploy.sh: lab.sh up 1 failed" >&2
  exit 1
fi
[ -f "$lab_dir/node1/scheduler.pid" ] ||
  { echo "sched_deploy.sh: the lab runs no skiff-scheduler" >&2; exit 1; }

# The measuring runs in node1's network namespace (the API server listens on 10.250.0.11).
nsenter --net="/run/netns/$SKIFF_LAB_NAME-node1" python3 - "$lab_dir" "$replicas" "$rounds" \
  "$SKIFF_LAB_NAME" <<'PY'
import base64, http.client, json, os, re, socket, ssl, sys, tempfile, threading, time

lab_dir, N, rounds, labname = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
NS, NAME, LABEL = "default", "sched-bench", "sched-bench"

def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)

# --- kubeconfig (the lab's admin.kubeconfig: CA data, server, token) ---
kc = open(os.path.join(lab_dir, "admin.kubeconfig")).read()
server = re.search(r"server:\s*https://([^:\s]+):(\d+)", kc)
host, port = server.group(1), int(server.group(2))
ca = base64.b64decode(re.search(r"certificate-authority-data:\s*(\S+)", kc).group(1))
token = re.search(r"token:\s*(\S+)", kc).group(1)
ctx = ssl.create_default_context(cadata=ca.decode())

def conn(timeout=30):
    return http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)

api = conn()
def call(method, path, body=None, ctype="application/json"):
    global api
    h = {"Authorization": "Bearer " + token, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = ctype
    for attempt in (0, 1):
        try:
            api.request(method, path, body=data, headers=h)
            r = api.getresponse()
            out = r.read()
            return r.status, (json.loads(out) if out else None)
        except (ConnectionError, http.client.HTTPException, OSError):
            api.close()
            api = conn()
            if attempt:
                raise

class Watch(threading.Thread):
    """Reads a watch stream on its own connection; calls on_event(t, event) per event."""
    def __init__(self, path, on_event):
        super().__init__(daemon=True)
        self.c = conn(timeout=None)
        self.c.request("GET", path, headers={"Authorization": "Bearer " + token,
                                             "Accept": "application/json"})
        self.r = self.c.getresponse()
        if self.r.status != 200:
            sys.exit("watch %s: HTTP %d %s" % (path, self.r.status, self.r.read()[:300]))
        self.on_event = on_event
        self.start()
    def run(self):
        try:
            for line in self.r:
                if line.strip():
                    self.on_event(time.monotonic(), json.loads(line))
        except Exception:
            pass  # closed at the end
    def close(self):
        try:
            self.c.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.c.close()

# --- daemons: pids and CPU time ---
DAEMONS = ["apiserver", "controller-manager", "scheduler", "kubelet", "netagent"]
pids = {}
for d in DAEMONS:
    try:
        pids[d] = int(open(os.path.join(lab_dir, "node1", d + ".pid")).read())
    except (OSError, ValueError):
        pass
TCK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    """(own user+sys, waited-for children's user+sys) in seconds."""
    try:
        s = open("/proc/%d/stat" % pid).read()
    except OSError:
        return (float("nan"), float("nan"))
    f = s[s.rfind(")") + 2:].split()
    return ((int(f[11]) + int(f[12])) / TCK, (int(f[13]) + int(f[14])) / TCK)
def cgroup_cpu():
    """CPU of everything in the node's cgroup parent (pods: shims and containers), seconds."""
    for p in ("/sys/fs/cgroup/cpuacct/%s-node1/cpuacct.usage" % labname,
              "/sys/fs/cgroup/cpu,cpuacct/%s-node1/cpuacct.usage" % labname):
        try:
            return int(open(p).read()) / 1e9
        except (OSError, ValueError):
            pass
    try:
        for line in open("/sys/fs/cgroup/%s-node1/cpu.stat" % labname):
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return float("nan")
def snapshot():
    return {d: cpu(p) for d, p in pids.items()}, cgroup_cpu(), time.monotonic()

# --- the Deployment ---
deploy = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": NAME, "namespace": NS},
    "spec": {
        "replicas": 0,
        "selector": {"matchLabels": {"app": LABEL}},
        "template": {
            "metadata": {"labels": {"app": LABEL}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "sleep", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }],
            },
        },
    },
}
st, body = call("POST", "/apis/apps/v1/namespaces/%s/deployments" % NS, deploy)
if st != 201:
    sys.exit("create deployment: HTTP %d %s" % (st, json.dumps(body)[:400]))
# Wait for its ReplicaSet (the Deployment controller makes it at 0 replicas).
end = time.monotonic() + 60
while True:
    st, body = call("GET", "/apis/apps/v1/namespaces/%s/replicasets?labelSelector=app%%3D%s" % (NS, LABEL))
    if st == 200 and body.get("items"):
        break
    if time.monotonic() > end:
        sys.exit("no ReplicaSet for deployment %s within 60 s" % NAME)
    time.sleep(0.2)
log("deployment %s and its ReplicaSet exist (replicas 0)" % NAME)

def pct(v, p):
    """Nearest-rank percentile of a list (sorted here)."""
    if not v:
        return float("nan")
    v = sorted(v)
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]

def pod_phase_running(pod):
    return pod.get("status", {}).get("phase") == "Running"

def scale(n):
    return call("PATCH", "/apis/apps/v1/namespaces/%s/deployments/%s/scale" % (NS, NAME),
                {"spec": {"replicas": n}}, "application/merge-patch+json")

def list_rv(path):
    st, body = call("GET", path)
    if st != 200:
        sys.exit("list %s: HTTP %d" % (path, st))
    return body["metadata"]["resourceVersion"], body.get("items", [])

klog = os.path.join(lab_dir, "node1", "kubelet.log")
results = []
for rnd in range(1, rounds + 1):
    pods_path = "/api/v1/namespaces/%s/pods?labelSelector=app%%3D%s" % (NS, LABEL)
    rv, items = list_rv(pods_path)
    if items:
        sys.exit("round %d: %d pods left from before" % (rnd, len(items)))
    dep_rv, _ = list_rv("/apis/apps/v1/namespaces/%s/deployments?fieldSelector=metadata.name%%3D%s" % (NS, NAME))
    lock = threading.Condition()
    created, bound, running = {}, {}, {}
    ready_at = [None]
    def on_pod(t, ev):
        o = ev.get("object", {})
        name = o.get("metadata", {}).get("name")
        if not name or ev.get("type") not in ("ADDED", "MODIFIED"):
            return
        with lock:
            created.setdefault(name, t)
            if o.get("spec", {}).get("nodeName"):
                bound.setdefault(name, t)
            if pod_phase_running(o) and name not in running:
                running[name] = t
                lock.notify_all()
    def on_dep(t, ev):
        o = ev.get("object", {})
        if o.get("status", {}).get("readyReplicas", 0) >= N and ready_at[0] is None:
            with lock:
                ready_at[0] = t
                lock.notify_all()
    kl_off = os.path.getsize(klog) if os.path.exists(klog) else 0
    w = Watch(pods_path + "&watch=1&resourceVersion=" + rv, on_pod)
    wd = Watch("/apis/apps/v1/namespaces/%s/deployments?watch=1&fieldSelector=metadata.name%%3D%s&resourceVersion=%s"
               % (NS, NAME, dep_rv), on_dep)
    time.sleep(0.2)  # both watches established
    cpu0, cg0, t0 = snapshot()
    st, body = scale(N)
    t_scaled = time.monotonic()
    if st != 200:
        sys.exit("scale to %d: HTTP %d %s" % (N, st, json.dumps(body)[:300]))
    # Until all N Running: at most 120 s, or 30 s without a pod getting to Running. The CPU
    # snapshot is taken at once when the last one is seen.
    deadline, last = t0 + 120, (time.monotonic(), 0)
    with lock:
        while len(running) < N:
            now = time.monotonic()
            if len(running) != last[1]:
                last = (now, len(running))
            if now > deadline or now - last[0] > 30:
                break
            lock.wait(0.5)
    cpu1, cg1, t1 = snapshot()
    # The Deployment's readyReplicas follows (ReplicaSet status, then Deployment status).
    end = time.monotonic() + 10
    while ready_at[0] is None and time.monotonic() < end and len(running) >= N:
        time.sleep(0.05)
    w.close(); wd.close()
    ok = len(running) >= N
    def ts(d):
        v = sorted(x - t0 for x in d.values())
        return v
    rt, ct, bt = ts(running), ts(created), ts(bound)
    def at(v, k):
        return v[k - 1] if len(v) >= k else float("nan")
    half = (N + 1) // 2
    print("\nround %d: Deployment %s scaled 0 -> %d (scale call %.0f ms)%s" % (
        rnd, NAME, N, (t_scaled - t0) * 1000, "" if ok else
        "  ** only %d of %d Running when it gave up **" % (len(running), N)))
    print("  seconds after the scale call       first   %3d th   %3d th" % (half, N))
    print("    pod created (watch)             %6.2f   %6.2f   %6.2f" % (at(ct, 1), at(ct, half), at(ct, N)))
    print("    pod bound (spec.nodeName)       %6.2f   %6.2f   %6.2f" % (at(bt, 1), at(bt, half), at(bt, N)))
    print("    pod Running                     %6.2f   %6.2f   %6.2f" % (at(rt, 1), at(rt, half), at(rt, N)))
    if ready_at[0] is not None:
        print("    Deployment readyReplicas == %d                     %6.2f" % (N, ready_at[0] - t0))
    total = at(rt, N)
    print("  TOTAL 0 -> %d Running: %.2f s   (target <= 5 s)" % (N, total))
    # kubelet pod-start lines for this round's pods
    names = set(created)
    stages = {}
    try:
        with open(klog, errors="replace") as f:
            f.seek(kl_off)
            for line in f:
                m = re.search(r"pod-start (\S+)/(\S+) (.*)", line)
                if not m or m.group(1) != NS or m.group(2) not in names:
                    continue
                for k, v in re.findall(r"(\w+)_ms=([0-9.]+)", m.group(3)):
                    stages.setdefault(k, []).append(float(v))
    except OSError:
        pass
    if stages:
        n = len(stages.get("total", []))
        print("  kubelet pod-start stages (ms, %d pods)   p50      p90      max" % n)
        for k in ["queue", "sandbox", "cni", "volumes", "rootfs", "start", "status", "total"] + \
                 sorted(set(stages) - {"queue", "sandbox", "cni", "volumes", "rootfs", "start", "status", "total"}):
            if k in stages:
                v = stages[k]
                print("    %-34s %7.1f  %7.1f  %7.1f" % (k, pct(v, 50), pct(v, 90), max(v)))
    else:
        print("  kubelet pod-start stages: no pod-start lines for these pods in %s" % klog)
    dt = t1 - t0
    print("  CPU time during the phase (%.2f s wall; user+sys s, %% of one core):" % dt)
    for d in DAEMONS:
        if d in cpu0 and d in cpu1:
            own = cpu1[d][0] - cpu0[d][0]
            kids = cpu1[d][1] - cpu0[d][1]
            extra = "   + %.2f s waited-for children (CNI plugin, mounts)" % kids if kids > 0.005 else ""
            print("    skiff-%-28s %6.2f s  %4.0f%%%s" % (d, own, 100 * own / dt, extra))
    if cg1 == cg1 and cg0 == cg0:
        print("    %-34s %6.2f s  %4.0f%%" % ("pods (shims + containers, cgroup)", cg1 - cg0, 100 * (cg1 - cg0) / dt))
    results.append((total, stages.get("total", [])))
    if rnd < rounds:
        st, _ = scale(0)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            _, items = list_rv(pods_path)
            if not items:
                break
            time.sleep(0.5)
        else:
            sys.exit("scale to 0: pods still there after 120 s")
        log("scaled back to 0; settling 3 s")
        time.sleep(3)

tot = [r[0] for r in results]
print("\nsummary: 0 -> %d Running over %d round(s): %s s (median %.2f s; target <= 5 s)" % (
    N, len(tot), ", ".join("%.2f" % t for t in tot), pct(tot, 50)))
allk = [x for r in results for x in r[1]]
if allk:
    print("         kubelet pod-start total p50 %.0f ms, p90 %.0f ms (%d pods, under the burst)" % (
        pct(allk, 50), pct(allk, 90), len(allk)))
PY
rc=$?
[ $rc = 0 ] || { echo "sched_deploy.sh: the measurement failed (rc $rc); lab logs: $lab_dir/node1/*.log" >&2; exit $rc; }
log "machine load after the phase: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$keep" = 0 ] && lab_is_mine; then
  bash "$lab" down >/dev/null 2>&1
  lab_up=0
fi
if [ "$podstart" = 1 ]; then
  if [ -x "$build/bench/bench_podstart" ]; then
    log "bench_podstart --only b --pods $podstart_pods (serial pod start, for comparison)"
    "$build/bench/bench_podstart" --only b --pods "$podstart_pods" 2>&1 |
      grep -E -i 'p50|pod start|create|total' | sed 's/^/  podstart: /'
  else
    log "no $build/bench/bench_podstart: serial per-pod figure skipped (see bench/README.md)"
  fi
fi
exit 0
