#!/usr/bin/env python3
"""Mutation fuzzing of the API server's write paths: valid objects of every kind are mutated
(fields removed, retyped, duplicated, set to odd values; bodies truncated) and sent as creates,
updates (also to /status and /scale) and merge, strategic-merge and JSON patches, over
loopback plain HTTP. Fixed seeds and a request count, so a failure replays; a time cap too.

Checks: the server never dies and never answers 5xx; skiff-controller-manager,
skiff-scheduler and (as root) skiff-netagent, running against it the whole time, act on whatever
the API accepted and never die either; the agent's nftables table still lists; afterwards every collection still lists (200, every stored object decodes),
a good object of each kind is still created and read back, and after a restart on the same data
dir every collection lists the same names."""
import copy
import http.client
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import ctrl_lib  # noqa: E402
import netlab  # noqa: E402

testlib.deadline(int(os.environ.get("SKIFF_FUZZ_DEADLINE", "600")))
t = testlib.Checks()
SEEDS = (11, 12)
COUNT = 4000      # requests per seed
TIME_CAP = 90     # seconds per seed (a slow machine sends fewer)
# By hand, more of it: SKIFF_FUZZ_SEEDS=1,2,3 (and a longer test deadline, SKIFF_FUZZ_DEADLINE=s).
if os.environ.get("SKIFF_FUZZ_SEEDS"):
    SEEDS = tuple(int(x) for x in os.environ["SKIFF_FUZZ_SEEDS"].split(","))

CM = testlib.need_bin("skiff-controller-manager")
SCHED = testlib.need_bin("skiff-scheduler")
AGENT = testlib.bin_path("skiff-netagent")
NS = "skiff-fuzz-%d" % os.getpid()
NODE_IP = "10.250.78.1"
# As root, everything runs inside a network namespace of this test's own (a dummy eth0, no
# route out), so skiff-netagent can program Services, routes and its DNS link there.
with_agent = (os.geteuid() == 0 and os.access(AGENT, os.X_OK) and
              netlab.sh(["which", "nft"], check=False).returncode == 0)
if with_agent:
    netlab.teardown([], [NS])
    netlab.sh(["ip", "netns", "add", NS])
    try:
        # eth0 is one end of a veth pair whose other end stays in the namespace too (some
        # kernels have no dummy links).
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"],
                    ["addr", "add", NODE_IP + "/24", "dev", "eth0"],
                    ["link", "set", "eth0-peer", "up"], ["link", "set", "eth0", "up"]):
            netlab.sh(["ip", "-n", NS] + cmd)
        netlab.setns("/run/netns/" + NS)
    except Exception:
        netlab.teardown([], [NS])
        raise
else:
    # A skipped part says so as loudly as testlib.skip does, not as a log line.
    print("SKIPPED: skiff-netagent under fuzzed objects (needs root, nft and the binary): "
          "that part", flush=True)
srv = testlib.Server(extra=["--anonymous"], insecure=True).start()
# The objects the API accepts go on to the controllers: they must not crash on them either.
daemons = [ctrl_lib.controller_manager(CM, srv),
           ctrl_lib.Daemon(SCHED, srv, "scheduler.log", ["--leader-elect=false", "--port", "0"],
                           ident="scheduler")]
rng = random.Random()


