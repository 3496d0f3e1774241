// VolumeBinding: PreFilter reasons (missing / deleting claims, unbound immediate claims,
// missing class), bound PVs' node affinity per node, WaitForFirstConsumer claims remembered for
// PreBind, and the FitError text. No network.
#include "controllers/scheduler/volume_binding.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "controllers/scheduler/algorithm.h"
#include "controllers/scheduler/filters.h"

using namespace skiff;
using namespace skiff::scheduler;
using json = nlohmann::json;

namespace {

struct Store {
  std::map<std::string, json> claims, volumes, classes;
  VolumeLookup lookup() {
    auto get = [](std::map<std::string, json>& m) {
      return [&m](const std::string& k) -> std::optional<json> {
        auto it = m.find(k);
        if (it == m.end()) return std::nullopt;
        return it->second;
      };
    };
    return {get(claims), get(volumes), get(classes)};
  }
  void claim(const std::string& name, const std::string& cls, const std::string& volume = "") {
    json c = {{"metadata", {{"name", name}, {"namespace", "default"}}},
              {"spec", {{"storageClassName", cls}}}};
    if (!volume.empty()) c["spec"]["volumeName"] = volume;
    claims["default/" + name] = c;
  }
  void volume_on(const std::string& name, const std::string& node) {
    json v = json::parse(R"({"spec":{"nodeAffinity":{"required":{"nodeSelectorTerms":[
        {"matchExpressions":[{"key":"kubernetes.io/hostname","operator":"In"}]}]}}}})");
    v["metadata"]["name"] = name;
    v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] =
        {node};
    volumes[name] = v;
  }
};

PodInfo pod_with_claims(std::vector<std::string> names) {
  json vols = json::array();
  for (const auto& n : names)
    vols.push_back({{"name", n}, {"persistentVolumeClaim", {{"claimName", n}}}});
  json obj = json::parse(R"({"metadata":{"name":"web","namespace":"default"},
      "spec":{"containers":[{"name":"c","image":"busybox"}]}})");
  obj["spec"]["volumes"] = vols;
  auto p = pod_info_from_json(obj);
  REQUIRE(p.is_ok());
  return *p;
}

NodeInfo node(const std::string& name) {
  NodeInfo n;
  n.name = name;
  n.ready = true;
  n.allocatable = {4000, 8LL << 30, 110};
  n.labels = {{"kubernetes.io/hostname", name}};
  return n;
}

}  // namespace

TEST_CASE("volume prefilter: claims that stop the pod everywhere") {
  Store s;
  s.classes["local-path"] = {{"metadata", {{"name", "local-path"}}},
                             {"volumeBindingMode", "WaitForFirstConsumer"}};
  s.classes["manual"] = {{"metadata", {{"name", "manual"}}}, {"volumeBindingMode", "Immediate"}};
  PodInfo p = pod_with_claims({"data"});
  CHECK(p.claims == std::vector<std::string>{"data"});
  CHECK(volume_prefilter(p, s.lookup()) == "persistentvolumeclaim \"data\" not found");
  CHECK(prefilter_message(3, volume_prefilter(p, s.lookup())) ==
        "0/3 nodes are available: persistentvolumeclaim \"data\" not found.");

  s.claim("data", "local-path");
  s.claims["default/data"]["metadata"]["deletionTimestamp"] = "2026-12-06T08:00:00Z";
  CHECK(volume_prefilter(p, s.lookup()) == "persistentvolumeclaim \"data\" is being deleted");

  s.claim("data", "manual");
  CHECK(volume_prefilter(p, s.lookup()) == "pod has unbound immediate PersistentVolumeClaims");
  s.claim("data", "");
  CHECK(volume_prefilter(p, s.lookup()) == "pod has unbound immediate PersistentVolumeClaims");
  s.claim("data", "gold");
  // A class that does not exist binds immediately (IsDelayBindingMode).
  CHECK(volume_prefilter(p, s.lookup()) == "pod has unbound immediate PersistentVolumeClaims");

  // Unbound WaitForFirstConsumer: any node, remembered for PreBind.
  s.claim("data", "local-path");
  CHECK(volume_prefilter(p, s.lookup()) == "");
  CHECK(p.wffc_claims == std::vector<std::string>{"data"});
  Reasons r;
  CHECK(run_filters(p, node("node-a"), r));
  // The beta class annotation wins over spec.storageClassName.
  s.claims["default/data"]["metadata"]["annotations"] = {
      {"volume.beta.kubernetes.io/storage-class", "manual"}};
  CHECK(volume_prefilter(p, s.lookup()) == "pod has unbound immediate PersistentVolumeClaims");
}

