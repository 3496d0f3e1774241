#!/usr/bin/env python3
"""e2e: Services in a three-node lab (deploy/lab.sh up 3) with real busybox pods — issue 6.

A Deployment `web` of 3 pods (one per node by the scheduler's spreading; each pod runs busybox
httpd on :8080 serving "<VERSION> <its hostname>" with an httpGet readiness probe, and an echo
server `nc -ll -p 9000 -e cat`), client pods cli1..cli3 pinned to node1..node3, and Services:
`web` (ClusterIP; http 80 -> the named port http, echo 9000 -> 9000), `web-headless`
(clusterIP None), `web-np` (NodePort), `web-local` (NodePort, externalTrafficPolicy Local),
`web-lb` (LoadBalancer, from the lab's pool 10.250.0.200-10.250.0.250). Each phase is a named
group of checks; one failing phase does not stop the next:
  - api: ClusterIPs from 10.96.0.0/16, NodePorts in 30000-32767, the `kubernetes` Service
    10.96.0.1:443 -> node1's 10.250.0.11:6443; Endpoints web = the 3 ready pods (targetRef,
    nodeName, the named target port resolved to 8080);
  - clusterip-pods: `wget http://<clusterIP>/` from a pod on each node (7 connections each);
    hairpin: a web pod reaches itself through the ClusterIP;
  - clusterip-nodes: 30 connections to the ClusterIP from each node's own netns;
  - spread: 3,000 new connections from one client (python in node1's netns): every pod serves
    33% +- 5%;
  - nodeport: from `outside`, 30 connections to the NodePort on every node IP, all answered, by
    all 3 pods (traffic to another node's pod is SNATed so replies come back);
  - etp-local: from `outside` to web-local's NodePort on each node: answered by that node's own
    pod, whose httpd -v log shows outside's address 10.250.0.100 (no SNAT);
  - dns: from a pod, `nslookup web.default.svc.cluster.local` = the ClusterIP; `wget
    http://web/` through the search path; web-headless = all 3 pod IPs; SRV
    _http._tcp.web... port 80; an unknown name in the cluster domain is NXDOMAIN;
  - netagent-kill: a long-lived connection (pod cli1 -> ClusterIP:9000 echo, one line every
    50 ms, open until every agent is back) while skiff-netagent is killed -9 on every node and
    started again: every line comes back; the same from node2's netns (python, 20 ms); a new
    connection while the agents are dead works (the rules stay in the kernel);
  - rolling-update: a new template (maxSurge 1, maxUnavailable 0, readiness probes) under one
    request every 10 ms to the ClusterIP: no request lost;
  - scale-down: 3 -> 1; once Endpoints web lists only the remaining pod, no connection reaches
    a removed pod (they keep serving for their 20 s grace: busybox httpd as PID 1 ignores
    SIGTERM) — allowance 1 s for the rule to reach the kernel; web-local's NodePort on a node
    without a local endpoint does not answer;
  - loadbalancer: web-lb gets an address from the pool, answers from `outside`; node1 (the
    control plane) is labelled node.kubernetes.io/exclude-from-external-load-balancers, the
    Lease kube-system/skiff-lb-<ip dashes> names the announcing node; `lab.sh kill` of that
    node -> the address answers `outside` again, from another node (the time printed against
    issue 6's 10 s);
  - after `lab.sh down`: `ip netns`, `ip link`, the host's mounts and cgroups as before `up`.

Features are detected from the built binaries' --help (skiff-apiserver
--service-cluster-ip-range, skiff-netagent --services / --cluster-dns, skiff-controller-manager
--lb-pool): with no Service support at all the test exits 77; a missing piece skips its phases
(printed as `skip - ...`), and the test then exits 77 unless a check failed (a failure is 1).
A present feature's checks always run and can fail.

Needs root; exits 77 with the reason otherwise. Env from CTest: SKIFF_BIN (build dir),
SKIFF_SRC (source dir). A lab of its own (SKIFF_LAB_NAME skiff-svce2e, dir /tmp/skiff-svce2e;
SKIFF_E2E_LAB_NAME / SKIFF_E2E_LAB_DIR change them), always `lab.sh down` at the end;
SKIFF_E2E_KEEP_LOGS=DIR copies the daemons' logs there first; SKIFF_E2E_PHASES=a,b runs only
those phases (plus setup; the others are skipped, so such a run exits 77);
SKIFF_E2E_BACKEND=host-gw runs the lab over host-gw routes (default vxlan). Every loop is
bounded in count and time; all traffic stays inside the lab's namespaces.
"""
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import testlib  # noqa: E402
import lablib  # noqa: E402
from lablib import (Fatal, Timeout, is_ready, kubectl, lab, lab_exec, out,  # noqa: E402
                    wait_for)

SRC, BIN, LAB = lablib.SRC, lablib.BIN, lablib.LAB
LIMIT = 840  # CTest gives 900 s
LAB_NAME, LAB_DIR, ENV = lablib.lab_env("skiff-svce2e")
NODES = (1, 2, 3)
NODE_IP = {i: "10.250.0.%d" % (10 + i) for i in NODES}
OUTSIDE_IP = "10.250.0.100"
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
LB_POOL = (ipaddress.ip_address("10.250.0.200"), ipaddress.ip_address("10.250.0.250"))
DOMAIN = "cluster.local"
APP = "web"
SELECTOR = "app=" + APP
GRACE_S = 20  # the web pods' terminationGracePeriodSeconds: they serve that long after delete
LB_TAKEOVER_S = 10  # issue 6: "another node takes over within 10 s after the holder dies"
SPREAD_N, SPREAD_TOL = 3000, 0.05


