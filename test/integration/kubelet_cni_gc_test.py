#!/usr/bin/env python3
"""CNI GC from the kubelet: addresses the network still holds for pods the node no longer has
are freed, the ones of its pods are kept. apiserver + kubelet in a test netns (kubelet_lib),
the kubelet writing its own conflist for skiff's plugin (cniVersion 1.1.0). With a pod running,
the kubelet is killed and two leaks are left behind as a reboot or a crash leaves them: an
address file of the plugin's IPAM for a container nobody knows (no cache: only the plugin's GC
can free it), and a cached ADD result plus its address for a container that is gone (freed by
the invoker's DEL of stale cached attachments). The restarted kubelet frees both at start, a
third leak made while it runs is freed by the periodic relist, and the running pod keeps its
address throughout. Needs root (skips with 77 otherwise)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet_lib as kl  # noqa: E402

GONE_NO_CACHE = "0badc0de" * 8
GONE_CACHED = "0deadbee" * 8
GONE_LATER = "0facade0" * 8


def leak_address(ipam_dir, ip, container_id):
    """An allocation as the plugin writes it: a file named by the address."""
    with open(os.path.join(ipam_dir, ip), "w") as f:
        f.write("%s\neth0\n" % container_id)


def body(t):
    c = t.cluster(write_cni=False)
    with c:
        conflist = os.path.join(c.cni_conf, "10-skiff.conflist")
        conf = kl.read_json(conflist) or {}
        plugin = (conf.get("plugins") or [{}])[0]
        if plugin.get("type") != "skiff":
            t.fatal("the kubelet did not write a conflist for skiff's plugin", conf)
        t.eq("the generated conflist is cniVersion 1.1.0 (GC)", conf.get("cniVersion"), "1.1.0")
        ipam = plugin.get("dataDir") or ""
        cache = os.path.join(c.data, "cni", "results")

        c.create_pod(kl.sleeper("keep", terminationGracePeriodSeconds=1))
        p = c.wait_running("keep", timeout=60)
        keep_ip = (p.get("status") or {}).get("podIP") or ""
        t.check("pod keep runs with an address (%s)" % keep_ip,
                keep_ip and os.path.exists(os.path.join(ipam, keep_ip)), os.listdir(ipam))

        c.kill9_kubelet()
        leak_address(ipam, "10.244.0.250", GONE_NO_CACHE)
        leak_address(ipam, "10.244.0.251", GONE_CACHED)
        os.makedirs(cache, exist_ok=True)
        cached = os.path.join(cache, "skiff-%s-eth0" % GONE_CACHED)
        with open(cached, "w") as f:
            json.dump({"kind": "cniCacheV1", "containerId": GONE_CACHED, "ifName": "eth0",
                       "networkName": "skiff", "netns": "/run/netns/skiff-gc-test-gone",
                       "cniArgs": [], "config": conf,
                       "result": {"cniVersion": "1.1.0",
                                  "ips": [{"address": "10.244.0.251/24",
                                           "gateway": "10.244.0.1"}]}}, f)

        c.start_kubelet()
        c.wait_node_ready(timeout=60)

        def gone(*paths):
            return lambda: not any(os.path.exists(x) for x in paths)
        t.check("restarted kubelet: the address of a container nobody knows is freed",
                c.wait_for(gone(os.path.join(ipam, "10.244.0.250")), 30),
                sorted(os.listdir(ipam)))
        t.check("restarted kubelet: the cached ADD of a gone container is DELeted (address and "
                "cache file freed)",
                c.wait_for(gone(os.path.join(ipam, "10.244.0.251"), cached), 30),
                (sorted(os.listdir(ipam)), sorted(os.listdir(cache))))
        t.check("pod keep's address is kept", os.path.exists(os.path.join(ipam, keep_ip)),
                sorted(os.listdir(ipam)))

        leak_address(ipam, "10.244.0.252", GONE_LATER)
        t.check("a leak made while the kubelet runs is freed by the periodic relist",
                c.wait_for(gone(os.path.join(ipam, "10.244.0.252")), 40),
                sorted(os.listdir(ipam)))

        p = c.wait_running("keep", timeout=30)
        t.eq("pod keep still runs with the same address",
             (p.get("status") or {}).get("podIP"), keep_ip)
        t.check("pod keep's address is still allocated", os.path.exists(os.path.join(ipam, keep_ip)),
                sorted(os.listdir(ipam)))
        c.create_pod(kl.sleeper("after", terminationGracePeriodSeconds=1))
        p2 = c.wait_running("after", timeout=60)
        ip2 = (p2.get("status") or {}).get("podIP") or ""
        t.check("a new pod gets an address of its own (%s)" % ip2,
                ip2 and ip2 != keep_ip and os.path.exists(os.path.join(ipam, ip2)),
                sorted(os.listdir(ipam)))
        klog = kl.read(c.kubelet_log, "")
        t.check("no CNI GC error in the kubelet's log", "CNI GC" not in klog, kl.tail(c.kubelet_log))


if __name__ == "__main__":
    t = kl.Test("kubelet_cni_gc", limit=300)
    t.run(body)
