#include "netagent/overlay/overlay.h"

#include <linux/neighbour.h>

#include <catch2/catch.hpp>
#include <map>

using namespace skiff;
using namespace skiff::overlay;

namespace {

Ip4 ip(const char* s) { return *netlink::parse_ip4(s); }
Ip4Net net(const char* s) { return *netlink::parse_ip4_net(s); }

// A kernel in memory: links by name, the owned routes, neighbours and FDB entries.
class FakeKernel : public Kernel {
 public:
  FakeKernel() {
    netlink::LinkInfo eth;
    eth.index = 2;
    eth.name = "eth0";
    eth.mtu = 1500;
    eth.up = true;
    links["eth0"] = eth;
    addrs_.push_back({ip("10.250.8.11"), 24, 2});
  }
  Result<netlink::LinkInfo> link(const std::string& name) override {
    if (!links.count(name)) return Status::not_found("no link " + name);
    return links[name];
  }
  Result<netlink::LinkInfo> link_by_index(int index) override {
    for (auto& [n, l] : links)
      if (l.index == index) return l;
    return Status::not_found("no link");
  }
  Status create_vxlan(const std::string& name, const netlink::VxlanInfo& vx, int mtu) override {
    if (links.count(name)) return Status(Code::kIo, "exists", EEXIST);
    netlink::LinkInfo l;
    l.index = next_index++;
    l.name = name;
    l.kind = "vxlan";
    l.mac = "0a:00:00:00:00:" + std::to_string(10 + l.index);
    l.mtu = mtu;
    l.vxlan = vx;
    links[name] = l;
    ++creates;
    return Status();
  }
  Status delete_link(int index) override {
    for (auto it = links.begin(); it != links.end(); ++it)
      if (it->second.index == index) {
        links.erase(it);
        // The kernel drops what hangs off a deleted link.
        std::erase_if(routes, [&](const netlink::RouteInfo& r) { return r.oif == index; });
        neighs_.clear();
        fdbs_.clear();
        std::erase_if(addrs_, [&](const netlink::AddrInfo& a) { return a.index == index; });
        return Status();
      }
    return Status::not_found("no link");
  }
  Status set_up(int index) override {
    for (auto& [n, l] : links)
      if (l.index == index) l.up = true;
    return Status();
  }
  Status set_mtu(int index, int mtu) override {
    for (auto& [n, l] : links)
      if (l.index == index) l.mtu = mtu;
    return Status();
  }
  Result<std::vector<netlink::AddrInfo>> addrs(int index) override {
    std::vector<netlink::AddrInfo> out;
    for (const auto& a : addrs_)
      if (index == 0 || a.index == index) out.push_back(a);
    return out;
  }
  Status add_addr(int index, Ip4 i, int prefix) override {
    addrs_.push_back({i, prefix, index});
    return Status();
  }
  Status delete_addr(int index, Ip4 i, int prefix) override {
    std::erase_if(addrs_, [&](const netlink::AddrInfo& a) {
      return a.index == index && a.ip == i && a.prefix == prefix;
    });
    return Status();
  }
  Result<std::vector<netlink::RouteInfo>> owned_routes() override { return routes; }
  Status add_route(const netlink::RouteSpec& r) override {
    for (const auto& x : routes)
      if (x.dst == r.dst.network() && x.dst_len == r.dst.prefix)
        return Status(Code::kAlreadyExists, "exists", EEXIST);
    netlink::RouteInfo ri;
    ri.dst = r.dst.network();
    ri.dst_len = r.dst.prefix;
    ri.gw = r.gw;
    ri.oif = r.oif;
    ri.onlink = r.onlink;
    ri.protocol = r.protocol;
    routes.push_back(ri);
    ++ops;
    return Status();
  }
  Status delete_route(const netlink::RouteSpec& r) override {
    auto n = std::erase_if(routes, [&](const netlink::RouteInfo& x) {
      return x.dst == r.dst.network() && x.dst_len == r.dst.prefix && x.gw == r.gw;
    });
    ++ops;
    return n ? Status() : Status::not_found("no route");
  }
  Result<std::vector<netlink::NeighInfo>> neighs(int index) override { return neighs_; }
  Status set_neigh(int index, Ip4 i, const std::string& mac) override {
    std::erase_if(neighs_, [&](const netlink::NeighInfo& n) { return n.ip == i; });
    neighs_.push_back({index, i, mac, NUD_PERMANENT});
    ++ops;
    return Status();
  }
  Status delete_neigh(int index, Ip4 i) override {
    std::erase_if(neighs_, [&](const netlink::NeighInfo& n) { return n.ip == i; });
    ++ops;
    return Status();
  }
  Result<std::vector<netlink::FdbInfo>> fdbs(int index) override { return fdbs_; }
  Status set_fdb(int index, const std::string& mac, Ip4 dst) override {
    std::erase_if(fdbs_, [&](const netlink::FdbInfo& f) { return f.mac == mac; });
    fdbs_.push_back({index, mac, dst, NUD_PERMANENT, 0});
    ++ops;
    return Status();
  }
  Status delete_fdb(int index, const std::string& mac, Ip4 dst) override {
    std::erase_if(fdbs_, [&](const netlink::FdbInfo& f) { return f.mac == mac && f.dst == dst; });
    ++ops;
    return Status();
  }
  Status write_sysctl(const std::string& path, const std::string& value) override {
    sysctls[path] = value;
    return Status();
  }

