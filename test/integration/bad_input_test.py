#!/usr/bin/env python3
"""Bad input over HTTPS, each answered with the right Kubernetes Status while the server keeps
serving (/healthz is checked after every case): malformed and truncated JSON (400), wrong
kind/apiVersion (400), invalid and too-long names (422 Invalid with causes), a 10 MiB body
(413), a wrong Content-Type (415), a body that stops mid-way (the server's timeout closes the
connection), a header flood (431 or 400), 1,000 idle TCP connections, a TLS handshake that
never finishes, unknown paths (404) and verbs (405), no token and a wrong token (401)."""
import os
import resource
import socket
import ssl
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import cm, status_ok  # noqa: E402

testlib.ensure_modules("yaml")
testlib.deadline(600)
t = testlib.Checks()

# 1,000 idle connections need file descriptors on both sides; the server inherits the limit.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
IDLE = min(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)

srv = testlib.Server().start()
c = srv.client()
CMS = "/api/v1/namespaces/default/configmaps"


def healthy(after):
    """/healthz on a fresh connection, answered within 10 s."""
    try:
        h = srv.client(timeout=10).get("/healthz")
        ok = h.status == 200
    except Exception as e:  # noqa: BLE001
        ok, h = False, repr(e)
    t.check("still serving after %s (/healthz 200)" % after, ok, h)
    return ok


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def run(fn):
    testlib.log("== " + fn.__name__)
    try:
        fn()
    except Exception:
        t.check("%s ran without an exception" % fn.__name__, False, traceback.format_exc())
    if not healthy(fn.__name__):
        srv.dump_log()