def req(method, path, body=None, ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", srv.insecure_port, timeout=30)
    try:
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        c.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


ctr = {"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 1"],
       "ports": [{"containerPort": 80, "name": "http"}],
       "env": [{"name": "A", "value": "b"}, {"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
       "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "50m"}},
       "volumeMounts": [{"name": "v", "mountPath": "/data"}],
       "livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
       "securityContext": {"runAsUser": 1000}}
podspec = {"containers": [ctr], "volumes": [{"name": "v", "emptyDir": {}}],
           "nodeSelector": {"a": "b"}, "tolerations": [{"key": "k", "operator": "Exists"}],
           "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
               "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}]}}}}
tmpl = {"metadata": {"labels": {"app": "x"}}, "spec": podspec}
sel = {"matchLabels": {"app": "x"}}
T = {
    "/api/v1/namespaces/default/pods": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": podspec},
    "/api/v1/namespaces/default/services": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": "http", "name": "h"}], "type": "NodePort", "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP"}},
    "/api/v1/namespaces/default/configmaps": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}, "binaryData": {"x": "AAAA"}},
    "/api/v1/namespaces/default/secrets": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "type": "Opaque", "data": {"a": "YmI="}, "stringData": {"c": "d"}},
    "/api/v1/namespaces/default/endpoints": {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s"}, "subsets": [{"addresses": [{"ip": "10.0.0.1", "hostname": "h"}], "ports": [{"port": 80, "name": "h"}]}]},
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices": {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s-x", "labels": {"kubernetes.io/service-name": "s", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.2"], "conditions": {"ready": True}, "nodeName": "n", "targetRef": {"kind": "Pod", "name": "p"}}], "ports": [{"name": "h", "port": 80, "protocol": "TCP"}]},
    "/api/v1/namespaces/default/persistentvolumeclaims": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    "/api/v1/persistentvolumes": {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}}},
    "/api/v1/nodes": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.0.0/24", "taints": [{"key": "a", "effect": "NoSchedule"}]}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}], "capacity": {"cpu": "2"}}},
    "/api/v1/namespaces": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    "/apis/apps/v1/namespaces/default/deployments": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2, "selector": sel, "template": tmpl, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}}},
    "/apis/apps/v1/namespaces/default/statefulsets": {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "st"}, "spec": {"replicas": 2, "serviceName": "s", "selector": sel, "template": tmpl, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}},
    "/apis/apps/v1/namespaces/default/daemonsets": {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"selector": sel, "template": tmpl}},
    "/apis/apps/v1/namespaces/default/replicasets": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"}, "spec": {"replicas": 1, "selector": sel, "template": tmpl}},
    "/apis/batch/v1/namespaces/default/jobs": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"completions": 3, "parallelism": 2, "completionMode": "Indexed", "template": {"spec": dict(podspec, restartPolicy="Never")}}},
    "/apis/batch/v1/namespaces/default/cronjobs": {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": "@every 1m", "timeZone": "Europe/Berlin", "jobTemplate": {"spec": {"template": {"spec": dict(podspec, restartPolicy="Never")}}}}},
    "/apis/coordination.k8s.io/v1/namespaces/default/leases": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}},
    "/api/v1/namespaces/default/events": {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": "m", "type": "Normal", "count": 1},
    "/apis/storage.k8s.io/v1/storageclasses": {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sc"}, "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"},
    "/apis/scheduling.k8s.io/v1/priorityclasses": {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "pc"}, "value": 100, "globalDefault": False, "description": "d", "preemptionPolicy": "Never"},
    "/apis/policy/v1/namespaces/default/poddisruptionbudgets": {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"}, "spec": {"minAvailable": "50%", "selector": sel, "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    "/api/v1/namespaces/default/serviceaccounts": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}, "secrets": [{"name": "s"}], "imagePullSecrets": [{"name": "r"}], "automountServiceAccountToken": False},
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"]}]},
    "/apis/rbac.authorization.k8s.io/v1/clusterroles": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:cr"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}], "aggregationRule": {"clusterRoleSelectors": [sel]}},
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "User", "name": "u"}], "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}},
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "system:crb"}, "subjects": [{"kind": "Group", "name": "g"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}], "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:cr"}},
}

VALUES = [None, True, False, 0, -1, 1, 2**31, 2**63, -2**63, 1e308, 0.5, "", "x", "-", "a" * 300,
          "1Gi", "100m", "25%", "\u00e9\u4e2d", "\x00", "None", "10.0.0.1", "::1", "a/b", [], [1],
          ["x"], [None], {}, {"a": None}, {"a": {"b": []}}, "2026-01-01T00:00:00Z", "*/5 * * * *"]


def paths(o, prefix=()):
    yield prefix
    if isinstance(o, dict):
        for k, v in o.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from paths(v, prefix + (i,))


def setp(o, p, v):
    if not p:
        return v
    cur = o
    for k in p[:-1]:
        cur = cur[k]
    if v is Ellipsis:
        del cur[p[-1]]
    else:
        cur[p[-1]] = v
    return o


