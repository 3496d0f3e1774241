#!/usr/bin/env python3
"""The Endpoints controller in skiff-controller-manager against a real skiff-apiserver.

Loopback only, no root, no kubelet and no scheduler: the test creates pods with a nodeName and
writes their status itself (pod IP, phase Running, Ready condition True or False), which is how
readiness is driven here.
Checks: a Service's Endpoints list its ready pods as addresses and the others as
notReadyAddresses (ip, nodeName, targetRef), with the Service's labels and the
last-change-trigger-time annotation; a readiness flip reaches the Endpoints (seen on a watch;
the delay is logged, not asserted); a named targetPort resolves per pod (a pod with the name on
another number gets its own subset, a pod lacking it only the numeric port); deleting a pod
removes its address; a terminating pod leaves at once; a selector-less Service's hand-made
Endpoints are never touched; a headless Service gets the headless label and hostnames for pods
whose subdomain is the Service; deleting a Service deletes its Endpoints; Endpoints without a
Service left from before the controller started are removed at its start."""
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
from ctrl_lib import MERGE  # noqa: E402

t = ctrl_lib.begin(240)
CM = testlib.need_bin("skiff-controller-manager")
NS = "ep-test"
POD_PATH = "/api/v1/namespaces/%s/pods" % NS
SVC_PATH = "/api/v1/namespaces/%s/services" % NS
EP_PATH = "/api/v1/namespaces/%s/endpoints" % NS
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS = "service.kubernetes.io/headless"
wait_for = functools.partial(ctrl_lib.wait_for, timeout=20, interval=0.1)

srv = testlib.Server().start()
api = srv.client()
ctrl_lib.create_namespace(api, t, NS)

# An Endpoints without any Service, there before the controller starts: a leftover to remove.
r = api.post(EP_PATH, {"apiVersion": "v1", "kind": "Endpoints",
                       "metadata": {"name": "leftover", "namespace": NS},
                       "subsets": [{"addresses": [{"ip": "192.0.2.9"}], "ports": [{"port": 1}]}]})
t.check("create a leftover Endpoints without a Service", r.status == 201, r)

cm = ctrl_lib.controller_manager(CM, srv, "--allocate-node-cidrs=false")


