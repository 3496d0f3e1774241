#!/usr/bin/env python3
"""Every verb of the Kubernetes REST API over real HTTPS (the server's CA verified, the admin
token from its kubeconfig): get, list, create, update, patch (merge, JSON, strategic),
delete (with DeleteOptions and preconditions), deletecollection; the status and binding
subresources; 409 AlreadyExists and Conflict; label and field selectors; limit/continue
paging on a consistent snapshot; watch from a revision (resume), synthetic ADDED, selector
semantics; 410 Expired after compaction; a stalled watcher cut off while 100 others keep
receiving every event."""
import json
import math
import os
import re
import socket
import ssl
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import cm, rv, status_ok  # noqa: E402

testlib.ensure_modules("yaml")
testlib.deadline(840)
t = testlib.Checks()
FLAGS = testlib.server_flags()


def flag_named(pattern):
    m = re.search(r"(--[a-z0-9-]*%s[a-z0-9-]*)" % pattern, FLAGS)
    return m.group(1) if m else None


# Optional knobs, used when the server offers them (see `skiff-apiserver --help`).
extra = []
BOUND = 4 << 20  # ApiOptions::watch_buffer_bytes default
if "--watch-buffer-bytes" in FLAGS:
    BOUND = 1 << 20  # smaller bound: fewer bytes needed to overflow the stalled watcher
    extra += ["--watch-buffer-bytes", str(BOUND)]
srv = testlib.Server(extra).start()
c = srv.client()
NS = "/api/v1/namespaces/api-ns"


def section(fn):
    """Runs one group of checks; an exception is a failure of that group, not a crash."""
    testlib.log("== " + fn.__name__)
    try:
        fn()
    except Exception:
        t.check("%s ran without an exception" % fn.__name__, False, traceback.format_exc())
    h = srv.client().get("/healthz")
    if not t.check("server healthy after %s" % fn.__name__, h.status == 200, h):
        srv.dump_log()
    return fn


def ns_body(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def pod_body(name, containers=(("a", "busybox:1"),), labels=None, node=None):
    spec = {"containers": [{"name": n, "image": i} for n, i in containers]}
    if node:
        spec["nodeName"] = node
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


@section
def basics():
    r = c.get("/version")
    t.check("/version reports a gitVersion", r.status == 200 and r.json.get("gitVersion", "")
            .startswith("v1."), r)
    r = c.post("/api/v1/namespaces", ns_body("api-ns"))
    t.eq("create namespace -> 201", r.status, 201)
    r = c.get("/api/v1/namespaces/default")
    t.check("get namespace default", r.status == 200 and r.json["kind"] == "Namespace", r)
    t.check("JSON Content-Type", r.headers.get("Content-Type", "").startswith("application/json"),
            r.headers)


@section
def create_get_update():
    r = c.post(NS + "/configmaps", cm("one", {"a": "1"}))
    t.eq("create -> 201", r.status, 201)
    o = r.json
    meta = o["metadata"]
    t.check("create sets uid, creationTimestamp (RFC 3339 Z), numeric resourceVersion",
            meta.get("uid") and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                              meta.get("creationTimestamp", ""))
            and meta.get("resourceVersion", "").isdigit(), meta)
    t.eq("create fills the namespace from the URL", meta.get("namespace"), "api-ns")
    t.eq("object carries kind and apiVersion", (o.get("kind"), o.get("apiVersion")),
         ("ConfigMap", "v1"))
    r = c.get(NS + "/configmaps/one")
    t.check("get -> 200, same object", r.status == 200 and r.json == o, r)
    r = c.post(NS + "/configmaps", cm("one", {"a": "2"}))
    t.check("create of an existing name -> 409 AlreadyExists Status",
            status_ok(r, 409, "AlreadyExists") and r.json.get("details", {}).get("name") == "one",
            r)
    r = c.post(NS + "/configmaps", cm("ghost"), query={"dryRun": "All"})
    t.check("dryRun=All create -> 201", r.status == 201, r)
    t.eq("dryRun=All stored nothing", c.get(NS + "/configmaps/ghost").status, 404)

    upd = json.loads(json.dumps(o))
    upd["data"] = {"a": "2"}
    r = c.put(NS + "/configmaps/one", upd)
    t.check("update (PUT) with the current resourceVersion -> 200", r.status == 200
            and r.json["data"] == {"a": "2"}, r)
    t.check("update bumps resourceVersion", r.status == 200 and rv(r.json) > rv(o), r)
    t.eq("update keeps uid and creationTimestamp",
         (r.json["metadata"].get("uid"), r.json["metadata"].get("creationTimestamp")),
         (meta["uid"], meta["creationTimestamp"]))
    upd["data"] = {"a": "3"}  # still the old resourceVersion
    r = c.put(NS + "/configmaps/one", upd)
    t.check("update with a stale resourceVersion -> 409 Conflict Status",
            status_ok(r, 409, "Conflict"), r)
    t.eq("the stale update changed nothing", c.get(NS + "/configmaps/one").json["data"],
         {"a": "2"})
    r = c.put(NS + "/configmaps/other-name", upd)
    t.check("update with a name differing from the URL -> 400", r.status == 400
            and r.json and r.json.get("kind") == "Status", r)
    r = c.get(NS + "/configmaps/missing")
    t.check("get of a missing object -> 404 NotFound Status with details",
            status_ok(r, 404, "NotFound") and r.json["details"].get("name") == "missing"
            and r.json["details"].get("kind") == "configmaps", r)
    r = c.post("/api/v1/namespaces/no-such-ns/configmaps", cm("x"))
    t.check("create in a missing namespace -> 404 NotFound", status_ok(r, 404, "NotFound"), r)

    # generateName
    body = cm("")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "gen-"
    r = c.post(NS + "/configmaps", body)
    t.check("generateName -> 201 with a generated name",
            r.status == 201 and re.fullmatch(r"gen-[a-z0-9]{5}", r.json["metadata"]["name"]), r)


