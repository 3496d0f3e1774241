#!/usr/bin/env python3
"""ServiceAccounts and RBAC objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding) with the
real kubectl, against skiff-apiserver and skiff-controller-manager. Loopback only, no root.

skiff stores, validates, lists and shows these objects as Kubernetes does but enforces nothing
(no authorizer yet); the serviceaccount controller gives every active namespace a `default`
ServiceAccount. With each kubectl (the machine's, and Debian's 1.20 when it can be had; a
missing one prints SKIPPED for its half):
- `kubectl apply -f` of a manifest with a Namespace, ServiceAccount, Role, RoleBinding,
  ClusterRole and ClusterRoleBinding (cluster names with ':') -> created; again with changes ->
  configured / unchanged;
- `kubectl get sa,role,rolebinding,clusterrole,clusterrolebinding` and `-o wide` show kubectl's
  columns and cells; `describe rolebinding` shows the role and subjects;
- `kubectl create serviceaccount|role|rolebinding|clusterrole|clusterrolebinding` (typed clients:
  the machine's kubectl sends protobuf) -> created with the fields asked for;
- changing a binding's roleRef -> refused, "cannot change roleRef"; a rule without verbs and a
  ServiceAccount subject without namespace -> refused naming the field;
- the new namespace gets its `default` ServiceAccount; deleted, it comes back;
- `kubectl delete -f` removes everything, ':' names included.
Through the API directly: discovery, 422 Status causes with field paths, percent-encoded ':'
names, the roleRef PUT. Every wait is bounded; nothing is timed."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402

lines_matching = testlib.lines_matching

t = ctrl_lib.begin(420)
CM = testlib.need_bin("skiff-controller-manager")
RBAC = "/apis/rbac.authorization.k8s.io/v1"

srv = testlib.Server().start()
api = srv.client()
cm = ctrl_lib.controller_manager(CM, srv)


def manifest(tag, ns, changed=False, role_ref_kind="Role", role_ref_name="pod-reader"):
    verbs = '["get", "list", "watch"]' if changed else '["get", "list"]'
    users = "\n- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: bob" \
        if changed else ""
    sa_labels = "\n  labels:\n    team: blue" if changed else ""
    return """apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app-sa
  namespace: {ns}{sa_labels}
imagePullSecrets:
- name: regcred
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: {ns}
rules:
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: {verbs}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: {ns}
subjects:
- kind: ServiceAccount
  name: app-sa
  namespace: {ns}
- kind: User
  apiGroup: rbac.authorization.k8s.io
  name: jane{users}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {rk}
  name: {rn}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: skiff-test:{tag}:viewer
