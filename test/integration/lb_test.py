#!/usr/bin/env python3
"""LoadBalancer Services: the address controller and the L2 announcer (issue 6, item 4).

Topology (every namespace is skiff-lbtest-<pid>-*, removed at exit, also on failure):
  lan: bridge br0
  api: eth0 10.250.9.5/24; skiff-apiserver; the LoadBalancer controller
  n1:  eth0 10.250.9.11/24; an announcer for Node lbtest-n1 on eth0
  n2:  eth0 10.250.9.12/24; an announcer for Node lbtest-n2 on eth0
  out: eth0 10.250.9.100/24; asks "who-has <VIP>" with a raw ARP socket (this script,
       --arp-probe) and reads the replies' MACs
The controller and the announcers run through hidden Catch2 cases of their own unit-test
binaries ("[.run]": skiff_ctrl_loadbalancer_test, skiff_announce_test), so this test does not
depend on how skiff-controller-manager and skiff-netagent wire them. The Nodes (Ready) and
the Endpoints are made by hand.

Checks: pool allocation (lowest free), a requested address, exhaustion => AllocationFailed
event and the address handed out once one is freed, ingress cleared when a Service stops
being a LoadBalancer, addresses kept across a controller restart, a ConfigMap pool with a bad
entry (InvalidPool event, the good entry used). Announcer: one Lease holder per address and
only the holder answers ARP from outside (with its eth0 MAC); kill -9 of the holder => the other
node answers (the time it took is printed, not asserted); externalTrafficPolicy Local moves the
address to the node with the ready endpoint; a not-Ready node releases it; the new holder's
gratuitous ARP updates the outside's neighbour entry; a deleted Service is no longer answered;
SIGTERM releases the Lease. Root only (else 77).
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


def arp_probe(iface, target, src_ip, seconds=1.0):
    """Broadcasts who-has `target` on `iface`; prints the MACs that answered (one per line)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((iface, 0x0806))
    mac = s.getsockname()[4][:6]
    frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x0806) +
             struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(src_ip) +
             b"\0" * 6 + socket.inet_aton(target))
    s.send(frame)
    s.settimeout(0.1)
    seen = []
    end = time.time() + seconds
    while time.time() < end:
        try:
            data = s.recv(256)
        except socket.timeout:
            continue
        if len(data) < 42 or data[12:14] != b"\x08\x06":
            continue
        op = struct.unpack("!H", data[20:22])[0]
        if op == 2 and data[28:32] == socket.inet_aton(target) and data[0:6] == mac:
            m = data[22:28].hex(":")
            if m not in seen:
                seen.append(m)
    for m in seen:
        print(m)


if len(sys.argv) == 5 and sys.argv[1] == "--arp-probe":
    arp_probe(sys.argv[2], sys.argv[3], sys.argv[4])
    sys.exit(0)

import netlab  # noqa: E402
import testlib  # noqa: E402
from testlib import Checks, log, skip  # noqa: E402

PREFIX = "skiff-lbtest-%d-" % os.getpid()
NS = {k: PREFIX + k for k in ("lan", "api", "n1", "n2", "out")}
IPS = {"api": "10.250.9.5", "n1": "10.250.9.11", "n2": "10.250.9.12", "out": "10.250.9.100"}
NODE = {"n1": "lbtest-n1", "n2": "lbtest-n2"}
POOL = "10.250.9.200-10.250.9.202"
API_PORT = 6443
procs = {}  # name -> (Popen, log path)


sh, nsx, setns, tail, wait_for = netlab.sh, netlab.nsx, netlab.setns, netlab.tail, netlab.wait_for


def cleanup():
    netlab.teardown([p for p, _ in procs.values()], NS.values())
    procs.clear()


def build_topology():
    netlab.build_lan(NS.values(), NS["lan"], [(k, NS[k], IPS[k]) for k in IPS], veth_prefix="v-")


