#!/usr/bin/env python3
"""skiff-netagent's service proxy between two nodes, each in its own network namespace (issue 6).

Topology (every namespace is skiff-nasvc-*, removed at exit, also on failure):
  lan: bridge br0;  out: eth0 10.250.9.100/24 on br0 (a client outside the cluster)
  a:   eth0 10.250.9.11/24; bridge skiff0 10.244.1.1/24; skiff-apiserver; skiff-netagent node-a
  b:   eth0 10.250.9.12/24; bridge skiff0 10.244.2.1/24; skiff-netagent node-b
  pa1: 10.244.1.2 and pa2: 10.244.1.3 on a's skiff0;   pb: 10.244.2.2 on b's skiff0
Nodes, Services and Endpoints are made by hand (no controllers): "pods" are namespaces running
small python servers that answer their own name. Checks: ClusterIP from pods on both nodes and
from a node reaches both endpoints; NodePort on both node IPs from outside; an endpoint removed
is no longer used; no endpoints = connection refused at once; a UDP endpoint change deletes the
stale conntrack entry (the same client socket then reaches the new endpoint); kill -9 of the
agent during a long-lived TCP connection through a ClusterIP: the connection survives and the
restarted agent leaves the ruleset as it was; /metrics has the services, DNS and announcer
series. Root only (else 77).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# ---- helper modes, run inside a namespace by the test itself -------------------------------


def http_server(name, port):
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            print("from", self.client_address[0], flush=True)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    s = http.server.ThreadingHTTPServer(("0.0.0.0", port), H)
    s.serve_forever()


def http_get(host, port, count):
    """`count` GETs on fresh connections; prints {"names": {name: n}, "errors": [...]}."""
    import http.client
    names, errors = {}, []
    for _ in range(count):
        try:
            c = http.client.HTTPConnection(host, port, timeout=3)
            c.request("GET", "/")
            body = c.getresponse().read().decode()
            c.close()
            names[body] = names.get(body, 0) + 1
        except Exception as e:  # noqa: BLE001 - reported to the test
            errors.append("%s: %s" % (type(e).__name__, e))
    print(json.dumps({"names": names, "errors": errors[:5]}))
    return 0


def connect(host, port):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))
        print("connected")
    except ConnectionRefusedError:
        print("refused")
    except socket.timeout:
        print("timeout")
    except OSError as e:
        print("error %s" % e)
    return 0


def udp_server(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        _, a = s.recvfrom(2048)
        s.sendto(name.encode(), a)


def udp_client(host, port, sport):
    """One datagram from the fixed source port `sport`; prints the answer or "timeout"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", sport))
    s.settimeout(2)
    s.sendto(b"q", (host, port))
    try:
        print(s.recvfrom(2048)[0].decode())
    except socket.timeout:
        print("timeout")
    return 0


def tcp_echo(port):
    import threading
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)

    def serve(c):
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
        c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def tcp_long(host, port, stop_file, limit):
    """One connection; a line every 100 ms echoed back, until `stop_file` exists (or `limit` s).
    Exit 0 with "ok N" when every line came back on the same connection."""
    c = socket.create_connection((host, port), timeout=5)
    print("connected", flush=True)
    n = 0
    end = time.time() + limit
    try:
        while not os.path.exists(stop_file) and time.time() < end:
            msg = ("line %d\n" % n).encode()
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = c.recv(4096)
                if not d:
                    raise ConnectionError("closed by the peer")
                got += d
            if got != msg:
                raise ConnectionError("echo mismatch")
            n += 1
            time.sleep(0.1)
    except Exception as e:  # noqa: BLE001
        print("broken after %d lines: %s" % (n, e), flush=True)
        return 1
    print("ok %d" % n, flush=True)
    return 0


MODES = {"http-server": lambda a: http_server(a[0], int(a[1])),
         "http-get": lambda a: http_get(a[0], int(a[1]), int(a[2])),
         "connect": lambda a: connect(a[0], int(a[1])),
         "udp-server": lambda a: udp_server(a[0], int(a[1])),
         "udp-client": lambda a: udp_client(a[0], int(a[1]), int(a[2])),
         "tcp-echo": lambda a: tcp_echo(int(a[0])),
         "tcp-long": lambda a: tcp_long(a[0], int(a[1]), a[2], float(a[3]))}

if len(sys.argv) > 1 and sys.argv[1] in MODES:
    sys.exit(MODES[sys.argv[1]](sys.argv[2:]) or 0)

import netlab  # noqa: E402
import testlib  # noqa: E402
from testlib import Checks, log, skip  # noqa: E402

