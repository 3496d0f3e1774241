#include "proto/replicaset.h"

#include "proto/kind_util.h"
#include "proto/resource.h"
#include "proto/selector.h"
#include "proto/workload_util.h"

namespace skiff::proto {

void default_replicaset(ReplicaSet& rs) {
  if (!rs.spec.replicas) rs.spec.replicas = 1;
  default_pod_template(rs.spec.template_);
}

std::string label_selector_string(const std::optional<LabelSelectorSpec>& s) {
  if (!s) return "";
  auto parsed = LabelSelector::from_json(encode(*s));
  return parsed.is_ok() ? parsed->to_string() : "<invalid>";
}

namespace {

// pkg/apis/apps/validation: ValidateReplicaSet, ValidateReplicaSetUpdate (plus the strategy's
// immutable selector for apps/v1) and ValidateReplicaSetStatus.
void validate_replicaset(const ReplicaSet& rs, const ReplicaSet* old, FieldErrors& errs) {
  const Path spec("spec");
  const ReplicaSetSpec& s = rs.spec;
  non_negative(errs, spec.field("replicas"), s.replicas.value_or(0));
  non_negative(errs, spec.field("minReadySeconds"), s.min_ready_seconds);
  validate_workload_selector(s.selector, spec.field("selector"), errs);
  validate_template_for_replicas(s.template_, s.selector, spec, errs);
  if (old)
    validate_selector_immutable(s.selector, old->spec.selector, spec.field("selector"), errs);

  const Path status("status");
  const ReplicaSetStatus& st = rs.status;
  non_negative(errs, status.field("replicas"), st.replicas);
  non_negative(errs, status.field("fullyLabeledReplicas"), st.fully_labeled_replicas);
  non_negative(errs, status.field("readyReplicas"), st.ready_replicas);
  non_negative(errs, status.field("availableReplicas"), st.available_replicas);
  non_negative(errs, status.field("observedGeneration"), st.observed_generation);
  const char* more = "cannot be greater than status.replicas";
  auto at_most = [&](const char* field, int32_t v, int32_t limit, const char* why) {
    validate_status_at_most(status, field, v, limit, why, errs);
  };
  at_most("fullyLabeledReplicas", st.fully_labeled_replicas, st.replicas, more);
  at_most("readyReplicas", st.ready_replicas, st.replicas, more);
  at_most("availableReplicas", st.available_replicas, st.replicas, more);
  at_most("availableReplicas", st.available_replicas, st.ready_replicas,
          "cannot be greater than readyReplicas");
}

// kubectl's printReplicaSet.
json replicaset_row(const ReplicaSet& rs, Clock::time_point now) {
  std::string sel = label_selector_string(rs.spec.selector);
  return json::array({rs.metadata.name, int64_t{rs.spec.replicas.value_or(0)},
                      int64_t{rs.status.replicas}, int64_t{rs.status.ready_replicas},
                      since(rs.metadata.creation_timestamp.value_or(Time{}).value, now),
                      container_names(rs.spec.template_), container_images(rs.spec.template_),
                      sel.empty() ? "<none>" : sel});
}

}  // namespace

ResourceType replicaset_resource() {
  KindSpec<ReplicaSet> k;
  k.type.group = "apps";
  k.type.version = "v1";
  k.type.kind = "ReplicaSet";
  k.type.list_kind = "ReplicaSetList";
  k.type.plural = "replicasets";
  k.type.singular = "replicaset";
  k.type.short_names = {"rs"};
  k.type.categories = {"all"};
  k.type.subresources = {"status", "scale"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Desired", "integer",
             "Replicas is the number of desired replicas. This is a pointer to distinguish "
             "between explicit zero and unspecified. Defaults to 1. More info: "
             "https://kubernetes.io/docs/concepts/workloads/controllers/"
             "replicationcontroller/#what-is-a-replicationcontroller"),
      column("Current", "integer",
             "Replicas is the most recently observed number of replicas. More info: "
             "https://kubernetes.io/docs/concepts/workloads/controllers/"
             "replicationcontroller/#what-is-a-replicationcontroller"),
      column("Ready", "integer",
             "readyReplicas is the number of pods targeted by this "
             "ReplicaSet with a Ready Condition."),
      age_column(),
      column("Containers", "string", "Names of each container in the template.", 1),
      column("Images", "string", "Images referenced by each container in the template.", 1),
      column("Selector", "string",
             "Selector is a label query over pods that should match the replica count. Label "
             "keys and values that must match in order to be controlled by this replica set. "
             "It must match the pod template's labels. More info: "
             "https://kubernetes.io/docs/concepts/overview/working-with-objects/"
             "labels/#label-selectors",
             1),
  };
  k.defaults = default_replicaset;
  k.validate = validate_replicaset;
  k.row = replicaset_row;
  k.fields = {{"status.replicas", "status.replicas"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
