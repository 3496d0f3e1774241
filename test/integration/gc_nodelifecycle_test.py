#!/usr/bin/env python3
"""skiff-controller-manager: garbage collector, namespace deletion, node lifecycle.

One skiff-apiserver on 127.0.0.1 and one controller-manager (--leader-elect=false,
--node-monitor-grace-period 4s, --pod-eviction-timeout 6s, --node-monitor-period 1s). No kubelet:
the test plays it (a Node with a Lease it renews, pods bound to that Node whose status it writes).

- GC background: ConfigMaps owned by a ConfigMap; the owner deleted => a dependent with no other
  owner is deleted, one with a second (live) owner only loses the dangling reference; a
  dependent of a uid that never existed is deleted; one with a live owner stays.
- GC foreground: DELETE propagationPolicy=Foreground => the owner carries deletionTimestamp and
  the finalizer foregroundDeletion; the collector deletes the dependents (a chain too), the owner
  stays while a blocking dependent is held by another finalizer, and goes once it is released.
- GC orphan: DELETE propagationPolicy=Orphan => the owner goes, its dependents stay without the
  reference.
- Namespace: DELETE => Terminating, new content refused (403, Kubernetes' message), its contents
  deleted; a finalizer-held object keeps it Terminating; released => the namespace is gone.
- Node lifecycle: while the Lease is renewed nothing changes; when it stops, the Node gets
  Ready=Unknown (NodeStatusUnknown, "Kubelet stopped posting node status.") and the unreachable
  NoSchedule/NoExecute taints, its pods Ready=False (ContainersReady unchanged), then after the
  eviction timeout its pod is deleted (deletionTimestamp: bound pods end gracefully) while a pod
  tolerating the taint for an hour stays; the Lease renewed again => the taints are removed.
Loopback only; no root needed."""
import datetime
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import MERGE, wait_for  # noqa: E402

t = ctrl_lib.begin(300)
CM = testlib.need_bin("skiff-controller-manager")

srv = testlib.Server().start()
api = srv.client()
cm = ctrl_lib.controller_manager(CM, srv, "--node-monitor-grace-period", "4s",
                                 "--pod-eviction-timeout", "6s", "--node-monitor-period", "1s",
                                 log_name="cm.log")

CMS = "/api/v1/namespaces/default/configmaps"


def get(path):
    r = api.get(path)
    return r.json if r.status == 200 else None


def make_cm(name, owners=(), ns="default", finalizers=None):
    meta = {"name": name}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = finalizers
    r = api.post("/api/v1/namespaces/%s/configmaps" % ns,
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})
    t.check("create configmap %s/%s" % (ns, name), r.status == 201, r)
    return r.json or {}


def ref(obj, block=False):
    r = {"apiVersion": "v1", "kind": "ConfigMap", "name": obj["metadata"]["name"],
         "uid": obj["metadata"]["uid"]}
    if block:
        r["blockOwnerDeletion"] = True
    return r


def gone(path):
    return api.get(path).status == 404


def refs_of(path):
    o = get(path)
    return None if o is None else o["metadata"].get("ownerReferences", [])


# ---- GC background.
owner = make_cm("owner")
keeper = make_cm("keeper")
make_cm("only-child", [ref(owner)])
make_cm("two-parents", [ref(owner), ref(keeper)])
make_cm("of-ghost", [{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost",
                      "uid": "00000000-0000-0000-0000-00000000dead"}])
make_cm("of-keeper", [ref(keeper)])
t.check("a dependent of a uid that never existed is deleted",
        wait_for("of-ghost gone", lambda: gone(CMS + "/of-ghost")))
r = api.delete(CMS + "/owner")
t.check("delete the owner (background)", r.status == 200, r)
t.check("its only-child dependent is deleted",
        wait_for("only-child gone", lambda: gone(CMS + "/only-child")))
t.check("the dependent with a second owner only loses the dangling reference",
        wait_for("two-parents refs", lambda: refs_of(CMS + "/two-parents") == [ref(keeper)]),
        get(CMS + "/two-parents"))
t.check("a dependent of a live owner stays", refs_of(CMS + "/of-keeper") == [ref(keeper)])

