// The assembler, and the host-routing programs on the real kernel: a "node" namespace with IP
// forwarding off sits between a "remote node" and a "pod", so traffic between them passes only
// if the programs carry it. Root-only cases skip (exit 77) without root, bpf(2) or TCX.
#include "common/bpf/bpf.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "common/bpf/host_routing.h"
#include "test/netns.h"
#include "test/testing.h"

using namespace skiff::bpf;
using skiff::testing::PrivateNetns;
using skiff::testing::sh;

TEST_CASE("assembler: labels resolve both ways; an undefined one is an error", "[bpf]") {
  Asm a;
  a.label("top");
  a.mov_imm(R0, 1);
  a.jmp_imm(JEQ, R0, 1, "end");
  a.ja("top");
  a.ld_map_fd(R1, 7);
  a.label("end");
  a.exit();
  std::string err;
  auto p = a.finish(&err);
  REQUIRE(p);
  REQUIRE(p->size() == 6);
  CHECK((*p)[1].off == 3);   // over ja and the two-slot ld_map_fd
  CHECK((*p)[2].off == -3);  // back to the first instruction
  CHECK((*p)[3].imm == 7);
  CHECK((*p)[3].regs == 0x11);  // dst r1, src BPF_PSEUDO_MAP_FD

  Asm b;
  b.ja("nowhere");
  CHECK_FALSE(b.finish(&err));
  CHECK(err.find("nowhere") != std::string::npos);
}

namespace {

// Named namespaces for the pod and the remote node, removed on the way out.
struct Lab {
  std::string pod = "skiffbpf-pod-" + std::to_string(getpid());
  std::string remote = "skiffbpf-remote-" + std::to_string(getpid());
  ~Lab() {
    sh("ip netns del " + pod);
    sh("ip netns del " + remote);
  }
  std::string in_pod(const std::string& cmd) const { return "ip netns exec " + pod + " " + cmd; }
  std::string in_remote(const std::string& cmd) const {
    return "ip netns exec " + remote + " " + cmd;
  }
};

uint32_t be(const char* ip) {
  in_addr a{};
  inet_pton(AF_INET, ip, &a);
  return a.s_addr;
}

// Sends one UDP datagram from `from_ns` (`from_ip`:`sport`) to `to_ip`:9999 in `to_ns`; the
// TTL it arrived with, or -1 when it did not arrive within 2 s.
int udp_ttl(const std::string& from_ns, const std::string& from_ip, int sport,
            const std::string& to_ns, const std::string& to_ip, int size = 5) {
  std::string recv =
      "ip netns exec " + to_ns +
      " timeout 5 python3 -c \"import socket; s = socket.socket(2, 2); "
      "s.setsockopt(0, 12, 1); s.bind(('" +
      to_ip +
      "', 9999)); s.settimeout(2); "
      "d, anc, _, _ = s.recvmsg(65536, 64); "
      "print('ttl', [int.from_bytes(c[2][:4], 'little') for c in anc if c[1] == 2][0])\"";
  std::string send = "ip netns exec " + from_ns +
                     " python3 -c \"import socket, time; s = socket.socket(2, 2); "
                     "s.bind(('" +
                     from_ip + "', " + std::to_string(sport) +
                     ")); time.sleep(0.5); "
                     "s.sendto(b'x' * " +
                     std::to_string(size) + ", ('" + to_ip + "', 9999))\"";
  auto r = sh("( " + recv + " > /tmp/skiffbpf-recv.$$ 2>&1 & ) ; " + send +
              " ; sleep 2.5; cat /tmp/skiffbpf-recv.$$; rm -f /tmp/skiffbpf-recv.$$");
  auto at = r.out.find("ttl ");
  return at == std::string::npos ? -1 : std::atoi(r.out.c_str() + at + 4);
}

}  // namespace

