"""DaemonSet controller against a real skiff-apiserver + skiff-controller-manager +
skiff-scheduler on loopback, no kubelet (ctrl_lib.Kubelets marks pods Running + Ready, and this
test confirms graceful deletions as a kubelet would). Not root. Nodes: n1, n2 plain; n3 tainted
dedicated=x:NoSchedule; n4 NotReady (not-ready NoSchedule + NoExecute taints); n5 cordoned.
Checks: pods on n1, n2, n5 only, bound by the scheduler through matchFields; labels,
tolerations, the ControllerRevision; status; a RollingUpdate to a new image (revision 2,
pod-template-generation 2); a deleted node's pod deleted; an untainted node gets a pod; events.

Lives in controllers/daemonset until the lead wires the controller into controllers/main.cc;
then move it to test/integration/daemonset_test.py (auto-registered; env SKIFF_BIN, SKIFF_SRC).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("SKIFF_SRC", "."), "test", "integration"))
import ctrl_lib  # noqa: E402
import testlib  # noqa: E402

t = ctrl_lib.begin(240)
CM = testlib.need_bin("skiff-controller-manager")
SCHED = testlib.need_bin("skiff-scheduler")
srv = testlib.Server(insecure=True).start()
api = srv.client()
DS = "/apis/apps/v1/namespaces/default/daemonsets"
PODS = "/api/v1/namespaces/default/pods"
CRS = "/apis/apps/v1/namespaces/default/controllerrevisions"

def create_node(name, labels=None, taints=None, ready="True"):
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
           "spec": {"taints": taints or []},
           "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                      "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": ready}]}}
    r = api.post("/api/v1/nodes", obj)
    t.check("create node " + name, r.status == 201, r)
    if r.status == 201 and not (r.json.get("status") or {}).get("allocatable"):
        r.json["status"] = obj["status"]
        api.put("/api/v1/nodes/%s/status" % name, r.json)

create_node("n1")
create_node("n2")
create_node("n3", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
create_node("n4", ready="False", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}, {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
create_node("n5", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
n5 = api.get("/api/v1/nodes/n5").json
n5["spec"]["unschedulable"] = True
t.check("cordon n5", api.put("/api/v1/nodes/n5", n5).status == 200)
cm = ctrl_lib.controller_manager(CM, srv, "--v", "2", "--node-monitor-grace-period", "10m")
sched = ctrl_lib.Daemon(SCHED, srv, "sched.log", ["--leader-elect=false", "--port", "0"])
kub = ctrl_lib.Kubelets(srv, PODS, 0.5)
kub.start()

ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
      "spec": {"selector": {"matchLabels": {"app": "agent"}},
               "template": {"metadata": {"labels": {"app": "agent"}},
                            "spec": {"containers": [{"name": "a", "image": "busybox:1"}]}}}}
r = api.post(DS, ds)
t.check("create daemonset", r.status == 201, r)

def pods():
    r = api.get(PODS)
    # Play the kubelet's part of a graceful deletion: confirm it at once.
    for p in (r.json["items"] if r.status == 200 else []):
        if p["metadata"].get("deletionTimestamp"):
            api.delete(PODS + "/" + p["metadata"]["name"], {"gracePeriodSeconds": 0})
    return [p for p in r.json["items"] if not p["metadata"].get("deletionTimestamp")] if r.status == 200 else []

def target(p):
    if p["spec"].get("nodeName"):
        return p["spec"]["nodeName"]
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return terms[0]["matchFields"][0]["values"][0]

got = ctrl_lib.wait_for("3 daemon pods", lambda: sorted(target(p) for p in pods()) == ["n1", "n2", "n5"], 30)
t.check("one pod per eligible node (n1, n2, cordoned n5; not the tainted n3 nor the not-ready n4)", got, sorted(target(p) for p in pods()))
bound = ctrl_lib.wait_for("n1/n2 pods bound", lambda: sorted(p["spec"].get("nodeName", "") for p in pods() if target(p) in ("n1", "n2", "n5")) == ["n1", "n2", "n5"], 30)
t.check("the scheduler binds the pods to their nodes by matchFields", bound, [p["spec"].get("nodeName") for p in pods()])
p0 = pods()[0]
t.check("pod labels", "controller-revision-hash" in p0["metadata"]["labels"] and p0["metadata"]["labels"].get("pod-template-generation") == "1", p0["metadata"]["labels"])
t.check("pod tolerations", len(p0["spec"].get("tolerations", [])) == 6, p0["spec"].get("tolerations"))
crs = api.get(CRS).json["items"]
t.check("one ControllerRevision, revision 1", len(crs) == 1 and crs[0]["revision"] == 1, crs)
if crs:
    t.check("revision name agent-<hash>", crs[0]["metadata"]["name"] == "agent-" + p0["metadata"]["labels"]["controller-revision-hash"], crs[0]["metadata"])
def status():
    return api.get(DS + "/agent").json.get("status", {})
st = ctrl_lib.wait_for("status 3/3", lambda: status().get("desiredNumberScheduled") == 3 and status().get("currentNumberScheduled") == 3 and status().get("numberReady") == 3 and status(), 30)
t.check("status desired/current/ready 3", st, status())


# Rolling update.
r = api.patch(DS + "/agent", {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "busybox:2"}]}}}}, ctrl_lib.MERGE)
t.check("update image", r.status == 200, r)
done = ctrl_lib.wait_for("rollout", lambda: len(pods()) == 3 and all(p["spec"]["containers"][0]["image"] == "busybox:2" for p in pods()) and status().get("updatedNumberScheduled") == 3 and status().get("numberAvailable") == 3, 60)
t.check("rolling update replaces every pod", done, [(p["metadata"]["name"], p["spec"]["containers"][0]["image"]) for p in pods()])
crs = api.get(CRS).json["items"]
t.check("two revisions, 1 and 2", sorted(c["revision"] for c in crs) == [1, 2], [(c["metadata"]["name"], c["revision"]) for c in crs])
t.check("generation label 2", all(p["metadata"]["labels"].get("pod-template-generation") == "2" for p in pods()), [p["metadata"]["labels"] for p in pods()])

# Node deleted -> its pod deleted; node untainted -> pod created.
r = api.delete("/api/v1/nodes/n2")
t.check("delete node n2", r.status in (200, 202), r)
gone = ctrl_lib.wait_for("n2 pod deleted", lambda: "n2" not in [target(p) for p in pods()], 30)
t.check("the deleted node's pod is deleted", gone, [target(p) for p in pods()])
n3 = api.get("/api/v1/nodes/n3").json
n3["spec"]["taints"] = []
r = api.put("/api/v1/nodes/n3", n3)
t.check("untaint n3", r.status == 200, r)
got = ctrl_lib.wait_for("n3 pod", lambda: "n3" in [target(p) for p in pods()], 30)
t.check("an untainted node gets a pod", got, [target(p) for p in pods()])
# Events are posted in the background, after the pod writes seen above.
ctrl_lib.wait_for("events", lambda: len(ctrl_lib.events_for(
    api, "agent", reason="SuccessfulCreate")) >= 3 and len(ctrl_lib.events_for(
    api, "agent", reason="SuccessfulDelete")) >= 3, 30)
evs = ctrl_lib.events_for(api, "agent", reason="SuccessfulCreate")
t.check("SuccessfulCreate events", len(evs) >= 3, len(evs))
evs = ctrl_lib.events_for(api, "agent", reason="SuccessfulDelete")
t.check("SuccessfulDelete events", len(evs) >= 3, len(evs))
kub.stop_ev.set()
cm.dump_log(20)
t.finish()
