// apps/v1 DaemonSet: one pod per eligible node. Field names and JSON omission rules are
// Kubernetes'. Defaulting (updateStrategy RollingUpdate with maxUnavailable 1 and maxSurge 0,
// revisionHistoryLimit 10, template pod defaults), validation (pkg/apis/apps/validation
// ValidateDaemonSet: selector, template, update strategy, immutable selector, status counters)
// and kubectl's Table live in daemonset.cc. The controller is controllers/daemonset.
// Value types; functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/intstr.h"
#include "proto/meta.h"
#include "proto/pod_template.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct RollingUpdateDaemonSet {
  std::optional<IntOrString> max_unavailable;  // defaulted to 1
  std::optional<IntOrString> max_surge;        // defaulted to 0
  template <class V>
  void visit(V& v) {
    v("maxUnavailable", max_unavailable);
    v("maxSurge", max_surge);
  }
};

struct DaemonSetUpdateStrategy {
  std::string type;  // "RollingUpdate" (default) or "OnDelete"
  std::optional<RollingUpdateDaemonSet> rolling_update;
  template <class V>
  void visit(V& v) {
    v("type", type);
    v("rollingUpdate", rolling_update);
  }
};

struct DaemonSetSpec {
  std::optional<LabelSelectorSpec> selector;  // required
  PodTemplateSpec template_;
  DaemonSetUpdateStrategy update_strategy;
  int32_t min_ready_seconds = 0;
  std::optional<int32_t> revision_history_limit;  // defaulted to 10
  template <class V>
  void visit(V& v) {
    v("selector", selector);
    v("template", template_);
    v("updateStrategy", update_strategy, kRetainKeys);
    v("minReadySeconds", min_ready_seconds);
    v("revisionHistoryLimit", revision_history_limit);
  }
};

using DaemonSetCondition = WorkloadCondition;

struct DaemonSetStatus {
  int32_t current_number_scheduled = 0;  // the first four are always written (no omitempty)
  int32_t number_misscheduled = 0;
  int32_t desired_number_scheduled = 0;
  int32_t number_ready = 0;
  int64_t observed_generation = 0;
  int32_t updated_number_scheduled = 0;
  int32_t number_available = 0;
  int32_t number_unavailable = 0;
  std::optional<int32_t> collision_count;
  std::vector<DaemonSetCondition> conditions;
  template <class V>
  void visit(V& v) {
    v("currentNumberScheduled", current_number_scheduled, kAlways);
    v("numberMisscheduled", number_misscheduled, kAlways);
    v("desiredNumberScheduled", desired_number_scheduled, kAlways);
    v("numberReady", number_ready, kAlways);
    v("observedGeneration", observed_generation);
    v("updatedNumberScheduled", updated_number_scheduled);
    v("numberAvailable", number_available);
    v("numberUnavailable", number_unavailable);
    v("collisionCount", collision_count);
    v("conditions", conditions, merge_by("type"));
  }
};

struct DaemonSet {
  TypeMeta type_meta;
  ObjectMeta metadata;
  DaemonSetSpec spec;
  DaemonSetStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// apps/v1 SetDefaults_DaemonSet plus the template's pod defaults.
void default_daemonset(DaemonSet& ds);

ResourceType daemonset_resource();

}  // namespace skiff::proto
