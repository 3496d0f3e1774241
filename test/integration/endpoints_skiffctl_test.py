#!/usr/bin/env python3
"""skiffctl's Service commands (expose, get svc/endpoints, describe svc) side by side with the
real kubectl 1.32, against skiff-apiserver + skiff-controller-manager (Deployment, ReplicaSet
and Endpoints controllers).

Loopback only, no root, no kubelet: a thread plays the kubelets, giving each pod a pod IP and
marking it Running + Ready. Checks: `skiffctl expose deployment` creates the Service that
`kubectl expose --dry-run=client -o json` generates (selector from spec.selector.matchLabels,
labels, ports, target port, type; port names only with several ports) and prints
`service/web exposed`; the real `kubectl expose` works against skiff's API server too; `get svc`
(and -o wide), `get endpoints`/`ep` print kubectl's text (ages aside); `describe svc` is
byte-identical to kubectl's, for a NodePort Service with ready endpoints, a headless one and a
selector-less one — but for the Endpoints lines while the server serves no EndpointSlices
(kubectl 1.32 reads those and prints <none>; skiffctl then reads the Endpoints object); expose
errors in kubectl's words."""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import MERGE  # noqa: E402

t = ctrl_lib.begin(300)
CM = testlib.need_bin("skiff-controller-manager")
CTL = testlib.need_bin("skiffctl")
KUBECTL = shutil.which("kubectl")
if not KUBECTL:
    testlib.skip("kubectl is not installed (the comparison needs the real kubectl)")
NS = "ctl-svc"
D_PATH, RS_PATH, POD_PATH = ctrl_lib.workload_paths(NS)
SVC_PATH = "/api/v1/namespaces/%s/services" % NS
EP_PATH = "/api/v1/namespaces/%s/endpoints" % NS
wait_for = functools.partial(ctrl_lib.wait_for, timeout=40, interval=0.2)

srv = testlib.Server().start()
api = srv.client()
cache = testlib.tmpdir()


class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "exit %d\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)


def run(argv, timeout=60):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Run(subprocess.CompletedProcess(argv, 124, "", "timed out"))
    return Run(p)


def ctl(*args):
    return run([CTL, "--kubeconfig", srv.kubeconfig, "-n", NS] + list(args))


def kubectl(*args):
    return run([KUBECTL, "--kubeconfig", srv.kubeconfig, "--cache-dir", cache, "-n", NS] +
               list(args))


