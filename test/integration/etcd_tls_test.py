#!/usr/bin/env python3
"""skiff-apiserver on an etcd that speaks only HTTPS and requires client certificates
(`--etcd-servers https://... --etcd-cafile --etcd-certfile --etcd-keyfile`, as kube-apiserver
is usually run): it serves, writes and watches through it; without the CA, without a client
certificate, with a certificate of another CA, or with TLS files for an http:// endpoint it
exits at start with a message that says which. Certificates are made here with the openssl
CLI. Exit 77 when etcd cannot be had."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.deadline(300)
exe = testlib.need_bin("skiff-apiserver")
if "--etcd-cafile" not in testlib.server_flags():
    testlib.skip("%s has no --etcd-cafile flag" % exe)
etcd = testlib.Etcd(tls=True).start()
t = testlib.Checks()

# --- the happy path: objects go through TLS, and come back on a watch ---------------------------
srv = testlib.Server(etcd.apiserver_flags()).start()
c = srv.client()
r = c.post("/api/v1/namespaces/default/configmaps",
           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "over-tls"},
            "data": {"k": "v"}})
t.eq("create a ConfigMap through etcd over TLS", r.status, 201)
rv = r.json["metadata"]["resourceVersion"] if r.json else "0"
r = c.get("/api/v1/namespaces/default/configmaps/over-tls")
t.check("get returns it with its data", r.status == 200 and r.json["data"] == {"k": "v"}, r)
w = srv.client(timeout=20)
w.conn = None
w._connect()
w.conn.request("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + rv,
               headers={"Authorization": "Bearer " + srv.token})
resp = w.conn.getresponse()
r = c.put("/api/v1/namespaces/default/configmaps/over-tls",
          {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "over-tls", "resourceVersion": rv}, "data": {"k": "w"}})
t.eq("update it", r.status, 200)
line = resp.readline()
t.check("a watch from the create's revision sees the update (MODIFIED)",
        b'"MODIFIED"' in line and b'"w"' in line, line[:300])
w.close()
r = c.get("/readyz")
t.check("/readyz is ok while etcd answers", r.status == 200 and r.body == b"ok", r)
srv.stop()


# --- wrong set-ups fail at start, saying why ------------------------------------------------------
def start_fails(desc, flags, want):
    data = testlib.tmpdir()
    args = [exe, "--listen", "127.0.0.1:%d" % testlib.free_port(), "--data-dir", data] + flags
    start = time.time()
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        t.check(desc + ": exits at start", False, "still running after 60 s")
        return
    out = (p.stdout + p.stderr).strip()
    t.check("%s: exits non-zero within %.0f s, saying %r" % (desc, time.time() - start, want),
            p.returncode != 0 and want in out, "exit %d: %s" % (p.returncode, out[-400:]))


other_ca = testlib.make_certs(testlib.tmpdir(), "other-ca")
stranger = testlib.make_certs(os.path.dirname(other_ca[0]), "stranger", [], other_ca)
base = ["--store", "etcd", "--etcd-servers", etcd.url]
start_fails("no --etcd-cafile (the system's CAs do not know etcd's)",
            base + ["--etcd-certfile", etcd.client[0], "--etcd-keyfile", etcd.client[1]],
            "certificate verify failed")
start_fails("no client certificate", base + ["--etcd-cafile", etcd.ca[0]], "certificate")
start_fails("a client certificate of another CA",
            base + ["--etcd-cafile", etcd.ca[0], "--etcd-certfile", stranger[0],
                    "--etcd-keyfile", stranger[1]], "certificate")
start_fails("--etcd-cafile that is not etcd's CA",
            base + ["--etcd-cafile", other_ca[0], "--etcd-certfile", etcd.client[0],
                    "--etcd-keyfile", etcd.client[1]], "certificate verify failed")
start_fails("a key that does not match the certificate",
            base + ["--etcd-cafile", etcd.ca[0], "--etcd-certfile", etcd.client[0],
                    "--etcd-keyfile", stranger[1]], "--etcd-keyfile")
start_fails("TLS files for an http:// endpoint",
            ["--store", "etcd", "--etcd-servers", etcd.url.replace("https", "http"),
             "--etcd-cafile", etcd.ca[0]], "need https:// endpoints")
sys.exit(t.finish())
