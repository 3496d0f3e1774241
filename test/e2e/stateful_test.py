#!/usr/bin/env python3
"""e2e: StatefulSets with persistent volumes, DaemonSets, Jobs and CronJobs in a three-node lab
(deploy/lab.sh up 3, then `lab.sh join` a fourth) with real busybox pods — issue 7's "Must show".

Objects (namespace default, image busybox:1.35, the lab's image):
  - headless Service `web` and StatefulSet `web` (3 replicas, OrderedReady,
    volumeClaimTemplates `data` 1Mi of the default class local-path): each pod appends
    "<hostname> <n>" to /data/log every 2 s (n continues from the file's line count, and a
    "<hostname> start" line marks each container start); ready by an exec probe
    `sh -c "test -s /data/log"`;
  - DaemonSet `agent` (sleep loop); Jobs `batch5` (completions 5, parallelism 2, each pod
    sleeps 3 s) and `fail` (backoffLimit 2, restartPolicy Never, `exit 1`); CronJob `tick`
    (`*/1 * * * *`, successfulJobsHistoryLimit 2), created first so its minutes pass while the
    other phases run.
A watcher (lablib.ApiWatch) records every pod and Job state the API server reports, in order:
the ordering and "at once" checks read that record, not polls that could miss a state.
Phases (one failing does not stop the next; SKIFF_E2E_PHASES=a,b runs only those, and such a
run exits 77; sts-create runs whenever a later StatefulSet phase does):
  - sts-create: 3 pods Ready; web-1 created only after web-0 was Ready, web-2 after web-1
    (the watch's order; creationTimestamps and Ready times printed); pod labels
    (controller-revision-hash, statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index),
    hostname/subdomain; PVCs data-web-0..2 Bound to PVs pvc-<uid> of class local-path with
    nodeAffinity kubernetes.io/hostname In [the pod's node] and hostPath
    <lab dir>/<node>/data/storage/pvc-<uid>, where the pod's log file is on the host;
  - sts-delete-pod: `delete pod web-1` -> a new web-1 (new uid) on the same node whose /data/log
    still holds every old line (prefix) and goes on;
  - dns: from a web pod, `nslookup web-0.web.default.svc.cluster.local` (and `web-0.web` via the
    search path, which busybox's ping follows) = web-0's IP; web-0 deleted -> recreated -> the
    name resolves to its new IP;
  - sts-scale: scale 3 -> 1: web-2 goes first, web-1 is deleted only after web-2 is gone; PVCs
    data-web-1/2 kept (same uids, Bound); back to 3: web-1 then web-2, on their volumes' nodes,
    find their old files;
  - jobs: batch5 Complete with exactly 5 Succeeded pods (5 pods created in all) and never more
    than 2 active at once (max over the watch record); fail: condition Failed reason
    BackoffLimitExceeded, status.failed 3, 3 Failed pods and no fourth;
  - daemonset: a pod on each of node1..3; `lab.sh join` -> node4 Ready -> a 4th pod on node4;
    status desiredNumberScheduled/numberReady 4;
  - cronjob: waits until 3 of tick's Jobs completed: every Job tick-<N> has N = its scheduled
    minute (annotation batch.kubernetes.io/cronjob-scheduled-timestamp), no minute twice, one
    per minute from the first minute after the CronJob's creation until now (30 s allowance),
    at most 2 successful Jobs kept (the oldest deleted); status.lastScheduleTime;
  - after `lab.sh down`: `ip netns`, `ip link`, the host's mounts and cgroups as before `up`.

Needs root; exits 77 with the reason otherwise. Env from CTest: SKIFF_BIN (build dir),
SKIFF_SRC (source dir). A lab of its own (SKIFF_LAB_NAME skiff-stse2e, dir /tmp/skiff-stse2e;
SKIFF_E2E_LAB_NAME / SKIFF_E2E_LAB_DIR change them), always `lab.sh down` at the end (the
joined node4 too); SKIFF_E2E_KEEP_LOGS=DIR copies the daemons' logs there first. Every wait is
bounded; all traffic stays inside the lab's namespaces.
"""
import calendar
import json
import os
import re
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import testlib  # noqa: E402
import lablib  # noqa: E402
from lablib import Fatal, Timeout, is_ready, kubectl, lab, out, wait_for  # noqa: E402

LIMIT = 840  # CTest gives 900 s
LAB_NAME, LAB_DIR, ENV = lablib.lab_env("skiff-stse2e")
DOMAIN = "cluster.local"
STS = "web"
CJ = "tick"
CJ_KEEP = 2  # successfulJobsHistoryLimit
CJ_WANT = 3  # completed Jobs to wait for
IMAGE = "busybox:1.35"


def log(msg):
    print("# [%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def ts(s):
    """RFC 3339 (seconds, Z) -> epoch seconds; None for None."""
    if not s:
        return None
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))


def meta(o, k):
    return (o.get("metadata") or {}).get(k)


def labels(o):
    return meta(o, "labels") or {}


def cond(o, typ):
    """The status condition `typ` of an object (dict) or {}."""
    return next((c for c in (o.get("status") or {}).get("conditions") or []
                 if c.get("type") == typ), {})


def job_of(pod):
    l = labels(pod)
    return l.get("batch.kubernetes.io/job-name") or l.get("job-name")


# ---------------------------------------------------------------------------------------------
# objects

