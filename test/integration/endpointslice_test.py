#!/usr/bin/env python3
"""The EndpointSlice controller in skiff-controller-manager against a real skiff-apiserver.

Loopback only, no root, no kubelet: the test writes Endpoints by hand (selector-less Services,
whose Endpoints belong to the user) and, for one Service with a selector, writes a pod's status
itself so that the endpoints controller makes the Endpoints.
Checks: discovery lists discovery.k8s.io/v1 endpointslices; a Service + Endpoints get an
EndpointSlice with the addresses, ports, conditions (ready/serving/terminating), nodeName,
hostname, targetRef, the Endpoints' labels plus kubernetes.io/service-name and managed-by,
generateName `<svc>-` and an ownerReference to the Service; an address added, one made not
ready and the port changed update that same slice; nothing is written while nothing changes; a
slice deleted by hand comes back, one changed by hand is put back; 150 addresses make 2 slices
(100 + 50); Endpoints labelled skip-mirror (the `kubernetes` Service's) get none; a pod behind
a selector Service reaches a slice through the Endpoints; deleting the Endpoints deletes its
slices, and so does deleting a selector Service. With kubectl 1.31+ on the machine
(/usr/lib/google-cloud-sdk/bin/kubectl.1.3[1-3]): `kubectl describe svc` prints the
address:port (it reads EndpointSlices; before them it printed <none>) and `kubectl get
endpointslices` shows kubectl's columns; without it that part prints SKIPPED and the rest
still counts."""
import functools
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402

t = ctrl_lib.begin(300)
CM = testlib.need_bin("skiff-controller-manager")
NS = "eps-test"
SVC_PATH = "/api/v1/namespaces/%s/services" % NS
EP_PATH = "/api/v1/namespaces/%s/endpoints" % NS
POD_PATH = "/api/v1/namespaces/%s/pods" % NS
SLICES = "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % NS
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
wait_for = functools.partial(ctrl_lib.wait_for, timeout=30, interval=0.1)

srv = testlib.Server().start()
api = srv.client()
cm = None


def slices(svc, ns=NS):
    r = api.get("/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices?labelSelector=%s%%3D%s" %
                (ns, SERVICE_NAME, svc))
    return sorted(r.json["items"], key=lambda s: s["metadata"]["name"]) if r.status == 200 else []


def addrs(sl, ready=None):
    """Sorted addresses of the slices (only ready / not-ready ones when `ready` is given)."""
    out = []
    for s in sl:
        for e in s.get("endpoints") or []:
            if ready is None or e.get("conditions", {}).get("ready") == ready:
                out += e["addresses"]
    return sorted(out, key=lambda a: tuple(int(x) for x in a.split(".")))


def put_endpoints(name, subsets, labels=None):
    body = {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "subsets": subsets}
    cur = api.get("%s/%s" % (EP_PATH, name))
    if cur.status == 200:
        body["metadata"]["resourceVersion"] = cur.json["metadata"]["resourceVersion"]
        r = api.put("%s/%s" % (EP_PATH, name), body)
        t.check("update Endpoints " + name, r.status == 200, r)
    else:
        r = api.post(EP_PATH, body)
        t.check("create Endpoints " + name, r.status == 201, r)


def create_service(name, port, selector=None):
    spec = {"ports": [{"name": "http", "port": port, "targetPort": 8080}]}
    if selector:
        spec["selector"] = selector
    r = api.post(SVC_PATH, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
                            "spec": spec})
    t.check("create Service " + name, r.status == 201, r)
    return r.json


def settled(svc, pred):
    """The slices of svc once pred(slices) holds (or the last ones seen)."""
    last = []

    def probe():
        nonlocal last
        last = slices(svc)
        return last if pred(last) else None
    return wait_for("slices of %s" % svc, probe) or last


def find_kubectl():
    for v in ("1.33", "1.32", "1.31"):
        p = "/usr/lib/google-cloud-sdk/bin/kubectl." + v
        if os.access(p, os.X_OK):
            return p
    return None


