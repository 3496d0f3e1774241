#!/usr/bin/env python3
"""skiff-netagent between two nodes, each in its own network namespace (issue 4).

Topology (every namespace is skiff-natest-*, removed at exit, also on failure):
  lan: bridge br0
  a:   eth0 10.250.8.11/24 (veth to lan/br0); bridge skiff0 10.244.1.1/24; skiff-apiserver;
       skiff-netagent --node-name node-a
  b:   eth0 10.250.8.12/24; bridge skiff0 10.244.2.1/24; skiff-netagent --node-name node-b
  pa:  "pod" eth0 10.244.1.2/24 on a's skiff0;   pb: eth0 10.244.2.2/24 on b's skiff0
The Node objects are made by hand (podCIDR + InternalIP) as the controller-manager and kubelet
would. Checks: annotations, route/neigh/fdb as designed, pod<->pod ping and TCP without NAT,
node->remote pod, Node delete/recreate, a hand-deleted route restored by the resync, restart
without change, host-gw mode. Root only (else 77).
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PREFIX = "skiff-natest-"
NS = {k: PREFIX + k for k in ("lan", "a", "b", "pa", "pb")}
NODES = {"a": ("node-a", "10.250.8.11", "10.244.1.0/24", "10.244.1.1", "10.244.1.2"),
         "b": ("node-b", "10.250.8.12", "10.244.2.0/24", "10.244.2.1", "10.244.2.2")}
API_PORT = 6443
RESYNC = "3s"


def icmp_ping(dst, count=3, timeout=2.0):
    """Echo requests over a raw socket (no ping binary needed); exit 0 when one is answered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(timeout)
    ident = os.getpid() & 0xFFFF

    def csum(b):
        if len(b) % 2:
            b += b"\0"
        t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        t = (t >> 16) + (t & 0xFFFF)
        t += t >> 16
        return ~t & 0xFFFF

    for seq in range(count):
        payload = b"skiff-natest" * 4
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload
        s.sendto(pkt, (dst, 0))
        end = time.time() + timeout
        while time.time() < end:
            try:
                data, addr = s.recvfrom(2048)
            except socket.timeout:
                break
            ihl = (data[0] & 0x0F) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident and rseq == seq and addr[0] == dst:
                return 0
    return 1


