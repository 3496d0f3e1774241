#!/usr/bin/env python3
"""Jobs whose pods really run: skiff-apiserver + skiff-kubelet (kubelet_lib's netns cluster) +
skiff-controller-manager. The Job templates name the node (spec.nodeName), so no scheduler is
needed. Root only (77 otherwise); fails when skiff-controller-manager does not run the job
controller (its /metrics has no name="job").

Checks: an Indexed Job's containers see JOB_COMPLETION_INDEX (resolved by the kubelet from the
batch.kubernetes.io/job-completion-index annotation) and the Job completes with
completedIndexes 0-1; restartPolicy OnFailure with a failing container: the kubelet restarts it,
restarts reach backoffLimit 2 => Failed/BackoffLimitExceeded and the pod is deleted;
restartPolicy Never with backoffLimit 1: two failed pods, the second created at least 10 s after
the first failed (the pod failure back-off), then Failed."""
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402
import testlib  # noqa: E402

t = kl.Test("job-kubelet", limit=420)
CM = testlib.need_bin("skiff-controller-manager")
JOBS = "/apis/batch/v1/namespaces/default/jobs"
INDEX = "batch.kubernetes.io/job-completion-index"


def job(name, command, restart="Never", **spec):
    s = {"template": {"spec": {"restartPolicy": restart, "nodeName": kl.NODE,
                               "terminationGracePeriodSeconds": 2,
                               "containers": [kl.ctr("c", ["sh", "-c", command])]}}}
    s.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"}, "spec": s}


def condition(j, ctype):
    for c in ((j or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return c
    return None


def pods_of(c, uid):
    return [p for p in c.list_pods()
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]


with t.cluster() as c:
    api = c.client()
    port = testlib.free_port()
    c.spawn([CM, "--kubeconfig", c.api.kubeconfig, "--leader-elect=false",
             "--allocate-node-cidrs=false", "--port", str(port)], "controller-manager.log")

    def metrics():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None
    m = c.wait_for(metrics, 30, "controller-manager /metrics")
    if not m or 'name="job"' not in m:
        t.fatal("skiff-controller-manager runs the job controller", m)

    def get(name):
        r = api.get("%s/%s" % (JOBS, name))
        return r.json if r.status == 200 else None

    # --- Indexed: the index reaches the container
    r = api.post(JOBS, job("idx", 'echo "index=$JOB_COMPLETION_INDEX"; '
                           'test -n "$JOB_COMPLETION_INDEX"', completions=2, parallelism=2,
                           completionMode="Indexed"))
    t.check("create Indexed Job idx", r.status == 201, r)
    uid = (r.json or {}).get("metadata", {}).get("uid")
    done = c.wait_for(lambda: condition(get("idx"), "Complete") and get("idx"), 120,
                      "idx Complete")
    t.check("idx Complete, completedIndexes 0-1, succeeded 2",
            done and done["status"].get("completedIndexes") == "0-1" and
            done["status"].get("succeeded") == 2, done or get("idx"))
    for p in pods_of(c, uid):
        ix = p["metadata"].get("annotations", {}).get(INDEX)
        out = c.kubectl(["logs", p["metadata"]["name"]])
        t.check("pod %s (index %s) printed index=%s" % (p["metadata"]["name"], ix, ix),
                out.returncode == 0 and out.stdout.strip() == "index=%s" % ix,
                out.stdout + out.stderr)

    # --- OnFailure: restarts count against backoffLimit
    r = api.post(JOBS, job("onf", "exit 1", restart="OnFailure", backoffLimit=2))
    t.check("create Job onf (OnFailure, exit 1, backoffLimit 2)", r.status == 201, r)
    uid = (r.json or {}).get("metadata", {}).get("uid")
    done = c.wait_for(lambda: condition(get("onf"), "Failed") and get("onf"), 150, "onf Failed")
    cond = condition(done, "Failed") or {}
    t.check("onf Failed: BackoffLimitExceeded", cond.get("reason") == "BackoffLimitExceeded",
            done or get("onf"))
    gone = c.wait_for(lambda: not [p for p in pods_of(c, uid)
                                   if p.get("status", {}).get("phase") not in
                                   ("Succeeded", "Failed")] or None, 60, "onf pods gone")
    t.check("onf's restarting pod was deleted", gone, pods_of(c, uid))

    # --- Never: failed pods, back-off, Failed
    r = api.post(JOBS, job("nev", "exit 3", backoffLimit=1))
    t.check("create Job nev (Never, exit 3, backoffLimit 1)", r.status == 201, r)
    uid = (r.json or {}).get("metadata", {}).get("uid")
    done = c.wait_for(lambda: condition(get("nev"), "Failed") and get("nev"), 150, "nev Failed")
    t.check("nev Failed: BackoffLimitExceeded, failed 2",
            (condition(done, "Failed") or {}).get("reason") == "BackoffLimitExceeded" and
            done["status"].get("failed") == 2, done or get("nev"))
    pods = sorted(pods_of(c, uid), key=lambda p: p["metadata"]["creationTimestamp"])
    t.eq("nev ran 2 pods", len(pods), 2)
    if len(pods) == 2:
        first_end = None
        for cs in pods[0].get("status", {}).get("containerStatuses") or []:
            first_end = (cs.get("state", {}).get("terminated") or {}).get("finishedAt")
        second = pods[1]["metadata"]["creationTimestamp"]
        t.check("the replacement came >= 10 s after the first pod failed (%s -> %s)" %
                (first_end, second), first_end and
                time.mktime(time.strptime(second, "%Y-%m-%dT%H:%M:%SZ")) -
                time.mktime(time.strptime(first_end, "%Y-%m-%dT%H:%M:%SZ")) >= 10)
t.finish()
