// FastPath on the real kernel, in a private network namespace (root; skips without bpf(2) or
// TCX): the pods map follows the bridge's veths and their peers' addresses, the links follow
// the veths, the endpoints are refcounted and a dropped one goes once no flow translates to it.
#include "netagent/fastpath/fastpath.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "common/bpf/bpf.h"
#include "test/netns.h"
#include "test/testing.h"

using namespace skiff;
using skiff::testing::eventually;
using skiff::testing::PrivateNetns;
using skiff::testing::sh;

namespace {

std::string pod_ns() { return "skiff-fastpath-test-" + std::to_string(getpid()); }

struct PodNs {
  ~PodNs() {
    sh("ip netns del " + pod_ns());
    sh("ip netns del " + pod_ns() + "-2");
  }
};

}  // namespace

TEST_CASE("fast path: pods, veths and endpoints follow the kernel and the services",
          "[fastpath][root]") {
  if (geteuid() != 0) return skiff::testing::skip("needs root (network namespaces, bpf)");
  PrivateNetns node;
  REQUIRE(node.error().empty());
  PodNs cleanup;
  auto setup =
      sh("set -e; ip link add up0 type veth peer name up0p; ip link set up0 up"
         "; ip link add skiff0 type bridge; ip link set skiff0 up"
         "; ip netns add " +
         pod_ns() + "; ip link add vp1 type veth peer name eth0 netns " + pod_ns() +
         "; ip link set vp1 master skiff0 up"
         "; ip netns exec " +
         pod_ns() +
         " ip addr add 10.244.3.7/24 dev eth0"
         "; ip netns exec " +
         pod_ns() + " ip link set eth0 up");
  INFO(setup.out);
  REQUIRE(setup.status == 0);

  fastpath::FastPath fp(/*wait_for_endpoints=*/true);
  fastpath::Options o;
  o.uplink = "up0";
  o.cluster_cidr = *netlink::parse_ip4_net("10.244.0.0/16");
  o.pod_cidr = *netlink::parse_ip4_net("10.244.3.0/24");
  Status s = fp.configure(o);
  if (!s && (s.message().find("Operation not permitted") != std::string::npos ||
             s.message().find("Function not implemented") != std::string::npos ||
             s.message().find("(tcx): Invalid argument") != std::string::npos)) {
    return skiff::testing::skip("no bpf(2) or TCX here: " + s.message());
  }
  INFO(s.message());
  REQUIRE(s);
  // Nothing before the service agent's first endpoints.
  CHECK_FALSE(fp.stats().attached);
  CHECK(fp.stats().pods == 0);

  REQUIRE(fp.replace_endpoints({{0x0af40105, 6, 8080}, {0x0af40106, 17, 53}}));
  auto st = fp.stats();
  CHECK(st.attached);
  CHECK(st.pods == 1);
  CHECK(st.veths == 1);
  CHECK(st.endpoints == 2);

  // A second Service port with the same endpoint, then both drop it: it goes only after the
  // second, and (no flow in conntrack translates to it) at the next sync.
  REQUIRE(fp.update_endpoints({}, {{0x0af40105, 6, 8080}}));
  REQUIRE(fp.update_endpoints({{0x0af40105, 6, 8080}}, {}));
  CHECK(fp.stats().endpoints == 2);
  REQUIRE(fp.update_endpoints({{0x0af40105, 6, 8080}}, {}));
  CHECK(fp.stats().endpoints == 2);  // lingering until conntrack was looked at
  CHECK(fp.sync());
  CHECK(fp.stats().endpoints == 1);

  // A new pod: the link watcher picks it up (its address comes after the veth).
  REQUIRE(sh("ip netns add " + pod_ns() + "-2; ip link add vp2 type veth peer name eth0 netns " +
             pod_ns() + "-2; ip link set vp2 master skiff0 up; ip netns exec " + pod_ns() +
             "-2 ip addr add 10.244.3.8/24 dev eth0")
              .status == 0);
  CHECK(eventually([&] { return fp.stats().pods == 2 && fp.stats().veths == 2; }));
  // A pod gone: its entry and link go.
  REQUIRE(sh("ip netns del " + pod_ns() + "-2").status == 0);
  CHECK(eventually([&] { return fp.stats().pods == 1 && fp.stats().veths == 1; }));
  // An address outside this node's pod CIDR is not a pod of ours.
  REQUIRE(sh("ip netns exec " + pod_ns() + " ip addr flush dev eth0; ip netns exec " + pod_ns() +
             " ip addr add 192.168.9.9/24 dev eth0")
              .status == 0);
  CHECK(fp.sync());
  CHECK(fp.stats().pods == 0);
  CHECK(fp.stats().veths == 1);

  fp.stop();
  CHECK_FALSE(fp.stats().attached);
  CHECK(fp.stats().veths == 0);
}
