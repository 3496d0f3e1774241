"""The machine's kubectl (and skiffctl) against a running pod through the API server's
pods/log and pods/exec proxy to the kubelet: `logs` and `logs -f` (sees new lines), `--tail`,
`-c`, `--previous`, `exec -- sh -c 'exit 3'` exits 3, exec with stdin, `describe pod` shows
the container state and events. Needs root and kubectl (skips with 77 otherwise)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402


def follow(cmd, seconds, want_after):
    """Runs a follow command for `seconds`, returns its output lines."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
    return out.splitlines(), err


def counters(lines):
    return [int(m.group(1)) for l in lines for m in [re.search(r"tick (\d+)", l)] if m]


def body(t):
    with t.cluster() as c:
        c.create_pod(kl.pod("talker", [
            kl.ctr("main", ["sh", "-c", "i=0; while [ $i -lt 100000 ]; do echo tick $i; "
                            "i=$((i+1)); sleep 0.5; done"]),
            kl.ctr("side", ["sh", "-c", "echo side-says-hi >&2; exec sleep 3600"])]))
        c.wait_running("talker")
        kubectl = c.kubectl
        # A few ticks in the log first (was a fixed 2 s sleep): the checks below read them.
        c.wait_for(lambda: len(counters(kubectl(["logs", "talker", "-c", "main"])
                                        .stdout.splitlines())) >= 2, 30)

        r = kubectl(["logs", "talker", "-c", "main"])
        first = counters(r.stdout.splitlines())
        t.check("kubectl logs -c main: tick lines", r.returncode == 0 and len(first) >= 2, r)
        r = kubectl(["logs", "talker", "-c", "side"])
        t.check("kubectl logs -c side: stderr line", "side-says-hi" in r.stdout, r)
        r = kubectl(["logs", "talker"])
        # kubectl (>= 1.24) picks the first container itself and says so
        t.check("kubectl logs without -c: kubectl defaults to the first container",
                r.returncode == 0 and "tick" in r.stdout and "main" in r.stderr, r)
        r = kubectl(["logs", "talker", "-c", "main", "--tail", "1"])
        t.check("kubectl logs --tail 1: one line", len(r.stdout.splitlines()) == 1, r)
        r = kubectl(["logs", "talker", "-c", "main", "--timestamps", "--tail", "1"])
        t.check("kubectl logs --timestamps: RFC3339 prefix",
                re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r.stdout) is not None, r)

        # 10 s (was 4): kubectl itself can take seconds to start on a loaded machine.
        lines, err = follow(["kubectl", "--kubeconfig", c.api.kubeconfig, "logs", "-f",
                             "talker", "-c", "main"], 10, max(first or [0]))
        got = counters(lines)
        t.check("kubectl logs -f sees new lines (last %s > %s)" % (
            got[-1] if got else None, max(first or [0])),
            got and got[-1] > max(first or [0]) + 2, (lines[-5:], err))

        r = kubectl(["exec", "talker", "-c", "main", "--", "sh", "-c", "exit 3"])
        t.eq("kubectl exec -- sh -c 'exit 3' exits 3", r.returncode, 3)
        r = kubectl(["exec", "talker", "-c", "main", "--", "sh", "-c",
                     "echo out; echo err >&2; hostname"])
        t.check("kubectl exec: stdout and stderr apart, hostname is the pod name",
                r.returncode == 0 and r.stdout.split() == ["out", "talker"]
                and r.stderr.strip() == "err", r)
        r = kubectl(["exec", "-i", "talker", "-c", "main", "--", "sh", "-c", "tr a-z A-Z"],
                    input="hello stdin\n")
        t.check("kubectl exec -i: stdin reaches the process", r.stdout.strip() == "HELLO STDIN",
                r)
        r = kubectl(["exec", "talker", "-c", "main", "--", "/no/such/thing"])
        t.check("kubectl exec of a missing binary fails with a message",
                r.returncode != 0 and r.stderr.strip(), r)

        r = kubectl(["describe", "pod", "talker"])
        d = r.stdout
        t.check("kubectl describe pod: container states Running",
                r.returncode == 0 and len(re.findall(r"State:\s+Running", d)) == 2, d[-2500:])
        t.check("kubectl describe pod: IP, Node, Ready condition",
                re.search(r"IP:\s+10\.244\.0\.", d) and "skiff-e2e-node" in d
                and re.search(r"Ready\s+True", d), d[:2500])
        t.check("kubectl describe pod: Events with Pulled/Created/Started",
                "Events:" in d and "Started" in d and "Created" in d, d[-2500:])

        # --previous after a restart
        c.create_pod(kl.pod("restarter", [kl.ctr("main", ["sh", "-c",
                                                          "echo run-$(date +%s%N); sleep 1; "
                                                          "exit 1"])]))
        ok, p = c.wait_pod("restarter", lambda p: kl.cstatus(p, "main").get("restartCount", 0)
                           >= 1 and kl.state_reason(kl.cstatus(p, "main"))[0] == "running"
                           or kl.cstatus(p, "main").get("restartCount", 0) >= 1, 60)
        r = kubectl(["logs", "restarter", "--previous"])
        t.check("kubectl logs --previous shows the previous instance", ok
                and r.returncode == 0 and "run-" in r.stdout, r)

        # skiffctl logs / exec / describe, when skiffctl has them
        sk = kl.testlib.bin_path("skiffctl")
        if os.access(sk, os.X_OK):
            h = kl.sh([sk, "--help"]).stdout
            if " logs" in h:
                r = c.skiffctl(["logs", "talker", "-c", "main", "--tail", "2"])
                t.check("skiffctl logs --tail 2", r.returncode == 0 and
                        len(counters(r.stdout.splitlines())) == 2, r)
                lines, err = follow([sk, "--kubeconfig", c.api.kubeconfig, "logs", "-f",
                                     "talker", "-c", "main"], 10, 0)
                t.check("skiffctl logs -f streams", len(counters(lines)) >= 3, (lines[-3:], err))
            else:
                t.check("skiffctl has logs", False, h)
            if " exec" in h:
                r = c.skiffctl(["exec", "talker", "-c", "main", "--", "sh", "-c", "exit 3"])
                t.eq("skiffctl exec -- sh -c 'exit 3' exits 3", r.returncode, 3)
                r = c.skiffctl(["exec", "-i", "talker", "-c", "main", "--", "cat"],
                               input="via-stdin\n")
                t.check("skiffctl exec -i", r.stdout.strip() == "via-stdin", r)
            else:
                t.check("skiffctl has exec", False, h)
            r = c.skiffctl(["describe", "pod", "talker"])
            t.check("skiffctl describe pod: states and events",
                    "Running" in r.stdout and "Events" in r.stdout, r.stdout[-1500:])


if __name__ == "__main__":
    t = kl.Test("kubelet_kubectl", limit=600, need=("kubectl",))
    t.run(body)
