#!/usr/bin/env python3
"""Durability of the SQLite store across `kill -9`. Each round: 64 client threads create
ConfigMaps over HTTPS as fast as they can while a watcher (started from a recorded
resourceVersion) records events; the server is killed with SIGKILL at a random moment 0.5-3 s
in and restarted on the same data dir. Then: every create that was answered 201 is present and
intact (same data, uid and resourceVersion); the watch, resumed after the restart from the last
resourceVersion it saw, delivers exactly the objects that exist, each ADDED once, in increasing
resourceVersion order, none missing or repeated."""
import collections
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import cm, rv  # noqa: E402

testlib.ensure_modules("yaml")
testlib.deadline(600)
t = testlib.Checks()
ROUNDS = int(os.environ.get("SKIFF_DURABILITY_ROUNDS", "2"))
CLIENTS = 64
NS = "dur"
BASE = "/api/v1/namespaces/%s/configmaps" % NS

srv = testlib.Server(["--store", "sqlite"]).start()
r = srv.client().post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": NS}})
t.check("create namespace", r.status == 201, r)
seed = int(os.environ.get("SKIFF_SEED", str(int(time.time()))))
rng = random.Random(seed)
testlib.log("random seed %d (set SKIFF_SEED to repeat)" % seed)


class Writer(threading.Thread):
    def __init__(self, rnd, tid):
        super().__init__(daemon=True)
        self.rnd, self.tid = rnd, tid
        self.acked = {}  # name -> (data, uid, rv)
        self.stop_at = time.time() + 30  # bounded even if the kill never came

    def run(self):
        c = srv.client(timeout=10)
        for n in range(100000):
            if time.time() > self.stop_at:
                break
            name = "r%d-w%d-%d" % (self.rnd, self.tid, n)
            data = {"v": "%d/%d/%d/%016x" % (self.rnd, self.tid, n, random.getrandbits(64))}
            try:
                r = c.post(BASE, cm(name, data))
            except Exception:  # noqa: BLE001 — the server is gone: stop
                break
            if r.status != 201:
                break
            self.acked[name] = (data, r.json["metadata"]["uid"], rv(r.json))
        c.close()


class Watcher(threading.Thread):
    def __init__(self, from_rv):
        super().__init__(daemon=True)
        self.from_rv = from_rv
        self.events = []
        self.status = None

    def run(self):
        try:
            w = testlib.Watch(srv, BASE + "?watch=true&resourceVersion=%d" % self.from_rv, idle=40)
            self.status = w.status
            end = time.time() + 60
            while time.time() < end:
                ev = w.next_event()
                if ev is None:
                    break
                self.events.append(ev)
        except Exception:  # noqa: BLE001 — the server was killed under it
            pass


