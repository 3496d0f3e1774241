#!/usr/bin/env python3
"""kubectl 1.32's typed `create` subcommands against skiff-apiserver. They send Kubernetes
protobuf bodies (application/vnd.kubernetes.protobuf), which apiserver/protobuf.cc decodes.
For each: the request really went out as protobuf and got 201 (from kubectl -v=8), and the
stored object contains everything `kubectl create ... --dry-run=client -o json` builds for the
same command (server-set metadata and status dropped; server defaults may add fields).
Also: a malformed protobuf body is a 400 naming the field. Skips (77) without kubectl."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.ensure_modules("yaml")
if shutil.which("kubectl") is None:
    testlib.skip("kubectl is not installed")

testlib.deadline(240)
t = testlib.Checks()
srv = testlib.Server().start()
cache = os.path.join(testlib.tmpdir(), "kube-cache")
NS = "pb"


def kubectl(*args):
    r = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, "--cache-dir", cache] +
                       list(args), capture_output=True, text=True, timeout=60)
    return r


SERVER_SET = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
              "selfLink")


def strip(obj):
    obj = json.loads(json.dumps(obj))
    obj.pop("status", None)
    meta = obj.get("metadata", {})
    for k in SERVER_SET:
        meta.pop(k, None)
    # Pod templates carry a metadata.creationTimestamp: null from kubectl's client-side object.
    for path in (("spec", "template"), ("spec", "jobTemplate"),
                 ("spec", "jobTemplate", "spec", "template")):
        o = obj
        for p in path:
            o = o.get(p, {}) if isinstance(o, dict) else {}
        if isinstance(o, dict) and isinstance(o.get("metadata"), dict):
            o["metadata"].pop("creationTimestamp", None)
    return obj


def missing(want, got, path="$"):
    """Where `got` lacks or differs from something in `want` (None if it contains all of it)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return "%s: want an object, got %r" % (path, got)
        for k, v in want.items():
            if k not in got:
                return "%s.%s: missing (want %r)" % (path, k, v)
            m = missing(v, got[k], path + "." + k)
            if m:
                return m
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return "%s: want %r, got %r" % (path, want, got)
        for i, (w, g) in enumerate(zip(want, got)):
            m = missing(w, g, "%s[%d]" % (path, i))
            if m:
                return m
        return None
    return None if want == got else "%s: want %r, got %r" % (path, want, got)


def create_and_compare(desc, resource, name, args):
    # Our flags go first: args may end with "-- command...".
    dry = kubectl("create", "-n", NS, "--dry-run=client", "-o", "json", *args)
    if not t.check("%s: --dry-run=client -o json" % desc, dry.returncode == 0,
                   dry.stderr + dry.stdout):
        return
    want = strip(json.loads(dry.stdout))
    real = kubectl("create", "-n", NS, "-v=8", *args)
    sent_pb = "Content-Type: application/vnd.kubernetes.protobuf" in real.stderr
    created = "Response Status: 201 Created" in real.stderr
    t.check("%s: kubectl sent protobuf and got 201 Created" % desc,
            real.returncode == 0 and sent_pb and created,
            "rc=%d protobuf=%s 201=%s\n%s" % (real.returncode, sent_pb, created,
                                             "\n".join(real.stderr.splitlines()[-15:])))
    got = kubectl("get", resource, name, "-n", NS, "-o", "json")
    if not t.check("%s: kubectl get %s %s" % (desc, resource, name), got.returncode == 0,
                   got.stderr):
        return
    stored = strip(json.loads(got.stdout))
    m = missing(want, stored)
    t.check("%s: the stored object has everything --dry-run=client builds" % desc, m is None,
            "%s\nwant: %s\ngot:  %s" % (m, json.dumps(want, sort_keys=True),
                                        json.dumps(stored, sort_keys=True)))
    return stored


r = kubectl("create", "namespace", NS, "-v=8")
t.check("kubectl create namespace (protobuf) -> 201",
        r.returncode == 0 and "Response Status: 201 Created" in r.stderr and
        "application/vnd.kubernetes.protobuf" in r.stderr, r.stderr[-2000:])

