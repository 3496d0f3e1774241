#!/usr/bin/env python3
"""policy/v1 PodDisruptionBudgets and the pods/eviction subresource with the real kubectl,
against skiff-apiserver and skiff-controller-manager (its disruption controller). Loopback only,
no root, no kubelet: the test plays the kubelet by writing pod status (Running, Ready).

Through the API: discovery lists pods/eviction (group policy, kind Eviction, verb create) and
poddisruptionbudgets (pdb). With each kubectl (the machine's, and Debian's 1.20 when it can be
had; a missing one prints SKIPPED for its half):
- three Ready pods app=web on a Node; `kubectl apply -f` of a PDB (minAvailable 2) -> created
  (again: unchanged, or configured as kubectl says for PDBs against Kubernetes too);
  the controller writes its status: 3 expected, 3 healthy, 2 desired, 1 disruption allowed;
- `kubectl get pdb` shows NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE, and
  `kubectl describe pdb` the limit, selector and allowed disruptions (the machine's kubectl:
  1.20 describes through policy/v1beta1, which skiff, like Kubernetes >= 1.25, does not serve);
- an Eviction (POST pods/NAME/eviction) goes through: 201 Success, the pod is gone, the budget
  has it in disruptedPods; once the controller caught up, a second one is 429 TooManyRequests
  with the DisruptionBudget cause "The disruption budget web needs 2 healthy pods and has 2
  currently";
- `kubectl drain NODE --force --grace-period=0 --timeout=20s` stops with the budget's message,
  exit status non-zero, and both pods stay; after the budget is relaxed (minAvailable 0) the
  same drain evicts them;
- `kubectl apply` of a budget whose selector lost a key: the key is gone (the selector's
  patchStrategy is "replace");
- `kubectl create pdb x --selector=app=a --min-available=1` (the machine's kubectl only:
  kubectl 1.20 creates policy/v1beta1 budgets).
Every wait is bounded; nothing is timed."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402

t = ctrl_lib.begin(420)
CM = testlib.need_bin("skiff-controller-manager")
POLICY = "/apis/policy/v1"
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."

srv = testlib.Server().start()
api = srv.client()
cm = ctrl_lib.controller_manager(CM, srv)


def pdb_path(ns, name=""):
    return POLICY + "/namespaces/%s/poddisruptionbudgets%s" % (ns, "/" + name if name else "")


def pod_path(ns, name=""):
    return "/api/v1/namespaces/%s/pods%s" % (ns, "/" + name if name else "")


def eviction(ns, name, grace=0):
    return {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
            "deleteOptions": {"gracePeriodSeconds": grace}}


def pdb_status(ns, name):
    r = api.get(pdb_path(ns, name))
    return (r.json or {}).get("status") or {} if r.status == 200 else {}


def wait_status(ns, name, **want):
    """The budget's status once it has the wanted fields (bounded), else its last status."""
    def ok():
        st = pdb_status(ns, name)
        return st if all(st.get(k) == v for k, v in want.items()) else None
    return ctrl_lib.wait_for("pdb %s/%s status %r" % (ns, name, want), ok, 30) or \
        pdb_status(ns, name)