# ---- GC foreground.
fg = make_cm("fg")
mid = make_cm("fg-mid", [ref(fg, block=True)])
make_cm("fg-plain", [ref(fg)])
make_cm("fg-leaf", [ref(mid, block=True)], finalizers=["example.com/hold"])
r = api.delete(CMS + "/fg", {"propagationPolicy": "Foreground"})
t.check("DELETE propagationPolicy=Foreground answers the marked owner",
        r.status == 200 and (r.json or {}).get("metadata", {}).get("deletionTimestamp") and
        "foregroundDeletion" in r.json["metadata"].get("finalizers", []), r)
t.check("the non-blocking dependent is deleted",
        wait_for("fg-plain gone", lambda: gone(CMS + "/fg-plain")))
t.check("the chain's middle is deleted in the foreground too (held by its held leaf)",
        wait_for("fg-mid foreground", lambda: "foregroundDeletion" in
                 ((get(CMS + "/fg-mid") or {}).get("metadata", {}).get("finalizers", []))),
        get(CMS + "/fg-mid"))
t.check("the leaf is marked for deletion",
        wait_for("fg-leaf marked", lambda: (get(CMS + "/fg-leaf") or {}).get("metadata", {})
                 .get("deletionTimestamp")), get(CMS + "/fg-leaf"))
fgo = get(CMS + "/fg")
t.check("the owner waits (deletionTimestamp, foregroundDeletion) while a blocking dependent "
        "exists", fgo is not None and "foregroundDeletion" in fgo["metadata"].get("finalizers", []),
        fgo)
r = api.patch(CMS + "/fg-leaf", {"metadata": {"finalizers": None}}, MERGE)
t.check("release the leaf's finalizer", r.status == 200, r)
t.check("then the middle and the owner go",
        wait_for("fg gone", lambda: gone(CMS + "/fg-mid") and gone(CMS + "/fg")),
        [get(CMS + "/fg-mid"), get(CMS + "/fg")])

# ---- GC orphan.
orph = make_cm("orph")
make_cm("orph-a", [ref(orph, block=True)])
make_cm("orph-b", [ref(orph), ref(keeper)])
r = api.delete(CMS + "/orph?propagationPolicy=Orphan")
t.check("DELETE propagationPolicy=Orphan", r.status == 200, r)
t.check("the owner goes", wait_for("orph gone", lambda: gone(CMS + "/orph")))
t.eq("its dependent stays without the reference", refs_of(CMS + "/orph-a"), [])
t.eq("a dependent with another owner keeps that one", refs_of(CMS + "/orph-b"), [ref(keeper)])

# ---- Namespace deletion.
ctrl_lib.create_namespace(api, t, "doomed")
d_owner = make_cm("owner", ns="doomed")
make_cm("dep", [ref(d_owner)], ns="doomed")
make_cm("held", ns="doomed", finalizers=["example.com/hold"])
r = api.post("/api/v1/namespaces/doomed/secrets",
             {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"a": "b"}})
t.check("create a secret in doomed", r.status == 201, r)
r = api.post("/api/v1/namespaces/doomed/pods",
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
t.check("create a pod in doomed", r.status == 201, r)
r = api.delete("/api/v1/namespaces/doomed")
t.check("DELETE namespace doomed => Terminating",
        r.status == 200 and (r.json or {}).get("status", {}).get("phase") == "Terminating", r)
r = api.post("/api/v1/namespaces/doomed/configmaps",
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
t.check("creating in a terminating namespace is refused (403)",
        r.status == 403 and (r.json or {}).get("message") ==
        "unable to create new content in namespace doomed because it is being terminated", r)
t.check("its contents are deleted",
        wait_for("doomed emptied", lambda: all(
            gone(p) for p in ["/api/v1/namespaces/doomed/configmaps/owner",
                              "/api/v1/namespaces/doomed/configmaps/dep",
                              "/api/v1/namespaces/doomed/secrets/s",
                              "/api/v1/namespaces/doomed/pods/p"])))
ns = get("/api/v1/namespaces/doomed")
t.check("a finalizer-held object keeps it Terminating",
        ns is not None and ns["status"]["phase"] == "Terminating", ns)
r = api.patch("/api/v1/namespaces/doomed/configmaps/held", {"metadata": {"finalizers": []}},
              MERGE)
t.check("release the held object", r.status == 200, r)
t.check("the namespace is gone",
        wait_for("doomed gone", lambda: gone("/api/v1/namespaces/doomed")))

# ---- Node lifecycle.
NODE = "fake-node"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


def now_micro():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


if api.get("/api/v1/namespaces/kube-node-lease").status == 404:
    ctrl_lib.create_namespace(api, t, "kube-node-lease")
r = api.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
t.check("create node " + NODE, r.status == 201, r)
r = api.patch("/api/v1/nodes/%s/status" % NODE, {"status": {"conditions": [
    {"type": "Ready", "status": "True", "reason": "KubeletReady",
     "message": "kubelet is posting ready status", "lastHeartbeatTime": now_rfc(),
     "lastTransitionTime": now_rfc()}]}}, MERGE)
t.check("node status Ready=True", r.status == 200, r)
r = api.post(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                      "metadata": {"name": NODE},
                      "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40,
                               "renewTime": now_micro()}})
