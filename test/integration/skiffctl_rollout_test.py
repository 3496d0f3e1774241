#!/usr/bin/env python3
"""skiffctl's workload commands against skiff-apiserver + skiff-controller-manager (the
Deployment and ReplicaSet controllers), side by side with the real kubectl 1.32 where it helps.

Loopback only, no root, no kubelet, no scheduler: a background thread plays the kubelets and
marks every pod Running + Ready about 0.3 s after first seeing it (never for image "broken").
Checks: apply + `skiffctl rollout status` exits 0 once rolled out; get deploy/rs tables
(kubectl's headers, -o wide, `get deploy,rs,pods`); scale through the scale subresource (also
`deploy NAME`, rs/NAME, -n, --current-replicas precondition and its failure); a second revision
with a change-cause; `rollout history` (and --revision) byte-identical to kubectl's; describe
deployment and replicaset identical to kubectl's up to Events; undo (previous), undo
--to-revision, the skipped and unknown-revision cases; restart (restartedAt annotation, a new
revision); pause/resume and their errors (same text as kubectl); status --watch=false while
paused, --timeout expiry; a missed progress deadline; a missing deployment."""
import functools
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import REV, ann  # noqa: E402

t = ctrl_lib.begin(480)
CM = testlib.need_bin("skiff-controller-manager")
CTL = testlib.need_bin("skiffctl")
KUBECTL = shutil.which("kubectl")
NS = "ctl-rollout"
D_PATH, RS_PATH, POD_PATH = ctrl_lib.workload_paths(NS)
wait_for = functools.partial(ctrl_lib.wait_for, timeout=60, interval=0.25)

srv = testlib.Server().start()
api = srv.client()
cache = testlib.tmpdir()
work = testlib.tmpdir()


class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "exit %d\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)


def run(argv, timeout):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        testlib.log("%s timed out after %d s" % (" ".join(argv[:6]), timeout))
        return Run(subprocess.CompletedProcess(argv, 124, "", "timed out"))
    r = Run(p)
    testlib.log("%s -> %d" % (" ".join(argv[3:] if argv[0] == CTL else argv[5:]), r.rc))
    return r


def ctl(*args, timeout=150):
    return run([CTL, "--kubeconfig", srv.kubeconfig, "-n", NS] + list(args), timeout)


def kubectl(*args, timeout=150):
    return run([KUBECTL, "--kubeconfig", srv.kubeconfig, "--cache-dir", cache, "-n", NS] +
               list(args), timeout)


def deploy(name="web"):
    r = api.get(D_PATH + "/" + name)
    return r.json if r.status == 200 else {}


def rses():
    r = api.get(RS_PATH)
    return r.json["items"] if r.status == 200 else []


def image_of(d):
    return d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0] \
        .get("image")


def write(name, text):
    return ctrl_lib.write(work, name, text)


def manifest(image, cause=None, name="web", replicas=3, extra_spec=""):
    annotations = "  annotations:\n    kubernetes.io/change-cause: %s\n" % cause if cause else ""
    return """apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
%sspec:
  replicas: %d
%s  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      containers:
      - name: web
        image: %s
        command: [/bin/server]
        args: ["--port", "80"]
        ports:
        - containerPort: 80
        - {containerPort: 53, protocol: UDP}
        env:
        - {name: MODE, value: test}
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        resources:
          limits: {cpu: 500m, memory: 128Mi}
          requests: {cpu: 100m}
        livenessProbe:
          httpGet: {path: /healthz, port: 80}
        readinessProbe:
          exec: {command: [cat, /tmp/ready]}
          periodSeconds: 5
        volumeMounts:
        - {name: scratch, mountPath: /scratch}
        - {name: cfg, mountPath: /etc/cfg, readOnly: true}
      volumes:
      - name: scratch
        emptyDir: {}
      - name: cfg
        configMap: {name: web-cfg}
      tolerations:
      - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
      - {operator: Exists}
""" % (name, annotations, replicas, extra_spec, name, name, image)


def until_events(text):
    """describe output up to its Events section (ages there differ between two runs)."""
    return text.split("\nEvents:")[0]


def events_of(text):
    """describe's Events section with ages (and the spacing they cause) normalised."""
    ev = text.split("\nEvents:", 1)[-1]
    ev = re.sub(r"\b\d+(\.\d+)?(ms|s|m|h|d|y)(\d+(s|m|h))?\b", "AGE", ev)
    return re.sub(r" +", " ", ev)


