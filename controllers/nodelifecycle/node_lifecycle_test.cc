#include "controllers/nodelifecycle/node_lifecycle.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::nodelifecycle;
using namespace std::chrono_literals;

namespace {

json merge(json target, const json& patch) {
  target.merge_patch(patch);
  return target;
}

class FakeCluster : public NodeLifecycleClient {
 public:
  std::map<std::string, json> nodes_, leases_, pods_;  // pods by "ns/name"
  std::vector<std::string> deleted;
  int writes = 0;
  int rv = 1;

  void add_node(const std::string& name, const std::string& ready = "True") {
    nodes_[name] = {
        {"metadata", {{"name", name}, {"resourceVersion", std::to_string(++rv)}}},
        {"status",
         {{"conditions", json::array({{{"type", "MemoryPressure"}, {"status", "False"}},
                                      {{"type", "Ready"},
                                       {"status", ready},
                                       {"reason", "KubeletReady"},
                                       {"lastHeartbeatTime", "2026-12-06T00:00:00Z"}}})}}}};
  }
  void renew(const std::string& node, const std::string& when) {
    leases_[node] = {{"spec", {{"holderIdentity", node}, {"renewTime", when}}}};
  }
  void add_pod(const std::string& name, const std::string& node, json tolerations = nullptr) {
    json p = {{"metadata",
               {{"name", name},
                {"namespace", "default"},
                {"uid", "uid-" + name},
                {"resourceVersion", std::to_string(++rv)}}},
              {"spec", {{"nodeName", node}}},
              {"status",
               {{"phase", "Running"},
                {"conditions", json::array({{{"type", "ContainersReady"}, {"status", "True"}},
                                            {{"type", "Ready"}, {"status", "True"}}})}}}};
    if (!tolerations.is_null()) p["spec"]["tolerations"] = tolerations;
    pods_["default/" + name] = p;
  }
  json condition(const json& obj, const std::string& type) {
    for (const auto& c : obj["status"]["conditions"])
      if (c["type"] == type) return c;
    return nullptr;
  }
  std::set<std::string> taints(const std::string& node) {
    std::set<std::string> out;
    const json& n = nodes_[node];
    if (!n.contains("spec") || !n["spec"].contains("taints")) return out;
    for (const auto& t : n["spec"]["taints"])
      out.insert(t["key"].get<std::string>() + ":" + t["effect"].get<std::string>());
    return out;
  }

