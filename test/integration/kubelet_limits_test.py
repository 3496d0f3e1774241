"""cgroup limits on a real kernel: a memory limit produces OOMKilled and a restart; a pids limit
stops a (bounded) fork bomb; a CPU quota of 200m holds a busy loop's usage near 0.2 cores
(a generous band, measured from the container's cgroup over a few seconds: a behaviour check,
not a benchmark). Needs root (skips with 77 otherwise)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

PIDS_LIMIT = 64


def pids_flag():
    """How this kubelet takes a pod pids limit: Kubernetes' --pod-max-pids, if it has it."""
    exe = kl.testlib.need_bin("skiff-kubelet")
    try:
        h = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=20)
        text = h.stdout + h.stderr
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    return "--pod-max-pids" if "--pod-max-pids" in text else None


def cpu_usage_ns(c, uid, cid):
    """Cumulative CPU time of the container cgroup (v1 cpuacct.usage or v2 cpu.stat)."""
    d = c.container_cgroup(uid, cid, "cpuacct") or c.container_cgroup(uid, cid, "cpu,cpuacct")
    if d and os.path.exists(os.path.join(d, "cpuacct.usage")):
        return int(kl.read(os.path.join(d, "cpuacct.usage")).strip()), d
    d = c.container_cgroup(uid, cid, "unified") or c.container_cgroup(uid, cid, "")
    if d and os.path.exists(os.path.join(d, "cpu.stat")):
        for line in kl.read(os.path.join(d, "cpu.stat")).splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) * 1000, d
    return None, d