PREFIX = "skiff-nasvc-"
NS = {k: PREFIX + k for k in ("lan", "out", "a", "b", "pa1", "pa2", "pb")}
NODES = {"a": ("node-a", "10.250.9.11", "10.244.1.0/24", "10.244.1.1"),
         "b": ("node-b", "10.250.9.12", "10.244.2.0/24", "10.244.2.1")}
PODS = {"pa1": ("a", "10.244.1.2"), "pa2": ("a", "10.244.1.3"), "pb": ("b", "10.244.2.2")}
OUT_IP = "10.250.9.100"
API_PORT = 6443
WEB_IP, UDP_IP, LONG_IP, EMPTY_IP = "10.96.100.10", "10.96.100.20", "10.96.100.30", "10.96.100.40"
NODE_PORT = 30080
SELF = os.path.abspath(__file__)
PY = sys.executable
procs = []  # (name, Popen, logfile)


sh, nsx, setns, tail, wait_for = netlab.sh, netlab.nsx, netlab.setns, netlab.tail, netlab.wait_for


def cleanup():
    netlab.teardown([p for _, p, _ in procs], NS.values())
    procs.clear()


def build_topology():
    ends = [(k, NS[k], NODES[k][1]) for k in NODES] + [("out", NS["out"], OUT_IP)]
    netlab.build_lan(NS.values(), NS["lan"], ends)
    for k, (_, ip, cidr, gw) in NODES.items():
        node = NS[k]
        sh(["ip", "-n", node, "link", "add", "skiff0", "type", "bridge"])
        sh(["ip", "-n", node, "addr", "add", gw + "/24", "dev", "skiff0"])
        sh(["ip", "-n", node, "link", "set", "skiff0", "up"])
        # Nodes have a default route in real life: a local process's (and a forwarded pod's)
        # packet to a ClusterIP needs some route before the nat/filter hooks DNAT or reject it.
        # The outside namespace does not forward, so nothing leaks through it.
        sh(["ip", "-n", node, "route", "add", "default", "via", OUT_IP])
    for p, (k, ip) in PODS.items():
        node, pod, gw = NS[k], NS[p], NODES[k][3]
        sh(["ip", "-n", node, "link", "add", "v" + p, "mtu", "1450", "type", "veth", "peer",
            "name", "eth0", "mtu", "1450", "netns", pod])
        sh(["ip", "-n", node, "link", "set", "v" + p, "master", "skiff0", "up"])
        # As the skiff CNI plugin does: a pod reaching itself through its Service (hairpin).
        sh(["ip", "-n", node, "link", "set", "v" + p, "type", "bridge_slave", "hairpin", "on"])
        sh(["ip", "-n", pod, "addr", "add", ip + "/24", "dev", "eth0"])
        sh(["ip", "-n", pod, "link", "set", "eth0", "up"])
        sh(["ip", "-n", pod, "route", "add", "default", "via", gw])


def bg(name, ns, args, workdir):
    logf = open(os.path.join(workdir, name + ".log"), "ab")
    p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdout=logf,
                         stderr=subprocess.STDOUT)
    procs.append((name, p, logf.name))
    return p


class Api(netlab.Api):
    """The admin client, from inside node a's namespace (the test process setns'd there)."""

    def must(self, r, what):
        if r.status not in (200, 201):
            raise RuntimeError("%s: %d %s" % (what, r.status, r.body[:400]))
        return json.loads(r.body)

    def create_node(self, k):
        name, ip, cidr, _ = NODES[k]
        obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
               "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
               "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                        {"type": "Hostname", "address": name}],
                          "conditions": [{"type": "Ready", "status": "True"}]}}
        got = self.must(self.c.post("/api/v1/nodes", obj), "create node " + name)
        if not got.get("status", {}).get("addresses"):
            got["status"] = obj["status"]
            self.must(self.c.put("/api/v1/nodes/%s/status" % name, got), "node status " + name)

    def create_service(self, name, ip, port, target, proto="TCP", node_port=None):
        p = {"name": "p", "port": port, "targetPort": target, "protocol": proto}
        spec = {"clusterIP": ip, "ports": [p], "type": "ClusterIP"}
        if node_port:
            spec["type"] = "NodePort"
            p["nodePort"] = node_port
        obj = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec}
        return self.must(self.c.post("/api/v1/namespaces/default/services", obj),
                         "create service " + name)

    def set_endpoints(self, name, pods, port, proto="TCP"):
        """Endpoints default/<name> = `pods` (names from PODS) on `port` (created or replaced)."""
        addrs = [{"ip": PODS[p][1], "nodeName": NODES[PODS[p][0]][0]} for p in pods]
        subsets = [{"addresses": addrs, "ports": [{"name": "p", "port": port,
                                                   "protocol": proto}]}] if pods else []
        path = "/api/v1/namespaces/default/endpoints/" + name
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        obj = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": name, "namespace": "default", "annotations": {
                   "endpoints.kubernetes.io/last-change-trigger-time": now}},
               "subsets": subsets}
        cur = self.c.get(path)
        if cur.status == 200:
            obj["metadata"]["resourceVersion"] = json.loads(cur.body)["metadata"][
                "resourceVersion"]
            return self.must(self.c.put(path, obj), "update endpoints " + name)
        return self.must(self.c.post("/api/v1/namespaces/default/endpoints", obj),
                         "create endpoints " + name)