  std::map<std::string, netlink::LinkInfo> links;
  std::vector<netlink::AddrInfo> addrs_;
  std::vector<netlink::RouteInfo> routes;
  std::vector<netlink::NeighInfo> neighs_;
  std::vector<netlink::FdbInfo> fdbs_;
  std::map<std::string, std::string> sysctls;
  int next_index = 10;
  int creates = 0;
  int ops = 0;
};

Config vxlan_config() {
  Config c;
  c.underlay_ip = ip("10.250.8.11");
  c.pod_cidr = net("10.244.1.0/24");
  return c;
}

Peer peer_b() { return {"b", net("10.244.2.0/24"), ip("10.250.8.12"), "0A:00:00:00:00:BB"}; }

}  // namespace

TEST_CASE("desired state in vxlan mode is flannel's route, neighbour and FDB per peer") {
  std::vector<std::string> skipped;
  auto st = desired_state(vxlan_config(), 7, 2, {peer_b()}, &skipped);
  REQUIRE(skipped.empty());
  REQUIRE(st.routes.size() == 1);
  CHECK(st.routes[0].dst == net("10.244.2.0/24"));
  CHECK(st.routes[0].gw == ip("10.244.2.0"));
  CHECK(st.routes[0].oif == 7);
  CHECK(st.routes[0].onlink);
  REQUIRE(st.neighs.size() == 1);
  CHECK(st.neighs[0].ip == ip("10.244.2.0"));
  CHECK(st.neighs[0].mac == "0a:00:00:00:00:bb");  // normalised
  REQUIRE(st.fdbs.size() == 1);
  CHECK(st.fdbs[0].mac == "0a:00:00:00:00:bb");
  CHECK(st.fdbs[0].dst == ip("10.250.8.12"));
}

TEST_CASE("desired state in host-gw mode routes via the peer's underlay IP") {
  Config c = vxlan_config();
  c.backend = Backend::kHostGw;
  Peer p = peer_b();
  p.vtep_mac = "";  // not needed
  auto st = desired_state(c, 0, 2, {p}, nullptr);
  REQUIRE(st.routes.size() == 1);
  CHECK(st.routes[0].gw == ip("10.250.8.12"));
  CHECK(st.routes[0].oif == 2);
  CHECK_FALSE(st.routes[0].onlink);
  CHECK(st.neighs.empty());
  CHECK(st.fdbs.empty());
}