def status_ok(what, name="web"):
    r = ctl("rollout", "status", "deployment/" + name, "--timeout", "120s")
    last = r.out.strip().splitlines()[-1] if r.out.strip() else ""
    t.check("%s: skiffctl rollout status exits 0 with 'successfully rolled out'" % what,
            r.rc == 0 and last == 'deployment "%s" successfully rolled out' % name, r)
    return r


cm = ctrl_lib.controller_manager(CM, srv)
# Pods become Running + Ready about 0.3 s after the thread first sees them.
kubelets = ctrl_lib.Kubelets(srv, POD_PATH, delay=0.3)
try:
    ctrl_lib.create_namespace(api, t, NS)
    kubelets.start()

    # ------------------------------------------------------------ create, status, get
    r = ctl("apply", "-f", write("web1.yaml", manifest("nginx:1")))
    t.eq("apply creates the Deployment", r.out, "deployment.apps/web created\n")
    r = status_ok("first rollout")
    t.check("every status line is one of kubectl's messages", all(
        re.fullmatch(r'(Waiting for deployment spec update to be observed\.\.\.|'
                     r'Waiting for deployment "web" rollout to finish: .*\.\.\.|'
                     r'deployment "web" successfully rolled out)', ln)
        for ln in r.out.splitlines()), r)
    r = ctl("get", "deployments")
    t.check("get deployments: kubectl's columns and 3/3 ready",
            re.match(r"NAME +READY +UP-TO-DATE +AVAILABLE +AGE\nweb +3/3 +3 +3 +\S+\n$", r.out),
            r)
    r = ctl("get", "deploy", "web", "-o", "wide")
    t.check("get deploy -o wide adds CONTAINERS IMAGES SELECTOR",
            re.match(r"NAME +READY +UP-TO-DATE +AVAILABLE +AGE +CONTAINERS +IMAGES +SELECTOR\n"
                     r"web +3/3 +3 +3 +\S+ +web +nginx:1 +app=web\n$", r.out), r)
    r = ctl("get", "rs")
    t.check("get rs: kubectl's columns", re.match(
        r"NAME +DESIRED +CURRENT +READY +AGE\nweb-\S+ +3 +3 +3 +\S+\n$", r.out), r)
    r = ctl("get", "replicasets", "-o", "wide")
    t.check("get replicasets -o wide", re.match(
        r"NAME +DESIRED +CURRENT +READY +AGE +CONTAINERS +IMAGES +SELECTOR\n"
        r"web-(\S+) +3 +3 +3 +\S+ +web +nginx:1 +app=web,pod-template-hash=\1\n$", r.out), r)
    r = ctl("get", "deploy,rs,pods")
    t.check("get deploy,rs,pods: three tables with kind/name",
            r.rc == 0 and "deployment.apps/web " in r.out and
            re.search(r"\nreplicaset\.apps/web-\S+ ", r.out) and
            len(re.findall(r"\npod/web-\S+ ", r.out)) == 3, r)
    if KUBECTL:
        k = kubectl("get", "deploy,rs")
        s = ctl("get", "deploy,rs")
        t.eq("get deploy,rs: same text as kubectl's (ages aside)", testlib.drop_age(s.out),
             testlib.drop_age(k.out))

    # ------------------------------------------------------------ scale
    r = ctl("scale", "deployment/web", "--replicas", "5")
    t.eq("scale deployment/web --replicas 5", (r.rc, r.out), (0, "deployment.apps/web scaled\n"))
    t.eq("spec.replicas is 5", deploy().get("spec", {}).get("replicas"), 5)
    status_ok("after scaling to 5")
    r = ctl("scale", "deploy", "web", "--replicas", "4", "--current-replicas", "5")
    t.eq("scale deploy web --current-replicas 5 (precondition holds)",
         (r.rc, r.out), (0, "deployment.apps/web scaled\n"))
    r = ctl("scale", "deploy", "web", "--replicas", "2", "--current-replicas", "9")
    t.eq("scale with a failing --current-replicas", (r.rc, r.err),
         (1, "error: Expected replicas to be 9, was 4\n"))
    if KUBECTL:
        k = kubectl("scale", "deploy", "web", "--replicas=2", "--current-replicas=9")
        t.eq("kubectl prints the same precondition failure", (k.rc, k.err), (r.rc, r.err))
    t.eq("the failed precondition changed nothing", deploy().get("spec", {}).get("replicas"), 4)
    r = ctl("scale", "deploy/web", "--replicas", "3")
    t.eq("scale back to 3", r.rc, 0)
    status_ok("after scaling to 3")
    solo = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "solo", "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "solo"}},
                     "template": {"metadata": {"labels": {"app": "solo"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    r = api.post(RS_PATH, solo)
    t.check("create a standalone ReplicaSet solo", r.status == 201, r)
    r = ctl("scale", "rs/solo", "--replicas", "2")
    t.eq("scale rs/solo", (r.rc, r.out), (0, "replicaset.apps/solo scaled\n"))
    r = run([CTL, "--kubeconfig", srv.kubeconfig, "scale", "replicaset", "solo", "--replicas",
             "0", "-n", NS], 60)
    t.eq("scale replicaset solo (-n after the command)", (r.rc, r.out),
         (0, "replicaset.apps/solo scaled\n"))
    r = api.get(RS_PATH + "/solo")
    t.eq("solo's spec.replicas is 0", (r.json or {}).get("spec", {}).get("replicas"), 0)
    r = ctl("scale", "deployment/nope", "--replicas", "1")
    t.eq("scale of a missing deployment", (r.rc, r.err),
         (1, 'error: no objects passed to scale deployments.apps "nope" not found\n'))
    if KUBECTL:
        k = kubectl("scale", "deployment/nope", "--replicas=1")
        t.eq("kubectl prints the same for a missing deployment", (k.rc, k.err), (r.rc, r.err))

    # ------------------------------------------------------------ revision 2, history
    r = ctl("apply", "-f", write("web2.yaml", manifest("nginx:2", cause="image nginx:2")))
    t.eq("apply nginx:2 with a change-cause", r.out, "deployment.apps/web configured\n")
    status_ok("rollout to nginx:2")
    t.eq("the Deployment is at revision 2", ann(deploy(), REV), "2")
    r = ctl("rollout", "history", "deployment/web")
    t.eq("rollout history lists revisions 1 and 2 with the change cause", r.out,
         "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n"
         "2         image nginx:2\n\n")
    r2 = ctl("rollout", "history", "deploy", "web", "--revision", "2")
    t.check("rollout history --revision 2 prints that pod template",
            r2.rc == 0 and r2.out.startswith("deployment.apps/web with revision #2\nPod Template:\n")
            and "\tImage:\tnginx:2\n" in r2.out.replace("    ", "\t"), r2)
    r = ctl("rollout", "history", "deployment/web", "--revision", "7")
    t.eq("history of an unknown revision", (r.rc, r.err),
         (1, "error: unable to find the specified revision\n"))
    if KUBECTL:
        k = kubectl("rollout", "history", "deployment/web")
        s = ctl("rollout", "history", "deployment/web")
        t.eq("rollout history: same text as kubectl's", s.out, k.out)
        k = kubectl("rollout", "history", "deployment/web", "--revision=2")
        t.eq("rollout history --revision 2: same text as kubectl's", r2.out, k.out)
        # The controller posts Events in the background (the rollout's last scale-down can land
        # between the two commands): run the pair again, up to 10 times, until both saw the same
        # Events. A real difference shows in every round.
        for _ in range(10):
            k = kubectl("describe", "deployment", "web")
            s = ctl("describe", "deployment", "web")
            if (until_events(s.out), events_of(s.out)) == (until_events(k.out), events_of(k.out)):
                break
            time.sleep(1)
        t.eq("describe deployment: same text as kubectl's up to Events", until_events(s.out),
             until_events(k.out))
        t.check("describe deployment has an Events section", "\nEvents:" in s.out, s)
        t.eq("describe deployment: the same Events as kubectl's (ages aside)",
             events_of(s.out), events_of(k.out))
        rs_name = [x["metadata"]["name"] for x in rses()
                   if image_of(x) == "nginx:2"][0]
        k = kubectl("describe", "rs", rs_name)
        s = ctl("describe", "rs", rs_name)
        t.eq("describe replicaset: same text as kubectl's up to Events", until_events(s.out),
             until_events(k.out))
    else:
        print("NOTE: no kubectl on PATH: the comparisons with kubectl are skipped", flush=True)
    r = ctl("describe", "deployment", "web")
    t.check("describe deployment: kubectl's fields", all(
        x in r.out for x in ["\nCreationTimestamp:", "\nSelector:               app=web\n",
                             "\nReplicas:               3 desired | 3 updated | 3 total | "
                             "3 available | 0 unavailable\n",
                             "\nStrategyType:           RollingUpdate\n",
                             "\nRollingUpdateStrategy:  25% max unavailable, 25% max surge\n",
                             "\nPod Template:\n", "\nConditions:\n", "\nOldReplicaSets:",
                             "\nNewReplicaSet:"]), r)

    # ------------------------------------------------------------ undo
    r = ctl("rollout", "undo", "deployment/web")
    t.eq("rollout undo", (r.rc, r.out), (0, "deployment.apps/web rolled back\n"))
    status_ok("after undo")
    d = deploy()
    t.eq("undo restored nginx:1", image_of(d), "nginx:1")
    t.eq("undo made revision 3 (the revision-1 ReplicaSet reused)", ann(d, REV), "3")
    t.eq("undo copied the old ReplicaSet's annotations (no change-cause)",
         ann(d, "kubernetes.io/change-cause"), None)
    r = ctl("rollout", "history", "deployment/web")
    t.eq("history now lists 2 and 3", r.out,
         "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         image nginx:2\n"
         "3         <none>\n\n")
    if KUBECTL:
        k = kubectl("rollout", "history", "deployment/web")
        t.eq("kubectl rollout history lists the same revisions", r.out, k.out)
    r = ctl("rollout", "undo", "deployment/web", "--to-revision", "2")
    t.eq("rollout undo --to-revision 2", (r.rc, r.out), (0, "deployment.apps/web rolled back\n"))
    status_ok("after undo --to-revision 2")
    d = deploy()
    t.eq("undo --to-revision 2 restored nginx:2", image_of(d), "nginx:2")
    t.eq("... with its change-cause", ann(d, "kubernetes.io/change-cause"), "image nginx:2")
    t.eq("... as revision 4", ann(d, REV), "4")
    r = ctl("rollout", "undo", "deployment/web", "--to-revision", "4")
    t.eq("undo to the current revision is skipped", (r.rc, r.out), (
        0, "deployment.apps/web skipped rollback (current template already matches revision 4)\n"))
    if KUBECTL:
        k = kubectl("rollout", "undo", "deployment/web", "--to-revision=4")
        t.eq("kubectl skips the same rollback with the same words", (k.rc, k.out), (r.rc, r.out))
    r = ctl("rollout", "undo", "deployment/web", "--to-revision", "99")
    t.eq("undo to an unknown revision", (r.rc, r.err),
         (1, "error: unable to find specified revision 99 in history\n"))
    if KUBECTL:
        k = kubectl("rollout", "undo", "deployment/web", "--to-revision=99")
        t.eq("kubectl fails the same way", (k.rc, k.err), (r.rc, r.err))

    # ------------------------------------------------------------ restart
    r = ctl("rollout", "restart", "deployment/web")
    t.eq("rollout restart", (r.rc, r.out), (0, "deployment.apps/web restarted\n"))
    d = deploy()
    at = ann(d.get("spec", {}).get("template"), "kubectl.kubernetes.io/restartedAt") or ""
    t.check("restart set kubectl.kubernetes.io/restartedAt (RFC 3339) on the template",
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", at), d)
    status_ok("after restart")
    t.eq("restart rolled out revision 5", ann(deploy(), REV), "5")

    # ------------------------------------------------------------ pause / resume
    r = ctl("rollout", "pause", "deployment/web")
    t.eq("rollout pause", (r.rc, r.out), (0, "deployment.apps/web paused\n"))
    t.eq("spec.paused is true", deploy().get("spec", {}).get("paused"), True)
    r = ctl("rollout", "pause", "deployment/web")
    t.eq("pause again fails", (r.rc, r.err),
         (1, 'error: deployments.apps "web" is already paused\n'))
    if KUBECTL:
        k = kubectl("rollout", "pause", "deployment/web")
        t.eq("kubectl says the same about pausing twice", (k.rc != 0, k.err), (True, r.err))
    r = ctl("rollout", "restart", "deployment/web")
    t.eq("restart of a paused deployment fails", (r.rc, r.err), (
        1, 'error: deployments.apps "web" can\'t restart paused deployment (run rollout resume '
           'first)\n'))
    if KUBECTL:
        k = kubectl("rollout", "restart", "deployment/web")
        t.eq("kubectl refuses the restart with the same words", (k.rc, k.err), (r.rc, r.err))
    r = ctl("rollout", "undo", "deployment/web")
    t.check("undo of a paused deployment fails",
            r.rc == 1 and "you cannot rollback a paused deployment" in r.err, r)
    # A template change while paused is observed but not rolled out.
    r = ctl("apply", "-f", write("web3.yaml", manifest("nginx:3")))
    t.eq("apply nginx:3 while paused", r.rc, 0)
    gen = deploy().get("metadata", {}).get("generation")
    wait_for("the controller to observe generation %s" % gen, lambda: deploy().get(
        "status", {}).get("observedGeneration") == gen, timeout=30)
    r = ctl("rollout", "status", "deployment/web", "--watch=false")
    t.eq("status --watch=false while paused prints the waiting line once and exits 0",
         (r.rc, r.out), (0, 'Waiting for deployment "web" rollout to finish: 0 out of 3 new '
                            'replicas have been updated...\n'))
    if KUBECTL:
        k = kubectl("rollout", "status", "deployment/web", "--watch=false")
        t.eq("kubectl rollout status --watch=false prints the same", (k.rc, k.out), (r.rc, r.out))
    r = ctl("rollout", "status", "deployment/web", "--timeout", "2s")
    t.check("status --timeout 2s on a paused rollout fails with kubectl's timeout error",
            r.rc == 1 and r.err.endswith("error: timed out waiting for the condition\n"), r)
    r = ctl("rollout", "resume", "deployment/web")
    t.eq("rollout resume", (r.rc, r.out), (0, "deployment.apps/web resumed\n"))
    t.check("spec.paused is unset", not deploy().get("spec", {}).get("paused"), deploy())
    r = ctl("rollout", "resume", "deployment/web")
    t.eq("resume again fails", (r.rc, r.err), (1, 'error: deployments.apps "web" is not paused\n'))
    if KUBECTL:
        k = kubectl("rollout", "resume", "deployment/web")
        t.eq("kubectl says the same about resuming twice", (k.rc != 0, k.err), (True, r.err))
    status_ok("after resume")
    t.eq("nginx:3 rolled out after resume", image_of(deploy()), "nginx:3")
    r = ctl("rollout", "history", "deployment/web")
    if KUBECTL:
        k = kubectl("rollout", "history", "deployment/web")
        t.eq("final history: same text as kubectl's", r.out, k.out)
    t.check("final history ends at revision 6", re.search(r"\n6 +<none>\n\n$", r.out), r)

    # ------------------------------------------------------------ failures
    r = ctl("rollout", "status", "deployment/nope")
    t.eq("status of a missing deployment", (r.rc, r.err),
         (1, 'Error from server (NotFound): deployments.apps "nope" not found\n'))
    if KUBECTL:
        k = kubectl("rollout", "status", "deployment/nope")
        t.eq("kubectl prints the same for a missing deployment's status", (k.rc, k.err),
             (r.rc, r.err))
    r = ctl("apply", "-f", write("stuck.yaml", manifest(
        "broken", name="stuck", replicas=1, extra_spec="  progressDeadlineSeconds: 3\n")))
    t.eq("apply a deployment that never becomes ready", r.rc, 0)
    r = ctl("rollout", "status", "deployment/stuck", "--timeout", "90s")
    t.check("status of a stuck rollout fails with 'exceeded its progress deadline'",
            r.rc == 1 and r.err.endswith(
                'error: deployment "stuck" exceeded its progress deadline\n'), r)
    if KUBECTL:
        k = kubectl("rollout", "status", "deployment/stuck", "--timeout=30s")
        t.eq("kubectl fails the stuck rollout with the same error", (k.rc, k.err.splitlines()[-1:]),
             (r.rc, r.err.splitlines()[-1:]))
    r = ctl("rollout", "status", "rs/solo")
    t.eq("rollout status on a ReplicaSet", (r.rc, r.err),
         (1, "error: no status viewer has been implemented for ReplicaSet.apps\n"))
finally:
    kubelets.stop_ev.set()
    kubelets.join(timeout=10)
    cm.stop()

t.finish()
