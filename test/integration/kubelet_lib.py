"""Harness for the node-agent integration tests (not a test itself).

A `Cluster` is one skiff-apiserver and one skiff-kubelet inside a network namespace the test
creates (`skiff-e2e-<pid>`), with temp data/run/log dirs and the cgroup parent
`skiff-test-<pid>`. The test process itself enters that network namespace (setns) right after
creating it, so every client it runs (HTTP, kubectl, skopeo, wget) talks to the namespace's
loopback and bridge only - never to the host's network. Mounts stay in the host mount namespace
(`nsenter --net` only), so they survive a kubelet restart, as in production.

    import kubelet_lib as kl
    t = kl.Test("pod", limit=600)          # skips (77) unless root, kernel features, binaries
    with t.cluster() as c:                  # starts everything; teardown ALWAYS runs
        c.create_pod(kl.pod("p", [kl.ctr("a", ["sleep", "3600"])]))
        p = c.wait_running("p")
        t.check("...", ...)
    t.finish()

Teardown (also on failure, exception, the test's deadline or SIGTERM): delete pods (bounded
wait), stop the kubelet, kill every process left in the test cgroup parent or running from the
temp dirs, unmount everything under the temp dirs (deepest first, MNT_DETACH), remove the
cgroup parent in every hierarchy, delete the netns, remove the temp dirs.

Environment: SKIFF_BIN (build dir), SKIFF_SRC (source dir), SKIFF_KEEP=1 keeps the temp dirs
(everything else is still cleaned), SKIFF_IMAGES (dir holding busybox.oci.tar; default
$SKIFF_BIN/images, built with deploy/images/build.sh when missing).
"""
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

testlib.ensure_modules("yaml")

SKIP = testlib.SKIP
log = testlib.log
skip = testlib.skip

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2

CGROUP_ROOT = "/sys/fs/cgroup"
CNI_BIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]
POD_CIDR = "10.244.0.0/24"
BUSYBOX = "busybox:1.35"
NODE = "skiff-e2e-node"  # no scheduler yet: pods name their node


class TestTimeout(Exception):
    pass


class Fatal(Exception):
    """A failure that makes the rest of the test meaningless (printed as FAIL)."""


# ---------------------------------------------------------------------------------------------
# small host helpers


def sh(cmd, check=False, timeout=60, **kw):
    """Runs a command (list), returns CompletedProcess with text output."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise Fatal("%s exited %d: %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def read(path, default=None):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def read_json(path):
    s = read(path)
    if s is None:
        return None
    try:
        return json.loads(s)
    except ValueError:
        return None


def pid_alive(pid):
    if not pid:
        return False
    st = read("/proc/%d/stat" % pid)
    if st is None:
        return False
    # state field after "(comm)"; Z = zombie counts as gone
    return st.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid):
    s = read("/proc/%d/cmdline" % pid, "")
    return s.replace("\0", " ").strip()


def vmrss_kb(pid):
    for line in (read("/proc/%d/status" % pid) or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def mountinfo():
    """[(mount_point, fstype, source)] of this process' mount namespace."""
    out = []
    for line in (read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        mp = f[4].encode().decode("unicode_escape")
        out.append((mp, r[0] if r else "", r[1] if len(r) > 1 else ""))
    return out


def umount_under(prefixes):
    """Lazily unmounts every mount point under any of `prefixes`, deepest first. Returns the
    mount points that were found."""
    found = [mp for mp, _, _ in mountinfo()
             if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes)]
    for mp in sorted(set(found), key=lambda m: m.count("/"), reverse=True):
        for _ in range(8):  # stacked mounts on one point need one umount each
            if _libc.umount2(mp.encode(), MNT_DETACH) != 0:
                break
    return found


def cgroup_hierarchies():
    """Mount points of every cgroup hierarchy (v1 controllers and the v2 one)."""
    out = []
    for mp, fstype, _ in mountinfo():
        if fstype in ("cgroup", "cgroup2") and mp.startswith(CGROUP_ROOT):
            out.append(mp)
    return sorted(set(out))


def cgroup_procs(dirpath):
    """Every pid in a cgroup directory and below."""
    pids = set()
    for root, dirs, files in os.walk(dirpath):
        for p in (read(os.path.join(root, "cgroup.procs"), "") or "").split():
            pids.add(int(p))
    return pids


