"""Shared helpers for the Python integration tests (not a test itself).

Environment: SKIFF_BIN (build dir with skiff-apiserver), SKIFF_SRC (source dir).
Exit codes follow CTest: 0 pass, 1 fail, 77 skipped (reason printed). Only 127.0.0.1 is used.
"""
import atexit
import base64
import http.client
import importlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

SKIP = 77


def ensure_modules(*names):
    """Debian's python3 carries python3-yaml / python3-kubernetes; a pyenv `python3` first on PATH
    does not. Re-exec under /usr/bin/python3 when a module is missing there but present here."""
    missing = []
    for n in names:
        try:
            importlib.import_module(n)
        except ImportError:
            missing.append(n)
    if not missing:
        return
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system) \
            and not os.environ.get("SKIFF_REEXEC"):
        os.environ["SKIFF_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    skip("python modules missing: %s (install python3-%s)" % (
        ", ".join(missing), " python3-".join(missing)))


def skip(reason):
    print("SKIPPED: " + reason, flush=True)
    sys.exit(SKIP)


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Checks:
    """Named checks: every one is printed; the test fails if any failed."""

    def __init__(self):
        self.total = 0
        self.failed = 0

    def check(self, desc, ok, detail=""):
        self.total += 1
        if ok:
            print("ok   - " + desc, flush=True)
        else:
            self.failed += 1
            print("FAIL - " + desc, flush=True)
            if detail:
                for line in str(detail)[:3000].splitlines():
                    print("       | " + line, flush=True)
        return ok

    def eq(self, desc, got, want):
        return self.check(desc, got == want, "want: %r\ngot:  %r" % (want, got))

    def finish(self):
        print("%d/%d checks passed" % (self.total - self.failed, self.total), flush=True)
        sys.exit(1 if self.failed else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bin_path(name):
    b = os.environ.get("SKIFF_BIN") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
    return os.path.join(b, name)


def need_bin(name):
    p = bin_path(name)
    if not os.access(p, os.X_OK):
        skip("%s is not built" % p)
    return p


def deadline(seconds):
    """Hard limit for the whole test: a hang becomes a failure, not a CTest timeout."""
    def on_alarm(signum, frame):
        print("FAIL - test exceeded its %d s limit" % seconds, flush=True)
        os._exit(1)  # atexit does not run after os._exit: clean up here
    signal.signal(signal.SIGALRM, lambda s, f: (_cleanup_all(), on_alarm(s, f)))
    signal.alarm(seconds)


_servers = []
_tmpdirs = []


def _cleanup_all():
    # API servers before the etcd they may be using (a server stopping flushes to its store).
    for s in sorted(_servers, key=lambda s: isinstance(s, Etcd)):
        s.stop()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    _tmpdirs.clear()


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, lambda s, f: sys.exit(1))


