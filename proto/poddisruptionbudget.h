// policy/v1 PodDisruptionBudget: how many pods of a set may be down at once for voluntary
// disruptions. skiff-controller-manager's disruption controller writes its status; the API
// server's pods/eviction subresource consults it. Defaulting, validation
// (pkg/apis/policy/validation) and the Table (kubectl's printPodDisruptionBudget) in
// poddisruptionbudget.cc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/intstr.h"
#include "proto/meta.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

inline constexpr const char* kPolicyGroup = "policy";

struct PodDisruptionBudgetSpec {
  std::optional<IntOrString> min_available;
  // nil selects no pods; an empty selector ({}) selects every pod of the namespace (policy/v1).
  std::optional<LabelSelectorSpec> selector;
  std::optional<IntOrString> max_unavailable;
  std::optional<std::string> unhealthy_pod_eviction_policy;  // IfHealthyBudget | AlwaysAllow
  template <class V>
  void visit(V& v) {
    v("minAvailable", min_available);
    v("selector", selector);
    v("maxUnavailable", max_unavailable);
    v("unhealthyPodEvictionPolicy", unhealthy_pod_eviction_policy);
  }
};

// metav1.Condition.
struct MetaCondition {
  std::string type;
  std::string status;  // True | False | Unknown
  int64_t observed_generation = 0;
  Time last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("observedGeneration", observed_generation);
    v("lastTransitionTime", last_transition_time, kAlways);
    v("reason", reason, kAlways);
    v("message", message, kAlways);
  }
};

struct PodDisruptionBudgetStatus {
  int64_t observed_generation = 0;
  // Pod name -> when the eviction subresource let it go; the controller drops entries after
  // 2 minutes or once the pod is gone or being deleted.
  std::map<std::string, Time> disrupted_pods;
  int32_t disruptions_allowed = 0;
  int32_t current_healthy = 0;
  int32_t desired_healthy = 0;
  int32_t expected_pods = 0;
  std::vector<MetaCondition> conditions;
  template <class V>
  void visit(V& v) {
    v("observedGeneration", observed_generation);
    v("disruptedPods", disrupted_pods);
    v("disruptionsAllowed", disruptions_allowed, kAlways);
    v("currentHealthy", current_healthy, kAlways);
    v("desiredHealthy", desired_healthy, kAlways);
    v("expectedPods", expected_pods, kAlways);
    v("conditions", conditions, FieldOpts{.merge_key = "type", .strategy = PatchStrategy::kMerge});
  }
};

struct PodDisruptionBudget {
  TypeMeta type_meta;
  ObjectMeta metadata;
  PodDisruptionBudgetSpec spec;
  PodDisruptionBudgetStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// The condition the disruption controller maintains, and its reasons (policy/v1 constants).
inline constexpr const char* kDisruptionAllowedCondition = "DisruptionAllowed";
inline constexpr const char* kSufficientPodsReason = "SufficientPods";
inline constexpr const char* kInsufficientPodsReason = "InsufficientPods";

// kubectl's MIN AVAILABLE / MAX UNAVAILABLE cell: the value, or "N/A" when unset.
std::string pdb_cell(const std::optional<IntOrString>& v);
ResourceType poddisruptionbudget_resource();

}  // namespace skiff::proto