def raw_tls(timeout=15, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", srv.port))
    return srv.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")


def read_response(s, limit=1 << 20):
    """Reads one HTTP response (head + Content-Length body) or until close; returns
    (status or None, head, body)."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf and len(buf) < limit:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError):
        pass
    if b"\r\n\r\n" not in buf:
        return None, buf, b""
    head, body = buf.split(b"\r\n\r\n", 1)
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    try:
        while length is not None and len(body) < length:
            d = s.recv(65536)
            if not d:
                break
            body += d
    except (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError):
        pass
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = None
    return status, head, body


def closed_within(s, seconds):
    """True when the peer closes `s` (EOF or reset) within `seconds`; data is drained."""
    end = time.time() + seconds
    s.settimeout(1)
    while time.time() < end:
        try:
            d = s.recv(65536)
            if not d:
                return True
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return True
    return False


@case
def malformed_json():
    r = c.post(CMS, b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ]}')
    t.check("malformed JSON -> 400 BadRequest Status", status_ok(r, 400, "BadRequest"), r)
    r = c.post(CMS, b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tr')
    t.check("truncated JSON -> 400 BadRequest Status", status_ok(r, 400, "BadRequest"), r)
    r = c.post(CMS, b'')
    t.check("empty body -> 400 BadRequest Status", status_ok(r, 400, "BadRequest"), r)
    r = c.post(CMS, b'[1,2,3]')
    t.check("a JSON array instead of an object -> 400", status_ok(r, 400, "BadRequest"), r)
    r = c.post(CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"},
                     "data": {"a": 5}})
    t.check("a wrongly typed field -> 400 BadRequest", status_ok(r, 400, "BadRequest"), r)
    t.eq("nothing was stored", c.get(CMS + "/n").status, 404)


@case
def wrong_kind_or_version():
    r = c.post(CMS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}})
    t.check("kind Secret posted to configmaps -> 400 BadRequest", status_ok(r, 400, "BadRequest"),
            r)
    r = c.post(CMS, {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "k"}})
    t.check("apiVersion v2 -> 400 BadRequest", status_ok(r, 400, "BadRequest"), r)
    r = c.post(CMS, {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "k"}})
    t.check("apiVersion apps/v1 for a core kind -> 400 BadRequest",
            status_ok(r, 400, "BadRequest"), r)
    t.eq("nothing was stored", c.get(CMS + "/k").status, 404)


@case
def invalid_names():
    r = c.post(CMS, cm("Bad_Name"))
    ok = status_ok(r, 422, "Invalid")
    causes = (r.json or {}).get("details", {}).get("causes", []) if ok else []
    t.check("invalid name -> 422 Invalid with a cause on metadata.name",
            ok and any(x.get("field") == "metadata.name" for x in causes), r)
    t.check("422 details name the kind and the object",
            ok and r.json["details"].get("kind") == "ConfigMap"
            and r.json["details"].get("name") == "Bad_Name", r)
    r = c.post(CMS, cm("a" * 254))
    t.check("a 254-character name -> 422 Invalid on metadata.name",
            status_ok(r, 422, "Invalid") and any(
                x.get("field") == "metadata.name" for x in r.json["details"].get("causes", [])),
            r)
    r = c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "n" * 64}})
    t.check("a 64-character namespace name (DNS label) -> 422 Invalid",
            status_ok(r, 422, "Invalid"), r)
    r = c.post(CMS, cm("ok-name", labels={"bad key!": "v", "k": "v" * 64}))
    causes = (r.json or {}).get("details", {}).get("causes", [])
    fields = sorted(x.get("field", "") for x in causes)
    t.check("bad label key and too-long label value -> 422 with a cause for each",
            status_ok(r, 422, "Invalid") and len(causes) >= 2
            and all(f.startswith("metadata.labels") for f in fields), r)
    r = c.post(CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    t.check("missing name -> 422 Invalid (name or generateName is required)",
            status_ok(r, 422, "Invalid"), r)
    t.eq("nothing was stored", [o["metadata"]["name"] for o in c.get(CMS).json["items"]], [])


@case
def too_large_body():
    size = 10 << 20
    s = raw_tls(timeout=30)
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (CMS, srv.token, size)).encode()
    s.sendall(head)
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":"'
    body += b"y" * (size - len(body) - 3) + b'"}}'
    sent = 0
    try:
        while sent < size:  # the server may answer and close before reading it all
            sent += s.send(body[sent:sent + (1 << 20)])
    except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
        pass
    status, hdr, data = read_response(s)
    r = testlib.Resp(status or 0, {}, data)
    t.check("10 MiB body -> 413 RequestEntityTooLarge Status",
            status_ok(r, 413, "RequestEntityTooLarge"), "%s %s" % (hdr[:200], data[:300]))
    s.close()
    t.eq("nothing was stored", c.get(CMS + "/big").status, 404)
    # 3 MiB is the limit: just under it is accepted as far as size goes (1 MiB data limit of a
    # ConfigMap then applies, so expect a 422, not a 413).
    r = c.post(CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "under"},
                     "data": {"x": "y" * (2 << 20)}})
    t.check("a 2 MiB body is not refused as too large (422 for the 1 MiB ConfigMap limit)",
            r.status != 413 and r.status in (201, 422), r)


@case
def wrong_content_type():
    r = c.post(CMS, b"name: x", ctype="text/plain")
    t.check("POST with Content-Type text/plain -> 415 UnsupportedMediaType",
            status_ok(r, 415, "UnsupportedMediaType"), r)


SLOW = {}


def start_slow_ones():
    """Opened early and checked at the end, so the server's timeouts run in parallel."""
    s = raw_tls(timeout=10)
    s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
               '{"apiVersion":"v1","kind":"ConfigMap",' % (CMS, srv.token)).encode())
    SLOW["mid-body"] = s
    # A TLS handshake that never finishes: the first bytes of a ClientHello record, then nothing.
    h = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    h.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    SLOW["handshake"] = h
    # A request head that never ends.
    p = raw_tls(timeout=10)
    p.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
    SLOW["head"] = p
    SLOW["t0"] = time.time()


@case
def body_stops_midway():
    # Others are served while the slow ones hang.
    t.eq("a request on another connection is served meanwhile",
         srv.client(timeout=10).get("/api/v1/namespaces/default").status, 200)


