#include "controllers/replicaset/replicaset.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "controllers/api_util.h"
#include "controllers/replicaset/expectations.h"
#include "controllers/replicaset/pod_util.h"
#include "proto/time.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::replicaset;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

const WallTime kT0 = *proto::parse_rfc3339("2026-12-01T10:00:00Z");

std::string ts(WallTime t) { return proto::format_rfc3339(t); }

json make_rs(const std::string& name, int replicas, int min_ready = 0) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "ReplicaSet"},
          {"metadata",
           {{"name", name},
            {"namespace", "default"},
            {"uid", "uid-" + name},
            {"generation", 1},
            {"resourceVersion", "10"}}},
          {"spec",
           {{"replicas", replicas},
            {"minReadySeconds", min_ready},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", name}, {"tier", "front"}}}}},
              {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}},
          {"status", {{"replicas", 0}}}};
}

json owner_ref(const json& rs) {
  return {{"apiVersion", "apps/v1"},      {"kind", "ReplicaSet"}, {"name", rs["metadata"]["name"]},
          {"uid", rs["metadata"]["uid"]}, {"controller", true},   {"blockOwnerDeletion", true}};
}

json make_pod(const std::string& name, const json& labels, const json* owner = nullptr) {
  json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata",
             {{"name", name},
              {"namespace", "default"},
              {"uid", "uid-" + name},
              {"resourceVersion", "1"},
              {"creationTimestamp", ts(kT0)},
              {"labels", labels}}},
            {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}},
            {"status", {{"phase", "Pending"}}}};
  if (owner) p["metadata"]["ownerReferences"] = json::array({owner_ref(*owner)});
  return p;
}

