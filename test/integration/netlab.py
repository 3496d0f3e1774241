"""Network-namespace labs for the root-only integration tests (not a test itself).

A lab is a set of namespaces: one holds a bridge br0 (the LAN), the others an eth0 on it with a
/24 address. The tests start their daemons inside with `ip netns exec` and talk to an API server
from one namespace (the test process setns()es there). Everything here is what netagent_test.py,
netagent_svc_test.py and lb_test.py each used to carry a copy of.
"""
import os
import signal
import subprocess
import sys
import time
import traceback

import testlib


def sh(cmd, check=True, timeout=30):
    """Runs `cmd` (a list, or a string for the shell); raises with its stderr when it fails and
    `check` is set."""
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (cmd, r.returncode, r.stderr.strip()))
    return r


def nsx(ns, cmd, **kw):
    """`cmd` inside network namespace `ns`."""
    return sh(["ip", "netns", "exec", ns] + cmd, **kw)


def setns(path):
    """Moves the calling process into the network namespace at `path` (/run/netns/NAME)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


def tail(path, n=30):
    """The last `n` lines of a log file ("" when it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-n:])
    except OSError:
        return ""


def wait_for(pred, seconds, step=0.3):
    """Calls `pred` until it returns something true or `seconds` passed; returns its last value."""
    end = time.time() + seconds
    while True:
        v = pred()
        if v or time.time() >= end:
            return v
        time.sleep(step)


def teardown(popens, namespaces):
    """Kills every process still running in `popens`, then deletes `namespaces` (the ones that do
    not exist are ignored: also used to remove the leftovers of a killed earlier run)."""
    for p in popens:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def build_lan(namespaces, lan, ends, veth_prefix="veth-"):
    """Creates `namespaces` (loopback up) and the LAN: bridge br0 in `lan`, and for each
    (key, ns, ip) of `ends` a veth <veth_prefix><key> on br0 whose peer is eth0 ip/24 in ns."""
    for ns in namespaces:
        sh(["ip", "netns", "add", ns])
        nsx(ns, ["ip", "link", "set", "lo", "up"])
    nsx(lan, ["ip", "link", "add", "br0", "type", "bridge"])
    nsx(lan, ["ip", "link", "set", "br0", "up"])
    for k, ns, ip in ends:
        sh(["ip", "-n", lan, "link", "add", veth_prefix + k, "type", "veth", "peer", "name",
            "eth0", "netns", ns])
        sh(["ip", "-n", lan, "link", "set", veth_prefix + k, "master", "br0", "up"])
        sh(["ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])


class Api:
    """The admin client of a skiff-apiserver started with --data-dir `data`, used from inside
    the namespace the test process setns'd to. Tests subclass it for their object helpers."""

    def __init__(self, data, kc, port):
        _, ca, _ = testlib.load_kubeconfig(kc)
        self.ca_file = os.path.join(data, "test-ca.crt")
        with open(self.ca_file, "wb") as f:
            f.write(ca or b"")
        with open(os.path.join(data, "pki", "admin.token")) as f:
            self.token = f.read().strip()
        self.port = port
        self.c = testlib.Client(self, token=self.token)

    def ssl_context(self):
        import ssl
        return ssl.create_default_context(cafile=self.ca_file)

    def get(self, path):
        return self.c.get(path)


def apiserver_args(ip, port, data):
    """skiff-apiserver's command line for a lab: listens on every address of its namespace, its
    certificate valid for (and advertising) `ip`."""
    return [testlib.need_bin("skiff-apiserver"), "--listen", "0.0.0.0:%d" % port, "--tls-san",
            ip, "--advertise-address", ip, "--data-dir", data]


def wait_apiserver(p, data, port, log_path, api_cls=Api, seconds=60):
    """Waits until the skiff-apiserver `p` (started with apiserver_args(..., data)) answers
    /readyz 200; returns (api_cls instance, admin kubeconfig path). Raises with the tail of its
    log when it exits or is not ready in `seconds`."""
    kc = os.path.join(data, "admin.kubeconfig")
    end = time.time() + seconds
    while time.time() < end:
        if p.poll() is not None:
            raise RuntimeError("skiff-apiserver exited: " + tail(log_path))
        if os.path.exists(kc) and os.path.exists(os.path.join(data, "pki", "admin.token")):
            try:
                api = api_cls(data, kc, port)
                if api.get("/readyz").status == 200:
                    return api, kc
            except OSError:
                pass
        time.sleep(0.3)
    raise RuntimeError("skiff-apiserver not ready in %d s: %s" % (seconds, tail(log_path)))


def print_logs(named_paths):
    """The tail of each (name, log path) whose path is set, to explain a failure."""
    for name, path in named_paths:
        if path:
            print("---- %s log (tail) ----\n%s" % (name, tail(path, 40)), flush=True)


def run_main(main, cleanup, dump_logs, limit=300):
    """Runs main() (a test's body, returning or exiting with its code) within `limit` seconds and
    exits with its code. An exception is a failure (traceback, dump_logs()); the limit is a
    failure too. cleanup() runs in every case."""
    def on_alarm(signum, frame):
        print("FAIL - test exceeded its %d s limit" % limit, flush=True)
        cleanup()
        testlib._cleanup_all()
        os._exit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    rc = 1
    try:
        rc = main()
    except SystemExit as e:
        rc = e.code
    except Exception:  # a setup failure is a failure, after cleanup
        traceback.print_exc()
        dump_logs()
        rc = 1
    finally:
        cleanup()
    sys.exit(rc)
