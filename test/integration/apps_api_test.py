#!/usr/bin/env python3
"""apps/v1 Deployments and ReplicaSets and their scale subresource, driven by the machine's real
kubectl (1.32) and the official Python client against skiff-apiserver (no controllers run, so
status stays empty): apply -f, get deploy,rs -o wide (kubectl's columns), scale (merge PATCH of
.../scale; --current-replicas PUTs the Scale; a stale --resource-version is a 409), get --raw
.../scale, generation bumps, 422 with field paths for an invalid Deployment, describe deploy/rs,
get all, and AppsV1Api create/read/patch/replace of deployments and their scale.
Skips (77) without kubectl or python3-kubernetes."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.ensure_modules("yaml", "kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

if shutil.which("kubectl") is None:
    testlib.skip("kubectl is not installed")

testlib.deadline(300)
t = testlib.Checks()
srv = testlib.Server().start()
work = testlib.tmpdir()
cache = os.path.join(work, "kube-cache")  # a fresh discovery cache: no answers from old runs
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def kubectl(*args, stdin=None):
    r = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, "--cache-dir", cache] +
                       list(args), input=stdin, capture_output=True, text=True, timeout=60)
    testlib.log("kubectl %s -> %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def manifest(kind, name, image="nginx:1.25", template_app="web", replicas=2):
    return """apiVersion: apps/v1
kind: %s
metadata:
  name: %s
  labels: {app: web}
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: %s}
    spec:
      containers:
      - name: nginx
        image: %s
        ports:
        - containerPort: 80