TEST_CASE("peers that cannot be routed are skipped with a reason") {
  Peer no_mac = peer_b();
  no_mac.node = "c";
  no_mac.pod_cidr = net("10.244.3.0/24");
  no_mac.vtep_mac = "";
  Peer bad_mac = no_mac;
  bad_mac.node = "d";
  bad_mac.pod_cidr = net("10.244.4.0/24");
  bad_mac.vtep_mac = "zz";
  Peer overlap_self = peer_b();
  overlap_self.node = "e";
  overlap_self.pod_cidr = net("10.244.1.0/24");
  overlap_self.vtep_mac = "0a:00:00:00:00:ee";
  Peer dup = peer_b();
  dup.node = "f";  // sorts after b: b wins
  dup.vtep_mac = "0a:00:00:00:00:ff";
  Peer no_ip = peer_b();
  no_ip.node = "g";
  no_ip.underlay = Ip4{};
  std::vector<std::string> skipped;
  auto st = desired_state(vxlan_config(), 7, 2,
                          {dup, no_mac, bad_mac, overlap_self, no_ip, peer_b()}, &skipped);
  REQUIRE(st.routes.size() == 1);
  CHECK(st.routes[0].dst == net("10.244.2.0/24"));
  REQUIRE(skipped.size() == 5);
  CHECK(skipped[0] == "node c: no VTEP MAC");
  CHECK(skipped[1] == "node d: bad VTEP MAC \"zz\"");
  CHECK(skipped[2].find("node e: pod CIDR 10.244.1.0/24 overlaps") == 0);
  CHECK(skipped[3].find("node f: pod CIDR 10.244.2.0/24 overlaps") == 0);
  CHECK(skipped[4] == "node g: no underlay IP");
}

TEST_CASE("the plan applies only the difference") {
  State cur;
  cur.routes = {{net("10.244.2.0/24"), ip("10.244.2.0"), 7, true},
                {net("10.244.9.0/24"), ip("10.244.9.0"), 7, true}};
  cur.neighs = {{ip("10.244.2.0"), "0a:00:00:00:00:01"}, {ip("10.244.9.0"), "0a:00:00:00:00:09"}};
  cur.fdbs = {{"0a:00:00:00:00:01", ip("10.250.8.12")}};
  State want;
  want.routes = {{net("10.244.2.0/24"), ip("10.244.2.0"), 7, true}};
  want.neighs = {{ip("10.244.2.0"), "0a:00:00:00:00:02"}};  // MAC changed: replace
  want.fdbs = {{"0a:00:00:00:00:02", ip("10.250.8.12")}};
  Plan p = make_plan(cur, want);
  CHECK(p.add.routes.empty());
  REQUIRE(p.del.routes.size() == 1);
  CHECK(p.del.routes[0].dst == net("10.244.9.0/24"));
  REQUIRE(p.del.neighs.size() == 1);  // 10.244.2.0 is replaced, not deleted first
  CHECK(p.del.neighs[0].ip == ip("10.244.9.0"));
  REQUIRE(p.add.neighs.size() == 1);
  CHECK(p.add.neighs[0].mac == "0a:00:00:00:00:02");
  CHECK(p.del.fdbs.size() == 1);
  CHECK(p.add.fdbs.size() == 1);
  CHECK(make_plan(want, want).empty());
}

TEST_CASE("vxlan incompatibilities are explained in words") {
  netlink::VxlanInfo want{1, ip("10.250.8.11"), 2, 8472, false};
  CHECK(vxlan_incompatibility(want, want).empty());
  netlink::VxlanInfo have{2, ip("10.250.8.99"), 2, 4789, true};
  CHECK(vxlan_incompatibility(have, want) ==
        "vni 2, want 1; local 10.250.8.99, want 10.250.8.11; UDP port 4789, want 8472; "
        "learning on, want off");
}

