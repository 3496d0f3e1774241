"""Smoke test of skiff-kubelet: apiserver + kubelet in a test netns (kubelet_lib), the Node
registered with its capacity, addresses, nodeInfo and Lease; a two-container busybox pod becomes
Running with a pod IP, both containers ready, events Pulled/Created/Started; the kubelet logs a
pod-start stage line and serves /metrics; deleting the pod (grace 2 s) terminates it, finishes
the API deletion and leaves nothing behind. Needs root (skips with 77 otherwise)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402


def body(t):
    with t.cluster(write_cni=False) as c:  # --pod-cidr: the kubelet writes its own conflist
        n = c.node_obj
        st = n.get("status", {})
        cap = st.get("capacity", {})
        t.check("node capacity has cpu, memory and pods",
                all(k in cap for k in ("cpu", "memory", "pods")), cap)
        t.eq("capacity pods = --max-pods default", cap.get("pods"), "110")
        addrs = {a["type"]: a["address"] for a in st.get("addresses", [])}
        t.eq("InternalIP from --node-ip", addrs.get("InternalIP"), "127.0.0.1")
        t.check("Hostname address", bool(addrs.get("Hostname")), addrs)
        info = st.get("nodeInfo", {})
        t.eq("kubeletVersion", info.get("kubeletVersion"), "v1.32.0-skiff")
        t.check("containerRuntimeVersion skiff://", (info.get("containerRuntimeVersion") or "")
                .startswith("skiff://"), info)
        t.check("kubelet port published", (c.kubelet_port() or 0) > 0, c.kubelet_port())
        conds = {x["type"]: x for x in st.get("conditions", [])}
        t.eq("Ready reason", conds.get("Ready", {}).get("reason"), "KubeletReady")
        for ct in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            t.eq("%s False" % ct, conds.get(ct, {}).get("status"), "False")
        t.check("images listed on the node",
                any("busybox" in nm for im in st.get("images", []) for nm in im.get("names", [])),
                st.get("images"))
        lease = c.client().get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                               "leases/" + c.node)
        t.eq("node Lease exists", lease.status, 200)
        if lease.status == 200:
            t.eq("lease duration", lease.json["spec"].get("leaseDurationSeconds"), 40)
            t.eq("lease holder", lease.json["spec"].get("holderIdentity"), c.node)
        conflist = os.path.join(c.cni_conf, "10-skiff.conflist")
        t.check("--pod-cidr wrote 10-skiff.conflist", os.path.exists(conflist))

        p = kl.pod("smoke", [kl.ctr("a", ["sleep", "3600"]),
                             kl.ctr("b", ["sh", "-c", "echo hello from b; exec sleep 3600"])],
                   terminationGracePeriodSeconds=2, nodeName=c.node)
        c.create_pod(p)
        p = c.wait_running("smoke", timeout=60)
        ps = p["status"]
        t.check("podIP from the pod CIDR", (ps.get("podIP") or "").startswith("10.244.0."),
                ps.get("podIP"))
        t.eq("podIPs[0] = podIP", (ps.get("podIPs") or [{}])[0].get("ip"), ps.get("podIP"))
        t.eq("hostIP", ps.get("hostIP"), "127.0.0.1")
        t.check("startTime set", bool(ps.get("startTime")))
        for ct in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            t.eq("condition %s" % ct, kl.condition(p, ct), "True")
        pids = []
        for name in ("a", "b"):
            cs = kl.cstatus(p, name)
            t.check("container %s running and ready" % name,
                    "running" in cs.get("state", {}) and cs.get("ready"), cs)
            t.check("container %s id skiff://<64 hex>" % name,
                    re.fullmatch(r"skiff://[0-9a-f]{64}", cs.get("containerID") or "") is not None,
                    cs.get("containerID"))
            t.check("container %s imageID sha256:" % name,
                    (cs.get("imageID") or "").startswith("sha256:"), cs.get("imageID"))
            t.eq("container %s restartCount" % name, cs.get("restartCount"), 0)
            pid = c.container_pid(p, name)
            t.check("container %s has a live pid" % name, pid > 0 and kl.pid_alive(pid), pid)
            pids.append(pid)
        r = c.exec_in(p, "a", ["cat", "/etc/hostname"])
        t.eq("hostname is the pod name", r.stdout.strip(), "smoke")
        log = os.path.join(c.log_dir, "pods", "default_smoke_%s" % p["metadata"]["uid"], "b",
                           "0.log")
        ok = c.wait_for(lambda: "hello from b" in (kl.read(log, "") or ""), 30)
        t.check("container log at <log-dir>/pods/<ns>_<pod>_<uid>/<c>/0.log", bool(ok), log)
        reasons = c.wait_for(
            lambda: (lambda rs: rs if {"Pulled", "Created", "Started"} <= rs else None)(
                {e.get("reason") for e in c.events("smoke")}), 30)
        t.check("events Pulled, Created, Started", bool(reasons), c.event_text("smoke"))
        line = c.wait_for(lambda: re.search(r"pod-start default/smoke .*total_ms=[0-9.]+",
                                            kl.read(c.kubelet_log, "") or ""), 30)
        t.check("pod-start stage line logged at --v 1", bool(line))
        if line:
            kl.log(line.group(0))

        c.delete_pod("smoke")
        gone = c.wait_gone("smoke", timeout=30)
        t.check("deleted pod disappears from the API (kubelet finished the deletion)", gone)
        left = c.wait_for(lambda: not c.leftovers(p, pids), 30) and []
        left = c.leftovers(p, pids)
        t.check("nothing left of the pod on the host", not left, "\n".join(left))
        t.check("kubelet still running", c.kubelet_alive())


if __name__ == "__main__":
    t = kl.Test("kubelet_smoke", limit=300)
    t.run(body)
