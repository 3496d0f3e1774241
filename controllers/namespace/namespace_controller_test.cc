#include "controllers/namespace/namespace_controller.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "proto/registry.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::ns;

namespace {

class FakeNamespaces : public NamespaceClient {
 public:
  std::map<std::string, json> namespaces;
  std::map<std::string, json> objects;  // "plural/ns/name"
  bool fail_lists = false;
  int finishes = 0;

  void add(const std::string& plural, const std::string& ns, const std::string& name,
           bool held = false) {
    json o = {{"metadata", {{"name", name}, {"namespace", ns}, {"uid", "uid-" + name}}}};
    if (held) {
      o["metadata"]["finalizers"] = json::array({"example.com/hold"});
      o["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z";
    }
    objects[plural + "/" + ns + "/" + name] = o;
  }
  std::optional<json> get(const std::string& name) override {
    auto it = namespaces.find(name);
    if (it == namespaces.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> list_namespaces() override {
    std::vector<json> out;
    for (auto& [k, v] : namespaces) out.push_back(v);
    return out;
  }
  Result<std::vector<json>> list(const proto::ResourceType& t, const std::string& ns) override {
    if (fail_lists) return Status::unavailable("connection refused");
    std::vector<json> out;
    std::string prefix = t.plural + "/" + ns + "/";
    for (auto& [k, v] : objects)
      if (k.rfind(prefix, 0) == 0) out.push_back(v);
    return out;
  }
  Status remove(const proto::ResourceType& t, const std::string& ns, const std::string& name,
                const std::string& uid) override {
    auto it = objects.find(t.plural + "/" + ns + "/" + name);
    if (it == objects.end()) return Status::not_found(name);
    if (it->second["metadata"]["uid"] != uid) return Status::conflict("uid");
    objects.erase(it);
    return Status::ok();
  }
  Status finish(const std::string& name) override {
    ++finishes;
    for (auto& [k, v] : objects)
      if (v["metadata"]["namespace"] == name) return Status::ok();  // still held
    namespaces.erase(name);
    return Status::ok();
  }
};

}  // namespace

TEST_CASE("namespace: a terminating namespace is emptied, then finished") {
  FakeNamespaces api;
  NamespaceController c;
  c.set_client(&api);
  api.namespaces["live"] = {{"metadata", {{"name", "live"}}}, {"status", {{"phase", "Active"}}}};
  api.namespaces["dying"] = {
      {"metadata", {{"name", "dying"}, {"deletionTimestamp", "2026-12-06T00:00:00Z"}}},
      {"status", {{"phase", "Terminating"}}}};
  api.add("pods", "live", "keep");
  api.add("pods", "dying", "p");
  api.add("configmaps", "dying", "c");
  api.add("replicasets", "dying", "rs");
  api.add("secrets", "dying", "held", true);

  // An active namespace is not touched.
  auto r = c.sync("live");
  REQUIRE(r);
  CHECK(*r);
  CHECK(api.objects.count("pods/live/keep") == 1);

  // Everything but the held object goes; the namespace waits for it.
  r = c.sync("dying");
  REQUIRE(r);
  CHECK_FALSE(*r);
  CHECK(api.objects.size() == 2);
  CHECK(api.objects.count("secrets/dying/held") == 1);
  CHECK(api.finishes == 0);
  CHECK(api.namespaces.count("dying") == 1);

  // Its finalizer is released: the next look finishes the namespace.
  api.objects.erase("secrets/dying/held");
  r = c.sync("dying");
  REQUIRE(r);
  CHECK(api.finishes == 1);
  CHECK(api.namespaces.count("dying") == 0);
  r = c.sync("dying");
  REQUIRE(r);
  CHECK(*r);  // gone: done
  CHECK(api.objects.count("pods/live/keep") == 1);
}

TEST_CASE("namespace: an API error is reported and nothing is finished") {
  FakeNamespaces api;
  NamespaceController c;
  c.set_client(&api);
  api.namespaces["dying"] = {{"metadata", {{"name", "dying"}}},
                             {"status", {{"phase", "Terminating"}}}};
  api.fail_lists = true;
  CHECK_FALSE(c.sync("dying"));
  CHECK(api.finishes == 0);
  CHECK(api.namespaces.count("dying") == 1);
}
