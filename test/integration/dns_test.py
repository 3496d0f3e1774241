#!/usr/bin/env python3
"""Cluster DNS (netagent/dns) against a real skiff-apiserver, in a network namespace of its own.

Root only (else 77). The test re-executes itself inside a fresh namespace `skiff-dnstest-<pid>`
where it runs: skiff-apiserver on 127.0.0.1, the DNS server (skiff_dns_test's hidden "serve"
case) on 10.96.0.10:53 with the dummy link `skiff.dns` it creates, and a fake upstream resolver
on 127.0.0.53 (a tiny python responder). Services and Endpoints are made by hand. Queries are
built with the struct module and sent over UDP and TCP. No traffic leaves the namespace; the
namespace (and everything in it) is deleted at the end, also on failure.
"""
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import log  # noqa: E402

DNS_IP = "10.96.0.10"
UPSTREAM_IP = "127.0.0.53"
T = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "AAAA": 28, "SRV": 33, "TXT": 16}
TN = {v: k for k, v in T.items()}
RC = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


# ---- outer: make the namespace, run inside it, delete it ------------------------------------

def outer():
    if os.geteuid() != 0:
        testlib.skip("needs root (network namespace, dummy link)")
    for tool in ("ip",):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            testlib.skip("%s not installed" % tool)
    testlib.need_bin("skiff-apiserver")
    testlib.need_bin("skiff_dns_test")
    ns = "skiff-dnstest-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if r.returncode != 0:
        testlib.skip("cannot create a network namespace: " + r.stderr.strip())
    rc = 1
    try:
        env = dict(os.environ, SKIFF_DNSTEST_INNER="1")
        p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__)],
                           env=env, timeout=300)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        print("FAIL - the test inside the namespace did not finish in 300 s", flush=True)
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "delete", ns])
    sys.exit(rc)


# ---- DNS packets --------------------------------------------------------------------------

def enc_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def make_query(name, qtype, qid=None, edns=None, rd=True):
    qid = random.randrange(65536) if qid is None else qid
    hdr = struct.pack("!HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 1 if edns else 0)
    body = enc_name(name) + struct.pack("!HH", T[qtype] if isinstance(qtype, str) else qtype, 1)
    if edns:
        body += b"\0" + struct.pack("!HHIH", 41, edns, 0, 0)
    return hdr + body


def dec_name(msg, off):
    labels, jumped, end, hops = [], False, off, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            hops += 1
            if hops > 64:
                raise ValueError("pointer loop")
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            return ".".join(labels), end
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n


def parse_msg(msg):
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    qs = []
    for _ in range(qd):
        name, off = dec_name(msg, off)
        qt, qc = struct.unpack("!HH", msg[off:off + 4])
        off += 4
        qs.append((name, qt))
    secs = []
    opt = None
    for count in (an, ns, ar):
        recs = []
        for _ in range(count):
            name, off = dec_name(msg, off)
            rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            rd = msg[off:off + rdlen]
            if rtype == 1:
                val = socket.inet_ntoa(rd)
            elif rtype in (2, 5, 12):
                val = dec_name(msg, off)[0]
            elif rtype == 33:
                pr, w, port = struct.unpack("!HHH", rd[:6])
                val = "%d %d %d %s" % (pr, w, port, dec_name(msg, off + 6)[0])
            elif rtype == 6:
                val = dec_name(msg, off)[0]
            elif rtype == 41:
                opt = rclass
                off += rdlen
                continue
            else:
                val = rd.hex()
            off += rdlen
            recs.append((name, TN.get(rtype, rtype), ttl, val))
        secs.append(recs)
    return {"id": qid, "rcode": RC.get(flags & 0xF, flags & 0xF), "aa": bool(flags & 0x400),
            "tc": bool(flags & 0x200), "qr": bool(flags & 0x8000), "questions": qs,
            "answer": secs[0], "authority": secs[1], "additional": secs[2], "edns": opt}


def udp(name, qtype, server=DNS_IP, port=53, edns=None, raw=None, timeout=3):
    q = raw if raw is not None else make_query(name, qtype, edns=edns)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (server, port))
        data, _ = s.recvfrom(65535)
    except OSError:  # a timeout, or no route before the server made its link
        return None
    finally:
        s.close()
    return data if raw is not None else parse_msg(data)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise ConnectionError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def tcp_many(queries, server=DNS_IP, port=53):
    """Several (name, type) queries on one connection; the parsed answers in order."""
    s = socket.create_connection((server, port), timeout=5)
    try:
        for name, qt in queries:
            q = make_query(name, qt)
            s.sendall(struct.pack("!H", len(q)) + q)
        out = []
        for _ in queries:
            n = struct.unpack("!H", recv_exact(s, 2))[0]
            out.append(parse_msg(recv_exact(s, n)))
        return out
    finally:
        s.close()