# Appends "<hostname> <n>" every 2 s; n continues from the file's line count so a restarted
# pod's lines follow the old ones; TERM ends it at once (sh as PID 1 would ignore it).
STS_CMD = ("trap 'exit 0' TERM; echo \"$(hostname) start\" >> /data/log; "
           "n=$(wc -l < /data/log); while true; do n=$((n+1)); "
           "echo \"$(hostname) $n\" >> /data/log; sleep 2 & wait $!; done")
SLEEP_CMD = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done"


def headless_service():
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": STS, "namespace": "default", "labels": {"app": STS}},
            "spec": {"clusterIP": "None", "selector": {"app": STS},
                     "ports": [{"name": "log", "port": 80, "protocol": "TCP"}]}}


def statefulset(replicas):
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": STS, "namespace": "default"},
        "spec": {
            "serviceName": STS, "replicas": replicas, "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": STS}},
            "template": {
                "metadata": {"labels": {"app": STS}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "app", "image": IMAGE, "command": ["sh", "-c", STS_CMD],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "readinessProbe": {"exec": {"command": ["sh", "-c", "test -s /data/log"]},
                                           "periodSeconds": 1, "timeoutSeconds": 3}}]}},
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Mi"}}}}]}}


def daemonset():
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "agent", "image": IMAGE,
                                         "command": ["sh", "-c", SLEEP_CMD]}]}}}}


def job(name, completions, parallelism, script, backoff=6):
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
            "template": {
                "metadata": {"labels": {"test": "job"}},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "work", "image": IMAGE,
                                         "command": ["sh", "-c", script]}]}}}}


def cronjob():
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": CJ, "namespace": "default"},
        "spec": {
            "schedule": "*/1 * * * *", "successfulJobsHistoryLimit": CJ_KEEP,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"test": "cron"}},
                "spec": {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "tick", "image": IMAGE,
                                         "command": ["sh", "-c", "date; sleep 1"]}]}}}}}}


# ---------------------------------------------------------------------------------------------
# the test