def start_apiserver(workdir):
    data = os.path.join(workdir, "apiserver")
    p = bg("apiserver", NS["a"], netlab.apiserver_args(NODES["a"][1], API_PORT, data), workdir)
    return netlab.wait_apiserver(p, data, API_PORT, procs[-1][2], Api)


def start_agent(k, kc, workdir):
    name = NODES[k][0]
    args = [testlib.need_bin("skiff-netagent"), "--kubeconfig", kc, "--node-name", name,
            "--backend", "vxlan", "--resync-period", "3s", "--cluster-cidr", "10.244.0.0/16",
            "--service-cidr", "10.96.0.0/16", "--node-ip", NODES[k][1], "--iface", "eth0",
            "--dns-upstream", OUT_IP]
    log("starting netagent %s: %s" % (k, " ".join(args)))
    return bg("netagent-" + k, NS[k], args, workdir)


def metrics(k):
    return nsx(NS[k], [PY, "-c", "import urllib.request as u;"
                       "print(u.urlopen('http://127.0.0.1:10256/metrics',timeout=5)"
                       ".read().decode())"], check=False).stdout


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            try:
                return float(line.split()[1])
            except ValueError:
                return None
    return None


def http_names(pod_or_node_ns, host, port, count=30):
    r = nsx(pod_or_node_ns, [PY, SELF, "http-get", host, str(port), str(count)], check=False,
            timeout=count * 4 + 10)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"names": {}, "errors": [r.stdout + r.stderr]}


def ruleset(k):
    """`nft list table ip skiff` of node k, lines sorted (map elements may print in any order)."""
    r = nsx(NS[k], ["nft", "list", "table", "ip", "skiff"], check=False)
    return sorted(line.strip() for line in r.stdout.splitlines() if line.strip())


def conntrack_lines(k, needle):
    r = nsx(NS[k], ["cat", "/proc/net/nf_conntrack"], check=False)
    return [line for line in r.stdout.splitlines() if needle in line]


def dump_logs():
    netlab.print_logs((name, path) for name, _, path in procs
                      if name.startswith("netagent") or name == "apiserver")