def values(r, rtype=None):
    return sorted(v for (_, t, _, v) in r["answer"] if rtype is None or t == rtype)


def asked(name, qtype, **kw):
    """values() of a UDP query, [] when it got no answer (a wait around it asks again)."""
    r = udp(name, qtype, **kw)
    return values(r) if r else []


# ---- fake upstream ------------------------------------------------------------------------

class FakeUpstream:
    """Answers every A query with 192.0.2.<n> (n = queries seen), over UDP and TCP."""

    def __init__(self, ip, port=53):
        self.seen = []
        self.u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.u.bind((ip, port))
        self.t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.t.bind((ip, port))
        self.t.listen(8)
        threading.Thread(target=self.serve_udp, daemon=True).start()
        threading.Thread(target=self.serve_tcp, daemon=True).start()

    def answer(self, q, proto):
        qid = struct.unpack("!H", q[:2])[0]
        name, off = dec_name(q, 12)
        self.seen.append((proto, name))
        body = q[12:off + 4]
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(
            "192.0.2.%d" % (len(self.seen) % 250 + 1))
        if name.startswith("missing."):
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + body
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + body + ans

    def serve_udp(self):
        while True:
            try:
                q, addr = self.u.recvfrom(4096)
                if q[12:].startswith(b"\x04slow"):
                    continue  # never answers: the server must time out and SERVFAIL
                self.u.sendto(self.answer(q, "udp"), addr)
            except Exception:
                return

    def serve_tcp(self):
        while True:
            try:
                c, _ = self.t.accept()
                n = struct.unpack("!H", recv_exact(c, 2))[0]
                a = self.answer(recv_exact(c, n), "tcp")
                c.sendall(struct.pack("!H", len(a)) + a)
                c.close()
            except Exception:
                return


# ---- inner: the test itself -----------------------------------------------------------------

