// scheduling.k8s.io/v1 PriorityClass: a name for a pod priority (cluster-scoped, `pc`). The API
// server resolves a pod's spec.priorityClassName to spec.priority / spec.preemptionPolicy at
// create (Kubernetes' Priority admission, apiserver/priority.cc) and makes the two built-in
// classes below at start. Validation (pkg/apis/scheduling/validation) and Table in
// priorityclass.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

// Kubernetes' pkg/apis/scheduling constants.
inline constexpr int32_t kHighestUserDefinablePriority = 1000000000;
inline constexpr int32_t kSystemCriticalPriority = 2 * kHighestUserDefinablePriority;
inline constexpr const char* kSystemPriorityClassPrefix = "system-";
inline constexpr const char* kSystemClusterCritical = "system-cluster-critical";
inline constexpr const char* kSystemNodeCritical = "system-node-critical";
inline constexpr const char* kPreemptLowerPriority = "PreemptLowerPriority";

// No spec/status: the fields are top-level.
struct PriorityClass {
  TypeMeta type_meta;
  ObjectMeta metadata;
  int32_t value = 0;  // `json:"value"`: always written
  bool global_default = false;
  std::string description;
  std::optional<std::string> preemption_policy;  // PreemptLowerPriority (default) | Never
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("value", value, kAlways);
    v("globalDefault", global_default);
    v("description", description);
    v("preemptionPolicy", preemption_policy);
  }
};

// SetDefaults_PriorityClass: preemptionPolicy PreemptLowerPriority.
void default_priorityclass(PriorityClass& pc);
// The built-in classes (SystemPriorityClasses()): system-node-critical (2000001000) and
// system-cluster-critical (2000000000) with Kubernetes' descriptions, defaulted.
std::vector<PriorityClass> system_priority_classes();
// IsKnownSystemPriorityClass: "" when `name` is a built-in with this value and globalDefault,
// else Kubernetes' reason ("x is not a known system priority class", "value of x PriorityClass
// must be N", "globalDefault of x PriorityClass must be false").
std::string known_system_priority_class_error(const std::string& name, int32_t value,
                                              bool global_default);

ResourceType priorityclass_resource();

}  // namespace skiff::proto
