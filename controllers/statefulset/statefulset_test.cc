// StatefulSetController on a fake world (cache + API in one, FakeHistory for revisions): the
// ordering decisions of OrderedReady and Parallel, scale down, failed pods, RollingUpdate with
// partitions, OnDelete, claims and their retention policy, status and history.
#include "controllers/statefulset/statefulset.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "controllers/history/fake_history.h"
#include "controllers/statefulset/identity.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::controllers::statefulset {
namespace {

const auto kWallNow = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));

class World : public Listers, public StatefulSetClient {
 public:
  // --- Listers
  std::optional<json> statefulset(const std::string& key) override {
    if (key != "default/" + set["metadata"]["name"].get<std::string>()) return std::nullopt;
    return set;
  }
  std::vector<json> statefulsets(const std::string&) override { return {set}; }
  std::vector<json> pods(const std::string&) override {
    std::vector<json> out;
    for (auto& [n, p] : pods_) out.push_back(p);
    return out;
  }
  std::optional<json> claim(const std::string&, const std::string& name) override {
    auto it = claims.find(name);
    if (it == claims.end()) return std::nullopt;
    return it->second;
  }
  // --- client
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    std::string name = pod["metadata"]["name"];
    calls.push_back("create pod " + name);
    if (pods_.count(name)) return Status::already_exists("pods \"" + name + "\" already exists");
    json p = pod;
    p["metadata"]["namespace"] = ns;
    p["metadata"]["uid"] = "uid-" + name + "-" + std::to_string(++seq_);
    p["metadata"]["resourceVersion"] = std::to_string(seq_);
    p["status"] = {{"phase", "Pending"}};
    pods_[name] = p;
    return p;
  }
  Status delete_pod(const std::string&, const std::string& name) override {
    calls.push_back("delete pod " + name);
    auto it = pods_.find(name);
    if (it == pods_.end()) return Status::not_found("pods \"" + name + "\" not found");
    // Graceful: the pod stays, terminating, until reap().
    it->second["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z";
    return Status::ok();
  }
  Result<json> update_pod(const json& pod) override {
    std::string name = pod["metadata"]["name"];
    calls.push_back("update pod " + name);
    pods_[name] = pod;
    return pod;
  }
  Status patch_pod(const std::string&, const std::string& name, const json& patch) override {
    calls.push_back("patch pod " + name);
    auto it = pods_.find(name);
    if (it == pods_.end()) return Status::not_found(name);
    json& refs = it->second["metadata"]["ownerReferences"];
    const json& p = patch["metadata"]["ownerReferences"][0];
    if (p.contains("$patch")) {
      refs = json::array();
    } else {
      if (!refs.is_array()) refs = json::array();
      refs.push_back(p);
    }
    return Status::ok();
  }
  Result<json> create_claim(const std::string&, const json& claim) override {
    std::string name = claim["metadata"]["name"];
    calls.push_back("create claim " + name);
    if (claims.count(name)) return Status::already_exists(name);
    json c = claim;
    c["metadata"]["uid"] = "uid-" + name;
    claims[name] = c;
    return c;
  }
  Result<json> update_claim(const json& claim) override {
    std::string name = claim["metadata"]["name"];
    calls.push_back("update claim " + name);
    claims[name] = claim;
    return claim;
  }
  Result<json> get_statefulset(const std::string&, const std::string&) override { return set; }
  Result<json> update_status(const json& s) override {
    ++status_writes;
    set["status"] = s["status"];
    return set;
  }

  // --- the test plays kubelet and user
  json& pod(const std::string& name) {
    REQUIRE(pods_.count(name));
    return pods_[name];
  }
  bool has(const std::string& name) const { return pods_.count(name) > 0; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& [n, p] : pods_) out.push_back(n);
    return out;
  }
  void ready(const std::string& name) {
    json& p = pod(name);
    p["status"] = {{"phase", "Running"},
                   {"conditions",
                    {{{"type", "Ready"},
                      {"status", "True"},
                      {"lastTransitionTime", "2027-01-15T07:00:00Z"}}}}};
  }
  void phase(const std::string& name, const char* ph) { pod(name)["status"] = {{"phase", ph}}; }
  // The kubelet finishes every graceful deletion.
  void reap() {
    for (auto it = pods_.begin(); it != pods_.end();)
      it = it->second["metadata"].contains("deletionTimestamp") ? pods_.erase(it) : ++it;
  }
  void remove(const std::string& name) { pods_.erase(name); }
  // A user edit of the spec: merged and defaulted as the API server would, generation bumped.
  void edit(const json& spec_patch) {
    set["spec"].merge_patch(spec_patch);
    set = defaulted(set);
    set["metadata"]["generation"] = set["metadata"]["generation"].get<int>() + 1;
  }
  static json defaulted(const json& in) {
    const proto::ResourceType* t = proto::Registry::builtin().resolve("statefulsets");
    REQUIRE(t);
    proto::FieldErrors errs;
    json out = t->normalize(in, errs, proto::DecodeOptions{});
    REQUIRE(errs.empty());
    t->apply_defaults(out);
    REQUIRE(t->validate(out, nullptr).empty());
    return out;
  }
  std::vector<std::string> take_calls() {
    auto c = calls;
    calls.clear();
    return c;
  }

  json set;
  std::map<std::string, json> claims;
  std::vector<std::string> calls;
  int status_writes = 0;

 private:
  std::map<std::string, json> pods_;
  int seq_ = 0;
};