all_acked = {}
for rnd in range(ROUNDS):
    testlib.log("== round %d" % (rnd + 1))
    c = srv.client()
    start_rv = rv(c.get(BASE).json)
    watcher = Watcher(start_rv)
    watcher.start()
    time.sleep(0.5)
    writers = [Writer(rnd, i) for i in range(CLIENTS)]
    for w in writers:
        w.start()
    delay = rng.uniform(0.5, 3.0)
    time.sleep(delay)
    acked_before_kill = sum(len(w.acked) for w in writers)
    srv.kill9()
    testlib.log("killed the server %.2f s in (%d creates acknowledged by then)"
                % (delay, acked_before_kill))
    for w in writers:
        w.join(60)
    watcher.join(60)
    acked = {}
    for w in writers:
        acked.update(w.acked)
    all_acked.update(acked)
    t.check("round %d: creates were acknowledged before the kill" % (rnd + 1), len(acked) > 0,
            len(acked))
    t.eq("round %d: the watch started" % (rnd + 1), watcher.status, 200)

    srv.start()
    c = srv.client()
    lst = c.get(BASE)
    items = {o["metadata"]["name"]: o for o in lst.json["items"]} if lst.status == 200 else {}
    missing = [n for n in all_acked if n not in items]
    t.check("round %d: all %d acknowledged creates (all rounds) are present after restart"
            % (rnd + 1, len(all_acked)), not missing,
            "%d missing, e.g. %s" % (len(missing), missing[:5]))
    bad = [n for n, (data, uid, v) in all_acked.items() if n in items and (
        items[n].get("data") != data or items[n]["metadata"].get("uid") != uid
        or rv(items[n]) != v)]
    t.check("round %d: each is intact (data, uid, resourceVersion as acknowledged)" % (rnd + 1),
            not bad, "%d differ, e.g. %s" % (len(bad), [(n, all_acked[n], items[n]) for n in
                                                         bad[:2]]))

    # Resume the watch from the last revision it saw; a sentinel marks the end.
    seen = watcher.events
    last = rv(seen[-1]["object"]) if seen else start_rv
    sentinel = "sentinel-%d" % rnd
    w = testlib.Watch(srv, BASE + "?watch=true&resourceVersion=%d" % last, idle=30)
    t.eq("round %d: watch resumes from rv %d after restart" % (rnd + 1, last), w.status, 200)
    r = c.post(BASE, cm(sentinel))
    t.check("round %d: create after restart" % (rnd + 1), r.status == 201, r)
    after = []
    end = time.time() + 120
    while w.status == 200 and time.time() < end:
        try:
            ev = w.next_event()
        except Exception as e:  # noqa: BLE001
            after.append({"type": "CLIENT-ERROR", "object": {"error": repr(e)}})
            break
        if ev is None:
            break
        if ev["type"] == "ERROR" or ev["object"].get("metadata", {}).get("name") == sentinel:
            after.append(ev)
            break
        after.append(ev)
    w.close()
    t.check("round %d: resumed watch reached the sentinel" % (rnd + 1),
            after and after[-1]["type"] == "ADDED"
            and after[-1]["object"]["metadata"]["name"] == sentinel, after[-1:])
    events = seen + [e for e in after if e["object"].get("metadata", {}).get("name") != sentinel]
    # Objects this round's watch should have seen: everything created after start_rv.
    expected = {n: o for n, o in items.items() if rv(o) > start_rv}
    names = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
    dup = sorted(n for n, k in collections.Counter(names).items() if k > 1)
    t.check("round %d: no event repeated" % (rnd + 1), not dup and len(names) == len(set(names)),
            "repeated: %s" % dup[:5])
    t.check("round %d: only ADDED events (creates only)" % (rnd + 1),
            all(e["type"] == "ADDED" for e in events),
            [e for e in events if e["type"] != "ADDED"][:2])
    missing_ev = sorted(set(expected) - set(names))
    extra_ev = sorted(set(names) - set(expected))
    t.check("round %d: no event missing (%d objects, %d before the kill, %d after)"
            % (rnd + 1, len(expected), len(seen), len(after) - 1), not missing_ev,
            "%d missing, e.g. %s" % (len(missing_ev), missing_ev[:5]))
    t.check("round %d: no event for an object that does not exist" % (rnd + 1), not extra_ev,
            "%d extra (lost writes that were announced?), e.g. %s" % (len(extra_ev),
                                                                       extra_ev[:5]))
    rvs = [rv(e["object"]) for e in events]
    t.check("round %d: event resourceVersions strictly increase" % (rnd + 1),
            all(a < b for a, b in zip(rvs, rvs[1:])), rvs[:20])
    t.check("round %d: event data equals the stored objects" % (rnd + 1), all(
        e["object"].get("data") == expected[e["object"]["metadata"]["name"]].get("data")
        for e in events if e["object"]["metadata"]["name"] in expected))

# A second server on the same data dir (a forgotten one, a second unit) would hand out the same
# revisions: it is refused at once, and the first keeps serving with nothing lost.
before = srv.client().get(BASE)
second = subprocess.run([srv.exe, "--listen", "127.0.0.1:%d" % testlib.free_port(), "--data-dir",
                         srv.data, "--store", "sqlite"], capture_output=True, text=True, timeout=60)
t.check("a second server on the same data dir exits 1, naming the lock and the first's pid",
        second.returncode == 1 and "apiserver.lock is locked by another skiff-apiserver (pid %d)"
        % srv.proc.pid in second.stderr, "rc=%d\n%s" % (second.returncode, second.stderr[-500:]))
after = srv.client().get(BASE)
t.check("the first server still serves every object", after.status == 200 and before.status == 200
        and len(after.json["items"]) == len(before.json["items"]) > 0,
        (before.status, after.status))

srv.stop()
t.finish()