def tcp_server(port, timeout=20):
    """Accepts one connection, prints the client's address, answers "hi"."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(timeout)
    print("listening", flush=True)
    c, a = s.accept()
    print(a[0], flush=True)
    c.sendall(b"hi")
    c.close()
    return 0


def tcp_client(dst, port):
    c = socket.create_connection((dst, port), timeout=5)
    data = c.recv(10)
    c.close()
    return 0 if data == b"hi" else 1


if len(sys.argv) > 1 and sys.argv[1] in ("ping", "tcp-server", "tcp-client"):
    # Helper modes run inside a namespace by the test itself.
    if sys.argv[1] == "ping":
        sys.exit(icmp_ping(sys.argv[2]))
    if sys.argv[1] == "tcp-server":
        sys.exit(tcp_server(int(sys.argv[2])))
    sys.exit(tcp_client(sys.argv[2], int(sys.argv[3])))

import netlab  # noqa: E402
import testlib  # noqa: E402
from testlib import Checks, log, skip  # noqa: E402

SELF = os.path.abspath(__file__)
PY = sys.executable
procs = []  # (name, Popen, logfile)


sh, nsx, setns, tail, wait_for = netlab.sh, netlab.nsx, netlab.setns, netlab.tail, netlab.wait_for


def cleanup():
    netlab.teardown([p for _, p, _ in procs], NS.values())
    procs.clear()


def build_topology():
    netlab.build_lan(NS.values(), NS["lan"], [(k, NS[k], NODES[k][1]) for k in NODES])
    for k, (_, ip, cidr, gw, pod_ip) in NODES.items():
        node, pod = NS[k], NS["p" + k]
        # The pod side, as the skiff CNI plugin makes it in vxlan mode (MTU 1500 - 50).
        sh(["ip", "-n", node, "link", "add", "skiff0", "type", "bridge"])
        sh(["ip", "-n", node, "addr", "add", gw + "/24", "dev", "skiff0"])
        sh(["ip", "-n", node, "link", "set", "skiff0", "up"])
        sh(["ip", "-n", node, "link", "add", "vp" + k, "mtu", "1450", "type", "veth", "peer",
            "name", "eth0", "mtu", "1450", "netns", pod])
        sh(["ip", "-n", node, "link", "set", "vp" + k, "master", "skiff0", "up"])
        sh(["ip", "-n", pod, "addr", "add", pod_ip + "/24", "dev", "eth0"])
        sh(["ip", "-n", pod, "link", "set", "eth0", "up"])
        sh(["ip", "-n", pod, "route", "add", "default", "via", gw])


def start_apiserver(workdir):
    data = os.path.join(workdir, "apiserver")
    logf = open(os.path.join(workdir, "apiserver.log"), "ab")
    args = ["ip", "netns", "exec", NS["a"]] + netlab.apiserver_args(NODES["a"][1], API_PORT, data)
    log("starting " + " ".join(args))
    p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
    procs.append(("apiserver", p, logf.name))
    return netlab.wait_apiserver(p, data, API_PORT, logf.name, Api)


class Api(netlab.Api):
    """The admin client, from inside node a's namespace (the test process setns'd there)."""

    def node(self, name):
        r = self.c.get("/api/v1/nodes/" + name)
        return json.loads(r.body) if r.status == 200 else None

    def create_node(self, k):
        name, ip, cidr, _, _ = NODES[k]
        obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
               "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
               "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                        {"type": "Hostname", "address": name}]}}
        r = self.c.post("/api/v1/nodes", obj)
        if r.status not in (200, 201):
            raise RuntimeError("create node %s: %d %s" % (name, r.status, r.body[:300]))
        got = json.loads(r.body)
        if not got.get("status", {}).get("addresses"):
            # A server that drops status on create: set it through the subresource.
            got["status"] = obj["status"]
            r = self.c.put("/api/v1/nodes/%s/status" % name, got)
            if r.status != 200:
                raise RuntimeError("node %s status: %d %s" % (name, r.status, r.body[:300]))

    def delete_node(self, name):
        return self.c.delete("/api/v1/nodes/" + name).status


def start_agent(k, kc, workdir, backend="vxlan"):
    name = NODES[k][0]
    logf = open(os.path.join(workdir, "netagent-%s.log" % k), "ab")
    args = ["ip", "netns", "exec", NS[k], testlib.need_bin("skiff-netagent"), "--kubeconfig", kc,
            "--node-name", name, "--backend", backend, "--resync-period", RESYNC,
            "--cluster-cidr", "10.244.0.0/16"]
    log("starting " + " ".join(args))
    p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
    procs.append(("netagent-" + k, p, logf.name))
    return p


def stop_agent(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        return None


def ip_json(ns, args):
    r = nsx(ns, ["ip", "-j"] + args, check=False)
    try:
        return json.loads(r.stdout or "[]")
    except ValueError:
        return []


def overlay_state(k):
    """What node k's kernel holds that the agent owns: proto-83 routes, neigh and fdb on the
    vxlan device, and the device itself."""
    ns = NS[k]
    routes = sorted((r.get("dst"), r.get("gateway"), r.get("dev"), "onlink" in r.get("flags", []))
                    for r in ip_json(ns, ["route", "show", "proto", "83"]))
    link = ip_json(ns, ["-d", "link", "show", "skiff.vxlan"])
    dev = None
    if link:
        li = link[0]
        info = li.get("linkinfo", {}).get("info_data", {})
        dev = {"ifindex": li.get("ifindex"), "mac": li.get("address"), "mtu": li.get("mtu"),
               "vni": info.get("id"), "port": info.get("port"), "local": info.get("local"),
               "learning": info.get("learning")}
    neigh = sorted((n.get("dst"), n.get("lladdr"), tuple(n.get("state", [])))
                   for n in ip_json(ns, ["neigh", "show", "dev", "skiff.vxlan"])) if dev else []
    fdb = []
    if dev:
        r = nsx(ns, ["bridge", "-j", "fdb", "show", "dev", "skiff.vxlan"], check=False)
        try:
            fdb = sorted((f.get("mac"), f.get("dst"), f.get("state", ""))
                         for f in json.loads(r.stdout or "[]") if f.get("dst"))
        except ValueError:
            pass
    addrs = []
    if dev:
        for a in ip_json(ns, ["addr", "show", "dev", "skiff.vxlan"]):
            addrs += ["%s/%s" % (i["local"], i["prefixlen"]) for i in a.get("addr_info", [])
                      if i.get("family") == "inet"]
    return {"routes": routes, "dev": dev, "neigh": neigh, "fdb": fdb, "addrs": addrs}


def ping(ns, dst):
    return nsx(ns, [PY, SELF, "ping", dst], check=False, timeout=30).returncode == 0


def agent_metrics(k):
    """node k's skiff-netagent /metrics ("" when it does not answer)."""
    return nsx(NS[k], [PY, "-c", "import urllib.request as u;"
                       "print(u.urlopen('http://127.0.0.1:10256/metrics',timeout=5)"
                       ".read().decode())"], check=False).stdout


