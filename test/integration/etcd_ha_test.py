#!/usr/bin/env python3
"""Two skiff-apiservers on one etcd (DESIGN §4, --store etcd): the HA shape.

One etcd member on loopback (its own data dir and free ports) and two API servers A and B with
`--store etcd --etcd-servers http://127.0.0.1:P`, each with its own --data-dir (PKI) and port.
Checks: a ConfigMap created through A is returned by B (get and list) with the same
resourceVersion, also through kubectl against B; a watch opened on B sees A's create, update
and delete; a stale-resourceVersion update through B of an object A updated is 409 Conflict;
Services created alternately through A and B get distinct ClusterIPs (the range is a /27, so that
two allocators that do not see each other's picks collide), also when A and B are asked at the
same moment for the last free address; after kill -9 of A, B keeps serving reads, writes and
its watch; A restarted on the same etcd lists what B lists.

etcd: testlib.Etcd ($SKIFF_ETCD, etcd on PATH, else Debian's etcd-server unpacked by
test/tools/deb_unpack.sh, never installed). Exit 77 when etcd or skiff-apiserver (with
--etcd-servers) cannot be had."""
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import cm, rv, status_ok  # noqa: E402

testlib.ensure_modules("yaml")
testlib.deadline(600)
NS = "ha"
CMS = "/api/v1/namespaces/%s/configmaps" % NS
SVCS = "/api/v1/namespaces/%s/services" % NS
SERVICE_RANGE = "10.96.0.0/27"  # 30 addresses: 20 Services collide unless allocation is shared


def start_server(etcd, data_dir=None, server=None):
    srv = server or testlib.Server(["--store", "etcd", "--etcd-servers", etcd.url,
                                    "--service-cluster-ip-range", SERVICE_RANGE],
                                   data_dir=data_dir)
    return srv.start()


def names_rvs(items):
    return sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in items)


exe = testlib.need_bin("skiff-apiserver")
if "--etcd-servers" not in testlib.server_flags():
    testlib.skip("%s has no --etcd-servers flag yet" % exe)
etcd = testlib.Etcd().start()
t = testlib.Checks()
A = start_server(etcd)
B = start_server(etcd)
ca, cb = A.client(), B.client()

# --- an object written through A is read through B, same resourceVersion -------------------
r = ca.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": NS}})
t.check("create namespace %s through A" % NS, r.status == 201, r)
r = ca.post(CMS, cm("one", {"k": "a"}))
t.check("create ConfigMap one through A", r.status == 201, r)
one = r.json
r = cb.get(CMS + "/one")
t.check("B gets ConfigMap one", r.status == 200, r)
if r.status == 200:
    t.eq("B's resourceVersion of one equals A's", r.json["metadata"]["resourceVersion"],
         one["metadata"]["resourceVersion"])
    t.eq("B's uid of one equals A's", r.json["metadata"]["uid"], one["metadata"]["uid"])
    t.eq("B's data of one", r.json.get("data"), {"k": "a"})
r = cb.get(CMS)
t.check("B lists ConfigMaps", r.status == 200, r)
if r.status == 200:
    t.eq("B's list holds one with A's resourceVersion", names_rvs(r.json["items"]),
         [("one", one["metadata"]["resourceVersion"])])
    t.check("B's list resourceVersion is at least one's",
            int(r.json["metadata"]["resourceVersion"]) >= rv(one), r.json["metadata"])
kubectl = shutil.which("kubectl")
if kubectl:
    k = testlib.Kubectl(t, "current", kubectl, B.kubeconfig)
    kr = k.ok("kubectl get configmap one through B", "get", "configmap", "one", "-n", NS,
              "-o", "jsonpath={.metadata.resourceVersion}")
    t.eq("kubectl through B: one's resourceVersion", kr.stdout.strip(),
         one["metadata"]["resourceVersion"])
    kr = k.ok("kubectl get configmaps through B", "get", "configmaps", "-n", NS,
              "-o", "jsonpath={.items[*].metadata.name}")
    t.eq("kubectl through B lists one", kr.stdout.split(), ["one"])
else:
    print("SKIPPED: no kubectl on PATH: the kubectl checks", flush=True)

