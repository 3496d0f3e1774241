// Pod helpers of Kubernetes' pkg/controller (controller_utils.go) and pkg/api/v1/pod, on pods
// as JSON: controller references, activity, readiness, availability, and the order in which a
// ReplicaSet deletes surplus pods (ActivePodsWithRanks). Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace skiff::controllers::replicaset {

using json = nlohmann::json;
using WallTime = std::chrono::system_clock::time_point;

// metadata.deletionTimestamp is set.
bool is_terminating(const json& obj);
// Counted by a ReplicaSet: not Succeeded, not Failed, not being deleted.
bool is_pod_active(const json& pod);
// Its Ready condition is True.
bool is_pod_ready(const json& pod);
// When its Ready condition last became True (nullopt when not ready or the time is unknown).
std::optional<WallTime> pod_ready_since(const json& pod);
// Ready for at least `min_ready_seconds` at `now` (Kubernetes' IsPodAvailable: with 0, ready is
// enough; otherwise lastTransitionTime + minReadySeconds must be strictly before now).
bool is_pod_available(const json& pod, int min_ready_seconds, WallTime now);
// How long until a ready pod becomes available (nullopt when not ready, or already available).
std::optional<std::chrono::nanoseconds> time_until_available(const json& pod, int min_ready_seconds,
                                                             WallTime now);

// The first `diff` of `pods` in Kubernetes' deletion order (getPodsToDelete): unscheduled before
// scheduled; Pending before Unknown before Running; not ready before ready; lower
// controller.kubernetes.io/pod-deletion-cost first; more `related` active pods on the same node
// first; ready for less time first (log2 buckets of the age, ties by uid); more container
// restarts first; newer first (log2 buckets, ties by uid). `related` are the pods of the
// ReplicaSets sharing this one's controller (the Deployment's other revisions); may be empty.
std::vector<json> pods_to_delete(std::vector<json> pods, const std::vector<json>& related, int diff,
                                 WallTime now);

// "namespace/name" of a pod (the key expectations track deletions by).
std::string pod_key(const json& pod);

}  // namespace skiff::controllers::replicaset
