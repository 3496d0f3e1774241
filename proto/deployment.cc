#include "proto/deployment.h"

#include <cctype>

#include "proto/kind_util.h"
#include "proto/resource.h"
#include "proto/workload_util.h"

namespace skiff::proto {

void default_deployment(Deployment& d) {
  DeploymentSpec& s = d.spec;
  if (!s.replicas) s.replicas = 1;
  if (s.strategy.type.empty()) s.strategy.type = "RollingUpdate";
  if (s.strategy.type == "RollingUpdate") {
    if (!s.strategy.rolling_update) s.strategy.rolling_update = RollingUpdateDeployment{};
    auto& ru = *s.strategy.rolling_update;
    if (!ru.max_unavailable) ru.max_unavailable = IntOrString::from_string("25%");
    if (!ru.max_surge) ru.max_surge = IntOrString::from_string("25%");
  }
  if (!s.revision_history_limit) s.revision_history_limit = 10;
  if (!s.progress_deadline_seconds) s.progress_deadline_seconds = 600;
  default_pod_template(s.template_);
}

namespace {

void validate_strategy(const DeploymentStrategy& st, const Path& p, FieldErrors& errs) {
  if (st.type == "Recreate") {
    if (st.rolling_update)
      errs.push_back({ErrorType::kForbidden, p.field("rollingUpdate").str(),
                      "may not be specified when strategy `type` is 'Recreate'", ""});
  } else if (st.type == "RollingUpdate") {
    if (!st.rolling_update) {
      errs.push_back({ErrorType::kRequired, p.field("rollingUpdate").str(),
                      "this should be defaulted and never be nil", ""});
      return;
    }
    Path rp = p.field("rollingUpdate");
    IntOrString mu = st.rolling_update->max_unavailable.value_or(IntOrString{});
    IntOrString ms = st.rolling_update->max_surge.value_or(IntOrString{});
    validate_positive_int_or_percent(mu, rp.field("maxUnavailable"), errs);
    validate_positive_int_or_percent(ms, rp.field("maxSurge"), errs);
    if (int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0)
      errs.push_back({ErrorType::kInvalid, rp.field("maxUnavailable").str(),
                      "may not be 0 when `maxSurge` is 0", go_int_or_string(mu)});
    if (auto pct = percent_value(mu); pct && *pct > 100)
      errs.push_back({ErrorType::kInvalid, rp.field("maxUnavailable").str(),
                      "must not be greater than 100%", go_int_or_string(mu)});
  } else {
    // Kubernetes reports the whole strategy struct at spec.strategy; the type is what is wrong.
    not_supported(errs, p.field("type"), st.type, {"Recreate", "RollingUpdate"});
  }
}

// pkg/apis/apps/validation: ValidateDeployment(Update) (plus the strategy's immutable selector
// for apps/v1) and ValidateDeploymentStatus.
void validate_deployment(const Deployment& d, const Deployment* old, FieldErrors& errs) {
  const Path spec("spec");
  const DeploymentSpec& s = d.spec;
  non_negative(errs, spec.field("replicas"), s.replicas.value_or(0));
  validate_workload_selector(s.selector, spec.field("selector"), errs);
  validate_template_for_replicas(s.template_, s.selector, spec, errs);
  validate_strategy(s.strategy, spec.field("strategy"), errs);
  non_negative(errs, spec.field("minReadySeconds"), s.min_ready_seconds);
  if (s.revision_history_limit)
    non_negative(errs, spec.field("revisionHistoryLimit"), *s.revision_history_limit);
  if (s.progress_deadline_seconds) {
    non_negative(errs, spec.field("progressDeadlineSeconds"), *s.progress_deadline_seconds);
    if (*s.progress_deadline_seconds <= s.min_ready_seconds)
      errs.push_back({ErrorType::kInvalid, spec.field("progressDeadlineSeconds").str(),
                      "must be greater than minReadySeconds",
                      std::to_string(*s.progress_deadline_seconds)});
  }
  if (old)
    validate_selector_immutable(s.selector, old->spec.selector, spec.field("selector"), errs);

  const Path status("status");
  const DeploymentStatus& st = d.status;
  non_negative(errs, status.field("observedGeneration"), st.observed_generation);
  non_negative(errs, status.field("replicas"), st.replicas);
  non_negative(errs, status.field("updatedReplicas"), st.updated_replicas);
  non_negative(errs, status.field("readyReplicas"), st.ready_replicas);
  non_negative(errs, status.field("availableReplicas"), st.available_replicas);
  non_negative(errs, status.field("unavailableReplicas"), st.unavailable_replicas);
  if (st.collision_count) non_negative(errs, status.field("collisionCount"), *st.collision_count);
  const char* more = "cannot be greater than status.replicas";
  auto at_most = [&](const char* field, int32_t v, int32_t limit, const char* why) {
    validate_status_at_most(status, field, v, limit, why, errs);
  };
  at_most("updatedReplicas", st.updated_replicas, st.replicas, more);
  at_most("readyReplicas", st.ready_replicas, st.replicas, more);
  at_most("availableReplicas", st.available_replicas, st.replicas, more);
  at_most("availableReplicas", st.available_replicas, st.ready_replicas,
          "cannot be greater than readyReplicas");
}

// kubectl's printDeployment.
json deployment_row(const Deployment& d, Clock::time_point now) {
  return json::array(
      {d.metadata.name,
       std::to_string(d.status.ready_replicas) + "/" + std::to_string(d.spec.replicas.value_or(0)),
       int64_t{d.status.updated_replicas}, int64_t{d.status.available_replicas},
       since(d.metadata.creation_timestamp.value_or(Time{}).value, now),
       container_names(d.spec.template_), container_images(d.spec.template_),
       label_selector_string(d.spec.selector)});
}

}  // namespace

ResourceType deployment_resource() {
  KindSpec<Deployment> k;
  k.type.group = "apps";
  k.type.version = "v1";
  k.type.kind = "Deployment";
  k.type.list_kind = "DeploymentList";
  k.type.plural = "deployments";
  k.type.singular = "deployment";
  k.type.short_names = {"deploy"};
  k.type.categories = {"all"};
  k.type.subresources = {"status", "scale"};
  k.type.reset_status_on_create = true;
  // Annotations are copied from a Deployment to its ReplicaSets, so Kubernetes bumps the
  // generation when they change too (deployment strategy PrepareForUpdate).
  k.type.generation_tracks_annotations = true;
  k.type.columns = {
      name_column(),
      column("Ready", "string", "Number of the pod with ready state"),
      column("Up-to-date", "string",
             "Total number of non-terminated pods targeted by this deployment that have the "
             "desired template spec."),
      column("Available", "string",
             "Total number of available pods (ready for at least minReadySeconds) targeted by "
             "this deployment."),
      age_column(),
      column("Containers", "string", "Names of each container in the template.", 1),
      column("Images", "string", "Images referenced by each container in the template.", 1),
      column("Selector", "string",
             "Label selector for pods. Existing ReplicaSets whose pods are selected by this "
             "will be the ones affected by this deployment. It must match the pod template's "
             "labels.",
             1),
  };
  k.defaults = default_deployment;
  k.validate = validate_deployment;
  k.row = deployment_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
