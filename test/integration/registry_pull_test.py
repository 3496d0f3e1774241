"""Image pulls from real and fake OCI distribution registries, all on 127.0.0.1.

- Debian's docker-registry (v2.8) with the busybox:1.35 test image pushed by skopeo: pull over
  plain HTTP (listed insecure, and the loopback fallback), an OCI index and a Docker manifest
  list (linux/amd64 picked), a missing tag (NotFound), a tampered blob (Invalid, nothing stored).
- A Python mock registry with a bearer-token service (realm/service/scope, Basic credentials
  checked) and blob redirects; and one answering garbage (HTML, broken JSON, wrong media type,
  oversized manifest, silence) which must give clear errors, never a crash or a hang.

Uses the skiff-image tool (kubelet/images/tool). Needs skopeo and docker-registry for the first
half (skipped without them; the mock half still runs).
"""
import base64
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import Checks, free_port, log, tmpdir  # noqa: E402

testlib.deadline(600)
tool = testlib.need_bin("skiff-image")
src = os.environ.get("SKIFF_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
images_dir = os.path.join(os.environ.get("SKIFF_BIN") or os.path.join(src, "build"), "images")
subprocess.run(["bash", os.path.join(src, "deploy/images/build.sh"), images_dir], check=True)
oci_tar = os.path.join(images_dir, "busybox.oci.tar")
c = Checks()
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


import atexit  # noqa: E402
atexit.register(cleanup)


def run(*args, timeout=120):
    p = subprocess.run([tool] + list(args), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def store():
    return os.path.join(tmpdir(), "store")


def store_empty(root):
    """No image, blob or layer left behind."""
    blobs = os.listdir(os.path.join(root, "blobs/sha256"))
    layers = os.listdir(os.path.join(root, "layers"))
    rc, out, _ = run("--root", root, "list")
    return not blobs and not layers and out.strip() == "", (blobs, layers, out)


# --- the test image's own content, to serve from the mock registry ---
blobs = {}
with tarfile.open(oci_tar) as t:
    for m in t.getmembers():
        if m.isfile() and m.name.startswith("blobs/sha256/"):
            blobs["sha256:" + m.name.split("/")[-1]] = t.extractfile(m).read()
    index = json.loads(t.extractfile("index.json").read())
manifest_digest = index["manifests"][0]["digest"]
manifest = json.loads(blobs[manifest_digest])
config_digest = manifest["config"]["digest"]
layer_digest = manifest["layers"][0]["digest"]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- real registry
def real_registry():
    if not shutil.which("docker-registry") or not shutil.which("skopeo"):
        log("NOTE: docker-registry or skopeo missing: the real-registry half is skipped")
        return
    d = tmpdir()
    port = free_port()
    reg = "127.0.0.1:%d" % port
    with open(os.path.join(d, "config.yml"), "w") as f:
        f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                "    rootdirectory: %s/data\n  delete:\n    enabled: true\n"
                "http:\n  addr: %s\n" % (d, reg))
    logf = open(os.path.join(d, "registry.log"), "w")
    p = subprocess.Popen(["docker-registry", "serve", os.path.join(d, "config.yml")],
                         stdout=logf, stderr=subprocess.STDOUT)
    procs.append(p)
    import urllib.request
    for _ in range(600):  # up to a minute: docker-registry's start on a loaded machine
        try:
            urllib.request.urlopen("http://%s/v2/" % reg, timeout=1)
            break
        except Exception:
            time.sleep(0.1)

    def skopeo(*args):
        r = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false"] + list(args),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log("skopeo failed: " + r.stderr)
        return r.returncode == 0

    c.check("skopeo pushes busybox:1.35 to " + reg,
            skopeo("oci-archive:" + oci_tar, "docker://%s/busybox:1.35" % reg))

    root = store()
    rc, out, err = run("--root", root, "pull", reg + "/busybox:1.35", "--insecure-registry", reg)
    c.check("pull %s/busybox:1.35 (insecure registry)" % reg, rc == 0, err)
    c.check("pull reports progress", "downloading" in err and "done" in err, err)
    rc, out, err = run("--root", root, "inspect", reg + "/busybox:1.35")
    info = json.loads(out) if rc == 0 else {}
    c.eq("image id is the config digest", info.get("id"), config_digest)
    c.eq("config Cmd parsed", info.get("cmd"), ["sh"])
    c.check("repo digest recorded",
            info.get("repo_digests") and info["repo_digests"][0].startswith(reg + "/busybox@sha256:"),
            info)
    rc, out, err = run("--root", root, "layers", reg + "/busybox:1.35")
    layer = out.strip()
    c.check("layer unpacked with busybox and its applets",
            os.path.isfile(os.path.join(layer, "bin/busybox")) and
            os.readlink(os.path.join(layer, "bin/sh")) == "/bin/busybox", out + err)
    rc, out, err = run("--root", root, "user", reg + "/busybox:1.35", "nobody")
    c.eq("resolve_user nobody in the pulled image", out.strip(), "uid=65534 gid=65534")

    rc, out, err = run("--root", root, "pull", reg + "/busybox:1.35")
    c.check("loopback registry without TLS reached by the http fallback, layer reused",
            rc == 0 and "already present" in err, err)

    rc, out, err = run("--root", store(), "pull", reg + "/busybox:nope", "--insecure-registry", reg)
    c.check("missing tag -> NotFound", rc == 1 and "NotFound" in err and "not found" in err, err)
    rc, out, err = run("--root", store(), "pull", reg + "/nothing/here:1", "--insecure-registry", reg)
    c.check("missing repository -> NotFound", rc == 1 and "NotFound" in err, err)

    # An OCI index with a fake arm64 entry beside the real amd64 one, pushed with --all.
    lay = os.path.join(tmpdir(), "multi")
    os.makedirs(os.path.join(lay, "blobs/sha256"))
    arm = dict(manifest)
    arm["annotations"] = {"skiff.test": "arm64 twin"}
    arm_b = json.dumps(arm).encode()
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(arm_b), "size": len(arm_b),
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(blobs[manifest_digest]),
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    idx_b = json.dumps(idx).encode()
    for b in list(blobs.values()) + [arm_b, idx_b]:
        with open(os.path.join(lay, "blobs", sha(b).replace(":", "/")), "wb") as f:
            f.write(b)
    with open(os.path.join(lay, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(lay, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_INDEX, "digest": sha(idx_b), "size": len(idx_b),
             "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}, f)
    ok = skopeo("--all", "oci:%s:multi" % lay, "docker://%s/busybox:multi" % reg)
    c.check("skopeo copy --all pushes an OCI index", ok)
    root = store()
    rc, out, err = run("--root", root, "pull", reg + "/busybox:multi", "--insecure-registry", reg)
    c.check("pull of an OCI index picks linux/amd64", rc == 0 and out.split()[0] == config_digest,
            out + err)
    rc, out, err = run("--root", root, "import", lay)
    c.check("import of an OCI layout directory holding an index",
            rc == 0 and out.split()[0] == config_digest, out + err)

    # A Docker manifest list PUT by hand (the registry checks its references exist).
    import urllib.request
    dl = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(arm_b), "size": len(arm_b),
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(blobs[manifest_digest]),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    req = urllib.request.Request("http://%s/v2/busybox/manifests/dlist" % reg, data=dl,
                                 method="PUT", headers={"Content-Type": DOCKER_LIST})
    try:
        urllib.request.urlopen(req, timeout=10)
        put_ok = True
    except Exception as e:
        put_ok = False
        log("PUT manifest list: %s %s" % (e, getattr(e, "read", lambda: b"")()))
    c.check("registry accepts a Docker manifest list", put_ok)
    rc, out, err = run("--root", store(), "pull", reg + "/busybox:dlist", "--insecure-registry", reg)
    c.check("pull of a Docker manifest list picks linux/amd64",
            rc == 0 and out.split()[0] == config_digest, out + err)

    # Tamper with the layer blob inside the registry's storage.
    hexd = layer_digest.split(":")[1]
    data = os.path.join(d, "data/docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
    orig = open(data, "rb").read()
    bad = bytearray(orig)
    bad[len(bad) // 2] ^= 0xFF
    with open(data, "wb") as f:
        f.write(bad)
    root = store()
    rc, out, err = run("--root", root, "pull", reg + "/busybox:1.35", "--insecure-registry", reg)
    want = "blob %s from %s/busybox: digest mismatch, got sha256:" % (layer_digest, reg)
    c.check("tampered blob refused: Invalid naming blob, registry and digests",
            rc == 1 and "Invalid" in err and want in err, err)
    empty, detail = store_empty(root)
    c.check("nothing stored after the refused pull", empty, detail)
    with open(data, "wb") as f:
        f.write(orig)
    p.terminate()
    p.wait(10)


def tls_registry():
    """HTTPS with a self-signed CA: trusted through --ca-file, refused without it."""
    if not shutil.which("docker-registry") or not shutil.which("skopeo") or \
            not shutil.which("openssl"):
        log("NOTE: docker-registry, skopeo or openssl missing: the TLS part is skipped")
        return
    d = tmpdir()
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        d + "/key.pem", "-out", d + "/cert.pem", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log("NOTE: openssl failed, TLS part skipped: " + r.stderr)
        return
    port = free_port()
    with open(d + "/config.yml", "w") as f:
        f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                "    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%d\n  tls:\n"
                "    certificate: %s/cert.pem\n    key: %s/key.pem\n" % (d, port, d, d))
    p = subprocess.Popen(["docker-registry", "serve", d + "/config.yml"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    import socket
    for _ in range(600):  # up to a minute: docker-registry's start on a loaded machine
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    ok = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                         "oci-archive:" + oci_tar, "docker://127.0.0.1:%d/busybox:1.35" % port],
                        capture_output=True, timeout=120).returncode == 0
    c.check("skopeo pushes to the HTTPS registry", ok)
    for host in ("127.0.0.1", "localhost"):
        rc, out, err = run("--root", store(), "pull", "%s:%d/busybox:1.35" % (host, port),
                           "--ca-file", d + "/cert.pem")
        c.check("HTTPS pull from %s with --ca-file" % host,
                rc == 0 and out.split()[0] == config_digest, err)
    rc, out, err = run("--root", store(), "pull", "127.0.0.1:%d/busybox:1.35" % port)
    c.check("HTTPS registry with an unknown CA -> certificate error",
            rc == 1 and "certificate verify failed" in err, err)
    p.terminate()
    p.wait(10)


# ---------------------------------------------------------------- mock registries
class Mock(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(handler):
    srv = Mock(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", ctype="application/json", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def token_registry():
    seen = {"token_requests": [], "redirects": 0}
    USER, PASS, TOKEN = "alice", "s3cret", "tok-%d" % os.getpid()

    class Handler(Quiet):
        def do_GET(self):
            path = self.path
            if path.startswith("/token"):
                seen["token_requests"].append(path)
                want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASS)).encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self.send(401, b'{"details":"bad credentials"}')
                return self.send(200, json.dumps({"token": TOKEN}).encode())
            if path.startswith("/real-blobs/"):  # redirect target: no auth, like a CDN
                dg = path.split("/")[-1]
                return self.send(200, blobs[dg], "application/octet-stream")
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                realm = "http://127.0.0.1:%d/token" % self.server.server_port
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', headers=[
                    ("WWW-Authenticate", 'Bearer realm="%s",service="mock",scope="repository:%s:pull"'
                     % (realm, "private/busybox"))])
            if path == "/v2/private/busybox/manifests/1.35":
                return self.send(200, blobs[manifest_digest], OCI_MANIFEST,
                                 [("Docker-Content-Digest", manifest_digest)])
            if path.startswith("/v2/private/busybox/blobs/"):
                dg = path.split("/")[-1]
                if dg == layer_digest:
                    seen["redirects"] += 1
                    return self.send(307, b"", headers=[("Location", "/real-blobs/" + dg)])
                if dg in blobs:
                    return self.send(200, blobs[dg], "application/octet-stream")
            return self.send(404, b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}')

    srv = serve(Handler)
    reg = "127.0.0.1:%d" % srv.server_port
    root = store()
    rc, out, err = run("--root", root, "pull", reg + "/private/busybox:1.35",
                       "--insecure-registry", reg, "--user", "%s:%s" % (USER, PASS))
    c.check("bearer token dance with basic credentials, blob redirect followed",
            rc == 0 and out.split()[0] == config_digest and seen["redirects"] == 1, out + err)
    c.check("token request carries service and scope",
            any("service=mock" in q and "scope=repository:private/busybox:pull" in q
                for q in seen["token_requests"]), seen["token_requests"])
    rc, out, err = run("--root", store(), "pull", reg + "/private/busybox:1.35",
                       "--insecure-registry", reg, "--user", "alice:wrong")
    c.check("wrong credentials -> Unauthorized", rc == 1 and "Unauthorized" in err, err)
    rc, out, err = run("--root", store(), "pull", reg + "/private/busybox:1.35",
                       "--insecure-registry", reg)
    c.check("anonymous pull of a private repo -> Unauthorized", rc == 1 and "Unauthorized" in err,
            err)
    srv.shutdown()


def garbage_registry():
    class Handler(Quiet):
        def do_GET(self):
            p = self.path
            if p.startswith("/v2/html/"):
                return self.send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
            if p.startswith("/v2/brokenjson/"):
                return self.send(200, b'{"schemaVersion": 2, "layers": [', OCI_MANIFEST)
            if p.startswith("/v2/wrongtype/"):
                return self.send(200, b'{"schemaVersion":2,"mediaType":"application/x-foo"}',
                                 "application/x-foo")
            if p.startswith("/v2/schema1/"):
                return self.send(200, b'{"schemaVersion":1,"name":"x","fsLayers":[]}',
                                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
            if p.startswith("/v2/huge/"):
                return self.send(200, b"{" + b" " * (5 << 20) + b"}", OCI_MANIFEST)
            if p.startswith("/v2/badconfig/manifests/"):
                return self.send(200, blobs[manifest_digest], OCI_MANIFEST)
            if p.startswith("/v2/badconfig/blobs/"):
                return self.send(200, b"<html>not a blob</html>", "text/html")
            if p.startswith("/v2/silent/"):
                time.sleep(8)
                return self.send(200, b"{}")
            if p.startswith("/v2/e500/"):
                return self.send(500, b"<html>oops</html>", "text/html")
            return self.send(404, b"{}")

    srv = serve(Handler)
    reg = "127.0.0.1:%d" % srv.server_port

    def pull(name, *extra):
        return run("--root", store(), "pull", "%s/%s:1" % (reg, name), "--insecure-registry", reg,
                   *extra, timeout=60)
    cases = [("html", "Invalid", "text/html"),
             ("brokenjson", "Invalid", "not a JSON manifest"),
             ("wrongtype", "Invalid", "unsupported manifest media type"),
             ("schema1", "Invalid", "schema 1"),
             ("huge", "TooLarge", "larger than"),
             ("badconfig", "Invalid", "digest mismatch"),
             ("e500", "Invalid", "HTTP 500")]
    for name, code, text in cases:
        rc, out, err = pull(name)
        c.check("garbage registry (%s) -> %s: %s" % (name, code, text),
                rc == 1 and code in err and text in err, "rc=%d %s" % (rc, err))
    t0 = time.monotonic()
    rc, out, err = pull("silent", "--timeout", "2")
    c.check("a registry that never answers -> Timeout (pull --timeout 2)",
            rc == 1 and "Timeout" in err and time.monotonic() - t0 < 30, err)
    srv.shutdown()


real_registry()
tls_registry()
token_registry()
garbage_registry()
c.finish()
