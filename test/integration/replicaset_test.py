#!/usr/bin/env python3
"""The ReplicaSet controller in skiff-controller-manager against a real skiff-apiserver.

Loopback only, no root, no kubelet and no scheduler: pods stay Pending unless the test writes
their status (phase Running + Ready condition), which is how readiness is driven here.
Checks: a 3-replica ReplicaSet gets exactly 3 pods (generateName, template labels, controller
ownerReference) and no more; a deleted pod is replaced; status counts replicas, readyReplicas,
availableReplicas, fullyLabeledReplicas and observedGeneration; scaling 3 -> 5 -> 1 (PATCH
spec.replicas) deletes the unready pods and keeps a ready one; an orphan whose labels match is
adopted (controller ownerReference seen on a watch) and, being the unready surplus, deleted;
a relabelled pod is released (ownerReference removed) and replaced; with minReadySeconds the
ready pods become available only after it (the controller re-queues itself); events
SuccessfulCreate/SuccessfulDelete are posted."""
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
NS = "rs-test"
_, RS_PATH, POD_PATH = ctrl_lib.workload_paths(NS)
wait_for = functools.partial(ctrl_lib.wait_for, timeout=30)

srv = testlib.Server().start()
api = srv.client()


def get_rs(name):
    r = api.get("%s/%s" % (RS_PATH, name))
    return r.json if r.status == 200 else None


def pods():
    r = api.get(POD_PATH)
    return r.json["items"] if r.status == 200 else []


def controller_uid(pod):
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def owned(rs_uid):
    """Active pods whose controller is the ReplicaSet (name -> pod)."""
    return {p["metadata"]["name"]: p for p in pods()
            if controller_uid(p) == rs_uid and not p["metadata"].get("deletionTimestamp")}


def make_rs(name, replicas, min_ready=0):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "tier": "front"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def set_ready(name):
    r = api.patch("%s/%s/status" % (POD_PATH, name), ctrl_lib.ready_status(), MERGE)
    t.check("pod %s marked Ready through pods/status" % name, r.status == 200, r)


def scale(name, replicas):
    r = api.patch("%s/%s" % (RS_PATH, name), {"spec": {"replicas": replicas}}, MERGE)
    t.check("scale %s to %d (PATCH spec.replicas)" % (name, replicas), r.status == 200, r)


def status_is(name, **want):
    rs = get_rs(name) or {}
    st = rs.get("status") or {}
    return all(st.get(k, 0) == v for k, v in want.items())


def events_for(name):
    return [(e.get("reason"), e.get("message")) for e in ctrl_lib.events_for(api, name, NS)]