def sigkill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def kill_processes(cgroup_parent, needle):
    """SIGKILLs, until none is left (bounded), the processes in `cgroup_parent` (in every
    hierarchy) and those whose command line contains `needle` (shims, helpers): never by a
    broad name."""
    me = os.getpid()
    for _ in range(20):
        victims = set()
        for h in cgroup_hierarchies():
            victims |= cgroup_procs(os.path.join(h, cgroup_parent))
        for pid in all_pids():
            if pid != me and needle in cmdline(pid):
                victims.add(pid)
        victims.discard(me)
        if not victims:
            return
        sigkill(victims)
        time.sleep(0.2)


def remove_cgroup_tree(dirpath, deadline_s=10):
    """SIGKILLs what is in the tree, waits (bounded), removes directories bottom-up."""
    if not os.path.isdir(dirpath):
        return True
    end = time.time() + deadline_s
    while time.time() < end:
        pids = cgroup_procs(dirpath)
        if not pids:
            break
        sigkill(pids)
        time.sleep(0.1)
    ok = True
    for root, dirs, files in sorted(os.walk(dirpath), key=lambda t: t[0].count("/"),
                                    reverse=True):
        for _ in range(20):
            try:
                os.rmdir(root)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        else:
            ok = False
    return ok


def setns_net(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


def links():
    """{name: kind} of the network interfaces in our (the test's) network namespace."""
    r = sh(["ip", "-d", "-j", "link", "show"])
    out = {}
    try:
        for l in json.loads(r.stdout or "[]"):
            kind = (l.get("linkinfo") or {}).get("info_kind", "")
            out[l["ifname"]] = kind
    except ValueError:
        pass
    return out


# ---------------------------------------------------------------------------------------------
# object builders


def ctr(name, command, image=BUSYBOX, **kw):
    c = {"name": name, "image": image, "command": command}
    c.update(kw)
    return c


def pod(name, containers, namespace="default", **spec):
    s = {"containers": containers, "terminationGracePeriodSeconds": 2, "nodeName": NODE}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"test": "e2e"}},
            "spec": s}


def sleeper(name, **spec):
    return pod(name, [ctr("main", ["sleep", "3600"])], **spec)


def cstatus(p, name, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for cs in (p or {}).get("status", {}).get(key, []) or []:
        if cs.get("name") == name:
            return cs
    return {}


def condition(p, ctype):
    for c in (p or {}).get("status", {}).get("conditions", []) or []:
        if c.get("type") == ctype:
            return c.get("status")
    return None


def phase(p):
    return (p or {}).get("status", {}).get("phase")


def state_reason(cs):
    """(state kind, reason, message) of a container status."""
    for k in ("waiting", "running", "terminated"):
        if k in (cs.get("state") or {}):
            st = cs["state"][k] or {}
            return k, st.get("reason", ""), st.get("message", "")
    return "", "", ""


def container_id(cs):
    cid = cs.get("containerID") or ""
    return cid.split("://", 1)[1] if "://" in cid else cid


# ---------------------------------------------------------------------------------------------
# the test object


class Test(testlib.Checks):
    """Checks + prerequisites + deadline. Exits 77 when the machine can't run kubelet tests."""

    def __init__(self, name, limit=600, need=()):
        super().__init__()
        self.name = name
        self.limit = limit
        self.clusters = []
        self._check_prereqs(need)
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.alarm(limit)

    def _on_alarm(self, signum, frame):
        raise TestTimeout("test exceeded its %d s limit" % self.limit)

    def _on_term(self, signum, frame):
        raise TestTimeout("terminated (SIGTERM)")

    def _check_prereqs(self, need):
        if os.geteuid() != 0:
            skip("needs root (namespaces, mounts, cgroups)")
        for tool in ["ip", "nsenter"] + list(need):
            if shutil.which(tool) is None:
                skip("%s is not installed" % tool)
        fs = read("/proc/filesystems", "")
        for f in ("overlay", "tmpfs", "mqueue"):
            if f not in fs:
                skip("kernel has no %s filesystem" % f)
        if not cgroup_hierarchies():
            skip("no cgroup hierarchy mounted under %s" % CGROUP_ROOT)
        if not os.path.exists("/proc/self/ns/net"):
            skip("no network namespaces")
        for b in ("skiff-apiserver", "skiff-kubelet", "skiff-shim"):
            testlib.need_bin(b)
        if not any(os.path.exists(os.path.join(d, "bridge")) for d in CNI_BIN_DIRS):
            skip("CNI plugins (bridge, host-local, loopback) not installed "
                 "(containernetworking-plugins)")

    def cluster(self, **kw):
        c = Cluster(self, **kw)
        self.clusters.append(c)
        return c

    def fatal(self, desc, detail=""):
        self.check(desc, False, detail)
        raise Fatal(desc)

    def finish(self):
        for c in self.clusters:
            c.teardown()
        signal.alarm(0)
        super().finish()

    def run(self, body):
        """Runs body(self); any exception is a failure; teardown and summary always happen."""
        try:
            body(self)
        except Fatal:
            pass
        except TestTimeout as e:
            self.check(str(e), False)
        except Exception as e:  # a bug in the test or an unexpected state: fail loudly
            import traceback
            self.check("unexpected %s: %s" % (type(e).__name__, e), False,
                       traceback.format_exc())
        finally:
            try:
                for c in self.clusters:
                    if self.failed:
                        c.dump_logs()
            except Exception:
                pass
            try:
                self.finish()
            except TestTimeout:
                print("FAIL - teardown exceeded the limit", flush=True)
                os._exit(1)


# ---------------------------------------------------------------------------------------------
# the cluster


def images_dir():
    d = os.environ.get("SKIFF_IMAGES") or os.path.join(
        os.environ.get("SKIFF_BIN") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "build"), "images")
    return os.path.abspath(d)