try:
    ctrl_lib.create_namespace(api, t, NS)
    cm = ctrl_lib.controller_manager(CM, srv, "--allocate-node-cidrs=false")

    # ---- discovery
    r = api.get("/apis")
    t.check("/apis lists discovery.k8s.io (preferred v1)",
            r.status == 200 and any(g["name"] == "discovery.k8s.io" and
                                    g["preferredVersion"]["groupVersion"] == "discovery.k8s.io/v1"
                                    for g in r.json["groups"]), r)
    r = api.get("/apis/discovery.k8s.io/v1")
    res = [x for x in (r.json or {}).get("resources", []) if x["name"] == "endpointslices"]
    t.check("/apis/discovery.k8s.io/v1 serves endpointslices (namespaced, kind EndpointSlice)",
            r.status == 200 and len(res) == 1 and res[0]["namespaced"] and
            res[0]["kind"] == "EndpointSlice" and "watch" in res[0]["verbs"], r)

    # ---- Service + Endpoints -> one slice
    svc = create_service("web", 80)
    put_endpoints("web", [{"addresses": [
        {"ip": "10.244.1.5", "hostname": "web-0", "nodeName": "node1",
         "targetRef": {"kind": "Pod", "namespace": NS, "name": "web-0", "uid": "pod-uid-0"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}], labels={"team": "a"})
    sl = settled("web", lambda s: addrs(s) == ["10.244.1.5"])
    t.eq("one slice with the address", addrs(sl), ["10.244.1.5"])
    s = sl[0] if sl else {}
    md = s.get("metadata", {})
    t.check("named from generateName web-",
            md.get("generateName") == "web-" and md.get("name", "").startswith("web-") and
            len(md.get("name", "")) > len("web-"), md)
    t.eq("labels: the Endpoints' (a hand-made one's here), service-name and managed-by",
         md.get("labels"), {"team": "a", SERVICE_NAME: "web", MANAGED_BY: CONTROLLER})
    t.eq("ownerReference to the Service (controller, blockOwnerDeletion)",
         md.get("ownerReferences"),
         [{"apiVersion": "v1", "kind": "Service", "name": "web",
           "uid": svc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}])
    t.eq("addressType IPv4", s.get("addressType"), "IPv4")
    t.eq("ports", s.get("ports"), [{"name": "http", "port": 8080, "protocol": "TCP"}])
    t.eq("endpoint: conditions, hostname, nodeName, targetRef", (s.get("endpoints") or [{}])[0],
         {"addresses": ["10.244.1.5"],
          "conditions": {"ready": True, "serving": True, "terminating": False},
          "hostname": "web-0", "nodeName": "node1",
          "targetRef": {"kind": "Pod", "namespace": NS, "name": "web-0", "uid": "pod-uid-0"}})
    first_name = md.get("name")

    # ---- nothing changes -> nothing written
    rv = md.get("resourceVersion")
    time.sleep(1)
    now = slices("web")
    t.check("no write while nothing changes",
            len(now) == 1 and now[0]["metadata"]["resourceVersion"] == rv, now)

    # ---- an address added, one made not ready
    put_endpoints("web", [{"addresses": [{"ip": "10.244.1.6", "nodeName": "node2"}],
                           "notReadyAddresses": [{"ip": "10.244.1.5", "nodeName": "node1"}],
                           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
    sl = settled("web", lambda s: addrs(s, True) == ["10.244.1.6"] and
                 addrs(s, False) == ["10.244.1.5"])
    t.eq("ready 10.244.1.6, not ready 10.244.1.5", (addrs(sl, True), addrs(sl, False)),
         (["10.244.1.6"], ["10.244.1.5"]))
    nr = [e for s in sl for e in s["endpoints"] if e["addresses"] == ["10.244.1.5"]]
    t.eq("not ready: ready=false serving=false terminating=false",
         nr[0]["conditions"] if nr else None,
         {"ready": False, "serving": False, "terminating": False})
    t.eq("same slice updated in place", [x["metadata"]["name"] for x in sl], [first_name])

    # ---- the port changed
    put_endpoints("web", [{"addresses": [{"ip": "10.244.1.6", "nodeName": "node2"}],
                           "notReadyAddresses": [{"ip": "10.244.1.5", "nodeName": "node1"}],
                           "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]}])
    sl = settled("web", lambda s: len(s) == 1 and s[0]["ports"][0]["port"] == 9090)
    t.check("port 8080 -> 9090 in the same slice",
            len(sl) == 1 and sl[0]["ports"] == [{"name": "http", "port": 9090, "protocol": "TCP"}]
            and sl[0]["metadata"]["name"] == first_name, sl)

    # ---- a slice deleted by hand comes back
    r = api.delete("%s/%s" % (SLICES, first_name))
    t.check("delete the slice by hand", r.status in (200, 202), r)
    sl = settled("web", lambda s: len(s) == 1 and s[0]["metadata"]["name"] != first_name)
    t.check("a new slice replaces it", len(sl) == 1 and sl[0]["metadata"]["name"] != first_name
            and addrs(sl) == ["10.244.1.5", "10.244.1.6"], sl)

    # ---- a slice changed by hand is put back
    cur = sl[0] if sl else {}
    cur_name = cur.get("metadata", {}).get("name")
    if cur:
        cur["endpoints"] = [{"addresses": ["10.244.7.7"], "conditions": {"ready": True}}]
        r = api.put("%s/%s" % (SLICES, cur_name), cur)
        t.check("change the slice's endpoints by hand", r.status == 200, r)
    sl = settled("web", lambda s: addrs(s) == ["10.244.1.5", "10.244.1.6"])
    t.check("the controller puts them back (same slice)",
            addrs(sl) == ["10.244.1.5", "10.244.1.6"] and
            [x["metadata"]["name"] for x in sl] == [cur_name], sl)

    # ---- more than 100 addresses -> 2 slices
    create_service("big", 80)
    many = [{"ip": "10.245.%d.%d" % (i // 200, i % 200 + 1)} for i in range(150)]
    put_endpoints("big", [{"addresses": many, "ports": [{"name": "http", "port": 80}]}])
    sl = settled("big", lambda s: len(addrs(s)) == 150)
    t.eq("150 addresses in 2 slices of 100 and 50", sorted(len(s["endpoints"]) for s in sl),
         [50, 100])
    t.check("every address once", addrs(sl) == sorted({e["ip"] for e in many},
            key=lambda a: tuple(int(x) for x in a.split("."))), addrs(sl)[:5])

    # ---- skip-mirror: no slices (the `kubernetes` Service's Endpoints carry the label)
    put_endpoints("skipme", [{"addresses": [{"ip": "10.244.9.9"}], "ports": [{"port": 80}]}],
                  labels={"endpointslice.kubernetes.io/skip-mirror": "true"})
    # ---- a selector Service: pod -> Endpoints (endpoints controller) -> slice
    create_service("sel", 80, selector={"app": "sel"})
    r = api.post(POD_PATH, {"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "sel-0", "namespace": NS,
                                         "labels": {"app": "sel"}},
                            "spec": {"nodeName": "node1", "containers": [
                                {"name": "c", "image": "busybox",
                                 "ports": [{"containerPort": 8080}]}]}})
    t.check("create pod sel-0", r.status == 201, r)
    pod_uid = r.json["metadata"]["uid"] if r.status == 201 else None
    r = api.patch("%s/sel-0/status" % POD_PATH, {"status": {
        "phase": "Running", "podIP": "10.244.3.3", "podIPs": [{"ip": "10.244.3.3"}],
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": ctrl_lib.now_rfc3339()}]}}, ctrl_lib.MERGE)
    t.check("pod sel-0 Running, Ready, 10.244.3.3", r.status == 200, r)
    sl = settled("sel", lambda s: addrs(s, True) == ["10.244.3.3"])
    ep0 = [e for s in sl for e in s["endpoints"]]
    t.check("the pod reaches the Service's slice with its targetRef and port 8080",
            len(ep0) == 1 and ep0[0].get("targetRef", {}).get("uid") == pod_uid and
            ep0[0].get("nodeName") == "node1" and sl[0]["ports"][0]["port"] == 8080, sl)
    t.eq("its labels: the Service's (through the Endpoints), service-name and managed-by",
         sl[0]["metadata"].get("labels") if sl else None,
         {"app": "sel", SERVICE_NAME: "sel", MANAGED_BY: CONTROLLER})
    t.eq("skip-mirror Endpoints: no slice", slices("skipme"), [])
    t.eq("the kubernetes Service (skip-mirror): no slice", slices("kubernetes", ns="default"), [])

    # ---- the real kubectl 1.31+ (reads EndpointSlices)
    kubectl = find_kubectl()
    if kubectl is None:
        print("SKIPPED: no kubectl 1.31+ at /usr/lib/google-cloud-sdk/bin: the kubectl checks",
              flush=True)
    else:
        cache = os.path.join(srv.dir, "kube-cache")

        def run_kubectl(*args):
            r = subprocess.run([kubectl, "--kubeconfig", srv.kubeconfig, "--cache-dir", cache,
                                "-n", NS] + list(args), capture_output=True, text=True,
                               timeout=60)
            testlib.log("%s %s -> %d\n%s%s" % (os.path.basename(kubectl), " ".join(args),
                                               r.returncode, r.stdout, r.stderr))
            return r
        r = run_kubectl("describe", "svc", "web")
        lines = [x for x in r.stdout.splitlines() if x.startswith("Endpoints:")]
        t.check("%s describe svc web: Endpoints: 10.244.1.6:9090 (ready only), not <none>" %
                os.path.basename(kubectl),
                r.returncode == 0 and len(lines) == 1 and lines[0].split()[1:] ==
                ["10.244.1.6:9090"], r.stdout + r.stderr)
        r = run_kubectl("get", "endpointslices")
        out = r.stdout.splitlines()
        t.check("kubectl get endpointslices: NAME ADDRESSTYPE PORTS ENDPOINTS AGE",
                r.returncode == 0 and out and out[0].split() ==
                ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], r.stdout + r.stderr)
        web_rows = [x.split() for x in out if x.startswith("web-")]
        t.check("kubectl get endpointslices: web-xxxxx IPv4 9090 10.244.1.5,10.244.1.6",
                len(web_rows) == 1 and web_rows[0][1:4] == ["IPv4", "9090",
                                                             "10.244.1.5,10.244.1.6"], out)
        big_rows = [x.split() for x in out if x.startswith("big-")]
        t.check("kubectl get endpointslices: big's slices end '+ 97 more...' / '+ 47 more...'",
                sorted(" ".join(x[4:7]) for x in big_rows) == ["+ 47 more...", "+ 97 more..."],
                big_rows)
        r = run_kubectl("get", "endpointslices.discovery.k8s.io", "-l",
                        SERVICE_NAME + "=sel", "-o", "jsonpath={.items[0].endpoints[0].addresses}")
        t.check("kubectl get endpointslices.discovery.k8s.io -l ... -o jsonpath",
                r.returncode == 0 and "10.244.3.3" in r.stdout, r.stdout + r.stderr)

    # ---- Endpoints deleted -> slices gone
    for name in ("web", "big"):
        r = api.delete("%s/%s" % (EP_PATH, name))
        t.check("delete Endpoints " + name, r.status in (200, 202), r)
    t.check("their slices are deleted",
            wait_for("slices gone", lambda: not slices("web") and not slices("big")),
            (slices("web"), slices("big")))
    # ---- the Service deleted: its Endpoints go (endpoints controller), and so do its slices
    r = api.delete("%s/sel" % SVC_PATH)
    t.check("delete Service sel", r.status in (200, 202), r)
    t.check("sel's slices are deleted", wait_for("sel slices gone", lambda: not slices("sel")),
            slices("sel"))
    t.check("the controller-manager is still running", cm.alive())
finally:
    if t.failed:
        if cm:
            cm.dump_log()
        srv.dump_log()
t.finish()
