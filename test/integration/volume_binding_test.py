#!/usr/bin/env python3
"""Storage control plane: skiff-apiserver + skiff-controller-manager (volume controller) +
skiff-scheduler (VolumeBinding), with fake Nodes and no kubelet; the node provisioner
(kubelet/localpath) is played by this test.

Checks: the default StorageClass local-path appears (WaitForFirstConsumer, Delete, default);
a PVC without a class gets local-path, the pvc-protection finalizer and a WaitForFirstConsumer
event; a pod using it is bound to a node and the PVC annotated selected-node = that node and
storage-provisioner = skiff.io/local-path (ExternalProvisioning event); the PV the provisioner
would create (claimRef to the PVC) makes PVC and PV Bound with Kubernetes' annotations;
`skiffctl get pv,pvc` and `get sc` print kubectl's columns; deleting the pod then the PVC
leaves the PV Released with its claimRef; a missing PVC and an unbound Immediate PVC make a pod
unschedulable with kube-scheduler's messages; pods using a PVC bound to a PV with nodeAffinity
for node-b all land on node-b; a WaitForFirstConsumer claim of a class without a provisioner
sends its pod to the node of the one Available PV that fits, which gets bound to it; both
daemons exit 0 on SIGTERM. Loopback only; no root needed."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import wait_for, ann  # noqa: E402

t = ctrl_lib.begin(240)
CM = testlib.need_bin("skiff-controller-manager")
SCHED = testlib.need_bin("skiff-scheduler")
CTL = testlib.need_bin("skiffctl")
PODS = "/api/v1/namespaces/default/pods"
PVCS = "/api/v1/namespaces/default/persistentvolumeclaims"
PVS = "/api/v1/persistentvolumes"
SCS = "/apis/storage.k8s.io/v1/storageclasses"

srv = testlib.Server(insecure=True).start()
api = srv.client()


def create_node(name):
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                      "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    r = api.post("/api/v1/nodes", obj)
    t.check("create node %s" % name, r.status == 201, r)
    if r.status == 201 and not (r.json.get("status") or {}).get("allocatable"):
        r.json["status"] = obj["status"]
        r2 = api.put("/api/v1/nodes/%s/status" % name, r.json)
        t.check("set status of node %s" % name, r2.status == 200, r2)


def create_pvc(name, cls=None, volume=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    r = api.post(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": name}, "spec": spec})
    t.check("create pvc %s" % name, r.status == 201, r)
    return r.json


def create_pod(name, claim):
    r = api.post(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                        "spec": {"containers": [{"name": "c", "image": "busybox:1.35",
                                                 "command": ["sleep", "3600"],
                                                 "volumeMounts": [{"name": "d",
                                                                   "mountPath": "/data"}]}],
                                 "volumes": [{"name": "d",
                                              "persistentVolumeClaim": {"claimName": claim}}]}})
    t.check("create pod %s" % name, r.status == 201, r)


def get(path):
    r = api.get(path)
    return r.json if r.status == 200 else None


def node_of(name):
    return ((get(PODS + "/" + name) or {}).get("spec") or {}).get("nodeName", "")


def phase(obj):
    return ((obj or {}).get("status") or {}).get("phase")


def scheduled_message(name):
    for c in ((get(PODS + "/" + name) or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return c.get("message", "")
    return ""


def hostname_affinity(node):
    return {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}


def ctl(*args):
    p = subprocess.run([CTL, "--kubeconfig", srv.kubeconfig] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


KUBECTL = shutil.which("kubectl")
AGE = re.compile(r"^\d+(s|m|m\d+s|h|h\d+m|d|d\d+h|y\d+d)$")


def kubectl(*args):
    cache = os.path.join(srv.dir, "kubectl-cache")
    p = subprocess.run([KUBECTL, "--kubeconfig", srv.kubeconfig, "--cache-dir", cache] +
                       list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def tokens(out):
    """Each line's words, ages as AGE (the two commands run a second apart at most)."""
    return [["AGE" if AGE.match(w) else w for w in line.split()] for line in out.splitlines()]


