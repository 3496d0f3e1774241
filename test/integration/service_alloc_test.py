#!/usr/bin/env python3
"""Service address allocation in skiff-apiserver (sqlite store, 127.0.0.1 only): 50 concurrent
creates get 50 distinct ClusterIPs from the upper band of 10.96.0.0/16; a requested ClusterIP
or nodePort that is taken is a 422 with kube-apiserver's message; a restart keeps the
allocations and the next create reuses none of them; delete frees; the `kubernetes` Service
(10.96.0.1, https 443 -> the API server's port) and its Endpoints exist and come back after a
delete; bad flag values exit 1 with a clear error; the real kubectl creates and shows Services
(`create service clusterip|nodeport`, `get svc`, `get svc -o yaml`). Without kubectl the rest
still runs, and a run whose checks all passed then ends skipped (77), not passed: the kubectl
checks are the only end-to-end use of the protobuf create path."""
import concurrent.futures
import ipaddress
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.deadline(300)
t = testlib.Checks()
exe = testlib.need_bin("skiff-apiserver")
SVCS = "/api/v1/namespaces/default/services"
NET = ipaddress.ip_network("10.96.0.0/16")
LOWER_BAND_END = ipaddress.ip_address("10.96.1.0")  # 10.96.0.1 + 256 - 1


