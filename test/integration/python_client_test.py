#!/usr/bin/env python3
"""The official Kubernetes Python client (Debian python3-kubernetes) against skiff-apiserver,
configured only from the admin kubeconfig the server wrote (HTTPS, its CA, its token):
create / read / list (label selector) / patch (strategic merge) / replace / delete of
ConfigMaps, Pods, Services and Leases; ApiException codes for 404, 409 AlreadyExists and
409 Conflict; Watch.stream with timeout_seconds (synthetic ADDED for existing objects, then
live ADDED/MODIFIED/DELETED) and a watch from a list's resourceVersion."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.ensure_modules("yaml", "kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

testlib.deadline(300)
t = testlib.Checks()
srv = testlib.Server().start()

api_client = config.new_client_from_config(config_file=srv.kubeconfig)
v1 = client.CoreV1Api(api_client)
coord = client.CoordinationV1Api(api_client)
NS = "py-ns"


def api_exc(fn, *a, **kw):
    """The ApiException fn raises, or None."""
    try:
        fn(*a, **kw)
    except ApiException as e:
        return e
    return None


# ---- namespaces
ns = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
t.eq("create_namespace returns the namespace", ns.metadata.name, NS)
names = [n.metadata.name for n in v1.list_namespace().items]
t.check("list_namespace has default, kube-system, kube-public and ours",
        all(n in names for n in ("default", "kube-system", "kube-public", NS)), names)

# ---- ConfigMap CRUD
body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="conf", labels={"app": "web"}),
                          data={"a": "1", "b": "2"})
made = v1.create_namespaced_config_map(NS, body)
t.check("create_namespaced_config_map: uid, creationTimestamp and resourceVersion set",
        bool(made.metadata.uid) and made.metadata.creation_timestamp is not None
        and made.metadata.resource_version.isdigit(), made.metadata)
t.eq("create fills the namespace from the URL", made.metadata.namespace, NS)
e = api_exc(v1.create_namespaced_config_map, NS, body)
t.check("second create raises ApiException 409 AlreadyExists",
        e is not None and e.status == 409 and "AlreadyExists" in (e.body or ""),
        e and (e.status, e.body))
got = v1.read_namespaced_config_map("conf", NS)
t.eq("read_namespaced_config_map returns the data", got.data, {"a": "1", "b": "2"})
v1.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="other", labels={"app": "db"}), data={"x": "y"}))
lst = v1.list_namespaced_config_map(NS, label_selector="app=web")
t.eq("list with label_selector app=web", [c.metadata.name for c in lst.items], ["conf"])
lst = v1.list_namespaced_config_map(NS, label_selector="app in (web,db)")
t.eq("list with a set-based label_selector",
     sorted(c.metadata.name for c in lst.items), ["conf", "other"])
lst = v1.list_namespaced_config_map(NS, field_selector="metadata.name=other")
t.eq("list with field_selector metadata.name=other", [c.metadata.name for c in lst.items],
     ["other"])
t.check("list carries a resourceVersion", (lst.metadata.resource_version or "").isdigit(),
        lst.metadata)

patched = v1.patch_namespaced_config_map("conf", NS, {"data": {"b": None, "c": "3"},
                                                      "metadata": {"labels": {"tier": "x"}}})
t.eq("patch (strategic merge) sets and deletes keys", patched.data, {"a": "1", "c": "3"})
t.eq("patch merges labels", patched.metadata.labels, {"app": "web", "tier": "x"})
t.check("patch bumps resourceVersion",
        int(patched.metadata.resource_version) > int(made.metadata.resource_version),
        (made.metadata.resource_version, patched.metadata.resource_version))

stale = v1.read_namespaced_config_map("conf", NS)
stale.metadata.resource_version = made.metadata.resource_version
stale.data = {"z": "9"}
e = api_exc(v1.replace_namespaced_config_map, "conf", NS, stale)
t.check("replace with a stale resourceVersion raises 409 Conflict",
        e is not None and e.status == 409 and "Conflict" in (e.body or ""),
        e and (e.status, e.body))
fresh = v1.read_namespaced_config_map("conf", NS)
fresh.data = {"z": "9"}
rep = v1.replace_namespaced_config_map("conf", NS, fresh)
t.eq("replace with the current resourceVersion", rep.data, {"z": "9"})

st = v1.delete_namespaced_config_map("conf", NS)
t.check("delete_namespaced_config_map succeeds", st is not None)
e = api_exc(v1.read_namespaced_config_map, "conf", NS)
t.check("read after delete raises 404", e is not None and e.status == 404,
        e and (e.status, e.body))
e = api_exc(v1.delete_namespaced_config_map, "conf", NS)
t.check("delete of a missing object raises 404", e is not None and e.status == 404,
        e and (e.status, e.body))

# ---- Pod, Service, Lease through their typed models
pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
    spec=client.V1PodSpec(containers=[client.V1Container(
        name="web", image="nginx:1.25", ports=[client.V1ContainerPort(container_port=80)])]))
p = v1.create_namespaced_pod(NS, pod)
t.eq("create_namespaced_pod: container port protocol defaulted",
     p.spec.containers[0].ports[0].protocol, "TCP")
p = v1.patch_namespaced_pod("web", NS, {"spec": {"containers": [
    {"name": "web", "image": "nginx:1.26"}]}})
t.eq("patch_namespaced_pod merges containers by name (image changed)",
     p.spec.containers[0].image, "nginx:1.26")
t.eq("... and keeps the container's ports", p.spec.containers[0].ports[0].container_port, 80)
pods = v1.list_namespaced_pod(NS)
t.eq("list_namespaced_pod", [x.metadata.name for x in pods.items], ["web"])
allp = v1.list_pod_for_all_namespaces(label_selector="app=web")
t.eq("list_pod_for_all_namespaces", [(x.metadata.namespace, x.metadata.name)
                                     for x in allp.items], [(NS, "web")])

svc = v1.create_namespaced_service(NS, client.V1Service(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1ServiceSpec(selector={"app": "web"},
                              ports=[client.V1ServicePort(port=80, target_port=8080)])))
t.eq("create_namespaced_service: port protocol defaulted", svc.spec.ports[0].protocol, "TCP")
t.eq("targetPort kept as an int (IntOrString)", svc.spec.ports[0].target_port, 8080)

lease = coord.create_namespaced_lease(NS, client.V1Lease(
    metadata=client.V1ObjectMeta(name="lock"),
    spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15)))
t.eq("create_namespaced_lease (coordination.k8s.io/v1)", lease.spec.holder_identity, "a")
lease = coord.patch_namespaced_lease("lock", NS, {"spec": {"holderIdentity": "b"}})
t.eq("patch_namespaced_lease", lease.spec.holder_identity, "b")
coord.delete_namespaced_lease("lock", NS)

# ---- Watch.stream with timeout_seconds: existing objects first (synthetic ADDED), then live.
events = []
started = threading.Event()


def watcher():
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=10):
        events.append((ev["type"], ev["object"].metadata.name,
                       dict(ev["object"].data or {})))
        started.set()


th = threading.Thread(target=watcher, daemon=True)
t0 = time.time()
th.start()
# The watch is open (past its snapshot) once its first event, the synthetic ADDED of 'other', has
# arrived: only writes made after that are surely live events. (A fixed sleep was not enough
# when the request took over a second on a busy machine.)
t.check("Watch.stream delivers its first event", started.wait(30), events)
v1.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="live"), data={"v": "1"}))
v1.patch_namespaced_config_map("live", NS, {"data": {"v": "2"}})
v1.delete_namespaced_config_map("live", NS)
th.join(30)
t.check("Watch.stream ends by itself after timeout_seconds", not th.is_alive(),
        "still running after %.0f s" % (time.time() - t0))
t.eq("Watch.stream events: synthetic ADDED for 'other', then ADDED/MODIFIED/DELETED",
     events, [("ADDED", "other", {"x": "y"}), ("ADDED", "live", {"v": "1"}),
              ("MODIFIED", "live", {"v": "2"}), ("DELETED", "live", {"v": "2"})])

# ---- watch from a list's resourceVersion: only later changes, no replay.
lst = v1.list_namespaced_config_map(NS)
from_rv = lst.metadata.resource_version
v1.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="after"), data={"k": "v"}))
got = []
for ev in watch.Watch().stream(v1.list_namespaced_config_map, NS, resource_version=from_rv,
                               timeout_seconds=3):
    got.append((ev["type"], ev["object"].metadata.name))
t.eq("Watch.stream from the list's resourceVersion sees only the later create", got,
     [("ADDED", "after")])

# ---- watch with a label selector: an object leaving the selector is DELETED for the watcher.
v1.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="sel", labels={"pick": "yes"})))
rv0 = v1.list_namespaced_config_map(NS).metadata.resource_version
v1.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"pick": "no"}}})
v1.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"pick": "yes"}}})
got = []
for ev in watch.Watch().stream(v1.list_namespaced_config_map, NS, resource_version=rv0,
                               label_selector="pick=yes", timeout_seconds=3):
    got.append((ev["type"], ev["object"].metadata.name))
t.eq("label-selected watch: leaving the selector is DELETED, re-entering is ADDED", got,
     [("DELETED", "sel"), ("ADDED", "sel")])

t.check("server still running", srv.alive())
t.finish()