struct Events : EventSink {
  void event(const json&, const std::string& kind, bool warning, const std::string& reason,
             const std::string& message) override {
    std::lock_guard l(mu);
    list.push_back((warning ? "Warning " : "Normal ") + reason + " " + message);
  }
  std::mutex mu;
  std::vector<std::string> list;
};

json make_set(int replicas, const char* extra_spec = "{}") {
  json s = json::parse(R"({"apiVersion":"apps/v1","kind":"StatefulSet",
    "metadata":{"name":"web","namespace":"default","uid":"set-uid","generation":1,
                "resourceVersion":"1"},
    "spec":{"serviceName":"nginx","selector":{"matchLabels":{"app":"nginx"}},
      "template":{"metadata":{"labels":{"app":"nginx"}},
        "spec":{"containers":[{"name":"nginx","image":"nginx:1.25",
                "volumeMounts":[{"name":"www","mountPath":"/data"}]}]}},
      "volumeClaimTemplates":[{"metadata":{"name":"www","labels":{"tier":"db"}},
        "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]}})");
  s["spec"]["replicas"] = replicas;
  s["spec"].merge_patch(json::parse(extra_spec));
  return World::defaulted(s);
}

struct Fixture {
  explicit Fixture(int replicas, const char* extra = "{}")
      : ctrl(StatefulSetOptions{.wall_clock = [] { return kWallNow; }}) {
    world.set = make_set(replicas, extra);
    ctrl.set_clients(&world, &world, &history, &events);
  }
  void sync() {
    Status st = ctrl.sync("default/web");
    INFO(st.message());
    REQUIRE(st.is_ok());
  }
  // Syncs and marks every pod ready until the set is stable (bounded).
  void converge() {
    for (int i = 0; i < 40; ++i) {
      sync();
      world.reap();
      for (const auto& n : world.names()) world.ready(n);
    }
    sync();
  }
  const json& status() { return world.set["status"]; }
  World world;
  history::FakeHistory history;
  Events events;
  StatefulSetController ctrl;
};

using V = std::vector<std::string>;

TEST_CASE("pod names and ordinals") {
  CHECK(parse_pod_name("web-0")->ordinal == 0);
  CHECK(parse_pod_name("my-web-12")->parent == "my-web");
  CHECK_FALSE(parse_pod_name("web"));
  CHECK_FALSE(parse_pod_name("web-"));
  CHECK_FALSE(parse_pod_name("web-1a"));
}

TEST_CASE("OrderedReady creates ordinal i only when 0..i-1 are Running and Ready") {
  Fixture f(3);
  f.sync();
  // The claim before the pod; nothing else.
  CHECK(f.world.take_calls() == V{"create claim www-web-0", "create pod web-0"});
  CHECK(f.events.list ==
        V{"Normal SuccessfulCreate create Claim www-web-0 Pod web-0 in StatefulSet web success",
          "Normal SuccessfulCreate create Pod web-0 in StatefulSet web successful"});
  json& p = f.world.pod("web-0");
  CHECK(p["spec"]["hostname"] == "web-0");
  CHECK(p["spec"]["subdomain"] == "nginx");
  CHECK(p["metadata"]["labels"]["app"] == "nginx");
  CHECK(p["metadata"]["labels"][kPodNameLabel] == "web-0");
  CHECK(p["metadata"]["labels"][kPodIndexLabel] == "0");
  CHECK(p["metadata"]["labels"][kRevisionLabel] == f.status()["updateRevision"]);
  CHECK(p["metadata"]["ownerReferences"][0] ==
        json::parse(R"({"apiVersion":"apps/v1","kind":"StatefulSet","name":"web",
                        "uid":"set-uid","controller":true,"blockOwnerDeletion":true})"));
  CHECK(p["spec"]["volumes"] ==
        json::parse(R"([{"name":"www","persistentVolumeClaim":{"claimName":"www-web-0"}}])"));
  json& c = f.world.claims["www-web-0"];
  CHECK(c["metadata"]["labels"] == json::parse(R"({"app":"nginx","tier":"db"})"));
  CHECK_FALSE(c["metadata"].contains("ownerReferences"));  // Retain/Retain: nobody owns it
  CHECK_FALSE(c.contains("status"));
  CHECK(c["spec"]["volumeMode"] == "Filesystem");

  // Pending, then Running but not Ready: the next ordinal waits.
  f.sync();
  CHECK(f.world.take_calls().empty());
  f.world.phase("web-0", "Running");
  f.sync();
  CHECK(f.world.take_calls().empty());
  f.world.ready("web-0");
  f.sync();
  CHECK(f.world.take_calls() == V{"create claim www-web-1", "create pod web-1"});
  f.sync();
  CHECK(f.world.take_calls().empty());
  f.world.ready("web-1");
  f.sync();
  CHECK(f.world.take_calls() == V{"create claim www-web-2", "create pod web-2"});
  // web-1 stops being ready: nothing new happens (and web-2 is not touched).
  f.world.phase("web-1", "Running");
  f.sync();
  CHECK(f.world.take_calls().empty());
  f.world.ready("web-1");
  f.world.ready("web-2");
  f.sync();
  CHECK(f.status()["replicas"] == 3);
  CHECK(f.status()["readyReplicas"] == 3);
  CHECK(f.status()["availableReplicas"] == 3);
  CHECK(f.status()["currentReplicas"] == 3);
  CHECK(f.status()["updatedReplicas"] == 3);
  CHECK(f.status()["observedGeneration"] == 1);
  CHECK(f.status()["currentRevision"] == f.status()["updateRevision"]);
  CHECK(f.history.all().size() == 1);
  CHECK(f.history.all()[0].metadata.name == f.status()["updateRevision"]);
  CHECK(f.history.all()[0].revision == 1);
  // Nothing changes: no status write.
  int writes = f.world.status_writes;
  f.sync();
  CHECK(f.world.status_writes == writes);
}

TEST_CASE("Parallel creates every missing pod at once and deletes without waiting") {
  Fixture f(3, R"({"podManagementPolicy":"Parallel"})");
  f.sync();
  CHECK(f.world.take_calls() == V{"create claim www-web-0", "create pod web-0",
                                  "create claim www-web-1", "create pod web-1",
                                  "create claim www-web-2", "create pod web-2"});
  f.world.edit(json::parse(R"({"replicas":0})"));
  f.sync();
  CHECK(f.world.take_calls() == V{"delete pod web-2", "delete pod web-1", "delete pod web-0"});
}

TEST_CASE("OrderedReady scales down from the highest ordinal, one at a time, waiting") {
  Fixture f(3);
  f.converge();
  f.world.take_calls();
  f.events.list.clear();
  f.world.edit(json::parse(R"({"replicas":1})"));
  f.sync();
  CHECK(f.world.take_calls() == V{"delete pod web-2"});
  CHECK(f.events.list ==
        V{"Normal SuccessfulDelete delete Pod web-2 in StatefulSet web successful"});
  // web-2 is still terminating: web-1 waits.
  f.sync();
  CHECK(f.world.take_calls().empty());
  f.world.reap();
  f.sync();
  CHECK(f.world.take_calls() == V{"delete pod web-1"});
  f.world.reap();
  f.sync();
  CHECK(f.world.take_calls().empty());
  CHECK(f.world.names() == V{"web-0"});
  // Claims are never deleted with their pods.
  CHECK(f.world.claims.size() == 3);
  CHECK(f.status()["replicas"] == 1);
}

TEST_CASE("scale down waits while a remaining pod is unhealthy") {
  Fixture f(3);
  f.converge();
  f.world.take_calls();
  f.world.edit(json::parse(R"({"replicas":1})"));
  f.world.phase("web-0", "Running");  // not ready
  f.sync();
  CHECK(f.world.take_calls().empty());
  f.world.ready("web-0");
  // The first unhealthy pod itself may go.
  f.world.phase("web-2", "Pending");
  f.sync();
  CHECK(f.world.take_calls() == V{"delete pod web-2"});
}

TEST_CASE("a failed pod is deleted and recreated with the same identity") {
  Fixture f(3);
  f.converge();
  f.world.take_calls();
  f.world.phase("web-1", "Failed");
  f.sync();
  CHECK(f.world.take_calls() == V{"delete pod web-1"});
  f.world.reap();
  f.sync();
  // The claim exists already: only the pod is created, and it mounts the same claim.
  CHECK(f.world.take_calls() == V{"create pod web-1"});
  CHECK(f.world.pod("web-1")["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] ==
        "www-web-1");
}

TEST_CASE("RollingUpdate replaces pods in reverse ordinal order, one at a time, waiting") {
  Fixture f(3);
  f.converge();
  const std::string rev1 = f.status()["currentRevision"];
  f.world.take_calls();
  f.world.edit(json::parse(
      R"({"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26",
          "volumeMounts":[{"name":"www","mountPath":"/data"}]}]}}})"));
  f.sync();
  const std::string rev2 = f.status()["updateRevision"];
  CHECK(rev2 != rev1);
  CHECK(f.status()["currentRevision"] == rev1);
  CHECK(f.history.all().size() == 2);
  CHECK(f.world.take_calls() == V{"delete pod web-2"});
  f.sync();  // web-2 terminating: nothing
  CHECK(f.world.take_calls().empty());
  f.world.reap();
  f.sync();
  CHECK(f.world.take_calls() == V{"create pod web-2"});
  CHECK(f.world.pod("web-2")["spec"]["containers"][0]["image"] == "nginx:1.26");
  CHECK(f.world.pod("web-2")["metadata"]["labels"][kRevisionLabel] == rev2);
  f.sync();  // web-2 not ready yet: web-1 waits
  CHECK(f.world.take_calls().empty());
  CHECK(f.status()["updatedReplicas"] == 1);
  CHECK(f.status()["currentReplicas"] == 2);
  f.world.ready("web-2");
  f.sync();
  CHECK(f.world.take_calls() == V{"delete pod web-1"});
  f.converge();
  CHECK(f.world.take_calls() == V{"create pod web-1", "delete pod web-0", "create pod web-0"});
  CHECK(f.status()["currentRevision"] == rev2);
  CHECK(f.status()["updateRevision"] == rev2);
  CHECK(f.status()["currentReplicas"] == 3);
  CHECK(f.status()["updatedReplicas"] == 3);
  CHECK(f.status()["observedGeneration"] == 2);

  // Back to the first template: the old revision is renumbered, not duplicated.
  f.world.edit(json::parse(
      R"({"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.25",
          "volumeMounts":[{"name":"www","mountPath":"/data"}]}]}}})"));
  f.converge();
  CHECK(f.status()["currentRevision"] == rev1);
  CHECK(f.history.all().size() == 2);
  for (const auto& r : f.history.all()) CHECK(r.revision == (r.metadata.name == rev1 ? 3 : 2));
}