def make_pods(ns, node, names):
    for n in names:
        r = api.post(pod_path(ns), {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": n, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        t.check("create pod %s/%s" % (ns, n), r.status == 201, r)
        r = api.patch(pod_path(ns, n) + "/status", ctrl_lib.ready_status(), ctrl_lib.MERGE)
        t.check("pod %s/%s Running and Ready" % (ns, n), r.status == 200, r)


def pod_names(ns):
    r = api.get(pod_path(ns))
    return sorted(p["metadata"]["name"] for p in r.json["items"]) if r.status == 200 else None


# ---- discovery.
r = api.get("/api/v1")
ev = [e for e in r.json["resources"] if e["name"] == "pods/eviction"]
t.check("discovery: pods/eviction as Kubernetes lists it", ev == [{
    "name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
    "version": "v1", "kind": "Eviction", "verbs": ["create"]}], ev)
r = api.get(POLICY)
pdbs = [e for e in (r.json or {}).get("resources", []) if e["name"] == "poddisruptionbudgets"]
t.check("discovery: policy/v1 poddisruptionbudgets (pdb), with status",
        len(pdbs) == 1 and pdbs[0].get("shortNames") == ["pdb"] and
        any(e["name"] == "poddisruptionbudgets/status" for e in r.json["resources"]), r)
r = api.get("/apis")
t.check("discovery: /apis lists policy (preferred v1)", any(
    g["name"] == "policy" and g["preferredVersion"]["groupVersion"] == "policy/v1"
    for g in r.json["groups"]), r)


def run_flavour(flavour, exe):
    tag = "cur" if flavour == "current" else "k120"
    ns, node = "pdb-" + tag, "pdb-node-" + tag
    files = testlib.tmpdir()

    k = testlib.Kubectl(t, flavour, exe, srv.kubeconfig, timeout=90)
    kubectl, k_ok = k.run, k.ok

    ctrl_lib.create_namespace(api, t, ns)
    r = api.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    t.check("[%s] create node %s" % (flavour, node), r.status == 201, r)
    make_pods(ns, node, ["web-0", "web-1", "web-2"])

    manifest = ctrl_lib.write(files, "pdb.yaml", """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: {ns}
spec:
  minAvailable: 2
  selector:
    matchLabels:
      app: web
""".format(ns=ns))
    r = k_ok("kubectl apply -f pdb.yaml", "apply", "-f", manifest)
    t.check("[%s] apply says created" % flavour,
            "poddisruptionbudget.policy/web created" in r.stdout, r.stdout + r.stderr)
    st = wait_status(ns, "web", disruptionsAllowed=1, currentHealthy=3, observedGeneration=1)
    t.check("[%s] status: 3 expected, 3 healthy, 2 desired, 1 allowed, observed" % flavour,
            st.get("expectedPods") == 3 and st.get("currentHealthy") == 3 and
            st.get("desiredHealthy") == 2 and st.get("disruptionsAllowed") == 1 and
            st.get("observedGeneration") == 1, st)
    conds = [c for c in st.get("conditions") or [] if c.get("type") == "DisruptionAllowed"]
    t.check("[%s] condition DisruptionAllowed True (SufficientPods)" % flavour,
            len(conds) == 1 and conds[0].get("status") == "True" and
            conds[0].get("reason") == "SufficientPods", st)
    # kubectl >= 1.2x always sends the selector (its patchStrategy is "replace", so the
    # computed patch is never empty) and says "configured", as against Kubernetes; the
    # budget must not change.
    r = k_ok("kubectl apply -f again", "apply", "-f", manifest)
    t.check("[%s] apply again: unchanged or configured" % flavour, re.search(
        r"poddisruptionbudget.policy/web (unchanged|configured)", r.stdout), r.stdout + r.stderr)
    got = api.get(pdb_path(ns, "web"))
    t.check("[%s] ... and the budget is as it was (generation 1)" % flavour,
            got.status == 200 and got.json["metadata"].get("generation") == 1 and
            got.json["spec"] == {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            got)

    r = k_ok("kubectl get pdb", "get", "pdb", "-n", ns)
    lines = r.stdout.splitlines()
    t.check("[%s] get pdb: kubectl's columns" % flavour, lines and re.match(
        r"^NAME\s+MIN AVAILABLE\s+MAX UNAVAILABLE\s+ALLOWED DISRUPTIONS\s+AGE$", lines[0]),
        r.stdout)
    t.check("[%s] get pdb: web 2 N/A 1" % flavour,
            any(re.match(r"^web\s+2\s+N/A\s+1\s+\S+$", ln) for ln in lines), r.stdout)

    if flavour == "current":  # kubectl 1.20 describes through policy/v1beta1 (not served)
        r = k_ok("kubectl describe pdb", "describe", "pdb", "web", "-n", ns)
        t.check("[%s] describe pdb: min available, selector, allowed disruptions" % flavour,
                re.search(r"Min available:\s+2", r.stdout) and
                re.search(r"Selector:\s+app=web", r.stdout) and
                re.search(r"Allowed disruptions:\s+1", r.stdout), r.stdout)

    # ---- evictions through the API.
    r = api.post(pod_path(ns, "web-0") + "/eviction", eviction(ns, "web-0"))
    t.check("[%s] eviction of web-0: 201 Success" % flavour,
            r.status == 201 and (r.json or {}).get("status") == "Success", r)
    t.check("[%s] web-0 is gone" % flavour, api.get(pod_path(ns, "web-0")).status == 404)
    st = pdb_status(ns, "web")
    t.check("[%s] the budget counted it (allowed 0, web-0 in disruptedPods)" % flavour,
            st.get("disruptionsAllowed") == 0 and "web-0" in (st.get("disruptedPods") or {}) or
            (st.get("disruptionsAllowed") == 0 and st.get("currentHealthy") == 2), st)
    st = wait_status(ns, "web", currentHealthy=2, expectedPods=2, disruptionsAllowed=0)
    t.check("[%s] the controller caught up: 2 healthy, 0 allowed, no disruptedPods" % flavour,
            st.get("currentHealthy") == 2 and st.get("disruptionsAllowed") == 0 and
            not st.get("disruptedPods"), st)
    r = api.post(pod_path(ns, "web-1") + "/eviction", eviction(ns, "web-1"))
    causes = ((r.json or {}).get("details") or {}).get("causes")
    t.check("[%s] second eviction: 429 TooManyRequests with the budget's cause" % flavour,
            r.status == 429 and r.json.get("reason") == "TooManyRequests" and
            r.json.get("message") == VIOLATION and causes == [{
                "reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}],
            r)
    t.check("[%s] web-1 is still there" % flavour, api.get(pod_path(ns, "web-1")).status == 200)

    # ---- kubectl drain respects the budget.
    r = kubectl("drain", node, "--force", "--grace-period=0", "--timeout=20s")
    out = r.stdout + r.stderr
    t.check("[%s] drain stops with the budget's message" % flavour,
            r.returncode != 0 and VIOLATION in out, out)
    t.check("[%s] drain left both pods" % flavour, pod_names(ns) == ["web-1", "web-2"],
            pod_names(ns))
    testlib.log("[%s] drain said: %s" % (flavour, " | ".join(out.strip().splitlines()[-3:])))
    r = api.patch(pdb_path(ns, "web"), {"spec": {"minAvailable": 0}}, ctrl_lib.MERGE)
    t.check("[%s] relax the budget (minAvailable 0)" % flavour, r.status == 200, r)
    st = wait_status(ns, "web", disruptionsAllowed=2, observedGeneration=2)
    t.check("[%s] status: 2 allowed" % flavour, st.get("disruptionsAllowed") == 2, st)
    r = kubectl("drain", node, "--force", "--grace-period=0", "--timeout=60s")
    out = r.stdout + r.stderr
    t.check("[%s] drain evicts both pods now" % flavour, r.returncode == 0 and
            "pod/web-1 evicted" in out and "pod/web-2 evicted" in out, out)
    t.check("[%s] no pods left" % flavour, pod_names(ns) == [], pod_names(ns))

    # ---- kubectl create pdb (policy/v1 from kubectl 1.21 on).
    if flavour == "current":
        r = k_ok("kubectl create pdb", "create", "pdb", "x", "-n", ns, "--selector=app=a",
                 "--min-available=1")
        t.check("[%s] create pdb says created" % flavour,
                "poddisruptionbudget.policy/x created" in r.stdout, r.stdout + r.stderr)
        got = api.get(pdb_path(ns, "x"))
        t.check("[%s] the created budget has its fields" % flavour, got.status == 200 and
                got.json["spec"].get("minAvailable") == 1 and
                got.json["spec"].get("selector") == {"matchLabels": {"app": "a"}}, got)
        r = kubectl("create", "pdb", "y", "-n", ns, "--selector=app=a", "--min-available=1",
                    "--max-unavailable=1")
        t.check("[%s] create pdb with both limits is refused" % flavour, r.returncode != 0,
                r.stdout + r.stderr)
    # spec.selector is patchStrategy "replace": a key dropped from the manifest goes.
    sel = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: sel
  namespace: {ns}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web{extra}
"""
    k_ok("apply a budget selecting app and tier", "apply", "-f", ctrl_lib.write(
        files, "sel1.yaml", sel.format(ns=ns, extra="\n      tier: x")))
    k_ok("apply it without tier", "apply", "-f", ctrl_lib.write(
        files, "sel2.yaml", sel.format(ns=ns, extra="")))
    got = api.get(pdb_path(ns, "sel"))
    t.check("[%s] the selector lost tier (replaced, not merged)" % flavour, got.status == 200 and
            got.json["spec"].get("selector") == {"matchLabels": {"app": "web"}}, got)
    k_ok("delete the pdbs", "delete", "pdb", "--all", "-n", ns)
    r = api.delete("/api/v1/nodes/" + node)
    t.check("[%s] delete node" % flavour, r.status == 200, r)


# ---- API-only checks: two budgets, validation.
ctrl_lib.create_namespace(api, t, "pdb-api")
make_pods("pdb-api", "", ["solo"])
for name in ("a", "b"):
    r = api.post(pdb_path("pdb-api"), {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                       "metadata": {"name": name},
                                       "spec": {"maxUnavailable": 1,
                                                "selector": {"matchLabels": {"app": "web"}}}})
    t.check("create pdb-api/%s" % name, r.status == 201, r)
st = wait_status("pdb-api", "b", disruptionsAllowed=1)
t.check("pdb-api/b counts solo: 1 disruption allowed", st.get("disruptionsAllowed") == 1, st)
r = api.post(pod_path("pdb-api", "solo") + "/eviction", eviction("pdb-api", "solo"))
t.check("two budgets: 500 'more than one PodDisruptionBudget'", r.status == 500 and
        "more than one PodDisruptionBudget" in (r.json or {}).get("message", ""), r)
r = api.post(pdb_path("pdb-api"), {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                   "metadata": {"name": "bad"},
                                   "spec": {"minAvailable": 1, "maxUnavailable": "120%"}})
fields = sorted(c.get("field") for c in ((r.json or {}).get("details") or {}).get("causes", []))
t.check("invalid pdb: 422 naming spec and spec.maxUnavailable",
        r.status == 422 and fields == ["spec", "spec.maxUnavailable"], r)

# ---- kubectl: the machine's, then Debian's 1.20.
ran = 0
for flavour, exe in testlib.kubectl_flavours():
    run_flavour(flavour, exe)
    ran += 1

t.check("skiff-controller-manager still running", cm.alive(), cm.tail())
if t.failed:
    cm.dump_log()
    srv.dump_log()
if ran == 0 and not t.failed:
    testlib.skip("no kubectl available (the API checks passed)")
t.finish()
