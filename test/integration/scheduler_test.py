#!/usr/bin/env python3
"""skiff-scheduler against a real skiff-apiserver, with fake Nodes (no kubelets).

One skiff-apiserver on 127.0.0.1 (--insecure-listen), Nodes created through the API with status
Ready and allocatable, two schedulers with leader election (short periods). Checks: one leads,
the standby binds nothing; nodeSelector, taints/tolerations and host ports decide the node;
insufficient cpu => PodScheduled=False (Unschedulable, kube-scheduler's message) and a
FailedScheduling event, then a new Node => the pod is bound and a Scheduled event posted; 6
pods of one owner on 3 equal nodes => 2 each; kill -9 of the leader => the standby takes over
and binds; SIGTERM => exit 0 and the Lease released. Loopback only; no root needed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import wait_for  # noqa: E402

t = ctrl_lib.begin(300)
SCHED = testlib.need_bin("skiff-scheduler")
PODS = "/api/v1/namespaces/default/pods"


def start_scheduler(srv, ident):
    """One elected skiff-scheduler (--v 2: its binding decisions in the log)."""
    return ctrl_lib.elected(SCHED, srv, ident, "sched-%s.log" % ident, "--v", "2")


srv = testlib.Server(insecure=True).start()
api = srv.client()


def lease_holder():
    return ctrl_lib.lease_holder(api, "skiff-scheduler")


def create_node(name, cpu="2", labels=None, taints=None, ready="True"):
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": labels or {}},
           "spec": {"taints": taints or []},
           "status": {"capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                      "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": ready}]}}
    r = api.post("/api/v1/nodes", obj)
    t.check("create node %s" % name, r.status == 201, r)
    if r.status == 201 and not (r.json.get("status") or {}).get("allocatable"):
        # Some servers drop status on create: set it through the status subresource.
        r.json["status"] = obj["status"]
        r2 = api.put("/api/v1/nodes/%s/status" % name, r.json)
        t.check("set status of node %s" % name, r2.status == 200, r2)


def create_pod(name, cpu=None, selector=None, tolerations=None, owner=None, host_port=None):
    c = {"name": "c", "image": "busybox:1.35", "command": ["sleep", "3600"]}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    if host_port:
        c["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    spec = {"containers": [c]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    meta = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": "rs", "uid": owner, "controller": True}]
    r = api.post(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    t.check("create pod %s" % name, r.status == 201, r)


def pod(name):
    r = api.get(PODS + "/" + name)
    return r.json if r.status == 200 else {}


def node_of(name):
    return (pod(name).get("spec") or {}).get("nodeName", "")


def wait_bound(name, timeout=20):
    return wait_for("pod %s bound" % name, lambda: node_of(name), timeout=timeout)


def events(name, reason):
    return ctrl_lib.events_for(api, name, reason=reason)


def pod_scheduled_condition(name):
    for c in (pod(name).get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return c
    return {}


a = start_scheduler(srv, "sched-a")
# The second replica starts once the first leads, so the roles are known.
holder = wait_for("sched-a leads", lambda: lease_holder() == "sched-a" and lease_holder())
t.eq("sched-a holds the Lease", holder, "sched-a")
b = start_scheduler(srv, "sched-b")

try:
    wait_for("leader metric", lambda: a.metric("leader_election_master_status") == 1)
    t.eq("/healthz", a.get("/healthz"), (200, "ok"))
    t.eq("leader reports leader_election_master_status 1",
         a.metric("leader_election_master_status"), 1)
    wait_for("standby's /metrics", lambda: b.metric("leader_election_master_status") is not None)
    t.eq("standby reports leader_election_master_status 0",
         b.metric("leader_election_master_status"), 0)

    # --- nodes: n1 zone=a; n2 zone=c tainted; n3 zone=b with 1 cpu; nr not ready
    taint = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    create_node("n1", labels={"zone": "a"})
    create_node("n2", labels={"zone": "c"}, taints=taint)
    create_node("n3", cpu="1", labels={"zone": "b"})

    # --- nodeSelector
    create_pod("sel-a", selector={"zone": "a"})
    t.eq("pod with nodeSelector zone=a is bound to n1", wait_bound("sel-a"), "n1")
    sched_ev = wait_for("Scheduled event", lambda: events("sel-a", "Scheduled"))
    t.check("Scheduled event for sel-a says where",
            any(e.get("message") == "Successfully assigned default/sel-a to n1" and
                e.get("source", {}).get("component") == "default-scheduler"
                for e in sched_ev), sched_ev)
    t.check("the Scheduled event comes from the leader (sched-a)",
            all(e.get("reportingInstance") == "sched-a" for e in sched_ev), sched_ev)

    # --- taints and tolerations
    create_pod("tol", selector={"zone": "c"},
               tolerations=[{"key": "dedicated", "operator": "Equal", "value": "x",
                             "effect": "NoSchedule"}])
    t.eq("pod tolerating dedicated=x:NoSchedule is bound to the tainted n2", wait_bound("tol"),
         "n2")
    create_pod("notol", selector={"zone": "c"})
    cond = wait_for("PodScheduled=False on notol",
                    lambda: pod_scheduled_condition("notol").get("status") == "False" and
                    pod_scheduled_condition("notol"))
    t.eq("pod not tolerating the taint: message",
         (cond or {}).get("message"),
         "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, "
         "2 node(s) didn't match Pod's node affinity/selector.")
    t.eq("pod not tolerating the taint stays unbound", node_of("notol"), "")

    # --- insufficient cpu, then a new node
    create_pod("big", cpu="1500m", selector={"zone": "b"})
    cond = wait_for("PodScheduled=False on big",
                    lambda: pod_scheduled_condition("big").get("status") == "False" and
                    pod_scheduled_condition("big"))
    want = ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node "
            "affinity/selector, 1 node(s) had untolerated taint {dedicated: x}.")
    t.eq("big: PodScheduled reason", (cond or {}).get("reason"), "Unschedulable")
    t.eq("big: PodScheduled message (kube-scheduler's)", (cond or {}).get("message"), want)
    fs = wait_for("FailedScheduling event", lambda: events("big", "FailedScheduling"))
    t.check("FailedScheduling Warning event with the same message",
            any(e.get("type") == "Warning" and e.get("message") == want for e in fs), fs)
    create_node("n4", cpu="4", labels={"zone": "b"})
    t.eq("big is bound to the new node n4", wait_bound("big", timeout=30), "n4")
    t.check("Scheduled event for big",
            wait_for("Scheduled event for big", lambda: events("big", "Scheduled")))
    cond = wait_for("PodScheduled=True on big",
                    lambda: pod_scheduled_condition("big").get("status") == "True" and
                    pod_scheduled_condition("big"))
    t.check("big: PodScheduled=True once bound, reason and message cleared",
            cond and "reason" not in cond and "message" not in cond, pod(
                "big").get("status"))

    # --- a node that is not Ready is never chosen
    create_node("nr", cpu="8", labels={"zone": "nr"}, ready="False")
    create_pod("on-nr", selector={"zone": "nr"})
    # The pod may reach the scheduler before the node does (two watches): its first attempt then
    # does not know nr; the node's arrival retries it, as on Kubernetes.
    def counts_nr():
        c = pod_scheduled_condition("on-nr")
        return c if c.get("status") == "False" and "were not ready" in c.get("message", "") \
            else None
    cond = wait_for("PodScheduled=False on on-nr, counting nr", counts_nr)
    t.check("not-ready node refused",
            "1 node(s) were not ready" in (cond or {}).get("message", ""),
            pod_scheduled_condition("on-nr"))
    t.check("on-nr stays unbound", not node_of("on-nr"), pod("on-nr").get("spec"))

    # --- host ports
    create_pod("hp1", selector={"zone": "a"}, host_port=8080)
    t.eq("hp1 (hostPort 8080) bound to n1", wait_bound("hp1"), "n1")
    create_pod("hp2", selector={"zone": "a"}, host_port=8080)
    cond = wait_for("PodScheduled=False on hp2",
                    lambda: pod_scheduled_condition("hp2").get("status") == "False" and
                    pod_scheduled_condition("hp2"))
    t.check("hp2: host port taken on n1",
            "1 node(s) didn't have free ports for the requested pod ports" in
            (cond or {}).get("message", ""), cond)
    # Deleting hp1 frees the port: hp2 is retried and bound.
    r = api.delete(PODS + "/hp1", {"gracePeriodSeconds": 0})
    t.check("delete hp1", r.status in (200, 202), r)
    wait_for("hp1 gone", lambda: api.get(PODS + "/hp1").status == 404)
    t.eq("hp2 bound to n1 once hp1 is gone", wait_bound("hp2", timeout=30), "n1")

    # --- spreading: 6 pods of one owner on 3 equal nodes => 2 each
    for n in ("s1", "s2", "s3"):
        create_node(n, cpu="8", labels={"zone": "spread"})
    for i in range(6):
        create_pod("spread-%d" % i, cpu="100m", selector={"zone": "spread"}, owner="rs-uid-1")
    placed = [wait_bound("spread-%d" % i) for i in range(6)]
    counts = {n: placed.count(n) for n in ("s1", "s2", "s3")}
    t.eq("6 pods of one owner spread 2 per node", counts, {"s1": 2, "s2": 2, "s3": 2})

    # --- only the leader binds
    t.eq("standby sched-b bound nothing",
         b.metric('scheduler_schedule_attempts_total{result="scheduled"}'), 0)
    # The counter may be bumped a moment after the binding it counts is visible.
    wait_for("leader's scheduled count", lambda: (a.metric(
        'scheduler_schedule_attempts_total{result="scheduled"}') or 0) >= 11)
    scheduled = a.metric('scheduler_schedule_attempts_total{result="scheduled"}')
    t.check("leader counted its bindings (%s)" % scheduled, (scheduled or 0) >= 11)
    code, metrics = a.get("/metrics")
    t.check("/metrics has the e2e latency histogram and pending pods",
            "scheduler_pod_scheduling_duration_seconds_count" in metrics and
            'scheduler_pending_pods{queue="unschedulable"}' in metrics, metrics)

    # --- kill -9 of the leader: the standby takes over
    a.kill9()
    testlib.log("killed sched-a")
    holder = wait_for("sched-b leads", lambda: lease_holder() == "sched-b" and lease_holder(),
                      timeout=60)
    t.eq("sched-b took the Lease after kill -9 of sched-a", holder, "sched-b")
    create_pod("after", selector={"zone": "a"})
    t.eq("pod created after the takeover is bound by sched-b", wait_bound("after", timeout=60), "n1")
    ev = wait_for("Scheduled event for after", lambda: events("after", "Scheduled"))
    t.check("its Scheduled event comes from sched-b",
            ev and all(e.get("reportingInstance") == "sched-b" for e in ev), ev)
    t.eq("pods still pending: notol and on-nr",
         sorted(p["metadata"]["name"] for p in api.get(PODS).json["items"]
                if not (p.get("spec") or {}).get("nodeName")), ["notol", "on-nr"])

    # --- SIGTERM: exit 0, Lease released
    b.proc.terminate()
    rc = b.proc.wait(timeout=20)
    t.eq("sched-b exits 0 on SIGTERM", rc, 0)
    t.eq("the Lease is released", lease_holder(), "")
except SystemExit:
    raise
except Exception as e:  # noqa: BLE001
    t.check("no exception", False, repr(e))
finally:
    if t.failed:
        a.dump_log(40)
        b.dump_log(40)
        srv.dump_log()
t.finish()
