#!/usr/bin/env python3
"""The Deployment controller (with the ReplicaSet controller) in skiff-controller-manager against
a real skiff-apiserver, driven by the real kubectl 1.32.

Loopback only, no root, no kubelet and no scheduler: a background thread plays the kubelets and
marks every pod Running + Ready about half a second after it first sees it (pods whose image is
"broken" never become Ready). Checks: kubectl apply of a 3-replica Deployment gives one
ReplicaSet <name>-<pod-template-hash> with 3 replicas and revision 1; kubectl set image rolls
out a second ReplicaSet (revision 2) while a sampler sees at most 3+maxSurge pods and at least
3-maxUnavailable ready ones (and the ReplicaSets' replicas never sum above 3+maxSurge); the old
one ends at 0; kubectl rollout status exits 0; kubectl rollout undo puts the old template back
and reuses its ReplicaSet as revision 3; pause (Progressing reason DeploymentPaused, no new
ReplicaSet) and resume; revisionHistoryLimit 1 deletes the oldest old ReplicaSet; a broken
image with progressDeadlineSeconds 6 makes kubectl rollout status fail with "exceeded its
progress deadline"; Recreate never runs old and new pods together; kubectl rollout restart
makes the next revision; kubectl get shows READY 4/4; deleting the Deployment removes its
ReplicaSets and pods (garbage collector)."""
import functools
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import MERGE, REV, ann, is_ready  # noqa: E402

t = ctrl_lib.begin(420)
if shutil.which("kubectl") is None:
    testlib.skip("kubectl is not installed")
CM = testlib.need_bin("skiff-controller-manager")
NS = "deploy-test"
D_PATH, RS_PATH, POD_PATH = ctrl_lib.workload_paths(NS)
wait_for = functools.partial(ctrl_lib.wait_for, timeout=60, interval=0.25)

srv = testlib.Server().start()
api = srv.client()
cache = testlib.tmpdir()
work = testlib.tmpdir()


