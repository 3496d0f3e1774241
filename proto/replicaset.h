// apps/v1 ReplicaSet: keeps spec.replicas pods matching spec.selector running, stamped from
// spec.template. Field names and JSON omission rules are Kubernetes'. Defaulting (replicas 1,
// template pod defaults), validation (selector required, non-empty and matching the template
// labels, immutable on update; template validated as a pod), Table columns and field selectors
// live in replicaset.cc. The controller that acts on it is elsewhere (controllers/).
// Value types; functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/pod_template.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct ReplicaSetSpec {
  std::optional<int32_t> replicas;  // defaulted to 1
  int32_t min_ready_seconds = 0;
  std::optional<LabelSelectorSpec> selector;  // required
  PodTemplateSpec template_;
  template <class V>
  void visit(V& v) {
    v("replicas", replicas);
    v("minReadySeconds", min_ready_seconds);
    v("selector", selector);
    v("template", template_);
  }
};

using ReplicaSetCondition = WorkloadCondition;

struct ReplicaSetStatus {
  int32_t replicas = 0;  // always written (no omitempty in Kubernetes)
  int32_t fully_labeled_replicas = 0;
  int32_t ready_replicas = 0;
  int32_t available_replicas = 0;
  int64_t observed_generation = 0;
  std::vector<ReplicaSetCondition> conditions;
  template <class V>
  void visit(V& v) {
    v("replicas", replicas, kAlways);
    v("fullyLabeledReplicas", fully_labeled_replicas);
    v("readyReplicas", ready_replicas);
    v("availableReplicas", available_replicas);
    v("observedGeneration", observed_generation);
    v("conditions", conditions, merge_by("type"));
  }
};

struct ReplicaSet {
  TypeMeta type_meta;
  ObjectMeta metadata;
  ReplicaSetSpec spec;
  ReplicaSetStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// apps/v1 SetDefaults_ReplicaSet (replicas 1) plus the template's pod defaults.
void default_replicaset(ReplicaSet& rs);

// A metav1.LabelSelector as its string form ("app=web,tier in (a,b)", as
// metav1.LabelSelectorAsSelector(s).String() prints it); "" for none or an empty selector,
// "<invalid>" when it cannot be parsed.
std::string label_selector_string(const std::optional<LabelSelectorSpec>& s);

ResourceType replicaset_resource();

}  // namespace skiff::proto
