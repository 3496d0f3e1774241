"""Container lifecycle on a real kernel: a failing liveness probe restarts the container; a
failing readiness probe takes the pod out of Ready (and back in when it passes); restart
back-off grows (CrashLoopBackOff, generous bounds on observed gaps); restartPolicy Never ends in
Succeeded or Failed with the exit code; activeDeadlineSeconds fails the pod (DeadlineExceeded);
graceful termination runs the SIGTERM handler.
Needs root (skips with 77 otherwise)."""
import calendar
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402


def run_start(cs):
    """startedAt (epoch seconds) of the run restartCount counts: the current state's, or while
    waiting in back-off the last terminated one's. None when the status has none."""
    st = cs.get("state") or {}
    for src in (st.get("running"), st.get("terminated"),
                (cs.get("lastState") or {}).get("terminated") if "waiting" in st else None):
        if src and src.get("startedAt"):
            try:
                return calendar.timegm(time.strptime(src["startedAt"], "%Y-%m-%dT%H:%M:%SZ"))
            except ValueError:
                return None
    return None


def exec_probe(cmd, period=1, failure=1, initial=0):
    return {"exec": {"command": cmd}, "periodSeconds": period, "failureThreshold": failure,
            "initialDelaySeconds": initial, "timeoutSeconds": 2}