def make_pod(name, labels, http_port=8080, hostname=None, subdomain=None):
    ports = [{"name": "http", "containerPort": http_port}] if http_port else []
    spec = {"nodeName": "node1",
            "containers": [{"name": "c", "image": "busybox", "ports": ports}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    r = api.post(POD_PATH, {"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": name, "namespace": NS, "labels": labels},
                            "spec": spec})
    t.check("create pod " + name, r.status == 201, r)
    return r.json


def set_status(name, ip, ready):
    body = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": ctrl_lib.now_rfc3339()}]}}
    r = api.patch("%s/%s/status" % (POD_PATH, name), body, MERGE)
    t.check("pod %s: podIP %s, Ready=%s" % (name, ip, ready), r.status == 200, r)


def endpoints(name):
    r = api.get("%s/%s" % (EP_PATH, name))
    return r.json if r.status == 200 else None


def ips(ep, field="addresses", port_name=None):
    """Sorted IPs in `field` of the subsets (that have a port named port_name, when given)."""
    out = []
    for s in (ep or {}).get("subsets") or []:
        if port_name is not None and port_name not in [p.get("name", "") for p in
                                                       s.get("ports") or []]:
            continue
        out += [a["ip"] for a in s.get(field) or []]
    return sorted(out)


def ports_of(ep, ip):
    """{port name: number} of the subset holding ip (ready or not)."""
    out = {}
    for s in (ep or {}).get("subsets") or []:
        if ip in [a["ip"] for a in (s.get("addresses") or []) + (s.get("notReadyAddresses") or [])]:
            out.update({p.get("name", ""): p["port"] for p in s.get("ports") or []})
    return out


try:
    t.check("the leftover Endpoints is deleted when the controller starts",
            wait_for("leftover gone", lambda: endpoints("leftover") is None))

    # --- ready / not ready split, address fields, labels, annotation ---
    web = {"app": "web"}
    for name, ip, ready in (("a", "10.244.1.2", True), ("b", "10.244.1.3", False),
                            ("c", "10.244.1.4", True)):
        make_pod(name, web)
        set_status(name, ip, ready)
    make_pod("pending", web)  # no IP yet: not listed
    make_pod("other", {"app": "db"})
    set_status("other", "10.244.1.50", True)
    r = api.post(SVC_PATH, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "web", "namespace": NS,
                                         "labels": {"team": "blue"}},
                            "spec": {"selector": web, "ports": [
                                {"name": "http", "port": 80, "targetPort": "http"},
                                {"name": "metrics", "port": 9090, "targetPort": 9090}]}})
    t.check("create service web (named targetPort http, numeric 9090)", r.status == 201, r)
    ep = wait_for("web endpoints", lambda: (lambda e: e if ips(e) == ["10.244.1.2", "10.244.1.4"]
                                            else None)(endpoints("web")))
    t.eq("ready pods are addresses", ips(ep), ["10.244.1.2", "10.244.1.4"])
    t.eq("the not-ready pod is a notReadyAddress", ips(ep, "notReadyAddresses"), ["10.244.1.3"])
    addr = [a for s in ep.get("subsets") or [] for a in s.get("addresses") or []
            if a["ip"] == "10.244.1.2"]
    pod_a = api.get(POD_PATH + "/a").json
    t.eq("address: nodeName and targetRef", addr[0] if addr else None,
         {"ip": "10.244.1.2", "nodeName": "node1",
          "targetRef": {"kind": "Pod", "namespace": NS, "name": "a",
                        "uid": pod_a["metadata"]["uid"]}})
    t.eq("ports: http resolved to 8080, metrics 9090", ports_of(ep, "10.244.1.2"),
         {"http": 8080, "metrics": 9090})
    t.eq("labels are the Service's", ep["metadata"].get("labels"), {"team": "blue"})
    t.check("last-change-trigger-time annotation (RFC 3339)",
            (ep["metadata"].get("annotations") or {}).get(TRIGGER, "").endswith("Z"), ep)

    # --- a readiness flip, timed from the status write to the watch event ---
    rv = ep["metadata"]["resourceVersion"]
    w = testlib.Watch(srv, "%s?watch=1&resourceVersion=%s&fieldSelector=metadata.name%%3Dweb" %
                      (EP_PATH, rv))
    t0 = time.time()
    set_status("b", "10.244.1.3", True)
    seen = None
    end = time.time() + 20
    while time.time() < end and seen is None:
        try:
            ev = w.next_event(timeout=max(0.1, end - time.time()))
        except TimeoutError:
            break
        if ev is None:
            break
        if "10.244.1.3" in ips(ev.get("object")):
            seen = time.time() - t0
    w.close()
    t.check("readiness flip: b moves to addresses (watch event)", seen is not None)
    if seen is not None:
        testlib.log("readiness flip -> Endpoints event after %.1f ms" % (seen * 1000))
    ep = endpoints("web")
    t.eq("no notReadyAddresses left", ips(ep, "notReadyAddresses"), [])
    set_status("b", "10.244.1.3", False)
    t.check("flip back: b is notReady again",
            wait_for("b not ready", lambda: ips(endpoints("web"), "notReadyAddresses") ==
                     ["10.244.1.3"]))

    # --- named targetPort resolution per pod ---
    make_pod("d", web, http_port=8081)
    set_status("d", "10.244.1.5", True)
    make_pod("e", web, http_port=None)  # no port named http
    set_status("e", "10.244.1.6", True)
    ep = wait_for("d and e", lambda: (lambda e: e if "10.244.1.6" in ips(e) and
                                      "10.244.1.5" in ips(e) else None)(endpoints("web")))
    t.eq("pod d: http resolves to its own 8081", ports_of(ep, "10.244.1.5"),
         {"http": 8081, "metrics": 9090})
    t.eq("pod e lacks the named port: only metrics", ports_of(ep, "10.244.1.6"),
         {"metrics": 9090})
    t.eq("http addresses exclude e", ips(ep, port_name="http"),
         ["10.244.1.2", "10.244.1.4", "10.244.1.5"])

    # --- scale down: delete and terminate ---
    r = api.delete(POD_PATH + "/e")
    t.check("delete pod e", r.status in (200, 202), r)
    t.check("deleted pod e leaves the Endpoints",
            wait_for("e gone", lambda: "10.244.1.6" not in ips(endpoints("web"))))
    r = api.patch(POD_PATH + "/d", {"metadata": {"labels": {"app": "moved"}}}, MERGE)
    t.check("relabel pod d away from the selector", r.status == 200, r)
    t.check("relabelled pod d leaves the Endpoints",
            wait_for("d gone", lambda: "10.244.1.5" not in ips(endpoints("web"))))

    # --- selector-less Service: the user's Endpoints stay as they are ---
    r = api.post(SVC_PATH, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "manual", "namespace": NS},
                            "spec": {"ports": [{"port": 80}]}})
    t.check("create selector-less service manual", r.status == 201, r)
    r = api.post(EP_PATH, {"apiVersion": "v1", "kind": "Endpoints",
                           "metadata": {"name": "manual", "namespace": NS},
                           "subsets": [{"addresses": [{"ip": "192.0.2.1"}],
                                        "ports": [{"port": 80}]}]})
    t.check("create its Endpoints by hand", r.status == 201, r)
    manual_rv = r.json["metadata"]["resourceVersion"] if r.status == 201 else None
    make_pod("f", web)
    set_status("f", "10.244.1.7", True)
    wait_for("f listed", lambda: "10.244.1.7" in ips(endpoints("web")))
    time.sleep(1)
    m = endpoints("manual")
    t.check("selector-less Service's Endpoints untouched",
            m is not None and m["metadata"]["resourceVersion"] == manual_rv and
            ips(m) == ["192.0.2.1"], m)

    # --- headless Service with hostname/subdomain ---
    db = {"app": "db2"}
    make_pod("db-0", db, hostname="db-0", subdomain="db")
    set_status("db-0", "10.244.2.2", True)
    make_pod("db-x", db, hostname="x", subdomain="elsewhere")
    set_status("db-x", "10.244.2.3", True)
    r = api.post(SVC_PATH, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "db", "namespace": NS},
                            "spec": {"clusterIP": "None", "selector": db,
                                     "ports": [{"port": 5432}]}})
    t.check("create headless service db", r.status == 201, r)
    ep = wait_for("db endpoints", lambda: (lambda e: e if len(ips(e)) == 2 else None)(
        endpoints("db")))
    hosts = {a["ip"]: a.get("hostname") for s in (ep or {}).get("subsets") or []
             for a in s.get("addresses") or []}
    t.eq("hostname only for the pod whose subdomain is the Service", hosts,
         {"10.244.2.2": "db-0", "10.244.2.3": None})
    t.eq("headless label", ((ep or {}).get("metadata") or {}).get("labels"), {HEADLESS: ""})

    # --- Service deleted => Endpoints deleted ---
    r = api.delete(SVC_PATH + "/web")
    t.check("delete service web", r.status in (200, 202), r)
    t.check("its Endpoints are deleted", wait_for("web ep gone", lambda: endpoints("web") is None))
    t.check("the selector-less Service's Endpoints still exist", endpoints("manual") is not None)
finally:
    if t.failed:
        cm.dump_log()
t.finish()
