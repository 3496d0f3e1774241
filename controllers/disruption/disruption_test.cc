// The disruption controller: compute_status (expected/desired/current/allowed for int and
// percentage minAvailable and maxUnavailable, owners' scale through ReplicaSets, Deployments and
// StatefulSets, unready and deleting pods, disruptedPods expiry, the condition), selectors, and
// sync on fakes (one write, none when unchanged, errors, handlers).
#include "controllers/disruption/disruption.h"

#include <catch2/catch.hpp>
#include <map>

#include "controllers/disruption/disruption_util.h"
#include "proto/time.h"

namespace skiff::controllers::disruption {
namespace {

const Clock::time_point kNow = proto::parse_rfc3339("2026-12-06T12:00:00Z").value();

json pod(const std::string& name, bool ready = true, const std::string& owner_kind = "",
         const std::string& owner = "", const json& labels = {{"app", "a"}}) {
  json p = {{"metadata",
             {{"name", name}, {"namespace", "ns"}, {"labels", labels}, {"resourceVersion", "1"}}},
            {"status",
             {{"phase", "Running"},
              {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}}}};
  if (!owner_kind.empty())
    p["metadata"]["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                         {"kind", owner_kind},
                                         {"name", owner},
                                         {"uid", "uid-" + owner},
                                         {"controller", true}}};
  return p;
}

json pdb(const json& spec, const json& status = json::object()) {
  return {{"apiVersion", "policy/v1"},
          {"kind", "PodDisruptionBudget"},
          {"metadata",
           {{"name", "b"}, {"namespace", "ns"}, {"generation", 2}, {"resourceVersion", "5"}}},
          {"spec", spec},
          {"status", status}};
}

const json kSel = {{"matchLabels", {{"app", "a"}}}};

std::optional<OwnerScale> no_owners(const json&) { return std::nullopt; }

TEST_CASE("disruption: integer minAvailable over ready pods") {
  std::vector<json> pods = {pod("p1"), pod("p2"), pod("p3")};
  Computed c =
      compute_status(pdb({{"minAvailable", 2}, {"selector", kSel}}), pods, no_owners, kNow);
  CHECK(c.changed);
  CHECK(c.status["expectedPods"] == 3);
  CHECK(c.status["desiredHealthy"] == 2);
  CHECK(c.status["currentHealthy"] == 3);
  CHECK(c.status["disruptionsAllowed"] == 1);
  CHECK(c.status["observedGeneration"] == 2);
  CHECK(!c.status.contains("disruptedPods"));
  REQUIRE(c.status["conditions"].size() == 1);
  const json& cond = c.status["conditions"][0];
  CHECK(cond["type"] == "DisruptionAllowed");
  CHECK(cond["status"] == "True");
  CHECK(cond["reason"] == "SufficientPods");
  CHECK(cond["observedGeneration"] == 2);
  CHECK(cond["lastTransitionTime"] == "2026-12-06T12:00:00Z");
  CHECK(!c.recheck);

  // Written back, the same inputs change nothing (no write), even a minute later.
  json again = pdb({{"minAvailable", 2}, {"selector", kSel}}, c.status);
  Computed c2 = compute_status(again, pods, no_owners, kNow + std::chrono::minutes(1));
  CHECK(!c2.changed);
  CHECK(c2.status == c.status);

  // Unready and deleting pods are not healthy: 1 healthy of 2 needed.
  pods[1] = pod("p2", false);
  pods[2]["metadata"]["deletionTimestamp"] = "2026-12-06T11:59:00Z";
  Computed c3 = compute_status(again, pods, no_owners, kNow + std::chrono::minutes(2));
  CHECK(c3.changed);
  CHECK(c3.status["currentHealthy"] == 1);
  CHECK(c3.status["disruptionsAllowed"] == 0);
  CHECK(c3.status["conditions"][0]["status"] == "False");
  CHECK(c3.status["conditions"][0]["reason"] == "InsufficientPods");
  CHECK(c3.status["conditions"][0]["lastTransitionTime"] == "2026-12-06T12:02:00Z");
}

TEST_CASE("disruption: percentages and maxUnavailable count the controllers' scale") {
  // Pods of a ReplicaSet wanting 4 (one missing) and one bare pod.
  std::vector<json> pods = {pod("r1", true, "ReplicaSet", "rs"),
                            pod("r2", true, "ReplicaSet", "rs"),
                            pod("r3", true, "ReplicaSet", "rs"), pod("bare")};
  ScaleLookup scale = [](const json& p) -> std::optional<OwnerScale> {
    if (p["metadata"].contains("ownerReferences")) return OwnerScale{"uid-rs", 4};
    return std::nullopt;
  };
  Computed c =
      compute_status(pdb({{"minAvailable", "50%"}, {"selector", kSel}}), pods, scale, kNow);
  CHECK(c.status["expectedPods"] == 5);    // 4 + the bare pod
  CHECK(c.status["desiredHealthy"] == 3);  // ceil(2.5)
  CHECK(c.status["currentHealthy"] == 4);
  CHECK(c.status["disruptionsAllowed"] == 1);

  c = compute_status(pdb({{"maxUnavailable", 1}, {"selector", kSel}}), pods, scale, kNow);
  CHECK(c.status["expectedPods"] == 5);
  CHECK(c.status["desiredHealthy"] == 4);
  CHECK(c.status["disruptionsAllowed"] == 0);

  c = compute_status(pdb({{"maxUnavailable", "100%"}, {"selector", kSel}}), pods, scale, kNow);
  CHECK(c.status["desiredHealthy"] == 0);
  CHECK(c.status["disruptionsAllowed"] == 4);

  // An integer minAvailable counts the pods themselves.
  c = compute_status(pdb({{"minAvailable", 1}, {"selector", kSel}}), pods, scale, kNow);
  CHECK(c.status["expectedPods"] == 4);

  // No pods expected: nothing may be disrupted.
  c = compute_status(pdb({{"minAvailable", 0}, {"selector", kSel}}), {}, scale, kNow);
  CHECK(c.status["expectedPods"] == 0);
  CHECK(c.status["disruptionsAllowed"] == 0);
}

TEST_CASE("disruption: disruptedPods hold pods out for 2 minutes, then expire") {
  std::vector<json> pods = {pod("p1"), pod("p2"), pod("p3"), pod("p4")};
  pods[3]["metadata"]["deletionTimestamp"] = "2026-12-06T11:59:59Z";
  json status = {{"disruptedPods",
                  {{"p1", "2026-12-06T11:59:00Z"},     // fresh: held
                   {"p2", "2026-12-06T11:57:00Z"},     // 3 minutes old: dropped
                   {"gone", "2026-12-06T11:59:30Z"},   // no such pod: dropped
                   {"p4", "2026-12-06T11:59:30Z"}}}};  // being deleted: dropped
  Computed c =
      compute_status(pdb({{"minAvailable", 1}, {"selector", kSel}}, status), pods, no_owners, kNow);
  CHECK(c.status["disruptedPods"] == json{{"p1", "2026-12-06T11:59:00Z"}});
  CHECK(c.status["currentHealthy"] == 2);  // p2, p3
  CHECK(c.status["disruptionsAllowed"] == 1);
  REQUIRE(c.recheck);
  CHECK(*c.recheck == proto::parse_rfc3339("2026-12-06T12:01:00Z").value());
}

TEST_CASE("disruption: selectors") {
  std::vector<json> pods = {pod("a"), pod("b", true, "", "", {{"app", "b"}}),
                            pod("c", true, "", "", json::object())};
  CHECK(select_pods(pdb({{"minAvailable", 1}}), pods).empty());  // nil selects nothing
  CHECK(select_pods(pdb({{"minAvailable", 1}, {"selector", json::object()}}), pods).size() == 3);
  auto sel = select_pods(pdb({{"selector", kSel}}), pods);
  REQUIRE(sel.size() == 1);
  CHECK(sel[0]["metadata"]["name"] == "a");
  json expr = {
      {"matchExpressions", {{{"key", "app"}, {"operator", "In"}, {"values", {"a", "b"}}}}}};
  CHECK(select_pods(pdb({{"selector", expr}}), pods).size() == 2);
}

class FakeClient : public DisruptionClient {
 public:
  std::map<std::string, json> pdbs, owners;
  std::vector<json> pods;
  std::vector<json> written;
  Status next_error;
  std::optional<json> get_pdb(const std::string& key) override {
    auto it = pdbs.find(key);
    return it == pdbs.end() ? std::nullopt : std::optional<json>(it->second);
  }
  std::vector<json> list_pdbs(const std::string&) override {
    std::vector<json> v;
    for (auto& [k, p] : pdbs) v.push_back(p);
    return v;
  }
  std::vector<json> list_pods(const std::string&) override { return pods; }
  std::optional<json> get_owner(const std::string& kind, const std::string& ns,
                                const std::string& name) override {
    auto it = owners.find(kind + "/" + ns + "/" + name);
    return it == owners.end() ? std::nullopt : std::optional<json>(it->second);
  }
  Status update_status(const json& p) override {
    if (!next_error.is_ok()) return std::exchange(next_error, Status::ok());
    written.push_back(p);
    pdbs["ns/" + p["metadata"]["name"].get<std::string>()] = p;
    return Status::ok();
  }
};

TEST_CASE("disruption: sync writes once, owners' scale through the API objects") {
  FakeClient fc;
  DisruptionController dc(DisruptionOptions{.now = [] { return kNow; }});
  dc.set_client(&fc);
  fc.pdbs["ns/b"] = pdb({{"maxUnavailable", "50%"}, {"selector", kSel}});
  // Deployment d (6 replicas) -> ReplicaSet rs -> pods; StatefulSet s (2) -> pod.
  fc.owners["Deployment/ns/d"] = {{"metadata", {{"name", "d"}, {"uid", "uid-d"}}},
                                  {"spec", {{"replicas", 6}}}};
  fc.owners["ReplicaSet/ns/rs"] = {{"metadata",
                                    {{"name", "rs"},
                                     {"uid", "uid-rs"},
                                     {"ownerReferences",
                                      {{{"apiVersion", "apps/v1"},
                                        {"kind", "Deployment"},
                                        {"name", "d"},
                                        {"uid", "uid-d"},
                                        {"controller", true}}}}}},
                                   {"spec", {{"replicas", 6}}}};
  fc.owners["StatefulSet/ns/s"] = {{"metadata", {{"name", "s"}, {"uid", "uid-s"}}},
                                   {"spec", {{"replicas", 2}}}};
  fc.pods = {pod("d1", true, "ReplicaSet", "rs"), pod("d2", true, "ReplicaSet", "rs"),
             pod("s0", true, "StatefulSet", "s"), pod("x", true, "", "", {{"app", "other"}})};
  CHECK(dc.owner_scale(fc.pods[0])->uid == "uid-d");
  CHECK(dc.owner_scale(fc.pods[0])->scale == 6);
  CHECK(dc.owner_scale(fc.pods[2])->scale == 2);
  CHECK(!dc.owner_scale(fc.pods[3]));
  // A stale owner reference (other uid) is not the controller.
  json stale = pod("z", true, "StatefulSet", "s");
  stale["metadata"]["ownerReferences"][0]["uid"] = "old";
  CHECK(!dc.owner_scale(stale));

  REQUIRE(dc.sync("ns/b").is_ok());
  REQUIRE(fc.written.size() == 1);
  const json& st = fc.written[0]["status"];
  CHECK(st["expectedPods"] == 8);
  CHECK(st["desiredHealthy"] == 4);
  CHECK(st["currentHealthy"] == 3);
  CHECK(st["disruptionsAllowed"] == 0);
  CHECK(fc.written[0]["metadata"]["resourceVersion"] == "5");  // conditional write
  REQUIRE(dc.sync("ns/b").is_ok());
  CHECK(fc.written.size() == 1);  // unchanged: no write

  fc.pdbs["ns/b"]["spec"]["maxUnavailable"] = "75%";
  fc.pdbs["ns/b"]["metadata"]["generation"] = 3;
  fc.next_error = Status(Code::kConflict, "the object has been modified");
  CHECK(dc.sync("ns/b").code() == Code::kConflict);
  REQUIRE(dc.sync("ns/b").is_ok());
  REQUIRE(fc.written.size() == 2);
  CHECK(fc.written[1]["status"]["observedGeneration"] == 3);
  CHECK(fc.written[1]["status"]["disruptionsAllowed"] == 1);

  // Gone budgets and NotFound writes are fine.
  CHECK(dc.sync("ns/nope").is_ok());
  fc.pdbs["ns/b"]["metadata"]["generation"] = 4;
  fc.next_error = Status(Code::kNotFound, "gone");
  CHECK(dc.sync("ns/b").is_ok());
}

TEST_CASE("disruption: pod events queue the budgets that select the pod") {
  FakeClient fc;
  DisruptionController dc;
  dc.set_client(&fc);
  fc.pdbs["ns/b"] = pdb({{"minAvailable", 1}, {"selector", kSel}});
  json other = pdb({{"minAvailable", 1}, {"selector", {{"matchLabels", {{"app", "z"}}}}}});
  other["metadata"]["name"] = "z";
  fc.pdbs["ns/z"] = other;
  dc.on_pod(nullptr, pod("p", true, "", "", {{"app", "q"}}));
  CHECK(dc.queue().len() == 0);
  dc.on_pod(nullptr, pod("p"));
  CHECK(dc.queue().len() == 1);
  // A resync (same resourceVersion) is ignored; a relabel queues the old and new budgets.
  json a = pod("p");
  json moved = pod("p", true, "", "", {{"app", "z"}});
  CHECK(dc.queue().len() == 1);
  dc.on_pod(&a, a);
  CHECK(dc.queue().len() == 1);
  moved["metadata"]["resourceVersion"] = "2";
  dc.on_pod(&a, moved);
  CHECK(dc.queue().len() == 2);
}

}  // namespace
}  // namespace skiff::controllers::disruption
