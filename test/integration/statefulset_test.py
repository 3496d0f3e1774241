#!/usr/bin/env python3
"""The StatefulSet controller in skiff-controller-manager against a real skiff-apiserver, and
skiffctl's sts commands next to kubectl 1.32. Loopback only, no root, no kubelet: a thread marks
pods Running + Ready after a delay (ctrl_lib.Kubelets).

Checks: OrderedReady creates web-0, web-1, web-2 in order, each only once its predecessor is
Ready; claims www-web-N exist before their pods and carry the selector labels; pod identity
(hostname, subdomain, labels); status; `get sts`; rollout status; scale down 3 -> 1 deletes
web-2 before web-1 and keeps the claims; scale back; image change rolls from web-2 to web-0;
rollout history (2 revisions); undo brings the old image back; describe vs kubectl; kubectl
scale and rollout status against skiff; a serviceName change refused with Kubernetes' message;
a Parallel set creates its pods at once and, with whenDeleted=Delete, its claims are garbage
collected with it; rollout restart.

Not registered with CTest from here (CMake registers test/integration/*_test.py): it needs the
controller in skiff-controller-manager (controllers/main.cc) and `describe sts` wired in
cli/describe.cc; then move it to test/integration/statefulset_test.py. Run by hand:
  SKIFF_BIN=<build dir> SKIFF_SRC=<source dir> python3 statefulset_integration_test.py
(44/44 checks passed on 2026-12-06 with both lines added in a scratch build.)"""
import functools
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.environ.get("SKIFF_SRC", "/work/main") + "/test/integration")
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import MERGE  # noqa: E402

t = ctrl_lib.begin(420)
CM = os.environ.get("SKIFF_CM") or testlib.need_bin("skiff-controller-manager")
CTL = testlib.need_bin("skiffctl")
KUBECTL = shutil.which("kubectl")
NS = "sts-test"
STS = "/apis/apps/v1/namespaces/%s/statefulsets" % NS
POD_PATH = "/api/v1/namespaces/%s/pods" % NS
PVC_PATH = "/api/v1/namespaces/%s/persistentvolumeclaims" % NS
wait_for = functools.partial(ctrl_lib.wait_for, timeout=60, interval=0.2)

srv = testlib.Server().start()
api = srv.client()
cache = testlib.tmpdir()


