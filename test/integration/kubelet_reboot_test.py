#!/usr/bin/env python3
"""A node reboot, simulated: apiserver + kubelet in a test netns (kubelet_lib), the kubelet with
its own conflist for skiff's CNI plugin. With a pod running, everything a reboot ends is ended
(the kubelet, the pod's processes and shims, every mount under the kubelet's dirs, the pod
cgroups, the run dir, which is a tmpfs on a real machine) and what a reboot keeps is kept (the
data dir: images, the CNI result cache, the plugin's address files). The restarted kubelet
must bring the pod back with a working network: an eth0 in its new network namespace with the
pod's IP and a route to its gateway on the node, and restartCount 1 (its logs from before the
reboot are kept, numbered by attempt); pods that had finished (restartPolicy Never,
Succeeded and Failed) stay as they were and are not run again. (The sandbox's network namespace comes back at the same
path, so a CNI result cached before the reboot must not be taken for the new namespace's.)
Needs root (skips with 77 otherwise)."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

GATEWAY = "10.244.0.1"  # the first address of kubelet_lib's POD_CIDR, on the node's bridge


def reboot(c):
    """Ends what a reboot ends; the API server (another machine) keeps running."""
    c.kill9_kubelet()
    kl.kill_processes(c.cgroup_parent, c.run_dir)  # containers, and shims by their run dir
    kl.umount_under([c.run_dir, c.data, c.log_dir])
    for h in kl.cgroup_hierarchies():
        kl.remove_cgroup_tree(os.path.join(h, c.cgroup_parent))
    shutil.rmtree(c.run_dir, ignore_errors=True)
    os.makedirs(c.run_dir)


def eth0_addr(pid):
    r = kl.sh(["nsenter", "-t", str(pid), "-n", "ip", "-o", "-4", "addr", "show", "dev", "eth0"])
    return r.stdout if r.returncode == 0 else ""


def body(t):
    c = t.cluster(write_cni=False)
    with c:
        conf = kl.read_json(os.path.join(c.cni_conf, "10-skiff.conflist")) or {}
        if ((conf.get("plugins") or [{}])[0]).get("type") != "skiff":
            t.fatal("the kubelet did not write a conflist for skiff's plugin", conf)
        c.create_pod(kl.sleeper("survivor", terminationGracePeriodSeconds=1))
        for name, code in (("done", 0), ("failed", 3)):
            c.create_pod(kl.pod(name, [kl.ctr("main", ["sh", "-c", "exit %d" % code])],
                                restartPolicy="Never", terminationGracePeriodSeconds=1))
        finished = {}
        for name, phase in (("done", "Succeeded"), ("failed", "Failed")):
            q = c.wait_for(lambda: (lambda x: x if kl.phase(x) == phase else None)(
                c.get_pod(name)), 60, "%s %s" % (name, phase))
            t.check("before: pod %s (restartPolicy Never) is %s" % (name, phase), q is not None,
                    c.get_pod(name))
            finished[name] = q
        p = c.wait_running("survivor", timeout=60)
        ip = (p.get("status") or {}).get("podIP") or ""
        pid = c.container_pid(p, "main")
        t.check("before: the pod runs with eth0 %s" % ip, ip and ip + "/" in eth0_addr(pid),
                eth0_addr(pid))
        old_cid = kl.container_id(kl.cstatus(p, "main"))

        reboot(c)
        t.check("reboot: the pod's container is gone", not kl.pid_alive(pid))

        c.start_kubelet()

        def back():
            q = c.get_pod("survivor")
            cs = kl.cstatus(q, "main") if q else None
            if not cs or kl.container_id(cs) in ("", old_cid) or not (cs.get("state") or {}).get(
                    "running"):
                return None
            return q
        q = c.wait_for(back, 90, "survivor running again in a new container")
        t.check("after: the pod runs again, in a new container", q is not None,
                c.get_pod("survivor"))
        if q is None:
            return
        # Pods that had finished stay finished: a reboot is no reason to run them again.
        for name, phase in (("done", "Succeeded"), ("failed", "Failed")):
            x = c.get_pod(name)
            before = finished.get(name) or {}
            t.eq("after: pod %s is still %s" % (name, phase), kl.phase(x), phase)
            t.eq("after: pod %s's container was not started again" % name,
                 kl.container_id(kl.cstatus(x, "main")),
                 kl.container_id(kl.cstatus(before, "main")) if before else "?")
        r = c.delete_pod("done")
        t.check("after: the finished pod done is deleted (the kubelet finishes the deletion)",
                r.status == 200 and c.wait_gone("done", timeout=30), r)
        t.eq("after: survivor's restartCount counts the reboot (as Kubernetes does)",
             kl.cstatus(q, "main").get("restartCount"), 1)
        ip2 = (q.get("status") or {}).get("podIP") or ""
        pid2 = c.container_pid(q, "main")
        addr = eth0_addr(pid2)
        t.check("after: the new network namespace has eth0 with the pod's IP %s" % ip2,
                ip2 and ip2 + "/" in addr, addr or "no eth0")
        r = c.exec_in(q, "main", ["ping", "-c", "1", "-W", "2", GATEWAY])
        t.check("after: the pod reaches its gateway %s on the node (busybox ping)" % GATEWAY,
                r.returncode == 0, r.stdout + r.stderr)


if __name__ == "__main__":
    t = kl.Test("kubelet_reboot", limit=300)
    t.run(body)
