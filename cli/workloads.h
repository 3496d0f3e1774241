// The pure parts of skiffctl's workload commands (scale, rollout status/history/undo/restart/
// pause/resume, describe deployment/replicaset), written after kubectl 1.32's
// polymorphichelpers and describers: argument forms, Go durations, the Deployment status
// viewer, revision history, the rollback plan and the describe layouts. No I/O; thread-safe.
// Objects are the API server's JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/describe_writer.h"
#include "common/status.h"

namespace skiff::cli {

inline constexpr const char* kRevisionAnnotation = "deployment.kubernetes.io/revision";
inline constexpr const char* kChangeCauseAnnotation = "kubernetes.io/change-cause";
inline constexpr const char* kRestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt";
inline constexpr const char* kPodTemplateHashLabel = "pod-template-hash";

// One resource named on the command line, its type as typed ("deploy", "rs").
struct ResourceArg {
  std::string type;
  std::string name;  // "" when only the type was given
};

// kubectl's argument forms: "TYPE NAME...", "TYPE1,TYPE2 NAME...", "TYPE/NAME...". Fails with
// kubectl's words (without the "error: " prefix) on mixed or malformed forms. Empty args give
// an empty list.
[[nodiscard]] Result<std::vector<ResourceArg>> parse_resource_args(
    const std::vector<std::string>& args);

// Go's time.ParseDuration ("5m", "1h30m", "1.5s", "300ms", "0"). Negative durations are
// accepted (the caller decides what they mean).
[[nodiscard]] Result<std::chrono::nanoseconds> parse_go_duration(const std::string& s);

// The object's deployment.kubernetes.io/revision: 0 when absent, an error when not an integer
// (deploymentutil.Revision).
[[nodiscard]] Result<int64_t> revision_of(const json& obj);

// kubectl's DeploymentStatusViewer.Status: the message to print (with its "\n") and whether the
// rollout is done; an error for a missed progress deadline or a revision mismatch (`revision`
// > 0 asks for that revision).
struct RolloutStatusView {
  std::string message;
  bool done = false;
};
[[nodiscard]] Result<RolloutStatusView> deployment_status_view(const json& deployment,
                                                               int64_t revision = 0);

// The ReplicaSets in `items` controlled by the deployment (an ownerReference with controller
// true and the deployment's uid), oldest first (creationTimestamp, then name).
std::vector<json> controlled_replicasets(const json& deployment, const json& items);
// Template equality ignoring the pod-template-hash label (kubectl's equalIgnoreHash).
bool equal_ignore_hash(const json& a, const json& b);
// Index into `rses` (oldest first) of the deployment's new ReplicaSet: the oldest whose
// template equals the deployment's; -1 when there is none (FindNewReplicaSet).
int find_new_replicaset(const json& deployment, const std::vector<json>& rses);

// kubectl's DeploymentHistoryViewer.ViewHistory: revision 0 gives the REVISION/CHANGE-CAUSE
// table (or "No rollout history found."), a revision the pod template of that revision
// (describe layout with raw tabs); an error when that revision is not in the history.
[[nodiscard]] Result<std::string> rollout_history(const std::vector<json>& rses, int64_t revision);

// kubectl's DeploymentRollbacker without the I/O: which ReplicaSet `to_revision` (0: the
// previous revision) names, and the JSON patch restoring its template (the pod-template-hash
// label removed) and its annotations (the deployment's own revision/last-applied annotations
// kept). Unlike kubectl, the patch starts with a "test" of metadata.resourceVersion so a
// Deployment changed since it was read is not overwritten.
struct RollbackPlan {
  bool skipped = false;  // the template already matches: message says so, no patch
  std::string message;   // "rolled back" or "skipped rollback (current template ...)"
  json patch;            // application/json-patch+json body
};
[[nodiscard]] Result<RollbackPlan> plan_rollback(const json& deployment,
                                                 const std::vector<json>& rses,
                                                 int64_t to_revision);

// Go's time.Now().Format(time.RFC3339) for `tp` in the local time zone ("Z" in UTC).
std::string rfc3339_local(std::chrono::system_clock::time_point tp);

// kubectl's describe layouts (Events are written by the caller after these).
// `rses`: the deployment's controlled ReplicaSets, oldest first.
void describe_deployment(DescribeWriter& w, const json& deployment, const std::vector<json>& rses);
struct PodCounts {
  int running = 0, waiting = 0, succeeded = 0, failed = 0;
};
// `pods_error` non-empty replaces the counts ("error in fetching pods: ...").
void describe_replicaset(DescribeWriter& w, const json& rs, const PodCounts& pods,
                         const std::string& pods_error = "");
// Counts the pods controlled by `owner_uid` by phase (Pending counts as waiting).
PodCounts count_pods(const json& pod_items, const std::string& owner_uid);

// The selector of a workload (spec.selector) as a label-selector query string; "" for none.
std::string selector_query(const json& workload);

}  // namespace skiff::cli