def same_as_kubectl(*args):
    """skiffctl and kubectl 1.32 print the same table (ages aside)."""
    if not KUBECTL:
        testlib.log("kubectl not installed: skiffctl %s not compared" % " ".join(args))
        return
    a, b = ctl(*args), kubectl(*args)
    t.check("skiffctl %s prints what kubectl prints" % " ".join(args),
            a[0] == b[0] and tokens(a[1]) == tokens(b[1]),
            "skiffctl:\n%s%s\nkubectl:\n%s%s" % (a[1], a[2], b[1], b[2]))


def delete(path):
    r = api.delete(path, {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})
    return r.status in (200, 202, 404)


def main():
    create_node("node-a")
    create_node("node-b")
    # No kubelet renews the fake Nodes' Leases: keep nodelifecycle from marking them NotReady.
    cm = ctrl_lib.controller_manager(CM, srv, "--v", "2", "--node-monitor-grace-period", "1h")
    sched = ctrl_lib.Daemon(SCHED, srv, "scheduler.log",
                            ["--leader-elect=false", "--port", "0", "--v", "2"],
                            ident="scheduler")

    # -- the default class
    sc = wait_for("StorageClass local-path", lambda: get(SCS + "/local-path"), timeout=30)
    if not t.check("the volume controller made StorageClass local-path", sc):
        cm.dump_log()
        return
    t.eq("local-path provisioner", sc.get("provisioner"), "skiff.io/local-path")
    t.eq("local-path binding mode", sc.get("volumeBindingMode"), "WaitForFirstConsumer")
    t.eq("local-path reclaim policy", sc.get("reclaimPolicy"), "Delete")
    t.eq("local-path is the default", ann(sc, "storageclass.kubernetes.io/is-default-class"),
         "true")

    # -- WaitForFirstConsumer: class, finalizer, event, then the pod picks the node
    create_pvc("data")
    pvc = wait_for("default class on data", lambda: (lambda o: o if o and (o.get("spec") or {})
                                                     .get("storageClassName") else None)(
        get(PVCS + "/data")))
    t.eq("retroactive default class", (pvc or {}).get("spec", {}).get("storageClassName"),
         "local-path")
    t.eq("pvc-protection finalizer", (pvc or {}).get("metadata", {}).get("finalizers"),
         ["kubernetes.io/pvc-protection"])
    ev = wait_for("WaitForFirstConsumer event",
                  lambda: ctrl_lib.events_for(api, "data", reason="WaitForFirstConsumer"))
    t.check("WaitForFirstConsumer event says so", ev and ev[0].get("message") ==
            "waiting for first consumer to be created before binding", ev)
    t.eq("data stays Pending without a consumer", phase(get(PVCS + "/data")), "Pending")

    create_pod("web", "data")
    node = wait_for("web bound", lambda: node_of("web"), timeout=30)
    t.check("web bound to a node", node in ("node-a", "node-b"), node)
    pvc = wait_for("provisioner annotation", lambda: (lambda o: o if ann(
        o, "volume.kubernetes.io/storage-provisioner") else None)(get(PVCS + "/data")))
    t.eq("selected-node is web's node", ann(pvc, "volume.kubernetes.io/selected-node"), node)
    t.eq("storage-provisioner", ann(pvc, "volume.kubernetes.io/storage-provisioner"),
         "skiff.io/local-path")
    t.eq("beta storage-provisioner", ann(pvc, "volume.beta.kubernetes.io/storage-provisioner"),
         "skiff.io/local-path")
    ev = wait_for("ExternalProvisioning event",
                  lambda: ctrl_lib.events_for(api, "data", reason="ExternalProvisioning"))
    t.check("ExternalProvisioning names the provisioner",
            ev and "external provisioner 'skiff.io/local-path'" in ev[0].get("message", ""), ev)

    # -- the node provisioner's PV (as kubelet/localpath creates it)
    uid = pvc["metadata"]["uid"]
    pv_name = "pvc-" + uid
    r = api.post(PVS, {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name,
                     "annotations": {"pv.kubernetes.io/provisioned-by": "skiff.io/local-path"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                 "volumeMode": "Filesystem",
                 "hostPath": {"path": "/var/lib/skiff/storage/" + pv_name,
                              "type": "DirectoryOrCreate"},
                 "nodeAffinity": hostname_affinity(node),
                 "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                              "namespace": "default", "name": "data", "uid": uid,
                              "resourceVersion": pvc["metadata"]["resourceVersion"]}}})
    t.check("create the provisioned PV", r.status == 201, r)
    pvc = wait_for("data Bound", lambda: (lambda o: o if phase(o) == "Bound" else None)(
        get(PVCS + "/data")), timeout=30)
    t.eq("data Bound", phase(pvc), "Bound")
    t.eq("data volumeName", (pvc or {}).get("spec", {}).get("volumeName"), pv_name)
    t.eq("data capacity", ((pvc or {}).get("status") or {}).get("capacity"), {"storage": "1Gi"})
    t.eq("data access modes", ((pvc or {}).get("status") or {}).get("accessModes"),
         ["ReadWriteOnce"])
    t.eq("bind-completed", ann(pvc, "pv.kubernetes.io/bind-completed"), "yes")
    t.eq("bound-by-controller on the claim", ann(pvc, "pv.kubernetes.io/bound-by-controller"),
         "yes")
    pv = wait_for("PV Bound", lambda: (lambda o: o if phase(o) == "Bound" else None)(
        get(PVS + "/" + pv_name)))
    t.eq("PV Bound", phase(pv), "Bound")
    t.eq("pv-protection finalizer", (pv or {}).get("metadata", {}).get("finalizers"),
         ["kubernetes.io/pv-protection"])

    # -- skiffctl get pv,pvc and get sc
    rc, out, err = ctl("get", "pv,pvc")
    lines = out.splitlines()
    t.check("skiffctl get pv,pvc exits 0", rc == 0, err)
    t.check("PV header as kubectl", lines and lines[0].split() == [
        "NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
        "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"], out)
    t.check("PV row", any(l.split()[:7] == ["persistentvolume/" + pv_name, "1Gi", "RWO",
                                            "Delete", "Bound", "default/data", "local-path"]
                          for l in lines), out)
    t.check("PVC header as kubectl", any(l.split() == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "AGE"] for l in lines), out)
    t.check("PVC row", any(l.split()[:6] == ["persistentvolumeclaim/data", "Bound", pv_name,
                                             "1Gi", "RWO", "local-path"] for l in lines), out)
    rc, out, err = ctl("get", "sc")
    t.check("skiffctl get sc", rc == 0 and out.splitlines()[0].split() == [
        "NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
        "AGE"] and out.splitlines()[1].split()[:6] == [
        "local-path", "(default)", "skiff.io/local-path", "Delete", "WaitForFirstConsumer",
        "false"], out + err)

    for args in (("get", "pv,pvc"), ("get", "pv", "-o", "wide"), ("get", "pvc", "-o", "wide"),
                 ("get", "sc"), ("get", "storageclass,pv")):
        same_as_kubectl(*args)

    # -- the claim is protected while web uses it; then Released
    t.check("delete pvc data", delete(PVCS + "/data"))
    t.check("data kept while web uses it (pvc-protection)",
            (get(PVCS + "/data") or {}).get("metadata", {}).get("deletionTimestamp"))
    t.check("delete pod web", delete(PODS + "/web"))
    gone = wait_for("data gone", lambda: get(PVCS + "/data") is None, timeout=30)
    t.check("data deleted once web is gone", gone)
    pv = wait_for("PV Released", lambda: (lambda o: o if phase(o) == "Released" else None)(
        get(PVS + "/" + pv_name)), timeout=30)
    t.eq("PV Released", phase(pv), "Released")
    t.eq("Released PV keeps its claimRef", ((pv or {}).get("spec") or {}).get("claimRef", {})
         .get("name"), "data")

    # -- kube-scheduler's PreFilter messages
    create_pod("lonely", "nope")
    msg = wait_for("lonely unschedulable", lambda: scheduled_message("lonely"), timeout=30)
    t.eq("missing PVC message", msg,
         "0/2 nodes are available: persistentvolumeclaim \"nope\" not found.")
    create_pvc("nope", cls="manual")
    msg = wait_for("unbound immediate message", lambda: (lambda m: m if "immediate" in m else "")(
        scheduled_message("lonely")), timeout=30)
    t.eq("unbound immediate PVC message", msg,
         "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.")

    # -- a PVC bound to a PV on node-b: every pod using it goes to node-b
    r = api.post(PVS, {"apiVersion": "v1", "kind": "PersistentVolume",
                       "metadata": {"name": "pv-b"},
                       "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                                "storageClassName": "manual",
                                "local": {"path": "/mnt/disks/b"},
                                "nodeAffinity": hostname_affinity("node-b")}})
    t.check("create pv-b", r.status == 201, r)
    pvc = wait_for("nope bound to pv-b", lambda: (lambda o: o if phase(o) == "Bound" else None)(
        get(PVCS + "/nope")), timeout=30)
    t.eq("static binding (Immediate)", ((pvc or {}).get("spec") or {}).get("volumeName"), "pv-b")
    t.eq("Retain by default", (get(PVS + "/pv-b") or {}).get("spec", {}).get(
        "persistentVolumeReclaimPolicy"), "Retain")
    t.eq("lonely now placed on node-b", wait_for("lonely bound", lambda: node_of("lonely"),
                                                 timeout=30), "node-b")
    for i in range(4):
        create_pod("b-%d" % i, "nope")
    for i in range(4):
        t.eq("b-%d on node-b" % i, wait_for("b-%d bound" % i, lambda: node_of("b-%d" % i),
                                            timeout=30), "node-b")
    # -- WaitForFirstConsumer without a provisioner: the scheduler picks the static PV's node
    # and binds the PV to the claim (claimRef); the PV controller completes the bind
    r = api.post(SCS, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                       "metadata": {"name": "local-disk"},
                       "provisioner": "kubernetes.io/no-provisioner",
                       "volumeBindingMode": "WaitForFirstConsumer"})
    t.check("create StorageClass local-disk", r.status == 201, r)
    for name, size, on in (("disk-a", "5Gi", "node-a"), ("disk-tiny-b", "100Mi", "node-b")):
        r = api.post(PVS, {"apiVersion": "v1", "kind": "PersistentVolume",
                           "metadata": {"name": name},
                           "spec": {"capacity": {"storage": size},
                                    "accessModes": ["ReadWriteOnce"],
                                    "storageClassName": "local-disk",
                                    "local": {"path": "/mnt/disks/" + name},
                                    "nodeAffinity": hostname_affinity(on)}})
        t.check("create " + name, r.status == 201, r)
    wait_for("disk-a Available", lambda: phase(get(PVS + "/disk-a")) == "Available")
    create_pvc("local-data", cls="local-disk")
    create_pod("local-user", "local-data")
    t.eq("local-user on the node of the only fitting PV",
         wait_for("local-user bound", lambda: node_of("local-user"), timeout=30), "node-a")
    pvc = wait_for("local-data Bound", lambda: (lambda o: o if phase(o) == "Bound" else None)(
        get(PVCS + "/local-data")), timeout=30)
    t.eq("local-data bound to disk-a", ((pvc or {}).get("spec") or {}).get("volumeName"),
         "disk-a")
    t.eq("no selected-node when a static PV was chosen",
         ann(pvc, "volume.kubernetes.io/selected-node"), None)
    pv = get(PVS + "/disk-a")
    t.eq("disk-a bound-by-controller (the scheduler set its claimRef)",
         ann(pv, "pv.kubernetes.io/bound-by-controller"), "yes")
    t.eq("disk-a Bound", phase(pv), "Bound")

    if t.failed:
        cm.dump_log()
        sched.dump_log()

    # -- both daemons stop cleanly (the volume controller's and the storage informers' threads)
    for d in (cm, sched):
        d.proc.terminate()
        try:
            rc = d.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = "still running 30 s after SIGTERM"
        t.eq("%s exits 0 on SIGTERM" % d.ident, rc, 0)


try:
    main()
except Exception:
    srv.dump_log()
    raise
t.finish()
