"""Image pulls from a real registry: Debian's docker-registry started on the loopback of the
test's own network namespace, images pushed with skopeo (OCI and docker-archive, and the OCI
index with --all). A corrupted blob is refused with a clear error and not kept; the same image
pulls fine once the blob is repaired; a missing tag gives ErrImagePull then ImagePullBackOff;
OCI, Docker media types and an image index all run. The kubelet starts with no image imported,
so every layer comes over the wire.
Needs root, docker-registry and skopeo (skips with 77 otherwise)."""
import hashlib
import json
import os
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

PORT = 5000
REG = "127.0.0.1:%d" % PORT


def start_registry(c):
    root = os.path.join(c.root, "registry")
    os.makedirs(root, exist_ok=True)
    cfg = os.path.join(c.root, "registry.yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                "    rootdirectory: %s\n  delete:\n    enabled: true\n"
                "http:\n  addr: %s\n" % (root, REG))
    p = c.spawn(["docker-registry", "serve", cfg], "registry.log")
    ok = c.wait_for(lambda: _get("/v2/")[0] == 200 or p.poll() is not None, 30)
    if p.poll() is not None or not ok:
        raise kl.Fatal("docker-registry did not start: %s" % kl.tail(
            os.path.join(c.root, "registry.log")))
    kl.log("docker-registry on %s, storage %s" % (REG, root))
    return root


def _get(path, accept=None):
    req = urllib.request.Request("http://%s%s" % (REG, path))
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def push(src, dest, all_images=False):
    cmd = ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false"]
    if all_images:
        cmd.append("--all")
    r = kl.sh(cmd + [src, "docker://%s/%s" % (REG, dest)], timeout=120)
    if r.returncode != 0:
        raise kl.Fatal("skopeo push %s -> %s: %s %s" % (src, dest, r.stdout, r.stderr))


def manifest(repo, tag):
    st, b = _get("/v2/%s/manifests/%s" % (repo, tag),
                 "application/vnd.oci.image.manifest.v1+json,"
                 "application/vnd.docker.distribution.manifest.v2+json")
    return json.loads(b) if st == 200 else None


def blob_path(root, digest):
    h = digest.split(":", 1)[1]
    return os.path.join(root, "docker", "registry", "v2", "blobs", "sha256", h[:2], h, "data")


def bad_blobs_in(dirpath):
    """Files named like a sha256 whose content does not hash to the name."""
    bad = []
    for r, ds, fs in os.walk(dirpath):
        for f in fs:
            if len(f) == 64 and all(ch in "0123456789abcdef" for ch in f):
                p = os.path.join(r, f)
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                if h.hexdigest() != f:
                    bad.append(p)
    return bad


def pull_reasons(c, name, timeout, want):
    seen = []
    end = time.time() + timeout
    n = 0
    while time.time() < end and n < 1000:
        n += 1
        p = c.get_pod(name)
        _, reason, _ = kl.state_reason(kl.cstatus(p, "main"))
        if reason and (not seen or seen[-1] != reason):
            seen.append(reason)
        if all(w in seen for w in want):
            break
        time.sleep(0.3)
    return seen