def main():
    if os.geteuid() != 0:
        skip("needs root (network namespaces, vxlan, nftables)")
    testlib.ensure_modules("yaml")
    for tool in ("ip", "nft"):
        if sh(["which", tool], check=False).returncode != 0:
            skip("%s not installed" % tool)
    testlib.need_bin("skiff-netagent")
    testlib.need_bin("skiff-apiserver")
    cleanup()  # leftovers of a killed earlier run
    probe = PREFIX + "probe"
    sh(["ip", "netns", "add", probe])
    r = sh(["ip", "-n", probe, "link", "add", "vx0", "type", "vxlan", "id", "1", "dstport",
            "8472"], check=False)
    ct = sh(["ip", "netns", "exec", probe, "sh", "-c", "test -r /proc/net/nf_conntrack"],
            check=False)
    sh(["ip", "netns", "del", probe], check=False)
    if r.returncode != 0:
        skip("no vxlan support in this kernel: " + r.stderr.strip())
    have_proc_ct = ct.returncode == 0
    if not have_proc_ct:
        # Said, not silent: the deletion is still checked through the metric and the traffic.
        log("skip - the two conntrack table read-backs (no /proc/net/nf_conntrack in a new "
            "namespace: kernel without CONFIG_NF_CONNTRACK_PROCFS)")

    c = Checks()
    workdir = testlib.tmpdir()
    build_topology()
    setns("/run/netns/" + NS["a"])
    api, kc = start_apiserver(workdir)
    api.create_node("a")
    api.create_node("b")

    # Pods: web on 8080, UDP on 5353, a TCP echo on 9090.
    for p in PODS:
        bg("http-" + p, NS[p], [PY, SELF, "http-server", p, "8080"], workdir)
        bg("udp-" + p, NS[p], [PY, SELF, "udp-server", p, "5353"], workdir)
    bg("echo-pb", NS["pb"], [PY, SELF, "tcp-echo", "9090"], workdir)

    api.create_service("web", WEB_IP, 80, 8080, node_port=NODE_PORT)
    api.set_endpoints("web", ["pa1", "pb"], 8080)
    api.create_service("udp", UDP_IP, 53, 5353, proto="UDP")
    api.set_endpoints("udp", ["pa1"], 5353, proto="UDP")
    api.create_service("long", LONG_IP, 90, 9090)
    api.set_endpoints("long", ["pb"], 9090)
    api.create_service("empty", EMPTY_IP, 80, 8080)
    api.set_endpoints("empty", [], 8080)

    agents = {k: start_agent(k, kc, workdir) for k in ("a", "b")}
    for k in ("a", "b"):
        ok = wait_for(lambda: metric(metrics(k), "skiff_netagent_services_synced") == 1, 40)
        if not c.check("node-%s: the first services sync succeeded" % k, ok,
                       metrics(k)[-1500:] + "\n" +
                       tail(os.path.join(workdir, "netagent-%s.log" % k), 30)):
            return c.finish()

    # --- ClusterIP --------------------------------------------------------------------------
    def both(ns, host, port):
        r = http_names(ns, host, port)
        return r if set(r["names"]) == {"pa1", "pb"} and not r["errors"] else None

    for src, what in (("pa2", "pod pa2 on node a"), ("pb", "pod pb on node b"),
                      ("a", "node a"), ("b", "node b")):
        r = wait_for(lambda: both(NS[src], WEB_IP, 80), 20)
        c.check("ClusterIP %s:80 from %s answers from both endpoints" % (WEB_IP, what),
                r is not None, json.dumps(http_names(NS[src], WEB_IP, 80)))

    r = nsx(NS["pb"], [PY, SELF, "connect", "10.96.0.1", "443"], check=False)
    c.eq("the kubernetes Service 10.96.0.1:443 reaches the API server from a pod",
         r.stdout.strip(), "connected")

    # --- NodePort from outside ---------------------------------------------------------------
    for k in ("a", "b"):
        r = wait_for(lambda: both(NS["out"], NODES[k][1], NODE_PORT), 20)
        c.check("NodePort %s:%d from outside answers from both endpoints (one of them remote)" % (
            NODES[k][1], NODE_PORT), r is not None,
            json.dumps(http_names(NS["out"], NODES[k][1], NODE_PORT)))

    # --- endpoint removal --------------------------------------------------------------------
    api.set_endpoints("web", ["pb"], 8080)

    def only_pb():
        r = http_names(NS["pa2"], WEB_IP, 80, 20)
        return r if r["names"] == {"pb": 20} else None

    r = wait_for(only_pb, 20)
    c.check("after pa1 is removed from Endpoints web, 20/20 requests reach pb", r is not None,
            json.dumps(http_names(NS["pa2"], WEB_IP, 80, 20)))

    # --- no endpoints: refused at once ---------------------------------------------------------
    r = nsx(NS["pa2"], [PY, SELF, "connect", EMPTY_IP, "80"], check=False)
    c.eq("a Service without endpoints refuses the connection (TCP reset, not a timeout)",
         r.stdout.strip(), "refused")
    api.set_endpoints("empty", ["pa1"], 8080)
    r = wait_for(lambda: http_names(NS["pa2"], EMPTY_IP, 80, 3)["names"] == {"pa1": 3}, 20)
    c.check("the same Service answers once it has an endpoint", r,
            json.dumps(http_names(NS["pa2"], EMPTY_IP, 80, 3)))

    # --- UDP: a stale conntrack entry is deleted ------------------------------------------------
    sport = "40053"
    first = nsx(NS["pa2"], [PY, SELF, "udp-client", UDP_IP, "53", sport], check=False)
    c.eq("UDP %s:53 from pa2 (source port %s) answers from pa1" % (UDP_IP, sport),
         first.stdout.strip(), "pa1")
    if have_proc_ct:
        lines = conntrack_lines("a", "sport=%s dport=53" % sport)
        c.check("node a has the conntrack entry pa2 -> %s:53 DNATed to pa1" % UDP_IP,
                any("src=10.244.1.2" in line for line in lines), "\n".join(lines))
    deleted_before = metric(metrics("a"), "skiff_netagent_conntrack_entries_deleted_total") or 0
    api.set_endpoints("udp", ["pb"], 5353, proto="UDP")

    def moved():
        m = metric(metrics("a"), "skiff_netagent_conntrack_entries_deleted_total") or 0
        return m > deleted_before

    moved_ok = wait_for(moved, 20)
    c.check("node a deleted the stale UDP conntrack entry (metric went up)", moved_ok,
            metrics("a")[-2000:])
    if have_proc_ct:
        lines = conntrack_lines("a", "sport=%s dport=53" % sport)
        c.check("no conntrack entry of pa2:%s still points at pa1" % sport,
                not any("src=10.244.1.2" in line for line in lines), "\n".join(lines))
    again = nsx(NS["pa2"], [PY, SELF, "udp-client", UDP_IP, "53", sport], check=False)
    c.eq("the same client port now reaches pb (pa1 still runs and would answer)",
         again.stdout.strip(), "pb")

    # --- kill -9 during a long-lived TCP connection --------------------------------------------
    stop_file = os.path.join(workdir, "stop-long")
    longp = subprocess.Popen(["ip", "netns", "exec", NS["pa2"], PY, SELF, "tcp-long", LONG_IP,
                              "90", stop_file, "60"], stdout=subprocess.PIPE, text=True)
    procs.append(("tcp-long", longp, ""))
    first_line = longp.stdout.readline().strip()
    c.eq("a long-lived TCP connection pa2 -> %s:90 (pb's echo) is up" % LONG_IP, first_line,
         "connected")
    before = ruleset("a")
    time.sleep(1)
    agents["a"].send_signal(signal.SIGKILL)
    agents["a"].wait(timeout=10)
    time.sleep(2)  # the connection keeps going without the agent
    c.eq("after kill -9 the ruleset of node a is intact", ruleset("a"), before)
    agents["a"] = start_agent("a", kc, workdir)
    ok = wait_for(lambda: metric(metrics("a"), "skiff_netagent_services_synced") == 1, 40)
    c.check("the restarted agent synced", ok, tail(procs[-1][2], 30))
    time.sleep(2)
    c.eq("the restarted agent changed nothing in table ip skiff", ruleset("a"), before)
    open(stop_file, "w").close()
    try:
        out, _ = longp.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        longp.kill()
        out = "(still running)"
    c.check("the long-lived connection survived kill -9 and restart of the agent",
            longp.returncode == 0 and out.strip().startswith("ok "), out.strip())
    r = wait_for(lambda: both(NS["pa2"], WEB_IP, 80) or only_pb(), 30)
    c.check("new connections still work after the restart", r is not None)

    # --- /metrics --------------------------------------------------------------------------------
    m = metrics("a")
    for series in ("skiff_netagent_services_sync_duration_seconds_bucket",
                   "skiff_netagent_services_sync_duration_seconds_count",
                   "skiff_netagent_network_programming_duration_seconds_bucket",
                   "skiff_netagent_services_programmed",
                   "skiff_netagent_services_endpoints_programmed",
                   "skiff_netagent_services_sync_errors_total",
                   "skiff_netagent_conntrack_entries_deleted_total",
                   "skiff_netagent_syncs_total", "skiff_dns_", "skiff_netagent_lb_"):
        c.check("/metrics has %s" % series, series in m)
    # kubernetes + web + udp + long + empty.
    c.eq("skiff_netagent_services_programmed counts 5 service ports",
         metric(m, "skiff_netagent_services_programmed"), 5.0)
    mb = metrics("b")
    c.check("node b measured network programming latency of the changes",
            (metric(mb, "skiff_netagent_network_programming_duration_seconds_count") or 0) > 0,
            mb[-2500:])
    c.eq("no services sync errors on node b",
         metric(mb, "skiff_netagent_services_sync_errors_total"), 0.0)
    r = nsx(NS["a"], ["ip", "-j", "addr", "show", "dev", "skiff.dns"], check=False)
    c.check("node a holds the cluster DNS address 10.96.0.10 on skiff.dns",
            "10.96.0.10" in r.stdout, r.stdout + r.stderr)

    for k in ("a", "b"):
        agents[k].send_signal(signal.SIGTERM)
        try:
            rc = agents[k].wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = None
        c.eq("netagent %s exits 0 on SIGTERM" % k, rc, 0)
    if c.failed:
        dump_logs()
    return c.finish()


if __name__ == "__main__":
    netlab.run_main(main, cleanup, dump_logs)