void set_ready(json& pod, WallTime since, const std::string& node = "node1") {
  pod["spec"]["nodeName"] = node;
  pod["status"]["phase"] = "Running";
  pod["status"]["conditions"] = {
      {{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", ts(since)}}};
}

// The API server and the informer caches. Writes go to the "server" maps; the caches only
// change when the test says so (sync_cache), which is how a lagging informer looks.
class FakeCluster : public Listers, public PodControl {
 public:
  std::mutex mu;
  std::map<std::string, json> rs_cache, pod_cache;  // key "default/name"
  std::map<std::string, json> rs_api, pod_api;
  int create_calls = 0, fail_creates_from = -1, status_writes = 0, gets = 0;
  bool fail_deletes = false;
  std::string create_error = "pods \"web\" is forbidden: exceeded quota: q, requested: pods=1";
  std::vector<std::string> deleted;
  std::vector<std::pair<std::string, json>> patches;
  int seq = 0;

  void add_rs(const json& rs) {
    std::string k = "default/" + rs["metadata"]["name"].get<std::string>();
    rs_cache[k] = rs_api[k] = rs;
  }
  void add_pod(const json& p) {
    std::string k = "default/" + p["metadata"]["name"].get<std::string>();
    pod_cache[k] = pod_api[k] = p;
  }
  void sync_cache() {
    std::lock_guard l(mu);
    pod_cache = pod_api;
    rs_cache = rs_api;
  }
  json rs(const std::string& name) { return rs_api.at("default/" + name); }

  // Listers
  std::optional<json> replicaset(const std::string& key) override {
    std::lock_guard l(mu);
    auto it = rs_cache.find(key);
    if (it == rs_cache.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> replicasets(const std::string&) override {
    std::lock_guard l(mu);
    std::vector<json> out;
    for (auto& [k, v] : rs_cache) out.push_back(v);
    return out;
  }
  std::vector<json> pods(const std::string&) override {
    std::lock_guard l(mu);
    std::vector<json> out;
    for (auto& [k, v] : pod_cache) out.push_back(v);
    return out;
  }

  // PodControl
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    std::lock_guard l(mu);
    int n = create_calls++;
    if (fail_creates_from >= 0 && n >= fail_creates_from) return Status::forbidden(create_error);
    json p = pod;
    std::string name = p["metadata"]["generateName"].get<std::string>() + std::to_string(seq++);
    p["metadata"]["name"] = name;
    p["metadata"]["namespace"] = ns;
    p["metadata"]["uid"] = "uid-" + name;
    p["metadata"]["resourceVersion"] = "1";
    p["metadata"]["creationTimestamp"] = ts(kT0);
    p["status"] = {{"phase", "Pending"}};
    pod_api[ns + "/" + name] = p;
    return p;
  }
  Status delete_pod(const std::string& ns, const std::string& name) override {
    std::lock_guard l(mu);
    if (fail_deletes) return Status::unavailable("etcdserver: request timed out");
    if (!pod_api.erase(ns + "/" + name))
      return Status::not_found("pods \"" + name + "\" not found");
    deleted.push_back(name);
    return Status::ok();
  }
  Status patch_pod(const std::string& ns, const std::string& name, const json& patch) override {
    std::lock_guard l(mu);
    patches.emplace_back(name, patch);
    auto it = pod_api.find(ns + "/" + name);
    if (it == pod_api.end()) return Status::not_found("pods \"" + name + "\" not found");
    json& refs = it->second["metadata"]["ownerReferences"];
    if (!refs.is_array()) refs = json::array();
    for (const auto& r : patch["metadata"]["ownerReferences"]) {
      json kept = json::array();
      for (const auto& e : refs)
        if (e["uid"] != r["uid"]) kept.push_back(e);
      if (!r.contains("$patch")) kept.push_back(r);
      refs = kept;
    }
    return Status::ok();
  }
  Result<json> get_replicaset(const std::string& ns, const std::string& name) override {
    std::lock_guard l(mu);
    ++gets;
    auto it = rs_api.find(ns + "/" + name);
    if (it == rs_api.end()) return Status::not_found("replicasets.apps \"" + name + "\" not found");
    return it->second;
  }
  Result<json> update_status(const json& rs) override {
    std::lock_guard l(mu);
    ++status_writes;
    std::string k = "default/" + rs["metadata"]["name"].get<std::string>();
    rs_api[k]["status"] = rs["status"];
    return rs_api[k];
  }
};

class FakeEvents : public EventSink {
 public:
  std::mutex mu;
  std::vector<std::string> events;  // "Reason: message"
  void event(const json&, const std::string&, bool, const std::string& reason,
             const std::string& message) override {
    std::lock_guard l(mu);
    events.push_back(reason + ": " + message);
  }
  int count(const std::string& reason) {
    std::lock_guard l(mu);
    int n = 0;
    for (auto& e : events) n += e.rfind(reason + ":", 0) == 0;
    return n;
  }
};

struct Fixture {
  client::FakeClock clock;
  WallTime wall = kT0 + 1h;
  FakeCluster cluster;
  FakeEvents events;
  std::unique_ptr<ReplicaSetController> c;
  explicit Fixture(int parallel = 4) {
    ReplicaSetOptions o;
    o.clock = &clock;
    o.wall_clock = [this] { return wall; };
    o.max_parallel_calls = parallel;
    c = std::make_unique<ReplicaSetController>(o);
    c->set_clients(&cluster, &cluster, &events);
  }
  // Delivers the informer events for the server's pods the cache does not have yet.
  void observe_pods() {
    std::vector<json> added;
    {
      std::lock_guard l(cluster.mu);
      for (auto& [k, p] : cluster.pod_api)
        if (!cluster.pod_cache.count(k)) added.push_back(p);
    }
    cluster.sync_cache();
    for (auto& p : added) c->on_pod_add(p);
  }
  std::vector<json> owned_pods(const std::string& rs) {
    std::vector<json> out;
    for (auto& [k, p] : cluster.pod_api) {
      const json* r = controller_ref(p);
      if (r && (*r)["uid"] == "uid-" + rs) out.push_back(p);
    }
    return out;
  }
  // Keys ready in the queue, drained.
  std::vector<std::string> drain() {
    std::vector<std::string> out;
    while (c->queue().len() > 0) {
      auto k = c->queue().get_for(10ms);
      if (!k) break;
      out.push_back(*k);
      c->queue().done(*k);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("replicaset: creates the missing pods from the template, owned by the ReplicaSet") {
  Fixture f;
  f.cluster.add_rs(make_rs("web", 3));
  REQUIRE(f.c->sync("default/web"));
  REQUIRE(f.cluster.pod_api.size() == 3);
  for (auto& [k, p] : f.cluster.pod_api) {
    CHECK(p["metadata"]["generateName"] == "web-");
    CHECK(p["metadata"]["labels"] == json({{"app", "web"}, {"tier", "front"}}));
    CHECK(p["metadata"]["ownerReferences"] == json::array({owner_ref(f.cluster.rs("web"))}));
    CHECK(p["spec"]["containers"][0]["image"] == "nginx");
  }
  CHECK(f.events.count("SuccessfulCreate") == 3);
  // Status reflects the cache, which does not show the pods yet.
  CHECK(f.cluster.rs("web")["status"]["replicas"] == 0);
  CHECK(f.cluster.rs("web")["status"]["observedGeneration"] == 1);
}

TEST_CASE("replicaset: no over-creation while the cache lags; expectations expire") {
  Fixture f;
  f.cluster.add_rs(make_rs("web", 3));
  REQUIRE(f.c->sync("default/web"));
  REQUIRE(f.cluster.create_calls == 3);
  CHECK(f.c->expectations().pending("default/web")->adds == 3);
  CHECK_FALSE(f.c->expectations().satisfied("default/web"));

  // The cache still shows no pods: a second sync must not create three more.
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.cluster.create_calls == 3);

  // The informer catches up: the adds lower the expectations; the next sync finds 3 of 3.
  f.observe_pods();
  CHECK(f.c->expectations().satisfied("default/web"));
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.cluster.create_calls == 3);
  CHECK(f.cluster.rs("web")["status"]["replicas"] == 3);
  CHECK(f.cluster.rs("web")["status"]["fullyLabeledReplicas"] == 3);

  // Events lost: after 5 minutes the controller trusts its cache again.
  Fixture g;
  g.cluster.add_rs(make_rs("web", 2));
  REQUIRE(g.c->sync("default/web"));
  REQUIRE(g.c->sync("default/web"));
  CHECK(g.cluster.create_calls == 2);
  g.clock.advance(4min);
  REQUIRE(g.c->sync("default/web"));
  CHECK(g.cluster.create_calls == 2);
  g.clock.advance(2min);
  REQUIRE(g.c->sync("default/web"));
  CHECK(g.cluster.create_calls == 4);
}

TEST_CASE("replicaset: slow start stops after the first failing batch") {
  SECTION("fails from the 5th call: batches 1, 2, 4 then stop") {
    Fixture f;
    f.cluster.add_rs(make_rs("web", 20));
    f.cluster.fail_creates_from = 4;
    auto st = f.c->sync("default/web");
    REQUIRE_FALSE(st);
    CHECK(st.message().find("exceeded quota") != std::string::npos);
    CHECK(f.cluster.create_calls == 7);  // 1 + 2 + 4, no batch of 8
    CHECK(f.cluster.pod_api.size() == 4);
    CHECK(f.events.count("SuccessfulCreate") == 4);
    CHECK(f.events.count("FailedCreate") == 3);
    // Only the 4 created pods are awaited.
    CHECK(f.c->expectations().pending("default/web")->adds == 4);
    json conds = f.cluster.rs("web")["status"]["conditions"];
    REQUIRE(conds.size() == 1);
    CHECK(conds[0]["type"] == "ReplicaFailure");
    CHECK(conds[0]["status"] == "True");
    CHECK(conds[0]["reason"] == "FailedCreate");
    CHECK(conds[0]["message"].get<std::string>().find("exceeded quota") != std::string::npos);

    // Quota lifted, cache caught up: the rest is created and the condition goes away.
    f.observe_pods();
    f.cluster.fail_creates_from = -1;
    REQUIRE(f.c->sync("default/web"));
    CHECK(f.cluster.pod_api.size() == 20);
    CHECK_FALSE(f.cluster.rs("web")["status"].contains("conditions"));
  }
  SECTION("the first call fails: one call only") {
    Fixture f;
    f.cluster.add_rs(make_rs("web", 500));
    f.cluster.fail_creates_from = 0;
    REQUIRE_FALSE(f.c->sync("default/web"));
    CHECK(f.cluster.create_calls == 1);
    CHECK(f.c->expectations().satisfied("default/web"));
  }
  SECTION("burst limit: at most 500 per sync") {
    Fixture f(16);
    f.cluster.add_rs(make_rs("web", 700));
    REQUIRE(f.c->sync("default/web"));
    CHECK(f.cluster.create_calls == 500);
    f.observe_pods();
    REQUIRE(f.c->sync("default/web"));
    CHECK(f.cluster.create_calls == 700);
  }
}

TEST_CASE("replicaset: terminating and finished pods are not counted") {
  Fixture f;
  json rs = make_rs("web", 3);
  f.cluster.add_rs(rs);
  json labels = {{"app", "web"}, {"tier", "front"}};
  f.cluster.add_pod(make_pod("a", labels, &rs));
  json t = make_pod("b", labels, &rs);
  t["metadata"]["deletionTimestamp"] = ts(kT0);
  f.cluster.add_pod(t);
  json done = make_pod("c", labels, &rs);
  done["status"]["phase"] = "Succeeded";
  f.cluster.add_pod(done);
  json failed = make_pod("d", labels, &rs);
  failed["status"]["phase"] = "Failed";
  f.cluster.add_pod(failed);
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.cluster.create_calls == 2);  // only "a" counts
  CHECK(f.cluster.deleted.empty());
  CHECK(f.cluster.rs("web")["status"]["replicas"] == 1);
}

TEST_CASE("replicaset: adopts matching orphans, releases pods that no longer match") {
  Fixture f;
  json rs = make_rs("web", 2);
  f.cluster.add_rs(rs);
  json other = make_rs("other", 1);
  f.cluster.add_rs(other);
  f.cluster.add_pod(make_pod("orphan", {{"app", "web"}}));            // adopted
  f.cluster.add_pod(make_pod("stranger", {{"app", "nope"}}));         // not matching
  f.cluster.add_pod(make_pod("theirs", {{"app", "web"}}, &other));    // another controller's
  f.cluster.add_pod(make_pod("moved", {{"app", "elsewhere"}}, &rs));  // released
  REQUIRE(f.c->sync("default/web"));

  json adopted = f.cluster.pod_api.at("default/orphan");
  CHECK(adopted["metadata"]["ownerReferences"] == json::array({owner_ref(rs)}));
  CHECK(f.cluster.pod_api.at("default/moved")["metadata"]["ownerReferences"].empty());
  CHECK(f.cluster.pod_api.at("default/theirs")["metadata"]["ownerReferences"][0]["uid"] ==
        "uid-other");
  CHECK_FALSE(f.cluster.pod_api.at("default/stranger")["metadata"].contains("ownerReferences"));
  // The release patch deletes our reference by uid (strategic merge), naming the pod's uid.
  bool saw_release = false;
  for (auto& [name, patch] : f.cluster.patches)
    if (name == "moved") {
      saw_release = true;
      CHECK(patch == json::parse(R"({"metadata":{"ownerReferences":[{"$patch":"delete",
            "uid":"uid-web"}],"uid":"uid-moved"}})"));
    }
  CHECK(saw_release);
  // The adopted orphan counts: 1 of 2, so one is created.
  CHECK(f.cluster.create_calls == 1);
  CHECK(f.cluster.gets == 1);  // one fresh read before adopting

  SECTION("an adopted pod that brings the count over is deleted") {
    Fixture g;
    json rs2 = make_rs("web", 1);
    g.cluster.add_rs(rs2);
    json mine = make_pod("mine", {{"app", "web"}}, &rs2);
    // Ages compare in log2 buckets (same bucket: by uid), so make them far apart.
    mine["metadata"]["creationTimestamp"] = ts(kT0 - 48h);
    g.cluster.add_pod(mine);
    json o = make_pod("orphan", {{"app", "web"}});
    o["metadata"]["creationTimestamp"] = ts(kT0 + 10min);  // newer: deleted first
    g.cluster.add_pod(o);
    REQUIRE(g.c->sync("default/web"));
    CHECK(g.cluster.deleted == std::vector<std::string>{"orphan"});
    CHECK(g.events.count("SuccessfulDelete") == 1);
  }
  SECTION("a ReplicaSet being deleted adopts and releases nothing, and creates nothing") {
    Fixture g;
    json dying = make_rs("web", 3);
    dying["metadata"]["deletionTimestamp"] = ts(kT0);
    g.cluster.add_rs(dying);
    g.cluster.add_pod(make_pod("orphan", {{"app", "web"}}));
    g.cluster.add_pod(make_pod("moved", {{"app", "x"}}, &dying));
    REQUIRE(g.c->sync("default/web"));
    CHECK(g.cluster.patches.empty());
    CHECK(g.cluster.create_calls == 0);
  }
  SECTION("the cache lags behind a deletion: the fresh read refuses the adoption") {
    Fixture g;
    g.cluster.add_rs(make_rs("web", 1));
    g.cluster.rs_api["default/web"]["metadata"]["deletionTimestamp"] = ts(kT0);
    g.cluster.add_pod(make_pod("orphan", {{"app", "web"}}));
    auto st = g.c->sync("default/web");
    REQUIRE_FALSE(st);
    CHECK(st.message().find("has just been deleted") != std::string::npos);
    CHECK(g.cluster.patches.empty());
    CHECK(g.cluster.create_calls == 0);
  }
}

TEST_CASE("replicaset: surplus pods are deleted in Kubernetes' order") {
  Fixture f;
  json rs = make_rs("web", 2);
  f.cluster.add_rs(rs);
  json l = {{"app", "web"}};
  json ready_old = make_pod("ready-old", l, &rs);
  set_ready(ready_old, kT0 - 24h);
  json ready_new = make_pod("ready-new", l, &rs);
  set_ready(ready_new, kT0 + 50min);
  json notready = make_pod("running-notready", l, &rs);
  notready["spec"]["nodeName"] = "node1";
  notready["status"]["phase"] = "Running";
  json unknown = make_pod("unknown", l, &rs);
  unknown["spec"]["nodeName"] = "node1";
  unknown["status"]["phase"] = "Unknown";
  json pending = make_pod("pending", l, &rs);
  pending["spec"]["nodeName"] = "node1";
  json unscheduled = make_pod("unscheduled", l, &rs);
  for (auto* p : {&ready_old, &ready_new, &notready, &unknown, &pending, &unscheduled})
    f.cluster.add_pod(*p);

  // The full order, as the pure function ranks them.
  auto order = pods_to_delete({ready_old, ready_new, notready, unknown, pending, unscheduled}, {},
                              6, f.wall);
  std::vector<std::string> names;
  for (auto& p : order) names.push_back(p["metadata"]["name"]);
  CHECK(names == std::vector<std::string>{"unscheduled", "pending", "unknown", "running-notready",
                                          "ready-new", "ready-old"});

  REQUIRE(f.c->sync("default/web"));
  std::sort(f.cluster.deleted.begin(), f.cluster.deleted.end());
  CHECK(f.cluster.deleted ==
        std::vector<std::string>{"pending", "running-notready", "unknown", "unscheduled"});
  CHECK(f.c->expectations().pending("default/web")->deletes == 4);
  // Only the deletions it asked for lower the expectations, once each.
  f.c->on_pod_delete(ready_old);
  CHECK(f.c->expectations().pending("default/web")->deletes == 4);
  f.c->on_pod_delete(pending);
  f.c->on_pod_delete(pending);
  CHECK(f.c->expectations().pending("default/web")->deletes == 3);
  // Nothing more is deleted until the cache shows the deletions.
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.cluster.deleted.size() == 4);
}

