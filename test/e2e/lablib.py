"""What the e2e tests share to drive a lab (deploy/lab.sh): running lab.sh and kubectl in it
with the test's environment (its own SKIFF_LAB_NAME/SKIFF_LAB_DIR, SKIFF_LAB_NOBUILD=1, ...),
bounded waits, and snapshots of the host (netns, links, mounts, cgroups) taken before `up` and
compared after `down`. Not a test itself (no _test suffix: CTest does not run it).

Each test calls configure(env) once with its environment before it runs anything."""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import traceback

import testlib  # the tests put test/integration on sys.path before importing lablib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.environ.get("SKIFF_SRC") or os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("SKIFF_BIN") or os.path.join(SRC, "build"))
LAB = os.path.join(SRC, "deploy", "lab.sh")
_env = dict(os.environ)


class Fatal(Exception):
    pass


class Timeout(Exception):
    pass


def configure(env):
    """The environment every command below runs with (the lab's name, dir, build dir...)."""
    global _env
    _env = dict(env)


def lab_env(default_name, **extra):
    """Configures (and returns as name, dir, env) a lab of the test's own: SKIFF_E2E_LAB_NAME /
    SKIFF_E2E_LAB_DIR (default <default_name>, /tmp/<default_name>), the build dir, no build
    by lab.sh (CTest built), a 150 s `up` timeout, plus `extra` variables. Labs with different
    names (namespaces, cgroups) run side by side, so a test neither disturbs nor is disturbed by
    a lab someone else runs (bench/net.sh, people)."""
    name = os.environ.get("SKIFF_E2E_LAB_NAME", default_name)
    d = os.environ.get("SKIFF_E2E_LAB_DIR", "/tmp/" + default_name)
    env = dict(os.environ, SKIFF_LAB_NAME=name, SKIFF_LAB_DIR=d, SKIFF_BUILD_DIR=BIN,
               SKIFF_LAB_NOBUILD="1", SKIFF_LAB_TIMEOUT="150", **extra)
    configure(env)
    return name, d, env


def run(cmd, timeout=60, input=None):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env,
                              input=input)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, -1, e.stdout or "",
                                           "timed out after %ds" % timeout)


def lab(*args, timeout=60, input=None):
    return run(["bash", LAB] + list(args), timeout=timeout, input=input)


def lab_exec(node, *cmd, timeout=60, input=None):
    return lab("exec", node, *cmd, timeout=timeout, input=input)


def kubectl(*args, timeout=30, input=None):
    return lab_exec("node1", "kubectl", "--request-timeout", "20s", *args, timeout=timeout,
                    input=input)


def out(r):
    return ("exit %s\n%s%s" % (r.returncode, r.stdout, r.stderr)).strip()


def wait_for(fn, timeout, interval=0.5):
    """Polls fn() until truthy; returns its value or None at the deadline (bounded)."""
    end = time.time() + timeout
    for _ in range(100000):
        v = fn()
        if v:
            return v
        if time.time() > end:
            return None
        time.sleep(interval)
    return None


def is_ready(p):
    """A pod (API JSON) Running with condition Ready True and not being deleted."""
    if (p.get("metadata") or {}).get("deletionTimestamp"):
        return False
    st = p.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def snapshot():
    """The host's network namespaces, links, mounts and cgroup directories, sorted."""
    s = {}
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    s["netns"] = sorted(l.split()[0] for l in r.stdout.splitlines() if l.strip())
    r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    s["links"] = sorted(l.split(":")[1].strip().split("@")[0] for l in r.stdout.splitlines()
                        if ":" in l)
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mounts.append("%s (%s)" % (left.split()[4], right.split()[0] if right else "?"))
    # iproute2 creates the /run/netns mount on first use and keeps it: not the lab's.
    s["mounts"] = sorted(m for m in mounts if not m.startswith("/run/netns ("))
    cg = []
    for root in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", d)
                                      for d in sorted(os.listdir("/sys/fs/cgroup"))]:
        if os.path.isdir(root):
            try:
                cg += [os.path.join(root, d) for d in os.listdir(root)
                       if os.path.isdir(os.path.join(root, d))]
            except OSError:
                pass
    s["cgroups"] = sorted(cg)
    return s


def lab_related(item):
    """True when a snapshot entry names the configured lab (its name prefix or its dir)."""
    name, d = _env.get("SKIFF_LAB_NAME"), _env.get("SKIFF_LAB_DIR")
    return bool((name and name in item) or (d and d in item))


def compare_snapshots(checks, before, after, log):
    """One check per kind: nothing of the lab is left after `down` that was not there before
    `up` (every new link counts: the lab's links carry no common name). New entries that are
    not the lab's are only logged (another process on the machine made them)."""
    for key in ("netns", "links", "mounts", "cgroups"):
        new = sorted(set(after[key]) - set(before[key]))
        ours = [x for x in new if lab_related(x) or key == "links"]
        others = [x for x in new if x not in ours]
        checks.check("after down: no %s left by the lab (as before up)" % key, not ours,
                     "\n".join(ours))
        if others:
            log("NOTE: %s appeared meanwhile, not the lab's (another process?): %s" % (
                key, others[:10]))


