#include "controllers/gc/garbage_collector.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "proto/registry.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::gc;

namespace {

const proto::ResourceType& type(const char* plural, const char* group = "") {
  const auto* t = proto::Registry::builtin().find(group, "v1", plural);
  REQUIRE(t != nullptr);
  return *t;
}

// An API server in a map, with the deletion rules the collector relies on: finalizers hold an
// object (deletionTimestamp), Foreground/Orphan add the GC finalizer, removing the last
// finalizer of a marked object deletes it, resourceVersion and uid preconditions.
class FakeApi : public GcClient {
 public:
  std::map<std::string, Item> objs;  // "plural/ns/name"
  std::set<std::string> hidden;      // keys missing from the "cache" (lag)
  bool fail_gets = false;
  int rv = 1, writes = 0;

  static std::string key(const proto::ResourceType& t, const std::string& ns,
                         const std::string& name) {
    return t.plural + "/" + ns + "/" + name;
  }
  json& add(const proto::ResourceType& t, const std::string& name, json owners = json::array(),
            const std::string& ns = "default") {
    json o = {{"apiVersion", t.api_version()},
              {"kind", t.kind},
              {"metadata",
               {{"name", name},
                {"namespace", ns},
                {"uid", "uid-" + name},
                {"resourceVersion", std::to_string(++rv)}}}};
    if (!owners.empty()) o["metadata"]["ownerReferences"] = owners;
    objs[key(t, ns, name)] = {&t, o};
    return objs[key(t, ns, name)].obj;
  }
  bool has(const proto::ResourceType& t, const std::string& name) {
    return objs.count(key(t, "default", name)) > 0;
  }
  json& get(const proto::ResourceType& t, const std::string& name) {
    return objs.at(key(t, "default", name)).obj;
  }

  std::vector<Item> list_all() override {
    std::vector<Item> out;
    for (auto& [k, it] : objs)
      if (!hidden.count(k)) out.push_back(it);
    return out;
  }
  const proto::ResourceType* type_of(const std::string& av, const std::string& kind) override {
    return proto::Registry::builtin().by_kind(av, kind);
  }
  Result<std::optional<json>> get_live(const proto::ResourceType& t, const std::string& ns,
                                       const std::string& name) override {
    if (fail_gets) return Status::unavailable("connection refused");
    auto it = objs.find(key(t, ns, name));
    if (it == objs.end()) return std::optional<json>();
    return std::optional<json>(it->second.obj);
  }
  Status remove(const proto::ResourceType& t, const std::string& ns, const std::string& name,
                const std::string& uid, const std::string& propagation) override {
    auto it = objs.find(key(t, ns, name));
    if (it == objs.end()) return Status::not_found(name);
    json& m = it->second.obj["metadata"];
    if (m["uid"] != uid) return Status::conflict("uid precondition");
    ++writes;
    json fins = m.value("finalizers", json::array());
    if (propagation == "Foreground") fins.push_back(kForegroundFinalizer);
    if (propagation == "Orphan") fins.push_back(kOrphanFinalizer);
    if (fins.empty()) {
      objs.erase(it);
      return Status::ok();
    }
    m["finalizers"] = fins;
    m["deletionTimestamp"] = "2026-12-06T00:00:00Z";
    m["resourceVersion"] = std::to_string(++rv);
    return Status::ok();
  }
  Status patch(const proto::ResourceType& t, const std::string& ns, const std::string& name,
               const json& p) override {
    auto it = objs.find(key(t, ns, name));
    if (it == objs.end()) return Status::not_found(name);
    json& m = it->second.obj["metadata"];
    const json& pm = p.at("metadata");
    if (pm.contains("resourceVersion") && pm["resourceVersion"] != m["resourceVersion"])
      return Status::conflict("stale");
    ++writes;
    for (const char* f : {"ownerReferences", "finalizers"}) {
      if (!pm.contains(f)) continue;
      if (pm[f].is_null())
        m.erase(f);
      else
        m[f] = pm[f];
    }
    if (m.contains("deletionTimestamp") && m.value("finalizers", json::array()).empty()) {
      objs.erase(it);
      return Status::ok();
    }
    m["resourceVersion"] = std::to_string(++rv);
    return Status::ok();
  }
};

json ref(const proto::ResourceType& t, const std::string& name, bool block = false,
         const std::string& uid = "") {
  json r = {{"apiVersion", t.api_version()},
            {"kind", t.kind},
            {"name", name},
            {"uid", uid.empty() ? "uid-" + name : uid}};
  if (block) r["blockOwnerDeletion"] = true;
  return r;
}

// Runs passes until one writes nothing (at most 10).
void settle(GarbageCollector& gc, FakeApi& api) {
  for (int i = 0; i < 10; ++i) {
    int before = api.writes;
    (void)gc.sync();
    if (api.writes == before) return;
  }
  FAIL("the collector did not settle in 10 passes");
}

}  // namespace