TEST_CASE("replicaset: deletion order tie-breakers") {
  json l = {{"app", "web"}};
  auto names = [](const std::vector<json>& v) {
    std::vector<std::string> out;
    for (auto& p : v) out.push_back(p["metadata"]["name"]);
    return out;
  };
  const WallTime now = kT0 + 48h;
  SECTION("lower pod-deletion-cost first") {
    json a = make_pod("a", l), b = make_pod("b", l);
    set_ready(a, kT0);
    set_ready(b, kT0 + 47h);  // would go first by ready time
    a["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"] = "-5";
    CHECK(names(pods_to_delete({b, a}, {}, 1, now)) == std::vector<std::string>{"a"});
    b["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"] = "garbage";
    CHECK(names(pods_to_delete({b, a}, {}, 1, now)) == std::vector<std::string>{"a"});
  }
  SECTION("more related pods on the same node first") {
    json a = make_pod("a", l), b = make_pod("b", l);
    set_ready(a, kT0, "n1");
    set_ready(b, kT0, "n2");
    json r1 = make_pod("r1", l), r2 = make_pod("r2", l), r3 = make_pod("r3", l);
    r1["spec"]["nodeName"] = "n2";
    r2["spec"]["nodeName"] = "n2";
    r3["spec"]["nodeName"] = "n1";
    CHECK(names(pods_to_delete({a, b}, {r1, r2, r3}, 1, now)) == std::vector<std::string>{"b"});
  }
  SECTION("shorter ready time first, in log2 buckets; then restarts; then newer") {
    json a = make_pod("a", l), b = make_pod("b", l), c = make_pod("c", l);
    set_ready(a, now - 1h);
    set_ready(b, now - 10h);
    set_ready(c, now - 40h);
    CHECK(names(pods_to_delete({c, b, a}, {}, 3, now)) == std::vector<std::string>{"a", "b", "c"});
    // Same ready time: more restarts first, then the newer one.
    json d = make_pod("d", l), e = make_pod("e", l), g = make_pod("g", l);
    for (auto* p : {&d, &e, &g}) set_ready(*p, now - 1h);
    e["status"]["containerStatuses"] = {{{"name", "c"}, {"restartCount", 3}}};
    g["metadata"]["creationTimestamp"] = ts(now - 2h);
    d["metadata"]["creationTimestamp"] = ts(now - 30h);
    CHECK(names(pods_to_delete({d, g, e}, {}, 3, now)) == std::vector<std::string>{"e", "g", "d"});
  }
  SECTION("a ready pod without a transition time counts as ready for the shortest time") {
    json a = make_pod("a", l), b = make_pod("b", l);
    set_ready(a, now - 1h);
    set_ready(b, now - 1h);
    b["status"]["conditions"][0].erase("lastTransitionTime");
    CHECK(names(pods_to_delete({a, b}, {}, 1, now)) == std::vector<std::string>{"b"});
  }
}