def mac_of(k):
    return nsx(NS[k], ["cat", "/sys/class/net/eth0/address"]).stdout.strip()


def start(name, ns, args, env=None):
    path = os.path.join(WORKDIR, name + ".log")
    f = open(path, "ab")
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdout=f, stderr=subprocess.STDOUT,
                         env=e)
    procs[name] = (p, path)
    return p


def start_apiserver():
    data = os.path.join(WORKDIR, "apiserver")
    p = start("apiserver", NS["api"], netlab.apiserver_args(IPS["api"], API_PORT, data))
    return netlab.wait_apiserver(p, data, API_PORT, procs["apiserver"][1], Api)


class Api(netlab.Api):
    """The admin client, from inside the api namespace (the test process setns'd there)."""

    def obj(self, path):
        r = self.c.get(path)
        return json.loads(r.body) if r.status == 200 else None

    def post(self, path, body):
        r = self.c.post(path, body)
        if r.status not in (200, 201):
            raise RuntimeError("POST %s: %d %s" % (path, r.status, r.body[:400]))
        return json.loads(r.body)

    def put(self, path, body):
        return self.c.put(path, body)

    def patch(self, path, body):
        return self.c.patch(path, body, "application/merge-patch+json")

    def delete(self, path):
        return self.c.delete(path).status


SVC = "/api/v1/namespaces/default/services"


