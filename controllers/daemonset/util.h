// Pure helpers of the DaemonSet controller, Kubernetes' pkg/controller/daemon/util and the
// predicates of daemon_controller.go, on API objects as JSON: which nodes should run a daemon
// pod, the pod a DaemonSet stamps for a node (labels, default tolerations, the node-name
// affinity the scheduler honours), which node a pod targets, pod readiness and ordering, and
// the failed-pod back-off. No I/O; thread-safe except FailedPodBackoff (one mutex inside).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace skiff::controllers::daemonset {

using json = nlohmann::json;
using WallTime = std::chrono::system_clock::time_point;

inline constexpr const char* kRevisionHashLabel = "controller-revision-hash";
inline constexpr const char* kTemplateGenerationLabel = "pod-template-generation";
inline constexpr const char* kTemplateGenerationAnnotation =
    "deprecated.daemonset.template.generation";

// NodeShouldRunDaemonPod: `should_run` = a new daemon pod belongs on the node; `should_continue`
// = an existing one may stay. The template's nodeName (if any) must be the node; nodeSelector
// and required node affinity must match (else both false); a NoSchedule/NoExecute taint the pod
// (with the default daemon tolerations) does not tolerate makes should_run false, and
// should_continue false only when the untolerated taint is NoExecute. Node readiness does not
// matter (daemon pods tolerate not-ready/unreachable).
struct ShouldRun {
  bool should_run = false;
  bool should_continue = false;
};
ShouldRun node_should_run_daemon_pod(const json& node, const json& ds);

// nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): spec.nodeSelector labels and the
// required nodeSelectorTerms (ORed; matchExpressions In/NotIn/Exists/DoesNotExist/Gt/Lt ANDed,
// matchFields metadata.name; an empty term matches nothing).
bool pod_matches_node_affinity(const json& pod_spec, const json& node);
// The first NoSchedule/NoExecute taint of `node` no toleration in `tolerations` tolerates
// (nullopt when all are tolerated). `no_execute_only` looks at NoExecute taints only.
std::optional<json> untolerated_taint(const json& node, const json& tolerations,
                                      bool no_execute_only);
bool toleration_tolerates(const json& toleration, const json& taint);

// AddOrUpdateDaemonPodTolerations: not-ready and unreachable (NoExecute), disk-pressure,
// memory-pressure, pid-pressure, unschedulable (NoSchedule), and network-unavailable
// (NoSchedule) for hostNetwork pods; a toleration with the same key, operator, value and
// effect is replaced, others are kept.
void add_daemon_tolerations(json& pod_spec);

// util.CreatePodTemplate: the template with the default tolerations and the labels
// pod-template-generation (when `generation` is set) and controller-revision-hash (when `hash`
// is not empty).
json pod_template_for(const json& ds, std::optional<int64_t> generation, const std::string& hash);
// The pod to POST for `node`: generateName "<ds>-", the template's labels, annotations and
// finalizers, the controller reference, and spec.affinity.nodeAffinity.required replaced by
// one term `matchFields: [{key: metadata.name, operator: In, values: [node]}]`
// (ReplaceDaemonSetPodNodeNameNodeAffinity).
json new_daemon_pod(const json& ds, const json& pod_template, const std::string& node);
json replace_node_name_affinity(json affinity, const std::string& node);

// GetTargetNodeName: spec.nodeName, else the single metadata.name value of the required
// affinity's matchFields; nullopt when the pod names no node.
std::optional<std::string> target_node_name(const json& pod);

// GetTemplateGeneration: the deprecated.daemonset.template.generation annotation when present
// and numeric, else metadata.generation (the API server bumps it on every spec change, which
// includes every template change).
std::optional<int64_t> template_generation(const json& ds);
// IsPodUpdated: the pod's controller-revision-hash is `hash`, or its pod-template-generation is
// `generation`.
bool is_pod_updated(const json& pod, const std::string& hash, std::optional<int64_t> generation);

bool is_pod_ready(const json& pod);
// Ready for at least min_ready_seconds (by the Ready condition's lastTransitionTime).
bool is_pod_available(const json& pod, int min_ready_seconds, WallTime now);
// Time until a ready pod becomes available; nullopt when it is not ready or already available.
std::optional<std::chrono::nanoseconds> time_until_available(const json& pod, int min_ready_seconds,
                                                             WallTime now);
// podByCreationTimestampAndPhase: scheduled first, then older first, then by name.
bool pod_less(const json& a, const json& b);
bool is_terminating(const json& obj);

// maxSurge / maxUnavailable resolved against the number of nodes that should run the pod
// (intstr percentages rounded up); both zero => unavailable 1. OnDelete: (0, 0).
void resolve_surge_unavailable(const json& ds, int desired, int* surge, int* unavailable);

// flowcontrol.Backoff(1 s, 15 min) keyed "<ds uid>/<node>": failed daemon pods are deleted at
// most once per back-off period, the period doubling while failures keep coming.
class FailedPodBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  FailedPodBackoff(std::chrono::nanoseconds initial = std::chrono::seconds(1),
                   std::chrono::nanoseconds max = std::chrono::minutes(15))
      : initial_(initial), max_(max) {}
  // IsInBackOffSinceUpdate.
  bool in_backoff(const std::string& key, Clock::time_point now);
  // The current period of `key` (0 when none).
  std::chrono::nanoseconds get(const std::string& key);
  // Next: start at `initial` (or after 2 × max without failures), else double up to max.
  void next(const std::string& key, Clock::time_point now);
  // Drops entries idle for 2 × max.
  void gc(Clock::time_point now);

 private:
  struct Entry {
    std::chrono::nanoseconds period{};
    Clock::time_point last{};
  };
  std::chrono::nanoseconds initial_, max_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace skiff::controllers::daemonset