def body(t):
    oci = kl.busybox_tar("oci")
    dock = kl.busybox_tar("docker")
    with t.cluster(import_image=False, kubelet_args=["--insecure-registry", REG]) as c:
        root = start_registry(c)

        # ---- corrupted blob first (nothing is in the kubelet's store yet)
        push("oci-archive:" + oci, "corrupt:1")
        m = manifest("corrupt", "1")
        t.check("registry serves the pushed manifest", m is not None and m.get("layers"), m)
        layer = m["layers"][0]["digest"]
        bp = blob_path(root, layer)
        backup = bp + ".e2e-backup"
        shutil.copyfile(bp, backup)
        with open(bp, "r+b") as f:
            f.seek(os.path.getsize(bp) // 2)
            chunk = f.read(64)
            f.seek(os.path.getsize(bp) // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
        img = "%s/corrupt:1" % REG
        c.create_pod(kl.pod("corrupt", [kl.ctr("main", ["sleep", "3600"], image=img)]))
        seen = pull_reasons(c, "corrupt", 60, ["ErrImagePull", "ImagePullBackOff"])
        t.check("corrupted blob: ErrImagePull then ImagePullBackOff (seen %s)" % seen,
                "ErrImagePull" in seen and "ImagePullBackOff" in seen, seen)
        text = json.dumps(c.get_pod("corrupt").get("status", {})) + c.event_text("corrupt")
        t.check("corrupted blob: the error names the digest and says it does not match",
                layer.split(":")[1][:12] in text and any(w in text.lower() for w in (
                    "mismatch", "does not match", "digest", "verify")), text[-1500:])
        kl.log("corrupt: %s" % [e.get("message", "")[:240] for e in c.events("corrupt")
                                if e.get("reason") == "Failed"][:1])
        t.check("corrupted blob: nothing with a wrong digest is kept in the kubelet's store",
                not bad_blobs_in(os.path.join(c.data, "images")),
                bad_blobs_in(os.path.join(c.data, "images")))
        c.delete_pod("corrupt", grace=0)
        shutil.move(backup, bp)

        # ---- good pulls: OCI manifest, Docker schema 2, OCI index (--all)
        push("oci-archive:" + oci, "busybox:1.35")
        push("docker-archive:" + dock, "dockerfmt:1")
        push("oci-archive:" + oci, "multi:1", all_images=True)
        st, idx = _get("/v2/multi/manifests/1", "application/vnd.oci.image.index.v1+json,"
                       "application/vnd.docker.distribution.manifest.list.v2+json")
        try:
            idx_type = json.loads(idx).get("mediaType")
        except ValueError:
            idx_type = None
        dm = manifest("dockerfmt", "1") or {}
        kl.log("pushed: busybox:1.35 (OCI), dockerfmt:1 (%s), multi:1 (%s)" % (
            dm.get("mediaType"), idx_type))
        good = manifest("busybox", "1.35")
        for name, ref in (("pulled", "busybox:1.35"), ("dockerfmt", "dockerfmt:1"),
                          ("multi", "multi:1")):
            c.create_pod(kl.pod(name, [kl.ctr("main", ["sleep", "3600"], image="%s/%s" % (
                REG, ref))]))
        for name, ref in (("pulled", "busybox:1.35"), ("dockerfmt", "dockerfmt:1"),
                          ("multi", "multi:1")):
            p = c.wait_running(name, timeout=90)
            cs = kl.cstatus(p, "main")
            t.check("pull %s/%s: Running, imageID sha256:<config digest>" % (REG, ref),
                    cs.get("imageID", "").startswith("sha256:"), cs)
            ev = c.event_text(name)
            t.check("pull %s: Pulling and Pulled events" % ref, "Pulling" in ev
                    and "Pulled" in ev, ev)
        cs = kl.cstatus(c.get_pod("pulled"), "main")
        t.check("imageID is the config digest of the pushed manifest",
                good and cs.get("imageID", "").endswith(good["config"]["digest"].split(":")[1]),
                (cs.get("imageID"), good and good["config"]))
        c.create_pod(kl.pod("corrupt2", [kl.ctr("main", ["sleep", "3600"], image=img)]))
        c.wait_running("corrupt2", timeout=60)
        t.check("the repaired image that failed before now pulls (corrupt data was not kept)",
                True)

        # ---- missing tag
        c.create_pod(kl.pod("missing", [kl.ctr("main", ["sleep", "1"],
                                               image="%s/busybox:nope" % REG)]))
        seen = pull_reasons(c, "missing", 60, ["ErrImagePull", "ImagePullBackOff"])
        t.check("missing tag: ErrImagePull then ImagePullBackOff (seen %s)" % seen,
                "ErrImagePull" in seen and "ImagePullBackOff" in seen
                and seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen)
        text = json.dumps(c.get_pod("missing").get("status", {})) + c.event_text("missing")
        t.check("missing tag: message says not found", "not found" in text.lower()
                or "unknown" in text.lower() or "404" in text, text[-1200:])

        # ---- imagePullPolicy Always pulls again (Pulling event), Never does not
        c.create_pod(kl.pod("always", [kl.ctr("main", ["sleep", "3600"],
                                              image="%s/busybox:1.35" % REG,
                                              imagePullPolicy="Always")]))
        c.wait_running("always", timeout=60)
        t.check("imagePullPolicy Always: Pulling event", "Pulling" in c.event_text("always"),
                c.event_text("always"))
        c.create_pod(kl.pod("never", [kl.ctr("main", ["sleep", "3600"],
                                             image="%s/not-here:1" % REG,
                                             imagePullPolicy="Never")]))
        ok, p = c.wait_pod("never", lambda p: kl.state_reason(kl.cstatus(p, "main"))[1]
                           == "ErrImageNeverPull", 30)
        t.check("imagePullPolicy Never + absent image: ErrImageNeverPull", ok,
                kl.cstatus(p, "main"))

        # ---- the CLI pull into a separate data dir
        d2 = os.path.join(c.root, "cli-data")
        r = kl.sh([kl.testlib.bin_path("skiff-kubelet"), "image", "pull",
                   "%s/busybox:1.35" % REG, "--insecure-registry", REG, "--data-dir", d2],
                  timeout=120)
        t.check("skiff-kubelet image pull REF works", r.returncode == 0, r)
        r = kl.sh([kl.testlib.bin_path("skiff-kubelet"), "image", "list", "--data-dir", d2])
        t.check("skiff-kubelet image list shows it", "busybox" in r.stdout, r)


if __name__ == "__main__":
    t = kl.Test("kubelet_registry", limit=600, need=("docker-registry", "skopeo"))
    t.run(body)