""" % (kind, name, replicas, template_app, image)


def write(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


api = srv.client()


def get_deploy(name):
    r = api.get(DEPLOYS + "/" + name)
    return r.json if r.status == 200 else {}


# ---- apply, get -o wide
r = kubectl("apply", "-f", write("web.yaml", manifest("Deployment", "web")))
t.check("kubectl apply -f creates the Deployment",
        r.returncode == 0 and "deployment.apps/web created" in r.stdout, r)
r = kubectl("apply", "-f", write("rs.yaml", manifest("ReplicaSet", "web-rs")))
t.check("kubectl apply -f creates a ReplicaSet",
        r.returncode == 0 and "replicaset.apps/web-rs created" in r.stdout, r)
d = get_deploy("web")
t.eq("new Deployment: generation 1", d.get("metadata", {}).get("generation"), 1)
t.eq("defaults: strategy RollingUpdate 25%/25%", d.get("spec", {}).get("strategy"),
     {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
t.eq("defaults: revisionHistoryLimit 10, progressDeadlineSeconds 600",
     (d["spec"].get("revisionHistoryLimit"), d["spec"].get("progressDeadlineSeconds")), (10, 600))
t.eq("defaults: the template gets pod defaults",
     (d["spec"]["template"]["spec"].get("restartPolicy"),
      d["spec"]["template"]["spec"]["containers"][0]["ports"][0].get("protocol")),
     ("Always", "TCP"))

r = kubectl("get", "deploy,rs", "-o", "wide")
lines = [ln.split() for ln in r.stdout.splitlines() if ln.strip()]
t.check("kubectl get deploy,rs -o wide: Deployment header",
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
        in lines, r.stdout)
t.check("kubectl get deploy,rs -o wide: ReplicaSet header",
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
        in lines, r.stdout)
rows = {ln[0]: ln for ln in lines}
web = rows.get("deployment.apps/web", [])
t.check("deployment row: 0/2 0 0 <age> nginx nginx:1.25 app=web",
        web[:4] == ["deployment.apps/web", "0/2", "0", "0"] and web[5:] ==
        ["nginx", "nginx:1.25", "app=web"], web)
rs = rows.get("replicaset.apps/web-rs", [])
t.check("replicaset row: 2 0 0 <age> nginx nginx:1.25 app=web",
        rs[:4] == ["replicaset.apps/web-rs", "2", "0", "0"] and rs[5:] ==
        ["nginx", "nginx:1.25", "app=web"], rs)
r = kubectl("get", "deploy")
t.check("kubectl get deploy (short name): NAME READY UP-TO-DATE AVAILABLE AGE",
        r.returncode == 0 and r.stdout.split()[:5] ==
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], r)
r = kubectl("get", "all")
t.check("kubectl get all lists the Deployment and the ReplicaSet",
        "deployment.apps/web" in r.stdout and "replicaset.apps/web-rs" in r.stdout, r)
r = kubectl("api-resources", "--api-group=apps")
t.check("kubectl api-resources: deployments deploy, replicasets rs",
        any(ln.split()[:2] == ["deployments", "deploy"] for ln in r.stdout.splitlines()) and
        any(ln.split()[:2] == ["replicasets", "rs"] for ln in r.stdout.splitlines()), r)

# ---- scale
r = kubectl("scale", "deployment/web", "--replicas=5")
t.check("kubectl scale deployment/web --replicas=5",
        r.returncode == 0 and "deployment.apps/web scaled" in r.stdout, r)
d = get_deploy("web")
t.eq("after scale: spec.replicas 5", d["spec"].get("replicas"), 5)
t.eq("after scale: generation bumped to 2", d["metadata"].get("generation"), 2)
r = kubectl("get", "--raw", DEPLOYS + "/web/scale")
scale = json.loads(r.stdout) if r.returncode == 0 else {}
t.eq("kubectl get --raw .../scale: an autoscaling/v1 Scale",
     {k: scale.get(k) for k in ("apiVersion", "kind", "spec", "status")},
     {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 5},
      "status": {"replicas": 0, "selector": "app=web"}})
t.eq("the Scale's metadata is the Deployment's",
     {k: scale.get("metadata", {}).get(k) for k in
      ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
     {k: d["metadata"].get(k) for k in
      ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")})
r = kubectl("scale", "deployment", "web", "--current-replicas=5", "--replicas=6")
t.check("kubectl scale --current-replicas=5 --replicas=6 (GET + PUT of the Scale)",
        r.returncode == 0 and "scaled" in r.stdout, r)
t.eq("after the PUT: spec.replicas 6, generation 3",
     (get_deploy("web")["spec"]["replicas"], get_deploy("web")["metadata"]["generation"]), (6, 3))
r = kubectl("scale", "deployment", "web", "--current-replicas=2", "--replicas=7")
t.check("kubectl scale --current-replicas with the wrong count fails",
        r.returncode != 0 and get_deploy("web")["spec"]["replicas"] == 6, r)
r = kubectl("scale", "deployment", "web", "--resource-version=1", "--replicas=7")
t.check("kubectl scale with a stale --resource-version is refused (kubectl compares the Scale's)",
        r.returncode != 0 and "Expected resource version to be 1" in r.stderr and
        get_deploy("web")["spec"]["replicas"] == 6, r)
stale = json.loads(kubectl("get", "--raw", DEPLOYS + "/web/scale").stdout or "{}")
kubectl("scale", "deployment", "web", "--replicas=6")  # no change: the resourceVersion stays
stale["spec"]["replicas"] = 8
api.patch(DEPLOYS + "/web", {"metadata": {"labels": {"touched": "yes"}}},
          "application/merge-patch+json")  # moves the resourceVersion, not the replicas
r = api.put(DEPLOYS + "/web/scale", stale)
t.check("PUT .../scale with a stale resourceVersion: 409 Conflict, nothing changed",
        r.status == 409 and r.json["reason"] == "Conflict" and
        get_deploy("web")["spec"]["replicas"] == 6, r)
r = kubectl("scale", "rs/web-rs", "--replicas=3")
t.check("kubectl scale rs/web-rs --replicas=3",
        r.returncode == 0 and "replicaset.apps/web-rs scaled" in r.stdout, r)
r = api.get("/apis/apps/v1/namespaces/default/replicasets/web-rs")
t.eq("ReplicaSet spec.replicas 3, generation 2",
     (r.json["spec"]["replicas"], r.json["metadata"]["generation"]), (3, 2))
r = api.patch(DEPLOYS + "/web/scale", {"spec": {"replicas": -1}}, "application/merge-patch+json")
t.check("scale to -1: 422 spec.replicas",
        r.status == 422 and r.json["details"]["causes"][0]["field"] == "spec.replicas", r)

# ---- invalid Deployment: 422 with the field path
r = kubectl("apply", "-f", write("bad.yaml", manifest("Deployment", "bad", template_app="other")))
t.check("kubectl apply of a Deployment whose selector misses the template labels fails with "
        "Kubernetes' message",
        r.returncode != 0 and 'The Deployment "bad" is invalid: spec.template.metadata.labels: '
        'Invalid value: map[string]string{"app":"other"}: `selector` does not match template '
        '`labels`' in r.stderr, r)
import yaml  # noqa: E402
bad = yaml.safe_load(manifest("Deployment", "bad2", template_app="other"))
bad["spec"]["template"]["spec"]["containers"][0]["image"] = ""
r = api.post(DEPLOYS, bad)
fields = [c.get("field") for c in (r.json or {}).get("details", {}).get("causes", [])]
t.check("POST invalid Deployment: 422 Invalid with the field paths",
        r.status == 422 and r.json["reason"] == "Invalid" and
        "spec.template.metadata.labels" in fields and
        "spec.template.spec.containers[0].image" in fields, r)

# ---- apply again with a new image: generation bumps
gen = get_deploy("web")["metadata"]["generation"]
r = kubectl("apply", "-f", write("web.yaml", manifest("Deployment", "web", image="nginx:1.26",
                                                      replicas=6)))
t.check("kubectl apply with a new image: configured",
        r.returncode == 0 and "deployment.apps/web configured" in r.stdout, r)
d = get_deploy("web")
t.eq("new image stored, generation bumped by one",
     (d["spec"]["template"]["spec"]["containers"][0]["image"], d["metadata"]["generation"]),
     ("nginx:1.26", gen + 1))
r = kubectl("apply", "-f", os.path.join(work, "web.yaml"))
t.check("kubectl apply of the same manifest: unchanged, generation kept",
        r.returncode == 0 and "unchanged" in r.stdout and
        get_deploy("web")["metadata"]["generation"] == gen + 1, r)

# ---- describe
r = kubectl("describe", "deploy", "web")
t.check("kubectl describe deploy web works",
        r.returncode == 0 and "Name:" in r.stdout and "StrategyType:           RollingUpdate"
        in r.stdout and "25% max unavailable, 25% max surge" in r.stdout and
        "nginx:1.26" in r.stdout, r)
r = kubectl("describe", "rs", "web-rs")
t.check("kubectl describe rs web-rs works",
        r.returncode == 0 and "Replicas:" in r.stdout and "Selector:" in r.stdout, r)

# ---- the Python client
api_client = config.new_client_from_config(config_file=srv.kubeconfig)
apps = client.AppsV1Api(api_client)
body = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="py"),
    spec=client.V1DeploymentSpec(
        selector=client.V1LabelSelector(match_labels={"app": "py"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "py"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))))
made = apps.create_namespaced_deployment("default", body)
t.check("AppsV1Api.create_namespaced_deployment: defaults back (replicas 1, 25%)",
        made.spec.replicas == 1 and made.spec.strategy.rolling_update.max_surge == "25%" and
        made.metadata.generation == 1, made.spec)
got = apps.read_namespaced_deployment("py", "default")
t.eq("read_namespaced_deployment", got.metadata.uid, made.metadata.uid)
sc = apps.read_namespaced_deployment_scale("py", "default")
t.eq("read_namespaced_deployment_scale: replicas 1, selector app=py",
     (sc.kind, sc.spec.replicas, sc.status.replicas, sc.status.selector),
     ("Scale", 1, 0, "app=py"))
sc = apps.patch_namespaced_deployment_scale("py", "default", {"spec": {"replicas": 4}})
t.eq("patch_namespaced_deployment_scale (strategic merge) returns the Scale",
     sc.spec.replicas, 4)
got = apps.read_namespaced_deployment("py", "default")
t.eq("the Deployment has replicas 4 and generation 2",
     (got.spec.replicas, got.metadata.generation), (4, 2))
old_sc = sc
sc = client.V1Scale(metadata=client.V1ObjectMeta(name="py", namespace="default",
                                                 resource_version=old_sc.metadata.resource_version),
                    spec=client.V1ScaleSpec(replicas=2))
sc = apps.replace_namespaced_deployment_scale("py", "default", sc)
t.eq("replace_namespaced_deployment_scale", sc.spec.replicas, 2)
old_sc.spec.replicas = 3  # its resourceVersion is now stale
try:
    apps.replace_namespaced_deployment_scale("py", "default", old_sc)
    t.check("replace_namespaced_deployment_scale with a stale resourceVersion raises 409", False)
except ApiException as e:
    t.eq("replace_namespaced_deployment_scale with a stale resourceVersion raises 409",
         e.status, 409)
p = apps.patch_namespaced_deployment("py", "default", {"spec": {"template": {"spec": {
    "containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
t.eq("patch_namespaced_deployment (template image) bumps generation",
     (p.spec.template.spec.containers[0].image, p.metadata.generation), ("busybox:1.36", 4))
rss = apps.list_namespaced_replica_set("default", label_selector="app=web")
t.eq("list_namespaced_replica_set(label_selector=app=web)",
     [x.metadata.name for x in rss.items], ["web-rs"])
rsc = apps.patch_namespaced_replica_set_scale("web-rs", "default", {"spec": {"replicas": 1}})
t.eq("patch_namespaced_replica_set_scale", rsc.spec.replicas, 1)

# ---- delete
r = kubectl("delete", "deploy", "web", "py")
t.check("kubectl delete deploy web py",
        r.returncode == 0 and 'deployment.apps "web" deleted' in r.stdout, r)
r = kubectl("get", "deploy")
t.check("no deployments left", "No resources found" in (r.stdout + r.stderr), r)

if t.failed:
    srv.dump_log()
t.finish()