TEST_CASE("replicaset: status counts ready and available pods; minReadySeconds re-queues") {
  Fixture f;
  json rs = make_rs("web", 3, 10);
  f.cluster.add_rs(rs);
  json l = {{"app", "web"}, {"tier", "front"}};
  json a = make_pod("a", l, &rs), b = make_pod("b", l, &rs),
       c = make_pod("c", {{"app", "web"}}, &rs);
  set_ready(a, f.wall - 60s);  // available
  set_ready(b, f.wall - 4s);   // ready, available in 6 s
  for (auto* p : {&a, &b, &c}) f.cluster.add_pod(*p);
  REQUIRE(f.c->sync("default/web"));
  json s = f.cluster.rs("web")["status"];
  CHECK(s["replicas"] == 3);
  CHECK(s["fullyLabeledReplicas"] == 2);  // c lacks tier=front
  CHECK(s["readyReplicas"] == 2);
  CHECK(s["availableReplicas"] == 1);
  CHECK(s["observedGeneration"] == 1);
  CHECK(f.cluster.status_writes == 1);
  // Re-queued for when b becomes available (6 s from now, plus a little).
  f.drain();
  CHECK(f.c->queue().num_waiting() == 1);
  f.clock.advance(5s);
  CHECK(f.drain().empty());
  f.clock.advance(2s);
  CHECK(f.drain() == std::vector<std::string>{"default/web"});

  // Unchanged: no write.
  f.cluster.sync_cache();
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.cluster.status_writes == 1);
  // 7 s later on the wall clock b is available.
  f.wall += 7s;
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.cluster.rs("web")["status"]["availableReplicas"] == 2);
  CHECK(f.cluster.status_writes == 2);
  f.clock.advance(1min);
  f.drain();
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.c->queue().num_waiting() == 0);  // nothing left to wait for
}

