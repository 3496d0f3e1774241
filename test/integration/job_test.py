#!/usr/bin/env python3
"""The Job and TTL-after-finished controllers in skiff-controller-manager against a real
skiff-apiserver.

Loopback only, no root, no kubelet and no scheduler: the test plays the kubelet by writing pod
phases through pods/status. Fails at once when skiff-controller-manager does not run the `job`
controller, which /metrics tells.
Checks: the API server's Job defaults (generated selector batch.kubernetes.io/controller-uid and
the four template labels, parallelism/backoffLimit/completionMode/suspend) and validation
(restartPolicy Always refused with Kubernetes' message); a 3-completion, parallelism-2 Job gets
2 pods (generateName, labels, finalizer batch.kubernetes.io/job-tracking, controller
ownerReference), never more than 2 active, counts succeeded pods (finalizers removed), ends
Complete with completionTime; events SuccessfulCreate/Completed; an Indexed Job's pods carry the
completion index (annotation, label, env fieldRef, hostname); backoffLimit 0 and a failed pod =>
Failed/BackoffLimitExceeded; a suspended Job has no pods and a Suspended condition, resuming
creates them; ttlSecondsAfterFinished 0 deletes the finished Job (and the garbage collector its
pods)."""
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import MERGE  # noqa: E402

t = ctrl_lib.begin(300)
CM = testlib.need_bin("skiff-controller-manager")
NS = "job-test"
JOB_PATH = "/apis/batch/v1/namespaces/%s/jobs" % NS
POD_PATH = "/api/v1/namespaces/%s/pods" % NS
FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX = "batch.kubernetes.io/job-completion-index"
wait_for = functools.partial(ctrl_lib.wait_for, timeout=30)

srv = testlib.Server().start()
api = srv.client()


def get_job(name):
    r = api.get("%s/%s" % (JOB_PATH, name))
    return r.json if r.status == 200 else None


def pods_of(uid, active_only=True):
    r = api.get(POD_PATH)
    out = {}
    for p in (r.json or {}).get("items", []) if r.status == 200 else []:
        refs = [x for x in p["metadata"].get("ownerReferences") or [] if x.get("controller")]
        if not refs or refs[0].get("uid") != uid:
            continue
        if active_only and (p["metadata"].get("deletionTimestamp") or
                            p.get("status", {}).get("phase") in ("Succeeded", "Failed")):
            continue
        out[p["metadata"]["name"]] = p
    return out


def make_job(name, **spec):
    s = {"template": {"spec": {"restartPolicy": "Never",
                               "containers": [{"name": "c", "image": "busybox"}]}}}
    s.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS}, "spec": s}


def set_phase(name, phase):
    r = api.patch("%s/%s/status" % (POD_PATH, name), {"status": {"phase": phase}}, MERGE)
    t.check("pod %s -> %s through pods/status" % (name, phase), r.status == 200, r)


def condition(job, ctype):
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return c
    return None


port = testlib.free_port()
cm = ctrl_lib.Daemon(CM, srv, "controller-manager.log",
                     ["--leader-elect=false", "--port", str(port)], ident="controller-manager",
                     port=port)
