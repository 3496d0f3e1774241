"""A real pod on a real kernel: two containers share the pod's network, IPC and UTS namespaces
(same IP, hostname, POSIX message queues, reach each other on localhost) but not PID or mount
namespaces; each container's PID 1 is its own command; an emptyDir is shared; configMap and
secret files appear with their modes; init containers run first and in order; after the pod is
deleted no process, mount, cgroup, namespace file, veth or IP lease is left.
Needs root (skips with 77 otherwise)."""
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402


def http_get(ip, port=8080):
    # busybox-static's wget segfaults (Debian 1.35, even on the host); nc speaks HTTP/1.0 fine
    return ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s %d" % (ip, port)]


def body(t):
    with t.cluster() as c:
        veths_before = c.veths()
        c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                  "data": {"k1": "value-one", "k2": "value-two"}})
        c.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                  "type": "Opaque",
                  "data": {"password": base64.b64encode(b"s3cret").decode()}})
        mounts = [{"name": "shared", "mountPath": "/shared"},
                  {"name": "cfg", "mountPath": "/cfg"},
                  {"name": "cfgall", "mountPath": "/cfgall"},
                  {"name": "sec", "mountPath": "/sec"}]
        a = kl.ctr("a", ["sh", "-c",
                         "echo main >> /shared/order; echo only-a > /tmp/a-only; "
                         "echo from-a > /shared/from-a; mkdir -p /www; "
                         "echo hello-from-a > /www/index.html; exec httpd -f -p 8080 -h /www"],
                   volumeMounts=mounts)
        b = kl.ctr("b", ["sh", "-c", "echo only-b > /tmp/b-only; exec sleep 3600"],
                   volumeMounts=mounts)
        inits = [kl.ctr("init1", ["sh", "-c", "echo init1 >> /shared/order"],
                        volumeMounts=[mounts[0]]),
                 kl.ctr("init2", ["sh", "-c", "grep -q init1 /shared/order && "
                                  "echo init2 >> /shared/order"], volumeMounts=[mounts[0]])]
        p = kl.pod("duo", [a, b], initContainers=inits, volumes=[
            {"name": "shared", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o644,
                                          "items": [{"key": "k1", "path": "one.txt",
                                                     "mode": 0o400}]}},
            {"name": "cfgall", "configMap": {"name": "cfg", "defaultMode": 0o640}},
            {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o600}},
        ])
        c.create_pod(p)
        p = c.wait_running("duo", timeout=90)
        uid = p["metadata"]["uid"]
        st = p["status"]
        t.check("status.podIP is in the pod CIDR", (st.get("podIP") or "").startswith("10.244.0."),
                st.get("podIP"))
        t.eq("status.hostIP", st.get("hostIP"), "127.0.0.1")
        for ct in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            t.eq("condition %s True" % ct, kl.condition(p, ct), "True")
        for n in ("init1", "init2"):
            cs = kl.cstatus(p, n, init=True)
            kind, reason, _ = kl.state_reason(cs)
            t.check("init container %s terminated Completed exit 0" % n,
                    kind == "terminated" and reason == "Completed"
                    and cs["state"]["terminated"].get("exitCode") == 0, cs)
        for n in ("a", "b"):
            cs = kl.cstatus(p, n)
            t.check("container %s: containerID skiff://<64 hex>, imageID sha256:, ready" % n,
                    cs.get("containerID", "").startswith("skiff://")
                    and len(kl.container_id(cs)) == 64
                    and cs.get("imageID", "").startswith("sha256:") and cs.get("ready") is True
                    and cs.get("restartCount") == 0 and cs.get("started") is True, cs)

        pa, pb = c.container_pid(p, "a"), c.container_pid(p, "b")
        t.check("both containers have live PIDs (state.json)", kl.pid_alive(pa) and kl.pid_alive(pb),
                (pa, pb))

        def ns(pid, kind):
            try:
                return os.readlink("/proc/%d/ns/%s" % (pid, kind))
            except OSError as e:
                return str(e)
        for kind in ("net", "ipc", "uts"):
            t.check("containers share the %s namespace (host view)" % kind,
                    ns(pa, kind) == ns(pb, kind), (ns(pa, kind), ns(pb, kind)))
        for kind in ("mnt", "pid"):
            t.check("containers have their own %s namespace" % kind,
                    ns(pa, kind) != ns(pb, kind), (ns(pa, kind), ns(pb, kind)))
        t.check("no container is in the host's net/pid/mnt namespaces",
                all(ns(pa, k) != ns(os.getpid(), k) for k in ("pid", "mnt"))
                and ns(pa, "net") != ns(1, "net"))
        # the pod's net namespace is the pinned one
        sb = os.path.join(c.run_dir, "pods", uid)
        t.check("sandbox pins ns/net, ns/ipc, ns/uts under the run dir",
                all(os.path.exists(os.path.join(sb, "ns", k)) for k in ("net", "ipc", "uts")),
                os.listdir(sb) if os.path.isdir(sb) else "no " + sb)

        ex = c.exec_in
        ra = ex(p, "a", ["hostname"])
        rb = ex(p, "b", ["hostname"])
        t.check("hostname is the pod name in both containers",
                ra.stdout.strip() == "duo" and rb.stdout.strip() == "duo", (ra, rb))
        ipa = ex(p, "a", ["sh", "-c", "ip -4 -o addr show eth0"]).stdout
        ipb = ex(p, "b", ["sh", "-c", "ip -4 -o addr show eth0"]).stdout
        t.check("both containers see the pod IP on eth0",
                st.get("podIP", "?") + "/" in ipa and ipa == ipb, (ipa, ipb))
        r = ex(p, "b", http_get("127.0.0.1"))
        t.check("b reaches a's httpd on localhost:8080", r.stdout.rstrip().endswith(
            "\nhello-from-a"), r)
        r = ex(p, "b", ["cat", "/etc/hosts"])
        t.check("/etc/hosts names the pod with its IP",
                any(l.split()[:2] == [st.get("podIP"), "duo"] or
                    (l.split() and l.split()[0] == st.get("podIP") and "duo" in l.split())
                    for l in r.stdout.splitlines()), r.stdout)

        # POSIX message queues: one IPC namespace, so a queue made in a shows up in b
        r = ex(p, "a", ["sh", "-c", "grep ' /dev/mqueue ' /proc/mounts && touch /dev/mqueue/e2eq"
                        " && ls /dev/mqueue"])
        t.check("a has /dev/mqueue mounted and creates queue e2eq", r.returncode == 0
                and "mqueue" in r.stdout and "e2eq" in r.stdout, r)
        r = ex(p, "b", ["sh", "-c", "cat /dev/mqueue/e2eq"])
        t.check("b sees a's POSIX message queue (QSIZE line)", "QSIZE" in r.stdout, r)

        # processes and files are private
        r = ex(p, "b", ["ps", "-o", "pid,args"])
        t.check("b's ps shows no httpd of a", r.returncode == 0 and "httpd" not in r.stdout
                and "sleep 3600" in r.stdout, r.stdout)
        r = ex(p, "a", ["ps", "-o", "pid,args"])
        t.check("a's ps shows no sleep of b", r.returncode == 0 and "sleep" not in r.stdout
                and "httpd" in r.stdout, r.stdout)
        r1 = ex(p, "a", ["cat", "/proc/1/cmdline"])
        r2 = ex(p, "b", ["cat", "/proc/1/cmdline"])
        t.check("PID 1 of a is httpd, PID 1 of b is sleep (each its own command)",
                r1.stdout.startswith("httpd") and r2.stdout.startswith("sleep"),
                (r1.stdout, r2.stdout))
        r = ex(p, "b", ["sh", "-c", "test -e /tmp/a-only && echo SEEN || echo absent; cat /tmp/b-only"])
        t.check("b does not see a's /tmp file (own rootfs)", r.stdout.split() == ["absent", "only-b"],
                r)

        # volumes
        r = ex(p, "b", ["cat", "/shared/from-a", "/shared/order"])
        t.eq("emptyDir shared (a's file in b) and init order init1, init2, main",
             r.stdout.split(), ["from-a", "init1", "init2", "main"])
        r = ex(p, "b", ["sh", "-c", "cat /cfg/one.txt; echo; stat -L -c %a /cfg/one.txt; "
                        "ls /cfg"])
        t.eq("configMap item k1 -> /cfg/one.txt, mode 0400, only that key",
             r.stdout.split(), ["value-one", "400", "one.txt"])
        r = ex(p, "b", ["sh", "-c", "cat /cfgall/k2; echo; stat -L -c %a /cfgall/k1 /cfgall/k2"])
        t.eq("configMap all keys with defaultMode 0640", r.stdout.split(),
             ["value-two", "640", "640"])
        r = ex(p, "b", ["sh", "-c", "cat /sec/password; echo; stat -L -c %a /sec/password"])
        t.eq("secret file decoded with defaultMode 0600", r.stdout.split(), ["s3cret", "600"])
        r = ex(p, "b", ["sh", "-c", "grep ' /sec ' /proc/mounts"])
        t.check("secret volume is on tmpfs", "tmpfs" in r.stdout, r.stdout)
        r = ex(p, "b", ["sh", "-c", "grep ' /sys ' /proc/mounts"])
        t.check("/sys is read-only", " ro" in r.stdout and "ro," in r.stdout + ",", r.stdout)

        # isolation from a second pod: other IP, no queue
        c.create_pod(kl.sleeper("other"))
        o = c.wait_running("other", timeout=60)
        t.check("a second pod gets another IP",
                o["status"].get("podIP") not in (None, "", st.get("podIP")), o["status"])
        r = ex(o, "main", ["ls", "/dev/mqueue"])
        t.check("the other pod does not see e2eq", r.returncode == 0 and "e2eq" not in r.stdout, r)
        r = ex(o, "main", http_get(st["podIP"]))
        t.check("pods reach each other over the bridge", r.stdout.rstrip().endswith(
            "\nhello-from-a"), r)
        t.check("one veth per pod on the node side", len(c.veths()) == len(veths_before) + 2,
                c.veths())

        # delete: nothing left
        pids = [pa, pb]
        for n in ("a", "b"):
            cid = kl.container_id(kl.cstatus(p, n))
            s = c.container_state(cid) or {}
            if s.get("shim_pid"):
                pids.append(int(s["shim_pid"]))
        r = c.delete_pod("duo")
        t.check("DELETE accepted", r.status == 200, r)
        gone = c.wait_gone("duo", timeout=60)
        t.check("pod object removed by the kubelet within 60 s", gone,
                kl.json.dumps((c.get_pod("duo") or {}).get("metadata"))[:800])
        left = c.wait_for(lambda: not c.leftovers(p, pids), 20)
        t.check("after delete: no process, mount, cgroup, sandbox or container dir left", left,
                "\n".join(c.leftovers(p, pids)))
        t.check("after delete: only the other pod's veth is left",
                len(c.veths()) == len(veths_before) + 1, c.veths())
        t.check("after delete: the pod IP lease is released",
                st.get("podIP") not in c.ipam_leases(), c.ipam_leases())
        t.check("the other pod still runs", kl.phase(c.get_pod("other")) == "Running")


if __name__ == "__main__":
    t = kl.Test("kubelet_pod", limit=600)
    t.run(body)