TEST_CASE("a partition keeps lower ordinals at the current revision") {
  Fixture f(3, R"({"updateStrategy":{"rollingUpdate":{"partition":2}}})");
  f.converge();
  const std::string rev1 = f.status()["currentRevision"];
  f.world.take_calls();
  f.world.edit(json::parse(R"({"template":{"metadata":{"labels":{"app":"nginx","v":"2"}}}})"));
  f.converge();
  CHECK(f.world.take_calls() == V{"delete pod web-2", "create pod web-2"});
  CHECK(f.status()["updatedReplicas"] == 1);
  CHECK(f.status()["currentReplicas"] == 2);
  CHECK(f.status()["currentRevision"] == rev1);
  CHECK(f.world.pod("web-2")["metadata"]["labels"]["v"] == "2");
  CHECK_FALSE(f.world.pod("web-1")["metadata"]["labels"].contains("v"));
  // A pod below the partition that is recreated comes back at the current revision.
  f.world.remove("web-0");
  f.sync();
  CHECK(f.world.pod("web-0")["metadata"]["labels"][kRevisionLabel] == rev1);
  CHECK_FALSE(f.world.pod("web-0")["metadata"]["labels"].contains("v"));
  // Lowering the partition rolls on.
  f.world.edit(json::parse(R"({"updateStrategy":{"rollingUpdate":{"partition":0}}})"));
  f.converge();
  CHECK(f.status()["updatedReplicas"] == 3);
  CHECK(f.status()["currentRevision"] == f.status()["updateRevision"]);
}