cm = ctrl_lib.controller_manager(CM, srv)
try:
    ctrl_lib.create_namespace(api, t, NS)

    # --- 3 replicas: exactly 3 owned pods
    r = api.post(RS_PATH, make_rs("web", 3))
    t.check("create ReplicaSet web (replicas 3)", r.status == 201, r)
    rs = r.json or {}
    uid = rs.get("metadata", {}).get("uid")
    got = wait_for("3 pods of web", lambda: len(owned(uid)) == 3 and owned(uid))
    t.eq("web has 3 pods", len(got or {}), 3)
    # Give a duplicate round of creates the chance to show up; there must be none.
    time.sleep(2)
    mine = owned(uid)
    t.eq("still exactly 3 pods (no over-creation)", len(mine), 3)
    t.eq("no other pods in the namespace", len(pods()), 3)
    for name, p in sorted(mine.items()):
        ref = p["metadata"]["ownerReferences"][0]
        t.check("pod %s: generateName web-, template labels, controller ownerReference" % name,
                name.startswith("web-") and p["metadata"].get("generateName") == "web-" and
                p["metadata"].get("labels") == {"app": "web", "tier": "front"} and
                ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                        "uid": uid, "controller": True, "blockOwnerDeletion": True}, p)
    ok = wait_for("web status 3/0", lambda: status_is("web", replicas=3, fullyLabeledReplicas=3,
                                                       readyReplicas=0, observedGeneration=1))
    t.check("status: replicas 3, fullyLabeledReplicas 3, readyReplicas 0, observedGeneration 1",
            ok, get_rs("web"))

    # --- a deleted pod is replaced
    victim = sorted(mine)[0]
    r = api.delete("%s/%s" % (POD_PATH, victim))
    t.check("delete pod " + victim, r.status == 200, r)
    got = wait_for("replacement of " + victim,
                   lambda: len(owned(uid)) == 3 and victim not in owned(uid) and owned(uid))
    t.check("deleted pod %s replaced: 3 pods again" % victim,
            got and victim not in got and len(got) == 3, sorted(owned(uid)))

    # --- readiness in status
    names = sorted(owned(uid))
    ready = names[:2]
    for n in ready:
        set_ready(n)
    ok = wait_for("web ready 2", lambda: status_is("web", replicas=3, readyReplicas=2,
                                                    availableReplicas=2))
    t.check("status: readyReplicas 2, availableReplicas 2 after two Ready conditions", ok,
            get_rs("web"))

    # --- scale 3 -> 5 -> 1: the unready pods go first
    scale("web", 5)
    got = wait_for("5 pods", lambda: len(owned(uid)) == 5 and owned(uid))
    t.eq("scaled up to 5 pods", len(got or {}), 5)
    gen = (get_rs("web") or {}).get("metadata", {}).get("generation")
    ok = wait_for("web status 5", lambda: status_is("web", replicas=5, observedGeneration=gen))
    t.check("status: replicas 5, observedGeneration %s (the scaled generation)" % gen,
            ok and gen == 2, get_rs("web"))
    scale("web", 1)
    got = wait_for("1 pod", lambda: len(owned(uid)) == 1 and owned(uid))
    t.eq("scaled down to 1 pod", len(got or {}), 1)
    survivor = sorted(got or {"?": None})[0]
    t.check("the survivor %s is one of the Ready pods %s" % (survivor, ready), survivor in ready,
            sorted(owned(uid)))
    t.eq("no pods left over in the namespace", len(pods()), 1)
    ok = wait_for("web status 1", lambda: status_is("web", replicas=1, readyReplicas=1))
    t.check("status: replicas 1, readyReplicas 1", ok, get_rs("web"))

    # --- an orphan with matching labels: adopted, then deleted as the unready surplus
    w = testlib.Watch(srv, POD_PATH + "?watch=true&resourceVersion=%s" %
                      api.get(POD_PATH).json["metadata"]["resourceVersion"])
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    r = api.post(POD_PATH, orphan)
    t.check("create orphan pod with labels app=web", r.status == 201, r)
    adopted = deleted = False
    end = time.time() + 30
    while time.time() < end and not (adopted and deleted):
        try:
            ev = w.next_event(timeout=max(0.1, end - time.time()))
        except TimeoutError:
            break
        if ev is None:
            break
        obj = ev.get("object") or {}
        if obj.get("metadata", {}).get("name") != "orphan":
            continue
        if controller_uid(obj) == uid:
            adopted = True
        if ev.get("type") == "DELETED":
            deleted = True
    w.close()
    t.check("orphan adopted (controller ownerReference to web seen on the watch)", adopted)
    t.check("orphan deleted as the surplus (it is not ready, the other pod is)", deleted)
    got = owned(uid)
    t.check("web has 1 pod: %s" % survivor, sorted(got) == [survivor], sorted(got))
    # Events are posted in the background: wait for them.
    wait_for("events", lambda: ("SuccessfulDelete", "Deleted pod: orphan") in events_for("web"))
    ev = events_for("web")
    t.check("event SuccessfulDelete: Deleted pod: orphan",
            ("SuccessfulDelete", "Deleted pod: orphan") in ev, ev)
    t.check("events SuccessfulCreate posted",
            any(r == "SuccessfulCreate" and m.startswith("Created pod: web-") for r, m in ev), ev)

    # --- a relabelled pod is released and replaced
    r = api.patch("%s/%s" % (POD_PATH, survivor), {"metadata": {"labels": {"app": "moved"}}},
                  MERGE)
    t.check("relabel %s app=moved" % survivor, r.status == 200, r)

    def released():
        r = api.get("%s/%s" % (POD_PATH, survivor))
        return r.status == 200 and not (r.json["metadata"].get("ownerReferences") or [])
    t.check("%s released (ownerReferences removed)" % survivor, wait_for("release", released),
            api.get("%s/%s" % (POD_PATH, survivor)))
    got = wait_for("replacement", lambda: len(owned(uid)) == 1 and survivor not in owned(uid)
                   and owned(uid))
    t.check("a new pod replaces the released one", got and survivor not in got, sorted(owned(uid)))
    t.check("the released pod still exists", api.get("%s/%s" % (POD_PATH, survivor)).status == 200)
    ok = wait_for("web status after release", lambda: status_is("web", replicas=1,
                                                                readyReplicas=0))
    t.check("status: replicas 1, readyReplicas 0 (the new pod is not ready)", ok, get_rs("web"))

    # --- minReadySeconds: available only after it
    # 20 s (was 8): "not yet available" is read right after the pods turn Ready, and the status
    # write that shows them Ready must come before minReadySeconds run out, also on a loaded
    # machine.
    r = api.post(RS_PATH, make_rs("slow", 2, min_ready=20))
    t.check("create ReplicaSet slow (replicas 2, minReadySeconds 20)", r.status == 201, r)
    suid = (r.json or {}).get("metadata", {}).get("uid")
    got = wait_for("2 pods of slow", lambda: len(owned(suid)) == 2 and owned(suid))
    t.eq("slow has 2 pods", len(got or {}), 2)
    for n in sorted(got or {}):
        set_ready(n)
    ok = wait_for("slow ready 2", lambda: status_is("slow", readyReplicas=2))
    st = (get_rs("slow") or {}).get("status", {})
    t.check("status: readyReplicas 2, availableReplicas 0 right after Ready (minReadySeconds 20)",
            ok and st.get("availableReplicas", 0) == 0, st)
    ok = wait_for("slow available 2", lambda: status_is("slow", availableReplicas=2), timeout=60)
    t.check("status: availableReplicas 2 once the pods have been ready for 20 s", ok,
            get_rs("slow"))
except SystemExit:
    raise
except Exception as e:  # a harness error must fail the test, with the logs
    t.check("no exception", False, repr(e))
if t.failed:
    cm.dump_log()
t.finish()
