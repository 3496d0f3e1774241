#!/usr/bin/env python3
"""pods/log and pods/exec end to end without containers: skiff-apiserver (HTTPS) proxies to a
real KubeletServer run by skiff-kubelet-server-tool, whose pods are a JSON file (log files we
write in the CRI format) and whose exec runs host processes. Checked with the machine's kubectl
and with skiffctl: logs (plain, --timestamps, --tail, -f until the "container" stops, across a
rotation), exec (output, exit codes, stdin), Kubernetes' error messages, and the kubelet refusing
requests without its token. No root needed."""
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.ensure_modules("yaml")
testlib.deadline(300)
t = testlib.Checks()

KUBECTL = shutil.which("kubectl")
SKIFFCTL = testlib.bin_path("skiffctl")
TOOL = testlib.need_bin("skiff-kubelet-server-tool")

srv = testlib.Server().start()
d = srv.dir
token_file = os.path.join(srv.data, "pki", "kubelet-client.token")
t.check("the API server made the kubelet client token (0600)",
        os.path.exists(token_file) and (os.stat(token_file).st_mode & 0o777) == 0o600)

# --- the fake node's pods.
log_c = os.path.join(d, "c.log")
prev_c = os.path.join(d, "c-prev.log")
pods_file = os.path.join(d, "pods.json")


def write_pods(running=True):
    pods = {
        "default/p": {"c": {"log": log_c, "previous": prev_c, "running": running}},
        "default/multi": {"a": {"log": log_c, "running": True},
                          "b": {"log": log_c, "running": True}},
    }
    tmp = pods_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(pods, f)
    os.rename(tmp, pods_file)




def write_log():
    with open(log_c, "w") as f:
        f.write("2024-05-01T10:00:00.000000000Z stdout F hello\n"
                "2024-05-01T10:00:01.500000000Z stderr P part1-\n"
                "2024-05-01T10:00:02.000000000Z stderr F part2\n"
                "2024-05-01T10:00:03.000000000Z stdout F third\n")


write_log()
with open(prev_c, "w") as f:
    f.write("2024-05-01T09:00:00Z stdout F from the previous instance\n")
write_pods()

tool_log = open(os.path.join(d, "tool.log"), "wb")
tool = subprocess.Popen([TOOL, "--pods", pods_file, "--cert-dir", os.path.join(d, "kpki"),
                         "--token-file", token_file], stdout=subprocess.PIPE, stderr=tool_log)
