"""Kubelet restart safety on a real kernel: with 10 pods running, `kill -9` the kubelet; the
containers keep running; a pod deleted while the kubelet is down stays Terminating (nobody
finishes it); the new kubelet adopts the 9 others (same container and shim PIDs, restartCount 0,
no duplicate container) and cleans the deleted one up completely and finishes its deletion.
Needs root (skips with 77 otherwise)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

N = 10


def snapshot(c, p):
    cs = kl.cstatus(p, "main")
    cid = kl.container_id(cs)
    st = c.container_state(cid) or {}
    return {"cid": cid, "pid": int(st.get("pid") or 0), "shim": int(st.get("shim_pid") or 0),
            "restarts": cs.get("restartCount"), "ip": p["status"].get("podIP")}


def body(t):
    with t.cluster() as c:
        for i in range(N):
            c.create_pod(kl.sleeper("r%d" % i, terminationGracePeriodSeconds=30))
        before = {}
        pods = {}
        for i in range(N):
            p = c.wait_running("r%d" % i, timeout=120)
            pods[i] = p
            before[i] = snapshot(c, p)
        t.check("10 pods Running with live container and shim pids",
                all(kl.pid_alive(s["pid"]) and kl.pid_alive(s["shim"]) for s in before.values()),
                before)
        ncontainers = len(os.listdir(os.path.join(c.run_dir, "containers")))
        veths = c.veths()

        old_pid = c.kubelet.pid
        c.kill9_kubelet()
        t.check("kubelet killed with SIGKILL", not kl.pid_alive(old_pid))
        time.sleep(1)
        t.check("containers and shims survive the kubelet's death",
                all(kl.pid_alive(s["pid"]) and kl.pid_alive(s["shim"]) for s in before.values()),
                {i: (kl.pid_alive(s["pid"]), kl.pid_alive(s["shim"])) for i, s in before.items()})

        victim = N - 1
        r = c.delete_pod("r%d" % victim)
        t.check("delete r%d while the kubelet is down: accepted" % victim, r.status == 200, r)
        time.sleep(2)
        p = c.get_pod("r%d" % victim)
        t.check("r%d stays Terminating (deletionTimestamp set, object still there)" % victim,
                p is not None and p["metadata"].get("deletionTimestamp"), p and p["metadata"])
        t.check("r%d's container still runs while nobody is there to stop it" % victim,
                kl.pid_alive(before[victim]["pid"]))

        c.start_kubelet()
        c.wait_node_ready(timeout=60)
        # The shims kept running across the kill and the new kubelet started: no shim holds the
        # kubelet's lock. A second kubelet on the same dirs is refused and touches nothing.
        lock = os.path.join(c.data, "kubelet.lock")
        c.wait_for(lambda: (kl.read(lock) or "").strip() == str(c.kubelet.pid), 30)
        second = subprocess.run(c.kubelet_cmd(), capture_output=True, text=True, timeout=60)
        t.check("a second kubelet on the same dirs exits 1, naming the lock and the first's pid",
                second.returncode == 1 and "kubelet.lock is locked by another skiff-kubelet "
                "(pid %d)" % c.kubelet.pid in second.stderr,
                "rc=%d\n%s" % (second.returncode, second.stderr[-500:]))
        gone = c.wait_gone("r%d" % victim, timeout=60)
        t.check("new kubelet finishes r%d's deletion (object gone within 60 s)" % victim, gone,
                c.get_pod("r%d" % victim))
        left = c.wait_for(lambda: not c.leftovers(pods[victim], [before[victim]["pid"],
                                                                 before[victim]["shim"]]), 20)
        t.check("r%d fully cleaned: no process, mount, cgroup, sandbox, container dir" % victim,
                left, "\n".join(c.leftovers(pods[victim], [before[victim]["pid"],
                                                          before[victim]["shim"]])))
        t.check("r%d's IP lease is released" % victim, before[victim]["ip"] not in
                c.ipam_leases(), c.ipam_leases())

        # let the new kubelet sync everything at least once, then compare
        time.sleep(5)
        after = {}
        for i in range(N - 1):
            ok, p = c.wait_pod("r%d" % i, lambda p: kl.phase(p) == "Running", 30)
            after[i] = snapshot(c, p)
        for i in range(N - 1):
            b, a = before[i], after[i]
            t.check("r%d: same container id, PID %d and shim PID %d, restartCount 0" % (
                i, b["pid"], b["shim"]),
                a["cid"] == b["cid"] and a["pid"] == b["pid"] and a["shim"] == b["shim"]
                and a["restarts"] == 0 and kl.pid_alive(a["pid"]), (b, a))
            t.eq("r%d: same pod IP" % i, a["ip"], b["ip"])
        t.eq("no duplicate containers: one container dir per remaining pod",
             len(os.listdir(os.path.join(c.run_dir, "containers"))), ncontainers - 1)
        t.eq("one veth fewer (the deleted pod's)", len(c.veths()), len(veths) - 1)
        evs = [e for i in range(N - 1) for e in c.events("r%d" % i)]
        started = sum(e.get("count") or 1 for e in evs if e.get("reason") == "Started")
        killing = [e for e in evs if e.get("reason") == "Killing"]
        t.check("no container started twice nor killed for the adopted pods (Started events: "
                "%d for %d pods)" % (started, N - 1), started <= N - 1 and not killing,
                c.event_text(None)[-1500:])

        # the adopted pods are still managed: deleting one works
        r = c.delete_pod("r0", grace=1)
        t.check("adopted pod r0 can be deleted", c.wait_gone("r0", 30) is not None, r)
        t.check("r0's container process ended", not kl.pid_alive(before[0]["pid"]))


if __name__ == "__main__":
    t = kl.Test("kubelet_restart", limit=600)
    t.run(body)