try:
    metrics = wait_for("controller-manager /metrics", lambda: cm.get("/metrics")[0] == 200 and
                       cm.get("/metrics")[1])
    if not t.check("skiff-controller-manager runs the job controller",
                   metrics and 'name="job"' in metrics, metrics):
        cm.dump_log()
        t.finish()
    t.check("the ttl-after-finished controller runs too", 'name="ttl-after-finished"' in metrics,
            metrics)
    ctrl_lib.create_namespace(api, t, NS)

    # --- API defaults and validation
    bad = make_job("bad")
    del bad["spec"]["template"]["spec"]["restartPolicy"]
    r = api.post(JOB_PATH, bad)
    t.check("a Job with the default restartPolicy Always is refused (422, Kubernetes' message)",
            r.status == 422 and 'spec.template.spec.restartPolicy: Unsupported value: "Always": '
            'supported values: "OnFailure", "Never"' in (r.json or {}).get("message", ""), r)

    r = api.post(JOB_PATH, make_job("pi", completions=3, parallelism=2))
    t.check("create Job pi (completions 3, parallelism 2)", r.status == 201, r)
    job = r.json or {}
    uid = job.get("metadata", {}).get("uid")
    spec = job.get("spec", {})
    t.eq("generated selector", spec.get("selector"),
         {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    t.eq("generated template labels", spec.get("template", {}).get("metadata", {}).get("labels"),
         {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
          "controller-uid": uid, "job-name": "pi"})
    t.check("defaults: backoffLimit 6, completionMode NonIndexed, suspend false",
            spec.get("backoffLimit") == 6 and spec.get("completionMode") == "NonIndexed" and
            spec.get("suspend") is False, spec)

    # --- pods, parallelism, counting, Complete
    got = wait_for("2 pods of pi", lambda: len(pods_of(uid)) == 2 and pods_of(uid))
    t.eq("pi has 2 active pods", len(got or {}), 2)
    time.sleep(2)
    t.eq("still 2 (no over-creation)", len(pods_of(uid)), 2)
    for name, p in sorted((got or {}).items()):
        md = p["metadata"]
        t.check("pod %s: generateName pi-, job labels, tracking finalizer, controller ref" % name,
                md.get("generateName") == "pi-" and
                md.get("labels", {}).get("batch.kubernetes.io/job-name") == "pi" and
                FINALIZER in (md.get("finalizers") or []) and
                md["ownerReferences"][0] == {"apiVersion": "batch/v1", "kind": "Job",
                                             "name": "pi", "uid": uid, "controller": True,
                                             "blockOwnerDeletion": True}, p)
    most = 0
    for _ in range(3):
        cur = pods_of(uid)
        if not cur:
            wait_for("a pod of pi", lambda: pods_of(uid))
            cur = pods_of(uid)
        most = max(most, len(cur))
        if cur:
            set_phase(sorted(cur)[0], "Succeeded")
        wait_for("pi counts it", lambda: (get_job("pi") or {}).get("status", {})
                 .get("succeeded", 0) >= _ + 1)
        most = max(most, len(pods_of(uid)))
    t.check("never more than 2 active pods (max seen %d)" % most, most <= 2)
    done = wait_for("pi Complete", lambda: condition(get_job("pi"), "Complete") and get_job("pi"))
    st = (done or {}).get("status", {})
    t.check("pi Complete: succeeded 3, completionTime, uncountedTerminatedPods empty",
            st.get("succeeded") == 3 and st.get("completionTime") and
            st.get("uncountedTerminatedPods") == {}, st)
    finished = pods_of(uid, active_only=False)
    t.check("counted pods lost the tracking finalizer",
            all(FINALIZER not in (p["metadata"].get("finalizers") or [])
                for p in finished.values()), finished)
    # Events are posted in the background after the status write that completes the Job.
    def reasons():
        return [e.get("reason") for e in ctrl_lib.events_for(api, "pi", NS)]
    wait_for("Completed event", lambda: "Completed" in reasons())
    t.check("events SuccessfulCreate x3 and Completed", reasons().count("SuccessfulCreate") == 3
            and "Completed" in reasons(), reasons())

    # --- Indexed
    r = api.post(JOB_PATH, make_job("idx", completions=2, parallelism=2,
                                    completionMode="Indexed"))
    t.check("create Indexed Job idx", r.status == 201, r)
    iuid = (r.json or {}).get("metadata", {}).get("uid")
    got = wait_for("2 pods of idx", lambda: len(pods_of(iuid)) == 2 and pods_of(iuid)) or {}
    idx = sorted(p["metadata"].get("annotations", {}).get(INDEX, "?") for p in got.values())
    t.eq("one pod per index", idx, ["0", "1"])
    for name, p in sorted(got.items()):
        i = p["metadata"]["annotations"][INDEX]
        env = p["spec"]["containers"][0].get("env") or []
        t.check("pod %s: name idx-%s-*, label, hostname idx-%s, JOB_COMPLETION_INDEX fieldRef"
                % (name, i, i),
                name.startswith("idx-%s-" % i) and p["metadata"]["labels"].get(INDEX) == i and
                p["spec"].get("hostname") == "idx-" + i and
                any(e.get("name") == "JOB_COMPLETION_INDEX" and
                    e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") ==
                    "metadata.annotations['%s']" % INDEX for e in env), p)
        set_phase(name, "Succeeded")
    done = wait_for("idx Complete", lambda: condition(get_job("idx"), "Complete") and
                    get_job("idx"))
    t.eq("idx completedIndexes", (done or {}).get("status", {}).get("completedIndexes"), "0-1")

    # --- backoffLimit 0: one failure fails the Job
    r = api.post(JOB_PATH, make_job("fail", backoffLimit=0))
    t.check("create Job fail (backoffLimit 0)", r.status == 201, r)
    fuid = (r.json or {}).get("metadata", {}).get("uid")
    got = wait_for("a pod of fail", lambda: pods_of(fuid)) or {}
    for name in got:
        set_phase(name, "Failed")
    done = wait_for("fail Failed", lambda: condition(get_job("fail"), "Failed") and
                    get_job("fail"))
    c = condition(done, "Failed") or {}
    t.check("Failed, reason BackoffLimitExceeded, failed 1, no completionTime",
            c.get("reason") == "BackoffLimitExceeded" and
            done["status"].get("failed") == 1 and "completionTime" not in done["status"], done)
    time.sleep(1)
    t.eq("no new pod after the failure", len(pods_of(fuid)), 0)

    # --- suspend / resume
    r = api.post(JOB_PATH, make_job("sus", suspend=True))
    t.check("create suspended Job sus", r.status == 201, r)
    suid = (r.json or {}).get("metadata", {}).get("uid")
    got = wait_for("sus Suspended", lambda: condition(get_job("sus"), "Suspended") and
                   get_job("sus"))
    t.check("Suspended condition, no startTime, no pods",
            got and "startTime" not in got.get("status", {}) and not pods_of(suid), got)
    r = api.patch("%s/sus" % JOB_PATH, {"spec": {"suspend": False}}, MERGE)
    t.check("resume sus", r.status == 200, r)
    # The controller creates the pod, then writes status (startTime) in the same sync, as
    # Kubernetes' does: the pod can be seen a moment before startTime is.
    got = wait_for("a pod of sus", lambda: pods_of(suid))
    started = wait_for("sus startTime", lambda: (get_job("sus") or {}).get("status", {})
                       .get("startTime"))
    t.check("resumed: a pod, startTime set", got and started, get_job("sus"))

    # --- ttlSecondsAfterFinished 0: deleted once finished, its pods collected
    r = api.post(JOB_PATH, make_job("ttl", ttlSecondsAfterFinished=0))
    t.check("create Job ttl (ttlSecondsAfterFinished 0)", r.status == 201, r)
    tuid = (r.json or {}).get("metadata", {}).get("uid")
    got = wait_for("a pod of ttl", lambda: pods_of(tuid)) or {}
    for name in got:
        set_phase(name, "Succeeded")
    gone = wait_for("ttl deleted", lambda: get_job("ttl") is None)
    t.check("the finished Job ttl was deleted", gone)
    gone = wait_for("ttl's pods collected", lambda: not pods_of(tuid, active_only=False))
    t.check("its pods were garbage collected", gone, pods_of(tuid, active_only=False))
finally:
    if t.failed:
        cm.dump_log(60)
t.finish()