TEST_CASE("OnDelete updates a pod only when it is deleted") {
  Fixture f(2, R"({"updateStrategy":{"type":"OnDelete"}})");
  f.converge();
  f.world.take_calls();
  f.world.edit(json::parse(R"({"template":{"metadata":{"labels":{"app":"nginx","v":"2"}}}})"));
  f.converge();
  CHECK(f.world.take_calls().empty());
  CHECK(f.status()["updatedReplicas"] == 0);
  CHECK(f.status()["currentRevision"] != f.status()["updateRevision"]);
  f.world.remove("web-1");
  f.converge();
  CHECK(f.world.take_calls() == V{"create pod web-1"});
  CHECK(f.world.pod("web-1")["metadata"]["labels"]["v"] == "2");
  CHECK(f.status()["updatedReplicas"] == 1);
}

TEST_CASE("persistentVolumeClaimRetentionPolicy sets the claims' owners") {
  SECTION("WhenDeleted=Delete: the StatefulSet owns every claim") {
    Fixture f(2, R"({"persistentVolumeClaimRetentionPolicy":{"whenDeleted":"Delete"}})");
    f.converge();
    for (const char* c : {"www-web-0", "www-web-1"})
      CHECK(f.world.claims[c]["metadata"]["ownerReferences"] ==
            json::parse(R"([{"apiVersion":"apps/v1","kind":"StatefulSet","name":"web",
                             "uid":"set-uid"}])"));
  }
  SECTION("WhenScaled=Delete: a condemned pod owns its claims before it is deleted") {
    Fixture f(2, R"({"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete"}})");
    f.converge();
    CHECK_FALSE(f.world.claims["www-web-1"]["metadata"].contains("ownerReferences"));
    f.world.take_calls();
    f.world.edit(json::parse(R"({"replicas":1})"));
    f.sync();
    CHECK(f.world.take_calls() == V{"update claim www-web-1", "delete pod web-1"});
    const json& refs = f.world.claims["www-web-1"]["metadata"]["ownerReferences"];
    REQUIRE(refs.size() == 1);
    CHECK(refs[0]["kind"] == "Pod");
    CHECK(refs[0]["name"] == "web-1");
    // Scaled back up before the garbage collector removed the claim: it is stale, the pod waits.
    f.world.reap();
    f.world.edit(json::parse(R"({"replicas":2})"));
    f.sync();
    CHECK(f.world.take_calls().empty());
    f.world.claims.erase("www-web-1");  // the garbage collector
    f.sync();
    CHECK(f.world.take_calls() == V{"create claim www-web-1", "create pod web-1"});
  }
}