def body(t):
    with t.cluster() as c:
        # ---- liveness: healthy for ~4 s, then the probe fails and the kubelet restarts it
        c.create_pod(kl.pod("live", [kl.ctr(
            "main", ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600"],
            livenessProbe=exec_probe(["cat", "/tmp/healthy"], period=1, failure=2))]))
        # ---- readiness: /tmp/ready decides
        c.create_pod(kl.pod("ready", [kl.ctr(
            "main", ["sh", "-c", "touch /tmp/ready; exec sleep 3600"],
            readinessProbe=exec_probe(["cat", "/tmp/ready"], period=1, failure=1))]))
        # ---- crash loop: exits 1 at once; restartPolicy Always
        c.create_pod(kl.pod("crash", [kl.ctr("main", ["sh", "-c", "echo crashing; exit 1"])]))
        # ---- restartPolicy Never
        c.create_pod(kl.pod("ok-once", [kl.ctr("main", ["sh", "-c", "exit 0"])],
                            restartPolicy="Never"))
        c.create_pod(kl.pod("fail-once", [kl.ctr("main", ["sh", "-c", "exit 2"])],
                            restartPolicy="Never"))
        # ---- OnFailure: exit 0 ends it (Succeeded)
        c.create_pod(kl.pod("onfail", [kl.ctr("main", ["sh", "-c", "exit 0"])],
                            restartPolicy="OnFailure"))
        # ---- activeDeadlineSeconds: stopped and Failed 3 s after it started
        c.create_pod(kl.pod("deadline", [kl.ctr("main", ["sleep", "3600"])],
                            activeDeadlineSeconds=3))

        # observe the crash loop's restarts while the rest happens
        restarts = {}  # restartCount -> first time seen
        # restartCount -> that run's startedAt from the status (the kubelet's clock, 1 s steps):
        # the back-off check uses these, not when this loop (which polls three pods, on a busy
        # machine seconds apart) happened to see a restart.
        run_starts = {}
        reasons = set()
        t_end = time.time() + 100
        live_ok = ready_cycle = False
        ready_state = "start"
        n = 0
        while time.time() < t_end and n < 2000:
            n += 1
            p = c.get_pod("crash")
            cs = kl.cstatus(p, "main")
            rc = cs.get("restartCount", 0)
            if rc not in restarts:
                restarts[rc] = time.time()
                kl.log("crash: restartCount %d" % rc)
            started = run_start(cs)
            if started is not None and rc not in run_starts:
                run_starts[rc] = started
            kind, reason, msg = kl.state_reason(cs)
            if reason:
                reasons.add(reason)
            # readiness cycle: Ready -> remove file -> not Ready -> restore -> Ready
            r = c.get_pod("ready")
            if ready_state == "start" and kl.condition(r, "Ready") == "True":
                c.exec_in(r, "main", ["rm", "-f", "/tmp/ready"])
                ready_state = "removed"
                t_removed = time.time()
            elif ready_state == "removed" and kl.condition(r, "Ready") == "False":
                t.check("readiness failure takes the pod out of Ready (%.1f s)" %
                        (time.time() - t_removed),
                        kl.cstatus(r, "main").get("ready") is False
                        and kl.condition(r, "ContainersReady") == "False"
                        and kl.phase(r) == "Running", r.get("status"))
                c.exec_in(r, "main", ["touch", "/tmp/ready"])
                ready_state = "restored"
            elif ready_state == "restored" and kl.condition(r, "Ready") == "True":
                ready_cycle = True
                ready_state = "done"
            lp = c.get_pod("live")
            if kl.cstatus(lp, "main").get("restartCount", 0) >= 1:
                live_ok = True
            if live_ok and ready_state == "done" and len(restarts) >= 4:
                break
            time.sleep(0.25)

        # liveness
        lp = c.get_pod("live")
        cs = kl.cstatus(lp, "main")
        t.check("failing liveness probe restarts the container", live_ok, cs)
        last = (cs.get("lastState") or {}).get("terminated") or {}
        t.check("liveness restart: lastState terminated (killed: exit 137 or 143)",
                last.get("exitCode") in (137, 143), cs.get("lastState"))
        # The kubelet posts Events from a background thread: they may trail the restart.
        c.wait_for(lambda: (lambda e: "Unhealthy" in e and "iveness" in e and "Killing" in e)(
            c.event_text("live")), 30)
        ev = c.event_text("live")
        t.check("liveness: Unhealthy event names the probe", "Unhealthy" in ev and
                "iveness" in ev, ev)
        t.check("liveness: Killing event", "Killing" in ev, ev)

        # readiness
        t.check("readiness: the pod came back to Ready after the probe passed again",
                ready_cycle, (ready_state, c.get_pod("ready").get("status")))
        t.eq("readiness never restarts the container",
             kl.cstatus(c.get_pod("ready"), "main").get("restartCount"), 0)

        # back-off
        # When each counted run started: its startedAt where the status had one, else when the
        # loop saw the count.
        when = {**restarts, **run_starts}
        gap = {k: round(when[k] - when[k - 1], 1) for k in sorted(when) if k - 1 in when}
        kl.log("crash: restart counts %s, run starts %s, gaps before each count (s): %s" % (
            sorted(restarts), run_starts, gap))
        t.check("crash loop restarted at least 3 times in 100 s", len(restarts) >= 4,
                sorted(restarts))
        # Kubernetes: 10 s, 20 s, 40 s ... The gap between restarts 1->2 and 2->3 must grow
        # (generous: each later gap at least 1.3x the earlier one, first gap >= 5 s).
        # Every count 0..3 is seen (restarts are >= 10 s apart, the loop polls far more often),
        # so both gaps exist; a missing one fails here rather than skipping the check.
        g2, g3 = gap.get(2), gap.get(3)
        t.check("back-off grows: gaps 1->2 %s s, 2->3 %s s: the first >= 5 s, the next "
                ">= 1.3x" % (g2, g3), g2 is not None and g3 is not None and g2 >= 5 and
                g3 >= 1.3 * g2, gap)
        t.check("CrashLoopBackOff reason seen while waiting", "CrashLoopBackOff" in reasons,
                reasons)
        c.wait_for(lambda: "BackOff" in c.event_text("crash"), 30)
        ev = c.event_text("crash")
        t.check("BackOff event", "BackOff" in ev, ev)
        p = c.get_pod("crash")
        last = (kl.cstatus(p, "main").get("lastState") or {}).get("terminated") or {}
        t.check("crash: lastState.terminated exit 1 reason Error",
                last.get("exitCode") == 1 and last.get("reason") == "Error", last)

        # restartPolicy Never / OnFailure
        ok, p = c.wait_pod("ok-once", lambda p: kl.phase(p) in ("Succeeded", "Failed"), 30)
        t.eq("Never + exit 0 -> Succeeded", kl.phase(p), "Succeeded")
        term = (kl.cstatus(p, "main").get("state") or {}).get("terminated") or {}
        t.check("exit 0 -> terminated Completed", term.get("exitCode") == 0
                and term.get("reason") == "Completed", term)
        ok, p = c.wait_pod("fail-once", lambda p: kl.phase(p) in ("Succeeded", "Failed"), 30)
        t.eq("Never + exit 2 -> Failed", kl.phase(p), "Failed")
        cs = kl.cstatus(p, "main")
        term = (cs.get("state") or {}).get("terminated") or {}
        t.check("exit 2 -> terminated Error exitCode 2, no restart",
                term.get("exitCode") == 2 and term.get("reason") == "Error"
                and cs.get("restartCount") == 0, cs)
        ok, p = c.wait_pod("onfail", lambda p: kl.phase(p) in ("Succeeded", "Failed"), 30)
        t.eq("OnFailure + exit 0 -> Succeeded", kl.phase(p), "Succeeded")

        # activeDeadlineSeconds (Kubernetes' activeDeadlineHandler): Failed, DeadlineExceeded,
        # the container stopped and not restarted (restartPolicy Always)
        ok, p = c.wait_pod("deadline", lambda p: kl.phase(p) == "Failed"
                           and ((kl.cstatus(p, "main").get("state") or {}).get("terminated")),
                           60)
        st = (p.get("status") or {}) if p else {}
        t.check("activeDeadlineSeconds 3: Failed with reason DeadlineExceeded", ok
                and st.get("reason") == "DeadlineExceeded" and st.get("message") ==
                "Pod was active on the node longer than the specified deadline", st)
        if ok:
            started = calendar.timegm(time.strptime(st["startTime"], "%Y-%m-%dT%H:%M:%SZ"))
            cs = kl.cstatus(p, "main")
            ended = calendar.timegm(time.strptime(
                cs["state"]["terminated"]["finishedAt"], "%Y-%m-%dT%H:%M:%SZ"))
            t.check("deadline: the container ran until the deadline, not less (it ended %d s "
                    "after startTime: 3 s, then SIGTERM and 2 s grace)" % (ended - started),
                    ended - started >= 3, cs)
            t.eq("deadline: not restarted", cs.get("restartCount"), 0)
        ev = c.event_text("deadline")
        t.check("deadline: DeadlineExceeded event", "DeadlineExceeded" in ev, ev)

        # graceful termination: the TERM handler runs (it writes to a hostPath), then the
        # container is gone
        hp = os.path.join(c.root, "hostpath")
        os.makedirs(hp, exist_ok=True)
        c.create_pod(kl.pod("graceful", [kl.ctr(
            "main", ["sh", "-c", "trap 'echo got-term > /hp/term; exit 0' TERM; "
                     "while true; do sleep 0.2; done"],
            volumeMounts=[{"name": "hp", "mountPath": "/hp"}])],
            terminationGracePeriodSeconds=10,
            volumes=[{"name": "hp", "hostPath": {"path": hp, "type": "Directory"}}]))
        c.wait_running("graceful")
        t0 = time.time()
        c.delete_pod("graceful")
        gone = c.wait_gone("graceful", 30)
        t.check("graceful: pod deleted within the grace period (%.1f s)" % (time.time() - t0),
                gone)
        t.eq("graceful: the SIGTERM trap ran (hostPath file)",
             (kl.read(os.path.join(hp, "term"), "") or "").strip(), "got-term")


if __name__ == "__main__":
    t = kl.Test("kubelet_lifecycle", limit=600)
    t.run(body)