# SKIFF_FUZZ_TYPED=1 (by hand): mutations keep each value's JSON type, so most objects decode
# and the fuzzing reaches defaulting, validation, admission and the controllers behind them.
TYPED = os.environ.get("SKIFF_FUZZ_TYPED") == "1"
TYPED_VALUES = {
    str: ["", "x", "-", "a" * 300, "A", "x" * 64, "\u00e9", "1Gi", "100m", "0", "-1", "25%",
          "1e3", "10.0.0.1", "10.96.0.1", "::1", "a/b", "a.b/c", "*/5 * * * *", "@hourly",
          "2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "None",
          "Always", "TCP", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "In",
          "NotIn", "Exists", "default", "kube-system", "9999999999999"],
    int: [0, -1, 1, 2, 65535, 65536, 30000, 32768, 2**31 - 1, 2**31, 2**63 - 1, -2**63],
    float: [0.0, -1.5, 1e308, 0.5],
}


def typed_value(cur):
    """A value of cur's JSON type (None when no such value is useful)."""
    if isinstance(cur, bool):
        return not cur
    for t in (int, float, str):
        if isinstance(cur, t):
            return rng.choice(TYPED_VALUES[t])
    if isinstance(cur, list):
        return [] if not cur or rng.random() < 0.3 else cur + [copy.deepcopy(rng.choice(cur))]
    if isinstance(cur, dict):
        d = copy.deepcopy(cur)
        if d and rng.random() < 0.5:
            del d[rng.choice(list(d))]
        else:
            d[rng.choice(["extra", "a", "x-y"])] = rng.choice(TYPED_VALUES[str])
        return d
    return None


def mutate(obj):
    if TYPED and rng.random() < 0.9:
        o = copy.deepcopy(obj)
        for _ in range(rng.randint(1, 3)):
            p = rng.choice([p for p in paths(o) if p and p[0] not in ("apiVersion", "kind")] or [()])
            if not p:
                break
            cur = o
            for k in p:
                cur = cur[k]
            v = typed_value(cur)
            if v is not None:
                o = setp(o, p, v)
        return o
    o = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 4)):
        ps = list(paths(o))
        p = rng.choice(ps)
        r = rng.random()
        if r < 0.15 and p:
            o = setp(o, p, Ellipsis)
        elif r < 0.25 and p:
            cur = o
            for k in p:
                cur = cur[k]
            if isinstance(cur, list) and cur:
                cur.append(copy.deepcopy(cur[0]))
            elif isinstance(cur, dict):
                # A copy: VALUES' own lists and dicts must never end up inside each other (a
                # later mutation reaching into a shared one made them cyclic, seed 7).
                cur[rng.choice(["extra", "name", "x-y", "$patch", "$retainKeys", "metadata"])] = \
                    copy.deepcopy(rng.choice(VALUES))
        else:
            o = setp(o, p, copy.deepcopy(rng.choice(VALUES)))
    return o



def fuzz(seed):
    rng.seed(seed)
    codes, bad = {}, {}
    t_end = time.time() + TIME_CAP
    n = 0
    while n < COUNT and time.time() < t_end:
        n += 1
        path = rng.choice(list(T))
        base = T[path]
        kind = rng.random()
        try:
            if kind < 0.45:
                st, body = req("POST", path, mutate(base))
            elif kind < 0.6:
                txt = json.dumps(base)
                cut = rng.randrange(len(txt))
                st, body = req("POST", path, txt[:cut] + rng.choice(
                    ["", "}", "]", "\"", "\\u12", "null", "{\"a\":1}"]))
            else:
                good = copy.deepcopy(base)
                name = "f%d" % rng.randrange(5)
                good["metadata"]["name"] = name
                req("POST", path, good)
                item = path + "/" + name + rng.choice(["", "", "", "/status", "/scale"])
                r = rng.random()
                patch = {"metadata": {"labels": {"a": "b"}}, "spec": good.get("spec", {})}
                if r < 0.3:
                    m = mutate(good)
                    if isinstance(m, dict) and isinstance(m.get("metadata"), dict):
                        m["metadata"]["name"] = name
                    st, body = req("PUT", item, m)
                elif r < 0.55:
                    st, body = req("PATCH", item, mutate(patch), "application/merge-patch+json")
                elif r < 0.8:
                    st, body = req("PATCH", item, mutate(patch),
                                   "application/strategic-merge-patch+json")
                else:
                    ops = [{"op": rng.choice(["add", "remove", "replace", "move", "copy", "test",
                                              "bogus"]),
                            "path": "/" + "/".join(str(x) for x in rng.choice(list(paths(good)))),
                            "from": "/" + "/".join(str(x) for x in rng.choice(list(paths(good)))),
                            "value": copy.deepcopy(rng.choice(VALUES))}
                           for _ in range(rng.randint(1, 3))]
                    st, body = req("PATCH", item, mutate(ops) if rng.random() < 0.3 else ops,
                                   "application/json-patch+json")
        except (OSError, http.client.HTTPException) as e:
            st, body = -1, str(e).encode()
        codes[st] = codes.get(st, 0) + 1
        if st >= 500 or st < 0:
            bad.setdefault((st, path), body[:300])
        if srv.proc.poll() is not None:
            break
    return n, codes, bad