TEST_CASE("replicaset: a stale status write is retried once on a fresh read") {
  Fixture f;
  f.cluster.add_rs(make_rs("web", 0));
  struct Conflicting : FakeCluster {};
  // A first write that fails, then succeeds: emulate with a controller over a wrapper.
  class Once : public PodControl {
   public:
    explicit Once(FakeCluster& c) : c_(c) {}
    Result<json> create_pod(const std::string& ns, const json& p) override {
      return c_.create_pod(ns, p);
    }
    Status delete_pod(const std::string& ns, const std::string& n) override {
      return c_.delete_pod(ns, n);
    }
    Status patch_pod(const std::string& ns, const std::string& n, const json& p) override {
      return c_.patch_pod(ns, n, p);
    }
    Result<json> get_replicaset(const std::string& ns, const std::string& n) override {
      return c_.get_replicaset(ns, n);
    }
    Result<json> update_status(const json& rs) override {
      if (writes++ == 0) return Status::conflict("the object has been modified");
      seen_rv = rs["metadata"]["resourceVersion"];
      return c_.update_status(rs);
    }
    int writes = 0;
    json seen_rv;

   private:
    FakeCluster& c_;
  } once(f.cluster);
  f.cluster.rs_api["default/web"]["metadata"]["resourceVersion"] = "11";
  f.c->set_clients(&f.cluster, &once, &f.events);
  REQUIRE(f.c->sync("default/web"));
  CHECK(once.writes == 2);
  CHECK(once.seen_rv == "11");
  CHECK(f.cluster.rs("web")["status"]["observedGeneration"] == 1);
}