TEST_CASE("volume filter: a bound PV's node affinity decides the node") {
  Store s;
  s.classes["local-path"] = {{"metadata", {{"name", "local-path"}}},
                             {"volumeBindingMode", "WaitForFirstConsumer"}};
  s.claim("data", "local-path", "pv-b");
  s.volume_on("pv-b", "node-b");
  s.claim("scratch", "local-path");
  PodInfo p = pod_with_claims({"data", "scratch"});
  REQUIRE(volume_prefilter(p, s.lookup()) == "");
  CHECK(p.wffc_claims == std::vector<std::string>{"scratch"});
  REQUIRE(p.volume_affinity.size() == 1);

  std::vector<NodeInfo> ns = {node("node-a"), node("node-b"), node("node-c")};
  std::vector<const NodeInfo*> ptrs;
  for (const auto& n : ns) ptrs.push_back(&n);
  Reasons r;
  CHECK_FALSE(filter_volume_binding(p, ns[0], r));
  CHECK(r == Reasons{"node(s) had volume node affinity conflict"});
  size_t start = 0;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 5; ++i) CHECK(find_node(p, ptrs, 0, start, rng).node == "node-b");

  // A PV without node affinity fits everywhere; a missing PV nowhere.
  s.volumes["pv-b"]["spec"].erase("nodeAffinity");
  REQUIRE(volume_prefilter(p, s.lookup()) == "");
  CHECK(p.volume_affinity.empty());
  r.clear();
  CHECK(filter_volume_binding(p, ns[0], r));
  s.volumes.clear();
  REQUIRE(volume_prefilter(p, s.lookup()) == "");
  auto placement = find_node(p, ptrs, 0, start, rng);
  CHECK(placement.node == "");
  CHECK(placement.message ==
        "0/3 nodes are available: 3 node(s) unavailable due to one or more pvc(s) bound to "
        "non-existent pv(s).");

  // Ready and the other filters still come first.
  s.volume_on("pv-b", "node-b");
  REQUIRE(volume_prefilter(p, s.lookup()) == "");
  ns[1].ready = false;
  placement = find_node(p, ptrs, 0, start, rng);
  CHECK(placement.message ==
        "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) had volume node affinity "
        "conflict.");
}

TEST_CASE("WaitForFirstConsumer claims and static PVs") {
  Store s;
  s.classes["local"] = {{"metadata", {{"name", "local"}}},
                        {"provisioner", "kubernetes.io/no-provisioner"},
                        {"volumeBindingMode", "WaitForFirstConsumer"}};
  json c = {{"metadata", {{"name", "data"}, {"namespace", "default"}, {"uid", "u1"}}},
            {"spec",
             {{"storageClassName", "local"},
              {"accessModes", {"ReadWriteOnce"}},
              {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}};
  s.claims["default/data"] = c;
  auto available = [&](const std::string& name, const char* size, const std::string& node) {
    s.volume_on(name, node);
    s.volumes[name]["spec"]["capacity"] = {{"storage", size}};
    s.volumes[name]["spec"]["accessModes"] = {"ReadWriteOnce"};
    s.volumes[name]["spec"]["storageClassName"] = "local";
    s.volumes[name]["status"] = {{"phase", "Available"}};
  };
  available("big-c", "10Gi", "node-c");
  available("small-b", "2Gi", "node-b");
  available("tiny-a", "500Mi", "node-a");  // too small
  available("taken-a", "5Gi", "node-a");
  s.volumes["taken-a"]["spec"]["claimRef"] = {{"namespace", "default"}, {"name", "other"}};
  available("rwx-a", "5Gi", "node-a");
  s.volumes["rwx-a"]["spec"]["accessModes"] = {"ReadWriteMany"};

  auto lookup = s.lookup();
  lookup.volumes = [&] {
    std::vector<json> out;
    for (const auto& [k, v] : s.volumes) out.push_back(v);
    return out;
  };
  PodInfo p = pod_with_claims({"data"});
  REQUIRE(volume_prefilter(p, lookup) == "");
  REQUIRE(p.wffc.size() == 1);
  std::vector<std::string> names;
  for (const auto& v : p.wffc[0].candidates) names.push_back(v.name);
  CHECK(names == std::vector<std::string>{"small-b", "big-c"});  // smallest first
  CHECK_FALSE(p.wffc[0].provisionable);

  // No provisioner: only the nodes of the fitting PVs.
  std::vector<NodeInfo> ns = {node("node-a"), node("node-b"), node("node-c")};
  std::vector<const NodeInfo*> ptrs;
  for (const auto& n : ns) ptrs.push_back(&n);
  size_t start = 0;
  std::mt19937_64 rng(1);
  Reasons r;
  CHECK_FALSE(filter_volume_binding(p, ns[0], r));
  CHECK(r == Reasons{"node(s) didn't find available persistent volumes to bind"});
  for (int i = 0; i < 6; ++i) {
    std::string n = find_node(p, ptrs, 0, start, rng).node;
    CHECK((n == "node-b" || n == "node-c"));
  }
  // A class that provisions: any node.
  s.classes["local"]["provisioner"] = "skiff.io/local-path";
  REQUIRE(volume_prefilter(p, lookup) == "");
  r.clear();
  CHECK(filter_volume_binding(p, ns[0], r));
  // Nothing fits and nothing provisions: the message names it on every node.
  s.classes["local"]["provisioner"] = "kubernetes.io/no-provisioner";
  s.volumes.clear();
  REQUIRE(volume_prefilter(p, lookup) == "");
  CHECK(find_node(p, ptrs, 0, start, rng).message ==
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind.");
}