def listing():
    """name lists per collection, or an error string."""
    out = {}
    for path in T:
        st, body = req("GET", path)
        try:
            items = json.loads(body)["items"] if st == 200 else None
        except (ValueError, KeyError, TypeError):
            items = None
        out[path] = sorted(i["metadata"]["name"] for i in items) if items is not None else \
            "%s %s" % (st, body[:200])
    return out


try:
    if with_agent:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fuzz-node"},
                "spec": {"podCIDR": "10.244.77.0/24", "podCIDRs": ["10.244.77.0/24"]},
                "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}}
        t.check("create the agent's Node", req("POST", "/api/v1/nodes", node)[0] == 201)
        daemons.append(ctrl_lib.Daemon(AGENT, srv, "netagent.log", [
            "--node-name", "fuzz-node", "--backend", "host-gw", "--node-ip", NODE_IP,
            "--iface", "eth0", "--cluster-cidr", "10.244.0.0/16", "--service-cidr",
            "10.96.0.0/16", "--dns-upstream", "127.0.0.1:9"], ident="netagent"))
    for seed in SEEDS:
        n, codes, bad = fuzz(seed)
        testlib.log("seed %d: %d requests, answers %s" % (seed, n, sorted(codes.items())))
        t.check("seed %d: the server is alive after %d mutated requests" % (seed, n),
                srv.proc.poll() is None, srv.proc.returncode)
        t.check("seed %d: no 5xx answer and no dropped connection" % seed, not bad,
                "\n".join("%s on %s: %r" % (k[0], k[1], v) for k, v in list(bad.items())[:10]))
        if srv.proc.poll() is not None:
            break
    time.sleep(2)  # the controllers' last reconciles of what the fuzzing left
    for d in daemons:
        t.check("%s is alive after reconciling what the fuzzing stored" % d.ident, d.alive(),
                d.tail(30))
    if with_agent:
        r = netlab.sh(["nft", "list", "table", "ip", "skiff"], check=False)
        t.check("the agent's nftables table lists (%d lines)" % r.stdout.count("\n"),
                r.returncode == 0 and "chain" in r.stdout, r.stderr)
    for d in daemons:
        d.stop()  # from here on the store changes only by this test's writes
    before = listing()
    broken = {p: v for p, v in before.items() if isinstance(v, str)}
    t.check("every collection still lists (every stored object decodes)", not broken, broken)
    ok = []
    for i, (path, obj) in enumerate(T.items()):
        # One name per kind: the endpoints controller makes Endpoints named after a Service.
        good = copy.deepcopy(obj)
        good["metadata"]["name"] = "after-fuzz-%d" % i
        st, body = req("POST", path, good)
        st2, _ = req("GET", path + "/after-fuzz-%d" % i)
        ok.append((path, st, st2))
    t.check("a good object of each kind is still created (201) and read back (200)",
            all(st == 201 and st2 == 200 for _, st, st2 in ok),
            [x for x in ok if x[1] != 201 or x[2] != 200])
    before = listing()
    srv.stop()
    srv.start()
    after = listing()
    t.check("after a restart on the same data dir every collection lists the same names",
            after == before, {p: (before[p], after[p]) for p in T if before[p] != after[p]})
except Exception as e:  # noqa: BLE001 - report, never pass silently
    t.check("unexpected %s: %s" % (type(e).__name__, e), False)
finally:
    if t.failed:
        srv.dump_log(40)
        for d in daemons:
            d.dump_log(30)
    if with_agent:
        srv.stop()
        for d in daemons:
            d.stop()
        netlab.teardown([], [NS])
t.finish()
