#!/usr/bin/env bash
# Builds skiff's test image docker.io/library/busybox:1.35 from Debian's busybox-static, with no
# container tooling: python3's tarfile/gzip/hashlib write the layer, config, manifest and both
# archive formats byte-for-byte reproducibly (fixed mtimes, owners and order; gzip mtime 0).
#   OUT_DIR/busybox.oci.tar     OCI image layout tar (index.json annotates the reference)
#   OUT_DIR/busybox.docker.tar  docker-archive (`docker save` format: manifest.json, RepoTags)
# Usage: deploy/images/build.sh [OUT_DIR (default <repo>/build/images)]
# Idempotent: skips the work when the outputs exist and neither this script nor
# /bin/busybox changed since they were made.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$src/build/images}
busybox=${SKIFF_BUSYBOX:-/bin/busybox}
if [ ! -x "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
  echo "images: $busybox is missing or not busybox; apt-get install busybox-static" >&2
  exit 1
fi
mkdir -p "$out"
stamp="$out/.busybox.stamp"
want=$(cat "$0" "$busybox" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$out/busybox.oci.tar" ] &&
  [ -f "$out/busybox.docker.tar" ]; then
  exit 0
fi
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
case "$arch" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
esac
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$busybox" --list-full | sort >"$tmp/applets"
python3 - "$busybox" "$tmp/applets" "$arch" "$tmp" <<'PY'
import gzip, hashlib, io, json, sys, tarfile

busybox, applets_file, arch, tmp = sys.argv[1:5]
REF = "docker.io/library/busybox:1.35"
MTIME = 1672531200  # 2023-01-01T00:00:00Z: fixed, so every build is byte-identical
CREATED = "2023-01-01T00:00:00Z"

def info(name, kind, mode, size=0, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = kind, mode, size, linkname
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = MTIME
    return ti

def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()

# --- the root filesystem: one layer ---
with open(busybox, "rb") as f:
    bb = f.read()
files = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "etc/shadow": b"root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
}
dirs = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
        "etc": 0o755, "root": 0o700, "tmp": 0o1777, "var": 0o755, "var/www": 0o755,
        "home": 0o755, "proc": 0o755, "sys": 0o755, "dev": 0o755}
applets = sorted({l.strip() for l in open(applets_file) if l.strip()})
entries = []
names = set(dirs) | set(files) | {"bin/busybox"}
for d in sorted(dirs):
    entries.append((info(d + "/", tarfile.DIRTYPE, dirs[d]), None))
entries.append((info("bin/busybox", tarfile.REGTYPE, 0o755, len(bb)), bb))
for a in applets:
    if a in names or "/" not in a:
        continue
    names.add(a)
    entries.append((info(a, tarfile.SYMTYPE, 0o777, linkname="/bin/busybox"), None))
for name in sorted(files):
    mode = 0o640 if name == "etc/shadow" else 0o644
    entries.append((info(name, tarfile.REGTYPE, mode, len(files[name])), files[name]))
layer = tar_bytes(entries)
gz = io.BytesIO()
with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as g:
    g.write(layer)
layer_gz = gz.getvalue()
sha = lambda b: hashlib.sha256(b).hexdigest()
diff_id = "sha256:" + sha(layer)

config = {
    "architecture": arch, "os": "linux", "created": CREATED,
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["sh"], "Labels": {"org.opencontainers.image.source": "debian busybox-static"}},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": CREATED, "created_by": "deploy/images/build.sh (busybox-static)"}],
}
config_b = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + sha(config_b), "size": len(config_b)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + sha(layer_gz), "size": len(layer_gz)}],
}
manifest_b = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": "sha256:" + sha(manifest_b), "size": len(manifest_b),
                   "platform": {"architecture": arch, "os": "linux"},
                   "annotations": {"org.opencontainers.image.ref.name": REF,
                                   "io.containerd.image.name": REF}}],
}
index_b = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()

def blob(b):
    return "blobs/sha256/" + sha(b)

oci = [(info("blobs/", tarfile.DIRTYPE, 0o755), None),
       (info("blobs/sha256/", tarfile.DIRTYPE, 0o755), None)]
for b in sorted([config_b, manifest_b, layer_gz], key=sha):
    oci.append((info(blob(b), tarfile.REGTYPE, 0o644, len(b)), b))
layout = b'{"imageLayoutVersion":"1.0.0"}'
oci.append((info("index.json", tarfile.REGTYPE, 0o644, len(index_b)), index_b))
oci.append((info("oci-layout", tarfile.REGTYPE, 0o644, len(layout)), layout))
with open(tmp + "/busybox.oci.tar", "wb") as f:
    f.write(tar_bytes(oci))

# docker-archive: uncompressed layer, config named by its digest, RepoTags in familiar form.
layer_id = sha(layer)
dmanifest = json.dumps([{"Config": sha(config_b) + ".json", "RepoTags": ["busybox:1.35"],
                         "Layers": [layer_id + "/layer.tar"]}], separators=(",", ":")).encode()
repositories = json.dumps({"busybox": {"1.35": layer_id}}, separators=(",", ":")).encode()
docker = [(info(layer_id + "/", tarfile.DIRTYPE, 0o755), None),
          (info(layer_id + "/VERSION", tarfile.REGTYPE, 0o644, 3), b"1.0"),
          (info(layer_id + "/layer.tar", tarfile.REGTYPE, 0o644, len(layer)), layer),
          (info(sha(config_b) + ".json", tarfile.REGTYPE, 0o644, len(config_b)), config_b),
          (info("manifest.json", tarfile.REGTYPE, 0o644, len(dmanifest)), dmanifest),
          (info("repositories", tarfile.REGTYPE, 0o644, len(repositories)), repositories)]
with open(tmp + "/busybox.docker.tar", "wb") as f:
    f.write(tar_bytes(docker))
print("images: %s id sha256:%s layer %s (%d bytes gzip)" % (REF, sha(config_b), diff_id, len(layer_gz)))
PY
mv -f "$tmp/busybox.oci.tar" "$out/busybox.oci.tar"
mv -f "$tmp/busybox.docker.tar" "$out/busybox.docker.tar"
echo "$want" >"$stamp"