def kubectl(*args, timeout=120):
    r = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, "--cache-dir", cache,
                        "-n", NS] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    testlib.log("kubectl %s -> %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


class Sampler(threading.Thread):
    """Samples pods (not terminating) and ReplicaSet replicas while a rollout runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop_ev = threading.Event()
        self.client = srv.client()
        self.max_pods = 0
        self.min_ready = 1 << 30
        self.max_rs_sum = 0
        self.samples = 0

    def run(self):
        while not self.stop_ev.wait(0.05) and self.samples < 5000:
            r = self.client.get(POD_PATH)
            s = self.client.get(RS_PATH)
            if r.status != 200 or s.status != 200:
                continue
            live = [p for p in r.json["items"] if not p["metadata"].get("deletionTimestamp")]
            self.max_pods = max(self.max_pods, len(live))
            self.min_ready = min(self.min_ready, sum(1 for p in live if is_ready(p)))
            self.max_rs_sum = max(self.max_rs_sum,
                                  sum(x["spec"].get("replicas", 1) for x in s.json["items"]))
            self.samples += 1

    def finish(self):
        self.stop_ev.set()
        self.join(timeout=10)
        testlib.log("sampler: %d samples, max pods %d, min ready %d, max RS replicas sum %d" %
                    (self.samples, self.max_pods, self.min_ready, self.max_rs_sum))


def deploy():
    r = api.get(D_PATH + "/web")
    return r.json if r.status == 200 else {}


def rses():
    r = api.get(RS_PATH)
    return {x["metadata"]["name"]: x for x in r.json["items"]} if r.status == 200 else {}


def rs_by_image(image):
    for x in rses().values():
        if x["spec"]["template"]["spec"]["containers"][0]["image"] == image:
            return x
    return None


def progressing(d):
    for c in (d.get("status") or {}).get("conditions") or []:
        if c["type"] == "Progressing":
            return c
    return {}


def write(name, text):
    return ctrl_lib.write(work, name, text)


MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.0
""" % NS

cm = ctrl_lib.controller_manager(CM, srv)
# Pods become Running + Ready about half a second after the thread first sees them.
kubelets = ctrl_lib.Kubelets(srv, POD_PATH, delay=0.5)
try:
    ctrl_lib.create_namespace(api, t, NS)
    kubelets.start()

    # --- create: one RS, 3 replicas, revision 1
    r = kubectl("apply", "-f", write("web.yaml", MANIFEST))
    t.check("kubectl apply -f creates Deployment web", r.returncode == 0, r.stderr)
    got = wait_for("RS of web with 3 replicas",
                   lambda: len(rses()) == 1 and
                   list(rses().values())[0]["spec"].get("replicas") == 3 and rses())
    t.check("one ReplicaSet with 3 replicas", got, rses())
    rs1 = list((got or {"?": {}}).values())[0]
    h1 = rs1.get("metadata", {}).get("labels", {}).get("pod-template-hash", "")
    t.check("RS named web-<pod-template-hash>, selector and template carry the hash",
            h1 and rs1["metadata"]["name"] == "web-" + h1 and
            rs1["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h1}
            and rs1["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h1, rs1)
    refs = rs1.get("metadata", {}).get("ownerReferences") or [{}]
    t.check("RS owned by the Deployment (controller ownerReference)",
            refs[0].get("kind") == "Deployment" and refs[0].get("name") == "web" and
            refs[0].get("controller") is True and refs[0].get("uid") ==
            deploy()["metadata"]["uid"], refs)
    t.eq("RS revision 1", ann(rs1, REV), "1")
    t.eq("RS desired-replicas 3", ann(rs1, "deployment.kubernetes.io/desired-replicas"), "3")
    t.eq("RS max-replicas 4 (25% surge of 3 rounds up)",
         ann(rs1, "deployment.kubernetes.io/max-replicas"), "4")
    r = kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    t.check("kubectl rollout status exits 0 once 3 pods are available", r.returncode == 0 and
            "successfully rolled out" in r.stdout, r.stdout + r.stderr)
    d = deploy()
    st = d.get("status", {})
    t.check("status: observedGeneration, replicas/updated/ready/available 3, unavailable 0",
            st.get("observedGeneration") == d["metadata"]["generation"] and
            st.get("replicas") == 3 and st.get("updatedReplicas") == 3 and
            st.get("readyReplicas") == 3 and st.get("availableReplicas") == 3 and
            not st.get("unavailableReplicas"), st)
    t.eq("Deployment revision annotation 1", ann(d, REV), "1")
    t.eq("Progressing reason NewReplicaSetAvailable", progressing(d).get("reason"),
         "NewReplicaSetAvailable")

    # --- rolling update to nginx:2.0 within the bounds (surge 1, unavailable 0)
    sampler = Sampler()
    sampler.start()
    r = kubectl("set", "image", "deployment/web", "web=nginx:2.0")
    t.check("kubectl set image web=nginx:2.0", r.returncode == 0, r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    sampler.finish()
    t.check("kubectl rollout status exits 0 after the update", r.returncode == 0 and
            "successfully rolled out" in r.stdout, r.stdout + r.stderr)
    t.check("rollout sampled (%d samples)" % sampler.samples, sampler.samples > 10)
    t.check("never more than 3+1 pods during the rollout (max %d)" % sampler.max_pods,
            sampler.max_pods <= 4)
    t.check("never fewer than 3-0 ready pods during the rollout (min %d)" % sampler.min_ready,
            sampler.min_ready >= 3)
    t.check("ReplicaSet replicas never summed above 4 (max %d)" % sampler.max_rs_sum,
            sampler.max_rs_sum <= 4)
    rs2 = rs_by_image("nginx:2.0")
    t.check("a second RS for nginx:2.0 with revision 2 and 3 replicas",
            rs2 and ann(rs2, REV) == "2" and rs2["spec"]["replicas"] == 3, rses())
    old = rses().get(rs1["metadata"]["name"])
    t.check("the old RS is scaled to 0", old and old["spec"]["replicas"] == 0, old)
    t.eq("Deployment revision annotation 2", ann(deploy(), REV), "2")

    # --- kubectl rollout undo: back to nginx:1.0 through the revision-1 RS, now revision 3
    r = kubectl("rollout", "undo", "deployment/web")
    t.check("kubectl rollout undo", r.returncode == 0 and "rolled back" in r.stdout,
            r.stdout + r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    t.check("rollout status exits 0 after the undo", r.returncode == 0, r.stdout + r.stderr)
    d = deploy()
    t.eq("template image back to nginx:1.0",
         d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.0")
    back = rses().get(rs1["metadata"]["name"])
    t.check("the revision-1 RS is reused (no third RS) with 3 replicas",
            len(rses()) == 2 and back and back["spec"]["replicas"] == 3, rses())
    t.eq("reused RS has revision 3", ann(back, REV), "3")
    t.eq("reused RS remembers revision 1 in revision-history",
         ann(back, "deployment.kubernetes.io/revision-history"), "1")
    t.eq("Deployment revision annotation 3", ann(d, REV), "3")
    t.eq("nginx:2.0 RS scaled to 0", (rs_by_image("nginx:2.0") or {}).get("spec", {})
         .get("replicas"), 0)
    r = kubectl("rollout", "history", "deployment/web")
    t.check("kubectl rollout history lists revisions 2 and 3",
            r.returncode == 0 and "\n2 " in r.stdout and "\n3 " in r.stdout and
            "\n1 " not in r.stdout, r.stdout + r.stderr)

    # --- pause / resume
    r = kubectl("rollout", "pause", "deployment/web")
    t.check("kubectl rollout pause", r.returncode == 0, r.stderr)
    got = wait_for("Progressing DeploymentPaused",
                   lambda: progressing(deploy()).get("reason") == "DeploymentPaused")
    t.check("Progressing condition: Unknown, DeploymentPaused", got and
            progressing(deploy()).get("status") == "Unknown", progressing(deploy()))
    r = kubectl("set", "image", "deployment/web", "web=nginx:3.0")
    t.check("set image nginx:3.0 while paused", r.returncode == 0, r.stderr)
    wait_for("observedGeneration", lambda: deploy().get("status", {}).get(
        "observedGeneration") == deploy()["metadata"]["generation"])
    time.sleep(2)
    t.check("paused: no RS for nginx:3.0", rs_by_image("nginx:3.0") is None, rses())
    r = kubectl("scale", "deployment/web", "--replicas=4")
    t.check("kubectl scale --replicas=4 while paused", r.returncode == 0, r.stderr)
    got = wait_for("current RS scaled to 4",
                   lambda: (rses().get(rs1["metadata"]["name"]) or {}).get("spec", {})
                   .get("replicas") == 4)
    t.check("paused deployments still scale: the current RS has 4 replicas", got, rses())
    r = kubectl("rollout", "resume", "deployment/web")
    t.check("kubectl rollout resume", r.returncode == 0, r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    t.check("rollout status exits 0 after resume", r.returncode == 0, r.stdout + r.stderr)
    rs3 = rs_by_image("nginx:3.0")
    t.check("resumed: nginx:3.0 RS with revision 4 and 4 replicas",
            rs3 and ann(rs3, REV) == "4" and rs3["spec"]["replicas"] == 4, rses())

    # --- revisionHistoryLimit 1: the oldest old RS (nginx:2.0, revision 2) goes
    r = api.patch(D_PATH + "/web", {"spec": {"revisionHistoryLimit": 1}}, MERGE)
    t.check("set revisionHistoryLimit 1", r.status == 200, r)
    got = wait_for("2 RSes left", lambda: len(rses()) == 2)
    t.check("revisionHistoryLimit 1: two RSes left (current + one old)", got, sorted(rses()))
    t.check("the revision-2 RS was deleted, revision 3 kept",
            rs_by_image("nginx:2.0") is None and rs_by_image("nginx:1.0") is not None,
            sorted(rses()))

    # --- progress deadline: a never-ready image
    r = api.patch(D_PATH + "/web", {"spec": {"progressDeadlineSeconds": 6}}, MERGE)
    t.check("set progressDeadlineSeconds 6", r.status == 200, r)
    r = kubectl("set", "image", "deployment/web", "web=broken")
    t.check("set image broken", r.returncode == 0, r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    t.check("kubectl rollout status fails: exceeded its progress deadline",
            r.returncode != 0 and "exceeded its progress deadline" in r.stderr,
            r.stdout + r.stderr)
    c = progressing(deploy())
    t.check("Progressing False ProgressDeadlineExceeded",
            c.get("status") == "False" and c.get("reason") == "ProgressDeadlineExceeded", c)
    ready_now = [p for p in api.get(POD_PATH).json["items"] if is_ready(p)]
    t.check("the old pods kept serving (maxUnavailable 25%% of 4 = 1: >= 3 ready, got %d)" %
            len(ready_now), len(ready_now) >= 3)
    # Back to the default deadline: with 6 s, a good rollout that stalls that long on a loaded
    # machine would be declared failed too.
    r = api.patch(D_PATH + "/web", {"spec": {"progressDeadlineSeconds": 600}}, MERGE)
    t.check("set progressDeadlineSeconds back to 600", r.status == 200, r)
    r = kubectl("rollout", "undo", "deployment/web")
    t.check("rollout undo away from the broken image", r.returncode == 0, r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    t.check("rollout status exits 0 again", r.returncode == 0, r.stdout + r.stderr)
    t.eq("back on nginx:3.0", deploy()["spec"]["template"]["spec"]["containers"][0]["image"],
         "nginx:3.0")

    # --- Recreate: old pods gone before new ones exist
    r = api.patch(D_PATH + "/web", {"spec": {"strategy": {"type": "Recreate",
                                                          "rollingUpdate": None}}}, MERGE)
    t.check("switch to Recreate", r.status == 200, r)
    overlap = []
    stop = threading.Event()

    def watch_overlap():
        c2 = srv.client()
        n = 0
        while not stop.wait(0.05) and n < 5000:
            n += 1
            r2 = c2.get(POD_PATH)
            if r2.status != 200:
                continue
            imgs = {p["spec"]["containers"][0]["image"] for p in r2.json["items"]
                    if not p["metadata"].get("deletionTimestamp")}
            if "nginx:4.0" in imgs and len(imgs) > 1:
                overlap.append(sorted(imgs))
    th = threading.Thread(target=watch_overlap, daemon=True)
    th.start()
    r = kubectl("set", "image", "deployment/web", "web=nginx:4.0")
    t.check("set image nginx:4.0 (Recreate)", r.returncode == 0, r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    stop.set()
    th.join(timeout=10)
    t.check("Recreate rollout completes", r.returncode == 0, r.stdout + r.stderr)
    t.check("Recreate: no sample with old and new pods together", not overlap, overlap[:5])
    pods_now = api.get(POD_PATH).json["items"]
    t.check("4 pods, all nginx:4.0", len(pods_now) == 4 and all(
        p["spec"]["containers"][0]["image"] == "nginx:4.0" for p in pods_now),
        [p["spec"]["containers"][0]["image"] for p in pods_now])

    # --- kubectl rollout restart: a template annotation, hence a new RS and revision
    revs_before = {x["metadata"]["name"] for x in rses().values()}
    r = kubectl("rollout", "restart", "deployment/web")
    t.check("kubectl rollout restart", r.returncode == 0, r.stdout + r.stderr)
    r = kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    t.check("rollout status exits 0 after the restart", r.returncode == 0, r.stdout + r.stderr)
    new_names = {x["metadata"]["name"] for x in rses().values()} - revs_before
    t.check("restart made a new RS with the next revision (8)",
            len(new_names) == 1 and ann(rses()[new_names.pop()], REV) == "8" and
            ann(deploy(), REV) == "8", {n: ann(x, REV) for n, x in rses().items()})
    r = kubectl("get", "deployment", "web")
    t.check("kubectl get deployment: READY 4/4, UP-TO-DATE 4, AVAILABLE 4",
            r.returncode == 0 and r.stdout.split("\n")[1].split()[1:4] == ["4/4", "4", "4"],
            r.stdout + r.stderr)

    def deployment_event_msgs():
        ev = api.get("/api/v1/namespaces/%s/events" % NS)
        return [e.get("message", "") for e in (ev.json or {}).get("items", [])
                if e.get("involvedObject", {}).get("kind") == "Deployment"]

    def scaled_both_ways():
        msgs = deployment_event_msgs()
        return (any(m.startswith("Scaled up replica set web-") for m in msgs) and
                any(m.startswith("Scaled down replica set web-") for m in msgs))
    # Events are posted in the background, after the writes they describe.
    wait_for("ScalingReplicaSet events", scaled_both_ways)
    msgs = deployment_event_msgs()
    t.check("ScalingReplicaSet events on the Deployment",
            any(m.startswith("Scaled up replica set web-") for m in msgs) and
            any(m.startswith("Scaled down replica set web-") for m in msgs), msgs[:10])
    # --- deleting the Deployment: the garbage collector (when built in) removes RSes and pods
    r = kubectl("delete", "deployment", "web")
    t.check("kubectl delete deployment web", r.returncode == 0, r.stderr)
    gone = wait_for("RSes and pods gone", lambda: not rses() and
                    not api.get(POD_PATH).json["items"], timeout=60)
    t.check("its ReplicaSets and pods are garbage-collected", gone,
            (sorted(rses()), len(api.get(POD_PATH).json["items"])))
finally:
    kubelets.stop_ev.set()
    # Informational: what the controllers complained about (conflicts are expected and quiet).
    try:
        with open(cm.log_path, errors="replace") as f:
            warns = [ln for ln in f.read().splitlines() if "warn" in ln or "error" in ln]
        testlib.log("controller-manager: %d warning/error lines%s" % (
            len(warns), "".join("\n  " + w for w in warns[:20])))
    except OSError:
        pass
    if t.failed:
        cm.dump_log(60)
t.finish()