# --- a watch on B sees A's create, update and delete ----------------------------------------
r = cb.get(CMS)
list_rv = r.json["metadata"]["resourceVersion"] if r.status == 200 else "0"
w = testlib.Watch(B, CMS + "?watch=true&resourceVersion=%s" % list_rv, idle=20)
t.eq("watch on B opens", w.status, 200)
r = ca.post(CMS, cm("watched", {"v": "1"}))
t.check("create watched through A", r.status == 201, r)
created = r.json
upd = dict(created, data={"v": "2"})
r = ca.put(CMS + "/watched", upd)
t.check("update watched through A", r.status == 200, r)
updated = r.json
r = ca.delete(CMS + "/watched")
t.check("delete watched through A", r.status == 200, r)
events = w.take(3, 30)
got = [(e.get("type"), e["object"]["metadata"].get("name"),
        e["object"]["metadata"].get("resourceVersion")) for e in events]
want = [("ADDED", "watched", created["metadata"]["resourceVersion"]),
        ("MODIFIED", "watched", updated["metadata"]["resourceVersion"])]
t.eq("B's watch: ADDED and MODIFIED with A's resourceVersions", got[:2], want)
t.check("B's watch: DELETED of watched after them",
        len(got) == 3 and got[2][0] == "DELETED" and got[2][1] == "watched" and
        int(got[2][2]) > rv(updated), got)
if len(events) >= 2:
    t.eq("B's watch: the MODIFIED carries A's data", events[1]["object"].get("data"), {"v": "2"})
w.close()

# --- optimistic concurrency across servers ---------------------------------------------------
r = cb.get(CMS + "/one")
stale = r.json
r = ca.put(CMS + "/one", dict(stale, data={"k": "by-A"}))
t.check("update one through A", r.status == 200, r)
r = cb.put(CMS + "/one", dict(stale, data={"k": "by-B"}))
t.check("stale update of one through B is 409 Conflict", status_ok(r, 409, "Conflict"), r)
r = cb.get(CMS + "/one")
t.eq("one keeps A's update", (r.json or {}).get("data"), {"k": "by-A"})
r = cb.post(CMS, cm("one", {"k": "dup"}))
t.check("creating one again through B is 409 AlreadyExists",
        status_ok(r, 409, "AlreadyExists"), r)

# --- Services created alternately through A and B get distinct ClusterIPs --------------------
ips = {}
for i in range(20):
    c = ca if i % 2 == 0 else cb
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s%d" % i},
           "spec": {"selector": {"app": "s%d" % i}, "ports": [{"port": 80}]}}
    r = c.post(SVCS, svc)
    if not t.check("create Service s%d through %s" % (i, "AB"[i % 2]), r.status == 201, r):
        continue
    ips["s%d" % i] = r.json["spec"].get("clusterIP")


def clusterip_dups():
    """{ClusterIP: [ns/name, ...]} of the addresses more than one stored Service holds, and the
    number of Services."""
    r = cb.get("/api/v1/services")
    items = r.json["items"] if r.status == 200 else []
    by_ip = {}
    for s in items:
        by_ip.setdefault(s["spec"].get("clusterIP"), []).append(
            "%s/%s" % (s["metadata"]["namespace"], s["metadata"]["name"]))
    return {ip: who for ip, who in by_ip.items() if len(who) > 1}, len(items)


dups, n = clusterip_dups()
t.check("all %d stored Services (20 created alternately through A and B, plus kubernetes) have "
        "distinct ClusterIPs" % n, not dups and n >= 21,
        "ClusterIPs given to more than one Service: %r" % dups)

# The same, racing. The range is filled through A until one address is left; then, in each of
# 5 rounds, A and B are asked at the same moment for a Service each. Allocators that learn of
# each other's picks only afterwards (through the watch) then both hand out that last address.
# A correct pair gives it to one of them (the other create fails: the range is full).