try:
    line = tool.stdout.readline().decode()
    t.check("kubelet server tool started", line.startswith("port "), line)
    kport = int(line.split()[1])

    # --- the kubelet refuses requests without its token.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def kubelet_get(path, token=None):
        c = http.client.HTTPSConnection("127.0.0.1", kport, context=ctx, timeout=10)
        h = {"Authorization": "Bearer " + token} if token else {}
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    t.eq("kubelet /healthz without a token", kubelet_get("/healthz"), (200, "ok"))
    t.eq("kubelet logs without a token -> 401",
         kubelet_get("/containerLogs/default/p/c")[0], 401)
    t.eq("kubelet logs with a wrong token -> 401",
         kubelet_get("/containerLogs/default/p/c", "nope")[0], 401)
    with open(token_file) as f:
        ktoken = f.read().strip()
    t.eq("kubelet logs with the token",
         kubelet_get("/containerLogs/default/p/c", ktoken),
         (200, "hello\npart1-part2\nthird\n"))

    # --- objects: a node pointing at the tool, pods bound to it.
    api = srv.client()
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": kport}}}}
    r = api.post("/api/v1/nodes", node)
    t.check("node created", r.status == 201, r)
    cur = api.get("/api/v1/nodes/n1").json
    cur["status"] = node["status"]
    r = api.put("/api/v1/nodes/n1/status", cur)
    t.check("node status set", r.status == 200, r)

    def pod(name, containers, node_name="n1", running=True):
        p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
             "spec": {"containers": [{"name": c, "image": "busybox:1.35"} for c in containers]}}
        if node_name:
            p["spec"]["nodeName"] = node_name
        r = api.post("/api/v1/namespaces/default/pods", p)
        t.check("pod %s created" % name, r.status == 201, r)
        if running:
            cur = api.get("/api/v1/namespaces/default/pods/" + name).json
            cur["status"] = {"phase": "Running", "containerStatuses": [
                {"name": c, "ready": True, "restartCount": 1, "image": "busybox:1.35",
                 "imageID": "", "containerID": "skiff://" + "ab" * 32,
                 "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                              "startedAt": "2024-05-01T09:00:00Z",
                                              "finishedAt": "2024-05-01T09:59:00Z"}}}
                for c in containers]}
            r = api.put("/api/v1/namespaces/default/pods/%s/status" % name, cur)
            t.check("pod %s status set" % name, r.status == 200, r)

    pod("p", ["c"])
    pod("multi", ["a", "b"])
    pod("pending", ["c"], node_name=None, running=False)

    def run(args, stdin=None, timeout=30):
        r = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    # kubectl picks a container itself; the API's answer when none is named:
    r = api.get("/api/v1/namespaces/default/pods/multi/log")
    t.check("log of a two-container pod without a container: 400 naming the choices",
            r.status == 400 and r.json.get("message") ==
            "a container name must be specified for pod multi, choose one of: [a b]", r)
    r = api.get("/api/v1/namespaces/default/pods/p/log?container=zz")
    t.check("log of an unknown container: 400",
            r.status == 400 and r.json.get("message") == "container zz is not valid for pod p", r)

    clients = []
    if KUBECTL:
        clients.append(("kubectl", [KUBECTL, "--kubeconfig", srv.kubeconfig]))
    else:
        testlib.log("no kubectl on this machine: checking skiffctl only")
    if os.access(SKIFFCTL, os.X_OK):
        clients.append(("skiffctl", [SKIFFCTL, "--kubeconfig", srv.kubeconfig]))
    t.check("at least one client to test with", clients)

    for name, cli in clients:
        testlib.log("== %s" % name)
        write_log()
        rc, out, err = run(cli + ["logs", "p"])
        t.eq(name + " logs", (rc, out), (0, "hello\npart1-part2\nthird\n"))
        rc, out, err = run(cli + ["logs", "p", "--timestamps"])
        t.eq(name + " logs --timestamps", out,
             "2024-05-01T10:00:00Z hello\n2024-05-01T10:00:01.5Z part1-part2\n"
             "2024-05-01T10:00:03Z third\n")
        rc, out, err = run(cli + ["logs", "p", "--tail", "1"])
        t.eq(name + " logs --tail 1", out, "third\n")
        rc, out, err = run(cli + ["logs", "p", "--previous"])
        t.eq(name + " logs --previous", out, "from the previous instance\n")
        rc, out, err = run(cli + ["logs", "multi", "-c", "b"])
        t.eq(name + " logs -c b", (rc, out), (0, "hello\npart1-part2\nthird\n"))
        rc, out, err = run(cli + ["logs", "pending"])
        t.check(name + " logs of an unscheduled pod",
                rc != 0 and 'container "c" in pod "pending" is waiting to start: '
                'ContainerCreating' in err, err)
        rc, out, err = run(cli + ["logs", "nosuch"])
        t.check(name + " logs of a missing pod", rc != 0 and 'pods "nosuch" not found' in err, err)

        # exec
        rc, out, err = run(cli + ["exec", "p", "--", "echo", "hi there"])
        t.eq(name + " exec echo", (rc, out), (0, "hi there\n"))
        rc, out, err = run(cli + ["exec", "p", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
        t.eq(name + " exec exit 3: exit status", rc, 3)
        t.eq(name + " exec exit 3: stdout", out, "out\n")
        t.check(name + " exec exit 3: stderr", "err\n" in err, err)
        rc, out, err = run(cli + ["exec", "-i", "p", "--", "sh", "-c", "tr a-z A-Z; exit 0"],
                           stdin=b"abc\ndef\n")
        t.eq(name + " exec -i with stdin", (rc, out), (0, "ABC\nDEF\n"))
        rc, out, err = run(cli + ["exec", "pending", "--", "true"])
        t.check(name + " exec in an unscheduled pod",
                rc != 0 and "pod pending does not have a host assigned" in err, err)

        # logs -f: lines keep coming (also after a rotation) until the container stops.
        with open(log_c, "w") as f:
            f.write("2024-05-01T11:00:00Z stdout F first\n")
        write_pods(running=True)
        f_proc = subprocess.Popen(cli + ["logs", "-f", "p"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        got = []

        def reader():
            for l in f_proc.stdout:
                got.append(l.decode())
        th = threading.Thread(target=reader, daemon=True)
        th.start()

        def wait_for(n, secs=15):
            end = time.time() + secs
            while len(got) < n and time.time() < end:
                time.sleep(0.05)
            return len(got) >= n
        t.check(name + " logs -f: existing line", wait_for(1), got)
        with open(log_c, "a") as f:
            f.write("2024-05-01T11:00:01Z stdout F second\n")
        t.check(name + " logs -f: appended line arrives", wait_for(2), got)
        os.rename(log_c, log_c + ".1")
        with open(log_c, "w") as f:
            f.write("2024-05-01T11:00:02Z stdout F after rotation\n")
        t.check(name + " logs -f: line after rotation arrives", wait_for(3), got)
        t.check(name + " logs -f still running while the container runs", f_proc.poll() is None)
        write_pods(running=False)
        try:
            rc = f_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            f_proc.kill()
            rc = "still running"
        th.join(timeout=5)
        t.eq(name + " logs -f ends when the container stops", rc, 0)
        t.eq(name + " logs -f output", got, ["first\n", "second\n", "after rotation\n"])
        write_pods(running=True)
finally:
    tool.terminate()
    try:
        tool.wait(timeout=10)
    except subprocess.TimeoutExpired:
        tool.kill()
        tool.wait()
    tool_log.close()

t.check("apiserver still running", srv.alive())
sys.exit(t.finish())
