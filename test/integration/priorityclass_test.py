#!/usr/bin/env python3
"""scheduling.k8s.io/v1 PriorityClass and the Priority admission with the real kubectl, against
skiff-apiserver. Loopback only, no root.

With each kubectl (the machine's, and Debian's 1.20 when it can be had; a missing one prints
SKIPPED for its half):
- `kubectl get pc` shows the built-ins system-node-critical (2000001000) and
  system-cluster-critical (2000000000) with kubectl's columns;
- `kubectl apply -f` of a PriorityClass and a pod naming it -> the pod's spec.priority is the
  class's value and spec.preemptionPolicy its policy; a pod naming system-node-critical gets
  2000001000; a pod naming an unknown class -> Kubernetes' Forbidden message;
- `kubectl create priorityclass NAME --value=1000 --description=x` (typed client: the machine's
  kubectl sends protobuf) -> created;
- applying the class with another value -> refused, "value: Forbidden: may not be changed in an
  update."; a `system-` name -> refused as reserved; deleting a built-in -> Forbidden;
- `kubectl delete` cleans up.
Through the API directly: discovery (short name pc, cluster-scoped), the global default class
(pods without a class get it; a second default is refused), a conflicting explicit priority.
Every wait is bounded; nothing is timed."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctrl_lib  # noqa: E402
import testlib  # noqa: E402

lines_matching = testlib.lines_matching

testlib.ensure_modules("yaml")
testlib.deadline(300)
t = testlib.Checks()
PCS = "/apis/scheduling.k8s.io/v1/priorityclasses"
PODS = "/api/v1/namespaces/default/pods"

srv = testlib.Server().start()
api = srv.client()


def pod_yaml(name, cls=None):
    return """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:{cls}
  containers:
  - name: c
    image: busybox:1.36
""".format(name=name, cls="\n  priorityClassName: " + cls if cls else "")


def run_flavour(flavour, exe):
    tag = "cur" if flavour == "current" else "k120"
    files = testlib.tmpdir()
    high = tag + "-high"

    k = testlib.Kubectl(t, flavour, exe, srv.kubeconfig)
    kubectl, k_ok = k.run, k.ok

    def write(name, text):
        return ctrl_lib.write(files, name, text)

    def pc_yaml(value, name=high):
        return """apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: {name}