@section
def patches():
    c.post(NS + "/configmaps", cm("p", {"a": "1", "b": "2"}, labels={"x": "1"}))
    r = c.patch(NS + "/configmaps/p", {"data": {"a": None, "c": "3"}},
                "application/merge-patch+json")
    t.check("merge patch: null deletes, new key added", r.status == 200
            and r.json["data"] == {"b": "2", "c": "3"}, r)
    r = c.patch(NS + "/configmaps/p", [{"op": "add", "path": "/data/d", "value": "4"},
                                       {"op": "remove", "path": "/data/b"},
                                       {"op": "replace", "path": "/metadata/labels/x",
                                        "value": "2"}],
                "application/json-patch+json")
    t.check("JSON patch add/remove/replace", r.status == 200
            and r.json["data"] == {"c": "3", "d": "4"}
            and r.json["metadata"]["labels"] == {"x": "2"}, r)
    r = c.patch(NS + "/configmaps/p", [{"op": "remove", "path": "/data/nope"}],
                "application/json-patch+json")
    t.check("JSON patch removing a missing path -> 4xx Status", r.status in (400, 422)
            and r.json and r.json.get("kind") == "Status", r)
    r = c.patch(NS + "/configmaps/p", {"metadata": {"resourceVersion": "1"}, "data": {"e": "5"}},
                "application/merge-patch+json")
    t.check("patch carrying a stale resourceVersion -> 409 Conflict",
            status_ok(r, 409, "Conflict"), r)
    r = c.patch(NS + "/configmaps/p", {"data": {"e": "5"}}, "text/plain")
    t.check("patch with an unsupported Content-Type -> 415 UnsupportedMediaType",
            status_ok(r, 415, "UnsupportedMediaType"), r)
    r = c.patch(NS + "/configmaps/nope", {"data": {}}, "application/merge-patch+json")
    t.check("patch of a missing object -> 404", status_ok(r, 404, "NotFound"), r)

    # Strategic merge patch: containers merge by name, ports by port, directives.
    r = c.post(NS + "/pods", pod_body("smp", (("a", "busybox:1"), ("b", "nginx:1"))))
    t.eq("create pod with two containers", r.status, 201)
    r = c.patch(NS + "/pods/smp", {"spec": {"containers": [{"name": "b", "image": "nginx:2"}]}},
                "application/strategic-merge-patch+json")
    imgs = r.json and [(x["name"], x["image"]) for x in r.json["spec"]["containers"]]
    t.eq("SMP merges containers by name (only b changed)", imgs,
         [("a", "busybox:1"), ("b", "nginx:2")])
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "smp"},
           "spec": {"selector": {"app": "x"},
                    "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}}
    r = c.post(NS + "/services", svc)
    t.check("create service", r.status == 201, r)
    t.check("service ports defaulted: protocol TCP, targetPort = port", r.status == 201 and all(
        p.get("protocol") == "TCP" and p.get("targetPort") == p["port"]
        for p in r.json["spec"]["ports"]), r)
    r = c.patch(NS + "/services/smp", {"spec": {
        "$setElementOrder/ports": [{"port": 443}, {"port": 8080}],
        "ports": [{"name": "alt", "port": 8080, "targetPort": 8080},
                  {"$patch": "delete", "port": 80}]}},
        "application/strategic-merge-patch+json")
    ports = r.json and [(p["name"], p["port"]) for p in r.json["spec"]["ports"]]
    t.eq("SMP $patch: delete + $setElementOrder on service ports", ports,
         [("https", 443), ("alt", 8080)])
    r = c.patch(NS + "/services/smp", {"metadata": {"labels": {"a": "1", "b": "2"}}},
                "application/strategic-merge-patch+json")
    r = c.patch(NS + "/services/smp", {"metadata": {"labels": {"a": None}}},
                "application/strategic-merge-patch+json")
    t.eq("SMP null deletes a map key", r.json and r.json["metadata"].get("labels"), {"b": "2"})
    r = c.patch(NS + "/services/smp", {"spec": {"$retainKeys": ["ports", "selector"],
                                                "selector": {"app": "y"}}},
                "application/strategic-merge-patch+json")
    t.check("SMP with $retainKeys accepted", r.status == 200
            and r.json["spec"]["selector"] == {"app": "y"}, r)


@section
def deletes():
    r = c.post(NS + "/configmaps", cm("d1"))
    uid = r.json["metadata"]["uid"]
    r = c.delete(NS + "/configmaps/d1", {"apiVersion": "v1", "kind": "DeleteOptions",
                                         "preconditions": {"uid": "not-" + uid}})
    t.check("delete with a wrong uid precondition -> 409 Conflict", status_ok(r, 409, "Conflict"),
            r)
    r = c.delete(NS + "/configmaps/d1", {"apiVersion": "v1", "kind": "DeleteOptions",
                                         "propagationPolicy": "Background",
                                         "preconditions": {"uid": uid}})
    t.check("delete with DeleteOptions -> 200", r.status == 200, r)
    t.eq("deleted object is gone", c.get(NS + "/configmaps/d1").status, 404)
    r = c.delete(NS + "/configmaps/d1")
    t.check("delete of a missing object -> 404 NotFound", status_ok(r, 404, "NotFound"), r)

    # Finalizers: delete sets deletionTimestamp; removing the finalizer completes it.
    body = cm("fin")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    c.post(NS + "/configmaps", body)
    r = c.delete(NS + "/configmaps/fin")
    t.check("delete of an object with finalizers -> 200 (or 202)", r.status in (200, 202), r)
    r = c.get(NS + "/configmaps/fin")
    t.check("it stays, with deletionTimestamp set", r.status == 200
            and r.json["metadata"].get("deletionTimestamp"), r)
    r = c.patch(NS + "/configmaps/fin", {"metadata": {"finalizers": None}},
                "application/merge-patch+json")
    t.check("removing the last finalizer -> 200", r.status == 200, r)
    t.eq("... and the object is gone", c.get(NS + "/configmaps/fin").status, 404)

    for i in range(5):
        c.post(NS + "/configmaps", cm("dc-x-%d" % i, labels={"batch": "x"}))
    for i in range(2):
        c.post(NS + "/configmaps", cm("dc-y-%d" % i, labels={"batch": "y"}))
    r = c.delete(NS + "/configmaps", query={"labelSelector": "batch=x"})
    t.check("deletecollection with a label selector -> 200", r.status == 200, r)
    left = sorted(o["metadata"]["name"] for o in c.get(
        NS + "/configmaps", query={"labelSelector": "batch"}).json["items"])
    t.eq("deletecollection removed exactly the selected ones", left, ["dc-y-0", "dc-y-1"])


@section
def status_and_binding():
    r = c.post(NS + "/pods", pod_body("st"))
    p = r.json
    gen = p["metadata"].get("generation")
    r = c.patch(NS + "/pods/st/status", {"status": {"phase": "Running", "podIP": "10.244.0.9"},
                                         "spec": {"nodeName": "sneaky"}},
                "application/merge-patch+json")
    t.check("PATCH status subresource -> 200 with the new status", r.status == 200
            and r.json["status"].get("phase") == "Running", r)
    t.check("status subresource ignores spec changes", r.status == 200
            and not r.json["spec"].get("nodeName"), r)
    if gen is not None:
        t.eq("status update does not bump generation", r.json["metadata"].get("generation"), gen)
    cur = c.get(NS + "/pods/st").json
    cur["status"] = {"phase": "Failed"}
    cur["metadata"].setdefault("labels", {})["l"] = "v"
    r = c.put(NS + "/pods/st", cur)
    t.check("PUT on the main resource ignores status changes", r.status == 200
            and r.json["status"].get("phase") == "Running"
            and r.json["metadata"]["labels"].get("l") == "v", r)
    cur = r.json
    cur["status"]["phase"] = "Succeeded"
    r = c.put(NS + "/pods/st/status", cur)
    t.check("PUT status subresource", r.status == 200
            and r.json["status"]["phase"] == "Succeeded", r)
    r = c.get(NS + "/pods/st/status")
    t.check("GET status subresource returns the pod", r.status == 200
            and r.json.get("kind") == "Pod", r)
    if gen is not None:
        r = c.patch(NS + "/pods/st", {"spec": {"containers": [{"name": "a", "image": "busybox:2"}]}},
                    "application/strategic-merge-patch+json")
        t.check("a spec change bumps generation", r.status == 200
                and r.json["metadata"].get("generation", 0) > gen, r)
        r = c.patch(NS + "/pods/st", {"metadata": {"labels": {"m": "n"}}},
                    "application/strategic-merge-patch+json")
        g2 = r.json["metadata"].get("generation")
        r2 = c.patch(NS + "/pods/st", {"metadata": {"labels": {"m": "o"}}},
                     "application/strategic-merge-patch+json")
        t.eq("a metadata-only change does not bump generation",
             r2.json["metadata"].get("generation"), g2)

    c.post(NS + "/pods", pod_body("bind"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bind"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    r = c.post(NS + "/pods/bind/binding", binding)
    t.check("POST binding -> 201", r.status == 201, r)
    r = c.get(NS + "/pods/bind")
    t.eq("binding set spec.nodeName", r.json["spec"].get("nodeName"), "node-1")
    binding["target"]["name"] = "node-2"
    r = c.post(NS + "/pods/bind/binding", binding)
    t.check("binding an already bound pod -> 409 Conflict", status_ok(r, 409, "Conflict"), r)
    r = c.put(NS + "/pods/bind", dict(c.get(NS + "/pods/bind").json,
                                      spec=dict(pod_body("bind")["spec"], nodeName="node-3")))
    t.check("changing spec.nodeName by update -> 422 Invalid (immutable)",
            status_ok(r, 422, "Invalid"), r)


@section
def selectors():
    labels = {"s1": {"app": "web", "tier": "fe"}, "s2": {"app": "web", "tier": "be"},
              "s3": {"app": "db"}, "s4": {}}
    c.post("/api/v1/namespaces", ns_body("sel-ns"))
    base = "/api/v1/namespaces/sel-ns/configmaps"
    for n, ls in labels.items():
        c.post(base, cm(n, labels=ls))

    def names(query, path=base):
        r = c.get(path, query=query)
        if r.status != 200:
            return r
        return sorted(o["metadata"]["name"] for o in r.json["items"])

    cases = [("app=web", ["s1", "s2"]), ("app==web", ["s1", "s2"]), ("app!=web", ["s3", "s4"]),
             ("app in (web,db)", ["s1", "s2", "s3"]), ("app notin (web)", ["s3", "s4"]),
             ("tier", ["s1", "s2"]), ("!tier", ["s3", "s4"]), ("app=web,tier=be", ["s2"]),
             ("app=web,tier in (fe)", ["s1"])]
    for sel, want in cases:
        t.eq("labelSelector %r" % sel, names({"labelSelector": sel}), want)
    r = c.get(base, query={"labelSelector": "app in web"})
    t.check("malformed labelSelector -> 400 BadRequest", status_ok(r, 400, "BadRequest"), r)
    t.eq("fieldSelector metadata.name=s3", names({"fieldSelector": "metadata.name=s3"}), ["s3"])
    t.eq("fieldSelector metadata.name!=s3", names({"fieldSelector": "metadata.name!=s3"}),
         ["s1", "s2", "s4"])
    t.eq("fieldSelector metadata.namespace across namespaces",
         names({"fieldSelector": "metadata.namespace=sel-ns", "labelSelector": "app=db"},
               "/api/v1/configmaps"), ["s3"])
    r = c.get(base, query={"fieldSelector": "data.foo=x"})
    t.check("unsupported fieldSelector field -> 400 BadRequest", status_ok(r, 400, "BadRequest"),
            r)
    pods = "/api/v1/namespaces/sel-ns/pods"
    c.post(pods, pod_body("on1", node="n1"))
    c.post(pods, pod_body("on2", node="n2"))
    c.patch(pods + "/on2/status", {"status": {"phase": "Running"}}, "application/merge-patch+json")
    t.eq("fieldSelector spec.nodeName=n1", names({"fieldSelector": "spec.nodeName=n1"}, pods),
         ["on1"])
    t.eq("fieldSelector status.phase=Running",
         names({"fieldSelector": "status.phase=Running"}, pods), ["on2"])
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
          "involvedObject": {"kind": "Pod", "name": "on1", "namespace": "sel-ns"},
          "reason": "R", "message": "m", "type": "Normal"}
    c.post("/api/v1/namespaces/sel-ns/events", ev)
    ev["metadata"]["name"] = "e2"
    ev["involvedObject"]["name"] = "on2"
    c.post("/api/v1/namespaces/sel-ns/events", ev)
    t.eq("fieldSelector involvedObject.name=on2 on events",
         names({"fieldSelector": "involvedObject.name=on2,involvedObject.kind=Pod"},
               "/api/v1/namespaces/sel-ns/events"), ["e2"])


@section
def paging():
    c.post("/api/v1/namespaces", ns_body("page-ns"))
    base = "/api/v1/namespaces/page-ns/configmaps"
    made = ["cm-%02d" % i for i in range(25)]
    for n in made:
        c.post(base, cm(n))
    r = c.get(base, query={"limit": "10"})
    first = r.json
    t.eq("limit=10 gives 10 items", len(first["items"]), 10)
    t.check("first page has a continue token", bool(first["metadata"].get("continue")),
            first["metadata"])
    c.post(base, cm("zz-late"))  # after the snapshot: must not show in later pages
    seen = [o["metadata"]["name"] for o in first["items"]]
    rvs = {first["metadata"].get("resourceVersion")}
    cont = first["metadata"].get("continue")
    pages = 1
    while cont and pages < 10:
        r = c.get(base, query={"limit": "10", "continue": cont})
        if not t.check("page %d -> 200" % (pages + 1), r.status == 200, r):
            break
        seen += [o["metadata"]["name"] for o in r.json["items"]]
        rvs.add(r.json["metadata"].get("resourceVersion"))
        cont = r.json["metadata"].get("continue")
        pages += 1
    t.eq("pages together: every object once, in name order, none created later", seen, made)
    t.eq("3 pages", pages, 3)
    t.eq("all pages report the snapshot's resourceVersion", len(rvs), 1)
    r = c.get(base, query={"limit": "10", "continue": "garbage!!"})
    t.check("a malformed continue token -> 400", status_ok(r, 400, "BadRequest"), r)
    r = c.get(base)
    t.eq("an unpaged list sees the later object too", len(r.json["items"]), 26)
    t.check("an unpaged list has no continue token", not r.json["metadata"].get("continue"),
            r.json["metadata"])


@section
def watches():
    c.post("/api/v1/namespaces", ns_body("w-ns"))
    base = "/api/v1/namespaces/w-ns/configmaps"
    a = c.post(base, cm("a", {"v": "1"})).json
    b = c.put(base + "/a", dict(a, data={"v": "2"})).json
    c.delete(base + "/a")
    c.post(base, cm("b", {"v": "1"}))
    w = testlib.Watch(srv, base + "?watch=true&resourceVersion=%d" % rv(a))
    t.eq("watch from a revision -> 200", w.status, 200)
    evs = w.take(3, 10)
    w.close()
    got = [(e["type"], e["object"]["metadata"]["name"], e["object"].get("data")) for e in evs]
    t.eq("watch resumes after the revision: MODIFIED, DELETED, ADDED in order", got,
         [("MODIFIED", "a", {"v": "2"}), ("DELETED", "a", {"v": "2"}), ("ADDED", "b", {"v": "1"})])
    t.check("event resourceVersions strictly increase",
            all(rv(evs[i]["object"]) < rv(evs[i + 1]["object"]) for i in range(len(evs) - 1))
            and evs and rv(evs[0]["object"]) == rv(b), [rv(e["object"]) for e in evs])

    w = testlib.Watch(srv, base + "?watch=True&resourceVersion=0")  # Python client spells True
    evs = w.take(1, 10)
    t.eq("watch with resourceVersion=0: synthetic ADDED for current state",
         [(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "b")])
    c.post(base, cm("c"))
    evs = w.take(1, 10)
    t.eq("... then live events", [(e["type"], e["object"]["metadata"]["name"]) for e in evs],
         [("ADDED", "c")])
    w.close()

    t0 = time.time()
    w = testlib.Watch(srv, base + "?watch=1&timeoutSeconds=2&resourceVersion=%d" % rv(b),
                      idle=20)
    evs = w.take(100, 25)
    took = time.time() - t0
    t.check("timeoutSeconds ends the stream (cleanly, by the server)", took < 20,
            "took %.1f s" % took)
    w.close()

    # Label selector semantics: leaving the selector is DELETED, entering is ADDED.
    c.post(base, cm("s", labels={"pick": "yes"}))
    start = rv(c.get(base).json)
    c.patch(base + "/s", {"metadata": {"labels": {"pick": "no"}}}, "application/merge-patch+json")
    c.patch(base + "/s", {"metadata": {"labels": {"pick": "yes", "z": "1"}}},
            "application/merge-patch+json")
    c.patch(base + "/s", {"metadata": {"labels": {"z": "2"}}}, "application/merge-patch+json")
    w = testlib.Watch(srv, base + "?watch=true&labelSelector=pick%%3Dyes&resourceVersion=%d"
                      % start)
    evs = w.take(3, 10)
    w.close()
    # As kube-apiserver's watch cache does, the DELETED for an object leaving the selector
    # carries its last state that matched.
    t.eq("selector watch: out -> DELETED, in -> ADDED, change inside -> MODIFIED",
         [(e["type"], e["object"]["metadata"]["labels"]) for e in evs],
         [("DELETED", {"pick": "yes"}), ("ADDED", {"pick": "yes", "z": "1"}),
          ("MODIFIED", {"pick": "yes", "z": "2"})])

    w = testlib.Watch(srv, base + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=1"
                      "&resourceVersion=%d" % start)
    evs = w.take(100, 15)
    w.close()
    t.check("allowWatchBookmarks accepted; BOOKMARK events (if any) carry a resourceVersion",
            all(e["object"]["metadata"].get("resourceVersion") for e in evs
                if e["type"] == "BOOKMARK"), evs[-3:])

    # Cluster-wide watch sees namespaced objects.
    w = testlib.Watch(srv, "/api/v1/configmaps?watch=true&resourceVersion=%d" % rv(
        c.get(base).json))
    c.post(base, cm("cluster-wide"))
    evs = w.take(1, 10)
    w.close()
    t.eq("watch across all namespaces", [(e["type"], e["object"]["metadata"]["namespace"],
                                         e["object"]["metadata"]["name"]) for e in evs],
         [("ADDED", "w-ns", "cluster-wide")])


@section
def expired_after_compaction():
    """A watch from a revision older than the retained history gets 410 Expired: either an
    HTTP 410 Status or (as kube-apiserver does) a 200 stream whose first event is an ERROR
    Status with code 410."""
    if "--compact-keep" not in FLAGS:
        t.check("skiff-apiserver has a --compact-keep flag to make compaction testable", False,
                FLAGS)
        return
    # A server of its own that keeps only 100 revisions (the memory store compacts on write).
    small = testlib.Server(["--store", "memory", "--compact-keep", "100"]).start()
    cc = small.client()
    base = "/api/v1/namespaces/default/configmaps"
    first = cc.post(base, cm("old", {"n": "0"})).json
    start = rv(first)
    writes = 500
    end = time.time() + 120
    done = 0
    obj = first
    while done < writes and time.time() < end:
        r = cc.put(base + "/old", dict(obj, data={"n": str(done)}))
        if r.status != 200:
            break
        obj = r.json
        done += 1
    t.check("%d updates written for compaction" % writes, done == writes,
            "wrote %d in the time limit" % done)
    expired = False
    detail = ""
    for attempt in range(10):
        w = testlib.Watch(small, base + "?watch=true&resourceVersion=%d" % start, idle=10)
        if w.status == 410:
            r = testlib.Resp(410, {}, w.body)
            expired = status_ok(r, 410, "Expired") or status_ok(r, 410, "Gone")
            detail = r
            w.close()
            break
        evs = w.take(1, 10)
        w.close()
        if evs and evs[0]["type"] == "ERROR":
            o = evs[0]["object"]
            expired = o.get("code") == 410 and o.get("reason") in ("Expired", "Gone")
            detail = evs[0]
            break
        detail = evs[:1]
        time.sleep(1)
    t.check("watch from a compacted revision -> 410 Expired", expired, detail)
    r = cc.get(base, query={"resourceVersion": str(start), "resourceVersionMatch": "Exact"})
    t.check("list at a compacted revision (resourceVersionMatch=Exact) -> 410 Expired",
            status_ok(r, 410, "Expired") or status_ok(r, 410, "Gone"), r)
    r = cc.get(base + "/old")
    t.check("the object itself is still current after compaction", r.status == 200
            and r.json["data"] == {"n": str(done - 1)}, r)
    small.stop()


@section
def stalled_watcher():
    """One watcher opens a watch with a tiny receive buffer and never reads; 100 others read.
    Events are written at the pace the readers keep up with (so none of them is slow), until
    far more bytes than the per-watcher bound plus socket buffers. Every reader must get every
    event in order; the stalled one must be cut off (its stream ends early)."""
    c.post("/api/v1/namespaces", ns_body("stall-ns"))
    base = "/api/v1/namespaces/stall-ns/configmaps"
    start = rv(c.get(base).json)
    payload = "x" * (60 << 10)
    total = 2 * BOUND + (12 << 20)  # bound + the kernel's socket buffers, twice over
    n_events = min(600, math.ceil(total / len(payload)))
    path = base + "?watch=true&resourceVersion=%d" % start
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
           "Accept: application/json\r\n\r\n" % (path, srv.token)).encode()
    ctx = srv.ssl_context()

    def open_watch(rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(30)
        raw.connect(("127.0.0.1", srv.port))
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(req)
        return s

    stalled = open_watch(rcvbuf=4096)
    name_re = re.compile(rb'"name":"st-(\d+)"')

    class Reader(threading.Thread):
        def __init__(self):
            super().__init__(daemon=True)
            self.sock = open_watch()
            self.count = 0
            self.order_ok = True
            self.error = None
            self.stop = False

    # Chunk boundaries may fall anywhere (even inside an event): de-chunk, then split lines.
    class ChunkedReader(Reader):
        def run(self):
            raw = b""
            body = b""
            header_done = False
            try:
                while not self.stop and self.count < n_events:
                    data = self.sock.recv(1 << 18)
                    if not data:
                        self.error = "stream ended after %d events" % self.count
                        return
                    raw += data
                    if not header_done:
                        i = raw.find(b"\r\n\r\n")
                        if i < 0:
                            continue
                        if not raw.startswith(b"HTTP/1.1 200"):
                            self.error = raw[:200]
                            return
                        raw = raw[i + 4:]
                        header_done = True
                    while True:  # de-chunk what is complete
                        k = raw.find(b"\r\n")
                        if k < 0:
                            break
                        size = int(raw[:k].split(b";")[0], 16)
                        if size == 0:
                            self.error = "stream ended after %d events" % self.count
                            return
                        if len(raw) < k + 2 + size + 2:
                            break
                        body += raw[k + 2:k + 2 + size]
                        raw = raw[k + 2 + size + 2:]
                    while True:
                        j = body.find(b"\n")
                        if j < 0:
                            break
                        line, body = body[:j], body[j + 1:]
                        k = line.rfind(b'"name":"st-')  # metadata may follow the data
                        if k < 0:
                            continue
                        m = name_re.match(line, k)
                        if m is None:
                            continue
                        if int(m.group(1)) != self.count:
                            self.order_ok = False
                        self.count += 1
            except Exception as e:  # noqa: BLE001
                self.error = repr(e)

    readers = [ChunkedReader() for _ in range(100)]
    for r in readers:
        r.start()
    time.sleep(1)
    testlib.log("writing %d events of %d KiB to 100 readers + 1 stalled watcher"
                % (n_events, len(payload) >> 10))
    writer = srv.client()
    lag_limit = max(2, BOUND // len(payload) // 4)  # readers stay well inside the bound
    behind = None
    for i in range(n_events):
        r = writer.post(base, cm("st-%d" % i, {"p": payload}))
        if r.status != 201:
            t.check("create st-%d" % i, False, r)
            break
        end = time.time() + 60
        while True:
            live = [x.count for x in readers if x.error is None]
            if not live or min(live) >= i + 1 - lag_limit:
                break
            if time.time() > end:
                behind = i
                break
            time.sleep(0.005)
        if behind is not None:
            break
    end = time.time() + 120
    while time.time() < end and any(x.count < n_events and x.error is None for x in readers):
        time.sleep(0.05)
    errors = [x.error for x in readers if x.error]
    counts = sorted(x.count for x in readers)
    t.check("all 100 readers received all %d events" % n_events,
            not errors and counts[0] == n_events,
            "counts min %d max %d; errors: %s; writer stopped waiting at %s"
            % (counts[0], counts[-1], errors[:3], behind))
    t.check("... in revision order", all(x.order_ok for x in readers))
    for x in readers:
        x.stop = True
        try:
            x.sock.close()
        except OSError:
            pass

    # Now read what the stalled watcher was given: its stream must end before n_events.
    got = b""
    ended = False
    stalled.settimeout(15)  # a gap this long means the server holds the stream open
    end = time.time() + 60
    while time.time() < end:
        try:
            d = stalled.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            break  # no more data: the server is still holding the stream open
        except (ConnectionError, ssl.SSLError):
            ended = True
            break
        if not d:
            ended = True
            break
        got += d
        if got.endswith(b"0\r\n\r\n"):
            ended = True
            break
    n_stalled = len(name_re.findall(got))
    t.check("the stalled watcher was cut off (its stream ended)", ended,
            "received %d of %d events and the stream is still open" % (n_stalled, n_events))
    t.check("the stalled watcher got fewer events than were written", n_stalled < n_events,
            "%d of %d" % (n_stalled, n_events))
    try:
        stalled.close()
    except OSError:
        pass


t.check("server still running", srv.alive())
t.finish()