def stop_process(proc):
    """SIGTERM, then SIGKILL after 10 s; waits for the exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def tmpdir():
    d = tempfile.mkdtemp(prefix="skiff-test.")
    _tmpdirs.append(d)
    return d


class Kubectl:
    """A kubectl binary against the server of `kubeconfig`, with a discovery cache dir of its
    own; `flavour` ("current", "v1.20") prefixes its check lines."""

    def __init__(self, checks, flavour, exe, kubeconfig, timeout=60):
        self.t, self.flavour, self.exe, self.kubeconfig = checks, flavour, exe, kubeconfig
        self.timeout = timeout
        self.cache = os.path.join(tmpdir(), "kube-cache")

    def run(self, *args, stdin=None, timeout=None):
        return subprocess.run([self.exe, "--kubeconfig", self.kubeconfig, "--cache-dir",
                               self.cache] + list(args), capture_output=True, text=True,
                              timeout=timeout or self.timeout, input=stdin)

    def ok(self, desc, *args, stdin=None, timeout=None):
        """Runs kubectl and checks it exits 0."""
        r = self.run(*args, stdin=stdin, timeout=timeout)
        self.t.check("[%s] %s" % (self.flavour, desc), r.returncode == 0, r.stderr + r.stdout)
        return r


def lines_matching(text, pattern):
    """The lines of text that the regular expression pattern matches (kubectl tables)."""
    return [ln for ln in text.splitlines() if re.search(pattern, ln)]


def kubectl_flavours():
    """[(flavour, path)] of the kubectls a test runs with: the machine's ("current") and
    Debian's 1.20 ("v1.20", unpacked by test/tools/kubectl120.sh); a SKIPPED line for each
    that cannot be had."""
    out = []
    exe = shutil.which("kubectl")
    if exe:
        out.append(("current", exe))
    else:
        print("SKIPPED: no kubectl on PATH: the machine-kubectl half", flush=True)
    src = os.environ.get("SKIFF_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    r = subprocess.run(["bash", os.path.join(src, "test", "tools", "kubectl120.sh")],
                       capture_output=True, text=True, timeout=300)
    if r.returncode == 0 and r.stdout.strip():
        out.append(("v1.20", r.stdout.strip()))
    else:
        print("SKIPPED: Debian's kubectl 1.20 could not be had: that half\n" +
              "\n".join("       | " + ln for ln in r.stderr.splitlines()), flush=True)
    return out


def load_kubeconfig(path):
    """Returns (server URL, CA PEM bytes or None, token or None) of the current context."""
    import yaml
    with open(path) as f:
        kc = yaml.safe_load(f)
    ctx_name = kc.get("current-context")
    ctxs = {c["name"]: c["context"] for c in kc.get("contexts", [])}
    ctx = ctxs.get(ctx_name) or next(iter(ctxs.values()))
    cluster = {c["name"]: c["cluster"] for c in kc["clusters"]}[ctx["cluster"]]
    user = {u["name"]: u.get("user", {}) for u in kc.get("users", [])}.get(ctx.get("user"), {})
    ca = None
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        with open(cluster["certificate-authority"], "rb") as f:
            ca = f.read()
    return cluster["server"], ca, user.get("token")


def etcd_binary():
    """etcd to run: $SKIFF_ETCD, else `etcd` on PATH, else Debian's etcd-server unpacked (never
    installed: the package would start a system etcd) by test/tools/deb_unpack.sh; else skip."""
    if os.environ.get("SKIFF_ETCD"):
        return os.environ["SKIFF_ETCD"]
    found = shutil.which("etcd")
    if found:
        return found
    src = os.environ.get("SKIFF_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    r = subprocess.run(["bash", os.path.join(src, "test", "tools", "deb_unpack.sh"),
                        "etcd-server", "usr/bin/etcd"], capture_output=True, text=True,
                       timeout=600)
    path = r.stdout.strip()
    if r.returncode != 0 or not os.access(path, os.X_OK):
        skip("no etcd: deb_unpack.sh etcd-server failed: " + (r.stderr or r.stdout).strip()[-300:])
    return path


def make_certs(dir, name, sans=(), issuer=None):
    """With the openssl CLI: a CA (issuer None: `name` is a self-signed CA) or a certificate for
    `sans` ("IP:127.0.0.1") signed by `issuer` (a (crt, key) pair). Returns (crt, key)."""
    crt, key = os.path.join(dir, name + ".crt"), os.path.join(dir, name + ".key")
    def run(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit("FAIL: openssl %s: %s" % (args[0], r.stderr.strip()[-300:]))
    if issuer is None:
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
            "-days", "2", "-subj", "/CN=" + name)
        return crt, key
    csr, ext = os.path.join(dir, name + ".csr"), os.path.join(dir, name + ".ext")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    with open(ext, "w") as f:
        if sans:
            f.write("subjectAltName=" + ",".join(sans) + "\n")
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1], "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


class Etcd:
    """A one-member etcd on free loopback ports with a data dir of its own; stopped at exit.
    tls=True: clients reach it over HTTPS and must present a certificate of its CA (made here:
    self.ca, and self.client = (crt, key) for skiff-apiserver)."""

    def __init__(self, tls=False):
        self.exe = etcd_binary()
        self.dir = tmpdir()
        self.proc = None
        self.tls = tls
        if tls:
            if not shutil.which("openssl"):
                skip("openssl is not installed (deploy/deps.sh installs it)")
            self.ca = make_certs(self.dir, "etcd-ca")
            self.serving = make_certs(self.dir, "etcd", ["IP:127.0.0.1", "DNS:localhost"], self.ca)
            self.client = make_certs(self.dir, "apiserver", [], self.ca)
        _servers.append(self)

    def apiserver_flags(self):
        """What skiff-apiserver needs to use this etcd."""
        flags = ["--store", "etcd", "--etcd-servers", self.url]
        if self.tls:
            flags += ["--etcd-cafile", self.ca[0], "--etcd-certfile", self.client[0],
                      "--etcd-keyfile", self.client[1]]
        return flags

    def start(self, timeout=60):
        self.port, peer = free_port(), free_port()
        self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        peer_url = "http://127.0.0.1:%d" % peer
        args = [self.exe, "--name", "test", "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", "test=" + peer_url, "--logger", "zap", "--log-level", "warn"]
        if self.tls:
            args += ["--cert-file", self.serving[0], "--key-file", self.serving[1],
                     "--trusted-ca-file", self.ca[0], "--client-cert-auth"]
        self.logf = open(os.path.join(self.dir, "etcd.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        end = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                self.dump_log()
                raise SystemExit("FAIL: etcd exited during start-up (%s)" % self.proc.returncode)
            try:
                if self.tls:
                    ctx = ssl.create_default_context(cafile=self.ca[0])
                    ctx.load_cert_chain(self.client[0], self.client[1])
                    c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=2)
                else:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                body = c.getresponse().read()
                c.close()
                if b'"true"' in body:
                    break
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass
            if time.time() > end:
                self.dump_log()
                raise SystemExit("FAIL: etcd not healthy within %d s" % timeout)
            time.sleep(0.1)
        log("etcd ready (pid %d) at %s" % (self.proc.pid, self.url))
        return self

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None
        self.logf.close()

    def dump_log(self, lines=30):
        try:
            with open(os.path.join(self.dir, "etcd.log"), errors="replace") as f:
                print("---- last lines of the etcd log ----\n" +
                      "\n".join(f.read().splitlines()[-lines:]), flush=True)
        except OSError:
            pass


# SKIFF_TEST_STORE=etcd runs every Server that does not choose a store itself on an etcd of its
# own (one per data dir, so a server restarted on the same data dir finds its objects again).
_etcd_by_data_dir = {}


class Server:
    """One skiff-apiserver on 127.0.0.1: HTTPS on a free port, fresh (or given) data dir."""

    def __init__(self, extra=(), data_dir=None, insecure=False, log_path=None):
        self.exe = need_bin("skiff-apiserver")
        self.extra = list(extra)
        self.dir = tmpdir()
        self.data = data_dir or os.path.join(self.dir, "data")
        if os.environ.get("SKIFF_TEST_STORE") == "etcd" and \
                not any(a.startswith("--store") for a in self.extra):
            key = os.path.realpath(self.data)
            if key not in _etcd_by_data_dir:
                _etcd_by_data_dir[key] = Etcd().start()
            self.extra += _etcd_by_data_dir[key].apiserver_flags()
        self.insecure = insecure
        self.log_path = log_path or os.path.join(self.dir, "apiserver.log")
        self.proc = None
        _servers.append(self)

    def start(self, timeout=60):
        self.port = free_port()
        args = [self.exe, "--listen", "127.0.0.1:%d" % self.port, "--data-dir", self.data]
        if self.insecure:
            self.insecure_port = free_port()
            args += ["--insecure-listen", "127.0.0.1:%d" % self.insecure_port]
        args += self.extra
        log("starting " + " ".join(args))
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        self.url = "https://127.0.0.1:%d" % self.port
        end = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                self.dump_log()
                raise SystemExit("FAIL: skiff-apiserver exited during start-up (%s)" %
                                 self.proc.returncode)
            if self._ready():
                break
            if time.time() > end:
                self.dump_log()
                raise SystemExit("FAIL: skiff-apiserver not ready within %d s" % timeout)
            time.sleep(0.2)
        self.kubeconfig = os.path.join(self.data, "admin.kubeconfig")
        with open(os.path.join(self.data, "pki", "admin.token")) as f:
            self.token = f.read().strip()
        server, ca, _ = load_kubeconfig(self.kubeconfig)
        self.kube_server = server
        self.ca_file = os.path.join(self.dir, "ca.crt")
        with open(self.ca_file, "wb") as f:
            f.write(ca or b"")
        log("apiserver ready (pid %d) at %s" % (self.proc.pid, self.url))
        return self

    def _ready(self):
        if not os.path.exists(os.path.join(self.data, "admin.kubeconfig")):
            return False
        if not os.path.exists(os.path.join(self.data, "pki", "admin.token")):
            return False
        try:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=2)
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            c.close()
            return r.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None
        try:
            self.logf.close()
        except Exception:
            pass

    def dump_log(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
            print("---- last lines of the apiserver log ----")
            print("\n".join(tail), flush=True)
        except OSError:
            pass

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def client(self, token="admin", timeout=30):
        return Client(self, token=self.token if token == "admin" else token, timeout=timeout)


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "HTTP %d %s" % (self.status, self.body[:600].decode("utf-8", "replace"))


class Client:
    """Keep-alive HTTPS client with the admin token; verifies the server with the kubeconfig CA
    and the host name 127.0.0.1 (as kubectl does)."""

    def __init__(self, server, token=None, timeout=30):
        self.server = server
        self.token = token
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPSConnection("127.0.0.1", self.server.port,
                                                context=self.server.ssl_context(),
                                                timeout=self.timeout)

    def request(self, method, path, body=None, ctype="application/json", headers=None,
                query=None):
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            h["Content-Type"] = ctype
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return Resp(r.status, dict(r.getheaders()), data)
            except (ConnectionError, http.client.RemoteDisconnected,
                    http.client.CannotSendRequest, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: retry once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path, body, ctype, **kw):
        return self.request("PATCH", path, body=body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body=body, **kw)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


class Watch:
    """A watch request on its own TLS connection, read with a small chunked decoder of our own
    (http.client's socket file is unusable after one read timeout). next_event() returns the
    next event, None at the end of the stream, or raises TimeoutError after `idle` seconds
    without a complete event (the stream stays usable)."""

    def __init__(self, server, path, token="admin", idle=15):
        token = server.token if token == "admin" else token
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=idle)
        self.sock = server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
        self.idle = idle
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n" % path
        if token:
            req += "Authorization: Bearer %s\r\n" % token
        self.sock.sendall((req + "\r\n").encode())
        self.raw = b""
        self.body = b""
        self.ended = False
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(time.time() + idle):
                raise ConnectionError("watch: connection closed before the response head")
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (ln.partition(":") for ln in lines[1:])}
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.body_text = b""
        if self.status != 200:
            n = int(self.headers.get("content-length", "0") or 0)
            end = time.time() + idle
            while self.chunked and not self._dechunk() and self._recv(end):
                pass
            while not self.chunked and len(self.raw) < n and self._recv(end):
                pass
            self.body = (self.body if self.chunked else self.raw[:n])
            self.body_text = self.body

    def _recv(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionError, ssl.SSLError, OSError):
            d = b""
        if not d:
            self.ended = True
            return False
        self.raw += d
        return True

    def _dechunk(self):
        """Moves complete chunks from raw to body; True at the terminating chunk."""
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return False
        while True:
            k = self.raw.find(b"\r\n")
            if k < 0:
                return False
            size = int(self.raw[:k].split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return True
            if len(self.raw) < k + 2 + size + 2:
                return False
            self.body += self.raw[k + 2:k + 2 + size]
            self.raw = self.raw[k + 2 + size + 2:]

    def next_event(self, timeout=None):
        end = time.time() + (self.idle if timeout is None else timeout)
        while True:
            self._dechunk()
            while b"\n" in self.body:
                line, self.body = self.body.split(b"\n", 1)
                if line.strip():
                    return json.loads(line)
            if self.ended:
                return None
            if not self._recv(end):
                if self.ended:
                    continue
                raise TimeoutError("watch: no event within the timeout")

    def take(self, n, seconds):
        """Up to n events within `seconds` (fewer on timeout or end of stream)."""
        out = []
        end = time.time() + seconds
        while len(out) < n:
            left = end - time.time()
            if left <= 0:
                break
            try:
                ev = self.next_event(timeout=left)
            except TimeoutError:
                break
            if ev is None:
                break
            out.append(ev)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def status_ok(resp, code, reason=None):
    """True when resp is the Kubernetes Status JSON for `code` (and `reason`)."""
    j = resp.json
    if resp.status != code or not isinstance(j, dict):
        return False
    if j.get("kind") != "Status" or j.get("apiVersion") != "v1" or j.get("code") != code:
        return False
    if j.get("status") != "Failure":
        return False
    return reason is None or j.get("reason") == reason


def rv(obj):
    return int(obj["metadata"]["resourceVersion"])


def cm(name, data=None, labels=None, namespace=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def server_flags():
    """The flags `skiff-apiserver --help` lists (for optional test knobs)."""
    try:
        out = subprocess.run([need_bin("skiff-apiserver"), "--help"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


def drop_age(text):
    """A printed table without its AGE column, wherever the column is (-o wide puts more after
    it). Each table's header gives the column's span; the span is cut from every row of that
    table, so the columns after it stay aligned and still compare byte for byte. Several tables
    (`get deploy,rs`) are separated by blank lines, each with its own header."""
    out, span = [], None
    for line in text.split("\n"):
        if not line.strip():
            span = None
            out.append(line)
            continue
        if span is None:
            m = re.search(r"(?:^|\s)(AGE)(\s+|$)", line)
            if m is None:
                out.append(line)
                continue
            start = m.start(1)
            end = m.end(2) if m.group(2) and m.end(2) < len(line) else None
            span = (start, end)
        start, end = span
        out.append((line[:start] + (line[end:] if end is not None else "")).rstrip())
    return "\n".join(out)