TEST_CASE("gc background: dependents of a gone owner go, dangling references are dropped") {
  FakeApi api;
  GarbageCollector gc;
  gc.set_client(&api);
  const auto& cm = type("configmaps");
  api.add(cm, "alive");
  api.add(cm, "dep-of-gone", json::array({ref(cm, "gone")}));
  api.add(cm, "dep-of-alive", json::array({ref(cm, "alive")}));
  api.add(cm, "two-owners", json::array({ref(cm, "alive"), ref(cm, "gone")}));
  // Same name as an existing object, other uid: that owner is gone.
  api.add(cm, "dep-of-old-alive", json::array({ref(cm, "alive", false, "uid-old")}));
  // An owner kind the API does not serve: left alone.
  api.add(cm, "dep-of-unknown",
          json::array({{{"apiVersion", "example.com/v1"},
                        {"kind", "Widget"},
                        {"name", "w"},
                        {"uid", "uid-w"}}}));
  REQUIRE(gc.sync());
  CHECK_FALSE(api.has(cm, "dep-of-gone"));
  CHECK_FALSE(api.has(cm, "dep-of-old-alive"));
  CHECK(api.has(cm, "dep-of-alive"));
  CHECK(api.has(cm, "dep-of-unknown"));
  REQUIRE(api.has(cm, "two-owners"));
  CHECK(api.get(cm, "two-owners")["metadata"]["ownerReferences"] ==
        json::array({ref(cm, "alive")}));
  // Idempotent: nothing more to do.
  int w = api.writes;
  REQUIRE(gc.sync());
  CHECK(api.writes == w);
}

TEST_CASE("gc background: an owner missing from the cache is checked live first") {
  FakeApi api;
  GarbageCollector gc;
  gc.set_client(&api);
  const auto& cm = type("configmaps");
  api.add(cm, "owner");
  api.add(cm, "dep", json::array({ref(cm, "owner")}));
  api.hidden.insert("configmaps/default/owner");  // the cache lags
  REQUIRE(gc.sync());
  CHECK(api.has(cm, "dep"));

  // The API cannot be reached: nothing is deleted and the pass reports an error.
  api.objs.erase("configmaps/default/owner");
  api.fail_gets = true;
  CHECK_FALSE(gc.sync());
  CHECK(api.has(cm, "dep"));
  api.fail_gets = false;
  REQUIRE(gc.sync());
  CHECK_FALSE(api.has(cm, "dep"));
}