TEST_CASE("replicaset: handlers enqueue the owner, or the matching ReplicaSets of an orphan") {
  Fixture f;
  json web = make_rs("web", 1), api = make_rs("api", 1);
  f.cluster.add_rs(web);
  f.cluster.add_rs(api);

  f.c->on_rs_add(web);
  CHECK(f.drain() == std::vector<std::string>{"default/web"});

  // An owned pod's add lowers its owner's expected creations.
  f.c->expectations().expect_creations("default/web", 2);
  json owned = make_pod("p1", {{"app", "web"}}, &web);
  f.c->on_pod_add(owned);
  CHECK(f.c->expectations().pending("default/web")->adds == 1);
  CHECK(f.drain() == std::vector<std::string>{"default/web"});

  // An owner reference to a ReplicaSet of the same name but another uid is not ours.
  json foreign = owned;
  foreign["metadata"]["ownerReferences"][0]["uid"] = "uid-old";
  f.c->on_pod_add(foreign);
  CHECK(f.c->expectations().pending("default/web")->adds == 1);
  CHECK(f.drain().empty());

  // An orphan: every ReplicaSet whose selector matches it.
  f.c->on_pod_add(make_pod("o", {{"app", "api"}}));
  CHECK(f.drain() == std::vector<std::string>{"default/api"});

  // An orphan relabelled: the ReplicaSets of the old and the new labels.
  json o1 = make_pod("o", {{"app", "api"}}), o2 = make_pod("o", {{"app", "web"}});
  o2["metadata"]["resourceVersion"] = "2";
  f.c->on_pod_update(o1, o2);
  auto keys = f.drain();
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"default/api", "default/web"});

  // A resync (same resourceVersion) does nothing.
  f.c->on_pod_update(o1, o1);
  CHECK(f.drain().empty());

  // An owned pod that starts terminating counts as deleted at once.
  f.c->expectations().expect_deletions("default/web", {"default/p1"});
  json dying = owned;
  dying["metadata"]["resourceVersion"] = "5";
  dying["metadata"]["deletionTimestamp"] = ts(kT0);
  f.c->on_pod_update(owned, dying);
  CHECK(f.c->expectations().satisfied("default/web"));
  CHECK(f.drain() == std::vector<std::string>{"default/web"});

  // A ReplicaSet replaced under the same name: the old one's expectations are dropped.
  f.c->expectations().expect_creations("default/web", 5);
  json web2 = web;
  web2["metadata"]["uid"] = "uid-web-2";
  f.c->on_rs_update(web, web2);
  CHECK_FALSE(f.c->expectations().pending("default/web"));
  CHECK(f.drain() == std::vector<std::string>{"default/web"});

  // Deleted ReplicaSet: sync forgets it and does nothing.
  f.cluster.rs_cache.erase("default/api");
  REQUIRE(f.c->sync("default/api"));
  CHECK(f.cluster.create_calls == 0);
}