class IpKubelet(threading.Thread):
    """Gives every pod of NS a pod IP, phase Running and Ready=True (not terminating ones)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop_ev = threading.Event()
        self.client = srv.client()
        self.next_ip = 10

    def run(self):
        rounds = 0
        while not self.stop_ev.wait(0.2) and rounds < 5000:
            rounds += 1
            try:
                r = self.client.get(POD_PATH)
                if r.status != 200:
                    continue
                for p in r.json["items"]:
                    if p["metadata"].get("deletionTimestamp") or ctrl_lib.is_ready(p):
                        continue
                    ip = "10.244.1.%d" % self.next_ip
                    self.next_ip += 1
                    body = ctrl_lib.ready_status()
                    body["status"].update({"podIP": ip, "podIPs": [{"ip": ip}],
                                           "hostIP": "10.250.0.11"})
                    self.client.patch("%s/%s/status" % (POD_PATH, p["metadata"]["name"]), body,
                                      MERGE)
            except Exception as e:  # keep going through transient errors
                testlib.log("kubelet thread: %r" % e)


cm = ctrl_lib.controller_manager(CM, srv, "--allocate-node-cidrs=false")
kubelet = IpKubelet()
kubelet.start()
try:
    ctrl_lib.create_namespace(api, t, NS)
    r = api.post(D_PATH, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox",
                                                       "ports": [{"name": "http",
                                                                  "containerPort": 8080}]}]}}}})
    t.check("create deployment web (3 replicas, container port http 8080)", r.status == 201, r)

    # --- expose: the same Service kubectl would generate ---
    flags = ["--port", "80", "--target-port", "http", "--type", "NodePort"]
    k = kubectl("expose", "deployment", "web", *flags, "--dry-run=client", "-o", "json")
    t.check("kubectl expose --dry-run=client -o json works against skiff", k.rc == 0, k)
    want = json.loads(k.out) if k.rc == 0 else {}
    s = ctl("expose", "deployment", "web", *flags)
    t.eq("skiffctl expose prints kubectl's line", (s.rc, s.out), (0, "service/web exposed\n"))
    got = api.get(SVC_PATH + "/web").json or {}
    for field in ("selector", "type"):
        t.eq("expose: spec.%s as kubectl generates it" % field, got.get("spec", {}).get(field),
             want.get("spec", {}).get(field))
    strip_ports = [{k2: v for k2, v in p.items() if k2 != "nodePort"}
                   for p in got.get("spec", {}).get("ports", [])]
    t.eq("expose: ports as kubectl generates them (nodePort aside)", strip_ports,
         want.get("spec", {}).get("ports"))
    t.eq("expose: labels from the deployment", got.get("metadata", {}).get("labels"),
         want.get("metadata", {}).get("labels"))

    k = kubectl("expose", "deployment", "web", "--port", "8080", "--name", "web-k")
    t.eq("the real kubectl expose works against skiff's API server", (k.rc, k.out),
         (0, "service/web-k exposed\n"))
    s = ctl("expose", "deploy/web", "--name", "web-k", "--port", "8080")
    k = kubectl("expose", "deploy/web", "--name", "web-k", "--port", "8080")
    t.eq("expose of an existing name: same error as kubectl", (s.rc, s.err), (k.rc, k.err))
    s = ctl("expose", "deployment", "nope", "--port", "80")
    k = kubectl("expose", "deployment", "nope", "--port", "80")
    t.eq("expose of a missing deployment: same error as kubectl", (s.rc, s.err), (k.rc, k.err))

    # --- headless and selector-less Services ---
    r = api.post(SVC_PATH, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "db", "namespace": NS},
                            "spec": {"clusterIP": "None", "selector": {"app": "web"}}})
    t.check("create a headless service without ports", r.status == 201, r)
    r = api.post(SVC_PATH, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "manual", "namespace": NS,
                                         "annotations": {"note": "by hand"}},
                            "spec": {"ports": [{"name": "a", "port": 81, "protocol": "UDP"}]}})
    t.check("create a selector-less service", r.status == 201, r)

    def ready_eps(name="web"):
        ep = api.get(EP_PATH + "/" + name).json or {}
        return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or []) == 3

    t.check("3 ready endpoints for web", wait_for("web endpoints", ready_eps))
    # web-k (kubectl expose, above) gets its Endpoints from the controller on its own schedule;
    # the tables and describes below show them.
    t.check("3 ready endpoints for web-k", wait_for("web-k endpoints", lambda: ready_eps("web-k")))
    wait_for("db endpoints", lambda: len((api.get(EP_PATH + "/db").json or {}).get(
        "subsets", [{}])[0].get("addresses") or []) == 3)

    # --- get ---
    for args in (["get", "svc"], ["get", "services", "-o", "wide"], ["get", "endpoints"],
                 ["get", "ep", "web"], ["get", "svc", "web", "db"]):
        s, k = ctl(*args), kubectl(*args)
        t.check("%s: kubectl's columns" % " ".join(args),
                s.rc == 0 and s.out.split("\n")[0].split() == k.out.split("\n")[0].split(), s)
        t.eq("%s: same text as kubectl's (ages aside)" % " ".join(args), testlib.drop_age(s.out),
             testlib.drop_age(k.out))

    # --- describe ---
    # kubectl 1.32 reads the Endpoints lines from discovery.k8s.io/v1 EndpointSlices. While the
    # server does not serve them, kubectl prints "<none>" there and skiffctl falls back to the
    # Endpoints object: then every other byte must be kubectl's, and skiffctl's Endpoints lines
    # must list the ready endpoints.
    slices = api.get("/apis/discovery.k8s.io/v1").status == 200
    testlib.log("server serves EndpointSlices: %s" % slices)
    ep_line = re.compile(r"^Endpoints: .*$", re.M)

    def same_describe(desc, s, k, want_eps):
        if slices:
            return t.eq(desc + ": byte-identical to kubectl's", s.out, k.out)
        t.eq(desc + ": byte-identical to kubectl's but for the Endpoints lines",
             ep_line.sub("Endpoints:", s.out), ep_line.sub("Endpoints:", k.out))
        got = [ln.split(None, 1)[1] if len(ln.split(None, 1)) > 1 else ""
               for ln in ep_line.findall(s.out)]
        return t.eq(desc + ": Endpoints lines from the Endpoints object", got, want_eps)

    web_eps = ",".join("%s:8080" % ip for ip in sorted(
        a["ip"] for sub in (api.get(EP_PATH + "/web").json or {}).get("subsets") or []
        for a in sub.get("addresses") or []))
    for name, want_eps in (("web", [web_eps]), ("db", []), ("manual", ["<none>"]),
                           ("web-k", [web_eps])):
        s, k = ctl("describe", "svc", name), kubectl("describe", "svc", name)
        t.check("describe svc %s: exit 0" % name, s.rc == 0 and k.rc == 0, (s, k))
        same_describe("describe svc " + name, s, k, want_eps)
    s, k = ctl("describe", "service/web"), kubectl("describe", "service/web")
    same_describe("describe service/web", s, k, [web_eps])
finally:
    kubelet.stop_ev.set()
    if t.failed:
        cm.dump_log()
t.finish()
