"""Shared harness for the controller tests (not a test itself): skiff-controller-manager and
skiff-scheduler against a real skiff-apiserver (testlib.Server), with no kubelet.

Used by controller_manager_test, scheduler_test, replicaset_test, deployment_test,
gc_nodelifecycle_test and skiffctl_rollout_test. What is here:
- Daemon: one controller daemon (--kubeconfig of the server's admin kubeconfig), its log in the
  server's temp dir, stopped by testlib's cleanup on every path; /healthz and /metrics over
  plain HTTP when it was given a port; controller_manager() / elected() build the usual flags.
- wait_for: poll until a function returns something true (or give up, log it, return it).
- lease_holder: the holder of a kube-system leader-election Lease.
- Kubelets: a thread that plays the kubelets (marks pods Running + Ready after a delay).
- begin (yaml, deadline, Checks), workload_paths (deployments/replicasets/pods of a namespace).
- small API helpers: create_namespace (a named check), events_for, is_ready, ready_status, ann,
  write (a file in a temp dir).
Loopback only; no root needed.
"""
import os
import signal
import subprocess
import threading
import time
import urllib.request

import testlib

MERGE = "application/merge-patch+json"
REV = "deployment.kubernetes.io/revision"
# Short leader-election periods so takeovers happen within a test's time.
SHORT_LEADER_ELECTION = ["--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline",
                         "3s", "--leader-elect-retry-period", "1s"]


def begin(seconds):
    """The start of every controller test: python3-yaml present (testlib.Server reads the
    kubeconfig), a hard limit of `seconds` for the whole test; returns its Checks."""
    testlib.ensure_modules("yaml")
    testlib.deadline(seconds)
    return testlib.Checks()


def workload_paths(ns):
    """API paths of the Deployments, ReplicaSets and Pods of namespace ns."""
    return ("/apis/apps/v1/namespaces/%s/deployments" % ns,
            "/apis/apps/v1/namespaces/%s/replicasets" % ns, "/api/v1/namespaces/%s/pods" % ns)


class Daemon:
    """One controller daemon process; stopped by testlib's cleanup on every path.

    exe: the binary (testlib.need_bin, called by the test first so a missing one skips before
    anything starts); log_name: its log file in srv.dir; flags: after --kubeconfig; port: the
    --port it serves /healthz and /metrics on (None: --port is up to the flags)."""

    def __init__(self, exe, srv, log_name, flags=(), ident=None, port=None):
        self.ident = ident or os.path.basename(exe)
        self.port = port
        self.log_path = os.path.join(srv.dir, log_name)
        args = [exe, "--kubeconfig", srv.kubeconfig] + list(flags)
        testlib.log("starting " + " ".join(args))
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        testlib._servers.append(self)

    def alive(self):
        return self.proc.poll() is None

    def get(self, path):
        """(HTTP status, body) of GET path on its --port; (None, error) when it does not answer."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except OSError as e:
            return None, str(e)

    def metric(self, prefix):
        """The value of the first /metrics sample line starting with prefix (None if none)."""
        code, body = self.get("/metrics")
        if code != 200:
            return None
        for line in body.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        return None

    def leader_metric(self):
        v = self.metric("leader_election_master_status{")
        return None if v is None else int(v)

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        try:
            self.logf.close()
        except Exception:
            pass

    def tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def dump_log(self, n=40):
        print("---- %s log ----\n%s" % (self.ident, self.tail(n)), flush=True)


def controller_manager(exe, srv, *flags, log_name="controller-manager.log"):
    """skiff-controller-manager without leader election and without its HTTP port."""
    return Daemon(exe, srv, log_name, ["--leader-elect=false", "--port", "0"] + list(flags),
                  ident="controller-manager")


def elected(exe, srv, ident, log_name, *flags):
    """A daemon with short leader-election periods, --id ident and /healthz+/metrics on a free
    port (for tests that run two replicas and watch the Lease)."""
    port = testlib.free_port()
    return Daemon(exe, srv, log_name,
                  list(flags) + SHORT_LEADER_ELECTION + ["--id", ident, "--port", str(port)],
                  ident=ident, port=port)


def wait_for(what, fn, timeout=20, interval=0.2):
    """fn() once it is true; after timeout s its last (false) value, and a log line."""
    end = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            testlib.log("gave up waiting for " + what)
            return v
        time.sleep(interval)


def lease_path(name):
    return "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/" + name


def lease_holder(api, name):
    """holderIdentity of the kube-system Lease name ("" when released, None when absent)."""
    r = api.get(lease_path(name))
    if r.status != 200:
        return None
    return (r.json.get("spec") or {}).get("holderIdentity", "")


def create_namespace(api, t, name):
    r = api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": name}})
    t.check("create namespace " + name, r.status == 201, r)
    return r


def events_for(api, name, ns="default", reason=None):
    """Events in ns about the object called name (with that reason, when given)."""
    r = api.get("/api/v1/namespaces/%s/events" % ns)
    if r.status != 200:
        return []
    return [e for e in r.json["items"]
            if e.get("involvedObject", {}).get("name") == name and
            (reason is None or e.get("reason") == reason)]


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def is_ready(p):
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def ready_status():
    """A pods/status merge patch saying what a kubelet says of a started pod: Running, Ready."""
    return {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339()}]}}


def ann(obj, key):
    return ((obj or {}).get("metadata") or {}).get("annotations", {}).get(key)


def write(directory, name, text):
    p = os.path.join(directory, name)
    with open(p, "w") as f:
        f.write(text)
    return p


class Kubelets(threading.Thread):
    """Plays the kubelets of a cluster without any: marks each pod under pod_path Running + Ready
    `delay` s after first seeing it; never a terminating pod nor one whose first container's
    image is "broken" (a rollout that never becomes ready). Stop with stop_ev.set()."""

    def __init__(self, srv, pod_path, delay, max_rounds=20000):
        super().__init__(daemon=True)
        self.stop_ev = threading.Event()
        self.client = srv.client()
        self.pod_path = pod_path
        self.delay = delay
        self.max_rounds = max_rounds
        self.seen = {}

    def run(self):
        rounds = 0
        while not self.stop_ev.wait(0.2) and rounds < self.max_rounds:
            rounds += 1
            try:
                r = self.client.get(self.pod_path)
                if r.status != 200:
                    continue
                now = time.time()
                for p in r.json["items"]:
                    name = p["metadata"]["name"]
                    if p["metadata"].get("deletionTimestamp") or is_ready(p):
                        continue
                    if p["spec"]["containers"][0].get("image") == "broken":
                        continue
                    if now - self.seen.setdefault(name, now) < self.delay:
                        continue
                    self.client.patch("%s/%s/status" % (self.pod_path, name), ready_status(),
                                      MERGE)
            except Exception as e:  # keep playing kubelet through transient errors
                testlib.log("kubelet thread: %r" % e)