TEST_CASE("replicaset: pod helpers") {
  json p = make_pod("p", {{"app", "x"}});
  CHECK(is_pod_active(p));
  CHECK_FALSE(is_pod_ready(p));
  set_ready(p, kT0);
  CHECK(is_pod_ready(p));
  CHECK(is_pod_available(p, 0, kT0));
  CHECK_FALSE(is_pod_available(p, 10, kT0 + 10s));  // strictly more than minReadySeconds
  CHECK(is_pod_available(p, 10, kT0 + 11s));
  CHECK(*time_until_available(p, 10, kT0 + 4s) == std::chrono::nanoseconds(6s));
  CHECK_FALSE(time_until_available(p, 10, kT0 + 11s));
  CHECK(pod_key(p) == "default/p");
  p["metadata"]["deletionTimestamp"] = ts(kT0);
  CHECK_FALSE(is_pod_active(p));
}

TEST_CASE("replicaset: failed deletes set ReplicaFailure; a pod already gone is no error") {
  Fixture f;
  json rs = make_rs("web", 1);
  f.cluster.add_rs(rs);
  json l = {{"app", "web"}};
  f.cluster.add_pod(make_pod("a", l, &rs));
  f.cluster.add_pod(make_pod("b", l, &rs));
  f.cluster.fail_deletes = true;
  auto st = f.c->sync("default/web");
  REQUIRE_FALSE(st);
  CHECK(st.message().find("timed out") != std::string::npos);
  CHECK(f.events.count("FailedDelete") == 1);
  CHECK(f.c->expectations().satisfied("default/web"));  // the failed delete is not awaited
  json conds = f.cluster.rs("web")["status"]["conditions"];
  REQUIRE(conds.size() == 1);
  CHECK(conds[0]["reason"] == "FailedDelete");

  // The pod vanished meanwhile (cache still shows it): NotFound is success; condition cleared.
  f.cluster.fail_deletes = false;
  f.cluster.pod_api.erase("default/b");
  f.cluster.pod_api.erase("default/a");
  REQUIRE(f.c->sync("default/web"));
  CHECK(f.events.count("SuccessfulDelete") == 0);
  CHECK(f.c->expectations().satisfied("default/web"));
  CHECK_FALSE(f.cluster.rs("web")["status"].contains("conditions"));
}