class Test(lablib.LabChecks):
    def __init__(self):
        super().__init__()
        self.skipped = []
        self.watch = None
        self.cj_created = None   # the CronJob's creationTimestamp (epoch s)
        self.sts_ok = False      # sts-create reached 3 Ready pods (later sts phases need it)
        self.nodes = {}          # web pod name -> node, as first placed
        self.logs = {}           # web pod name -> its /data/log as last read

    def check(self, desc, ok, detail=""):
        """As Checks.check; a callable detail (self.debug) runs only for a failure (each is a
        kubectl call: not made for every passing check, nor counted in the timings)."""
        if callable(detail):
            detail = "" if ok else detail()
        return super().check(desc, ok, detail)

    def skip(self, what, why):
        self.skipped.append("%s: %s" % (what, why))
        print("skip - %s (%s)" % (what, why), flush=True)

    # -- cluster helpers ------------------------------------------------------------------------

    def apply(self, obj, what):
        r = kubectl("apply", "-f", "-", input=json.dumps(obj))
        self.check("kubectl apply -f - (%s)" % what, r.returncode == 0, out(r))
        return r.returncode == 0

    def pods(self, selector):
        lst = self.get_json("pods", "-l", selector)
        return None if lst is None else lst.get("items", [])

    def pod(self, name):
        return self.get_json("pod", name)

    def web_ready(self, n):
        """{name: pod} when exactly web-0..web-(n-1) are active, all Ready; else None."""
        ps = self.pods("app=" + STS)
        if ps is None:
            return None
        active = {meta(p, "name"): p for p in ps if not meta(p, "deletionTimestamp")}
        want = ["%s-%d" % (STS, i) for i in range(n)]
        if sorted(active) != want or not all(is_ready(p) for p in active.values()):
            return None
        return active

    def debug(self):
        return out(kubectl("get", "sts,pods,pvc,pv,ds,jobs,cronjobs", "-o", "wide"))[-3000:]

    def exec_sh(self, pod, script, timeout=30):
        return kubectl("exec", pod, "--", "sh", "-c", script, timeout=timeout)

    def read_log(self, pod):
        r = kubectl("exec", pod, "--", "cat", "/data/log", timeout=30)
        return r.stdout if r.returncode == 0 else None

    def scale(self, kind, n):
        """kubectl scale, retried (bounded) when the API server is slow to answer."""
        t0 = time.time()
        r = None
        for attempt in range(3):
            r = kubectl("scale", kind, "--replicas", str(n), timeout=50)
            if r.returncode == 0 or time.time() - t0 > 120:
                break
            log("kubectl scale %s --replicas %d failed (attempt %d): %s" % (
                kind, n, attempt + 1, out(r)[-300:]))
            time.sleep(1)
        self.check("kubectl scale %s --replicas %d (%.1f s)" % (kind, n, time.time() - t0),
                   r.returncode == 0, out(r))
        return r.returncode == 0

    def pod_events(self, pred=None):
        return self.watch.events("pods", pred)

    def first_index(self, evs, pred):
        """Index of the first event in evs whose object satisfies pred (None if none)."""
        return next((i for i, e in enumerate(evs) if pred(e["obj"])), None)

    def watch_sees(self, since, pred, what, timeout=30):
        """Waits (bounded) until the watch recorder, which can lag behind the kubectl polls that
        ended a wait, has an event from index `since` whose object satisfies pred, so that the
        order checks read a complete record."""
        if wait_for(lambda: self.first_index(self.pod_events()[since:], pred) is not None,
                    timeout, 0.5) is None:
            log("the pod watch has not seen %s within %d s" % (what, timeout))

    def order_check(self, evs, since, names, what):
        """OrderedReady: each of `names` (in order) is created only after the one before it was
        Running and Ready — in the watch's order of events from index `since`."""
        evs = evs[since:]
        facts = []
        ok = True
        for prev, cur in zip(names, names[1:]):
            ready_at = self.first_index(evs, lambda o, n=prev: meta(o, "name") == n and
                                        is_ready(o))
            added_at = self.first_index(evs, lambda o, n=cur: meta(o, "name") == n)
            facts.append("%s Ready at event %s, %s first seen at event %s" % (
                prev, ready_at, cur, added_at))
            ok = ok and ready_at is not None and added_at is not None and added_at > ready_at
        self.check("%s: OrderedReady start order %s (%s)" % (what, " -> ".join(names),
                                                             "; ".join(facts)), ok,
                   self.debug)

    def print_times(self, names):
        for n in names:
            p = self.pod(n) or {}
            log("%s: node %s, uid %s, created %s, Ready since %s, IP %s" % (
                n, (p.get("spec") or {}).get("nodeName"), meta(p, "uid"),
                meta(p, "creationTimestamp"), cond(p, "Ready").get("lastTransitionTime"),
                (p.get("status") or {}).get("podIP")))

    # -- phases ---------------------------------------------------------------------------------

    def phase(self, name, fn, needs_sts=False):
        wanted = os.environ.get("SKIFF_E2E_PHASES")
        # the other StatefulSet phases need the one sts-create makes
        sts_wanted = wanted and set(wanted.split(",")) & {"sts-delete-pod", "dns", "sts-scale"}
        if wanted and name not in wanted.split(",") and not (name == "sts-create" and
                                                              sts_wanted):
            self.skip("phase %s" % name, "not in SKIFF_E2E_PHASES=%s" % wanted)
            return
        log("==== phase %s" % name)
        if needs_sts and not self.sts_ok:
            self.check("phase %s: needs the StatefulSet of phase sts-create, which did not "
                       "become Ready" % name, False)
            return
        t0 = time.time()
        try:
            fn()
        except Fatal:
            pass
        except Timeout:
            raise
        except Exception as e:
            self.check("phase %s: unexpected %s: %s" % (name, type(e).__name__, e), False,
                       traceback.format_exc())
        self.timing("phase " + name, time.time() - t0)

    def setup(self):
        t0 = time.time()
        r = lab("up", "3", timeout=400)
        print(r.stdout[-2000:] + r.stderr[-3000:], flush=True)
        if r.returncode != 0:
            self.fatal("lab.sh up 3", out(r)[-3000:])
        self.check("lab.sh up 3: three nodes Ready (%.1f s)" % (time.time() - t0), True)
        self.timing("lab.sh up 3", time.time() - t0)
        print(lab("status").stdout, flush=True)
        self.watch = lablib.ApiWatch(LAB_DIR, [
            ("pods", "/api/v1/namespaces/default/pods"),
            ("jobs", "/apis/batch/v1/namespaces/default/jobs")], max_s=LIMIT)
        synced = wait_for(lambda: len(self.watch.events(None, lambda o: o.get(
            "synced"))) >= 2 or self.watch.p.poll() is not None, 30, 0.2)
        if not synced or self.watch.p.poll() is not None:
            self.fatal("the API watcher lists and watches pods and Jobs", "\n".join(
                str(e) for e in self.watch.errors[:5]))
        wanted = os.environ.get("SKIFF_E2E_PHASES")
        if not wanted or "cronjob" in wanted.split(","):
            # First: its minutes pass while the other phases run.
            if self.apply(cronjob(), "CronJob %s */1 * * * *" % CJ):
                self.cj_created = ts(meta(self.get_json("cronjob", CJ) or {},
                                          "creationTimestamp")) or time.time()
                log("CronJob %s created at %s" % (CJ, time.strftime(
                    "%H:%M:%S", time.gmtime(self.cj_created))))

    def phase_sts_create(self):
        if not self.apply(headless_service(), "headless Service web"):
            return
        since = len(self.pod_events())
        t0 = time.time()
        if not self.apply(statefulset(3), "StatefulSet web, 3 replicas, volumeClaimTemplates "
                          "data 1Mi"):
            return
        pods = wait_for(lambda: self.web_ready(3), 240, 1)
        if not pods:
            self.fatal("StatefulSet web: web-0, web-1, web-2 Running and Ready within 240 s",
                       self.debug)
        self.check("StatefulSet web: web-0, web-1, web-2 Running and Ready (%.1f s)" % (
            time.time() - t0), True)
        self.timing("StatefulSet web: 3 pods Ready", time.time() - t0)
        self.sts_ok = True
        names = ["web-0", "web-1", "web-2"]
        self.print_times(names)
        self.watch_sees(since, lambda o: meta(o, "name") == "web-2" and is_ready(o),
                        "web-2 Ready")
        self.order_check(self.pod_events(), since, names, "create")
        ct = [ts(meta(pods[n], "creationTimestamp")) for n in names]
        rt = [ts(cond(pods[n], "Ready").get("lastTransitionTime")) for n in names]
        self.check("creationTimestamps %s and Ready times %s are ordered: web-1 created at or "
                   "after web-0 was Ready, web-2 after web-1" % (ct, rt),
                   None not in ct + rt and ct[1] >= rt[0] and ct[2] >= rt[1])
        self.nodes = {n: pods[n]["spec"].get("nodeName") for n in names}
        log("placement: %s" % self.nodes)
        for i, n in enumerate(names):
            p, sp, lb = pods[n], pods[n].get("spec") or {}, labels(pods[n])
            self.check("%s: hostname %s subdomain %s, labels pod-name %s, pod-index %s, "
                       "controller-revision-hash %s" % (
                           n, sp.get("hostname"), sp.get("subdomain"),
                           lb.get("statefulset.kubernetes.io/pod-name"),
                           lb.get("apps.kubernetes.io/pod-index"),
                           lb.get("controller-revision-hash")),
                       sp.get("hostname") == n and sp.get("subdomain") == STS and
                       lb.get("statefulset.kubernetes.io/pod-name") == n and
                       lb.get("apps.kubernetes.io/pod-index") == str(i) and
                       bool(lb.get("controller-revision-hash")) and lb.get("app") == STS,
                       json.dumps(meta(p, "labels")))
        sts = wait_for(lambda: (lambda s: s if (s.get("status") or {}).get(
            "readyReplicas") == 3 else None)(self.get_json("sts", STS) or {}), 30)
        st = (sts or self.get_json("sts", STS) or {}).get("status") or {}
        self.check("StatefulSet status: replicas %s readyReplicas %s currentReplicas %s "
                   "currentRevision %s" % (st.get("replicas"), st.get("readyReplicas"),
                                           st.get("currentReplicas"), st.get("currentRevision")),
                   st.get("replicas") == 3 and st.get("readyReplicas") == 3 and
                   st.get("currentReplicas") == 3 and bool(st.get("currentRevision")),
                   json.dumps(st))
        self.check_storage(names)
        for n in names:
            self.logs[n] = self.read_log(n)
        log(out(kubectl("get", "sts,pods,pvc,pv", "-o", "wide")))

    def check_storage(self, names):
        """PVCs data-<pod> Bound to local-path PVs on the pods' nodes, the files on the host."""
        sc = self.get_json("storageclass", "local-path") or {}
        self.check("StorageClass local-path: provisioner skiff.io/local-path, WaitForFirstConsumer,"
                   " the default class (%s, %s, %s)" % (
                       sc.get("provisioner"), sc.get("volumeBindingMode"),
                       (meta(sc, "annotations") or {}).get(
                           "storageclass.kubernetes.io/is-default-class")),
                   sc.get("provisioner") == "skiff.io/local-path" and
                   sc.get("volumeBindingMode") == "WaitForFirstConsumer" and
                   (meta(sc, "annotations") or {}).get(
                       "storageclass.kubernetes.io/is-default-class") == "true",
                   json.dumps(sc)[:1500])
        for n in names:
            claim = "data-" + n
            pvc = self.get_json("pvc", claim) or {}
            node = self.nodes.get(n)
            vol = (pvc.get("spec") or {}).get("volumeName")
            st = pvc.get("status") or {}
            self.check("PVC %s: Bound to %s, class %s, capacity %s, label app=%s, selected-node "
                       "%s (pod on %s)" % (
                           claim, vol, (pvc.get("spec") or {}).get("storageClassName"),
                           (st.get("capacity") or {}).get("storage"), labels(pvc).get("app"),
                           (meta(pvc, "annotations") or {}).get(
                               "volume.kubernetes.io/selected-node"), node),
                       st.get("phase") == "Bound" and vol == "pvc-%s" % meta(pvc, "uid") and
                       (st.get("capacity") or {}).get("storage") == "1Mi" and
                       (pvc.get("spec") or {}).get("storageClassName") == "local-path" and
                       labels(pvc).get("app") == STS and
                       (meta(pvc, "annotations") or {}).get(
                           "volume.kubernetes.io/selected-node") == node,
                       json.dumps(pvc)[:2000])
            if not vol:
                continue
            pv = self.get_json("pv", vol) or {}
            sp = pv.get("spec") or {}
            terms = (((sp.get("nodeAffinity") or {}).get("required") or {}).get(
                "nodeSelectorTerms") or [])
            exprs = [(x.get("key"), x.get("operator"), x.get("values"))
                     for t in terms for x in t.get("matchExpressions") or []]
            path = (sp.get("hostPath") or {}).get("path")
            want_path = os.path.join(LAB_DIR, node or "?", "data", "storage", vol)
            self.check("PV %s: Bound, claimRef default/%s, nodeAffinity %s, hostPath %s, "
                       "reclaimPolicy %s" % (vol, (sp.get("claimRef") or {}).get("name"), exprs,
                                             path, sp.get("persistentVolumeReclaimPolicy")),
                       (pv.get("status") or {}).get("phase") == "Bound" and
                       (sp.get("claimRef") or {}).get("name") == claim and
                       exprs == [("kubernetes.io/hostname", "In", [node])] and
                       path == want_path and sp.get("persistentVolumeReclaimPolicy") == "Delete",
                       "want hostPath %s\n%s" % (want_path, json.dumps(pv)[:2000]))
            try:
                with open(os.path.join(want_path, "log")) as f:
                    lines = f.read().splitlines()
            except OSError as e:
                lines = ["(%s)" % e]
            self.check("%s's volume on the host, %s/log: %d lines by %s" % (
                n, want_path, len(lines), n), len(lines) > 0 and
                all(l.split()[0] == n for l in lines if l.strip()), "\n".join(lines[-5:]))

    def phase_sts_delete_pod(self):
        old = self.pod("web-1") or {}
        uid, node = meta(old, "uid"), (old.get("spec") or {}).get("nodeName")
        pvc_uid = meta(self.get_json("pvc", "data-web-1") or {}, "uid")
        before = self.read_log("web-1")
        if not before:
            self.fatal("read web-1's /data/log (kubectl exec web-1 -- cat /data/log)",
                       out(kubectl("exec", "web-1", "--", "cat", "/data/log")))
        log("web-1 (uid %s on %s) before deletion: %d lines, last %r" % (
            uid, node, len(before.splitlines()), before.splitlines()[-1]))
        t0 = time.time()
        r = kubectl("delete", "pod", "web-1", "--wait=false")
        self.check("kubectl delete pod web-1", r.returncode == 0, out(r))

        def replaced():
            p = self.pod("web-1")
            return p if p and meta(p, "uid") != uid and is_ready(p) else None
        new = wait_for(replaced, 120, 1)
        if not new:
            self.fatal("a new web-1 Ready within 120 s", self.debug)
        self.timing("pod web-1 deleted -> a new web-1 Ready", time.time() - t0)
        new_node = new["spec"].get("nodeName")
        self.check("the new web-1 (uid %s, old %s) runs on the same node: %s (was %s)" % (
            meta(new, "uid"), uid, new_node, node), new_node == node and meta(new, "uid") != uid)
        self.eq("PVC data-web-1 is the same claim (uid)", meta(
            self.get_json("pvc", "data-web-1") or {}, "uid"), pvc_uid)
        time.sleep(3)  # a line or two from the new pod
        after = self.read_log("web-1") or ""
        lines = after.splitlines()
        starts = [l for l in lines if l == "web-1 start"]
        log("web-1 after: %d lines (%d start lines), last %r" % (
            len(lines), len(starts), lines[-1] if lines else None))
        self.check("the new web-1 sees its old file: all %d old lines kept, %d new ones after "
                   "them, %d container starts recorded" % (
                       len(before.splitlines()), len(lines) - len(before.splitlines()),
                       len(starts)), after.startswith(before) and len(lines) > len(
                           before.splitlines()) and len(starts) >= 2, after[-1500:])
        self.logs["web-1"] = after

    def nslookup(self, pod, name):
        """(result, [addresses]) of `nslookup name` in pod (the answer after the server part)."""
        r = self.exec_sh(pod, "nslookup %s; echo rc=$?" % name)
        ans = r.stdout.split("\n\n", 1)[1] if "\n\n" in r.stdout else ""
        return r, sorted(re.findall(r"^Address:\s*([0-9.]+)\s*$", ans, re.M))

    def wait_resolves(self, pod, name, ip, timeout=30):
        t0 = time.time()
        res = [None, []]

        def ok():
            res[:] = self.nslookup(pod, name)
            return res[1] == [ip]
        got = wait_for(ok, timeout, 1)
        return bool(got), time.time() - t0, res[0], res[1]

    def phase_dns(self):
        w0 = self.pod("web-0") or {}
        ip0, uid0 = (w0.get("status") or {}).get("podIP"), meta(w0, "uid")
        fqdn = "web-0.web.default.svc." + DOMAIN
        ok, took, r, got = self.wait_resolves("web-2", fqdn, ip0)
        self.check("pod web-2: nslookup %s = web-0's IP %s: %s (%.1f s)" % (fqdn, ip0, got, took),
                   ok, out(r) if r else "")
        # busybox nslookup does not apply the search path; ping resolves through it (and
        # prints the address it resolved)
        r = self.exec_sh("web-2", "timeout 10 ping -c1 -W2 web-0.web; echo rc=$?")
        m = re.search(r"^PING web-0\.web \(([0-9.]+)\)", r.stdout, re.M)
        self.check("pod web-2: web-0.web (through the search path) = %s: %s" % (
            ip0, m.group(1) if m else None), m is not None and m.group(1) == ip0, out(r))
        t0 = time.time()
        r = kubectl("delete", "pod", "web-0", "--wait=false")
        self.check("kubectl delete pod web-0", r.returncode == 0, out(r))

        def replaced():
            p = self.pod("web-0")
            return p if p and meta(p, "uid") != uid0 and is_ready(p) else None
        new = wait_for(replaced, 120, 1)
        if not new:
            self.fatal("a new web-0 Ready within 120 s", self.debug)
        ip1 = new["status"].get("podIP")
        log("web-0 recreated in %.1f s: uid %s, IP %s (was %s), node %s" % (
            time.time() - t0, meta(new, "uid"), ip1, ip0, new["spec"].get("nodeName")))
        if ip1 == ip0:
            log("NOTE: the new web-0 got the same IP as the old one")
        ok, took, r, got = self.wait_resolves("web-2", fqdn, ip1)
        self.check("after web-0 was recreated: nslookup %s = its current IP %s: %s (%.1f s after "
                   "it was Ready)" % (fqdn, ip1, got, took), ok, out(r) if r else "")
        if ok:
            self.timing("web-0 Ready -> %s resolves to its new IP" % fqdn, took)
        self.eq("the new web-0 runs on its volume's node", new["spec"].get("nodeName"),
                self.nodes.get("web-0"))

    def phase_sts_scale(self):
        pvc_uids = {n: meta(self.get_json("pvc", "data-" + n) or {}, "uid")
                    for n in ("web-1", "web-2")}
        for n in ("web-1", "web-2"):
            self.logs[n] = self.read_log(n) or self.logs.get(n)
        since = len(self.pod_events())
        t0 = time.time()
        if not self.scale("statefulset/web", 1):
            return
        one = wait_for(lambda: self.web_ready(1) if not [
            p for p in self.pods("app=" + STS) or [] if meta(p, "name") != "web-0"] else None,
            120, 1)
        self.check("scaled to 1: only web-0 left, web-1 and web-2 gone (%.1f s)" % (
            time.time() - t0), bool(one), self.debug)
        if not one:
            return
        self.timing("scale 3 -> 1: web-1 and web-2 gone", time.time() - t0)
        # The poll saw web-1 gone; the watch may deliver its DELETED event a moment later.
        if wait_for(lambda: any(e["type"] == "DELETED" and meta(e["obj"], "name") == "web-1"
                                for e in self.pod_events()[since:]), 30, 0.5) is None:
            log("the pod watch has not seen web-1 DELETED within 30 s")
        evs = self.pod_events()[since:]
        deleting = lambda n: (lambda o: meta(o, "name") == n and bool(  # noqa: E731
            meta(o, "deletionTimestamp")))
        d2 = self.first_index(evs, deleting("web-2"))
        gone2 = next((i for i, e in enumerate(evs) if e["type"] == "DELETED" and
                      meta(e["obj"], "name") == "web-2"), None)
        d1 = self.first_index(evs, deleting("web-1"))
        self.check("scale-down in reverse order, one at a time: web-2 deleting at event %s, gone "
                   "at %s, then web-1 deleting at %s" % (d2, gone2, d1),
                   None not in (d2, gone2, d1) and d2 < d1 and gone2 < d1)
        for n in ("web-1", "web-2"):
            pvc = self.get_json("pvc", "data-" + n) or {}
            self.check("PVC data-%s kept after the scale-down (same uid, %s)" % (
                n, (pvc.get("status") or {}).get("phase")),
                meta(pvc, "uid") == pvc_uids[n] and pvc_uids[n] is not None and
                (pvc.get("status") or {}).get("phase") == "Bound", json.dumps(pvc)[:1500])
        since = len(self.pod_events())
        t0 = time.time()
        if not self.scale("statefulset/web", 3):
            return
        pods = wait_for(lambda: self.web_ready(3), 180, 1)
        if not pods:
            self.fatal("scaled back to 3: web-0..2 Ready within 180 s", self.debug)
        self.timing("scale 1 -> 3: web-1 and web-2 Ready", time.time() - t0)
        # web-0 stayed Ready: web-2 must wait for the new web-1
        self.watch_sees(since, lambda o: meta(o, "name") == "web-2" and is_ready(o),
                        "web-2 Ready")
        self.order_check(self.pod_events(), since, ["web-1", "web-2"], "scale-up")
        time.sleep(3)
        for n in ("web-1", "web-2"):
            node = pods[n]["spec"].get("nodeName")
            self.eq("%s is back on its volume's node" % n, node, self.nodes.get(n))
            old, now = self.logs.get(n) or "", self.read_log(n) or ""
            self.check("%s finds its old file: the %d old lines, then %d new ones" % (
                n, len(old.splitlines()), len(now.splitlines()) - len(old.splitlines())),
                bool(old) and now.startswith(old) and len(now) > len(old), now[-1500:])

    def job_pods_history(self, name):
        """From the watch: (uids of all pods of Job name, max pods active at once, max Running
        at once). Active = created, not Succeeded/Failed, not being deleted."""
        state = {}
        max_active = max_running = 0
        uids = set()
        for e in self.pod_events(lambda o: job_of(o) == name):
            o = e["obj"]
            uid = meta(o, "uid")
            uids.add(uid)
            if e["type"] == "DELETED":
                state.pop(uid, None)
            else:
                state[uid] = o
            act = [p for p in state.values() if not meta(p, "deletionTimestamp") and
                   (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
            max_active = max(max_active, len(act))
            max_running = max(max_running, len([p for p in act if (p.get("status") or {}).get(
                "phase") == "Running"]))
        return uids, max_active, max_running

    def wait_job(self, name, typ, timeout):
        def done():
            j = self.get_json("job", name) or {}
            return j if cond(j, typ).get("status") == "True" else None
        return wait_for(done, timeout, 1)

    def phase_jobs(self):
        t0 = time.time()
        ok = self.apply({"apiVersion": "v1", "kind": "List", "items": [
            job("batch5", 5, 2, "echo working; sleep 3"),
            job("fail", 1, 1, "echo failing; exit 1", backoff=2)]},
            "Job batch5 (completions 5, parallelism 2) and Job fail (backoffLimit 2, exit 1)")
        if not ok:
            return
        j = self.wait_job("batch5", "Complete", 180)
        took = time.time() - t0
        self.check("Job batch5: condition Complete within 180 s (%.1f s)" % took, j is not None,
                   lambda: out(kubectl("get", "job", "batch5", "-o", "yaml"))[-2500:])
        if j:
            self.timing("Job batch5 (5 x 3 s, parallelism 2) complete", took)
            st = j.get("status") or {}
            self.check("Job batch5 status: succeeded %s failed %s active %s" % (
                st.get("succeeded"), st.get("failed"), st.get("active")),
                st.get("succeeded") == 5 and not st.get("failed") and not st.get("active"),
                json.dumps(st))
        ps = self.pods("batch.kubernetes.io/job-name=batch5") or []
        phases = sorted((p.get("status") or {}).get("phase") for p in ps)
        self.check("Job batch5: exactly 5 pods, all Succeeded: %s" % phases,
                   phases == ["Succeeded"] * 5, self.debug)
        uids, max_active, max_running = self.job_pods_history("batch5")
        log("Job batch5 (watch): %d pods created, at most %d active and %d Running at once" % (
            len(uids), max_active, max_running))
        self.check("Job batch5: 5 pods created in all, never more than 2 active at once (max %d "
                   "active, %d Running, over %d pod events)" % (
                       max_active, max_running,
                       len(self.pod_events(lambda o: job_of(o) == "batch5"))),
                   len(uids) == 5 and 1 <= max_active <= 2)
        self.check("Job batch5 ran 2 pods at once at some point (parallelism 2): max %d" %
                   max_active, max_active == 2)

        j = self.wait_job("fail", "Failed", 180)
        self.check("Job fail: condition Failed within 180 s (%.1f s)" % (time.time() - t0),
                   j is not None, lambda: out(kubectl("get", "job", "fail", "-o", "yaml"))[-2500:])
        if j:
            c, st = cond(j, "Failed"), j.get("status") or {}
            self.check("Job fail: Failed reason %s, status.failed %s, active %s" % (
                c.get("reason"), st.get("failed"), st.get("active")),
                c.get("reason") == "BackoffLimitExceeded" and st.get("failed") == 3 and
                not st.get("active"), json.dumps(st))
            time.sleep(2)  # nothing more may come
        ps = self.pods("batch.kubernetes.io/job-name=fail") or []
        phases = sorted((p.get("status") or {}).get("phase") for p in ps)
        uids, _, _ = self.job_pods_history("fail")
        starts = sorted(ts(meta(p, "creationTimestamp")) or 0 for p in ps)
        log("Job fail: pods created at +%s s (back-off between them)" % [
            s - starts[0] for s in starts])
        self.check("Job fail: 3 pods (1 + backoffLimit 2), all Failed, no 4th created: %s, %d "
                   "seen by the watch" % (phases, len(uids)),
                   phases == ["Failed"] * 3 and len(uids) == 3, self.debug)

    def phase_daemonset(self):
        if not self.apply(daemonset(), "DaemonSet agent"):
            return
        t0 = time.time()

        def on_nodes(want):
            ps = [p for p in self.pods("app=agent") or [] if not meta(p, "deletionTimestamp")]
            nodes = sorted((p.get("spec") or {}).get("nodeName") or "-" for p in ps)
            return ps if nodes == want and all(is_ready(p) for p in ps) else None
        three = ["node1", "node2", "node3"]
        ps = wait_for(lambda: on_nodes(three), 120, 1)
        self.check("DaemonSet agent: one Ready pod on each of node1..3 (%.1f s)" % (
            time.time() - t0), bool(ps), self.debug)
        if ps:
            self.timing("DaemonSet agent: 3 pods Ready", time.time() - t0)
            aff = (ps[0].get("spec") or {}).get("affinity") or {}
            terms = ((aff.get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
                "nodeSelectorTerms") or []
            fields = [(f.get("key"), f.get("operator"), f.get("values"))
                      for t in terms for f in t.get("matchFields") or []]
            self.check("a DaemonSet pod is placed through nodeAffinity matchFields %s (its node %s)"
                       % (fields, ps[0]["spec"].get("nodeName")),
                       fields == [("metadata.name", "In", [ps[0]["spec"].get("nodeName")])],
                       json.dumps(aff))
        t1 = time.time()
        r = lab("join", timeout=400)
        print(r.stdout[-1500:] + r.stderr[-2500:], flush=True)
        self.check("lab.sh join: node4 Ready (%.1f s)" % (time.time() - t1), r.returncode == 0,
                   out(r)[-3000:])
        if r.returncode != 0:
            return
        self.timing("lab.sh join (node4 Ready)", time.time() - t1)
        t2 = time.time()
        ps = wait_for(lambda: on_nodes(three + ["node4"]), 120, 1)
        self.check("DaemonSet agent: a 4th pod, Ready on node4 (%.1f s after the join)" % (
            time.time() - t2), bool(ps), self.debug)
        if ps:
            self.timing("node4 joined -> its DaemonSet pod Ready", time.time() - t2)

        def status4():
            st = (self.get_json("ds", "agent") or {}).get("status") or {}
            return st if st.get("desiredNumberScheduled") == 4 and st.get(
                "numberReady") == 4 else None
        st = wait_for(status4, 30, 1) or (self.get_json("ds", "agent") or {}).get("status")
        self.check("DaemonSet status: desiredNumberScheduled %s currentNumberScheduled %s "
                   "numberReady %s" % ((st or {}).get("desiredNumberScheduled"),
                                       (st or {}).get("currentNumberScheduled"),
                                       (st or {}).get("numberReady")),
                   bool(st) and st.get("desiredNumberScheduled") == 4 and
                   st.get("currentNumberScheduled") == 4 and st.get("numberReady") == 4,
                   json.dumps(st))
        log(out(kubectl("get", "ds,pods", "-l", "app=agent", "-o", "wide")))

    def cron_jobs_seen(self):
        """{job name: last state} of every Job owned by the CronJob the watch saw (also the
        deleted ones), and the names it saw deleted."""
        seen, deleted = {}, []
        for e in self.watch.events("jobs", lambda o: any(
                r.get("kind") == "CronJob" and r.get("name") == CJ
                for r in meta(o, "ownerReferences") or [])):
            seen[meta(e["obj"], "name")] = e["obj"]
            if e["type"] == "DELETED":
                deleted.append(meta(e["obj"], "name"))
        return seen, deleted

    def phase_cronjob(self):
        if not self.cj_created:
            self.fatal("CronJob tick was created in setup")
        # The 3rd run is due 3 minute boundaries after creation at the latest, plus its run.
        limit = self.cj_created + 3 * 60 + 90 - time.time()
        log("waiting up to %.0f s for %d completed Jobs of %s" % (max(limit, 0), CJ_WANT, CJ))

        def completed():
            seen, _ = self.cron_jobs_seen()
            done = [n for n, j in seen.items() if cond(j, "Complete").get("status") == "True"]
            return done if len(done) >= CJ_WANT else None
        done = wait_for(completed, max(limit, 5), 1)
        t_done = time.time()
        seen, deleted = self.cron_jobs_seen()
        names = sorted(seen)
        log("CronJob %s: Jobs seen %s, completed %s, deleted %s" % (CJ, names, done, deleted))
        self.check("CronJob %s: %d of its Jobs completed within 3 min + 90 s of its creation "
                   "(%d seen)" % (CJ, CJ_WANT, len(names)), bool(done),
                   lambda: self.debug() + "\n" + out(kubectl("get", "cronjob", CJ, "-o", "yaml")))
        minutes = {}
        bad = []
        for n, j in seen.items():
            m = re.match(r"^%s-(\d+)$" % CJ, n)
            sched = ts((meta(j, "annotations") or {}).get(
                "batch.kubernetes.io/cronjob-scheduled-timestamp"))
            if not m or sched is None or int(m.group(1)) * 60 != sched:
                bad.append("%s (scheduled-timestamp %s)" % (n, sched))
                continue
            minutes.setdefault(int(m.group(1)), []).append(n)
            log("Job %s: scheduled %s, created %s, completed %s" % (
                n, time.strftime("%H:%M:%S", time.gmtime(sched)), meta(j, "creationTimestamp"),
                (j.get("status") or {}).get("completionTime")))
        self.check("every Job of %s is named %s-<scheduled minute since the epoch> (annotation "
                   "batch.kubernetes.io/cronjob-scheduled-timestamp): %s" % (CJ, CJ, names),
                   bool(names) and not bad, "\n".join(bad))
        twice = {m: ns for m, ns in minutes.items() if len(ns) > 1}
        self.check("never two Jobs for the same minute", not twice, json.dumps(twice))
        first = int(self.cj_created // 60) + 1
        last = int((t_done - 30) // 60)
        want = list(range(first, last + 1))
        self.check("one Job per minute: every minute from the first after the CronJob's creation "
                   "to now (-30 s) has its Job, no other: want %s, got %s" % (
                       want, sorted(minutes)), bool(want) and sorted(minutes)[:len(want)] == want
                   and set(minutes) <= set(range(first, last + 2)))

        def kept():
            lst = self.get_json("jobs") or {}
            ok = [meta(j, "name") for j in lst.get("items", []) if
                  re.match(r"^%s-\d+$" % CJ, meta(j, "name") or "") and
                  cond(j, "Complete").get("status") == "True"]
            return (sorted(ok),) if len(ok) <= CJ_KEEP else None
        t0 = time.time()
        left = (wait_for(kept, 30, 1) or (None,))[0]
        seen, deleted = self.cron_jobs_seen()
        complete = sorted(n for n, j in seen.items()
                          if cond(j, "Complete").get("status") == "True")
        self.check("history limit: at most %d successful Jobs kept after %d completed: %s "
                   "(%.1f s; deleted %s)" % (CJ_KEEP, len(complete), left, time.time() - t0,
                                             deleted),
                   left is not None and len(left) == CJ_KEEP and
                   left == sorted(complete, key=lambda n: int(n.split("-")[-1]))[-CJ_KEEP:] and
                   bool(deleted), lambda: out(kubectl("get", "jobs")))
        cj = self.get_json("cronjob", CJ) or {}
        st = cj.get("status") or {}
        latest = max(minutes) if minutes else None
        self.check("CronJob status.lastScheduleTime %s = the latest Job's minute %s; "
                   "lastSuccessfulTime %s" % (st.get("lastScheduleTime"), latest,
                                              st.get("lastSuccessfulTime")),
                   latest is not None and ts(st.get("lastScheduleTime")) == latest * 60 and
                   bool(st.get("lastSuccessfulTime")), json.dumps(st))
        log(out(kubectl("get", "cronjob,jobs", "-o", "wide")))

    def body(self):
        self.setup()
        self.phase("sts-create", self.phase_sts_create)
        self.phase("sts-delete-pod", self.phase_sts_delete_pod, needs_sts=True)
        self.phase("dns", self.phase_dns, needs_sts=True)
        self.phase("sts-scale", self.phase_sts_scale, needs_sts=True)
        self.phase("jobs", self.phase_jobs)
        self.phase("daemonset", self.phase_daemonset)
        self.phase("cronjob", self.phase_cronjob)
        if self.watch:
            self.watch.stop()
            if self.watch.errors:
                log("watcher errors (it re-watched): %s" % self.watch.errors[:5])

    def dump_logs(self):
        lablib.dump_logs(("node1/apiserver.log", "node1/controller-manager.log",
                          "node1/scheduler.log", "node1/kubelet.log", "node2/kubelet.log",
                          "node3/kubelet.log", "node4/kubelet.log"), lines=40)


def main():
    lablib.need_lab(("skiff-apiserver", "skiff-kubelet", "skiff-shim", "skiff",
                     "skiff-controller-manager", "skiff-netagent", "skiff-scheduler"))
    lablib.busybox_image()
    t = Test()
    try:
        lablib.run_lab_test(t, t.body, LIMIT, log,
                            nodes=("node1", "node2", "node3", "node4"))
    finally:
        if t.watch:
            t.watch.stop()
    if t.skipped and not t.failed:
        print("%d/%d checks passed; SKIPPED (not a pass: phases not run): %s" % (
            t.total, t.total, "; ".join(t.skipped)), flush=True)
        sys.exit(testlib.SKIP)
    t.finish()


if __name__ == "__main__":
    main()
