"""Bad input to the kubelet on a real kernel, each giving a clear reason in the pod status and
events while another pod on the same kubelet keeps running: a command that doesn't exist, an
image that doesn't exist (nothing listening: ErrImagePull then ImagePullBackOff), a missing
configMap, an invalid image tarball (import command and import folder), a registry that
answers garbage (HTTP with a garbage body, and bytes that are not HTTP at all). Every
"registry" here is a server this test runs on the loopback of its own network namespace.
Needs root (skips with 77 otherwise)."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

HTTP_GARBAGE = 5001  # answers every request 200 with a garbage body
RAW_GARBAGE = 5002   # answers every connection with bytes that are not HTTP
NOTHING = 5003       # nothing listens


def garbage_server(port, http, stop):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    srv.settimeout(0.5)
    served = 0
    while not stop.is_set() and served < 10000:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        served += 1
        try:
            conn.settimeout(2)
            try:
                conn.recv(65536)
            except OSError:
                pass
            body = b"\x00\xffthis is not json {{{{ \x89PNG garbage" * 20
            if http:
                head = ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest."
                        "v1+json\r\nDocker-Content-Digest: sha256:%s\r\nContent-Length: %d\r\n"
                        "Connection: close\r\n\r\n" % ("0" * 64, len(body))).encode()
                conn.sendall(head + body)
            else:
                conn.sendall(b"\x16\x03garbage-not-http\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            conn.close()
    srv.close()


def all_text(c, name):
    """Pod status (container states) + events, for message checks."""
    p = c.get_pod(name) or {}
    return json.dumps(p.get("status", {})) + "\n" + c.event_text(name)


def waiting_reasons(c, name, timeout, want):
    """Reasons seen in the container's waiting state within `timeout` (stops when all `want`
    were seen)."""
    seen = []
    end = time.time() + timeout
    n = 0
    while time.time() < end and n < 1000:
        n += 1
        p = c.get_pod(name)
        kind, reason, msg = kl.state_reason(kl.cstatus(p, "main"))
        if reason and (not seen or seen[-1] != reason):
            seen.append(reason)
        if all(w in seen for w in want):
            break
        time.sleep(0.3)
    return seen


def body(t):
    stop = threading.Event()
    args = []
    for port in (HTTP_GARBAGE, RAW_GARBAGE, NOTHING):
        args += ["--insecure-registry", "127.0.0.1:%d" % port]
    with t.cluster(kubelet_args=args) as c:
        for port, http in ((HTTP_GARBAGE, True), (RAW_GARBAGE, False)):
            th = threading.Thread(target=garbage_server, args=(port, http, stop), daemon=True)
            th.start()
        try:
            run(t, c)
        finally:
            stop.set()


def run(t, c):
    c.create_pod(kl.sleeper("healthy"))
    h = c.wait_running("healthy")
    h_pid = c.container_pid(h, "main")

    # ---- a command that doesn't exist
    c.create_pod(kl.pod("nocmd", [kl.ctr("main", ["/no/such/binary", "x"])]))
    ok, p = c.wait_pod("nocmd", lambda p: "/no/such/binary" in json.dumps(p.get("status", {})),
                       60)
    cs = kl.cstatus(p, "main")
    text = all_text(c, "nocmd")
    t.check("missing command: status names the missing binary", ok, cs)
    last = (cs.get("lastState") or {}).get("terminated") or {}
    kind, reason, msg = kl.state_reason(cs)
    t.check("missing command: a Kubernetes reason (StartError / RunContainerError / "
            "CrashLoopBackOff / ContainerCannotRun)",
            {reason, last.get("reason")} & {"StartError", "RunContainerError", "CrashLoopBackOff",
                                            "ContainerCannotRun"}, cs)
    # The kubelet posts Events from a background thread: they may trail the status.
    c.wait_for(lambda: "Failed" in c.event_text("nocmd") and
               "/no/such/binary" in c.event_text("nocmd"), 30)
    t.check("missing command: event says why (Failed ... /no/such/binary)",
            "Failed" in c.event_text("nocmd") and "/no/such/binary" in c.event_text("nocmd"),
            c.event_text("nocmd"))
    t.check("missing command: pod is not Ready and not Running-ready",
            kl.condition(c.get_pod("nocmd"), "Ready") != "True")

    # ---- an image that doesn't exist (nothing listening at that registry)
    img = "127.0.0.1:%d/nothing/here:1.0" % NOTHING
    c.create_pod(kl.pod("noimage", [kl.ctr("main", ["sleep", "1"], image=img)]))
    seen = waiting_reasons(c, "noimage", 60, ["ErrImagePull", "ImagePullBackOff"])
    t.check("missing image: ErrImagePull then ImagePullBackOff (seen %s)" % seen,
            "ErrImagePull" in seen and "ImagePullBackOff" in seen
            and seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen)
    text = all_text(c, "noimage")
    t.check("missing image: message names the image and the cause",
            img in text and ("refused" in text.lower() or "connect" in text.lower()), text[-1500:])
    c.wait_for(lambda: "Failed" in c.event_text("noimage"), 30)
    t.check("missing image: Failed event for the pull", "Failed" in c.event_text("noimage"),
            c.event_text("noimage"))

    # ---- a missing configMap
    c.create_pod(kl.pod("nocm", [kl.ctr("main", ["sleep", "3600"],
                                        volumeMounts=[{"name": "v", "mountPath": "/v"}])],
                        volumes=[{"name": "v", "configMap": {"name": "does-not-exist"}}]))
    ok = c.wait_for(lambda: "does-not-exist" in c.event_text("nocm"), 60)
    p = c.get_pod("nocm")
    t.check("missing configMap: FailedMount-style event names it", ok and (
        "FailedMount" in c.event_text("nocm") or "Failed" in c.event_text("nocm")),
        c.event_text("nocm"))
    kind, reason, _ = kl.state_reason(kl.cstatus(p, "main"))
    t.check("missing configMap: pod Pending, container waiting (ContainerCreating or no status)",
            kl.phase(p) == "Pending" and kind in ("waiting", ""), p.get("status"))
    # creating the configMap lets the pod start (the kubelet retries)
    c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "does-not-exist"},
              "data": {"a": "b"}})
    ok, p = c.wait_pod("nocm", lambda p: kl.phase(p) == "Running", 90)
    t.check("missing configMap: the pod starts once the configMap exists", ok, p.get("status"))

    # ---- an invalid image tarball: the import command and the import folder
    bad = os.path.join(c.root, "bad.tar")
    with open(bad, "wb") as f:
        f.write(b"this is not a tar archive\n" * 100)
    r = c.image_import(bad, expect_ok=False)
    t.check("image import of garbage exits non-zero with a message naming the file",
            r.returncode != 0 and "bad.tar" in (r.stdout + r.stderr), r)
    trunc = os.path.join(c.root, "trunc.tar")
    with open(kl.busybox_tar("oci"), "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[:len(data) // 2])
    r = c.image_import(trunc, expect_ok=False)
    t.check("image import of a truncated OCI tar exits non-zero with a message",
            r.returncode != 0 and (r.stdout + r.stderr).strip(), r)
    imp = os.path.join(c.data, "images", "import")
    os.makedirs(imp, exist_ok=True)
    with open(os.path.join(imp, "garbage-e2e.tar.tmp"), "wb") as f:
        f.write(b"\x00garbage" * 1000)
    os.rename(os.path.join(imp, "garbage-e2e.tar.tmp"), os.path.join(imp, "garbage-e2e.tar"))
    ok = c.wait_for(lambda: "garbage-e2e.tar" in kl.read(c.kubelet_log, "") or
                    "garbage-e2e.tar" in c.event_text(None), 60)
    lines = [l for l in kl.read(c.kubelet_log, "").splitlines() if "garbage-e2e.tar" in l]
    t.check("import folder: the kubelet reports the invalid tarball by name (log or event)", ok,
            kl.tail(c.kubelet_log, 20))
    if lines:
        kl.log("kubelet says: %s" % lines[-1][:300])

    # ---- registries answering garbage
    for name, port, what in (("garbage-http", HTTP_GARBAGE, "garbage body"),
                             ("garbage-raw", RAW_GARBAGE, "not HTTP")):
        img = "127.0.0.1:%d/some/image:1.0" % port
        c.create_pod(kl.pod(name, [kl.ctr("main", ["sleep", "1"], image=img)]))
        seen = waiting_reasons(c, name, 60, ["ErrImagePull", "ImagePullBackOff"])
        t.check("registry answering %s: ErrImagePull then ImagePullBackOff (seen %s)" % (
            what, seen), "ErrImagePull" in seen and "ImagePullBackOff" in seen, seen)
        text = all_text(c, name)
        t.check("registry answering %s: the message names the image" % what, img in text,
                text[-1500:])
        msgs = [kl.state_reason(kl.cstatus(c.get_pod(name), "main"))[2]] + [
            e.get("message", "") for e in c.events(name) if e.get("reason") == "Failed"]
        kl.log("%s: %s" % (name, [m[:200] for m in msgs if m][:2]))

    # ---- the healthy pod was never disturbed, and the kubelet still starts new pods
    h2 = c.get_pod("healthy")
    t.check("healthy pod still Running, same PID, 0 restarts",
            kl.phase(h2) == "Running" and c.container_pid(h2, "main") == h_pid
            and kl.cstatus(h2, "main").get("restartCount") == 0, h2.get("status"))
    c.create_pod(kl.sleeper("after"))
    c.wait_running("after", timeout=60)
    t.check("a new pod starts after all the bad input", True)
    t.check("kubelet still alive", c.kubelet_alive())


if __name__ == "__main__":
    t = kl.Test("kubelet_badinput", limit=600)
    t.run(body)
