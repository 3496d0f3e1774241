"""The node side of local-path storage (issue 7): skiff-kubelet's provisioner and its
persistentVolumeClaim volumes, with apiserver + kubelet in a test netns (kubelet_lib).

StorageClasses local-path (WaitForFirstConsumer, Delete) and local-retain (Retain); a PVC
annotated as the scheduler and the PV controller would (selected-node = the kubelet's node,
storage-provisioner = skiff.io/local-path) -> the kubelet creates <data-dir>/storage/pvc-<uid>
(0777) and the PV (claimRef, hostPath DirectoryOrCreate, node affinity, capacity, Delete) and
an event ProvisioningSucceeded. A pod using the claim before it is bound gets FailedMount
`persistentvolumeclaim "data" not bound` (a missing claim: `... not found`) and starts once the
test completes the binding itself (the PV controller does not run here); it writes a file, a
second pod mounting the claim readOnly reads it and cannot write. Deleting the claim and
marking the PV Released removes the directory and the PV; with Retain both stay. A kubelet
killed and restarted after provisioning does not provision again.
Needs root (skips with 77 otherwise)."""
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

SC_PATH = "/apis/storage.k8s.io/v1/storageclasses"
PVC_PATH = "/api/v1/namespaces/default/persistentvolumeclaims"
PV_PATH = "/api/v1/persistentvolumes"


def storage_class(name, policy):
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "skiff.io/local-path", "reclaimPolicy": policy,
            "volumeBindingMode": "WaitForFirstConsumer"}


def claim(name, cls, node, size="64Mi"):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "annotations": {
                "volume.kubernetes.io/selected-node": node,
                "volume.kubernetes.io/storage-provisioner": "skiff.io/local-path",
                "volume.beta.kubernetes.io/storage-provisioner": "skiff.io/local-path"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "resources": {"requests": {"storage": size}}}}