def agent_syncs(k):
    for line in agent_metrics(k).splitlines():
        if line.startswith("skiff_netagent_syncs_total "):
            return int(float(line.split()[1]))
    return None


def annotations(api, name):
    n = api.node(name) or {}
    return n.get("metadata", {}).get("annotations", {}) or {}


def dump_logs():
    netlab.print_logs((name, path) for name, _, path in procs)


def main():
    if os.geteuid() != 0:
        skip("needs root (network namespaces, vxlan)")
    testlib.ensure_modules("yaml")
    for tool in ("ip", "bridge"):
        if sh(["which", tool], check=False).returncode != 0:
            skip("%s (iproute2) not installed" % tool)
    testlib.need_bin("skiff-netagent")
    testlib.need_bin("skiff-apiserver")
    cleanup()  # leftovers of a killed earlier run
    probe = PREFIX + "probe"
    sh(["ip", "netns", "add", probe])
    r = sh(["ip", "-n", probe, "link", "add", "vx0", "type", "vxlan", "id", "1", "dstport",
            "8472"], check=False)
    sh(["ip", "netns", "del", probe], check=False)
    if r.returncode != 0:
        skip("no vxlan support in this kernel: " + r.stderr.strip())

    c = Checks()
    workdir = testlib.tmpdir()
    build_topology()
    # The API server listens in node a; the test talks to it from there too.
    setns("/run/netns/" + NS["a"])
    api, kc = start_apiserver(workdir)
    api.create_node("a")
    api.create_node("b")
    agents = {k: start_agent(k, kc, workdir) for k in ("a", "b")}

    # --- annotations -----------------------------------------------------------------------
    def published(k):
        ann = annotations(api, NODES[k][0])
        return ann if ann.get("skiff.io/vtep-mac") else None

    for k in ("a", "b"):
        ann = wait_for(lambda: published(k), 30)
        st = overlay_state(k)
        c.check("node-%s annotations published (backend, underlay-ip, vtep-mac)" % k,
                bool(ann) and ann.get("skiff.io/backend") == "vxlan" and
                ann.get("skiff.io/underlay-ip") == NODES[k][1] and st["dev"] is not None and
                ann.get("skiff.io/vtep-mac") == st["dev"]["mac"], "%s / %s" % (ann, st["dev"]))

    # --- one agent per node ------------------------------------------------------------------
    # A second agent in node a's namespace (its own status port off, so that is not what stops
    # it) exits at once, before it touches anything, naming the running one.
    second = subprocess.run(["ip", "netns", "exec", NS["a"], testlib.need_bin("skiff-netagent"),
                             "--kubeconfig", kc, "--node-name", NODES["a"][0], "--port", "0",
                             "--cluster-cidr", "10.244.0.0/16"],
                            capture_output=True, text=True, timeout=30)
    c.check("a second skiff-netagent in node a's namespace exits 1, naming the first (pid %d)" %
            agents["a"].pid,
            second.returncode == 1 and
            "another skiff-netagent runs in this network namespace (pid %d;" % agents["a"].pid
            in second.stderr, "exit %d: %s" % (second.returncode, second.stderr.strip()[-400:]))

    # --- kernel state as designed ----------------------------------------------------------
    def designed(k, other):
        st = overlay_state(k)
        o_cidr, o_net = NODES[other][2], NODES[other][2].split("/")[0]
        o_mac = (annotations(api, NODES[other][0]) or {}).get("skiff.io/vtep-mac")
        want_routes = [(o_cidr, o_net, "skiff.vxlan", True)]
        ok = (st["routes"] == want_routes and
              [(n[0], n[1]) for n in st["neigh"]] == [(o_net, o_mac)] and
              "PERMANENT" in (st["neigh"][0][2] if st["neigh"] else ()) and
              [(f[0], f[1]) for f in st["fdb"]] == [(o_mac, NODES[other][1])])
        return st if ok else None

    for k, other in (("a", "b"), ("b", "a")):
        st = wait_for(lambda: designed(k, other), 30)
        c.check("node-%s: route %s via %s dev skiff.vxlan onlink proto 83, permanent neigh, fdb "
                "dst %s" % (k, NODES[other][2], NODES[other][2].split("/")[0], NODES[other][1]),
                st is not None, json.dumps(overlay_state(k)))
        d = overlay_state(k)["dev"] or {}
        c.check("node-%s: skiff.vxlan vni 1, port 8472, local %s, learning off, mtu 1450" % (
            k, NODES[k][1]),
            d.get("vni") == 1 and d.get("port") == 8472 and d.get("local") == NODES[k][1] and
            not d.get("learning") and d.get("mtu") == 1450, json.dumps(d))
        c.eq("node-%s: skiff.vxlan holds its pod CIDR's network address /32" % k,
             overlay_state(k)["addrs"], [NODES[k][2].split("/")[0] + "/32"])
        fwd = nsx(NS[k], ["cat", "/proc/sys/net/ipv4/ip_forward"], check=False).stdout.strip()
        c.eq("node-%s: net.ipv4.ip_forward = 1" % k, fwd, "1")

    r = nsx(NS["a"], ["nft", "-j", "list", "table", "ip", "skiff"], check=False)
    c.check("node-a: nft table ip skiff (masquerade) exists", r.returncode == 0, r.stderr.strip())

    # --- traffic ---------------------------------------------------------------------------
    c.check("pod a (10.244.1.2) pings pod b (10.244.2.2)", ping(NS["pa"], "10.244.2.2"))
    c.check("pod b pings pod a", ping(NS["pb"], "10.244.1.2"))
    srv = subprocess.Popen(["ip", "netns", "exec", NS["pb"], PY, SELF, "tcp-server", "7777"],
                           stdout=subprocess.PIPE, text=True)
    procs.append(("tcp-server", srv, ""))
    first = srv.stdout.readline().strip()
    cl = nsx(NS["pa"], [PY, SELF, "tcp-client", "10.244.2.2", "7777"], check=False)
    try:
        out, _ = srv.communicate(timeout=25)
    except subprocess.TimeoutExpired:
        srv.kill()
        out = ""
    c.check("TCP pod a -> pod b: the server sees the client pod's IP 10.244.1.2 (no NAT)",
            first == "listening" and cl.returncode == 0 and out.strip() == "10.244.1.2",
            "client rc %d, server saw %r" % (cl.returncode, out.strip()))
    c.check("node a -> pod b (source 10.244.1.0 routes back)", ping(NS["a"], "10.244.2.2"))

    # A route skiff did not make is never touched.
    sh(["ip", "-n", NS["a"], "route", "add", "10.99.0.0/24", "via", "10.250.8.1", "dev", "eth0"])

    # --- Node delete / recreate ------------------------------------------------------------
    c.check("delete Node node-b", api.delete_node("node-b") in (200, 202))
    gone = wait_for(lambda: (lambda s: not s["routes"] and not s["neigh"] and not s["fdb"])(
        overlay_state("a")), 20)
    c.check("node-a: route, neigh and fdb for node-b vanish", gone,
            json.dumps(overlay_state("a")))
    api.create_node("b")
    back = wait_for(lambda: designed("a", "b"), 30)
    c.check("recreated node-b: node-a's route, neigh and fdb are restored (agent b re-annotates)",
            back is not None, json.dumps(overlay_state("a")))
    c.check("after recreate: pod a pings pod b", ping(NS["pa"], "10.244.2.2"))

    # --- resync repairs --------------------------------------------------------------------
    sh(["ip", "-n", NS["a"], "route", "del", "10.244.2.0/24"])
    back = wait_for(lambda: designed("a", "b"), 20)
    c.check("a route deleted by hand comes back within the resync period (%s)" % RESYNC,
            back is not None, json.dumps(overlay_state("a")))
    sh(["ip", "-n", NS["b"], "link", "del", "skiff.vxlan"])
    back = wait_for(lambda: designed("b", "a"), 20)
    c.check("a skiff.vxlan deleted by hand is re-created with its entries", back is not None,
            json.dumps(overlay_state("b")))
    # Its MAC changed: node-a must learn the new one from the annotation.
    back = wait_for(lambda: designed("a", "b"), 20)
    c.check("node-a follows node-b's new VTEP MAC", back is not None,
            json.dumps(overlay_state("a")))
    c.check("after re-creation: pod a pings pod b", ping(NS["pa"], "10.244.2.2"))

    # --- restart without change ------------------------------------------------------------
    before = overlay_state("a")
    rc = stop_agent(agents["a"])
    c.eq("SIGTERM: netagent exits 0", rc, 0)
    c.eq("stopped agent leaves its state in place", overlay_state("a"), before)
    c.check("traffic flows while the agent is down", ping(NS["pa"], "10.244.2.2"))
    syncs_before = agent_syncs("a")
    agents["a"] = start_agent("a", kc, workdir)
    # Two syncs of the new process (the counter restarts at 0): its start-up one and the next.
    c.check("the restarted agent synced twice", wait_for(
        lambda: (agent_syncs("a") or 0) >= 2, 60), "syncs_total %s before the restart, now %s" % (
            syncs_before, agent_syncs("a")))
    c.eq("restarted agent changes nothing (same device ifindex/MAC, routes, neigh, fdb)",
         overlay_state("a"), before)
    c.check("no 'applying' in the restarted agent's log",
            "applying" not in tail(procs[-1][2], 200).rsplit("started", 1)[-1],
            tail(procs[-1][2], 20))
    r = nsx(NS["a"], ["ip", "-j", "route", "show", "10.99.0.0/24"], check=False)
    c.check("the foreign route 10.99.0.0/24 is untouched", "10.250.8.1" in r.stdout, r.stdout)

    metrics = agent_metrics("a")
    c.check("/metrics reports syncs and 1 peer",
            "skiff_netagent_syncs_total" in metrics and "skiff_netagent_peers 1" in metrics,
            metrics[:400])
    hz = nsx(NS["a"], [PY, "-c", "import urllib.request as u;"
                       "print(u.urlopen('http://127.0.0.1:10256/healthz',timeout=5).read()"
                       ".decode())"], check=False).stdout.strip()
    c.eq("/healthz", hz, "ok")

    # --- bad data on a peer Node ------------------------------------------------------------
    bad = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "node-bad", "annotations": {
               "skiff.io/backend": "vxlan", "skiff.io/underlay-ip": "10.250.8.300",
               "skiff.io/vtep-mac": "not-a-mac"}},
           "spec": {"podCIDR": "10.244.3.0/24"}}
    r = api.c.post("/api/v1/nodes", bad)
    c.check("create Node node-bad (malformed annotations)", r.status in (200, 201), r.body[:200])
    bad_msg = ("not routing node node-bad: skiff.io/underlay-ip \"10.250.8.300\" is not an IPv4 "
               "address")
    wait_for(lambda: bad_msg in tail(procs[-1][2], 400).rsplit("started", 1)[-1], 60)
    agent_log = tail(procs[-1][2], 400).rsplit("started", 1)[-1]
    c.check("node-bad is skipped with a reason in the log, the agent keeps running",
            agents["a"].poll() is None and bad_msg in agent_log, agent_log[-1500:])
    c.check("node-a keeps exactly its one peer", designed("a", "b") is not None,
            json.dumps(overlay_state("a")))
    api.delete_node("node-bad")

    # --- an incompatible skiff.vxlan is explained and re-created ----------------------------
    stop_agent(agents["a"])
    sh(["ip", "-n", NS["a"], "link", "del", "skiff.vxlan"])
    sh(["ip", "-n", NS["a"], "link", "add", "skiff.vxlan", "type", "vxlan", "id", "9", "dstport",
        "4789", "local", NODES["a"][1], "dev", "eth0"])
    agents["a"] = start_agent("a", kc, workdir)
    ok = wait_for(lambda: (overlay_state("a")["dev"] or {}).get("vni") == 1 and
                  designed("a", "b"), 60)
    agent_log = tail(procs[-1][2], 200).rsplit("started", 1)[-1]
    c.check("an existing skiff.vxlan with vni 9, port 4789, learning on is re-created as designed",
            bool(ok) and "incompatible configuration (vni 9, want 1; UDP port 4789, want 8472; "
            "learning on, want off)" in agent_log, agent_log[-1500:])
    back = wait_for(lambda: designed("b", "a"), 20)
    c.check("node-b follows node-a's new VTEP MAC", back is not None,
            json.dumps(overlay_state("b")))
    c.check("after re-creation: pod b pings pod a", ping(NS["pb"], "10.244.1.2"))

    # --- host-gw ---------------------------------------------------------------------------
    for k in ("a", "b"):
        stop_agent(agents[k])
    agents = {k: start_agent(k, kc, workdir, backend="host-gw") for k in ("a", "b")}
    for k, other in (("a", "b"), ("b", "a")):
        want = [(NODES[other][2], NODES[other][1], "eth0", False)]
        ok = wait_for(lambda: overlay_state(k)["routes"] == want and
                      overlay_state(k)["dev"] is None, 30)
        c.check("host-gw node-%s: route %s via %s dev eth0 proto 83; skiff.vxlan gone" % (
            k, NODES[other][2], NODES[other][1]), ok, json.dumps(overlay_state(k)))
        ann = wait_for(lambda: (lambda a: a if a.get("skiff.io/backend") == "host-gw" and
                                "skiff.io/vtep-mac" not in a else None)(
            annotations(api, NODES[k][0])), 20)
        c.check("host-gw node-%s: annotations say host-gw, no vtep-mac" % k, bool(ann),
                str(annotations(api, NODES[k][0])))
    c.check("host-gw: pod a pings pod b", ping(NS["pa"], "10.244.2.2"))
    c.check("host-gw: pod b pings pod a", ping(NS["pb"], "10.244.1.2"))
    c.check("host-gw: node a -> pod b", ping(NS["a"], "10.244.2.2"))

    for k in ("a", "b"):
        c.eq("netagent %s exits 0 on SIGTERM" % k, stop_agent(agents[k]), 0)
    if c.failed:
        dump_logs()
    return c.finish()


if __name__ == "__main__":
    netlab.run_main(main, cleanup, dump_logs)