  std::vector<json> nodes() override {
    std::vector<json> out;
    for (auto& [k, n] : nodes_) out.push_back(n);
    return out;
  }
  std::optional<json> lease(const std::string& node) override {
    auto it = leases_.find(node);
    if (it == leases_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> pods_on(const std::string& node) override {
    std::vector<json> out;
    for (auto& [k, p] : pods_)
      if (p["spec"]["nodeName"] == node) out.push_back(p);
    return out;
  }
  Status apply(json& obj, const json& patch) {
    if (patch.contains("metadata") &&
        patch["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"])
      return Status::conflict("stale resourceVersion");
    json p = patch;
    if (p.contains("metadata")) p["metadata"].erase("resourceVersion");
    obj = merge(obj, p);
    obj["metadata"]["resourceVersion"] = std::to_string(++rv);
    ++writes;
    return Status::ok();
  }
  Status patch_node(const std::string& name, const json& patch) override {
    return apply(nodes_.at(name), patch);
  }
  Status patch_node_status(const std::string& name, const json& patch) override {
    return apply(nodes_.at(name), patch);
  }
  Status patch_pod_status(const std::string& ns, const std::string& name,
                          const json& patch) override {
    return apply(pods_.at(ns + "/" + name), patch);
  }
  Status delete_pod(const std::string& ns, const std::string& name,
                    const std::string& uid) override {
    auto it = pods_.find(ns + "/" + name);
    if (it == pods_.end()) return Status::not_found(name);
    if (it->second["metadata"]["uid"] != uid) return Status::conflict("uid");
    pods_.erase(it);
    deleted.push_back(name);
    ++writes;
    return Status::ok();
  }
};

struct Fixture {
  client::FakeClock clock;
  FakeCluster cluster;
  std::unique_ptr<NodeLifecycleController> c;
  explicit Fixture(std::chrono::milliseconds eviction = 60s) {
    NodeLifecycleOptions o;
    o.grace_period = 40s;
    o.pod_eviction_timeout = eviction;
    o.clock = &clock;
    o.wall_clock = [] { return std::chrono::system_clock::time_point(1800000000s); };
    c = std::make_unique<NodeLifecycleController>(o);
    c->set_client(&cluster);
  }
  void pass() { REQUIRE(c->monitor_once()); }
};

}  // namespace

TEST_CASE(
    "nodelifecycle: a lease not renewed => Ready=Unknown, unreachable taints, pods not "
    "ready at once, evicted after the timeout; renewal removes the taints") {
  Fixture f;
  f.cluster.add_node("n1");
  f.cluster.add_node("n2");
  f.cluster.renew("n1", "t0");
  f.cluster.renew("n2", "t0");
  f.cluster.add_pod("a", "n1");
  f.cluster.add_pod("other", "n2");
  f.pass();
  CHECK(f.cluster.writes == 0);  // healthy: nothing written

  // n2 keeps renewing; n1 stops.
  for (int i = 1; i <= 8; ++i) {
    f.clock.advance(5s);
    f.cluster.renew("n2", "t" + std::to_string(i));
    f.pass();
  }
  // 40 s exactly is not over the grace period.
  CHECK(f.cluster.condition(f.cluster.nodes_["n1"], "Ready")["status"] == "True");
  f.clock.advance(5s);
  f.cluster.renew("n2", "t9");
  f.pass();
  json ready = f.cluster.condition(f.cluster.nodes_["n1"], "Ready");
  CHECK(ready["status"] == "Unknown");
  CHECK(ready["reason"] == "NodeStatusUnknown");
  CHECK(ready["message"] == "Kubelet stopped posting node status.");
  CHECK(ready["lastHeartbeatTime"] == "2026-12-06T00:00:00Z");
  CHECK(f.cluster.condition(f.cluster.nodes_["n1"], "MemoryPressure")["status"] == "Unknown");
  CHECK(f.cluster.taints("n1") ==
        std::set<std::string>{"node.kubernetes.io/unreachable:NoExecute",
                              "node.kubernetes.io/unreachable:NoSchedule"});
  for (const auto& t : f.cluster.nodes_["n1"]["spec"]["taints"])
    CHECK(t.contains("timeAdded") == (t["effect"] == "NoExecute"));
  auto& pod = f.cluster.pods_["default/a"];
  CHECK(f.cluster.condition(pod, "Ready")["status"] == "False");
  CHECK(f.cluster.condition(pod, "ContainersReady")["status"] == "True");
  CHECK(f.cluster.condition(f.cluster.pods_["default/other"], "Ready")["status"] == "True");
  CHECK(f.cluster.taints("n2").empty());

  // Idempotent while it stays down, until the eviction timeout.
  int w = f.cluster.writes;
  for (int i = 10; i < 21; ++i) {
    f.clock.advance(5s);
    f.cluster.renew("n2", "t" + std::to_string(i));
    f.pass();
  }
  f.clock.advance(4s);
  f.pass();
  CHECK(f.cluster.writes == w);
  f.clock.advance(1s);  // 60 s since the node was first seen unhealthy
  f.pass();
  CHECK(f.cluster.deleted == std::vector<std::string>{"a"});
  CHECK(f.cluster.pods_.count("default/other") == 1);

  // The lease is renewed: the taints go (Ready=True is the kubelet's to set).
  f.clock.advance(5s);
  f.cluster.renew("n1", "back");
  f.pass();
  CHECK(f.cluster.taints("n1").empty());
  CHECK_FALSE(f.cluster.nodes_["n1"]["spec"].contains("taints"));
}

TEST_CASE("nodelifecycle: tolerationSeconds of a matching NoExecute toleration decides") {
  Fixture f(60s);
  f.cluster.add_node("n1");
  f.cluster.add_pod("default-timeout", "n1");
  f.cluster.add_pod("short", "n1",
                    json::array({{{"key", "node.kubernetes.io/unreachable"},
                                  {"operator", "Exists"},
                                  {"effect", "NoExecute"},
                                  {"tolerationSeconds", 10}}}));
  f.cluster.add_pod("long", "n1",
                    json::array({{{"operator", "Exists"}, {"tolerationSeconds", 120}}}));
  f.cluster.add_pod("forever", "n1",
                    json::array({{{"key", "node.kubernetes.io/unreachable"},
                                  {"operator", "Exists"},
                                  {"effect", "NoExecute"}}}));
  f.cluster.add_pod("other-key", "n1",
                    json::array({{{"key", "node.kubernetes.io/not-ready"},
                                  {"operator", "Exists"},
                                  {"tolerationSeconds", 1}}}));
  f.pass();  // first seen: counts as renewed now (no lease at all)
  f.clock.advance(41s);
  f.pass();
  CHECK(f.cluster.deleted.empty());
  f.clock.advance(10s);
  f.pass();
  CHECK(f.cluster.deleted == std::vector<std::string>{"short"});
  f.clock.advance(50s);
  f.pass();
  CHECK(f.cluster.deleted == std::vector<std::string>{"short", "default-timeout", "other-key"});
  f.clock.advance(60s);
  f.pass();
  CHECK(f.cluster.deleted ==
        std::vector<std::string>{"short", "default-timeout", "other-key", "long"});
  f.clock.advance(1h);
  f.pass();
  CHECK(f.cluster.pods_.count("default/forever") == 1);
}

TEST_CASE("nodelifecycle: Ready=False from the kubelet => not-ready taints; True removes them") {
  Fixture f;
  f.cluster.add_node("n1", "False");
  f.cluster.renew("n1", "t0");
  f.cluster.add_pod("a", "n1");
  f.pass();
  CHECK(f.cluster.taints("n1") == std::set<std::string>{"node.kubernetes.io/not-ready:NoExecute",
                                                        "node.kubernetes.io/not-ready:NoSchedule"});
  CHECK(f.cluster.condition(f.cluster.pods_["default/a"], "Ready")["status"] == "False");
  CHECK(f.cluster.condition(f.cluster.nodes_["n1"], "Ready")["status"] == "False");

  // Another taint on the node is kept; Ready=True removes only ours.
  f.cluster.nodes_["n1"]["spec"]["taints"].push_back(
      {{"key", "dedicated"}, {"effect", "NoSchedule"}});
  f.cluster.nodes_["n1"]["status"]["conditions"][1]["status"] = "True";
  f.cluster.nodes_["n1"]["status"]["conditions"][1]["lastHeartbeatTime"] = "2026-12-06T00:00:10Z";
  f.pass();
  CHECK(f.cluster.taints("n1") == std::set<std::string>{"dedicated:NoSchedule"});
}

TEST_CASE("nodelifecycle: a node that never posted status gets NodeStatusNeverUpdated") {
  Fixture f;
  f.cluster.nodes_["bare"] = {{"metadata",
                               {{"name", "bare"},
                                {"resourceVersion", "1"},
                                {"creationTimestamp", "2026-12-06T00:00:00Z"}}}};
  f.pass();
  f.clock.advance(41s);
  f.pass();
  json ready = f.cluster.condition(f.cluster.nodes_["bare"], "Ready");
  CHECK(ready["status"] == "Unknown");
  CHECK(ready["reason"] == "NodeStatusNeverUpdated");
  CHECK(ready["message"] == "Kubelet never posted node status.");
  CHECK(f.cluster.taints("bare").size() == 2);
}
