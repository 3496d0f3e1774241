#include "proto/daemonset.h"

#include <cctype>

#include "proto/kind_util.h"
#include "proto/replicaset.h"
#include "proto/resource.h"
#include "proto/selector.h"
#include "proto/workload_util.h"

namespace skiff::proto {

void default_daemonset(DaemonSet& ds) {
  DaemonSetUpdateStrategy& us = ds.spec.update_strategy;
  if (us.type.empty()) us.type = "RollingUpdate";
  if (us.type == "RollingUpdate") {
    if (!us.rolling_update) us.rolling_update = RollingUpdateDaemonSet{};
    if (!us.rolling_update->max_unavailable)
      us.rolling_update->max_unavailable = IntOrString::from_int(1);
    if (!us.rolling_update->max_surge) us.rolling_update->max_surge = IntOrString::from_int(0);
  }
  if (!ds.spec.revision_history_limit) ds.spec.revision_history_limit = 10;
  default_pod_template(ds.spec.template_);
}

namespace {

// ValidateDaemonSetUpdateStrategy / ValidateRollingUpdateDaemonSet.
void validate_update_strategy(const DaemonSetUpdateStrategy& st, const Path& p, FieldErrors& errs) {
  if (st.type == "OnDelete") return;
  if (st.type != "RollingUpdate") {
    // Kubernetes reports the whole struct at spec.updateStrategy; the type is what is wrong.
    not_supported(errs, p.field("type"), st.type, {"RollingUpdate", "OnDelete"});
    return;
  }
  if (!st.rolling_update) {
    errs.push_back({ErrorType::kRequired, p.field("rollingUpdate").str(), "", ""});
    return;
  }
  Path rp = p.field("rollingUpdate");
  IntOrString mu = st.rolling_update->max_unavailable.value_or(IntOrString{});
  IntOrString ms = st.rolling_update->max_surge.value_or(IntOrString{});
  validate_positive_int_or_percent(mu, rp.field("maxUnavailable"), errs);
  validate_positive_int_or_percent(ms, rp.field("maxSurge"), errs);
  not_more_than_100_percent(mu, rp.field("maxUnavailable"), errs);
  not_more_than_100_percent(ms, rp.field("maxSurge"), errs);
  bool has_unavailable = int_or_percent_value(mu) != 0, has_surge = int_or_percent_value(ms) != 0;
  if (has_unavailable && has_surge)
    errs.push_back({ErrorType::kInvalid, rp.field("maxSurge").str(),
                    "may not be set when maxUnavailable is non-zero", go_int_or_string(ms)});
  else if (!has_unavailable && !has_surge)
    errs.push_back({ErrorType::kRequired, rp.field("maxUnavailable").str(),
                    "cannot be 0 when maxSurge is 0", ""});
}

// ValidateDaemonSetSpec: the selector (required, valid, non-empty, matching the template's
// labels), the template as a pod, restartPolicy Always, no activeDeadlineSeconds, the counters.
void validate_spec(const DaemonSetSpec& s, const Path& spec, FieldErrors& errs) {
  const Path sel_path = spec.field("selector");
  const Path tpl = spec.field("template");
  if (!s.selector) {
    errs.push_back({ErrorType::kRequired, sel_path.str(), "", ""});
  } else {
    LabelSelector::validate_json(encode(*s.selector), sel_path, errs);
    auto parsed = LabelSelector::from_json(encode(*s.selector));
    if (parsed.is_ok() && !parsed->matches(s.template_.metadata.labels))
      errs.push_back({ErrorType::kInvalid, tpl.field("metadata").field("labels").str(),
                      "`selector` does not match template `labels`",
                      go_string_map(s.template_.metadata.labels)});
    if (s.selector->match_labels.empty() && s.selector->match_expressions.empty())
      errs.push_back({ErrorType::kInvalid, sel_path.str(),
                      "empty selector is invalid for daemonset", go_label_selector(*s.selector)});
  }
  validate_pod_template(s.template_, tpl, errs);
  if (s.template_.spec.restart_policy != "Always")
    not_supported(errs, tpl.field("spec").field("restartPolicy"), s.template_.spec.restart_policy,
                  {"Always"});
  if (s.template_.spec.active_deadline_seconds)
    errs.push_back({ErrorType::kInvalid, tpl.field("spec").field("activeDeadlineSeconds").str(),
                    "activeDeadlineSeconds in DaemonSet is not Supported",
                    std::to_string(*s.template_.spec.active_deadline_seconds)});
  non_negative(errs, spec.field("minReadySeconds"), s.min_ready_seconds);
  validate_update_strategy(s.update_strategy, spec.field("updateStrategy"), errs);
  if (s.revision_history_limit)
    non_negative(errs, spec.field("revisionHistoryLimit"), *s.revision_history_limit);
}

// ValidateDaemonSetStatus: every counter non-negative.
void validate_status(const DaemonSetStatus& st, FieldErrors& errs) {
  const Path status("status");
  non_negative(errs, status.field("currentNumberScheduled"), st.current_number_scheduled);
  non_negative(errs, status.field("numberMisscheduled"), st.number_misscheduled);
  non_negative(errs, status.field("desiredNumberScheduled"), st.desired_number_scheduled);
  non_negative(errs, status.field("numberReady"), st.number_ready);
  non_negative(errs, status.field("observedGeneration"), st.observed_generation);
  non_negative(errs, status.field("updatedNumberScheduled"), st.updated_number_scheduled);
  non_negative(errs, status.field("numberAvailable"), st.number_available);
  non_negative(errs, status.field("numberUnavailable"), st.number_unavailable);
  if (st.collision_count) non_negative(errs, status.field("collisionCount"), *st.collision_count);
}

// ValidateDaemonSet / ValidateDaemonSetUpdate (the apps/v1 strategy adds the immutable
// selector).
void validate_daemonset(const DaemonSet& ds, const DaemonSet* old, FieldErrors& errs) {
  const Path spec("spec");
  if (old)
    validate_selector_immutable(ds.spec.selector, old->spec.selector, spec.field("selector"), errs);
  validate_spec(ds.spec, spec, errs);
  validate_status(ds.status, errs);
}

// kubectl's printDaemonSet.
json daemonset_row(const DaemonSet& ds, Clock::time_point now) {
  const DaemonSetStatus& st = ds.status;
  std::string sel = label_selector_string(ds.spec.selector);
  return json::array({ds.metadata.name, int64_t{st.desired_number_scheduled},
                      int64_t{st.current_number_scheduled}, int64_t{st.number_ready},
                      int64_t{st.updated_number_scheduled}, int64_t{st.number_available},
                      format_labels(ds.spec.template_.spec.node_selector),
                      since(ds.metadata.creation_timestamp.value_or(Time{}).value, now),
                      container_names(ds.spec.template_), container_images(ds.spec.template_),
                      sel.empty() ? "<none>" : sel});
}

}  // namespace

ResourceType daemonset_resource() {
  KindSpec<DaemonSet> k;
  k.type.group = "apps";
  k.type.version = "v1";
  k.type.kind = "DaemonSet";
  k.type.list_kind = "DaemonSetList";
  k.type.plural = "daemonsets";
  k.type.singular = "daemonset";
  k.type.namespaced = true;
  k.type.short_names = {"ds"};
  k.type.categories = {"all"};
  k.type.subresources = {"status"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Desired", "integer",
             "The total number of nodes that should be running the daemon pod (including nodes "
             "correctly running the daemon pod)."),
      column("Current", "integer",
             "The number of nodes that are running at least 1 daemon pod and are supposed to run "
             "the daemon pod."),
      column("Ready", "integer",
             "The number of nodes that should be running the daemon pod and have one or more of "
             "the daemon pod running and ready."),
      column("Up-to-date", "integer",
             "The total number of nodes that are running updated daemon pod"),
      column("Available", "integer",
             "The number of nodes that should be running the daemon pod and have one or more of "
             "the daemon pod running and available (ready for at least "
             "spec.minReadySeconds)"),
      column("Node Selector", "string",
             "NodeSelector is a selector which must be true for the pod to fit on a node. "
             "Selector which must match a node's labels for the pod to be scheduled on that "
             "node."),
      age_column(),
      column("Containers", "string", "Names of each container in the template.", 1),
      column("Images", "string", "Images referenced by each container in the template.", 1),
      column("Selector", "string",
             "A label query over pods that are managed by the daemon set. Must match in order "
             "to be controlled. It must match the pod template's labels.",
             1),
  };
  k.defaults = default_daemonset;
  k.validate = validate_daemonset;
  k.row = daemonset_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
