// StatefulSets and DaemonSets in skiffctl: kubectl 1.32's status viewers, history from
// ControllerRevisions, the rollback plan, and describe statefulset.
#include "cli/statefulset.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>

namespace skiff::cli {
namespace {

json sts(int replicas, const char* status, const char* strategy = nullptr) {
  json s = {
      {"metadata", {{"name", "web"}, {"namespace", "default"}, {"uid", "s1"}, {"generation", 2}}},
      {"spec",
       {{"replicas", replicas},
        {"updateStrategy", strategy ? json::parse(strategy) : json{{"type", "RollingUpdate"}}}}}};
  s["status"] = json::parse(status);
  return s;
}

std::string message(const Result<RolloutStatusView>& v) {
  REQUIRE(v);
  return v->message + (v->done ? "[done]" : "");
}

TEST_CASE("statefulset rollout status (kubectl's StatefulSetStatusViewer)") {
  CHECK(message(statefulset_status_view(sts(3, R"({"observedGeneration":1})"))) ==
        "Waiting for statefulset spec update to be observed...\n");
  CHECK(message(statefulset_status_view(sts(3, R"({"replicas":3})"))) ==
        "Waiting for statefulset spec update to be observed...\n");
  CHECK(message(statefulset_status_view(
            sts(3, R"({"observedGeneration":2,"replicas":3,"readyReplicas":2})"))) ==
        "Waiting for 1 pods to be ready...\n");
  CHECK(message(statefulset_status_view(
            sts(3,
                R"({"observedGeneration":2,"replicas":3,"readyReplicas":3,"updatedReplicas":1,
                    "currentRevision":"web-a","updateRevision":"web-b"})"))) ==
        "waiting for statefulset rolling update to complete 1 pods at revision web-b...\n");
  CHECK(message(statefulset_status_view(
            sts(3,
                R"({"observedGeneration":2,"replicas":3,"readyReplicas":3,"updatedReplicas":3,
                    "currentReplicas":3,"currentRevision":"web-6d7f","updateRevision":"web-6d7f"})"))) ==
        "statefulset rolling update complete 3 pods at revision web-6d7f...\n[done]");
  // With a partition (what the API server's defaults give every RollingUpdate set).
  const char* part = R"({"type":"RollingUpdate","rollingUpdate":{"partition":1}})";
  CHECK(message(statefulset_status_view(
            sts(3, R"({"observedGeneration":2,"readyReplicas":3,"updatedReplicas":1})", part))) ==
        "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...\n");
  CHECK(message(statefulset_status_view(
            sts(3, R"({"observedGeneration":2,"readyReplicas":3,"updatedReplicas":2})", part))) ==
        "partitioned roll out complete: 2 new pods have been updated...\n[done]");
  auto on_delete =
      statefulset_status_view(sts(3, R"({"observedGeneration":2})", R"({"type":"OnDelete"})"));
  REQUIRE_FALSE(on_delete);
  CHECK(on_delete.status().message() ==
        "rollout status is only available for RollingUpdate strategy type");
}

TEST_CASE("daemonset rollout status (kubectl's DaemonSetStatusViewer)") {
  json ds = {{"metadata", {{"name", "agent"}, {"generation", 2}}},
             {"spec", {{"updateStrategy", {{"type", "RollingUpdate"}}}}},
             {"status", {{"observedGeneration", 1}}}};
  CHECK(message(daemonset_status_view(ds)) ==
        "Waiting for daemon set spec update to be observed...\n");
  ds["status"] = {{"observedGeneration", 2},
                  {"desiredNumberScheduled", 3},
                  {"updatedNumberScheduled", 1},
                  {"numberAvailable", 1}};
  CHECK(message(daemonset_status_view(ds)) ==
        "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been "
        "updated...\n");
  ds["status"]["updatedNumberScheduled"] = 3;
  CHECK(message(daemonset_status_view(ds)) ==
        "Waiting for daemon set \"agent\" rollout to finish: 1 of 3 updated pods are "
        "available...\n");
  ds["status"]["numberAvailable"] = 3;
  CHECK(message(daemonset_status_view(ds)) ==
        "daemon set \"agent\" successfully rolled out\n[done]");
  ds["spec"]["updateStrategy"]["type"] = "OnDelete";
  CHECK_FALSE(daemonset_status_view(ds));
}

json revision(const char* name, int64_t n, const char* image, const char* owner_uid = "s1") {
  json tmpl = {{"metadata", {{"labels", {{"app", "web"}}}}},
               {"spec", {{"containers", {{{"name", "web"}, {"image", image}}}}}}};
  json r = {{"apiVersion", "apps/v1"},
            {"kind", "ControllerRevision"},
            {"metadata",
             {{"name", name}, {"ownerReferences", {{{"uid", owner_uid}, {"controller", true}}}}}},
            {"revision", n}};
  tmpl["$patch"] = "replace";
  r["data"] = {{"spec", {{"template", tmpl}}}};
  return r;
}

TEST_CASE("history from ControllerRevisions (kubectl's printHistory)") {
  json owner = {{"metadata", {{"uid", "s1"}}}};
  json items = json::array({revision("web-b", 2, "nginx:2"), revision("web-a", 1, "nginx:1"),
                            revision("other", 7, "x", "zzz")});
  items[0]["metadata"]["annotations"] = {{"kubernetes.io/change-cause", "image 2"}};
  auto revs = controlled_revisions(owner, items);
  REQUIRE(revs.size() == 2);
  CHECK(revs[0]["metadata"]["name"] == "web-a");
  auto table = revision_history(revs, 0);
  REQUIRE(table);
  CHECK(*table ==
        "REVISION  CHANGE-CAUSE\n"
        "1         <none>\n"
        "2         image 2\n");
  auto one = revision_history(revs, 2);
  REQUIRE(one);
  CHECK(one->find("Pod Template:\n") == 0);
  CHECK(one->find("Image:\tnginx:2") != std::string::npos);
  CHECK(one->find("$patch") == std::string::npos);
  CHECK(revision_history(revs, 5).status().message() == "unable to find the specified revision");
  CHECK(*revision_history({}, 0) == "No rollout history found.");
}

TEST_CASE("rollback plan (kubectl's StatefulSetRollbacker)") {
  std::vector<json> revs = {revision("web-a", 1, "nginx:1"), revision("web-b", 2, "nginx:2")};
  json owner = {{"metadata", {{"uid", "s1"}}},
                {"spec", {{"template", revs[1]["data"]["spec"]["template"]}}}};
  owner["spec"]["template"].erase("$patch");
  auto prev = plan_revision_rollback(owner, revs, 0);
  REQUIRE(prev);
  CHECK_FALSE(prev->skipped);
  CHECK(prev->message == "rolled back");
  CHECK(prev->patch == revs[0]["data"]);  // the revision's data, as it is
  auto same = plan_revision_rollback(owner, revs, 2);
  REQUIRE(same);
  CHECK(same->skipped);
  CHECK(same->message == "skipped rollback (current template already matches revision 2)");
  CHECK(plan_revision_rollback(owner, revs, 9).status().message() ==
        "unable to find specified revision 9 in history");
  CHECK(plan_revision_rollback(owner, {revs[0]}, 0).status().message() ==
        "no last revision to roll back to");
  CHECK(template_revision_data(owner) == revs[1]["data"]);
}

TEST_CASE("describe statefulset (kubectl 1.32's layout)") {
  setenv("TZ", "UTC", 1);
  tzset();
  json s = json::parse(R"({"metadata":{"name":"web","namespace":"default","uid":"s1",
      "creationTimestamp":"2026-01-01T00:00:00Z","labels":{"app":"nginx"}},
    "spec":{"replicas":3,"selector":{"matchLabels":{"app":"nginx"}},
      "template":{"metadata":{"labels":{"app":"nginx"}},
        "spec":{"containers":[{"name":"nginx","image":"nginx:1.25",
          "volumeMounts":[{"name":"www","mountPath":"/data"}]}]}},
      "updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":0}},
      "volumeClaimTemplates":[{"metadata":{"name":"www"},"spec":{"accessModes":["ReadWriteOnce"],
        "storageClassName":"local-path","resources":{"requests":{"storage":"1Gi"}}}}]},
    "status":{"replicas":3}})");
  PodCounts counts;
  counts.running = 3;
  DescribeWriter w;
  describe_statefulset(w, s, counts);
  CHECK(w.flush() ==
        "Name:               web\n"
        "Namespace:          default\n"
        "CreationTimestamp:  Thu, 01 Jan 2026 00:00:00 +0000\n"
        "Selector:           app=nginx\n"
        "Labels:             app=nginx\n"
        "Annotations:        <none>\n"
        "Replicas:           3 desired | 3 total\n"
        "Update Strategy:    RollingUpdate\n"
        "  Partition:        0\n"
        "Pods Status:        3 Running / 0 Waiting / 0 Succeeded / 0 Failed\n"
        "Pod Template:\n"
        "  Labels:  app=nginx\n"
        "  Containers:\n"
        "   nginx:\n"
        "    Image:        nginx:1.25\n"
        "    Port:         <none>\n"
        "    Host Port:    <none>\n"
        "    Environment:  <none>\n"
        "    Mounts:\n"
        "      /data from www (rw)\n"
        "  Volumes:         <none>\n"
        "  Node-Selectors:  <none>\n"
        "  Tolerations:     <none>\n"
        "Volume Claims:\n"
        "  Name:          www\n"
        "  StorageClass:  local-path\n"
        "  Labels:        <none>\n"
        "  Annotations:   <none>\n"
        "  Capacity:      1Gi\n"
        "  Access Modes:  [ReadWriteOnce]\n");
  s["spec"].erase("volumeClaimTemplates");
  DescribeWriter w2;
  describe_statefulset(w2, s, counts, "boom");
  std::string text = w2.flush();
  CHECK(text.find("Pods Status:        error in fetching pods: boom\n") != std::string::npos);
  // Aligned with the pod template's last block, as Go's tabwriter does.
  CHECK(text.find("  Tolerations:     <none>\nVolume Claims:     <none>\n") != std::string::npos);
}

}  // namespace
}  // namespace skiff::cli