def body(t):
    flag = pids_flag()
    extra = [flag, str(PIDS_LIMIT)] if flag else []
    with t.cluster(kubelet_args=extra) as c:
        c.create_pod(kl.sleeper("bystander"))
        c.wait_running("bystander")

        # ---- memory: 32Mi, `tail /dev/zero` buffers until the OOM killer ends it
        c.create_pod(kl.pod("oom", [kl.ctr("hog", ["sh", "-c", "echo eating; tail /dev/zero"],
                                           resources={"limits": {"memory": "32Mi"}})]))
        ok, p = c.wait_pod("oom", lambda p: kl.cstatus(p, "hog").get("restartCount", 0) >= 1
                           and (kl.cstatus(p, "hog").get("lastState") or {}).get("terminated"),
                           timeout=90)
        cs = kl.cstatus(p, "hog")
        last = (cs.get("lastState") or {}).get("terminated") or {}
        t.check("memory limit: container restarted (restartCount >= 1)", ok, cs)
        t.eq("memory limit: lastState.terminated.reason", last.get("reason"), "OOMKilled")
        t.check("memory limit: exit code 137 (SIGKILL)", last.get("exitCode") == 137, last)
        uid = p["metadata"]["uid"]
        cid = kl.container_id(cs)
        mem = c.container_cgroup(uid, cid, "memory")
        lim = kl.read(os.path.join(mem, "memory.limit_in_bytes")) if mem else None
        if lim is None and mem:
            lim = kl.read(os.path.join(mem, "memory.max"))
        t.check("memory limit: the container cgroup has limit 32Mi",
                lim is not None and int(lim.strip()) == 32 * 1024 * 1024, (mem, lim))
        t.check("OOMKilled event or status visible", "OOM" in c.event_text("oom") or
                last.get("reason") == "OOMKilled", c.event_text("oom"))
        c.delete_pod("oom", grace=0)

        # ---- pids: up to 500 background sleeps (bounded: if the limit fails, 500 sleeps end
        # by themselves after 120 s); the limit must stop them well before
        if not flag:
            t.check("kubelet has a way to set a pod pids limit (--pod-max-pids)", False,
                    "skiff-kubelet --help lists no --pod-max-pids; Kubernetes' pod pids limit "
                    "is that kubelet flag")
        else:
            script = ("i=0; fails=0; while [ $i -lt 500 ]; do "
                      "sleep 120 & [ $? -ne 0 ] && fails=$((fails+1)); i=$((i+1)); done; "
                      "echo started-loop-done; sleep 3600")
            c.create_pod(kl.pod("forky", [kl.ctr("bomb", ["sh", "-c", script])]))
            ok, p = c.wait_pod("forky", lambda p: kl.phase(p) in ("Running", "Failed"), 60)
            uid = p["metadata"]["uid"]
            cid = kl.container_id(kl.cstatus(p, "bomb"))

            def pod_logs():
                out = ""
                for root, dirs, files in os.walk(c.log_dir):
                    for f in files:
                        if uid in root:
                            out += kl.read(os.path.join(root, f), "")
                return out
            # The shell's forks hit the limit within a moment; its complaints reach the CRI log
            # through the shim. Wait for them (was a fixed 5 s sleep), at least 5 s.
            time.sleep(5)
            c.wait_for(lambda: "fork" in pod_logs().lower() or
                       "resource temporarily unavailable" in pod_logs().lower(), 60)
            counts = []
            for h in kl.cgroup_hierarchies():
                if h.endswith("/pids"):
                    base = os.path.join(h, c.cgroup_parent)
                    for root, dirs, files in os.walk(base):
                        if uid in root and os.path.basename(root).startswith("pod"):
                            counts.append((root, kl.read(os.path.join(root, "pids.max"), "").strip(),
                                           kl.read(os.path.join(root, "pids.current"), "").strip()))
            t.check("pids: pod cgroup pids.max = %d" % PIDS_LIMIT,
                    any(m == str(PIDS_LIMIT) for _, m, _ in counts), counts)
            t.check("pids: pids.current stays <= the limit",
                    counts and all(cur.isdigit() and int(cur) <= PIDS_LIMIT for _, _, cur in counts),
                    counts)
            logs = pod_logs()
            t.check("pids: the shell reports failed forks in its log",
                    "fork" in logs.lower() or "resource temporarily unavailable" in logs.lower(),
                    logs[-800:])
            c.delete_pod("forky", grace=0)
        t.check("bystander pod still Running with 0 restarts",
                kl.phase(c.get_pod("bystander")) == "Running"
                and kl.cstatus(c.get_pod("bystander"), "main").get("restartCount") == 0)

        # ---- cpu: 200m quota, one busy loop
        c.create_pod(kl.pod("spin", [kl.ctr("loop", ["sh", "-c", "while :; do :; done"],
                                            resources={"limits": {"cpu": "200m"}})]))
        p = c.wait_running("spin")
        uid = p["metadata"]["uid"]
        cid = kl.container_id(kl.cstatus(p, "loop"))
        time.sleep(1)
        u0, d = cpu_usage_ns(c, uid, cid)
        t0 = time.monotonic()
        time.sleep(5)
        u1, _ = cpu_usage_ns(c, uid, cid)
        t1 = time.monotonic()
        if u0 is None or u1 is None:
            t.check("cpu: container cgroup usage readable", False, d)
        else:
            cores = (u1 - u0) / 1e9 / (t1 - t0)
            quota = kl.read(os.path.join(c.container_cgroup(uid, cid, "cpu") or "",
                                         "cpu.cfs_quota_us"), "?").strip()
            period = kl.read(os.path.join(c.container_cgroup(uid, cid, "cpu") or "",
                                          "cpu.cfs_period_us"), "?").strip()
            kl.log("cpu: quota %s/%s us, measured %.3f cores over %.1f s" % (
                quota, period, cores, t1 - t0))
            t.check("cpu: 200m quota holds a busy loop below 0.35 cores (measured %.3f)" % cores,
                    cores < 0.35, (quota, period, cores))
            t.check("cpu: the loop does run (measured %.3f > 0.05 cores)" % cores, cores > 0.05)
            t.check("cpu: cfs quota 20000 per period 100000 on the container (or pod) cgroup",
                    quota in ("20000",) or _pod_quota(c, uid) == "20000", (quota, period))


def _pod_quota(c, uid):
    base = os.path.join(kl.CGROUP_ROOT, "cpu", c.cgroup_parent)
    for root, dirs, files in os.walk(base):
        if uid in os.path.basename(root):
            return kl.read(os.path.join(root, "cpu.cfs_quota_us"), "").strip()
    return None


if __name__ == "__main__":
    t = kl.Test("kubelet_limits", limit=600)
    t.run(body)
