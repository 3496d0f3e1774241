// apps/v1 Deployment: declarative updates of pods through ReplicaSets. Field names and JSON
// omission rules are Kubernetes'. Defaulting (replicas 1, strategy RollingUpdate 25%/25%,
// revisionHistoryLimit 10, progressDeadlineSeconds 600, template pod defaults), validation
// (selector, template, strategy, immutable selector), Table columns live in deployment.cc.
// The controller that acts on it is elsewhere (controllers/).
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
#include "proto/replicaset.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct RollingUpdateDeployment {
  std::optional<IntOrString> max_unavailable;  // defaulted to "25%"
  std::optional<IntOrString> max_surge;        // defaulted to "25%"
  template <class V>
  void visit(V& v) {
    v("maxUnavailable", max_unavailable);
    v("maxSurge", max_surge);
  }
};

struct DeploymentStrategy {
  std::string type;  // "RollingUpdate" (default) or "Recreate"
  std::optional<RollingUpdateDeployment> rolling_update;
  template <class V>
  void visit(V& v) {
    v("type", type);
    v("rollingUpdate", rolling_update);
  }
};

struct DeploymentSpec {
  std::optional<int32_t> replicas;            // defaulted to 1
  std::optional<LabelSelectorSpec> selector;  // required
  PodTemplateSpec template_;
  DeploymentStrategy strategy;
  int32_t min_ready_seconds = 0;
  std::optional<int32_t> revision_history_limit;  // defaulted to 10
  bool paused = false;
  std::optional<int32_t> progress_deadline_seconds;  // defaulted to 600
  template <class V>
  void visit(V& v) {
    v("replicas", replicas);
    v("selector", selector);
    v("template", template_);
    v("strategy", strategy, kRetainKeys);
    v("minReadySeconds", min_ready_seconds);
    v("revisionHistoryLimit", revision_history_limit);
    v("paused", paused);
    v("progressDeadlineSeconds", progress_deadline_seconds);
  }
};

struct DeploymentCondition {
  std::string type;    // "Available", "Progressing", "ReplicaFailure"
  std::string status;  // "True", "False", "Unknown"
  Time last_update_time;
  Time last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("lastUpdateTime", last_update_time);
    v("lastTransitionTime", last_transition_time);
    v("reason", reason);
    v("message", message);
  }
};

struct DeploymentStatus {
  int64_t observed_generation = 0;
  int32_t replicas = 0;
  int32_t updated_replicas = 0;
  int32_t ready_replicas = 0;
  int32_t available_replicas = 0;
  int32_t unavailable_replicas = 0;
  std::vector<DeploymentCondition> conditions;
  std::optional<int32_t> collision_count;
  template <class V>
  void visit(V& v) {
    v("observedGeneration", observed_generation);
    v("replicas", replicas);
    v("updatedReplicas", updated_replicas);
    v("readyReplicas", ready_replicas);
    v("availableReplicas", available_replicas);
    v("unavailableReplicas", unavailable_replicas);
    v("conditions", conditions, merge_by("type"));
    v("collisionCount", collision_count);
  }
};

struct Deployment {
  TypeMeta type_meta;
  ObjectMeta metadata;
  DeploymentSpec spec;
  DeploymentStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// apps/v1 SetDefaults_Deployment plus the template's pod defaults.
void default_deployment(Deployment& d);

ResourceType deployment_resource();

}  // namespace skiff::proto
