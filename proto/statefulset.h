// apps/v1 StatefulSet: pods with stable identities (`<name>-<ordinal>`, stable hostname and
// per-ordinal PersistentVolumeClaims), created, updated and deleted in ordinal order. Field names
// and JSON omission rules are Kubernetes'. Defaulting (replicas 1, podManagementPolicy
// OrderedReady, updateStrategy RollingUpdate with partition 0, revisionHistoryLimit 10,
// persistentVolumeClaimRetentionPolicy Retain/Retain, template pod defaults, claim templates'
// volumeMode Filesystem and status.phase Pending), validation (pkg/apis/apps/validation
// ValidateStatefulSet / ValidateStatefulSetUpdate / ValidateStatefulSetStatus), Table columns
// live in statefulset.cc. The controller that acts on it is controllers/statefulset.
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

struct RollingUpdateStatefulSetStrategy {
  std::optional<int32_t> partition;  // defaulted to 0
  // Alpha in Kubernetes 1.32 (MaxUnavailableStatefulSet, off by default): accepted and
  // validated, not defaulted; the controller updates one pod at a time regardless.
  std::optional<IntOrString> max_unavailable;
  template <class V>
  void visit(V& v) {
    v("partition", partition);
    v("maxUnavailable", max_unavailable);
  }
};

struct StatefulSetUpdateStrategy {
  std::string type;  // "RollingUpdate" (default) or "OnDelete"
  std::optional<RollingUpdateStatefulSetStrategy> rolling_update;
  template <class V>
  void visit(V& v) {
    v("type", type);
    v("rollingUpdate", rolling_update);
  }
};

struct StatefulSetPersistentVolumeClaimRetentionPolicy {
  std::string when_deleted;  // "Retain" (default) or "Delete"
  std::string when_scaled;   // "Retain" (default) or "Delete"
  template <class V>
  void visit(V& v) {
    v("whenDeleted", when_deleted);
    v("whenScaled", when_scaled);
  }
};

struct StatefulSetOrdinals {
  int32_t start = 0;
  template <class V>
  void visit(V& v) {
    v("start", start);
  }
};

struct StatefulSetSpec {
  std::optional<int32_t> replicas;            // defaulted to 1
  std::optional<LabelSelectorSpec> selector;  // required
  PodTemplateSpec template_;
  // core/v1 PersistentVolumeClaim objects as JSON (the typed PVC lives in proto/storage.h;
  // kept as JSON here so the two files do not depend on each other). Each needs metadata.name.
  std::vector<json> volume_claim_templates;
  std::string service_name;
  std::string pod_management_policy;  // "OrderedReady" (default) or "Parallel"
  StatefulSetUpdateStrategy update_strategy;
  std::optional<int32_t> revision_history_limit;  // defaulted to 10
  int32_t min_ready_seconds = 0;
  std::optional<StatefulSetPersistentVolumeClaimRetentionPolicy>
      persistent_volume_claim_retention_policy;  // defaulted to Retain/Retain
  std::optional<StatefulSetOrdinals> ordinals;
  template <class V>
  void visit(V& v) {
    v("replicas", replicas);
    v("selector", selector);
    v("template", template_);
    v("volumeClaimTemplates", volume_claim_templates);
    v("serviceName", service_name);
    v("podManagementPolicy", pod_management_policy);
    v("updateStrategy", update_strategy);
    v("revisionHistoryLimit", revision_history_limit);
    v("minReadySeconds", min_ready_seconds);
    v("persistentVolumeClaimRetentionPolicy", persistent_volume_claim_retention_policy);
    v("ordinals", ordinals);
  }
};

using StatefulSetCondition = WorkloadCondition;

struct StatefulSetStatus {
  int64_t observed_generation = 0;
  int32_t replicas = 0;  // always written (no omitempty in Kubernetes)
  int32_t ready_replicas = 0;
  int32_t current_replicas = 0;
  int32_t updated_replicas = 0;
  std::string current_revision;
  std::string update_revision;
  std::optional<int32_t> collision_count;
  std::vector<StatefulSetCondition> conditions;
  int32_t available_replicas = 0;  // always written
  template <class V>
  void visit(V& v) {
    v("observedGeneration", observed_generation);
    v("replicas", replicas, kAlways);
    v("readyReplicas", ready_replicas);
    v("currentReplicas", current_replicas);
    v("updatedReplicas", updated_replicas);
    v("currentRevision", current_revision);
    v("updateRevision", update_revision);
    v("collisionCount", collision_count);
    v("conditions", conditions, merge_by("type"));
    v("availableReplicas", available_replicas, kAlways);
  }
};

struct StatefulSet {
  TypeMeta type_meta;
  ObjectMeta metadata;
  StatefulSetSpec spec;
  StatefulSetStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// apps/v1 SetDefaults_StatefulSet plus the template's pod defaults and the claim templates'
// PersistentVolumeClaim defaults (volumeMode Filesystem, status.phase Pending).
void default_statefulset(StatefulSet& s);

ResourceType statefulset_resource();

}  // namespace skiff::proto