def svc(name, typ="ClusterIP", **spec):
    s = {"type": typ, "selector": {"app": name},
         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": s}


# ---- bad flag values.
for flag, value, want in [("--service-cluster-ip-range", "10.96.0.1/16", "host bits"),
                          ("--service-cluster-ip-range", "fd00::/108", "IPv6"),
                          ("--service-node-port-range", "32767-30000", "greater"),
                          ("--advertise-address", "not-an-ip", "not an IP address")]:
    d = testlib.tmpdir()
    r = subprocess.run([exe, "--listen", "127.0.0.1:%d" % testlib.free_port(), "--data-dir", d,
                        flag, value], capture_output=True, text=True, timeout=30)
    t.check("%s %s: exit 1 with a clear error" % (flag, value),
            r.returncode == 1 and flag in r.stderr and want in r.stderr,
            "rc=%d\n%s" % (r.returncode, r.stderr))

data = os.path.join(testlib.tmpdir(), "data")
srv = testlib.Server(data_dir=data).start()
c = srv.client()

# ---- the kubernetes Service and Endpoints.
r = c.get(SVCS + "/kubernetes")
t.check("the kubernetes Service exists", r.status == 200, r)
if r.status == 200:
    k = r.json
    t.eq("kubernetes Service ClusterIP", k["spec"].get("clusterIP"), "10.96.0.1")
    t.eq("kubernetes Service port", k["spec"].get("ports"),
         [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": srv.port}])
    t.eq("kubernetes Service labels", k["metadata"].get("labels"),
         {"component": "apiserver", "provider": "kubernetes"})
r = c.get("/api/v1/namespaces/default/endpoints/kubernetes")
t.check("the kubernetes Endpoints exist", r.status == 200, r)
if r.status == 200:
    t.eq("kubernetes Endpoints: the advertise address (listen host) and port",
         r.json.get("subsets"),
         [{"addresses": [{"ip": "127.0.0.1"}],
           "ports": [{"name": "https", "port": srv.port, "protocol": "TCP"}]}])

# ---- 50 concurrent creates.
def create(i):
    cl = srv.client()
    try:
        return cl.post(SVCS, svc("c%02d" % i, "NodePort"))
    finally:
        cl.close()


with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
    results = list(pool.map(create, range(50)))
ok = [x for x in results if x.status == 201]
t.eq("50 concurrent creates all succeed", len(ok), 50)
ips = [x.json["spec"]["clusterIP"] for x in ok]
nps = [x.json["spec"]["ports"][0]["nodePort"] for x in ok]
t.eq("50 distinct ClusterIPs", len(set(ips)), 50)
t.eq("50 distinct nodePorts", len(set(nps)), 50)
t.check("all ClusterIPs in 10.96.0.0/16, from the upper band (above 10.96.1.0)",
        all(ipaddress.ip_address(ip) in NET and ipaddress.ip_address(ip) > LOWER_BAND_END
            for ip in ips), ips)
t.check("all nodePorts in 30086-32767 (the upper band of 30000-32767)",
        all(30086 <= p <= 32767 for p in nps), nps)
t.check("fields set: clusterIPs, ipFamilies [IPv4], ipFamilyPolicy SingleStack",
        all(x.json["spec"].get("clusterIPs") == [x.json["spec"]["clusterIP"]] and
            x.json["spec"].get("ipFamilies") == ["IPv4"] and
            x.json["spec"].get("ipFamilyPolicy") == "SingleStack" for x in ok))

# ---- requested addresses and conflicts.
r = c.post(SVCS, svc("fixed", clusterIP="10.96.0.10"))
t.check("requested clusterIP 10.96.0.10 is granted",
        r.status == 201 and r.json["spec"]["clusterIP"] == "10.96.0.10", r)
r = c.post(SVCS, svc("clash", clusterIP="10.96.0.10"))
t.check("a taken clusterIP: 422", testlib.status_ok(r, 422, "Invalid"), r)
t.eq("... with kube-apiserver's message", (r.json or {}).get("message"),
     'Service "clash" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: '
     'failed to allocate IP 10.96.0.10: provided IP is already allocated')
r = c.post(SVCS, svc("outside", clusterIP="10.0.0.10"))
t.check("a clusterIP outside the range: 422 naming the range",
        r.status == 422 and "The range of valid IPs is 10.96.0.0/16" in r.json["message"], r)
n = svc("np-fixed", "NodePort")
n["spec"]["ports"][0]["nodePort"] = 30080
r = c.post(SVCS, n)
t.check("requested nodePort 30080 is granted",
        r.status == 201 and r.json["spec"]["ports"][0]["nodePort"] == 30080, r)
n["metadata"]["name"] = "np-clash"
r = c.post(SVCS, n)
t.eq("a taken nodePort: 422 with kube-apiserver's message",
     (r.status, (r.json or {}).get("message")),
     (422, 'Service "np-clash" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
           'provided port is already allocated'))
n["spec"]["ports"][0]["nodePort"] = 8080
r = c.post(SVCS, n)
t.check("a nodePort outside the range: 422",
        r.status == 422 and "The range of valid ports is 30000-32767" in r.json["message"], r)
r = c.post(SVCS, svc("headless", clusterIP="None"))
t.check("headless: clusterIP None, clusterIPs [None], nothing allocated",
        r.status == 201 and r.json["spec"]["clusterIP"] == "None" and
        r.json["spec"]["clusterIPs"] == ["None"], r)
r = c.post(SVCS, svc("headless-np", "NodePort", clusterIP="None"))
t.check("headless NodePort: 422 may not be set to 'None' for NodePort services",
        r.status == 422 and "may not be set to 'None' for NodePort services" in r.json["message"],
        r)
r = c.post(SVCS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                  "spec": {"type": "ExternalName", "externalName": "example.com"}})
t.check("ExternalName: no clusterIP", r.status == 201 and "clusterIP" not in r.json["spec"], r)
r = c.post(SVCS + "?dryRun=All", svc("dry", clusterIP="10.96.0.20"))
t.check("dry run answers with the address", r.status == 201 and
        r.json["spec"]["clusterIP"] == "10.96.0.20", r)
r = c.post(SVCS, svc("after-dry", clusterIP="10.96.0.20"))
t.check("... and keeps nothing: the same address can be requested after", r.status == 201, r)

# Update: a manifest without the allocated values keeps them; type change releases nodePorts.
first = ok[0].json
name = first["metadata"]["name"]
r = c.put(SVCS + "/" + name, svc(name, "NodePort"))
t.check("PUT without clusterIP/nodePort keeps both",
        r.status == 200 and r.json["spec"]["clusterIP"] == first["spec"]["clusterIP"] and
        r.json["spec"]["ports"][0]["nodePort"] == first["spec"]["ports"][0]["nodePort"], r)
freed_np = first["spec"]["ports"][0]["nodePort"]
r = c.patch(SVCS + "/" + name, {"spec": {"type": "ClusterIP"}}, "application/merge-patch+json")
t.check("NodePort -> ClusterIP drops the nodePort",
        r.status == 200 and "nodePort" not in r.json["spec"]["ports"][0], r)
n = svc("reuse-np", "NodePort")
n["spec"]["ports"][0]["nodePort"] = freed_np
r = c.post(SVCS, n)
t.check("... and releases it (another Service gets it)", r.status == 201, r)

# ---- restart keeps allocations.
before = {x["metadata"]["name"]: x["spec"].get("clusterIP")
          for x in c.get(SVCS).json["items"]}
c.close()
srv.stop()
srv = testlib.Server(data_dir=data).start()
c = srv.client()
r = c.post(SVCS, svc("clash2", clusterIP="10.96.0.10"))
t.check("after a restart a stored clusterIP is still taken (422)", r.status == 422, r)
n = svc("np-clash2", "NodePort")
n["spec"]["ports"][0]["nodePort"] = 30080
r = c.post(SVCS, n)
t.check("after a restart a stored nodePort is still taken (422)", r.status == 422, r)
taken = set(before.values())
fresh = []
for i in range(20):
    r = c.post(SVCS, svc("new%02d" % i))
    if r.status == 201:
        fresh.append(r.json["spec"]["clusterIP"])
t.check("20 creates after the restart reuse no stored ClusterIP",
        len(fresh) == 20 and not (set(fresh) & taken) and len(set(fresh)) == 20, fresh)

# ---- delete frees.
r = c.delete(SVCS + "/fixed")
t.check("delete the Service holding 10.96.0.10", r.status == 200, r)
r = c.post(SVCS, svc("fixed-again", clusterIP="10.96.0.10"))
t.check("its clusterIP can be requested again", r.status == 201, r)

# ---- the kubernetes Service is repaired (reconciler every 10 s).
r = c.delete(SVCS + "/kubernetes")
t.check("delete the kubernetes Service", r.status == 200, r)
end = time.time() + 30
back = None
while time.time() < end:
    r = c.get(SVCS + "/kubernetes")
    if r.status == 200:
        back = r.json
        break
    time.sleep(0.5)
t.check("the kubernetes Service comes back with 10.96.0.1",
        back is not None and back["spec"]["clusterIP"] == "10.96.0.1", back)

# ---- the real kubectl.
have_kubectl = shutil.which("kubectl") is not None
if not have_kubectl:
    testlib.log("kubectl is not installed: its checks are skipped")
else:
    cache = os.path.join(testlib.tmpdir(), "kube-cache")

    def kubectl(*args):
        r = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, "--cache-dir", cache] +
                           list(args), capture_output=True, text=True, timeout=60)
        testlib.log("kubectl %s -> %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                 r.stderr))
        return r

    r = kubectl("create", "service", "clusterip", "kx", "--tcp=80:8080")
    t.check("kubectl create service clusterip kx --tcp=80:8080",
            r.returncode == 0 and "service/kx created" in r.stdout, r.stderr)
    # 30050 is in the static band (30000-30085): dynamic allocation takes the upper band first,
    # so none of the ~50 random nodePorts above can hold it (30999 could, ~2% of runs).
    r = kubectl("create", "service", "nodeport", "kn", "--tcp=80:8080", "--node-port=30050")
    t.check("kubectl create service nodeport kn --node-port=30050",
            r.returncode == 0 and "service/kn created" in r.stdout, r.stderr)
    r = kubectl("create", "service", "nodeport", "kn2", "--tcp=80:8080", "--node-port=30050")
    t.check("kubectl create service nodeport with a taken node port: kube-apiserver's error",
            r.returncode != 0 and "provided port is already allocated" in r.stderr, r.stderr)
    r = kubectl("get", "svc")
    lines = r.stdout.splitlines()
    kx = [line.split() for line in lines if line.startswith("kx ")]
    kn = [line.split() for line in lines if line.startswith("kn ")]
    t.check("kubectl get svc: header NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
            r.returncode == 0 and lines and lines[0].split() ==
            ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], r.stdout)
    t.check("kubectl get svc: kx ClusterIP with an address from the range, 80/TCP",
            kx and kx[0][1] == "ClusterIP" and ipaddress.ip_address(kx[0][2]) in NET and
            kx[0][4] == "80/TCP", kx)
    t.check("kubectl get svc: kn NodePort 80:30050/TCP",
            kn and kn[0][1] == "NodePort" and kn[0][4] == "80:30050/TCP", kn)
    t.check("kubectl get svc: kubernetes 10.96.0.1 443/TCP",
            any(line.split()[:3] == ["kubernetes", "ClusterIP", "10.96.0.1"] and
                "443/TCP" in line for line in lines), r.stdout)
    r = kubectl("get", "svc", "kx", "-o", "yaml")
    t.check("kubectl get svc kx -o yaml shows clusterIPs, ipFamilies, ipFamilyPolicy",
            r.returncode == 0 and "clusterIPs:" in r.stdout and "- IPv4" in r.stdout and
            "ipFamilyPolicy: SingleStack" in r.stdout and "targetPort: 8080" in r.stdout,
            r.stdout)

c.close()
srv.stop()
if not have_kubectl and not t.failed:
    testlib.skip("kubectl is not installed: %d checks passed, the kubectl ones did not run"
                 % t.total)
t.finish()