rules:
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list"]
- nonResourceURLs: ["/healthz", "/metrics"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: skiff-test:{tag}:viewers
subjects:
- kind: Group
  apiGroup: rbac.authorization.k8s.io
  name: viewers
- kind: ServiceAccount
  name: app-sa
  namespace: {ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: skiff-test:{tag}:viewer
""".format(tag=tag, ns=ns, verbs=verbs, users=users, sa_labels=sa_labels, rk=role_ref_kind,
           rn=role_ref_name)


def sa_path(ns, name=""):
    return "/api/v1/namespaces/%s/serviceaccounts%s" % (ns, "/" + name if name else "")


def default_sa_uid(ns):
    r = api.get(sa_path(ns, "default"))
    return r.json["metadata"]["uid"] if r.status == 200 else None


def run_flavour(flavour, exe):
    tag = "cur" if flavour == "current" else "k120"
    ns = "rbac-" + tag
    files = testlib.tmpdir()
    cr, crb = "skiff-test:%s:viewer" % tag, "skiff-test:%s:viewers" % tag

    k = testlib.Kubectl(t, flavour, exe, srv.kubeconfig)
    kubectl, k_ok = k.run, k.ok

    def write(name, text):
        return ctrl_lib.write(files, name, text)

    base = write("base.yaml", manifest(tag, ns))
    changed = write("changed.yaml", manifest(tag, ns, changed=True))

    # ---- apply: created, then configured / unchanged.
    r = k_ok("kubectl apply -f (create)", "apply", "-f", base)
    for want in ("namespace/%s created" % ns, "serviceaccount/app-sa created",
                 "role.rbac.authorization.k8s.io/pod-reader created",
                 "rolebinding.rbac.authorization.k8s.io/read-pods created",
                 "clusterrole.rbac.authorization.k8s.io/%s created" % cr,
                 "clusterrolebinding.rbac.authorization.k8s.io/%s created" % crb):
        t.check("[%s] apply says %r" % (flavour, want), want in r.stdout, r.stdout + r.stderr)
    r = k_ok("kubectl apply -f (changed)", "apply", "-f", changed)
    for want in ("namespace/%s unchanged" % ns, "serviceaccount/app-sa configured",
                 "role.rbac.authorization.k8s.io/pod-reader configured",
                 "rolebinding.rbac.authorization.k8s.io/read-pods configured",
                 "clusterrole.rbac.authorization.k8s.io/%s unchanged" % cr,
                 "clusterrolebinding.rbac.authorization.k8s.io/%s unchanged" % crb):
        t.check("[%s] apply again says %r" % (flavour, want), want in r.stdout,
                r.stdout + r.stderr)
    role = api.get(RBAC + "/namespaces/%s/roles/pod-reader" % ns)
    t.check("[%s] the Role has the applied verbs" % flavour, role.status == 200 and
            role.json["rules"][0]["verbs"] == ["get", "list", "watch"], role)
    rb = api.get(RBAC + "/namespaces/%s/rolebindings/read-pods" % ns)
    t.check("[%s] the RoleBinding has the added subject" % flavour, rb.status == 200 and
            [s["name"] for s in rb.json["subjects"]] == ["app-sa", "jane", "bob"], rb)
    sa = api.get(sa_path(ns, "app-sa"))
    t.check("[%s] the ServiceAccount has its fields" % flavour, sa.status == 200 and
            sa.json.get("imagePullSecrets") == [{"name": "regcred"}] and
            sa.json.get("automountServiceAccountToken") is False and
            sa.json["metadata"].get("labels") == {"team": "blue"}, sa)

    # ---- tables.
    r = k_ok("kubectl get sa,role,rolebinding,clusterrole,clusterrolebinding", "get",
             "sa,role,rolebinding,clusterrole,clusterrolebinding", "-n", ns)
    out = r.stdout
    t.check("[%s] get: the kubectl headers of the five kinds" % flavour,
            lines_matching(out, r"^NAME\s+SECRETS\s+AGE$") and
            len(lines_matching(out, r"^NAME\s+CREATED AT$")) == 2 and
            len(lines_matching(out, r"^NAME\s+ROLE\s+AGE$")) == 2, out)
    t.check("[%s] get: service accounts with their secret count" % flavour,
            lines_matching(out, r"^serviceaccount/app-sa\s+0\s+\S+$"), out)
    t.check("[%s] get: role with CREATED AT" % flavour, lines_matching(
        out, r"^role\.rbac\.authorization\.k8s\.io/pod-reader\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"),
        out)
    t.check("[%s] get: rolebinding with ROLE Role/pod-reader" % flavour, lines_matching(
        out, r"^rolebinding\.rbac\.authorization\.k8s\.io/read-pods\s+Role/pod-reader\s+\S+$"),
        out)
    t.check("[%s] get: clusterrole %s" % (flavour, cr), lines_matching(
        out, r"^clusterrole\.rbac\.authorization\.k8s\.io/%s\s+\d{4}-" % re.escape(cr)), out)
    t.check("[%s] get: clusterrolebinding with ROLE ClusterRole/%s" % (flavour, cr),
            lines_matching(out, r"^clusterrolebinding\.rbac\.authorization\.k8s\.io/%s\s+"
                           r"ClusterRole/%s\s+\S+$" % (re.escape(crb), re.escape(cr))), out)
    r = k_ok("kubectl get rolebinding -o wide", "get", "rolebinding", "read-pods", "-n", ns,
             "-o", "wide")
    t.check("[%s] rolebinding -o wide: USERS GROUPS SERVICEACCOUNTS" % flavour,
            lines_matching(r.stdout, r"^NAME\s+ROLE\s+AGE\s+USERS\s+GROUPS\s+SERVICEACCOUNTS$")
            and lines_matching(r.stdout, r"^read-pods\s+Role/pod-reader\s+\S+\s+jane, bob\s+"
                               r"%s/app-sa$" % ns), r.stdout)
    r = k_ok("kubectl get clusterrolebinding NAME -o wide", "get", "clusterrolebinding", crb,
             "-o", "wide")
    t.check("[%s] clusterrolebinding -o wide: the group and the service account" % flavour,
            lines_matching(r.stdout, r"^%s\s+ClusterRole/%s\s+\S+\s+viewers\s+%s/app-sa$" % (
                re.escape(crb), re.escape(cr), ns)), r.stdout)
    r = k_ok("kubectl get clusterrole NAME -o json", "get", "clusterrole", cr, "-o", "json")
    if r.returncode == 0:
        obj = json.loads(r.stdout)
        t.check("[%s] clusterrole: name with ':' and the non-resource rule" % flavour,
                obj["metadata"]["name"] == cr and
                obj["rules"][1] == {"nonResourceURLs": ["/healthz", "/metrics"],
                                    "verbs": ["get"]}, obj)
    r = k_ok("kubectl describe rolebinding", "describe", "rolebinding", "read-pods", "-n", ns)
    t.check("[%s] describe rolebinding: the role and the subjects" % flavour,
            re.search(r"Kind:\s+Role", r.stdout) and re.search(r"Name:\s+pod-reader", r.stdout)
            and re.search(r"ServiceAccount\s+app-sa\s+%s" % ns, r.stdout) and
            re.search(r"User\s+jane", r.stdout), r.stdout)
    r = k_ok("kubectl describe role", "describe", "role", "pod-reader", "-n", ns)
    t.check("[%s] describe role: the rule" % flavour,
            re.search(r"pods\s+\[\]\s+\[\]\s+\[get list watch\]", r.stdout), r.stdout)

    # ---- kubectl create (typed clients; the machine's kubectl sends protobuf).
    verbose = ["-v=8"] if flavour == "current" else []

    def create(desc, *args):
        r = k_ok(desc, "create", "-n", ns, *(list(args) + verbose))
        if flavour == "current" and r.returncode == 0:
            t.check("[%s] %s: sent as protobuf, 201 Created" % (flavour, desc),
                    "Content-Type: application/vnd.kubernetes.protobuf" in r.stderr and
                    "Response Status: 201 Created" in r.stderr, r.stderr[-1500:])
        return r

    create("kubectl create serviceaccount", "serviceaccount", "sa1")
    create("kubectl create role", "role", "r1", "--verb=get", "--resource=pods")
    create("kubectl create rolebinding", "rolebinding", "rb1", "--role=r1", "--user=jane",
           "--serviceaccount=%s:sa1" % ns)
    create("kubectl create clusterrole (':' name, non-resource URL)", "clusterrole",
           "skiff-test:%s:c1" % tag, "--verb=get", "--non-resource-url=/logs/*")
    create("kubectl create clusterrolebinding", "clusterrolebinding", "skiff-test:%s:cb1" % tag,
           "--clusterrole=skiff-test:%s:c1" % tag, "--group=ops")
    got = api.get(sa_path(ns, "sa1"))
    t.check("[%s] created ServiceAccount sa1 stored" % flavour, got.status == 200, got)
    got = api.get(RBAC + "/namespaces/%s/roles/r1" % ns)
    t.check("[%s] created Role r1: get pods in the core group" % flavour, got.status == 200 and
            got.json["rules"] == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            got)
    got = api.get(RBAC + "/namespaces/%s/rolebindings/rb1" % ns)
    t.check("[%s] created RoleBinding rb1: roleRef and subjects" % flavour, got.status == 200 and
            got.json["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                    "name": "r1"} and
            sorted((s["kind"], s["name"], s.get("namespace", "")) for s in got.json["subjects"])
            == [("ServiceAccount", "sa1", ns), ("User", "jane", "")], got)
    got = api.get(RBAC + "/clusterroles/skiff-test:%s:c1" % tag)
    t.check("[%s] created ClusterRole: non-resource rule" % flavour, got.status == 200 and
            got.json["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}], got)
    got = api.get(RBAC + "/clusterrolebindings/skiff-test%%3A%s%%3Acb1" % tag)
    t.check("[%s] created ClusterRoleBinding (read with %%3A in the URL)" % flavour,
            got.status == 200 and got.json["roleRef"]["name"] == "skiff-test:%s:c1" % tag and
            got.json["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                                      "name": "ops"}], got)

    # ---- refusals.
    r = kubectl("apply", "-f", write("ref.yaml", manifest(
        tag, ns, changed=True, role_ref_kind="ClusterRole", role_ref_name=cr)))
    t.check("[%s] apply changing a RoleBinding's roleRef -> cannot change roleRef" % flavour,
            r.returncode != 0 and "cannot change roleRef" in r.stderr and
            "read-pods" in r.stderr, r.stdout + r.stderr)
    r = kubectl("apply", "-f", "-", stdin="""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: no-verbs
  namespace: %s
rules:
- apiGroups: [""]
  resources: ["pods"]
""" % ns)
    t.check("[%s] apply of a rule without verbs -> refused at rules[0].verbs" % flavour,
            r.returncode != 0 and "rules[0].verbs: Required value" in r.stderr, r.stderr)
    r = kubectl("create", "-f", "-", stdin="""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: skiff-test:%s:bad
subjects:
- kind: ServiceAccount
  name: app-sa
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: %s
""" % (tag, cr))
    t.check("[%s] a ServiceAccount subject without namespace -> refused at "
            "subjects[0].namespace" % flavour,
            r.returncode != 0 and "subjects[0].namespace: Required value" in r.stderr, r.stderr)

    # ---- the serviceaccount controller: `default` in the new namespace, recreated when deleted.
    uid = ctrl_lib.wait_for("ServiceAccount %s/default" % ns, lambda: default_sa_uid(ns), 30)
    t.check("[%s] the new namespace got its default ServiceAccount" % flavour, uid)
    r = k_ok("kubectl get sa -n NS", "get", "sa", "-n", ns)
    t.check("[%s] get sa lists default, app-sa, sa1" % flavour,
            all(lines_matching(r.stdout, r"^%s\s+0\s+\S+$" % n)
                for n in ("default", "app-sa", "sa1")), r.stdout)
    if uid:
        k_ok("kubectl delete sa default", "delete", "sa", "default", "-n", ns)
        new = ctrl_lib.wait_for("ServiceAccount %s/default to come back" % ns,
                                lambda: (default_sa_uid(ns) or uid) != uid and
                                default_sa_uid(ns), 30)
        t.check("[%s] the deleted default ServiceAccount was recreated (new uid)" % flavour,
                new and new != uid, new)

    # ---- can-i still says yes to everything (stored, not enforced).
    r = kubectl("auth", "can-i", "delete", "clusterroles")
    t.check("[%s] auth can-i: yes (RBAC objects are not enforced)" % flavour,
            r.returncode == 0 and r.stdout.strip() == "yes", r.stdout + r.stderr)

    # ---- delete -f: ':' names too. skiff empties a namespace at once (Kubernetes does it in
    # the background), so the namespaced objects after it are already gone.
    r = kubectl("delete", "--ignore-not-found", "-f", changed)
    t.check("[%s] kubectl delete -f" % flavour, r.returncode == 0 and
            "clusterrole.rbac.authorization.k8s.io \"%s\" deleted" % cr in r.stdout and
            "clusterrolebinding.rbac.authorization.k8s.io \"%s\" deleted" % crb in r.stdout,
            r.stdout + r.stderr)
    for path in (RBAC + "/clusterroles/" + cr, RBAC + "/clusterrolebindings/" + crb):
        r = api.get(path)
        t.check("[%s] %s gone" % (flavour, path), r.status == 404, r)
    for name in ("skiff-test:%s:c1" % tag, "skiff-test:%s:cb1" % tag):
        kubectl("delete", "clusterrole" if name.endswith("c1") else "clusterrolebinding", name)


# ---- API-level checks (once).
r = api.get(RBAC)
res = {x["name"]: x for x in (r.json or {}).get("resources", [])} if r.status == 200 else {}
t.check("discovery: rbac.authorization.k8s.io/v1 lists the four kinds with their scope",
        {k: res.get(k, {}).get("namespaced") for k in
         ("roles", "rolebindings", "clusterroles", "clusterrolebindings")} ==
        {"roles": True, "rolebindings": True, "clusterroles": False,
         "clusterrolebindings": False}, r)
r = api.get("/api/v1")
sa_res = [x for x in (r.json or {}).get("resources", []) if x["name"] == "serviceaccounts"]
t.check("discovery: serviceaccounts in /api/v1 with short name sa",
        len(sa_res) == 1 and sa_res[0].get("shortNames") == ["sa"] and sa_res[0]["namespaced"],
        sa_res)
r = api.get("/apis")
t.check("discovery: /apis lists rbac.authorization.k8s.io",
        any(g["name"] == "rbac.authorization.k8s.io" for g in (r.json or {}).get("groups", [])), r)

ctrl_lib.create_namespace(api, t, "rbac-api")
r = api.post(RBAC + "/namespaces/rbac-api/roles", {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "bad"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]})
causes = ((r.json or {}).get("details") or {}).get("causes", [])
t.check("POST Role without verbs -> 422 Invalid, cause at rules[0].verbs",
        r.status == 422 and r.json.get("reason") == "Invalid" and
        [c.get("field") for c in causes] == ["rules[0].verbs"] and
        r.json.get("message") == 'Role.rbac.authorization.k8s.io "bad" is invalid: '
        'rules[0].verbs: Required value: verbs must contain at least one value', r)
r = api.post(RBAC + "/clusterrolebindings", {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
    "metadata": {"name": "system:bad"},
    "subjects": [{"kind": "ServiceAccount", "name": "x"}],
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}})
causes = ((r.json or {}).get("details") or {}).get("causes", [])
t.check("POST ClusterRoleBinding to a Role with a namespace-less SA subject -> 422 at "
        "roleRef.kind and subjects[0].namespace",
        r.status == 422 and sorted(c.get("field") for c in causes) ==
        ["roleRef.kind", "subjects[0].namespace"], r)
rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
      "metadata": {"name": "system:rb", "namespace": "rbac-api"},
      "roleRef": {"kind": "Role", "name": "a"}}
r = api.post(RBAC + "/namespaces/rbac-api/rolebindings", rb)
t.check("POST RoleBinding named system:rb (roleRef.apiGroup defaulted)", r.status == 201 and
        r.json["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io", r)
if r.status == 201:
    body = r.json
    body["roleRef"]["name"] = "b"
    r = api.put(RBAC + "/namespaces/rbac-api/rolebindings/system:rb", body)
    t.check("PUT RoleBinding with another roleRef -> 422 'cannot change roleRef'",
            r.status == 422 and r.json.get("message") ==
            'RoleBinding.rbac.authorization.k8s.io "system:rb" is invalid: roleRef: Invalid '
            'value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"b"}: '
            'cannot change roleRef', r)
    r = api.get(RBAC + "/namespaces/rbac-api/rolebindings?fieldSelector=metadata.name%3Dsystem%3Arb")
    t.check("list RoleBindings by fieldSelector metadata.name=system:rb",
            r.status == 200 and [i["metadata"]["name"] for i in r.json["items"]] == ["system:rb"],
            r)
r = api.post(RBAC + "/clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1",
                                      "kind": "ClusterRole", "metadata": {"name": "a/b"}})
t.check("a ClusterRole named a/b -> 422 metadata.name may not contain '/'",
        r.status == 422 and "metadata.name: Invalid value: \"a/b\": may not contain '/'" in
        r.json.get("message", ""), r)
uid = ctrl_lib.wait_for("ServiceAccount rbac-api/default", lambda: default_sa_uid("rbac-api"), 30)
t.check("a namespace created through the API gets its default ServiceAccount", uid)
r = api.get(sa_path("kube-system", "default"))
t.check("the bootstrap namespaces have theirs (kube-system/default)", r.status == 200 or
        ctrl_lib.wait_for("kube-system/default", lambda: default_sa_uid("kube-system"), 30), r)

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
