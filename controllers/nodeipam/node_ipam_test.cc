#include "controllers/nodeipam/node_ipam.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "controllers/nodeipam/cidr_set.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::nodeipam;
using json = nlohmann::json;

TEST_CASE("cidr set: parse") {
  auto c = parse_ipv4_cidr("10.244.0.0/16");
  REQUIRE(c);
  CHECK(c->to_string() == "10.244.0.0/16");
  CHECK_FALSE(parse_ipv4_cidr("10.244.1.5/24"));  // host bits
  CHECK_FALSE(parse_ipv4_cidr("10.244.0.0"));
  CHECK_FALSE(parse_ipv4_cidr("10.244.0.0/33"));
  CHECK_FALSE(parse_ipv4_cidr("fd00::/64"));
  CHECK_FALSE(parse_ipv4_cidr("10.244.0.0/2x"));
}

TEST_CASE("cidr set: create validates the mask size") {
  CHECK_FALSE(CidrSet::create("10.244.0.0/16", 8));
  CHECK_FALSE(CidrSet::create("10.244.0.0/16", 33));
  CHECK_FALSE(CidrSet::create("10.0.0.0/8", 25));  // more than 65536 subnets
  CHECK_FALSE(CidrSet::create("nonsense", 24));
  auto s = CidrSet::create("10.244.0.0/16", 24);
  REQUIRE(s);
  CHECK(s->capacity() == 256);
}

TEST_CASE("cidr set: allocate next after the last, occupy, release, full") {
  auto s = std::move(*CidrSet::create("10.244.0.0/22", 24));
  REQUIRE(s.occupy("10.244.1.0/24"));
  REQUIRE(s.occupy("10.244.1.0/24"));  // idempotent
  CHECK(s.used() == 1);
  CHECK(*s.allocate_next() == "10.244.0.0/24");
  CHECK(*s.allocate_next() == "10.244.2.0/24");  // skips the occupied one
  REQUIRE(s.release("10.244.0.0/24"));
  // Next after the last handed out, not the just-freed one.
  CHECK(*s.allocate_next() == "10.244.3.0/24");
  CHECK(*s.allocate_next() == "10.244.0.0/24");  // wraps
  auto full = s.allocate_next();
  REQUIRE_FALSE(full);
  CHECK(full.status().code() == Code::kUnavailable);
  CHECK(full.status().message().find("full") != std::string::npos);
  REQUIRE(s.release("10.244.2.0/24"));
  REQUIRE(s.release("10.244.2.0/24"));  // idempotent
  CHECK(*s.allocate_next() == "10.244.2.0/24");

  auto out = s.occupy("10.245.0.0/24");
  CHECK(out.code() == Code::kInvalid);
  CHECK(out.message().find("outside the cluster CIDR") != std::string::npos);
  auto size = s.occupy("10.244.0.0/25");
  CHECK(size.code() == Code::kInvalid);
  CHECK(size.message().find("/24") != std::string::npos);
  CHECK_FALSE(s.release("garbage"));
}