def busybox_tar(kind="oci"):
    """Path of busybox.<kind>.tar, built with deploy/images/build.sh when missing."""
    d = images_dir()
    p = os.path.join(d, "busybox.%s.tar" % kind)
    if os.path.exists(p):
        return p
    src = os.environ.get("SKIFF_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    script = os.path.join(src, "deploy", "images", "build.sh")
    if not os.path.exists(script):
        skip("deploy/images/build.sh is missing")
    log("building test images: %s %s" % (script, d))
    r = sh(["bash", script, d], timeout=300)
    if r.returncode != 0 or not os.path.exists(p):
        raise Fatal("deploy/images/build.sh failed (%d): %s %s" % (r.returncode, r.stdout[-2000:],
                                                                   r.stderr[-2000:]))
    return p


class ApiServer:
    """skiff-apiserver in the test netns; exposes what testlib.Client/Watch need."""

    def __init__(self, cluster):
        self.c = cluster
        self.exe = testlib.need_bin("skiff-apiserver")
        self.data = os.path.join(cluster.root, "apiserver")
        self.log_path = os.path.join(cluster.root, "apiserver.log")
        self.port = 6443
        self.insecure_port = 8080
        self.proc = None

    def start(self, timeout=60):
        args = ["nsenter", "--net=" + self.c.netns_path, self.exe,
                "--listen", "127.0.0.1:%d" % self.port,
                "--insecure-listen", "127.0.0.1:%d" % self.insecure_port,
                "--data-dir", self.data]
        log("starting " + " ".join(args))
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        end = time.time() + timeout
        tok = os.path.join(self.data, "pki", "admin.token")
        while True:
            if self.proc.poll() is not None:
                raise Fatal("skiff-apiserver exited during start-up (%s): %s" % (
                    self.proc.returncode, tail(self.log_path)))
            if os.path.exists(tok) and os.path.exists(
                    os.path.join(self.data, "admin.kubeconfig")):
                try:
                    self.token = read(tok).strip()
                    self.kubeconfig = os.path.join(self.data, "admin.kubeconfig")
                    _, ca, _ = testlib.load_kubeconfig(self.kubeconfig)
                    self.ca_file = os.path.join(self.c.root, "ca.crt")
                    with open(self.ca_file, "wb") as f:
                        f.write(ca or b"")
                    r = testlib.Client(self, timeout=3).get("/readyz")
                    if r.status == 200:
                        break
                except Exception:
                    pass
            if time.time() > end:
                raise Fatal("skiff-apiserver not ready within %d s: %s" % (
                    timeout, tail(self.log_path)))
            time.sleep(0.2)
        log("apiserver ready (pid %d)" % self.proc.pid)

    def ssl_context(self):
        import ssl
        return ssl.create_default_context(cafile=self.ca_file)

    def stop(self):
        stop_proc(self.proc)
        self.proc = None


def stop_proc(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def tail(path, lines=40):
    s = read(path, "") or ""
    return "\n".join(s.splitlines()[-lines:])


class Cluster:
    """apiserver + kubelet in a fresh netns. Use as a context manager (teardown always runs).

    kw: kubelet_args (extra flags), import_image (default True), write_cni (write our own
    conflist with a test-local host-local dataDir; False passes --pod-cidr instead),
    node_name."""

    def __init__(self, test, kubelet_args=(), import_image=True, write_cni=True,
                 node_name=NODE, start_kubelet=True):
        self.t = test
        self.pid = os.getpid()
        self.netns = "skiff-e2e-%d" % self.pid
        self.netns_path = "/run/netns/" + self.netns
        self.cgroup_parent = "skiff-test-%d" % self.pid
        self.root = tempfile.mkdtemp(prefix="skiff-e2e.", dir="/var/tmp")
        self.data = os.path.join(self.root, "kubelet")
        self.run_dir = os.path.join(self.root, "run")
        self.log_dir = os.path.join(self.root, "log")
        self.cni_conf = os.path.join(self.root, "cni", "net.d")
        self.cni_ipam = os.path.join(self.root, "cni", "ipam")
        self.kubelet_log = os.path.join(self.root, "kubelet.log")
        self.kubelet_args = list(kubelet_args)
        self.import_image = import_image
        self.write_cni = write_cni
        self.node = node_name
        self.want_kubelet = start_kubelet
        self.kubelet = None
        self.kubelet_starts = 0
        self.aux = []  # extra processes (registries, ...) to stop at teardown
        self._orig_netns = None
        self._torn_down = False
        self.api = None
        self._client = None

    # -- context ---------------------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, et, ev, tb):
        # Test.run reports the exception; here: logs while everything is still there, then
        # teardown.
        if et is not None or self.t.failed:
            self.dump_logs()
        self.teardown()
        return False

    def start(self):
        for d in (self.data, self.run_dir, self.log_dir, self.cni_conf, self.cni_ipam):
            os.makedirs(d, exist_ok=True)
        # the netns; the test process enters it so everything it runs stays inside
        r = sh(["ip", "netns", "add", self.netns])
        if r.returncode != 0:
            raise Fatal("ip netns add %s: %s" % (self.netns, r.stderr))
        self._orig_netns = os.open("/proc/self/ns/net", os.O_RDONLY)
        setns_net(self.netns_path)
        sh(["ip", "link", "set", "lo", "up"], check=True)
        if self.write_cni:
            self._write_conflist()
        self.api = ApiServer(self)
        self.api.start()
        if self.import_image:
            self.image_import(busybox_tar("oci"))
        if self.want_kubelet:
            self.start_kubelet()
            self.wait_node_ready()

    def _write_conflist(self):
        bin_dir = next(d for d in CNI_BIN_DIRS if os.path.exists(os.path.join(d, "bridge")))
        self.cni_bin = bin_dir
        conf = {
            "cniVersion": "1.0.0",
            "name": "skiff-e2e",
            "plugins": [
                {"type": "bridge", "bridge": "skiff0", "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": self.cni_ipam,
                          "ranges": [[{"subnet": POD_CIDR}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "loopback"},
            ],
        }
        with open(os.path.join(self.cni_conf, "10-skiff-e2e.conflist"), "w") as f:
            json.dump(conf, f, indent=1)

    # -- kubelet ---------------------------------------------------------------------------

    def kubelet_cmd(self):
        exe = testlib.need_bin("skiff-kubelet")
        args = ["nsenter", "--net=" + self.netns_path, exe,
                "--kubeconfig", self.api.kubeconfig,
                "--node-name", self.node, "--node-ip", "127.0.0.1",
                "--data-dir", self.data, "--run-dir", self.run_dir, "--log-dir", self.log_dir,
                "--cgroup-parent", self.cgroup_parent, "--cgroup-root", CGROUP_ROOT,
                "--cni-conf-dir", self.cni_conf, "--port", "0",
                "--v", "1"]
        tok = os.path.join(self.api.data, "pki", "kubelet-client.token")
        if os.path.exists(tok):
            args += ["--client-token-file", tok]
        for d in CNI_BIN_DIRS:
            if os.path.isdir(d):
                args += ["--cni-bin-dir", d]
        if not self.write_cni:
            args += ["--pod-cidr", POD_CIDR]
        return args + self.kubelet_args

    def start_kubelet(self):
        args = self.kubelet_cmd()
        self.kubelet_starts += 1
        log("starting kubelet (#%d): %s" % (self.kubelet_starts, " ".join(args)))
        f = open(self.kubelet_log, "ab")
        f.write(("\n==== kubelet start #%d ====\n" % self.kubelet_starts).encode())
        f.flush()
        self.kubelet = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        f.close()
        return self.kubelet

    def kubelet_alive(self):
        return self.kubelet is not None and self.kubelet.poll() is None

    def kill9_kubelet(self):
        if self.kubelet_alive():
            self.kubelet.send_signal(signal.SIGKILL)
            self.kubelet.wait(timeout=30)
        self.kubelet = None

    def stop_kubelet(self, grace=15):
        stop_proc(self.kubelet, grace)
        self.kubelet = None

    def wait_node_ready(self, timeout=60):
        def ready():
            if not self.kubelet_alive():
                raise Fatal("skiff-kubelet exited (%s) before its Node was Ready:\n%s" % (
                    self.kubelet.returncode if self.kubelet else "?", tail(self.kubelet_log)))
            r = self.client().get("/api/v1/nodes/" + self.node)
            if r.status != 200:
                return None
            for c in r.json.get("status", {}).get("conditions", []) or []:
                if c.get("type") == "Ready" and c.get("status") == "True":
                    return r.json
            return None
        n = self.wait_for(ready, timeout, "Node %s Ready" % self.node)
        if n is None:
            raise Fatal("Node %s not Ready within %d s:\n%s" % (self.node, timeout,
                                                              tail(self.kubelet_log)))
        self.node_obj = n
        log("node %s Ready" % self.node)
        return n

    def kubelet_port(self):
        r = self.client().get("/api/v1/nodes/" + self.node)
        return ((r.json or {}).get("status", {}).get("daemonEndpoints", {})
                .get("kubeletEndpoint", {}).get("Port"))

    def image_import(self, path, expect_ok=True):
        exe = testlib.need_bin("skiff-kubelet")
        r = sh([exe, "image", "import", path, "--data-dir", self.data], timeout=300)
        if expect_ok and r.returncode != 0:
            raise Fatal("skiff-kubelet image import %s exited %d: %s%s" % (
                path, r.returncode, r.stdout, r.stderr))
        return r

    # -- API -------------------------------------------------------------------------------

    def client(self):
        if self._client is None:
            self._client = testlib.Client(self.api, token=self.api.token, timeout=30)
        return self._client

    def create(self, obj, ns="default"):
        kind = obj["kind"]
        plural = {"Pod": "pods", "ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        r = self.client().post("/api/v1/namespaces/%s/%s" % (ns, plural), obj)
        if r.status != 201:
            raise Fatal("create %s %s: %r" % (kind, obj["metadata"]["name"], r))
        return r.json

    def create_pod(self, p, ns="default"):
        return self.create(p, ns)

    def get_pod(self, name, ns="default"):
        r = self.client().get("/api/v1/namespaces/%s/pods/%s" % (ns, name))
        return r.json if r.status == 200 else None

    def list_pods(self, ns="default"):
        r = self.client().get("/api/v1/namespaces/%s/pods" % ns)
        return (r.json or {}).get("items", []) if r.status == 200 else []

    def delete_pod(self, name, ns="default", grace=None):
        body = None
        if grace is not None:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace}
        return self.client().delete("/api/v1/namespaces/%s/pods/%s" % (ns, name), body=body)

    def events(self, name=None, ns="default"):
        r = self.client().get("/api/v1/namespaces/%s/events" % ns)
        items = (r.json or {}).get("items", []) if r.status == 200 else []
        if name:
            items = [e for e in items if e.get("involvedObject", {}).get("name") == name]
        return items

    def event_text(self, name, ns="default"):
        return "\n".join("%s %s: %s" % (e.get("type"), e.get("reason"), e.get("message"))
                         for e in self.events(name, ns))

    def wait_for(self, fn, timeout, desc="", interval=0.2):
        """Polls fn() until it returns something truthy; returns it, or None at the deadline."""
        end = time.time() + timeout
        n = 0
        while n < 100000:
            n += 1
            v = fn()
            if v:
                return v
            if time.time() > end:
                return None
            time.sleep(interval)
        return None

    def wait_pod(self, name, pred, timeout=60, ns="default"):
        """Waits until pred(pod) is true; returns (ok, last pod seen)."""
        last = [None]

        def f():
            p = self.get_pod(name, ns)
            last[0] = p
            return p is not None and pred(p)
        ok = bool(self.wait_for(f, timeout))
        return ok, last[0]

    def wait_running(self, name, timeout=60, ns="default", all_ready=True):
        """Waits for phase Running with every container running (and Ready); Fatal if not."""
        def pred(p):
            if phase(p) != "Running":
                return False
            css = p.get("status", {}).get("containerStatuses", []) or []
            if len(css) != len(p["spec"]["containers"]):
                return False
            return all("running" in (cs.get("state") or {}) and (cs.get("ready") or not
                                                                  all_ready) for cs in css)
        ok, p = self.wait_pod(name, pred, timeout, ns)
        if not ok:
            self.t.fatal("pod %s Running within %d s" % (name, timeout),
                         "last status: %s\nevents:\n%s\nkubelet log:\n%s" % (
                             json.dumps((p or {}).get("status"), indent=1)[:2500],
                             self.event_text(name, ns), tail(self.kubelet_log, 30)))
        return p

    def wait_gone(self, name, timeout=60, ns="default"):
        return self.wait_for(lambda: self.get_pod(name, ns) is None, timeout)

    # -- containers from the host side ------------------------------------------------------

    def container_state(self, cid):
        """state.json of a container (shim_pid, pid, started_at) or None."""
        return read_json(os.path.join(self.run_dir, "containers", cid, "state.json"))

    def container_pid(self, p, cname):
        cid = container_id(cstatus(p, cname))
        st = self.container_state(cid) if cid else None
        return int(st.get("pid") or 0) if st else 0

    def exec_in(self, p, cname, cmd, timeout=30):
        """Runs cmd inside a running container by entering its namespaces from the host
        (nsenter -t PID: mount, uts, ipc, net, pid, root, cwd). Independent of the kubelet's
        exec server. Returns CompletedProcess."""
        pid = self.container_pid(p, cname)
        if not pid or not pid_alive(pid):
            raise Fatal("container %s/%s has no live pid (status %s)" % (
                p["metadata"]["name"], cname, json.dumps(cstatus(p, cname))[:500]))
        return sh(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w"] + cmd,
                  timeout=timeout)

    def pod_cgroup_dirs(self, uid):
        """Directories of this pod's cgroup in every hierarchy (existing ones only)."""
        out = []
        for h in cgroup_hierarchies():
            base = os.path.join(h, self.cgroup_parent)
            if not os.path.isdir(base):
                continue
            for d in os.listdir(base):
                if uid in d and os.path.isdir(os.path.join(base, d)):
                    out.append(os.path.join(base, d))
        return out

    def container_cgroup(self, uid, cid, controller):
        """The container's cgroup dir in one v1 controller hierarchy (or v2), or None."""
        h = os.path.join(CGROUP_ROOT, controller)
        base = os.path.join(h, self.cgroup_parent)
        for root, dirs, files in os.walk(base):
            if uid in root and os.path.basename(root) == cid:
                return root
        for root, dirs, files in os.walk(base):  # container dir named differently
            if uid in root and cid[:12] in os.path.basename(root):
                return root
        return None

    def leftovers(self, p, pids=()):
        """What is left of a deleted pod on the host: a list of strings (empty = clean)."""
        uid = p["metadata"]["uid"]
        cids = [container_id(cs) for key in ("containerStatuses", "initContainerStatuses")
                for cs in p.get("status", {}).get(key, []) or []]
        cids = [c for c in cids if c]
        left = []
        for pid in pids:
            if pid_alive(pid):
                left.append("process %d still alive: %s" % (pid, cmdline(pid)))
        for pid in all_pids():
            cl = cmdline(pid)
            if uid in cl or any(c in cl for c in cids):
                left.append("process %d mentions the pod: %s" % (pid, cl))
        for mp, fstype, src in mountinfo():
            if uid in mp or any(c in mp for c in cids):
                left.append("mount %s (%s)" % (mp, fstype))
        for d in self.pod_cgroup_dirs(uid):
            left.append("cgroup %s" % d)
        sb = os.path.join(self.run_dir, "pods", uid)
        if os.path.exists(sb):
            left.append("sandbox dir %s: %s" % (sb, os.listdir(sb)))
        for c in cids:
            for d in (os.path.join(self.run_dir, "containers", c),
                      os.path.join(self.data, "containers", c)):
                if os.path.exists(d):
                    left.append("container dir %s" % d)
        vol = os.path.join(self.data, "pods", uid)
        if os.path.exists(vol):
            left.append("pod dir %s" % vol)
        return left

    def veths(self):
        return sorted(n for n, k in links().items() if k == "veth")

    def ipam_leases(self):
        """IPs host-local has handed out and not released."""
        out = []
        for root, dirs, files in os.walk(self.cni_ipam):
            for f in files:
                if re.match(r"^\d+\.\d+\.\d+\.\d+$", f):
                    out.append(f)
        return sorted(out)

    # -- processes around the test ----------------------------------------------------------

    def spawn(self, args, log_name):
        """A helper process (registry, fake server) in our netns, stopped at teardown."""
        f = open(os.path.join(self.root, log_name), "ab")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        f.close()
        self.aux.append(p)
        return p

    def kubectl(self, args, timeout=60, **kw):
        return sh(["kubectl", "--kubeconfig", self.api.kubeconfig] + args, timeout=timeout, **kw)

    def skiffctl(self, args, timeout=60, **kw):
        return sh([testlib.bin_path("skiffctl"), "--kubeconfig", self.api.kubeconfig] + args,
                  timeout=timeout, **kw)

    # -- logs ------------------------------------------------------------------------------

    def dump_logs(self):
        if getattr(self, "_dumped", False) or self._torn_down:
            return
        self._dumped = True
        print("---- last lines of the kubelet log (%s) ----" % self.kubelet_log)
        print(tail(self.kubelet_log, 60), flush=True)
        if self.api is not None:
            print("---- last lines of the apiserver log ----")
            print(tail(self.api.log_path, 15), flush=True)

    # -- teardown --------------------------------------------------------------------------

    def teardown(self):
        if self._torn_down:
            return
        self._torn_down = True
        signal.alarm(0)
        signal.alarm(120)  # teardown gets its own bounded time
        steps = [self._td_pods, self._td_kubelet, self._td_aux, self._td_processes,
                 self._td_mounts, self._td_cgroups, self._td_netns, self._td_dirs]
        for s in steps:
            try:
                s()
            except TestTimeout:
                print("teardown: out of time in %s" % s.__name__, flush=True)
                break
            except Exception as e:
                print("teardown: %s: %s" % (s.__name__, e), flush=True)
        # whatever remains after a timeout: the cheap, essential parts
        if not os.environ.get("SKIFF_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)
        signal.alarm(0)

    def _td_pods(self):
        if self.api is None or self.api.proc is None or self.api.proc.poll() is not None:
            return
        if not self.kubelet_alive():
            return
        try:
            pods = self.list_pods()
        except Exception:
            return
        # grace 1, not 0: with 0 the API server drops the object at once and the kubelet
        # cleans up after the fact (racing the kubelet's stop below); with a grace period the
        # kubelet tears the pod down first and then finishes the deletion.
        for p in pods:
            self.delete_pod(p["metadata"]["name"], grace=1)
        self.wait_for(lambda: not self.list_pods(), 30)

        def host_clean():
            for d in ("pods", "containers"):
                dd = os.path.join(self.run_dir, d)
                if os.path.isdir(dd) and os.listdir(dd):
                    return False
            return True
        self.wait_for(host_clean, 15)

    def _td_kubelet(self):
        self.stop_kubelet(grace=10)
        if self._client:
            self._client.close()
        if self.api is not None:
            self.api.stop()

    def _td_aux(self):
        for p in self.aux:
            stop_proc(p, grace=5)

    def _td_processes(self):
        kill_processes(self.cgroup_parent, self.root)

    def _td_mounts(self):
        found = umount_under([self.root])
        if found:
            log("teardown: unmounted %d mounts under %s" % (len(found), self.root))

    def _td_cgroups(self):
        for h in cgroup_hierarchies():
            remove_cgroup_tree(os.path.join(h, self.cgroup_parent))

    def _td_netns(self):
        if self._orig_netns is not None:
            _libc.setns(self._orig_netns, CLONE_NEWNET)
            os.close(self._orig_netns)
            self._orig_netns = None
        if os.path.exists(self.netns_path):
            sh(["ip", "netns", "del", self.netns])

    def _td_dirs(self):
        if os.environ.get("SKIFF_KEEP"):
            log("SKIFF_KEEP: leaving %s" % self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)