def run(argv, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    testlib.log("%s -> %d" % (" ".join(argv[3:8]), p.returncode))
    return p


def ctl(*args, timeout=120):
    return run([CTL, "--kubeconfig", srv.kubeconfig, "-n", NS] + list(args), timeout)


def kubectl(*args, timeout=120):
    return run([KUBECTL, "--kubeconfig", srv.kubeconfig, "--cache-dir", cache, "-n", NS] +
               list(args), timeout)


def sts():
    r = api.get(STS + "/web")
    return r.json if r.status == 200 else {}


def pods():
    r = api.get(POD_PATH)
    return {p["metadata"]["name"]: p for p in (r.json["items"] if r.status == 200 else [])}


def claims():
    r = api.get(PVC_PATH)
    return {c["metadata"]["name"]: c for c in (r.json["items"] if r.status == 200 else [])}


def sts_events():
    """The controller's pod events on the set, in the order they were written."""
    r = api.get("/api/v1/namespaces/%s/events" % NS)
    items = [e for e in (r.json["items"] if r.status == 200 else [])
             if e.get("involvedObject", {}).get("name") == "web" and " Pod " in e["message"]]
    items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [e["message"].split(" in StatefulSet")[0] for e in items]


def sts_events_after(mark, n):
    """The set's pod events after the first `mark`, once there are n of them (or after 30 s,
    what there is). Events are posted in the background after the pod write they describe, so
    the last one can land after the pods are seen to change."""
    wait_for("%d events" % n, lambda: len(sts_events()) >= mark + n, timeout=30)
    return sts_events()[mark:]


def image(p):
    return p["spec"]["containers"][0]["image"]


ctrl_lib.create_namespace(api, t, NS)
cm = ctrl_lib.controller_manager(CM, srv)

# Observe the order of events from a sampler thread.
events = []  # (time, kind, name)
stop = threading.Event()


def sampler():
    seen, ready = set(), set()
    c = srv.client()
    while not stop.wait(0.05):
        r = c.get(POD_PATH)
        if r.status != 200:
            continue
        names = set()
        for p in r.json["items"]:
            n = p["metadata"]["name"]
            names.add(n)
            if n not in seen:
                seen.add(n)
                events.append((time.time(), "created", n))
            if ctrl_lib.is_ready(p) and n not in ready:
                ready.add(n)
                events.append((time.time(), "ready", n))
        for n in list(seen - names):
            seen.discard(n)
            ready.discard(n)
            events.append((time.time(), "gone", n))


threading.Thread(target=sampler, daemon=True).start()
kubelets = ctrl_lib.Kubelets(srv, POD_PATH, 1.0)
kubelets.start()

manifest = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {"replicas": 3, "serviceName": "nginx",
             "selector": {"matchLabels": {"app": "nginx"}},
             "template": {"metadata": {"labels": {"app": "nginx"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                                   "volumeMounts": [{"name": "www",
                                                                     "mountPath": "/data"}]}]}},
             "volumeClaimTemplates": [{"metadata": {"name": "www"},
                                       "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}}}]}}
r = api.post(STS, manifest)
t.check("create statefulset", r.status == 201, r)

ok = wait_for("3 ready pods", lambda: sum(ctrl_lib.is_ready(p) for p in pods().values()) == 3)
t.check("three pods become ready", ok, pods().keys())
order = [n for (_, k, n) in events if k == "created"]
t.eq("pods created in ordinal order", order[:3], ["web-0", "web-1", "web-2"])
for i in (1, 2):
    created = next(ts for (ts, k, n) in events if k == "created" and n == "web-%d" % i)
    ready_prev = next((ts for (ts, k, n) in events if k == "ready" and n == "web-%d" % (i - 1)),
                      None)
    t.check("web-%d created only after web-%d was ready" % (i, i - 1),
            ready_prev is not None and ready_prev <= created)
ps = pods()
p0 = ps.get("web-0", {})
t.eq("pod identity: hostname/subdomain", (p0["spec"].get("hostname"), p0["spec"].get("subdomain")),
     ("web-0", "nginx"))
labels = p0["metadata"].get("labels", {})
t.eq("pod identity labels", (labels.get("statefulset.kubernetes.io/pod-name"),
                             labels.get("apps.kubernetes.io/pod-index")), ("web-0", "0"))
t.eq("claim volume", p0["spec"]["volumes"][0],
     {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}})
cs = claims()
t.eq("claims created", sorted(cs), ["www-web-0", "www-web-1", "www-web-2"])
t.eq("claim labels", cs.get("www-web-0", {}).get("metadata", {}).get("labels"), {"app": "nginx"})
ok = wait_for("status", lambda: sts().get("status", {}).get("readyReplicas") == 3)
st = sts()["status"]
t.check("status: 3 ready, current == update revision",
        st.get("replicas") == 3 and st.get("currentRevision") == st.get("updateRevision") and
        st.get("currentRevision", "").startswith("web-"), st)
t.eq("pods carry the revision", labels.get("controller-revision-hash"), st.get("updateRevision"))

g = ctl("get", "sts")
t.check("skiffctl get sts", re.match(r"NAME\s+READY\s+AGE\nweb\s+3/3\s+\S+\n$", g.stdout), g.stdout)
s = ctl("rollout", "status", "sts/web", "--timeout", "30s")
t.eq("rollout status (defaulted partition)", (s.returncode, s.stdout),
     (0, "partitioned roll out complete: 3 new pods have been updated...\n"))
if KUBECTL:
    k = kubectl("rollout", "status", "sts/web", "--timeout", "30s")
    t.eq("kubectl rollout status says the same", (k.returncode, k.stdout), (0, s.stdout))

# Scale down 3 -> 1 with skiffctl. The creates' events are posted in the background: see the
# last one before taking the mark.
wait_for("create event of web-2", lambda: "create Pod web-2" in sts_events(), timeout=30)
mark = len(sts_events())
sc = ctl("scale", "sts", "web", "--replicas", "1")
t.eq("skiffctl scale sts", (sc.returncode, sc.stdout), (0, "statefulset.apps/web scaled\n"))
ok = wait_for("one pod left", lambda: sorted(pods()) == ["web-0"])
t.check("scaled down to web-0", ok, sorted(pods()))
t.eq("web-2 deleted before web-1", sts_events_after(mark, 2),
     ["delete Pod web-2", "delete Pod web-1"])
t.eq("claims kept", sorted(claims()), ["www-web-0", "www-web-1", "www-web-2"])

if KUBECTL:
    k = kubectl("scale", "sts", "web", "--replicas=3")
    t.eq("kubectl scale sts", (k.returncode, k.stdout), (0, "statefulset.apps/web scaled\n"))
else:
    ctl("scale", "sts", "web", "--replicas", "3")
ok = wait_for("3 ready again", lambda: sum(ctrl_lib.is_ready(p) for p in pods().values()) == 3)
t.check("scaled back to 3", ok)

# Rolling update.
rev1 = sts()["status"]["currentRevision"]
# web-1 and web-2 were created twice so far: both second creates posted before the mark.
wait_for("second create events", lambda: sts_events().count("create Pod web-1") == 2 and
         sts_events().count("create Pod web-2") == 2, timeout=30)
mark = len(sts_events())
r = api.patch(STS + "/web", {"spec": {"template": {"spec": {"containers": [
    {"name": "nginx", "image": "nginx:1.26"}]}}}}, "application/strategic-merge-patch+json")
t.check("patch image", r.status == 200, r)
ok = wait_for("rolled", lambda: all(image(p) == "nginx:1.26" and ctrl_lib.is_ready(p)
                                    for p in pods().values()) and len(pods()) == 3, timeout=90)
t.check("every pod updated", ok, {n: image(p) for n, p in pods().items()})
t.eq("updated in reverse ordinal order, one at a time", sts_events_after(mark, 6),
     ["delete Pod web-2", "create Pod web-2", "delete Pod web-1", "create Pod web-1",
      "delete Pod web-0", "create Pod web-0"])
s = ctl("rollout", "status", "statefulset/web", "--timeout", "60s")
t.check("rollout status after update", s.returncode == 0, s)
st = wait_for("status current", lambda: sts()["status"].get("currentRevision") ==
              sts()["status"].get("updateRevision") != rev1)
t.check("currentRevision advanced", st, sts()["status"])

h = ctl("rollout", "history", "sts/web")
t.eq("rollout history", h.stdout,
     "statefulset.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n")
if KUBECTL:
    k = kubectl("rollout", "history", "sts/web")
    t.eq("kubectl rollout history identical", k.stdout, h.stdout)
    k = kubectl("rollout", "history", "sts/web", "--revision", "1")
    h1 = ctl("rollout", "history", "sts/web", "--revision", "1")
    t.eq("history --revision 1 identical to kubectl's", h1.stdout, k.stdout)

u = ctl("rollout", "undo", "sts/web")
t.eq("rollout undo", (u.returncode, u.stdout), (0, "statefulset.apps/web rolled back\n"))
ok = wait_for("undone", lambda: all(image(p) == "nginx:1.25" and ctrl_lib.is_ready(p)
                                    for p in pods().values()) and len(pods()) == 3, timeout=90)
t.check("undo restored the first image", ok, {n: image(p) for n, p in pods().items()})
h = ctl("rollout", "history", "sts/web")
t.eq("history after undo: revision 1 renumbered to 3", h.stdout,
     "statefulset.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n")

d = ctl("describe", "sts", "web")
t.check("describe statefulset runs", d.returncode == 0, d)
if KUBECTL:
    k = kubectl("describe", "sts", "web")
    cut = lambda s: s.split("Events:")[0]
    t.eq("describe identical to kubectl's up to Events", cut(d.stdout), cut(k.stdout))
print(d.stdout)

# Only some fields may change.
r = api.patch(STS + "/web", {"spec": {"serviceName": "other"}}, MERGE)
t.check("a serviceName change is refused with Kubernetes' message", r.status == 422 and
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden" in r.body.decode(), r)

# Parallel + whenDeleted=Delete: all pods at once; deleting the set removes the claims (GC).
db = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
      "spec": {"replicas": 2, "podManagementPolicy": "Parallel",
               "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
               "selector": {"matchLabels": {"app": "db"}},
               "template": {"metadata": {"labels": {"app": "db"}},
                            "spec": {"containers": [{"name": "db", "image": "broken",
                                     "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}},
               "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                         "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}}}]}}
r = api.post(STS, db)
t.check("create a Parallel set", r.status == 201, r)
ok = wait_for("both db pods", lambda: {"db-0", "db-1"} <= set(pods()))
t.check("Parallel: both pods created although none is ready", ok, sorted(pods()))
c = claims().get("data-db-0", {})
t.eq("whenDeleted=Delete: the set owns the claim",
     [(o["kind"], o["name"]) for o in c.get("metadata", {}).get("ownerReferences", [])],
     [("StatefulSet", "db")])
r = api.delete(STS + "/db")
t.check("delete the db set", r.status in (200, 202), r)
ok = wait_for("db claims gone", lambda: not any(n.startswith("data-db-") for n in claims()))
t.check("its claims are garbage collected", ok, sorted(claims()))
t.eq("the web claims stay", sorted(n for n in claims() if n.startswith("www-")),
     ["www-web-0", "www-web-1", "www-web-2"])

rs = ctl("rollout", "restart", "sts/web")
t.eq("rollout restart sts", (rs.returncode, rs.stdout), (0, "statefulset.apps/web restarted\n"))
ok = wait_for("restarted", lambda: sts().get("status", {}).get("updatedReplicas") == 3 and
              sts()["status"].get("currentRevision") == sts()["status"].get("updateRevision") and
              len(sts_events()) > 0, timeout=60)
s2 = ctl("rollout", "status", "sts/web", "--timeout", "60s")
t.check("rollout status after restart", s2.returncode == 0, s2)
if os.environ.get("SHOW_LOG"):
    print(cm.tail(60))

stop.set()
kubelets.stop_ev.set()
t.finish()