def log(msg):
    print("# [%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------------------------------------
# objects

# httpd -v logs each client's address to stderr (kubectl logs); the page names the pod.
SERVER_CMD = ("mkdir -p /www && echo \"$VERSION $HOSTNAME\" > /www/index.html && "
              "exec httpd -f -v -p 8080 -h /www")


def deployment(replicas, version):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_S,
                    "containers": [
                        {"name": "httpd", "image": "busybox:1.35",
                         "command": ["sh", "-c", SERVER_CMD],
                         "env": [{"name": "VERSION", "value": version}],
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                            "periodSeconds": 1, "timeoutSeconds": 3,
                                            "failureThreshold": 3}},
                        {"name": "echo", "image": "busybox:1.35",
                         "command": ["nc", "-ll", "-p", "9000", "-e", "cat"],
                         "ports": [{"name": "echo", "containerPort": 9000}]}]}}}}


def service(name, typ="ClusterIP", etp=None, headless=False, echo=False):
    ports = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    if echo:
        ports.append({"name": "echo", "port": 9000, "targetPort": 9000, "protocol": "TCP"})
    spec = {"selector": {"app": APP}, "ports": ports}
    if headless:
        spec["clusterIP"] = "None"
    else:
        spec["type"] = typ
    if etp:
        spec["externalTrafficPolicy"] = etp
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def client_pod(i):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "cli%d" % i, "namespace": "default",
                         "labels": {"test": "svc-client"}},
            "spec": {"nodeName": "node%d" % i, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox:1.35",
                                     "command": ["sleep", "3600"]}]}}


# The load client, run in a lab netns (python3 of the host): `count` new connections to
# host:port (GET /, HTTP/1.0), one every `interval` s (0: back to back), each bounded by
# `tmo` s, all within `limit` s; with follow_stdin=1 it also stops at EOF on stdin; `workers`
# threads share the count (with an interval, request i still starts at t0 + i * interval). Prints one JSON list of [time, page | "!error"].
HAMMER = r"""
import json, socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
count, limit, interval, tmo = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
workers = int(sys.argv[8]) if len(sys.argv) > 8 else 1
stop = threading.Event()
if sys.argv[7] == "1":
    def watch():
        sys.stdin.read()
        stop.set()
    threading.Thread(target=watch, daemon=True).start()
    print("started", flush=True)
recs = []
t0 = time.time()
def one(i):
    if interval > 0:
        d = t0 + i * interval - time.time()
        if d > 0:
            time.sleep(d)
    ts = time.time()
    try:
        s = socket.create_connection((host, port), timeout=tmo)
        s.settimeout(tmo)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while len(data) < 65536:
            b = s.recv(4096)
            if not b:
                break
            data += b
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0].decode(errors="replace")
        if not status.startswith("HTTP/1.") or status.split()[1:2] != ["200"]:
            recs.append([round(ts, 3), "!bad response %r" % status[:60]])
        else:
            recs.append([round(ts, 3), body.decode(errors="replace").strip()])
    except Exception as e:
        recs.append([round(ts, 3), "!%s: %s" % (type(e).__name__, e)])
def run(w):
    for i in range(w, count, workers):
        if stop.is_set() or time.time() - t0 > limit:
            break
        one(i)
ths = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
for t in ths:
    t.start()
for t in ths:
    t.join()
recs.sort()
print(json.dumps(recs), flush=True)
"""

# A long-lived TCP connection: one line every `interval` s for `count` lines, each must come
# back (echo server); stops early at EOF on stdin. Prints JSON {sent, echoed, error, t_err}.
ECHO_CLIENT = r"""
import json, socket, sys, threading, time
host, port, count, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
stop = threading.Event()
def watch():
    sys.stdin.read()
    stop.set()
threading.Thread(target=watch, daemon=True).start()
res = {"sent": 0, "echoed": 0, "error": None, "t_err": None, "t0": time.time()}
try:
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(5)
    print("connected", flush=True)
    buf = b""
    for i in range(count):
        if stop.is_set():
            break
        line = b"line-%06d\n" % i
        s.sendall(line)
        res["sent"] += 1
        while b"\n" not in buf:
            b = s.recv(4096)
            if not b:
                raise EOFError("connection closed by the peer after %d lines" % res["echoed"])
            buf += b
        got, _, buf = buf.partition(b"\n")
        if got + b"\n" != line:
            raise ValueError("echo mismatch: sent %r got %r" % (line, got))
        res["echoed"] += 1
        time.sleep(interval)
    s.close()
except Exception as e:
    res["error"] = "%s: %s" % (type(e).__name__, e)
    res["t_err"] = time.time()
print(json.dumps(res), flush=True)
"""


def host_of(page):
    """The pod name in a page "<VERSION> <hostname>" (None for an error record)."""
    return None if page.startswith("!") else page.split()[-1] if page.split() else ""


# ---------------------------------------------------------------------------------------------
# the test