TEST_CASE("orphans named as members are adopted, released when their labels change") {
  Fixture f(1);
  f.world
      .create_pod("default", json::parse(R"({"metadata":{"name":"web-0",
      "labels":{"app":"nginx"}},"spec":{}})"))
      .value();
  f.world
      .create_pod("default", json::parse(R"({"metadata":{"name":"other",
      "labels":{"app":"nginx"}},"spec":{}})"))
      .value();
  f.world.take_calls();
  f.sync();
  auto calls = f.world.take_calls();
  CHECK(calls.front() == "patch pod web-0");
  CHECK(std::find(calls.begin(), calls.end(), "patch pod other") == calls.end());
  CHECK(controller_ref(f.world.pod("web-0")));
  f.world.pod("web-0")["metadata"]["labels"]["app"] = "moved";
  // Released; its name is taken, so creating the replacement fails until it is renamed or gone.
  CHECK(f.ctrl.sync("default/web").code() == Code::kAlreadyExists);
  calls = f.world.take_calls();
  CHECK(calls.front() == "patch pod web-0");
  CHECK_FALSE(controller_ref(f.world.pod("web-0")));
}

TEST_CASE("revision history is truncated to revisionHistoryLimit") {
  Fixture f(1, R"({"revisionHistoryLimit":1})");
  f.converge();
  for (int v = 2; v <= 4; ++v) {
    json patch = {
        {"template", {{"metadata", {{"labels", {{"app", "nginx"}, {"v", std::to_string(v)}}}}}}}};
    f.world.edit(patch);
    f.converge();
  }
  // The live revision plus one historic one.
  auto revs = f.history.all();
  REQUIRE(revs.size() == 2);
  std::set<int64_t> numbers = {revs[0].revision, revs[1].revision};
  CHECK(numbers == std::set<int64_t>{3, 4});
}