d = create_and_compare("create deployment", "deployment", "web",
                       ["deployment", "web", "--image=busybox:1.35", "--replicas=2",
                        "--port=8080"])
if d:
    t.eq("deployment: replicas, port, selector", (
        d["spec"]["replicas"], d["spec"]["template"]["spec"]["containers"][0]["ports"],
        d["spec"]["selector"]), (2, [{"containerPort": 8080, "protocol": "TCP"}],
                                 {"matchLabels": {"app": "web"}}))
create_and_compare("create deployment with a command", "deployment", "sleeper",
                   ["deployment", "sleeper", "--image=busybox:1.35", "--", "sleep", "3600"])
j = create_and_compare("create job", "job", "once",
                       ["job", "once", "--image=busybox:1.35", "--", "date", "-u"])
if j:
    t.eq("job: command and restartPolicy", (
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        j["spec"]["template"]["spec"]["restartPolicy"]), (["date", "-u"], "Never"))
cj = create_and_compare("create cronjob", "cronjob", "tick",
                        ["cronjob", "tick", "--image=busybox:1.35", "--schedule",
                         "*/5 * * * *", "--restart=OnFailure", "--", "echo", "hi"])
if cj:
    t.eq("cronjob: schedule", cj["spec"]["schedule"], "*/5 * * * *")
if cj:
    # A Job from the CronJob: ownerReferences and annotations go through the protobuf path.
    fj = create_and_compare("create job --from=cronjob", "job", "tick-manual",
                            ["job", "tick-manual", "--from=cronjob/tick"])
    if fj:
        refs = fj["metadata"].get("ownerReferences", [])
        t.check("job --from=cronjob: ownerReference to the CronJob (controller)",
                len(refs) == 1 and refs[0].get("kind") == "CronJob" and
                refs[0].get("name") == "tick" and refs[0].get("controller") is True, refs)
c = create_and_compare("create configmap", "configmap", "cfg",
                       ["configmap", "cfg", "--from-literal=a=1", "--from-literal=url=x=y&z",
                        "--from-literal=empty="])
if c:
    t.eq("configmap: data", c.get("data"), {"a": "1", "url": "x=y&z", "empty": ""})
s = create_and_compare("create secret generic", "secret", "creds",
                       ["secret", "generic", "creds", "--from-literal=user=admin",
                        "--from-literal=pass=s3cr\u00e9t"])
if s:
    t.eq("secret: data (base64) and type", (s.get("data"), s.get("type")), (
        {"user": "YWRtaW4=", "pass": "czNjcsOpdA=="}, "Opaque"))
create_and_compare("create secret docker-registry", "secret", "regcred",
                   ["secret", "docker-registry", "regcred", "--docker-server=r.example",
                    "--docker-username=u", "--docker-password=p"])
create_and_compare("create service clusterip", "service", "websvc",
                   ["service", "clusterip", "websvc", "--tcp=80:8080"])

# A malformed body: a Deployment whose spec.replicas is length-delimited.
cl = srv.client()
bad = b"k8s\x00" + b"\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment" + b"\x12\x0b" + \
    b"\x0a\x03\x0a\x01x" + b"\x12\x04\x0a\x02\x32\x00"
r = cl.post("/apis/apps/v1/namespaces/%s/deployments" % NS, bad,
            ctype="application/vnd.kubernetes.protobuf")
t.check("malformed protobuf Deployment -> 400 naming spec.replicas",
        r.status == 400 and "spec: field replicas (1) has wire type 2" in
        (r.json or {}).get("message", ""), r)
r = cl.post("/apis/apps/v1/namespaces/%s/statefulsets" % NS,
            b"k8s\x00\x0a\x16\x0a\x07apps/v1\x12\x0bStatefulSet\x12\x00",
            ctype="application/vnd.kubernetes.protobuf")
t.check("protobuf StatefulSet (no table) -> 415", r.status == 415, r)

t.finish()