def dump_logs(files, lines=25):
    """The last `lines` lines of each daemon log (paths relative to the lab dir)."""
    for f in files:
        p = os.path.join(_env.get("SKIFF_LAB_DIR", ""), f)
        try:
            with open(p, errors="replace") as fh:
                tail = fh.read().splitlines()[-lines:]
        except OSError:
            continue
        print("---- %s ----" % p)
        print("\n".join(tail), flush=True)


def has_flag(binary, flag):
    """True when BIN/binary's --help lists flag (how a test tells which pieces are built)."""
    try:
        r = subprocess.run([os.path.join(BIN, binary), "--help"], capture_output=True,
                           text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(re.search(r"(^|[ ,])%s([ =,{\[:]|$)" % re.escape(flag), line)
               for line in (r.stdout + r.stderr).splitlines())


def keep_logs(dest, nodes, log=print):
    """Copies every node's daemon logs (<lab dir>/<node>/*.log) to dest/<node>/ (if dest)."""
    if not dest:
        return
    for n in nodes:
        src = os.path.join(_env.get("SKIFF_LAB_DIR", ""), n)
        if os.path.isdir(src):
            os.makedirs(os.path.join(dest, n), exist_ok=True)
            for f in os.listdir(src):
                if f.endswith(".log"):
                    shutil.copy(os.path.join(src, f), os.path.join(dest, n, f))
    log("daemon logs copied to %s" % dest)


def need_lab(bins):
    """Exits 77 (testlib.skip, with the reason) unless a lab can run here: root, the host tools
    lab.sh uses, the binaries `bins` in the build dir, lab.sh, network namespaces and cgroups."""
    if os.geteuid() != 0:
        testlib.skip("needs root (namespaces, mounts, cgroups, nftables)")
    for tool in ("ip", "nsenter", "unshare", "kubectl", "python3", "curl"):
        if shutil.which(tool) is None:
            testlib.skip("%s is not installed" % tool)
    for b in bins:
        testlib.need_bin(b)
    if not os.path.exists(LAB):
        testlib.skip("%s is missing" % LAB)
    if not os.path.exists("/proc/self/ns/net") or not os.path.isdir("/sys/fs/cgroup"):
        testlib.skip("no network namespaces or no cgroups")


def busybox_image():
    """BIN/images/busybox.oci.tar (the lab's pod image), built by deploy/images/build.sh when
    missing; exits 77 when it cannot be built."""
    img = os.path.join(BIN, "images", "busybox.oci.tar")
    if not os.path.exists(img):
        r = subprocess.run(["bash", os.path.join(SRC, "deploy", "images", "build.sh"),
                            os.path.join(BIN, "images")], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            testlib.skip("cannot build the busybox image: %s" % r.stderr[-500:])
    return img


class LabChecks(testlib.Checks):
    """testlib.Checks with what every e2e test's phases use: a fatal check (ends the body, the
    teardown still runs), named durations, and `kubectl get -o json`."""

    def __init__(self):
        super().__init__()
        self.timings = []

    def fatal(self, desc, detail=""):
        self.check(desc, False, detail)
        raise Fatal(desc)

    def timing(self, what, s):
        self.timings.append((what, s))
        print("# [%s] %s: %.2f s" % (time.strftime("%H:%M:%S"), what, s), flush=True)

    def get_json(self, *args):
        """`kubectl get ARGS -o json` parsed; None when kubectl fails or prints no JSON."""
        r = kubectl("get", *args, "-o", "json")
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def dump_logs(self):
        """Prints the daemons' logs that explain a failure (each test names its own)."""


def run_lab_test(t, body, limit, log, nodes=("node1", "node2", "node3")):
    """Runs body() (which brings the lab up) inside `limit` seconds, after a `lab.sh down` of a
    leftover lab and a snapshot of the host. Whatever happens in body (a fatal check, the limit,
    SIGTERM, an exception: each is a failed check), the teardown runs with its own 180 s bound:
    t.dump_logs() if a check failed, SKIFF_E2E_KEEP_LOGS, `lab.sh down` (a check) and one check
    per kind of host state that nothing of the lab is left. Ends with the timings."""
    started = time.time()

    def on_alarm(signum, frame):
        raise Timeout("test exceeded its %d s limit" % limit)

    def on_term(signum, frame):
        raise Timeout("terminated (SIGTERM)")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(limit)
    # A lab left by an earlier run goes first, so the snapshot shows the machine without it.
    lab("down", timeout=120)
    before = snapshot()
    try:
        body()
    except Fatal:
        pass
    except Timeout as e:
        t.check(str(e), False)
    except Exception as e:
        t.check("unexpected %s: %s" % (type(e).__name__, e), False, traceback.format_exc())
    finally:
        signal.alarm(0)
        signal.alarm(180)  # teardown gets its own bound
        try:
            if t.failed:
                t.dump_logs()
            keep_logs(os.environ.get("SKIFF_E2E_KEEP_LOGS"), nodes, log)
            t0 = time.time()
            r = lab("down", timeout=150)
            t.check("lab.sh down (%.1f s)" % (time.time() - t0), r.returncode == 0, out(r))
            compare_snapshots(t, before, snapshot(), log)
        except Timeout as e:
            t.check("teardown: %s" % e, False)
        signal.alarm(0)
    for what, s in t.timings:
        log("timing: %-60s %7.2f s" % (what, s))
    log("whole test: %.1f s" % (time.time() - started))


# The API watcher (ApiWatch): runs in node1's namespaces (the API server is on the lab LAN) with
# the admin kubeconfig's token and CA. For each RES=PATH argument it lists PATH, then watches it
# from the list's resourceVersion (re-watching from the last one seen when the stream ends,
# listing again after 410 Gone), and prints one JSON line per object state it sees:
# {"t": time, "res": RES, "type": LIST|ADDED|MODIFIED|DELETED, "obj": the object}, a
# {"type": SYNCED, "obj": {"synced": true}} line after each list, and {"res", "err"} lines for
# errors. Runs at most argv[2] seconds; every read has a timeout.
WATCH_SCRIPT = r"""
import base64, http.client, json, re, ssl, sys, threading, time
kc = open(sys.argv[1]).read()
token = re.search(r"token:\s*(\S+)", kc).group(1)
ca = base64.b64decode(re.search(r"certificate-authority-data:\s*(\S+)", kc).group(1)).decode()
ctx = ssl.create_default_context(cadata=ca)
end = time.time() + float(sys.argv[2])
lock = threading.Lock()
def emit(d):
    d["t"] = time.time()
    line = json.dumps(d)
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
def get(path, timeout):
    c = http.client.HTTPSConnection("10.250.0.11", 6443, context=ctx, timeout=timeout)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    return c, c.getresponse()
def follow(res, path):
    rv = None
    for _ in range(10000):
        if time.time() > end:
            return
        try:
            if rv is None:
                c, r = get(path, 20)
                body = r.read()
                c.close()
                if r.status != 200:
                    raise RuntimeError("list: HTTP %d %s" % (r.status, body[:200]))
                lst = json.loads(body)
                for o in lst.get("items") or []:
                    emit({"res": res, "type": "LIST", "obj": o})
                emit({"res": res, "type": "SYNCED", "obj": {"synced": True}})
                rv = lst["metadata"]["resourceVersion"]
            left = int(max(1, min(60, end - time.time())))
            c, r = get(path + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d"
                       "&resourceVersion=%s" % (left, rv), left + 30)
            if r.status == 410:
                rv = None
                continue
            if r.status != 200:
                raise RuntimeError("watch: HTTP %d %s" % (r.status, r.read()[:200]))
            for line in r:
                if time.time() > end:
                    break
                if not line.strip():
                    continue
                ev = json.loads(line)
                o = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    if o.get("code") == 410:
                        rv = None
                        break
                    raise RuntimeError("watch ERROR %s" % o)
                rv = (o.get("metadata") or {}).get("resourceVersion") or rv
                if ev.get("type") != "BOOKMARK":
                    emit({"res": res, "type": ev.get("type"), "obj": o})
            c.close()
        except Exception as e:
            emit({"res": res, "err": "%s: %s" % (type(e).__name__, e)})
            time.sleep(0.5)
ths = [threading.Thread(target=follow, args=a.split("=", 1), daemon=True) for a in sys.argv[3:]]
for t in ths:
    t.start()
for t in ths:
    t.join()
"""


class ApiWatch:
    """Every state the API server reports for some resources (RES=PATH, e.g.
    pods=/api/v1/namespaces/default/pods), in the order of the watch streams, recorded by
    WATCH_SCRIPT in node1's namespaces for at most max_s seconds. A watch sees every change
    a poll could miss (a pod Running for a moment), which is what ordering and "never more
    than N at once" checks need. stop() ends it; the lab's `down` would too."""

    def __init__(self, lab_dir, resources, max_s=900):
        self.lock = threading.Lock()
        self._events = []
        self.errors = []
        self.p = subprocess.Popen(
            ["bash", LAB, "exec", "node1", "python3", "-u", "-c", WATCH_SCRIPT,
             os.path.join(lab_dir, "admin.kubeconfig"), str(max_s)] +
            ["%s=%s" % rp for rp in resources],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env)
        self.th = threading.Thread(target=self._read, daemon=True)
        self.th.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                e = {"err": line.strip()}
            with self.lock:
                (self.errors if "err" in e else self._events).append(e)

    def events(self, res=None, pred=None):
        """The recorded events (of resource `res`, whose object satisfies pred), in order."""
        with self.lock:
            evs = list(self._events)
        return [e for e in evs if (res is None or e["res"] == res) and
                (pred is None or pred(e["obj"]))]

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.th.join(timeout=5)