value: {value}
description: "for {flavour}"
preemptionPolicy: Never
""".format(name=name, value=value, flavour=flavour)

    try:
        r = k_ok("kubectl get pc", "get", "pc")
        t.check("[%s] get pc: kubectl's columns" % flavour,
                re.match(r"NAME\s+VALUE\s+GLOBAL-DEFAULT\s+AGE\s+PREEMPTIONPOLICY", r.stdout),
                r.stdout)
        t.check("[%s] get pc: system-node-critical 2000001000 false" % flavour, lines_matching(
            r.stdout, r"^system-node-critical\s+2000001000\s+false\s+\S+\s+PreemptLowerPriority"),
            r.stdout)
        t.check("[%s] get pc: system-cluster-critical 2000000000 false" % flavour,
                lines_matching(r.stdout, r"^system-cluster-critical\s+2000000000\s+false\s"),
                r.stdout)

        pc_file = write("pc.yaml", pc_yaml(1000))
        r = k_ok("kubectl apply -f PriorityClass", "apply", "-f", pc_file)
        t.check("[%s] apply says created" % flavour,
                "priorityclass.scheduling.k8s.io/%s created" % high in r.stdout, r.stdout)
        p1 = write("p1.yaml", pod_yaml(tag + "-p1", high))
        k_ok("kubectl apply -f pod naming the class", "apply", "-f", p1)
        r = kubectl("get", "pod", tag + "-p1", "-o",
                    "jsonpath={.spec.priority}/{.spec.preemptionPolicy}/{.spec.priorityClassName}")
        t.check("[%s] the pod's spec.priority is the class's value" % flavour,
                r.stdout == "1000/Never/%s" % high, r.stdout + r.stderr)
        r = k_ok("kubectl apply -f the same pod again (unchanged)", "apply", "-f", p1)
        t.check("[%s] apply again: unchanged" % flavour, "unchanged" in r.stdout, r.stdout)

        p2 = write("p2.yaml", pod_yaml(tag + "-p2", "system-node-critical"))
        k_ok("kubectl apply -f pod naming system-node-critical", "apply", "-f", p2)
        r = kubectl("get", "pod", tag + "-p2", "-o", "jsonpath={.spec.priority}")
        t.check("[%s] system-node-critical pod: priority 2000001000" % flavour,
                r.stdout == "2000001000", r.stdout + r.stderr)

        p3 = write("p3.yaml", pod_yaml(tag + "-p3", "no-such-class"))
        r = kubectl("apply", "-f", p3)
        t.check("[%s] pod naming an unknown class -> Forbidden" % flavour,
                r.returncode != 0 and "Error from server (Forbidden)" in r.stderr and
                'pods "%s-p3" is forbidden: no PriorityClass with name no-such-class was found'
                % tag in r.stderr, r.stdout + r.stderr)

        verbose = ["-v=8"] if flavour == "current" else []
        r = k_ok("kubectl create priorityclass --value=1000 --description=x", "create",
                 "priorityclass", tag + "-made", "--value=1000", "--description=x", *verbose)
        if flavour == "current" and r.returncode == 0:
            t.check("[%s] create priorityclass: sent as protobuf, 201 Created" % flavour,
                    "Content-Type: application/vnd.kubernetes.protobuf" in r.stderr and
                    "Response Status: 201 Created" in r.stderr, r.stderr[-1500:])
        got = api.get(PCS + "/" + tag + "-made")
        t.check("[%s] created class stored with value, description, policy" % flavour,
                got.status == 200 and got.json.get("value") == 1000 and
                got.json.get("description") == "x" and
                got.json.get("preemptionPolicy") == "PreemptLowerPriority", got)

        r = kubectl("apply", "-f", write("pc2.yaml", pc_yaml(2000)))
        t.check("[%s] apply with another value -> refused" % flavour,
                r.returncode != 0 and
                "value: Forbidden: may not be changed in an update." in r.stderr,
                r.stdout + r.stderr)
        r = kubectl("apply", "-f", write("sys.yaml", pc_yaml(5, "system-" + tag)))
        t.check("[%s] a system- class -> refused as reserved" % flavour,
                r.returncode != 0 and "priority class names with 'system-' prefix are reserved "
                "for system use only" in r.stderr, r.stdout + r.stderr)
        r = kubectl("delete", "pc", "system-cluster-critical")
        t.check("[%s] delete system-cluster-critical -> Forbidden" % flavour,
                r.returncode != 0 and "this is a system priority class and cannot be deleted" in
                r.stderr, r.stdout + r.stderr)
    finally:
        kubectl("delete", "--ignore-not-found", "--wait=false", "pod", tag + "-p1", tag + "-p2",
                tag + "-p3")
        kubectl("delete", "--ignore-not-found", "pc", high, tag + "-made")
    r = kubectl("get", "pc", "-o", "name")
    t.check("[%s] after delete: only the built-ins are left" % flavour,
            sorted(r.stdout.split()) == ["priorityclass.scheduling.k8s.io/system-cluster-critical",
                                         "priorityclass.scheduling.k8s.io/system-node-critical"],
            r.stdout + r.stderr)


# ---- API-level checks (once).
r = api.get("/apis/scheduling.k8s.io/v1")
res = [x for x in (r.json or {}).get("resources", []) if x["name"] == "priorityclasses"]
t.check("discovery: priorityclasses, cluster-scoped, short name pc",
        len(res) == 1 and res[0].get("shortNames") == ["pc"] and not res[0]["namespaced"], res)


def pc(name, value, default=False):
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": default}


def pod(name, **spec):
    s = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": s}


try:
    r = api.post(PODS, pod("api-plain"))
    t.check("a pod without a class and no default: priority 0, PreemptLowerPriority",
            r.status == 201 and r.json["spec"].get("priority") == 0 and
            r.json["spec"].get("preemptionPolicy") == "PreemptLowerPriority" and
            "priorityClassName" not in r.json["spec"], r)
    r = api.post(PCS, pc("api-default", 42, True))
    t.check("a globalDefault class is created", r.status == 201, r)
    r = api.post(PCS, pc("api-default-2", 43, True))
    t.check("a second globalDefault class -> 403 'Only one default can exist'",
            r.status == 403 and r.json.get("message") ==
            'priorityclasses.scheduling.k8s.io "api-default-2" is forbidden: PriorityClass '
            'api-default is already marked as default. Only one default can exist', r)
    r = api.post(PODS, pod("api-defaulted"))
    t.check("a pod without a class gets the default's name and value",
            r.status == 201 and r.json["spec"].get("priorityClassName") == "api-default" and
            r.json["spec"].get("priority") == 42, r)
    r = api.post(PODS, pod("api-clash", priorityClassName="system-cluster-critical", priority=1))
    t.check("an explicit priority that differs from the class -> 403",
            r.status == 403 and r.json.get("message") ==
            'pods "api-clash" is forbidden: the integer value of priority (1) must not be '
            'provided in pod spec; priority admission controller computed 2000000000 from the '
            'given PriorityClass name', r)
finally:
    for name in ("api-plain", "api-defaulted", "api-clash"):
        api.delete(PODS + "/" + name)
    for name in ("api-default", "api-default-2"):
        api.delete(PCS + "/" + name)

# ---- kubectl: the machine's, then Debian's 1.20.
ran = 0
for flavour, exe in testlib.kubectl_flavours():
    run_flavour(flavour, exe)
    ran += 1

if t.failed:
    srv.dump_log()
if ran == 0 and not t.failed:
    testlib.skip("no kubectl available (the API checks passed)")
t.finish()