def sh(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def wait_for(fn, timeout, step=0.05):
    end = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > end:
            return v
        time.sleep(step)


def svc(name, cluster_ip, ports, ns="default", typ="ClusterIP", external=None):
    spec = {"type": typ, "ports": ports}
    if typ == "ExternalName":
        spec = {"type": typ, "externalName": external}
    else:
        spec["clusterIP"] = cluster_ip
        if typ != "ClusterIP" or cluster_ip != "None":
            spec["selector"] = {"app": name}
    if cluster_ip == "None":
        spec.pop("selector", None)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def inner():
    testlib.deadline(240)
    c = testlib.Checks()
    sh("ip", "link", "set", "lo", "up")
    # The fake upstream's address (inside this namespace only).
    sh("ip", "addr", "add", UPSTREAM_IP + "/32", "dev", "lo")
    upstream = FakeUpstream(UPSTREAM_IP)

    api = testlib.Server(extra=["--service-cluster-ip-range", "10.96.0.0/16"]
                         if "--service-cluster-ip-range" in testlib.server_flags() else [])
    api.start()
    cl = api.client()

    work = testlib.tmpdir()
    metrics_file = os.path.join(work, "metrics.txt")
    resolv = os.path.join(work, "resolv.conf")
    with open(resolv, "w") as f:
        # The cluster DNS address itself must be skipped as an upstream.
        f.write("search example\nnameserver %s\nnameserver %s\n" % (DNS_IP, UPSTREAM_IP))
    env = dict(os.environ, SKIFF_DNS_SERVE_KUBECONFIG=api.kubeconfig, SKIFF_DNS_SERVE_ADDR=DNS_IP,
               SKIFF_DNS_SERVE_PORT="53", SKIFF_DNS_SERVE_MANAGE_LINK="1",
               SKIFF_DNS_SERVE_RESOLV_CONF=resolv, SKIFF_DNS_SERVE_METRICS=metrics_file,
               SKIFF_DNS_SERVE_UPSTREAM_TIMEOUT_MS="500")
    dns_log = os.path.join(work, "dns.log")

    def start_dns():
        lf = open(dns_log, "ab")
        return subprocess.Popen([testlib.bin_path("skiff_dns_test"), "[.serve]"], env=env,
                                stdout=lf, stderr=subprocess.STDOUT)

    def dump_dns_log():
        with open(dns_log, errors="replace") as f:
            print("---- dns log ----\n" + "\n".join(f.read().splitlines()[-30:]), flush=True)

    dns = start_dns()
    try:
        run_checks(c, cl, upstream, dns, start_dns, metrics_file)
    finally:
        for p in (dns,):
            if p.poll() is None:
                p.kill()
                p.wait()
        if c.failed:
            dump_dns_log()
    c.finish()


def run_checks(c, cl, upstream, dns, start_dns, metrics_file):
    ok = wait_for(lambda: udp("ns.dns.cluster.local", "A", timeout=0.3), 20, 0.2)
    if not c.check("the server answers on %s:53 (UDP)" % DNS_IP, ok is not None):
        return
    # The link: a dummy `skiff.dns` holding 10.96.0.10/32, up.
    link = sh("ip", "-d", "-o", "addr", "show", "dev", "skiff.dns").stdout
    c.check("dummy link skiff.dns holds %s/32" % DNS_IP, "inet %s/32" % DNS_IP in link, link)
    # A dummy, or an empty bridge on kernels without CONFIG_DUMMY.
    d = sh("ip", "-d", "link", "show", "skiff.dns").stdout
    c.check("skiff.dns is a dummy (or a port-less bridge)", "dummy" in d or (
        "bridge" in d and "master skiff.dns" not in sh("ip", "-o", "link").stdout), d)

    def create(obj):
        ns = obj["metadata"].get("namespace", "default")
        kind = {"Service": "services", "Endpoints": "endpoints"}[obj["kind"]]
        r = cl.post("/api/v1/namespaces/%s/%s" % (ns, kind), obj)
        c.check("create %s %s/%s" % (obj["kind"], ns, obj["metadata"]["name"]),
                r.status in (200, 201), r.body[:500] if hasattr(r, "body") else r)
        return r

    create(svc("web", "10.96.0.50", [{"name": "http", "port": 80, "protocol": "TCP",
                                      "targetPort": 8080}]))
    create(svc("db", "None", [{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5", "hostname": "db-0"},
                                       {"ip": "10.244.2.6", "hostname": "db-1"}],
                         "notReadyAddresses": [{"ip": "10.244.3.7", "hostname": "db-2"}],
                         "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]})
    create(svc("ext", None, [], typ="ExternalName", external="db.example.com"))

    # The zone follows the API a few ms later: wait for the last object made, then check all.
    wait_for(lambda: asked("ext.default.svc.cluster.local", "A") or None, 30)
    a = wait_for(lambda: asked("web.default.svc.cluster.local", "A") or None, 30)
    c.eq("A web.default.svc.cluster.local (UDP)", a, ["10.96.0.50"])
    r = udp("WEB.default.SVC.cluster.local", "A")
    c.check("case-insensitive, owner as asked, AA, TTL 5",
            r["answer"] == [("WEB.default.SVC.cluster.local", "A", 5, "10.96.0.50")] and r["aa"],
            r)
    r = udp("web.default.svc.cluster.local", "AAAA")
    c.check("AAAA web: NOERROR, no answer, SOA in authority",
            r["rcode"] == "NOERROR" and not r["answer"] and r["authority"]
            and r["authority"][0][1] == "SOA" and r["authority"][0][0] == "cluster.local", r)
    r = udp("nope.default.svc.cluster.local", "A")
    c.check("A nope: NXDOMAIN with SOA", r["rcode"] == "NXDOMAIN" and r["authority"]
            and r["authority"][0][1] == "SOA", r)
    c.eq("A default.svc.cluster.local (empty non-terminal): NOERROR",
         udp("default.svc.cluster.local", "A")["rcode"], "NOERROR")
    hl = wait_for(lambda: asked("db.default.svc.cluster.local", "A") or None, 30)
    c.eq("headless db: ready endpoint IPs only", hl, ["10.244.1.5", "10.244.2.6"])
    c.eq("hostname db-1.db.default.svc.cluster.local",
         values(udp("db-1.db.default.svc.cluster.local", "A")), ["10.244.2.6"])
    c.eq("not-ready db-2: NXDOMAIN", udp("db-2.db.default.svc.cluster.local", "A")["rcode"],
         "NXDOMAIN")
    c.eq("SRV _http._tcp.web", values(udp("_http._tcp.web.default.svc.cluster.local", "SRV")),
         ["0 100 80 web.default.svc.cluster.local"])
    c.eq("SRV _pg._tcp.db (headless: per endpoint)",
         values(udp("_pg._tcp.db.default.svc.cluster.local", "SRV")),
         ["0 50 5432 db-0.db.default.svc.cluster.local",
          "0 50 5432 db-1.db.default.svc.cluster.local"])
    c.eq("PTR 10.96.0.50", values(udp("50.0.96.10.in-addr.arpa", "PTR")),
         ["web.default.svc.cluster.local"])
    # Names are answered from the informers' objects as they are; the PTR index follows on the
    # zone's next rebuild (tens of ms), so the endpoint's PTR may lag its A record a little.
    c.eq("PTR 10.244.1.5 (headless endpoint)",
         wait_for(lambda: asked("5.1.244.10.in-addr.arpa", "PTR") or None, 30),
         ["db-0.db.default.svc.cluster.local"])
    c.eq("PTR of an unknown service IP: NXDOMAIN",
         udp("99.0.96.10.in-addr.arpa", "PTR")["rcode"], "NXDOMAIN")
    c.eq("ExternalName: CNAME", values(udp("ext.default.svc.cluster.local", "A")),
         ["db.example.com"])
    c.eq("pod A 10-244-1-5.default.pod.cluster.local",
         values(udp("10-244-1-5.default.pod.cluster.local", "A")), ["10.244.1.5"])

    # TCP: several queries on one connection.
    rs = tcp_many([("web.default.svc.cluster.local", "A"), ("nope.default.svc.cluster.local", "A"),
                   ("_pg._tcp.db.default.svc.cluster.local", "SRV")])
    c.check("TCP: 3 queries on one connection",
            len(rs) == 3 and values(rs[0]) == ["10.96.0.50"] and rs[1]["rcode"] == "NXDOMAIN"
            and len(rs[2]["answer"]) == 2, rs)

    # Truncation: a headless Service with 60 endpoints does not fit 512 bytes over UDP.
    create(svc("big", "None", [{"name": "x", "port": 1, "protocol": "TCP"}]))
    create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "big", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.9.%d" % i} for i in range(1, 61)],
                         "ports": [{"name": "x", "port": 1, "protocol": "TCP"}]}]})
    wait_for(lambda: (udp("big.default.svc.cluster.local", "A", edns=4096) or {}).get("answer"),
             30)
    r = udp("big.default.svc.cluster.local", "A")
    c.check("60 A records over UDP without EDNS: TC=1, no answers", r["tc"] and not r["answer"], r)
    r = udp("big.default.svc.cluster.local", "A", edns=4096)
    c.check("... with EDNS 4096: all 60, OPT echoed", not r["tc"] and len(r["answer"]) == 60
            and r["edns"] == 4096, (r["tc"], len(r["answer"]), r["edns"]))
    rs = tcp_many([("big.default.svc.cluster.local", "A")])
    c.eq("... over TCP: all 60", len(rs[0]["answer"]), 60)

    # Forwarding to the fake upstream (resolv.conf's nameservers minus the cluster DNS address).
    r = udp("www.example.org", "A")
    c.check("forwarded over UDP: the upstream's answer",
            r and r["rcode"] == "NOERROR" and r["answer"] and r["answer"][0][3].startswith("192.0.2.")
            and ("udp", "www.example.org") in upstream.seen, (r, upstream.seen))
    r = udp("missing.example.org", "A")
    c.eq("forwarded NXDOMAIN passes through", r["rcode"], "NXDOMAIN")
    rs = tcp_many([("tcp.example.org", "A")])
    c.check("forwarded over TCP through TCP", rs[0]["answer"] and ("tcp", "tcp.example.org")
            in upstream.seen, (rs, upstream.seen))
    r = udp("slow.example.org", "A", timeout=5)
    c.eq("an upstream that never answers: SERVFAIL", r and r["rcode"], "SERVFAIL")
    r = udp("1.1.168.192.in-addr.arpa", "PTR")
    c.check("reverse names outside the CIDRs are forwarded", r["rcode"] == "NOERROR"
            and ("udp", "1.1.168.192.in-addr.arpa") in upstream.seen, r)

    # Garbage never kills the server.
    rnd = random.Random(7)
    good = make_query("web.default.svc.cluster.local", "A")
    for i in range(300):
        g = bytes(rnd.randrange(256) for _ in range(rnd.randrange(60)))
        m = bytearray(good)
        for _ in range(3):
            m[rnd.randrange(len(m))] = rnd.randrange(256)
        for pkt in (g, bytes(m)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(pkt, (DNS_IP, 53))
            s.close()
    loop = struct.pack("!HHHHHH", 99, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    # The burst above can fill the server's receive queue, and the kernel then drops what comes
    # next (the query below went unanswered in 2 of 12 runs while a build loaded the machine):
    # ask again while there is no answer, as any DNS client does. A reply meant for a garbage sender whose
    # port our new socket reuses is skipped the same way (its id is not 99).
    r = None
    for _ in range(10):
        r = udp(None, None, raw=loop)
        if r is not None and len(r) >= 12 and parse_msg(r)["id"] == 99:
            break
    c.check("compression loop: FORMERR", r is not None and parse_msg(r)["rcode"] == "FORMERR"
            and parse_msg(r)["id"] == 99, r)
    web = wait_for(lambda: asked("web.default.svc.cluster.local", "A"), 30)
    c.check("still serving after 600 garbage packets", dns.poll() is None and
            web == ["10.96.0.50"], web)

    # Updates follow Service changes: each must show within the bounded wait (30 s: the API
    # server, the informer and the zone rebuild share 2 busy cores in CI); the measured delay is
    # printed, not asserted (no timing assertions in tests). A query that times out (None) is
    # retried, not a crash.
    t0 = time.time()
    create(svc("late", "10.96.0.77", [{"name": "http", "port": 80, "protocol": "TCP"}]))
    got = wait_for(lambda: asked("late.default.svc.cluster.local", "A", timeout=0.5) or None, 30,
                   0.02)
    dt = time.time() - t0
    c.check("a new Service is answered (after %.0f ms)" % (dt * 1000), got == ["10.96.0.77"], got)
    t0 = time.time()
    r = cl.delete("/api/v1/namespaces/default/services/late")
    gone = wait_for(lambda: (udp("late.default.svc.cluster.local", "A", timeout=0.5) or {}).get(
        "rcode") == "NXDOMAIN", 30, 0.02)
    dt = time.time() - t0
    c.check("a deleted Service is NXDOMAIN (after %.0f ms)" % (dt * 1000), gone)
    # An Endpoints change for the headless Service.
    ep = cl.get("/api/v1/namespaces/default/endpoints/db").json
    ep["subsets"][0]["addresses"].append({"ip": "10.244.3.7", "hostname": "db-2"})
    ep["subsets"][0]["notReadyAddresses"] = []
    t0 = time.time()
    r = cl.put("/api/v1/namespaces/default/endpoints/db", ep)
    got = wait_for(lambda: asked("db.default.svc.cluster.local", "A", timeout=0.5) ==
                   ["10.244.1.5", "10.244.2.6", "10.244.3.7"], 30, 0.02)
    dt = time.time() - t0
    c.check("an endpoint turned ready is served (after %.0f ms)" % (dt * 1000), got, r.status)
    c.eq("its PTR follows", wait_for(lambda: asked("7.3.244.10.in-addr.arpa", "PTR") or None, 30),
         ["db-2.db.default.svc.cluster.local"])

    # Endpoints of a Service with a cluster IP feed no record of the zone's index: their churn
    # (every pod start and stop) must not rebuild it. Three spaced changes of web's Endpoints,
    # then one of the headless db's, which does; the counter is read once db's PTR shows (one
    # watch stream carries both, in order).
    def rebuilds():
        time.sleep(0.5)  # the metrics file is rewritten every 200 ms
        with open(metrics_file) as f:
            for line in f:
                if line.startswith("skiff_dns_zone_rebuilds_total "):
                    return int(float(line.split()[1]))
        return None
    before = rebuilds()
    for i in range(3):
        body = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.244.1.%d" % (20 + i)}],
                             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
        r = cl.post("/api/v1/namespaces/default/endpoints", body) if i == 0 else \
            cl.put("/api/v1/namespaces/default/endpoints/web",
                   dict(body, metadata=dict(body["metadata"], resourceVersion=rv)))
        rv = (r.json or {}).get("metadata", {}).get("resourceVersion")
        c.check("web's Endpoints changed (%d)" % i, r.status in (200, 201), r.status)
        time.sleep(0.3)
    ep = cl.get("/api/v1/namespaces/default/endpoints/db").json
    ep["subsets"][0]["addresses"].append({"ip": "10.244.3.8", "hostname": "db-3"})
    r = cl.put("/api/v1/namespaces/default/endpoints/db", ep)
    c.eq("db's new endpoint gets its PTR",
         wait_for(lambda: asked("8.3.244.10.in-addr.arpa", "PTR") or None, 30),
         ["db-3.db.default.svc.cluster.local"])
    after = rebuilds()
    c.check("web's Endpoints churn did not rebuild the zone (rebuilds %s -> %s: db's change only)"
            % (before, after), before is not None and after is not None and
            1 <= after - before <= 2, (before, after))

    # Metrics.
    time.sleep(0.5)
    with open(metrics_file) as f:
        m = f.read()
    c.check("metrics: queries by type and rcode, forwarded, latency",
            'skiff_dns_queries_total{type="A",rcode="NXDOMAIN"}' in m
            and "skiff_dns_forwarded_total" in m and "skiff_dns_request_duration_seconds_count" in m
            and "skiff_dns_synced 1" in m, m[:2000])

    # Restart: the link is reused (idempotent), nothing else changes.
    dns.kill()
    dns.wait()
    links_before = sh("ip", "-o", "link").stdout.count("\n")
    dns2 = start_dns()
    try:
        ok = wait_for(lambda: (udp("web.default.svc.cluster.local", "A", timeout=0.3) or {}).get(
            "answer"), 20, 0.2)
        c.check("restarted server answers with the existing skiff.dns link", bool(ok))
        c.eq("no new link after restart", sh("ip", "-o", "link").stdout.count("\n"), links_before)
    finally:
        dns2.kill()
        dns2.wait()


if __name__ == "__main__":
    if os.environ.get("SKIFF_DNSTEST_INNER"):
        inner()
    else:
        outer()
