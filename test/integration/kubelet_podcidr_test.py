#!/usr/bin/env python3
"""The kubelet without --pod-cidr waits for the Node's spec.podCIDR from
skiff-controller-manager: apiserver + kubelet in a test netns (kubelet_lib) with an empty CNI
conf dir and no --pod-cidr. While it waits, the Node is Ready (status and Lease loop run), the
kubelet logs once that it waits, writes no conflist and starts no pod. Once a controller-manager
(in the same netns) assigns the CIDR, the kubelet writes 10-skiff.conflist for that CIDR with
"mode" = --network-backend (default vxlan) and the bound pod runs with an IP from it. A bad
--network-backend is refused. A kubelet started while the API server is down retries its
registration and carries on once the API server is back. Needs root (skips with 77
otherwise)."""
import ipaddress
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402
import testlib  # noqa: E402

WAIT_MSG = "waiting for skiff-controller-manager to assign one"


def body(t):
    kubelet = testlib.need_bin("skiff-kubelet")
    r = subprocess.run([kubelet, "--network-backend", "bogus", "--kubeconfig", "/nonexistent"],
                       capture_output=True, text=True, timeout=30)
    t.check("--network-backend bogus is refused", r.returncode != 0 and
            "network-backend" in (r.stderr + r.stdout), r.stderr + r.stdout)
    cm = testlib.need_bin("skiff-controller-manager")

    c = t.cluster(write_cni=False, start_kubelet=False)
    with c:
        base = c.kubelet_cmd

        def without_pod_cidr():
            a = base()
            i = a.index("--pod-cidr")
            return a[:i] + a[i + 2:]
        c.kubelet_cmd = without_pod_cidr
        c.start_kubelet()
        n = c.wait_node_ready()
        t.check("the Node is Ready while the kubelet waits for its pod CIDR",
                n is not None and not (n.get("spec") or {}).get("podCIDR"), n)
        conflist = os.path.join(c.cni_conf, "10-skiff.conflist")

        p = kl.pod("waiter", [kl.ctr("a", ["sleep", "3600"])], terminationGracePeriodSeconds=1,
                   nodeName=c.node)
        c.create_pod(p)
        time.sleep(2)  # a chance for a wrong kubelet to start it
        got = c.get_pod("waiter")
        t.check("the pod is not started before the Node has a pod CIDR",
                (got.get("status") or {}).get("phase", "Pending") == "Pending" and
                not (got.get("status") or {}).get("containerStatuses"), got.get("status"))
        t.check("no conflist written yet", not os.path.exists(conflist))
        # The wait's log line and the Lease come from the kubelet's own threads, on their own
        # schedule: wait for them (bounded) before looking.
        c.wait_for(lambda: WAIT_MSG in kl.read(c.kubelet_log, ""), 30)
        klog = kl.read(c.kubelet_log, "")
        t.eq("the kubelet logs once that it waits", klog.count(WAIT_MSG), 1)
        lease_url = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + c.node
        c.wait_for(lambda: c.client().get(lease_url).status == 200, 30)
        lease = c.client().get(lease_url)
        t.eq("the node Lease exists while waiting", lease.status, 200)

        # SIGTERM while waiting: the kubelet stops (exit 0) instead of hanging in the wait.
        proc = c.kubelet
        proc.terminate()
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = "still running after 20 s"
        t.eq("SIGTERM while waiting: the kubelet exits 0", rc, 0)
        c.kubelet = None
        c.start_kubelet()
        t.check("the restarted kubelet waits again",
                c.wait_for(lambda: kl.read(c.kubelet_log, "").count(WAIT_MSG) == 2, 30))

        c.spawn([cm, "--kubeconfig", c.api.kubeconfig, "--cluster-cidr", "10.244.0.0/16",
                 "--id", "test-cm", "--port", "0"], "controller-manager.log")

        def cidr():
            r = c.client().get("/api/v1/nodes/" + c.node)
            return ((r.json or {}).get("spec") or {}).get("podCIDR") if r.status == 200 else None
        got_cidr = c.wait_for(cidr, 30, "Node spec.podCIDR")
        t.eq("the controller-manager assigns the first /24", got_cidr, "10.244.0.0/24")

        pr = c.wait_running("waiter", timeout=60)
        ip = (pr.get("status") or {}).get("podIP") or ""
        ok = False
        try:
            ok = ipaddress.ip_address(ip) in ipaddress.ip_network(got_cidr or "0.0.0.0/32")
        except ValueError:
            pass
        t.check("the pod runs with an IP from the assigned CIDR (%s)" % ip, ok, pr.get("status"))
        conf = kl.read_json(conflist) or {}
        plugin = (conf.get("plugins") or [{}])[0]
        t.eq("conflist uses the skiff plugin", plugin.get("type"), "skiff")
        t.eq("conflist subnet = the assigned CIDR", plugin.get("subnet"), got_cidr)
        t.eq("conflist mode = --network-backend default", plugin.get("mode"), "vxlan")
        klog = kl.read(c.kubelet_log, "")
        t.check("the kubelet logged the CIDR it got", "got pod CIDR " + str(got_cidr) in klog,
                kl.tail(c.kubelet_log))
        c.delete_pod("waiter")
        t.check("pod deleted", c.wait_gone("waiter", timeout=30))

        # A kubelet started while its API server is unreachable retries the registration with
        # back-off (as Kubernetes' does) instead of exiting, and carries on once it is back.
        c.stop_kubelet()
        c.api.stop()
        retries_before = kl.read(c.kubelet_log, "").count("retrying in")
        c.start_kubelet()
        t.check("API server down: the kubelet retries its registration",
                c.wait_for(lambda: kl.read(c.kubelet_log, "").count("retrying in") >
                           retries_before + 1, 30), kl.tail(c.kubelet_log))
        t.check("API server down: the kubelet is still running", c.kubelet_alive(),
                kl.tail(c.kubelet_log))
        c.api.start()
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + c.node
        before = (c.client().get(lease_path).json or {}).get("spec", {}).get("renewTime")

        def renewed():
            r = c.client().get(lease_path)
            return r.status == 200 and (r.json.get("spec") or {}).get("renewTime") != before
        t.check("API server back: the kubelet registers and renews its Lease",
                c.wait_for(renewed, 40) and c.kubelet_alive(), kl.tail(c.kubelet_log))


if __name__ == "__main__":
    t = kl.Test("kubelet_podcidr", limit=300)
    t.run(body)
