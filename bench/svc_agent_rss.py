#!/usr/bin/env python3
"""bench/svc_agent_rss.py: the real skiff-netagent's memory with N Services x 5 endpoints.

Run by bench_svc (`--only agent-rss`, and in its default run) or by hand, as root:
  python3 bench/svc_agent_rss.py --bin BUILD_DIR --services 10000 [--time-limit-s 900]

In a network namespace of its own (skiff-bench-rss-<pid>: lo + a veth pair, 10.250.99.1/24): a
skiff-apiserver (fresh data dir), a Node with a pod CIDR, N Services (ClusterIP allocated by the
apiserver, port 80) each with an Endpoints of 5 ready addresses, created through the API on a
few keep-alive connections; then skiff-netagent (host-gw backend, services on, DNS and the LB
announcer off unless --dns / --announce) until its first services sync has programmed every
port. Prints the agent's
VmRSS/VmHWM (from /proc) right after the first sync, 5 s and 30 s later, and the time of that
sync.
Everything (processes, namespace, temp dir) is removed at exit, also on failure or SIGTERM.
Traffic: only loopback inside the namespace.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))

NS = "skiff-bench-rss-%d" % os.getpid()
NODE_IP = "10.250.99.1"
NODE = "bench-rss-node"
procs = []
workdir = tempfile.mkdtemp(prefix="skiff-bench-rss.")


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    sh("ip", "netns", "del", NS, check=False)
    subprocess.run(["rm", "-rf", workdir])


def on_signal(signum, frame):
    print("svc_agent_rss: stopped by signal %d" % signum, file=sys.stderr, flush=True)
    cleanup()
    sys.exit(1)


def bg(name, args):
    log = open(os.path.join(workdir, name + ".log"), "ab")
    p = subprocess.Popen(["ip", "netns", "exec", NS] + args, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def tail(name, n=20):
    try:
        with open(os.path.join(workdir, name + ".log"), errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def status_kb(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def print_smaps(pid, n):
    """The n largest mappings by Rss: where the agent's memory is (heap arenas, stacks, text)."""
    maps, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                cur = {"map": " ".join(head[:1] + head[5:]) or head[0], "rss": 0, "anon": 0}
                maps.append(cur)
            elif head[0] == "Rss:":
                cur["rss"] = int(head[1])
            elif head[0] == "Anonymous:":
                cur["anon"] = int(head[1])
    for m in sorted(maps, key=lambda m: -m["rss"])[:n]:
        print("svc_agent_rss: smaps %8d kB rss %8d kB anon  %s" % (m["rss"], m["anon"], m["map"]),
              file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="build dir with skiff-apiserver, skiff-netagent")
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--time-limit-s", type=int, default=900)
    ap.add_argument("--smaps", type=int, default=0,
                    help="also print the agent's N largest mappings by Rss (to stderr)")
    ap.add_argument("--wrap", default="",
                    help="run the agent under this command (e.g. 'heaptrack -o FILE'); its "
                         "figures are then the wrapper's, for profiling only")
    ap.add_argument("--dns", action="store_true",
                    help="run the agent's cluster DNS too (10.96.0.10 on a link in the namespace)")
    ap.add_argument("--announce", action="store_true",
                    help="run the agent's LoadBalancer announcer too")
    ap.add_argument("--hold-s", type=int, default=0,
                    help="keep everything running this long after the figures (to inspect)")
    a = ap.parse_args()
    os.environ["SKIFF_BIN"] = a.bin
    import netlab  # noqa: E402 (needs SKIFF_BIN)
    import testlib  # noqa: E402

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(a.time_limit_s)
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    sh("ip", "-n", NS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
    sh("ip", "-n", NS, "addr", "add", NODE_IP + "/24", "dev", "eth0")
    sh("ip", "-n", NS, "link", "set", "eth0", "up")
    sh("ip", "-n", NS, "link", "set", "eth0p", "up")

    port = 6443
    data = os.path.join(workdir, "apiserver")
    api_p = bg("apiserver", netlab.apiserver_args(NODE_IP, port, data))
    # The harness's client connects to 127.0.0.1:port from the caller's namespace; enter ours.
    import ctypes
    fd = os.open("/var/run/netns/" + NS, os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns " + NS)
    os.close(fd)
    api, kc = netlab.wait_apiserver(api_p, data, port, os.path.join(workdir, "apiserver.log"))

    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    r = api.c.post("/api/v1/nodes", node)
    assert r.status in (200, 201), r.data[:300]

    t0 = time.time()
    errors = []

    def create(lo, hi):
        c = testlib.Client(api, token=api.token)
        for i in range(lo, hi):
            name = "svc-%d" % i
            svc = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": name, "namespace": "default"},
                   "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                       "protocol": "TCP"}]}}
            addrs = []
            for e in range(a.endpoints):
                v = (10 << 24) | (244 << 16) | ((i * a.endpoints + e) % 65000 + 256)
                addrs.append({"ip": "%d.%d.%d.%d" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255,
                                                     v & 255), "nodeName": "other-node"})
            ep = {"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": name, "namespace": "default"},
                  "subsets": [{"addresses": addrs,
                               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
            for path, obj in (("services", svc), ("endpoints", ep)):
                r = c.post("/api/v1/namespaces/default/" + path, obj)
                if r.status not in (200, 201):
                    errors.append("%s %s: %d %s" % (path, name, r.status, r.data[:200]))
                    return

    n, k = a.services, max(1, a.threads)
    threads = [threading.Thread(target=create, args=(j * n // k, (j + 1) * n // k))
               for j in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("creating objects: " + errors[0])
    created_s = time.time() - t0
    print("svc_agent_rss: created %d Services + %d Endpoints in %.1f s" % (n, n, created_s),
          file=sys.stderr, flush=True)

    agent_args = a.wrap.split() + [os.path.join(a.bin, "skiff-netagent"), "--kubeconfig", kc, "--node-name", NODE,
                  "--backend", "host-gw", "--node-ip", NODE_IP, "--iface", "eth0",
                  "--cluster-cidr", "10.244.0.0/16",
                  "--cluster-dns", "10.96.0.10" if a.dns else "",
                  "--lb-announce=%s" % ("true" if a.announce else "false"),
                  "--port", "10256"]
    t1 = time.time()
    agent = bg("netagent", agent_args)
    want = n + 1  # + the kubernetes Service
    synced = None
    while time.time() - t1 < a.time_limit_s:
        if agent.poll() is not None:
            raise RuntimeError("skiff-netagent exited: " + tail("netagent"))
        try:
            text = urllib.request.urlopen("http://127.0.0.1:10256/metrics", timeout=5).read()
            for line in text.decode().splitlines():
                if line.startswith("skiff_netagent_services_programmed "):
                    if float(line.split()[1]) >= want:
                        synced = time.time() - t1
        except OSError:
            pass
        if synced is not None:
            break
        time.sleep(0.2)
    if synced is None:
        raise RuntimeError("skiff-netagent did not program %d ports: %s" % (want, tail("netagent")))
    # The agent's own pid (ip netns exec execs it).
    first = status_kb(agent.pid)
    heap = {}
    if a.smaps:
        print_smaps(agent.pid, a.smaps)
    time.sleep(5)
    later = status_kb(agent.pid)
    # The agent's own split of its heap (5 s after the sync): allocated vs free in malloc.
    try:
        text = urllib.request.urlopen("http://127.0.0.1:10256/metrics", timeout=5).read()
        for line in text.decode().splitlines():
            for m in ("skiff_netagent_malloc_in_use_bytes", "skiff_netagent_malloc_free_bytes"):
                if line.startswith(m + " "):
                    heap[m[len("skiff_netagent_"):-len("_bytes")] + "_kb"] = \
                        int(float(line.split()[1])) // 1024
    except OSError:
        pass
    # Steady state: nothing changes; the allocator has long returned what it will.
    time.sleep(25)
    steady = status_kb(agent.pid)
    print(json.dumps({"services": n, "dns": a.dns, "announce": a.announce, "endpoints_per_service": a.endpoints,
                      "create_s": round(created_s, 1), "agent_first_sync_s": round(synced, 2),
                      "vmrss_kb_after_sync": first["VmRSS"], "vmhwm_kb_after_sync": first["VmHWM"],
                      "vmrss_kb_5s_later": later["VmRSS"], "vmhwm_kb_5s_later": later["VmHWM"],
                      "vmrss_kb_30s_later": steady["VmRSS"],
                      # Heap and stacks vs the binary's and libraries' mapped pages.
                      "rssanon_kb_after_sync": first["RssAnon"],
                      "rssfile_kb_after_sync": first["RssFile"],
                      "heap_5s_later": heap,
                      "log": tail("netagent", 3).strip().splitlines()[-1:]}), flush=True)
    if a.hold_s:
        print("svc_agent_rss: holding %d s (agent pid %d)" % (a.hold_s, agent.pid),
              file=sys.stderr, flush=True)
        time.sleep(min(a.hold_s, a.time_limit_s))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 (report and clean up whatever failed)
        print("svc_agent_rss: FAILED: %s" % e, file=sys.stderr, flush=True)
        cleanup()
        sys.exit(1)
    cleanup()