TEST_CASE("host routing: pods and a remote node talk through a node that does not forward",
          "[bpf][root]") {
  if (geteuid() != 0) return skiff::testing::skip("needs root (network namespaces, bpf)");
  if (sh("command -v ip && command -v python3").status != 0) {
    return skiff::testing::skip("needs ip and python3");
  }
  PrivateNetns node;  // this thread is the node from here on
  REQUIRE(node.error().empty());
  Lab lab;
  auto setup =
      sh("set -e; ip netns add " + lab.pod + "; ip netns add " + lab.remote +
         "; sysctl -qw net.ipv4.ip_forward=0"
         "; ip link add n0 type veth peer name r0 netns " +
         lab.remote +
         "; ip link add hv0 address 0a:58:0a:f4:00:01 type veth peer name eth0 "
         "address 0a:58:0a:f4:00:02 netns " +
         lab.pod +
         "; ip addr add 10.250.0.11/24 dev n0; ip link set n0 up"
         "; ip addr add 10.244.0.1/24 dev hv0; ip link set hv0 up"
         "; ip route add 10.244.1.0/24 via 10.250.0.12 dev n0; " +
         lab.in_pod("sh -c 'ip link set lo up; ip link set eth0 up; "
                    "ip addr add 10.244.0.2/24 dev eth0; ip route add default via 10.244.0.1'") +
         "; " +
         lab.in_remote("sh -c 'ip link set lo up; ip link set r0 up; "
                       "ip addr add 10.250.0.12/24 dev r0; ip addr add 10.244.1.2/32 dev lo; "
                       "ip route add 10.244.0.0/24 via 10.250.0.11'"));
  INFO(setup.out);
  REQUIRE(setup.status == 0);
  auto to_pod = [&](int sport) {
    return udp_ttl(lab.remote, "10.244.1.2", sport, lab.pod, "10.244.0.2");
  };
  auto to_remote = [&](int sport) {
    return udp_ttl(lab.pod, "10.244.0.2", sport, lab.remote, "10.244.1.2");
  };
  REQUIRE(to_pod(7000) == -1);  // the node does not forward
  REQUIRE(to_remote(7000) == -1);

  BpfError err;
  auto pods = create_hash_map(4, sizeof(PodEntry), 256, "skiff_pods", &err);
  if (!pods && (err.err == EPERM || err.err == ENOSYS)) {
    return skiff::testing::skip("bpf(2) unavailable: " + err.what);
  }
  REQUIRE(pods);
  auto endpoints = create_hash_map(sizeof(EndpointKey), 4, 256, "skiff_endpoints", &err);
  REQUIRE(endpoints);
  std::string asm_err;
  const auto cluster = *skiff::netlink::parse_ip4_net("10.244.0.0/16");
  const auto local = *skiff::netlink::parse_ip4_net("10.244.0.0/24");
  auto in = to_local_pods_program(cluster, pods->get(), endpoints->get(), &asm_err);
  auto out = to_remote_pods_program(cluster, local, static_cast<int>(if_nametoindex("n0")),
                                    endpoints->get(), &asm_err);
  INFO(asm_err);
  REQUIRE(in);
  REQUIRE(out);
  auto in_prog = load_sched_cls(*in, "skiff_to_pods", &err);
  INFO(err.what);
  REQUIRE(in_prog);
  auto out_prog = load_sched_cls(*out, "skiff_to_nodes", &err);
  INFO(err.what);
  REQUIRE(out_prog);
  auto in_link = attach_tcx_ingress(in_prog->get(), static_cast<int>(if_nametoindex("n0")), &err);
  if (!in_link && err.err == EINVAL) {
    return skiff::testing::skip("no TCX in this kernel (6.6+): " + err.what);
  }
  REQUIRE(in_link);
  auto out_link =
      attach_tcx_ingress(out_prog->get(), static_cast<int>(if_nametoindex("hv0")), &err);
  REQUIRE(out_link);

  // Not a pod of the map yet: the way in stays shut; the way out is open.
  CHECK(to_pod(7001) == -1);
  CHECK(to_remote(7001) == 63);  // sent with 64; the node took one off, as forwarding would

  PodEntry e;
  e.ifindex = if_nametoindex("hv0");
  const uint8_t pod_mac[6] = {0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x02};
  const uint8_t gw_mac[6] = {0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x01};
  std::copy(pod_mac, pod_mac + 6, e.pod_mac);
  std::copy(gw_mac, gw_mac + 6, e.gw_mac);
  uint32_t key = be("10.244.0.2");
  REQUIRE(map_update(pods->get(), &key, &e, &err));

  CHECK(to_pod(7777) == 63);
  // Only from pods: from the remote node's own address, left to the kernel.
  CHECK(udp_ttl(lab.remote, "10.250.0.12", 7003, lab.pod, "10.244.0.2") == -1);
  // Fragments (3000 bytes over MTU 1500) are left to the kernel, which does not forward.
  CHECK(udp_ttl(lab.remote, "10.244.1.2", 7002, lab.pod, "10.244.0.2", 3000) == -1);

  // From a service endpoint (10.244.1.2 UDP 7777): left to the kernel, which does not forward.
  EndpointKey ep;
  ep.ip = be("10.244.1.2");
  ep.proto = 17;
  ep.port = htons(7777);
  uint32_t one = 1;
  REQUIRE(map_update(endpoints->get(), &ep, &one, &err));
  CHECK(to_pod(7777) == -1);
  CHECK(to_pod(7778) == 63);
  ep.ip = be("10.244.0.2");
  ep.port = htons(5555);
  REQUIRE(map_update(endpoints->get(), &ep, &one, &err));
  CHECK(to_remote(5555) == -1);
  CHECK(to_remote(5556) == 63);

  // Detached (links closed): back to nothing.
  in_link.reset();
  out_link.reset();
  CHECK(to_pod(7778) == -1);
  CHECK(to_remote(5556) == -1);
}