TEST_CASE("sync creates the device, converges, and a second sync changes nothing") {
  FakeKernel k;
  Overlay o(&k, vxlan_config());
  REQUIRE(o.sync({peer_b()}));
  REQUIRE(k.links.count("skiff.vxlan"));
  const auto& vx = k.links["skiff.vxlan"];
  CHECK(vx.mtu == 1450);
  CHECK(vx.up);
  CHECK(vx.vxlan->vni == 1);
  CHECK(vx.vxlan->port == 8472);
  CHECK(vx.vxlan->link == 2);
  CHECK_FALSE(vx.vxlan->learning);
  CHECK(k.sysctls["net/ipv4/ip_forward"] == "1");
  auto a = k.addrs(vx.index);
  REQUIRE(a->size() == 1);
  CHECK((*a)[0].ip == ip("10.244.1.0"));
  CHECK((*a)[0].prefix == 32);
  CHECK(k.routes.size() == 1);
  CHECK(k.neighs_.size() == 1);
  CHECK(k.fdbs_.size() == 1);
  CHECK(o.stats().peers == 1);
  CHECK(o.device().mac == vx.mac);

  int ops = k.ops;
  REQUIRE(o.sync({peer_b()}));
  CHECK(k.ops == ops);
  CHECK(k.creates == 1);

  // A peer leaves: its entries go.
  REQUIRE(o.sync({}));
  CHECK(k.routes.empty());
  CHECK(k.neighs_.empty());
  CHECK(k.fdbs_.empty());
}

TEST_CASE("a deleted device is re-created and its entries restored") {
  FakeKernel k;
  Overlay o(&k, vxlan_config());
  REQUIRE(o.sync({peer_b()}));
  REQUIRE(k.delete_link(k.links["skiff.vxlan"].index));
  REQUIRE(k.routes.empty());
  REQUIRE(o.sync({peer_b()}));
  CHECK(k.creates == 2);
  CHECK(k.routes.size() == 1);
  CHECK(k.routes[0].oif == k.links["skiff.vxlan"].index);
  CHECK(k.fdbs_.size() == 1);
}

TEST_CASE("an incompatible vxlan device is re-created; a foreign device is an error") {
  FakeKernel k;
  netlink::VxlanInfo old{9, ip("10.250.8.11"), 2, 4789, true};
  REQUIRE(k.create_vxlan("skiff.vxlan", old, 1450));
  Overlay o(&k, vxlan_config());
  auto d = o.ensure_device();
  REQUIRE(d);
  CHECK(k.links["skiff.vxlan"].vxlan->vni == 1);
  CHECK(k.creates == 2);

  FakeKernel k2;
  netlink::LinkInfo dummy;
  dummy.index = 5;
  dummy.name = "skiff.vxlan";
  dummy.kind = "dummy";
  k2.links["skiff.vxlan"] = dummy;
  Overlay o2(&k2, vxlan_config());
  auto d2 = o2.ensure_device();
  REQUIRE_FALSE(d2);
  CHECK(d2.status().message().find("is a dummy device, not vxlan") != std::string::npos);
  CHECK(k2.links["skiff.vxlan"].kind == "dummy");  // untouched
}

TEST_CASE("switching to host-gw deletes the vxlan device and routes via the underlay") {
  FakeKernel k;
  Overlay o(&k, vxlan_config());
  REQUIRE(o.sync({peer_b()}));
  Config c = vxlan_config();
  c.backend = Backend::kHostGw;
  Overlay h(&k, c);
  REQUIRE(h.sync({peer_b()}));
  CHECK_FALSE(k.links.count("skiff.vxlan"));
  REQUIRE(k.routes.size() == 1);
  CHECK(k.routes[0].gw == ip("10.250.8.12"));
  CHECK(k.routes[0].oif == 2);
}

TEST_CASE("the underlay device must hold the node IP unless named") {
  FakeKernel k;
  Config c = vxlan_config();
  c.underlay_ip = ip("192.0.2.1");
  Overlay o(&k, c);
  auto d = o.ensure_device();
  REQUIRE_FALSE(d);
  CHECK(d.status().message().find("no link holds the underlay IP 192.0.2.1") == 0);
  c.underlay_dev = "eth0";
  Overlay named(&k, c);
  CHECK(named.ensure_device());
}