@case
def header_flood():
    s = raw_tls(timeout=30)
    head = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"".join(b"X-Flood-%d: %s\r\n" % (i, b"v" * 100) for i in range(10000))
    try:
        s.sendall(head + b"\r\n")
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    status, hdr, body = read_response(s)
    t.check("1 MiB of headers -> 431 (or 400)", status in (431, 400), hdr[:300])
    s.close()
    s = raw_tls(timeout=30)
    try:
        s.sendall(b"GET /api/v1/namespaces?" + b"a" * (200 << 10) + b" HTTP/1.1\r\n"
                  b"Host: 127.0.0.1\r\n\r\n")
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    status, hdr, body = read_response(s)
    t.check("a 200 KiB request line -> 414 (or 400/431)", status in (414, 400, 431), hdr[:300])
    s.close()


@case
def idle_connections():
    socks = []
    try:
        for i in range(IDLE):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        t.check("%d idle TCP connections opened" % IDLE, len(socks) == IDLE)
        t0 = time.time()
        r = srv.client(timeout=10).get("/api/v1/namespaces/default")
        t.check("a request is answered while %d connections idle" % IDLE, r.status == 200, r)
        testlib.log("answered in %.3f s" % (time.time() - t0))
        # A handful of them complete a TLS handshake late and are still served.
        for s in socks[:5]:
            tls = srv.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status, _, _ = read_response(tls)
            if status != 200:
                t.check("an idle connection that starts TLS later is served", False, status)
                break
        else:
            t.check("idle connections that start TLS later are served", True)
    except ssl.SSLError as e:
        # The server may have dropped them for idling: that is allowed.
        testlib.log("an idle connection was closed by the server: %r" % e)
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


@case
def unknown_paths_and_verbs():
    for p in ("/api/v1/nopes", "/apis/nope.example.com/v1/things", "/foo/bar",
              "/api/v1/namespaces/default/configmaps/x/nosuchsub", "/api/v9/pods"):
        r = c.get(p)
        t.check("GET %s -> 404 NotFound Status" % p, status_ok(r, 404, "NotFound"), r)
    r = c.request("BREW", "/api/v1/namespaces/default/configmaps")
    t.check("unknown verb BREW -> 405 MethodNotAllowed", status_ok(r, 405, "MethodNotAllowed"),
            r)
    r = c.put(CMS, cm("x"))
    t.check("PUT on a collection -> 405 MethodNotAllowed",
            status_ok(r, 405, "MethodNotAllowed"), r)
    r = c.post(CMS + "/x", cm("x"))
    t.check("POST on a named object -> 405 MethodNotAllowed",
            status_ok(r, 405, "MethodNotAllowed"), r)


@case
def auth():
    r = srv.client(token=None).get("/api/v1/namespaces")
    t.check("no token -> 401 Unauthorized Status", status_ok(r, 401, "Unauthorized"), r)
    r = srv.client(token="wrong-token").get("/api/v1/namespaces")
    t.check("wrong token -> 401 Unauthorized Status", status_ok(r, 401, "Unauthorized"), r)
    r = srv.client(token=srv.token + "x").post(CMS, cm("sneak"))
    t.check("write with a wrong token -> 401", status_ok(r, 401, "Unauthorized"), r)
    t.eq("nothing was stored", c.get(CMS + "/sneak").status, 404)
    r = srv.client(token=None).get("/healthz")
    t.eq("/healthz needs no token", r.status, 200)


def finish_slow_ones():
    left = max(1, 120 - (time.time() - SLOW["t0"]))
    for name in ("mid-body", "head", "handshake"):
        closed = closed_within(SLOW[name], left)
        t.check("the server closed the connection whose %s never finished (its timeout)" % {
            "mid-body": "body", "head": "request head", "handshake": "TLS handshake"}[name],
            closed, "still open after %.0f s" % (time.time() - SLOW["t0"]))
        SLOW[name].close()
        left = max(1, 120 - (time.time() - SLOW["t0"]))
    t.eq("the half-sent create stored nothing",
         [o["metadata"]["name"] for o in c.get(CMS).json["items"]
          if o["metadata"]["name"] != "under"], [])
    healthy("the slow connections")


start_slow_ones()  # first, so the server's timeouts run while the other cases do
for fn in CASES:
    run(fn)
finish_slow_ones()
t.check("server still running", srv.alive())
t.finish()