def svc(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


_, n = clusterip_dups()
fill = []
for i in range(30 - 1 - n):  # a /27 holds 30 ClusterIPs
    r = ca.post(SVCS, svc("fill%d" % i))
    if not t.check("create Service fill%d through A" % i, r.status == 201, r):
        break
    fill.append("fill%d" % i)
raced_ok = 0
for rnd in range(5):
    gate = threading.Barrier(2, timeout=30)
    raced = {}

    def race(server, name):
        c = server.client()
        try:
            gate.wait()
            raced[name] = c.post(SVCS, svc(name))
        except Exception as e:  # noqa: BLE001 - recorded as the failure of this create
            raced[name] = e
        finally:
            c.close()

    names = {"race%d-a" % rnd: A, "race%d-b" % rnd: B}
    threads = [threading.Thread(target=race, args=(srv, name), daemon=True)
               for name, srv in names.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    got = {name: (r.status, (r.json or {}).get("spec", {}).get("clusterIP"))
           if isinstance(r, testlib.Resp) else repr(r) for name, r in raced.items()}
    testlib.log("round %d: %r" % (rnd, got))
    dups, _ = clusterip_dups()
    t.check("round %d: A and B asked at once for the last ClusterIP: no address given twice" % rnd,
            not dups, "creates: %r\nClusterIPs given to more than one Service: %r" % (got, dups))
    for name, r in raced.items():
        if isinstance(r, testlib.Resp) and r.status == 201:
            raced_ok += 1
            r = cb.delete(SVCS + "/" + name)
            t.check("delete Service %s through B" % name, r.status == 200, r)
    time.sleep(0.5)  # lets both allocators see the deletes before the next round (no assertion)
t.check("the racing rounds handed out the last address at least once", raced_ok >= 1, raced_ok)
for name in fill[:4]:  # room for the Services created below
    r = ca.delete(SVCS + "/" + name)
    t.check("delete Service %s through A" % name, r.status == 200, r)

# --- kill -9 A: B keeps serving ------------------------------------------------------------
before_kill = names_rvs(cb.get(CMS).json["items"])
w = testlib.Watch(B, CMS + "?watch=true&resourceVersion=%s" % cb.get(CMS).json["metadata"]
                  ["resourceVersion"], idle=20)
A.kill9()
ca.close()
testlib.log("killed A (kill -9)")
r = cb.get(CMS)
t.check("B lists after A died", r.status == 200, r)
if r.status == 200:
    t.eq("B's list after A died is unchanged", names_rvs(r.json["items"]), before_kill)
r = cb.post(CMS, cm("after-kill", {"v": "b"}))
t.check("B creates after A died", r.status == 201, r)
after = r.json if r.status == 201 else None
if after:
    r = cb.put(CMS + "/after-kill", dict(after, data={"v": "b2"}))
    t.check("B updates after A died", r.status == 200, r)
    after = r.json if r.status == 200 else after
ev = w.take(2, 30)
t.eq("B's watch after A died: ADDED and MODIFIED of after-kill",
     [(e.get("type"), e["object"]["metadata"]["name"]) for e in ev],
     [("ADDED", "after-kill"), ("MODIFIED", "after-kill")])
w.close()
r = cb.post(SVCS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "after-kill"},
                   "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
t.check("B creates a Service after A died", r.status == 201, r)
r = cb.get("/api/v1/namespaces/%s" % NS)
t.check("B gets the namespace after A died", r.status == 200, r)

# --- A restarted on the same etcd lists what B lists ----------------------------------------
A = start_server(etcd, server=A)
ca = A.client()
for what, path in (("ConfigMaps", CMS), ("Services", SVCS), ("Namespaces", "/api/v1/namespaces")):
    ra, rb = ca.get(path), cb.get(path)
    ok = ra.status == 200 and rb.status == 200
    t.check("A (restarted) and B list %s" % what, ok, "A: %r\nB: %r" % (ra, rb))
    if ok:
        t.eq("restarted A lists the same %s as B (names, resourceVersions)" % what,
             names_rvs(ra.json["items"]), names_rvs(rb.json["items"]))
r = ca.get(CMS + "/after-kill")
t.check("restarted A gets B's after-kill with B's resourceVersion",
        r.status == 200 and after is not None and
        r.json["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"], r)
# Its allocator is rebuilt from etcd: a new Service through A avoids every ClusterIP in use.
r = ca.post(SVCS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "after-restart"},
                   "spec": {"selector": {"app": "y"}, "ports": [{"port": 80}]}})
if t.check("restarted A creates a Service", r.status == 201, r):
    others = {s["spec"].get("clusterIP") for s in cb.get("/api/v1/services").json["items"]
              if s["metadata"]["name"] != "after-restart"}
    t.check("restarted A's new ClusterIP %s is not in use" % r.json["spec"].get("clusterIP"),
            r.json["spec"].get("clusterIP") not in others, sorted(others))
ca.close()
cb.close()
t.finish()