TEST_CASE("ordinals.start shifts the ordinals") {
  Fixture f(2, R"({"ordinals":{"start":5},"podManagementPolicy":"Parallel"})");
  f.sync();
  CHECK(f.world.names() == V{"web-5", "web-6"});
  CHECK(f.world.pod("web-6")["metadata"]["labels"][kPodIndexLabel] == "6");
  CHECK(f.world.claims.count("www-web-6"));
  f.world.edit(json::parse(R"({"ordinals":{"start":6}})"));
  f.world.take_calls();
  f.sync();
  CHECK(f.world.take_calls() ==
        V{"create claim www-web-7", "create pod web-7", "delete pod web-5"});
}

TEST_CASE("a pod whose identity labels were removed gets them back") {
  Fixture f(1);
  f.converge();
  f.world.pod("web-0")["metadata"]["labels"].erase(kPodNameLabel);
  f.world.take_calls();
  f.events.list.clear();
  f.sync();
  CHECK(f.world.take_calls() == V{"update pod web-0"});
  CHECK(f.world.pod("web-0")["metadata"]["labels"][kPodNameLabel] == "web-0");
  CHECK(f.events.list ==
        V{"Normal SuccessfulUpdate update Pod web-0 in StatefulSet web successful"});
}

TEST_CASE("minReadySeconds: the next ordinal waits until its predecessor is available") {
  Fixture f(2, R"({"minReadySeconds":30})");
  f.sync();
  f.world.take_calls();
  // Ready since 07:00:00; the fake wall clock is far later: available.
  f.world.ready("web-0");
  f.sync();
  CHECK(f.world.take_calls() == V{"create claim www-web-1", "create pod web-1"});
  // Ready 10 s before "now": not available yet, so the status counts it ready only, and the key
  // is queued again for when it becomes available.
  json& p = f.world.pod("web-1");
  f.world.ready("web-1");
  p["status"]["conditions"][0]["lastTransitionTime"] =
      proto::format_rfc3339(kWallNow - std::chrono::seconds(10));
  f.sync();
  CHECK(f.status()["readyReplicas"] == 2);
  CHECK(f.status()["availableReplicas"] == 1);
  CHECK(f.ctrl.queue().len() == 0);  // delayed, not immediate
}

TEST_CASE("handlers enqueue the owning set") {
  Fixture f(1);
  f.sync();
  json pod = f.world.pod("web-0");
  f.ctrl.on_pod_add(pod);
  CHECK(f.ctrl.queue().len() == 1);
  json orphan = {
      {"metadata", {{"name", "x"}, {"namespace", "default"}, {"labels", {{"app", "nginx"}}}}}};
  f.ctrl.on_pod_add(orphan);
  CHECK(f.ctrl.queue().len() == 1);  // the same key
  auto k = f.ctrl.queue().get();
  REQUIRE(k);
  CHECK(*k == "default/web");
  f.ctrl.queue().done(*k);
}

TEST_CASE("replicas as large as int32 allows: a sync creates at most 500 pods, then the next 500") {
  // Kubernetes allocates a slot per replica (48 GiB here); the API accepts 2147483647.
  Fixture f(2147483647, R"({"podManagementPolicy":"Parallel"})");
  f.sync();
  CHECK(f.world.names().size() == 500);
  f.sync();
  CHECK(f.world.names().size() == 1000);
  // OrderedReady: one at a time, as for any size.
  Fixture g(2147483647);
  g.sync();
  CHECK(g.world.names() == V{"web-0"});
}

}  // namespace
}  // namespace skiff::controllers::statefulset