TEST_CASE("gc foreground: dependents first, then the owner; other live owners keep theirs") {
  FakeApi api;
  GarbageCollector gc;
  gc.set_client(&api);
  const auto& cm = type("configmaps");
  const auto& pods = type("pods");
  const auto& rs = type("replicasets", "apps");
  api.add(rs, "web");
  api.add(cm, "other");
  api.add(pods, "blocking", json::array({ref(rs, "web", true)}));
  api.add(pods, "plain", json::array({ref(rs, "web")}));
  api.add(pods, "shared", json::array({ref(rs, "web", true), ref(cm, "other")}));
  // A chain: web -> mid -> leaf.
  api.add(cm, "mid", json::array({ref(rs, "web", true)}));
  api.add(cm, "leaf", json::array({ref(cm, "mid", true)}));
  // A dependent held by a finalizer of its own keeps the owner waiting.
  json& held = api.add(cm, "held", json::array({ref(rs, "web", true)}));
  held["metadata"]["finalizers"] = json::array({"example.com/hold"});
  REQUIRE(api.remove(rs, "default", "web", "uid-web", "Foreground"));

  REQUIRE(gc.sync());
  CHECK_FALSE(api.has(pods, "blocking"));
  CHECK_FALSE(api.has(pods, "plain"));
  REQUIRE(api.has(pods, "shared"));
  CHECK(api.get(pods, "shared")["metadata"]["ownerReferences"] == json::array({ref(cm, "other")}));
  CHECK(api.get(cm, "mid")["metadata"]["finalizers"] == json::array({kForegroundFinalizer}));
  CHECK(api.has(rs, "web"));  // mid and held still block it

  settle(gc, api);
  CHECK_FALSE(api.has(cm, "leaf"));
  CHECK_FALSE(api.has(cm, "mid"));
  CHECK(api.has(cm, "held"));
  CHECK(api.has(rs, "web"));

  // The other finalizer goes: held is deleted, then web.
  REQUIRE(api.patch(cm, "default", "held", {{"metadata", {{"finalizers", nullptr}}}}));
  settle(gc, api);
  CHECK_FALSE(api.has(cm, "held"));
  CHECK_FALSE(api.has(rs, "web"));
  CHECK(api.has(cm, "other"));
  CHECK(api.has(pods, "shared"));
}

TEST_CASE("gc foreground: an owner without dependents goes at once") {
  FakeApi api;
  GarbageCollector gc;
  gc.set_client(&api);
  const auto& cm = type("configmaps");
  api.add(cm, "lonely");
  REQUIRE(api.remove(cm, "default", "lonely", "uid-lonely", "Foreground"));
  REQUIRE(api.has(cm, "lonely"));
  REQUIRE(gc.sync());
  CHECK_FALSE(api.has(cm, "lonely"));
}

TEST_CASE("gc orphan: dependents lose the reference and stay, then the owner goes") {
  FakeApi api;
  GarbageCollector gc;
  gc.set_client(&api);
  const auto& cm = type("configmaps");
  api.add(cm, "owner");
  api.add(cm, "other");
  api.add(cm, "a", json::array({ref(cm, "owner", true)}));
  api.add(cm, "b", json::array({ref(cm, "owner"), ref(cm, "other")}));
  REQUIRE(api.remove(cm, "default", "owner", "uid-owner", "Orphan"));
  settle(gc, api);
  CHECK_FALSE(api.has(cm, "owner"));
  REQUIRE(api.has(cm, "a"));
  CHECK_FALSE(api.get(cm, "a")["metadata"].contains("ownerReferences"));
  REQUIRE(api.has(cm, "b"));
  CHECK(api.get(cm, "b")["metadata"]["ownerReferences"] == json::array({ref(cm, "other")}));
}

TEST_CASE("gc: which changes need a pass") {
  json plain = {{"metadata", {{"name", "x"}}}};
  json owned = {{"metadata", {{"name", "x"}, {"ownerReferences", json::array({{{"uid", "u"}}})}}}};
  json marked = plain;
  marked["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z";
  CHECK_FALSE(GarbageCollector::relevant(nullptr, plain));
  CHECK(GarbageCollector::relevant(nullptr, owned));
  CHECK(GarbageCollector::relevant(&plain, marked));
  CHECK(GarbageCollector::relevant(&plain, owned));
  json relabelled = owned;
  relabelled["metadata"]["labels"] = {{"a", "b"}};
  CHECK_FALSE(GarbageCollector::relevant(&owned, relabelled));
}