namespace {

class FakeNodes : public NodeClient {
 public:
  std::optional<json> get(const std::string& name) override {
    auto it = nodes.find(name);
    if (it == nodes.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> list() override {
    std::vector<json> out;
    for (auto& [n, o] : nodes) out.push_back(o);
    return out;
  }
  Status set_pod_cidr(const std::string& name, const std::string& rv,
                      const std::string& cidr) override {
    ++patches;
    if (fail_next) {
      auto s = *fail_next;
      fail_next.reset();
      return s;
    }
    auto it = nodes.find(name);
    if (it == nodes.end()) return Status::not_found("node " + name);
    if (it->second["metadata"]["resourceVersion"] != rv) return Status::conflict("stale");
    it->second["spec"]["podCIDR"] = cidr;
    it->second["spec"]["podCIDRs"] = {cidr};
    bump(name);
    return Status::ok();
  }
  void add(const std::string& name, const std::string& cidr = "") {
    json n = {{"apiVersion", "v1"},
              {"kind", "Node"},
              {"metadata", {{"name", name}, {"uid", "uid-" + name}, {"resourceVersion", "1"}}},
              {"spec", json::object()}};
    if (!cidr.empty()) n["spec"] = {{"podCIDR", cidr}, {"podCIDRs", {cidr}}};
    nodes[name] = n;
  }
  void bump(const std::string& name) {
    auto& rv = nodes[name]["metadata"]["resourceVersion"];
    rv = std::to_string(std::stoi(rv.get<std::string>()) + 1);
  }
  std::string cidr(const std::string& name) {
    return nodes[name]["spec"].value("podCIDR", std::string());
  }
  std::map<std::string, json> nodes;
  int patches = 0;
  std::optional<Status> fail_next;
};

class FakeEvents : public EventSink {
 public:
  void event(const json& obj, const std::string& kind, bool warning, const std::string& reason,
             const std::string&) override {
    seen.push_back(obj["metadata"]["name"].get<std::string>() + ":" + kind + ":" + reason +
                   (warning ? ":Warning" : ":Normal"));
  }
  std::vector<std::string> seen;
};

std::unique_ptr<NodeIpamController> make(FakeNodes& nodes, FakeEvents& events,
                                         const std::string& cluster = "10.244.0.0/22") {
  NodeIpamOptions o;
  o.cluster_cidr = cluster;
  o.node_cidr_mask_size = 24;
  auto c = NodeIpamController::create(o);
  REQUIRE(c);
  (*c)->set_clients(&nodes, &events);
  return std::move(*c);
}

}  // namespace

TEST_CASE("nodeipam: bad options are refused") {
  NodeIpamOptions o;
  o.cluster_cidr = "10.244.0.0/16";
  o.node_cidr_mask_size = 12;
  CHECK_FALSE(NodeIpamController::create(o));
}

TEST_CASE("nodeipam: existing CIDRs are kept and occupied before any allocation") {
  FakeNodes nodes;
  FakeEvents events;
  nodes.add("a", "10.244.0.0/24");
  nodes.add("bad", "192.168.7.0/24");  // outside: left alone, reported
  nodes.add("new");
  auto c = make(nodes, events);
  c->occupy_existing();
  CHECK(c->used() == 1);
  REQUIRE(c->sync("a"));
  REQUIRE(c->sync("bad"));
  REQUIRE(c->sync("bad"));  // reported once
  REQUIRE(c->sync("new"));
  CHECK(nodes.cidr("a") == "10.244.0.0/24");
  CHECK(nodes.cidr("bad") == "192.168.7.0/24");
  CHECK(nodes.cidr("new") == "10.244.1.0/24");  // not a's
  CHECK(nodes.nodes["new"]["spec"]["podCIDRs"] == json::array({"10.244.1.0/24"}));
  CHECK(events.seen == std::vector<std::string>{"bad:Node:InvalidPodCIDR:Warning"});
  // Idempotent: syncing again writes nothing.
  int before = nodes.patches;
  REQUIRE(c->sync("new"));
  REQUIRE(c->sync("a"));
  CHECK(nodes.patches == before);
  CHECK(c->used() == 2);
}

TEST_CASE("nodeipam: a deleted node frees its CIDR for a later node") {
  FakeNodes nodes;
  FakeEvents events;
  auto c = make(nodes, events);
  for (auto n : {"n1", "n2", "n3"}) {
    nodes.add(n);
    REQUIRE(c->sync(n));
  }
  CHECK(nodes.cidr("n1") == "10.244.0.0/24");
  CHECK(nodes.cidr("n2") == "10.244.1.0/24");
  CHECK(nodes.cidr("n3") == "10.244.2.0/24");
  nodes.nodes.erase("n2");
  REQUIRE(c->sync("n2"));
  CHECK(c->used() == 2);
  REQUIRE(c->sync("n2"));  // idempotent
  nodes.add("n4");
  REQUIRE(c->sync("n4"));
  CHECK(nodes.cidr("n4") == "10.244.3.0/24");  // next after the last
  nodes.add("n5");
  REQUIRE(c->sync("n5"));
  CHECK(nodes.cidr("n5") == "10.244.1.0/24");  // the freed one
}

TEST_CASE("nodeipam: full range => CIDRNotAvailable once, then a CIDR when one is freed") {
  FakeNodes nodes;
  FakeEvents events;
  auto c = make(nodes, events);
  for (auto n : {"n1", "n2", "n3", "n4"}) {
    nodes.add(n);
    REQUIRE(c->sync(n));
  }
  nodes.add("n5");
  auto st = c->sync("n5");
  CHECK(st.code() == Code::kUnavailable);
  CHECK_FALSE(c->sync("n5"));  // retried: still full, no second event
  CHECK(events.seen == std::vector<std::string>{"n5:Node:CIDRNotAvailable:Warning"});
  CHECK(nodes.cidr("n5").empty());

  // Drain what earlier syncs queued, then delete n3: n5 is queued again at once.
  while (c->queue().len() > 0) c->queue().done(*c->queue().get());
  nodes.nodes.erase("n3");
  REQUIRE(c->sync("n3"));
  REQUIRE(c->queue().len() == 1);
  auto key = c->queue().get();
  CHECK(*key == "n5");
  REQUIRE(c->sync(*key));
  CHECK(nodes.cidr("n5") == "10.244.2.0/24");
}

TEST_CASE(
    "nodeipam: a conflict is retried with the same CIDR; a node that got one meanwhile "
    "keeps its own") {
  FakeNodes nodes;
  FakeEvents events;
  auto c = make(nodes, events);
  nodes.add("n1");
  nodes.fail_next = Status::conflict("node changed");
  auto st = c->sync("n1");
  CHECK(st.code() == Code::kConflict);
  CHECK(c->cidr_of("n1") == "10.244.0.0/24");  // reserved for the retry
  REQUIRE(c->sync("n1"));
  CHECK(nodes.cidr("n1") == "10.244.0.0/24");
  CHECK(c->used() == 1);

  // n2's patch conflicts because someone set another CIDR on it: the reservation is dropped.
  nodes.add("n2");
  nodes.fail_next = Status::conflict("node changed");
  CHECK_FALSE(c->sync("n2"));
  CHECK(c->cidr_of("n2") == "10.244.1.0/24");
  nodes.nodes["n2"]["spec"] = {{"podCIDR", "10.244.3.0/24"}, {"podCIDRs", {"10.244.3.0/24"}}};
  REQUIRE(c->sync("n2"));
  CHECK(c->cidr_of("n2") == "10.244.3.0/24");
  CHECK(c->used() == 2);
  nodes.add("n3");
  REQUIRE(c->sync("n3"));
  CHECK(nodes.cidr("n3") == "10.244.2.0/24");  // 1.0 was freed, but next-after-last is 2.0
}

TEST_CASE("nodeipam: a node deleted while its patch is in flight frees its reservation") {
  FakeNodes nodes;
  FakeEvents events;
  auto c = make(nodes, events);
  nodes.add("n1");
  nodes.fail_next = Status::not_found("gone");
  REQUIRE(c->sync("n1"));
  CHECK(c->used() == 0);
}