def lb_ip(api, name):
    s = api.obj(SVC + "/" + name)
    ing = (((s or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ing[0].get("ip", "") if ing else ""


def make_svc(api, name, lb_request=None, etp=None):
    spec = {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if lb_request:
        spec["loadBalancerIP"] = lb_request
    if etp:
        spec["externalTrafficPolicy"] = etp
    return api.post(SVC, {"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": name, "namespace": "default"}, "spec": spec})


def events(api, ns, name, reason):
    r = api.obj("/api/v1/namespaces/%s/events" % ns) or {}
    return [e for e in r.get("items", [])
            if e.get("involvedObject", {}).get("name") == name and e.get("reason") == reason]


def set_ready(api, k, status):
    n = api.obj("/api/v1/nodes/" + NODE[k])
    n["status"] = {"conditions": [{"type": "Ready", "status": status, "reason": "LbTest",
                                   "lastHeartbeatTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}]}
    r = api.put("/api/v1/nodes/%s/status" % NODE[k], n)
    if r.status != 200:
        raise RuntimeError("node %s status: %d %s" % (NODE[k], r.status, r.body[:300]))


def probe(vip):
    """The MACs answering who-has `vip` on the LAN, asked from `out`."""
    r = nsx(NS["out"], [sys.executable, os.path.abspath(__file__), "--arp-probe", "eth0", vip,
                        IPS["out"]])
    return r.stdout.split()


def neigh_mac(ip):
    r = sh(["ip", "-n", NS["out"], "-j", "neigh", "show", ip], check=False)
    try:
        entries = json.loads(r.stdout or "[]")
    except ValueError:
        return ""
    return entries[0].get("lladdr", "") if entries else ""


def lease_holder(api, vip):
    l = api.obj("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/skiff-lb-" +
                vip.replace(".", "-"))
    return ((l or {}).get("spec") or {}).get("holderIdentity", "")


def metrics(k):
    return tail(os.path.join(WORKDIR, "metrics-%s.txt" % k), 100)


def metric(k, name):
    for line in metrics(k).splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def start_controller(kc):
    return start("controller", NS["api"],
                 [CTRL_BIN, "run the controller from the environment"],
                 {"SKIFF_LB_KUBECONFIG": kc, "SKIFF_LB_POOL": POOL})


def start_announcer(k, kc):
    return start("announcer-" + k, NS[k], [ANN_BIN, "run an announcer from the environment"],
                 {"SKIFF_LB_KUBECONFIG": kc, "SKIFF_LB_NODE": NODE[k], "SKIFF_LB_IFACE": "eth0",
                  "SKIFF_LB_METRICS": os.path.join(WORKDIR, "metrics-%s.txt" % k),
                  "SKIFF_LB_GARP_INTERVAL_MS": "2000"})


def stop(name, sig=signal.SIGTERM):
    p, _ = procs[name]
    p.send_signal(sig)
    try:
        return p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def dump_logs():
    netlab.print_logs((name, path) for name, (_, path) in procs.items())


def main():
    global WORKDIR, CTRL_BIN, ANN_BIN
    if os.geteuid() != 0:
        skip("needs root (network namespaces, raw ARP sockets)")
    testlib.ensure_modules("yaml")
    if sh(["which", "ip"], check=False).returncode != 0:
        skip("ip (iproute2) not installed")
    testlib.need_bin("skiff-apiserver")
    CTRL_BIN = testlib.need_bin("skiff_ctrl_loadbalancer_test")
    ANN_BIN = testlib.need_bin("skiff_announce_test")
    c = Checks()
    WORKDIR = testlib.tmpdir()
    build_topology()
    setns("/run/netns/" + NS["api"])
    api, kc = start_apiserver()

    # --- the controller -------------------------------------------------------------------
    start_controller(kc)
    make_svc(api, "web")
    c.eq("web gets the pool's first address", wait_for(lambda: lb_ip(api, "web"), 20),
         "10.250.9.200")
    make_svc(api, "req", lb_request="10.250.9.202")
    c.eq("a requested address in the pool is honoured", wait_for(lambda: lb_ip(api, "req"), 20),
         "10.250.9.202")
    make_svc(api, "third")
    c.eq("third gets the last free address", wait_for(lambda: lb_ip(api, "third"), 20),
         "10.250.9.201")
    make_svc(api, "fourth")
    ev = wait_for(lambda: events(api, "default", "fourth", "AllocationFailed"), 20)
    c.check("pool exhausted: AllocationFailed event on fourth", ev, ev)
    c.check("pool exhausted: fourth has no address", lb_ip(api, "fourth") == "")
    if ev:
        c.check("the event says the pool is full", "3 of 3 in use" in ev[0].get("message", ""),
                ev[0].get("message"))
    c.eq("delete third", api.delete(SVC + "/third"), 200)
    c.eq("fourth gets the freed address", wait_for(lambda: lb_ip(api, "fourth"), 40),
         "10.250.9.201")
    s = api.obj(SVC + "/fourth")
    s["spec"]["type"] = "ClusterIP"
    for f in ("loadBalancerIP", "externalTrafficPolicy", "allocateLoadBalancerNodePorts"):
        s["spec"].pop(f, None)
    for p in s["spec"].get("ports", []):
        p.pop("nodePort", None)
    r = api.put(SVC + "/fourth", s)
    c.check("fourth becomes ClusterIP", r.status == 200, r.body[:300])
    c.check("its ingress is cleared", wait_for(lambda: lb_ip(api, "fourth") == "", 20))
    make_svc(api, "fifth")
    c.eq("the address fourth gave back is reused", wait_for(lambda: lb_ip(api, "fifth"), 20),
         "10.250.9.201")
    before = {n: lb_ip(api, n) for n in ("web", "req", "fifth")}
    c.eq("controller exits 0 on SIGTERM", stop("controller"), 0)
    start_controller(kc)
    make_svc(api, "sixth")
    # The pool is still full: the restarted controller's AllocationFailed on sixth shows it has
    # synced (read every Service) before the addresses are compared.
    ev = wait_for(lambda: events(api, "default", "sixth", "AllocationFailed"), 20)
    c.check("the restarted controller synced: AllocationFailed event on sixth", ev, ev)
    after = {n: lb_ip(api, n) for n in ("web", "req", "fifth")}
    c.eq("a restarted controller keeps every address", after, before)
    # The ConfigMap adds to the pool; its bad entry is reported, the good one used.
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "kube-system"}}) \
        if api.obj("/api/v1/namespaces/kube-system") is None else None
    api.post("/api/v1/namespaces/kube-system/configmaps",
             {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "skiff-lb-pool", "namespace": "kube-system"},
              "data": {"pool": "10.250.9.210, 10.250.9.300/24"}})
    c.eq("sixth gets the ConfigMap's address once the pool grows",
         wait_for(lambda: lb_ip(api, "sixth"), 40), "10.250.9.210")
    ev = wait_for(lambda: events(api, "kube-system", "skiff-lb-pool", "InvalidPool"), 30)
    c.check("InvalidPool event names the bad entry",
            ev and "10.250.9.300/24" in ev[0].get("message", ""), ev)
    for n in ("req", "fifth", "sixth"):
        api.delete(SVC + "/" + n)

    # --- the announcer --------------------------------------------------------------------
    vip = "10.250.9.200"
    for k in ("n1", "n2"):
        api.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": NODE[k]}})
        set_ready(api, k, "True")
    macs = {k: mac_of(k) for k in ("n1", "n2")}
    c.eq("nobody answers ARP for the VIP before an announcer runs", probe(vip), [])
    for k in ("n1", "n2"):
        start_announcer(k, kc)
    holder = wait_for(lambda: lease_holder(api, vip), 20)
    c.check("one node holds the Lease skiff-lb-10-250-9-200", holder in NODE.values(), holder)
    hk = "n1" if holder == NODE["n1"] else "n2"
    other = "n2" if hk == "n1" else "n1"
    got = wait_for(lambda: probe(vip), 30)
    c.eq("only the holder answers ARP from outside, with its eth0 MAC", got, [macs[hk]])
    # The metrics file is rewritten every 200 ms by the announcer: the reply just counted may
    # not be in it yet, so wait for it rather than read it once.
    c.check("holder metrics: 1 address held, ARP replies sent, a takeover",
            wait_for(lambda: metric(hk, "skiff_netagent_lb_addresses_held") == 1 and
                     (metric(hk, "skiff_netagent_lb_arp_replies_total") or 0) >= 1 and
                     metric(hk, "skiff_netagent_lb_takeovers_total") == 1 and
                     (metric(hk, "skiff_netagent_lb_gratuitous_arp_total") or 0) >= 1, 20),
            metrics(hk))
    g1 = metric(hk, "skiff_netagent_lb_gratuitous_arp_total") or 0
    c.check("the holder repeats its gratuitous ARP (interval set to 2 s here; 30 s by default)",
            wait_for(lambda: (metric(hk, "skiff_netagent_lb_gratuitous_arp_total") or 0) >= g1 + 2,
                     30), metrics(hk))
    # The other announcer syncs on its own schedule: wait for its file to say it is eligible.
    c.check("the other node holds nothing",
            wait_for(lambda: metric(other, "skiff_netagent_lb_addresses_eligible") == 1, 20) and
            metric(other, "skiff_netagent_lb_addresses_held") == 0, metrics(other))
    # The outside's kernel resolves the VIP (a datagram to it), so its neighbour entry shows
    # whether the new holder's gratuitous ARP reaches it (nothing else re-resolves it: no
    # traffic, and no probe until then).
    nsx(NS["out"], [sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, "
                    "socket.SOCK_DGRAM).sendto(b'x', ('%s', 9))" % vip])
    c.eq("outside's kernel resolves the VIP to the holder's MAC",
         wait_for(lambda: neigh_mac(vip) == macs[hk], 20) and neigh_mac(vip), macs[hk])
    # The holder dies: the other node takes over (designed to take lease_duration 5 s + one
    # retry period; the time is printed, not asserted: no timing assertions, and a loaded CI
    # machine can take longer).
    t0 = time.time()
    stop("announcer-" + hk, signal.SIGKILL)
    wait_for(lambda: lease_holder(api, vip) == NODE[other], 60, step=0.1)
    # The new holder's gratuitous ARPs repeat every 2 s here, so any of them may do it.
    c.check("the new holder's gratuitous ARP updates outside's neighbour entry",
            wait_for(lambda: neigh_mac(vip) == macs[other], 20, step=0.1), neigh_mac(vip))
    got = wait_for(lambda: probe(vip) == [macs[other]], 60, step=0.1)
    took = time.time() - t0
    log("takeover after kill -9 of the holder took %.1f s" % took)
    c.check("after kill -9 of the holder the other node answers (after %.1f s)" % took, got,
            probe(vip))
    c.eq("the Lease names the new holder", lease_holder(api, vip), NODE[other])
    # The killed announcer's metrics file goes first: the restarted one's own file saying the
    # address is eligible shows it has synced before the answer is looked at.
    os.unlink(os.path.join(WORKDIR, "metrics-%s.txt" % hk))
    start_announcer(hk, kc)
    c.check("the restarted announcer synced (the address is eligible on it)", wait_for(
        lambda: metric(hk, "skiff_netagent_lb_addresses_eligible") == 1, 30), metrics(hk))
    c.eq("the restarted node does not take the address back", probe(vip), [macs[other]])

    # externalTrafficPolicy Local: only the node with a ready endpoint is eligible.
    r = api.patch(SVC + "/web", {"spec": {"externalTrafficPolicy": "Local"}})
    c.check("web becomes externalTrafficPolicy Local", r.status == 200, r.body[:300])
    api.post("/api/v1/namespaces/default/endpoints", {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": NODE[hk]}],
                     "notReadyAddresses": [{"ip": "10.244.2.5", "nodeName": NODE[other]}],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]})
    got = wait_for(lambda: probe(vip) == [macs[hk]], 40)
    c.check("ETP Local: the address moves to the node with the ready endpoint", got, probe(vip))
    c.eq("ETP Local: the Lease follows", lease_holder(api, vip), NODE[hk])
    set_ready(api, hk, "False")
    got = wait_for(lambda: probe(vip) == [], 40)
    c.check("its Node not Ready and no other eligible node: nobody answers", got, probe(vip))
    set_ready(api, hk, "True")
    c.check("Ready again: it answers again", wait_for(lambda: probe(vip) == [macs[hk]], 40))
    c.eq("delete web", api.delete(SVC + "/web"), 200)
    c.check("a deleted Service's address is no longer answered",
            wait_for(lambda: probe(vip) == [], 40))
    c.check("held gauge back to 0", wait_for(
        lambda: metric(hk, "skiff_netagent_lb_addresses_held") == 0, 20), metrics(hk))
    wait_for(lambda: lease_holder(api, vip) == "", 20)
    c.eq("its Lease is released", lease_holder(api, vip), "")

    # SIGTERM of a holder releases the Lease: the other node takes over at its next retry.
    make_svc(api, "web2")
    vip2 = wait_for(lambda: lb_ip(api, "web2"), 20)
    holder = wait_for(lambda: lease_holder(api, vip2), 20)
    hk = "n1" if holder == NODE["n1"] else "n2"
    other = "n2" if hk == "n1" else "n1"
    c.check("web2 (%s) is held by one node" % vip2,
            wait_for(lambda: probe(vip2) == [macs[hk]], 30), probe(vip2))
    t0 = time.time()
    c.eq("announcer exits 0 on SIGTERM", stop("announcer-" + hk), 0)
    got = wait_for(lambda: probe(vip2) == [macs[other]], 40, step=0.1)
    c.check("after SIGTERM (Lease released) the other node answers (%.1f s)" % (time.time() - t0),
            got)

    if c.failed:
        dump_logs()
    return c.finish()


if __name__ == "__main__":
    netlab.run_main(main, cleanup, dump_logs)