t.check("create the node's Lease", r.status == 201, r)

renewing = threading.Event()
renewing.set()
stop_renewer = threading.Event()


def renewer():
    c = srv.client()
    while not stop_renewer.is_set():
        if renewing.is_set():
            c.patch(LEASES + "/" + NODE, {"spec": {"renewTime": now_micro()}}, MERGE)
        stop_renewer.wait(0.5)
    c.close()


th = threading.Thread(target=renewer, daemon=True)
th.start()


def make_pod(name, tolerations=None):
    spec = {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}
    if tolerations:
        spec["tolerations"] = tolerations
    r = api.post("/api/v1/namespaces/default/pods",
                 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    t.check("create pod %s on %s" % (name, NODE), r.status == 201, r)
    r = api.patch("/api/v1/namespaces/default/pods/%s/status" % name, {"status": {
        "phase": "Running", "conditions": [
            {"type": "ContainersReady", "status": "True"},
            {"type": "Ready", "status": "True"}]}}, MERGE)
    t.check("pod %s Running and Ready" % name, r.status == 200, r)


make_pod("victim")
make_pod("tolerant", [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                       "effect": "NoExecute", "tolerationSeconds": 3600}])


def node():
    return get("/api/v1/nodes/" + NODE) or {}


def cond(obj, typ):
    for c in (obj.get("status") or {}).get("conditions", []):
        if c.get("type") == typ:
            return c
    return {}


def taints():
    return sorted("%s:%s" % (x["key"], x["effect"])
                  for x in (node().get("spec") or {}).get("taints", []))


def pod(name):
    return get("/api/v1/namespaces/default/pods/" + name)


time.sleep(6)  # longer than the grace period, renewing all along
t.eq("a node renewing its lease stays Ready=True", cond(node(), "Ready").get("status"), "True")
t.eq("... and untainted", taints(), [])

renewing.clear()
testlib.log("stopped renewing the lease")
t.check("the node becomes Ready=Unknown",
        wait_for("Ready=Unknown", lambda: cond(node(), "Ready").get("status") == "Unknown",
                 timeout=30), cm.tail())
c = cond(node(), "Ready")
t.eq("reason NodeStatusUnknown", c.get("reason"), "NodeStatusUnknown")
t.eq("message", c.get("message"), "Kubelet stopped posting node status.")
t.check("unreachable NoSchedule and NoExecute taints",
        wait_for("taints", lambda: taints() == ["node.kubernetes.io/unreachable:NoExecute",
                                                "node.kubernetes.io/unreachable:NoSchedule"]),
        taints())
t.check("its pods become Ready=False",
        wait_for("pods not ready", lambda: all(
            cond(pod(n) or {}, "Ready").get("status") == "False"
            for n in ("victim", "tolerant")), timeout=30),
        [pod("victim"), pod("tolerant")])
t.eq("ContainersReady is left as it was",
     cond(pod("tolerant") or {}, "ContainersReady").get("status"), "True")
t.check("after the eviction timeout the untolerating pod is deleted",
        wait_for("victim deleted", lambda: (pod("victim") is None or
                                            pod("victim")["metadata"].get("deletionTimestamp")),
                 timeout=30), pod("victim"))
time.sleep(2)
tol = pod("tolerant")
t.check("the pod tolerating unreachable for an hour stays",
        tol is not None and not tol["metadata"].get("deletionTimestamp"), tol)

renewing.set()
testlib.log("renewing the lease again")
t.check("a renewed lease removes the taints",
        wait_for("taints removed", lambda: taints() == [], timeout=20), taints())
stop_renewer.set()
th.join(timeout=5)

if t.failed:
    cm.dump_log(60)
t.finish()