def claim_pod(name, claim_name, command, node, read_only=False):
    c = kl.ctr("main", command, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    vol = {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}
    if read_only:
        vol["persistentVolumeClaim"]["readOnly"] = True
    return kl.pod(name, [c], nodeName=node, volumes=[vol])


def body(t):
    with t.cluster() as c:
        cl = c.client()
        storage = os.path.join(c.data, "storage")

        def must(r, what, code=(200, 201)):
            if r.status not in code:
                t.fatal(what, "%s %s" % (r.status, r.json))
            return r.json

        def get(path):
            r = cl.get(path)
            return r.json if r.status == 200 else None

        must(cl.post(SC_PATH, storage_class("local-path", "Delete")), "create StorageClass")
        must(cl.post(SC_PATH, storage_class("local-retain", "Retain")), "create StorageClass")
        pvc = must(cl.post(PVC_PATH, claim("data", "local-path", c.node)), "create PVC data")
        uid = pvc["metadata"]["uid"]
        pv_name = "pvc-" + uid

        pv = c.wait_for(lambda: get(PV_PATH + "/" + pv_name), 30)
        if not pv:
            t.fatal("PV %s provisioned within 30 s" % pv_name, kl.tail(c.kubelet_log, 30))
        spec = pv["spec"]
        t.eq("PV annotation provisioned-by", pv["metadata"].get("annotations", {}).get(
            "pv.kubernetes.io/provisioned-by"), "skiff.io/local-path")
        ref = spec.get("claimRef", {})
        t.eq("claimRef", (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid")),
             ("PersistentVolumeClaim", "default", "data", uid))
        t.eq("hostPath under the node's data dir",
             spec.get("hostPath"), {"path": os.path.join(storage, pv_name),
                                    "type": "DirectoryOrCreate"})
        t.eq("capacity = the claim's request", spec.get("capacity"), {"storage": "64Mi"})
        t.eq("reclaim policy from the class", spec.get("persistentVolumeReclaimPolicy"), "Delete")
        t.eq("storageClassName", spec.get("storageClassName"), "local-path")
        t.eq("accessModes", spec.get("accessModes"), ["ReadWriteOnce"])
        terms = spec.get("nodeAffinity", {}).get("required", {}).get("nodeSelectorTerms", [])
        t.eq("node affinity names the node", terms, [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [c.node]}]}])
        vdir = os.path.join(storage, pv_name)
        t.check("volume directory exists", os.path.isdir(vdir), vdir)
        if os.path.isdir(vdir):
            t.eq("volume directory mode 0777", oct(stat.S_IMODE(os.stat(vdir).st_mode)), "0o777")
        ev = c.wait_for(lambda: [e for e in c.events("data")
                                 if e.get("reason") == "ProvisioningSucceeded"], 15)
        t.check("event ProvisioningSucceeded on the claim", bool(ev), c.event_text("data"))
        if ev:
            t.eq("event message", ev[0].get("message"), "Successfully provisioned volume " +
                 pv_name)
            t.eq("event involvedObject kind", ev[0]["involvedObject"].get("kind"),
                 "PersistentVolumeClaim")

        # Restart safety: a kubelet killed and started again finds the claim provisioned (its
        # PV exists) and does nothing more.
        c.kill9_kubelet()
        c.start_kubelet()
        c.wait_node_ready()
        again = get(PV_PATH + "/" + pv_name)
        t.eq("after a kubelet restart: the same PV", (again or {}).get("metadata", {}).get("uid"),
             pv["metadata"]["uid"])

        # Pods before the claim is bound, and for a claim that does not exist.
        c.create_pod(claim_pod("writer", "data", ["sh", "-c", "echo hello > /data/f; "
                                                  "exec sleep 3600"], c.node))
        c.create_pod(claim_pod("orphan", "nope", ["sleep", "3600"], c.node))

        def failed_mount(pod, text):
            return [e for e in c.events(pod) if e.get("reason") == "FailedMount" and
                    text in (e.get("message") or "")]
        ev = c.wait_for(lambda: failed_mount("writer", 'persistentvolumeclaim "data" not bound'),
                        30)
        t.check('FailedMount: persistentvolumeclaim "data" not bound', bool(ev),
                c.event_text("writer"))
        ev = c.wait_for(lambda: failed_mount("orphan", 'persistentvolumeclaim "nope" not found'),
                        30)
        t.check('FailedMount: persistentvolumeclaim "nope" not found', bool(ev),
                c.event_text("orphan"))
        p = c.get_pod("writer")
        t.check("writer waits (not Running) while the claim is unbound",
                kl.phase(p) == "Pending", kl.phase(p))

        # What the PV controller would do: bind both ways.
        pvc = get(PVC_PATH + "/data")
        pvc["spec"]["volumeName"] = pv_name
        pvc = must(cl.put(PVC_PATH + "/data", pvc), "set PVC spec.volumeName")
        pvc["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                         "capacity": {"storage": "64Mi"}}
        must(cl.put(PVC_PATH + "/data/status", pvc), "set PVC status Bound")
        pv = get(PV_PATH + "/" + pv_name)
        pv["status"] = {"phase": "Bound"}
        must(cl.put(PV_PATH + "/" + pv_name + "/status", pv), "set PV status Bound")

        bound_at = time.time()
        c.wait_running("writer", timeout=90)
        kl.log("writer Running %.1f s after the claim was bound" % (time.time() - bound_at))
        hostfile = os.path.join(vdir, "f")
        ok = c.wait_for(lambda: (kl.read(hostfile) or "").strip() == "hello", 30)
        t.check("the pod's file is in the volume directory on the host", bool(ok), hostfile)

        c.create_pod(claim_pod("reader", "data", ["sleep", "3600"], c.node, read_only=True))
        p = c.wait_running("reader", timeout=60)
        r = c.exec_in(p, "main", ["cat", "/data/f"])
        t.eq("a second pod sees the file", r.stdout.strip(), "hello")
        r = c.exec_in(p, "main", ["sh", "-c", "echo x > /data/g"])
        t.check("readOnly claim: writing fails", r.returncode != 0, r.stdout + r.stderr)
        t.check("nothing written through the readOnly mount",
                not os.path.exists(os.path.join(vdir, "g")))

        # Long after the restart (the new provisioner has listed and synced the claim by now).
        evs = c.events("data")
        t.eq("after a kubelet restart: one ProvisioningSucceeded, no ProvisioningFailed",
             sorted(e.get("reason") for e in evs if e.get("reason", "").startswith(
                 "Provisioning") and e.get("reason") != "Provisioning"),
             ["ProvisioningSucceeded"])

        # A Retain volume for later.
        keep = must(cl.post(PVC_PATH, claim("keep", "local-retain", c.node)), "create PVC keep")
        keep_pv = "pvc-" + keep["metadata"]["uid"]
        kpv = c.wait_for(lambda: get(PV_PATH + "/" + keep_pv), 30)
        t.check("Retain PV provisioned", bool(kpv))
        if kpv:
            t.eq("Retain PV policy", kpv["spec"].get("persistentVolumeReclaimPolicy"), "Retain")

        # Release: pods gone, claims deleted, PVs Released (as the PV controller would).
        for name in ("writer", "reader", "orphan"):
            c.delete_pod(name, grace=1)
        for name in ("writer", "reader", "orphan"):
            t.check("pod %s deleted" % name, bool(c.wait_gone(name, 60)))
        t.check("pod teardown left the volume data alone", os.path.exists(hostfile))
        for name, pvn in (("keep", keep_pv), ("data", pv_name)):
            r = cl.delete(PVC_PATH + "/" + name)
            t.check("delete PVC %s" % name, r.status in (200, 202), r.status)
            obj = get(PV_PATH + "/" + pvn)
            if obj:
                obj["status"] = {"phase": "Released"}
                must(cl.put(PV_PATH + "/" + pvn + "/status", obj), "set PV %s Released" % pvn)
        gone = c.wait_for(lambda: get(PV_PATH + "/" + pv_name) is None, 30)
        t.check("Released + Delete: PV deleted", bool(gone), get(PV_PATH + "/" + pv_name))
        t.check("Released + Delete: directory removed", not os.path.exists(vdir),
                os.listdir(storage) if os.path.isdir(storage) else None)
        t.check("storage root itself kept", os.path.isdir(storage))
        # The Retain PV was released first, so the provisioner has seen it by now.
        t.check("Released + Retain: PV kept", get(PV_PATH + "/" + keep_pv) is not None)
        t.check("Released + Retain: directory kept",
                os.path.isdir(os.path.join(storage, keep_pv)))


t = kl.Test("localpath", limit=420)
t.run(body)