class Test(lablib.LabChecks):
    def __init__(self, features):
        super().__init__()
        self.features = features
        self.skipped = []
        self.cip = None          # web's ClusterIP
        self.ports = {}          # Service name -> nodePort
        self.pods = {}           # web pod name -> (node, IP), the Deployment's ready pods
        self.via = None          # (netns, host, port) the load clients use for the ClusterIP

    def skip(self, what, why):
        self.skipped.append("%s: %s" % (what, why))
        print("skip - %s (%s)" % (what, why), flush=True)

    # -- cluster helpers ------------------------------------------------------------------------

    def apply(self, obj, what):
        r = kubectl("apply", "-f", "-", input=json.dumps(obj))
        self.check("kubectl apply -f - (%s)" % what, r.returncode == 0, out(r))
        return r.returncode == 0

    def web_pods(self):
        lst = self.get_json("pods", "-l", SELECTOR)
        return None if lst is None else lst.get("items", [])

    def wait_web(self, n, timeout, version=None):
        """Until exactly n web pods are Ready (of `version`) and no other is active."""
        def ok():
            ps = self.web_pods()
            if ps is None:
                return None
            active = [p for p in ps if not p["metadata"].get("deletionTimestamp")]
            ready = [p for p in active if is_ready(p)]
            if len(ready) != n or len(active) != n:
                return None
            if version and any(
                    {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get(
                        "env") or []}.get("VERSION") != version for p in ready):
                return None
            return ready
        ready = wait_for(ok, timeout, 1)
        if ready:
            self.pods = {p["metadata"]["name"]: (p["spec"].get("nodeName"),
                                                 p["status"].get("podIP")) for p in ready}
        return ready

    def endpoint_ips(self, name, ready=True):
        ep = self.get_json("endpoints", name)
        if ep is None:
            return None
        key = "addresses" if ready else "notReadyAddresses"
        return sorted(a.get("ip") for s in ep.get("subsets") or [] for a in s.get(key) or [])

    def debug(self):
        return out(kubectl("get", "deploy,rs,pods,svc,endpoints", "-o", "wide"))

    def lease_holder(self, name):
        r = kubectl("get", "lease", "-n", "kube-system", name, "-o",
                    "jsonpath={.spec.holderIdentity}")
        return r.stdout.strip() if r.returncode == 0 else None

    def hammer(self, netns, host, port, count, limit=120, interval=0.0, tmo=2.0, workers=1):
        """Runs HAMMER in netns; returns its records or raises Fatal."""
        r = lab_exec(netns, "python3", "-c", HAMMER, host, str(port), str(count), str(limit),
                     str(interval), str(tmo), "0", str(workers), timeout=limit + 60)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Fatal("load client in %s -> %s:%s: %s" % (netns, host, port, out(r)[-1500:]))

    def bg_hammer(self, netns, host, port, count, limit, interval, tmo=2.0, workers=4):
        """HAMMER in the background until stop_bg(); the caller must stop it. Several workers
        keep the pace (one request every `interval` s) when a request takes longer."""
        p = subprocess.Popen(["bash", LAB, "exec", netns, "python3", "-u", "-c", HAMMER, host,
                              str(port), str(count), str(limit), str(interval), str(tmo), "1",
                              str(workers)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
        first = p.stdout.readline().strip()
        if first != "started":
            p.kill()
            raise Fatal("background load client in %s did not start: %r %s" % (
                netns, first, p.stderr.read()[-1000:]))
        return p

    def stop_bg(self, p, limit=60):
        try:
            o, e = p.communicate(input="", timeout=limit)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
        try:
            return json.loads(o.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Fatal("background load client: no result: %s %s" % (o[-500:], e[-1000:]))

    def pod_wget(self, pod, url, within=30, want=None):
        """wget -qO- URL in a pod, retried (bounded) until it answers (and contains want)."""
        end = time.time() + within
        r = None
        for _ in range(100):
            # (busybox 1.35's wget -T crashes: a timeout(1) bounds it instead)
            r = kubectl("exec", pod, "--", "timeout", "5", "wget", "-qO-", url, timeout=30)
            if (r.returncode == 0 and (want is None or want in r.stdout)) or time.time() > end:
                return r
            time.sleep(1)
        return r

    def pod_sh(self, pod, script, timeout=30):
        return kubectl("exec", pod, "--", "sh", "-c", script, timeout=timeout)

    def server_log(self, pod):
        return kubectl("logs", pod, "-c", "httpd").stdout

    # -- phases ---------------------------------------------------------------------------------

    def phase(self, name, fn, needs=()):
        wanted = os.environ.get("SKIFF_E2E_PHASES")
        if wanted and name not in wanted.split(","):
            # Said and counted: a run of some phases ends in 77 (skipped), never in a pass.
            self.skip("phase %s" % name, "not in SKIFF_E2E_PHASES=%s" % wanted)
            return
        missing = [f for f in needs if not self.features.get(f)]
        if missing:
            self.skip("phase %s" % name, "not built: " + ", ".join(
                FEATURE_TEXT[f] for f in missing))
            return
        log("==== phase %s" % name)
        t0 = time.time()
        try:
            fn()
        except Fatal:
            pass
        except Timeout:
            raise
        except Exception as e:
            self.check("phase %s: unexpected %s: %s" % (name, type(e).__name__, e), False,
                       traceback.format_exc())
        self.timing("phase " + name, time.time() - t0)

    def setup(self):
        t0 = time.time()
        r = lab("up", "3", "--backend", os.environ.get("SKIFF_E2E_BACKEND", "vxlan"),
                timeout=400)
        print(r.stdout[-2000:] + r.stderr[-3000:], flush=True)
        if r.returncode != 0:
            self.fatal("lab.sh up 3", out(r)[-3000:])
        self.check("lab.sh up 3: three nodes Ready (%.1f s)" % (time.time() - t0), True)
        self.timing("lab.sh up 3", time.time() - t0)
        st = lab("status")
        print(st.stdout, flush=True)
        with open(os.path.join(LAB_DIR, "lab.env")) as f:
            log("lab.env:\n" + f.read())
        objs = {"apiVersion": "v1", "kind": "List", "items": [
            deployment(3, "v1"), service("web", echo=True), service("web-headless",
                                                                     headless=True),
            service("web-np", "NodePort"), service("web-local", "NodePort", etp="Local")] +
            [client_pod(i) for i in NODES]}
        r = kubectl("apply", "-f", "-", input=json.dumps(objs))
        if r.returncode != 0:
            self.fatal("kubectl apply the Deployment, Services and client pods", out(r))
        t1 = time.time()
        ready = self.wait_web(3, 120)
        if not ready:
            self.fatal("3 web pods Ready within 120 s", self.debug())
        self.timing("Deployment web: 3 pods Ready", time.time() - t1)
        nodes = sorted(n for n, _ in self.pods.values())
        log("web pods: %s" % self.pods)
        self.eq("the 3 web pods run one per node (scheduler spreading)", nodes,
                ["node1", "node2", "node3"])

        def clients_up():
            lst = self.get_json("pods", "-l", "test=svc-client") or {}
            return len([p for p in lst.get("items", []) if
                        (p.get("status") or {}).get("phase") == "Running"]) == 3
        if not wait_for(clients_up, 90, 1):
            self.fatal("client pods cli1..cli3 Running", self.debug())
        svc = self.get_json("svc", "web") or {}
        self.cip = (svc.get("spec") or {}).get("clusterIP")
        if not self.cip or self.cip == "None":
            self.fatal("Service web has a ClusterIP", json.dumps(svc)[:1500])
        for name in ("web-np", "web-local"):
            s = self.get_json("svc", name) or {}
            self.ports[name] = ((s.get("spec") or {}).get("ports") or [{}])[0].get("nodePort")
        # Endpoints follow the ready pods (the endpoints controller).
        want = sorted(ip for _, ip in self.pods.values())
        got = wait_for(lambda: (lambda e: e if e == want else None)(self.endpoint_ips("web")),
                       30)
        if not got:
            self.fatal("Endpoints web lists the 3 ready pods %s within 30 s" % want,
                       out(kubectl("get", "endpoints", "-o", "yaml"))[-2500:])
        self.via = ("node1", self.cip, 80)

    def phase_api(self):
        svcs = {}
        for name in ("web", "web-np", "web-local", "kubernetes"):
            svcs[name] = (self.get_json("svc", name) or {}).get("spec") or {}
        for name in ("web", "web-np", "web-local"):
            ip = svcs[name].get("clusterIP")
            self.check("Service %s: ClusterIP %s in %s" % (name, ip, SERVICE_CIDR),
                       bool(ip) and ip != "None" and
                       ipaddress.ip_address(ip) in SERVICE_CIDR, json.dumps(svcs[name]))
        ips = [svcs[n].get("clusterIP") for n in ("web", "web-np", "web-local")]
        self.check("the three ClusterIPs are distinct: %s" % ips, len(set(ips)) == 3)
        for name in ("web-np", "web-local"):
            p = self.ports.get(name)
            self.check("Service %s: nodePort %s in 30000-32767" % (name, p),
                       isinstance(p, int) and 30000 <= p <= 32767)
        self.check("web-np and web-local have distinct nodePorts %s" % self.ports,
                   len(set(self.ports.values())) == 2)
        hl = (self.get_json("svc", "web-headless") or {}).get("spec") or {}
        self.eq("Service web-headless keeps clusterIP None", hl.get("clusterIP"), "None")
        k = svcs["kubernetes"]
        self.check("Service default/kubernetes: 10.96.0.1 port https 443/TCP (%s %s)" % (
            k.get("clusterIP"), k.get("ports")), k.get("clusterIP") == "10.96.0.1" and any(
                p.get("port") == 443 and p.get("protocol", "TCP") == "TCP"
                for p in k.get("ports") or []), json.dumps(k))
        ep = self.get_json("endpoints", "kubernetes") or {}
        addrs = [(a.get("ip"), p.get("port")) for s in ep.get("subsets") or []
                 for a in s.get("addresses") or [] for p in s.get("ports") or []]
        self.eq("Endpoints default/kubernetes: node1's API server", addrs,
                [(NODE_IP[1], 6443)])
        ep = self.get_json("endpoints", "web") or {}
        subsets = ep.get("subsets") or []
        addrs = [a for s in subsets for a in s.get("addresses") or []]
        ports = sorted((p.get("name"), p.get("port")) for s in subsets
                       for p in s.get("ports") or [])
        self.eq("Endpoints web: ports http -> 8080 (named target port), echo -> 9000", ports,
                [("echo", 9000), ("http", 8080)])
        by_ip = {ip: (name, node) for name, (node, ip) in self.pods.items()}
        bad = [a for a in addrs if by_ip.get(a.get("ip")) != (
            (a.get("targetRef") or {}).get("name"), a.get("nodeName")) or
            (a.get("targetRef") or {}).get("kind") != "Pod"]
        self.check("Endpoints web: each address names its Pod (targetRef) and node (nodeName)",
                   len(addrs) == 3 and not bad, json.dumps(addrs, indent=1)[:2500])
        r = lab_exec("node2", "python3", "-c",
                     "import ssl, urllib.request as u; c = ssl._create_unverified_context(); "
                     "print(u.urlopen('https://10.96.0.1/readyz', context=c, timeout=5).status)")
        self.check("node2 reaches the API server through https://10.96.0.1/readyz (%s)" %
                   r.stdout.strip(), r.returncode == 0 and r.stdout.strip() == "200", out(r))
        r = self.pod_sh("cli3", "nc -w 3 10.96.0.1 443 </dev/null; echo rc=$?")
        self.check("pod cli3 (node3) connects to the kubernetes Service 10.96.0.1:443",
                   "rc=0" in r.stdout, out(r))

    def phase_clusterip_pods(self):
        names = set(self.pods)
        for i in NODES:
            t0 = time.time()
            r = self.pod_wget("cli%d" % i, "http://%s/" % self.cip, 30, want="v1 ")
            host = host_of(r.stdout.strip()) if r.returncode == 0 else None
            self.check("pod cli%d on node%d: wget http://%s/ (ClusterIP) answered by %s "
                       "(%.1f s)" % (i, i, self.cip, host, time.time() - t0),
                       host in names, out(r))
            # then several new connections in one exec, each answered by a web pod
            r = self.pod_sh("cli%d" % i, "for j in 1 2 3 4 5 6; do timeout 5 wget -qO- "
                            "http://%s/ || echo FAIL; done" % self.cip)
            pages = r.stdout.split("\n")
            hosts = [host_of(x.strip()) for x in pages if x.strip()]
            self.check("pod cli%d: 6 more connections to %s all answered by web pods: %s" % (
                i, self.cip, sorted(set(hosts))), len(hosts) == 6 and set(hosts) <= names,
                out(r))
        # hairpin: a web pod reaching itself through its Service (masqueraded, so the reply
        # comes back through the DNAT); new connections until it lands on itself (bounded)
        me = sorted(self.pods)[0]
        r = self.pod_sh(me, "for j in $(seq 1 30); do p=$(timeout 5 wget -qO- http://%s/) || "
                        "p=FAIL; echo \"$p\"; case \"$p\" in *\" %s\") break ;; esac; done" %
                        (self.cip, me), timeout=120)
        pages = [x.strip() for x in r.stdout.split("\n") if x.strip()]
        self.check("hairpin: pod %s reaches itself through %s (%d connections, all answered, "
                   "the last by itself)" % (me, self.cip, len(pages)),
                   bool(pages) and host_of(pages[-1]) == me and
                   all(host_of(x) in names for x in pages), out(r))

    def phase_clusterip_nodes(self):
        names = set(self.pods)
        for i in NODES:
            recs = self.hammer("node%d" % i, self.cip, 80, 30, limit=60)
            errs = [p for _, p in recs if p.startswith("!")]
            hosts = sorted(set(host_of(p) for _, p in recs if not p.startswith("!")))
            self.check("node%d's netns: 30 connections to %s:80 all answered, by %s" % (
                i, self.cip, hosts), len(recs) == 30 and not errs and set(hosts) <= names,
                "\n".join(errs[:10]))
            if i == 1 and errs:
                # The later load phases then use the NodePort from outside (the same pods
                # behind it), so one fault does not fail every phase.
                self.via = ("outside", NODE_IP[1], self.ports.get("web-np"))
                log("node1 -> ClusterIP fails: load phases use %s:%s from outside" % self.via[1:])

    def phase_spread(self):
        netns, host, port = self.via
        t0 = time.time()
        recs = self.hammer(netns, host, port, SPREAD_N, limit=240, tmo=3, workers=4)
        took = time.time() - t0
        self.timing("%d new connections %s -> %s:%s" % (len(recs), netns, host, port), took)
        errs = [p for _, p in recs if p.startswith("!")]
        counts = {}
        for _, p in recs:
            if not p.startswith("!"):
                counts[host_of(p)] = counts.get(host_of(p), 0) + 1
        self.check("%d new connections from %s to %s:%s, all answered (%.1f s, %d errors)" % (
            SPREAD_N, netns, host, port, took, len(errs)), len(recs) == SPREAD_N and not errs,
            "\n".join(errs[:10]))
        shares = {h: round(100.0 * c / max(1, len(recs)), 1) for h, c in counts.items()}
        log("shares: %s" % shares)
        self.check("the 3 pods each serve 33%% +- %d%% of the connections: %s" % (
            SPREAD_TOL * 100, shares), set(counts) == set(self.pods) and all(
                abs(c / len(recs) - 1 / 3) <= SPREAD_TOL for c in counts.values()),
            json.dumps(counts))

    def phase_nodeport(self):
        port = self.ports.get("web-np")
        for i in NODES:
            recs = self.hammer("outside", NODE_IP[i], port, 30, limit=60)
            errs = [p for _, p in recs if p.startswith("!")]
            hosts = sorted(set(host_of(p) for _, p in recs if not p.startswith("!")))
            self.check("outside -> node%d %s:%s (NodePort): 30 connections all answered" % (
                i, NODE_IP[i], port), len(recs) == 30 and not errs, "\n".join(errs[:10]))
            self.check("outside -> node%d's NodePort reaches all 3 pods, also those on other "
                       "nodes (SNAT): %s" % (i, hosts), set(hosts) == set(self.pods),
                       json.dumps(recs[:5]))

    def phase_etp_local(self):
        port = self.ports.get("web-local")
        for name, (node, _) in sorted(self.pods.items()):
            i = int(node[4:])
            recs = self.hammer("outside", NODE_IP[i], port, 10, limit=60)
            errs = [p for _, p in recs if p.startswith("!")]
            hosts = sorted(set(host_of(p) for _, p in recs if not p.startswith("!")))
            self.check("outside -> %s:%s (web-local, ETP Local): 10 connections all answered "
                       "by %s's own pod %s: %s" % (NODE_IP[i], port, node, name, hosts),
                       not errs and hosts == [name], "\n".join(errs[:10]))
            lg = wait_for(lambda: (lambda s: s if "[::ffff:%s]:" % OUTSIDE_IP in s or
                                   "%s:" % OUTSIDE_IP in s else None)(self.server_log(name)), 10)
            self.check("ETP Local keeps the client address: %s's httpd log shows outside's "
                       "%s" % (name, OUTSIDE_IP), bool(lg), self.server_log(name)[-1200:])

    def nslookup(self, pod, name, typ="a"):
        r = self.pod_sh(pod, "nslookup -type=%s %s; echo rc=$?" % (typ, name))
        # The answer part: after the server's own "Address: 10.96.0.10:53" block.
        ans = r.stdout.split("\n\n", 1)[1] if "\n\n" in r.stdout else ""
        return r, ans

    def phase_dns(self):
        name = "web.default.svc." + DOMAIN
        r = self.pod_sh("cli1", "cat /etc/resolv.conf")
        self.check("pod resolv.conf: nameserver 10.96.0.10, search default.svc.%s svc.%s %s, "
                   "ndots:5" % (DOMAIN, DOMAIN, DOMAIN), "nameserver 10.96.0.10" in r.stdout and
                   "search default.svc.%s svc.%s %s" % (DOMAIN, DOMAIN, DOMAIN) in r.stdout and
                   "ndots:5" in r.stdout, out(r))
        for i in NODES:
            r, ans = self.nslookup("cli%d" % i, name)
            got = re.findall(r"^Address:\s*([0-9.]+)\s*$", ans, re.M)
            self.check("pod cli%d (node%d): nslookup %s = the ClusterIP %s: %s" % (
                i, i, name, self.cip, got), got == [self.cip], out(r))
        r = self.pod_wget("cli2", "http://web/", 15)
        self.check("pod cli2: wget http://web/ (search path) answered by a web pod: %r" %
                   r.stdout.strip(), r.returncode == 0 and host_of(r.stdout.strip()) in
                   self.pods, out(r))
        r = self.pod_wget("cli3", "http://%s/" % name, 15)
        self.check("pod cli3: wget http://%s/ answered by a web pod" % name,
                   r.returncode == 0 and host_of(r.stdout.strip()) in self.pods, out(r))
        hl = "web-headless.default.svc." + DOMAIN
        r, ans = self.nslookup("cli2", hl)
        got = sorted(re.findall(r"^Address:\s*([0-9.]+)\s*$", ans, re.M))
        want = sorted(ip for _, ip in self.pods.values())
        self.eq("headless: nslookup %s = all 3 ready pod IPs" % hl, got, want)
        srv = "_http._tcp." + name
        r, ans = self.nslookup("cli1", srv, "srv")
        self.check("SRV %s: port 80, target web.default.svc.%s" % (srv, DOMAIN), re.search(
            r"service = \d+ \d+ 80 web\.default\.svc\.%s" % re.escape(DOMAIN), ans) is not None,
            out(r))
        r, ans = self.nslookup("cli1", "_echo._tcp." + name, "srv")
        self.check("SRV _echo._tcp.%s: port 9000" % name,
                   re.search(r"service = \d+ \d+ 9000 ", ans) is not None, out(r))
        r, ans = self.nslookup("cli1", "_http._tcp." + hl, "srv")
        self.check("headless SRV _http._tcp.%s: one record per pod, port 8080 (%d)" % (
            hl, len(re.findall(r"service = \d+ \d+ 8080 ", ans))),
            len(re.findall(r"service = \d+ \d+ 8080 ", ans)) == 3, out(r))
        bad = "nope.default.svc." + DOMAIN
        r, ans = self.nslookup("cli1", bad)
        self.check("nslookup %s: NXDOMAIN" % bad, "NXDOMAIN" in r.stdout, out(r))
        r, ans = self.nslookup("cli1", name, "aaaa")
        self.check("AAAA %s: an empty answer (NOERROR), not NXDOMAIN" % name,
                   "NXDOMAIN" not in r.stdout and not re.search(r"^Address:", ans, re.M), out(r))

    def netagent_pids(self):
        pids = {}
        for i in NODES:
            try:
                pids[i] = int(open(os.path.join(LAB_DIR, "node%d" % i, "netagent.pid")).read())
            except (OSError, ValueError):
                pass
        return pids

    def phase_netagent_kill(self):
        # a long-lived connection from pod cli1 (node1) through the ClusterIP to an echo server
        # It runs until the agents are back (a stop file), at most n lines; `sent=` on stderr.
        n, interval = 1200, 0.05
        script = ("rm -f /tmp/stop-echo; { i=0; while [ $i -lt %d ] && [ ! -e /tmp/stop-echo ]; "
                  "do echo line-$i; i=$((i+1)); sleep %s; done; echo sent=$i >&2; } | "
                  "nc -w 5 %s 9000" % (n, interval, self.cip))
        p = subprocess.Popen(["bash", LAB, "exec", "node1", "kubectl", "exec", "cli1", "--",
                              "sh", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
        # python client in node2's netns to the same echo server, for exact error times
        q = subprocess.Popen(["bash", LAB, "exec", "node2", "python3", "-u", "-c", ECHO_CLIENT,
                              self.cip, "9000", "2000", "0.02"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        first = q.stdout.readline().strip()
        self.check("node2's netns: a long-lived connection to %s:9000 (echo)" % self.cip,
                   first == "connected", first + q.stderr.read()[-500:] if first != "connected"
                   else "")
        time.sleep(3)
        pids = self.netagent_pids()
        t_kill = time.time()
        for i, pid in sorted(pids.items()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as e:
                self.check("kill -9 skiff-netagent on node%d (%d)" % (i, pid), False, str(e))
        log("killed skiff-netagent on every node: %s" % pids)
        time.sleep(2)
        recs = self.hammer("node3", self.cip, 80, 5, limit=30)
        errs = [x for _, x in recs if x.startswith("!")]
        self.check("with every netagent dead, a new connection node3 -> %s:80 works (rules stay "
                   "in the kernel)" % self.cip, not errs and len(recs) == 5, "\n".join(errs))
        for i in NODES:
            r = lab("revive", "node%d" % i, timeout=200)
            self.check("lab.sh revive node%d: skiff-netagent started again" % i,
                       r.returncode == 0, out(r)[-1500:])
        self.timing("netagents killed -> all restarted", time.time() - t_kill)
        time.sleep(3)  # traffic across the restarted agents' first full syncs
        alive = p.poll() is None
        self.check("pod cli1's connection is still open after every netagent restarted",
                   alive, "exit %s" % p.returncode)
        self.pod_sh("cli1", "touch /tmp/stop-echo")
        try:
            o, e = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
        lines = [l for l in o.splitlines() if l.startswith("line-")]
        m = re.search(r"sent=(\d+)", e)
        sent = int(m.group(1)) if m else -1
        self.check("pod cli1's long-lived connection through %s:9000: all %d lines sent were "
                   "echoed across the kill -9 and restart of every netagent (got %d)" % (
                       self.cip, sent, len(lines)), sent > 100 and
                   lines == ["line-%d" % k for k in range(sent)] and p.returncode == 0,
                   "exit %s, last lines %s\n%s" % (p.returncode, lines[-3:], e[-800:]))
        try:
            o, e = q.communicate(input="", timeout=30)
        except subprocess.TimeoutExpired:
            q.kill()
            o, e = q.communicate()
        try:
            res = json.loads(o.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {"error": "no result: %s %s" % (o[-300:], e[-800:])}
        self.check("node2's long-lived connection: %s lines echoed, none lost, no error (%s)" % (
            res.get("echoed"), res.get("error")), not res.get("error") and
            res.get("echoed") == res.get("sent") and (res.get("sent") or 0) > 100,
            json.dumps(res))
        if res.get("t_err"):
            log("node2 client error %.1f s after the kill" % (res["t_err"] - t_kill))

    def phase_rolling_update(self):
        netns, host, port = self.via
        old = set(self.pods)
        bg = self.bg_hammer(netns, host, port, 30000, 200, 0.01, tmo=3)
        try:
            time.sleep(1)
            t0 = time.time()
            self.apply(deployment(3, "v2"), "rolling update: VERSION=v2")
            r = lab_exec("node1", "kubectl", "rollout", "status", "deployment/" + APP,
                         "--timeout", "150s", timeout=170)
            self.check("kubectl rollout status returns 0 (%.1f s)" % (time.time() - t0),
                       r.returncode == 0, out(r)[-1500:] + "\n" + self.debug())
            self.timing("rolling update apply -> rollout status done", time.time() - t0)
            ready = self.wait_web(3, 60, version="v2")
            self.check("3 new pods Ready (v2)", bool(ready) and not (set(self.pods) & old),
                       self.debug())
            time.sleep(2)
        finally:
            recs = self.stop_bg(bg)
        errs = [(t, x) for t, x in recs if x.startswith("!")]
        versions = {}
        for _, x in recs:
            if not x.startswith("!"):
                versions[x.split()[0]] = versions.get(x.split()[0], 0) + 1
        span = recs[-1][0] - recs[0][0] if recs else 0
        log("rolling update: %d requests over %.1f s, by version %s" % (len(recs), span,
                                                                         versions))
        self.check("under the rolling update, %d requests (1 every 10 ms) to %s:%s: none lost "
                   "(%d failed)" % (len(recs), host, port, len(errs)),
                   len(recs) > 300 and not errs,
                   "\n".join("%.3f %s" % e for e in errs[:15]))
        self.check("the requests saw v1 then v2 pages: %s" % versions,
                   versions.get("v1", 0) > 0 and versions.get("v2", 0) > 0)

    def phase_scale_down(self):
        netns, host, port = self.via
        keep_before = dict(self.pods)
        bg = self.bg_hammer(netns, host, port, 30000, 200, 0.01, tmo=3)
        t_gone = None
        try:
            time.sleep(1)
            r = self.scale(1)
            t0 = time.time()
            eps = None
            if r.returncode == 0:
                eps = wait_for(lambda: (lambda e: e if e is not None and len(e) == 1 else None)(
                    self.endpoint_ips("web")), 30, 0.2)
                self.check("Endpoints web drops to 1 address (%.1f s): %s" % (
                    time.time() - t0, eps), bool(eps), self.debug())
            if eps:
                t_gone = time.time()
                time.sleep(5)
        finally:
            recs = self.stop_bg(bg)
        if not t_gone:
            # the rest means nothing without the scale-down; back to 3 for the next phase
            self.scale(3)
            self.wait_web(3, 120)
            return
        remaining = [n for n, (_, ip) in keep_before.items() if [ip] == eps]
        removed = set(keep_before) - set(remaining)
        late = [(t, x) for t, x in recs if t > t_gone + 1.0 and host_of(x) in removed]
        stale = [t - t_gone for t, x in recs if t > t_gone and host_of(x) in removed]
        errs = [(t, x) for t, x in recs if x.startswith("!")]
        after = [x for t, x in recs if t > t_gone + 1.0]
        log("scale-down: %d requests, %d after the endpoint change (+1 s), %d errors; removed "
            "pods still answered up to %.2f s after we saw the change" % (
                len(recs), len(after), len(errs), max(stale) if stale else 0))
        self.check("once Endpoints drops them (+1 s to program), no connection reaches a removed "
                   "pod %s (%d of %d did)" % (sorted(removed), len(late), len(after)),
                   bool(removed) and len(after) > 100 and not late,
                   "\n".join("%.3f %s" % e for e in late[:10]))
        # The check above means something only if the removed pods still serve (they do for
        # their grace period: httpd as PID 1 ignores SIGTERM).
        gone_ips = [ip for n, (_, ip) in keep_before.items() if n in removed]
        direct = self.hammer("node1", gone_ips[0], 8080, 1, limit=20) if gone_ips else []
        self.check("a removed pod (%s) still answers on its own IP while it terminates "
                   "(grace %d s): %s" % (gone_ips[:1], GRACE_S, direct), bool(direct) and
                   host_of(direct[0][1]) in removed, self.debug())
        self.check("no request failed during the scale-down (%d)" % len(errs), not errs,
                   "\n".join("%.3f %s" % e for e in errs[:10]))
        self.wait_web(1, 30)
        # ETP Local: a node without a local endpoint does not answer the NodePort
        left_node = next(iter(self.pods.values()), (None, None))[0]
        port = self.ports.get("web-local")
        for i in NODES:
            if "node%d" % i == left_node:
                continue
            recs = self.hammer("outside", NODE_IP[i], port, 3, limit=30, tmo=1.5)
            ok = [x for _, x in recs if not x.startswith("!")]
            self.check("web-local (ETP Local) on node%d, which has no local endpoint now: no "
                       "answer (%s)" % (i, recs[0][1] if recs else "-"), not ok,
                       json.dumps(recs))
        self.scale(3)
        self.check("back to 3 Ready pods", bool(self.wait_web(3, 120)), self.debug())

    def scale(self, n):
        """kubectl scale, retried (bounded) when the API server does not answer in time: on a
        loaded machine its writes can stall for tens of seconds (fsync), which is not what this
        test is about. Checks and returns the last result."""
        t0 = time.time()
        r = None
        for attempt in range(3):
            r = kubectl("scale", "deployment/" + APP, "--replicas", str(n), timeout=50)
            if r.returncode == 0 or time.time() - t0 > 120:
                break
            log("kubectl scale --replicas %d failed (attempt %d): %s" % (n, attempt + 1,
                                                                         out(r)[-300:]))
            time.sleep(1)
        self.check("kubectl scale deployment/web --replicas %d (%.1f s)" % (n, time.time() - t0),
                   r.returncode == 0, out(r))
        return r

    def phase_loadbalancer(self):
        r = kubectl("label", "node", "node1", "--overwrite",
                    "node.kubernetes.io/exclude-from-external-load-balancers=true")
        self.check("node1 (control plane) labelled exclude-from-external-load-balancers",
                   r.returncode == 0, out(r))
        if not self.apply(service("web-lb", "LoadBalancer"), "Service web-lb type LoadBalancer"):
            return
        t0 = time.time()

        def ingress():
            s = self.get_json("svc", "web-lb") or {}
            ing = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            return ing[0].get("ip") if ing else None
        ip = wait_for(ingress, 60)
        self.check("web-lb gets status.loadBalancer.ingress from the pool %s-%s: %s (%.1f s)" % (
            LB_POOL[0], LB_POOL[1], ip, time.time() - t0), ip is not None and
            LB_POOL[0] <= ipaddress.ip_address(ip) <= LB_POOL[1],
            out(kubectl("get", "svc", "web-lb", "-o", "yaml")))
        if not ip:
            return
        r = kubectl("get", "svc", "web-lb")
        log(r.stdout)
        self.check("kubectl get svc web-lb shows the EXTERNAL-IP %s" % ip, ip in r.stdout, out(r))

        def answers():
            recs = self.hammer("outside", ip, 80, 1, limit=10, tmo=1)
            return recs if recs and not recs[0][1].startswith("!") else None
        t0 = time.time()
        got = wait_for(answers, 60, 0.2)
        self.check("outside -> http://%s/ (LoadBalancer) answered (%.1f s)" % (
            ip, time.time() - t0), bool(got), out(lab_exec("outside", "ip", "neigh")))
        recs = self.hammer("outside", ip, 80, 30, limit=60)
        errs = [x for _, x in recs if x.startswith("!")]
        self.check("outside -> %s: 30 connections all answered, by %s" % (
            ip, sorted(set(host_of(x) for _, x in recs if not x.startswith("!")))),
            not errs and len(recs) == 30, "\n".join(errs[:10]))
        lease = "skiff-lb-" + ip.replace(".", "-")
        holder = wait_for(lambda: self.lease_holder(lease), 15)
        m = re.search(r"node(\d+)", holder or "")
        self.check("the Lease kube-system/%s names the announcing node: %s" % (lease, holder),
                   m is not None and m.group(0) != "node1",
                   out(kubectl("get", "lease", "-n", "kube-system")))
        if not m or m.group(0) == "node1":
            return
        victim = m.group(0)
        r = lab_exec("outside", "ip", "neigh", "show", ip)
        log("outside's neighbour entry for %s before the kill: %s" % (ip, r.stdout.strip()))
        t_kill = time.time()
        r = lab("kill", victim)
        self.check("lab.sh kill %s (the announcing node)" % victim, r.returncode == 0, out(r))
        ok_at = None
        last = None
        for _ in range(200):
            if time.time() - t_kill > LB_TAKEOVER_S + 50:
                break
            recs = self.hammer("outside", ip, 80, 1, limit=5, tmo=0.5)
            last = recs[0][1] if recs else "?"
            if recs and not last.startswith("!"):
                ok_at = time.time() - t_kill
                break
            time.sleep(0.1)
        new = self.lease_holder(lease)
        # The time is printed against issue 6's 10 s, not asserted (no timing assertions in
        # tests: a loaded CI machine stretches it); the check is that another node took over.
        self.check("after the kill of %s, %s answers `outside` again (%s; target %d s: %s), "
                   "announced by %s" % (victim, ip, "%.1f s" % ok_at if ok_at
                                        else "never; last: %s" % last, LB_TAKEOVER_S,
                                        "met" if ok_at is not None and ok_at <= LB_TAKEOVER_S
                                        else "NOT met", new),
                   ok_at is not None and new not in (victim, None),
                   out(lab_exec("outside", "ip", "neigh")) + "\n" + out(kubectl(
                       "get", "lease", "-n", "kube-system", lease, "-o", "yaml")))
        if ok_at is not None:
            self.timing("announcing node killed -> LB IP answers again", ok_at)
        r = lab_exec("outside", "ip", "neigh", "show", ip)
        log("outside's neighbour entry for %s after: %s" % (ip, r.stdout.strip()))

    def body(self):
        self.setup()
        self.phase("api", self.phase_api)
        self.phase("clusterip-pods", self.phase_clusterip_pods, ("dataplane",))
        self.phase("clusterip-nodes", self.phase_clusterip_nodes, ("dataplane",))
        self.phase("spread", self.phase_spread, ("dataplane",))
        self.phase("nodeport", self.phase_nodeport, ("dataplane",))
        self.phase("etp-local", self.phase_etp_local, ("dataplane",))
        self.phase("dns", self.phase_dns, ("dns",))
        self.phase("netagent-kill", self.phase_netagent_kill, ("dataplane",))
        self.phase("rolling-update", self.phase_rolling_update, ("dataplane",))
        self.phase("scale-down", self.phase_scale_down, ("dataplane",))
        self.phase("loadbalancer", self.phase_loadbalancer, ("dataplane", "lb"))

    def dump_logs(self):
        lablib.dump_logs(("node1/apiserver.log", "node1/controller-manager.log",
                          "node2/controller-manager.log", "node1/netagent.log",
                          "node2/netagent.log", "node3/netagent.log", "node1/kubelet.log",
                          "node3/kubelet.log"), lines=40)


FEATURE_TEXT = {
    "clusterip": "skiff-apiserver --service-cluster-ip-range (ClusterIP allocation)",
    "dataplane": "skiff-netagent --services (the nftables Service dataplane)",
    "dns": "skiff-netagent --cluster-dns (cluster DNS)",
    "lb": "skiff-controller-manager --lb-pool (LoadBalancer pool)",
}


def features():
    f = {"clusterip": lablib.has_flag("skiff-apiserver", "--service-cluster-ip-range"),
         "dataplane": lablib.has_flag("skiff-netagent", "--services"),
         "dns": lablib.has_flag("skiff-netagent", "--cluster-dns"),
         "lb": lablib.has_flag("skiff-controller-manager", "--lb-pool")}
    return f


def main():
    lablib.need_lab(("skiff-apiserver", "skiff-kubelet", "skiff-shim", "skiff",
                     "skiff-controller-manager", "skiff-netagent", "skiff-scheduler"))
    feats = features()
    log("features: %s" % feats)
    if not feats["clusterip"] or not feats["dataplane"]:
        testlib.skip("no Services in this build: %s" % "; ".join(
            FEATURE_TEXT[f] for f in ("clusterip", "dataplane") if not feats[f]))
    lablib.busybox_image()

    t = Test(feats)
    lablib.run_lab_test(t, t.body, LIMIT, log)
    if t.skipped and not t.failed:
        print("%d/%d checks passed; SKIPPED (not a pass: phases not run): %s" % (
            t.total, t.total, "; ".join(t.skipped)), flush=True)
        sys.exit(testlib.SKIP)
    t.finish()


if __name__ == "__main__":
    main()
