#include "proto/statefulset.h"

#include <cctype>

#include "common/json_path.h"
#include "proto/kind_util.h"
#include "proto/resource.h"
#include "proto/selector.h"
#include "proto/workload_util.h"

namespace skiff::proto {

void default_statefulset(StatefulSet& o) {
  StatefulSetSpec& s = o.spec;
  if (s.pod_management_policy.empty()) s.pod_management_policy = "OrderedReady";
  if (s.update_strategy.type.empty()) {
    s.update_strategy.type = "RollingUpdate";
    if (!s.update_strategy.rolling_update)
      s.update_strategy.rolling_update = RollingUpdateStatefulSetStrategy{};
  }
  // As Kubernetes: an explicit RollingUpdate without rollingUpdate stays without it (partition 0
  // is implied), only a given rollingUpdate gets its partition.
  if (s.update_strategy.type == "RollingUpdate" && s.update_strategy.rolling_update &&
      !s.update_strategy.rolling_update->partition)
    s.update_strategy.rolling_update->partition = 0;
  if (!s.persistent_volume_claim_retention_policy)
    s.persistent_volume_claim_retention_policy = StatefulSetPersistentVolumeClaimRetentionPolicy{};
  auto& policy = *s.persistent_volume_claim_retention_policy;
  if (policy.when_deleted.empty()) policy.when_deleted = "Retain";
  if (policy.when_scaled.empty()) policy.when_scaled = "Retain";
  if (!s.replicas) s.replicas = 1;
  if (!s.revision_history_limit) s.revision_history_limit = 10;
  default_pod_template(s.template_);
  // The claim templates are core/v1 PersistentVolumeClaims and get their defaults
  // (SetDefaults_PersistentVolumeClaim(Spec)) when the StatefulSet is defaulted.
  for (json& c : s.volume_claim_templates) {
    if (!c.is_object()) continue;
    json& spec = c["spec"];
    if (!spec.is_object()) spec = json::object();
    if (!spec.contains("volumeMode")) spec["volumeMode"] = "Filesystem";
    json& status = c["status"];
    if (!status.is_object()) status = json::object();
    if (!status.contains("phase")) status["phase"] = "Pending";
  }
}

namespace {

// validateRollingUpdateStatefulSet.
void validate_rolling_update(const RollingUpdateStatefulSetStrategy& ru, const Path& p,
                             FieldErrors& errs) {
  if (ru.partition) non_negative(errs, p.field("partition"), *ru.partition);
  if (!ru.max_unavailable) return;
  const IntOrString& mu = *ru.max_unavailable;
  Path mp = p.field("maxUnavailable");
  if (mu.is_string) {
    auto pct = percent_value(mu);
    if (!pct) {
      errs.push_back({ErrorType::kInvalid, mp.str(),
                      "a valid percent string must be a numeric string followed by an ending "
                      "'%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                      go_int_or_string(mu)});
      return;
    }
    if (*pct == 0)
      errs.push_back(
          {ErrorType::kInvalid, mp.str(), "must be greater than 0", go_int_or_string(mu)});
    if (*pct > 100)
      errs.push_back(
          {ErrorType::kInvalid, mp.str(), "must not be greater than 100%", go_int_or_string(mu)});
  } else {
    non_negative(errs, mp, mu.int_val);
    if (mu.int_val == 0)
      errs.push_back(
          {ErrorType::kInvalid, mp.str(), "must be greater than 0", go_int_or_string(mu)});
  }
}

void validate_update_strategy(const StatefulSetUpdateStrategy& st, const Path& p,
                              FieldErrors& errs) {
  if (st.type.empty()) {
    errs.push_back({ErrorType::kRequired, p.str(), "", ""});
  } else if (st.type == "OnDelete") {
    if (st.rolling_update)
      errs.push_back({ErrorType::kInvalid, p.field("rollingUpdate").str(),
                      "only allowed for updateStrategy 'RollingUpdate'",
                      encode(*st.rolling_update).dump()});
  } else if (st.type == "RollingUpdate") {
    if (st.rolling_update)
      validate_rolling_update(*st.rolling_update, p.field("rollingUpdate"), errs);
  } else {
    // Kubernetes reports the whole strategy at spec.updateStrategy.
    errs.push_back({ErrorType::kInvalid, p.str(), "must be 'RollingUpdate' or 'OnDelete'",
                    "{\"type\":\"" + st.type + "\"}"});
  }
}

// A volumeClaimTemplate: a name (it becomes part of each claim's name), access modes and a
// storage request (what ValidatePersistentVolumeClaimSpec insists on).
void validate_claim_template(const json& c, const Path& p, FieldErrors& errs) {
  if (!c.is_object()) {
    errs.push_back({ErrorType::kInvalid, p.str(), "must be an object", c.dump()});
    return;
  }
  const json* name = find_path(c, {"metadata", "name"});
  if (!name || !name->is_string() || name->get<std::string>().empty()) {
    errs.push_back({ErrorType::kRequired, p.field("metadata").field("name").str(),
                    "name or generateName is required", ""});
  } else {
    for (const auto& msg : is_dns1123_subdomain(name->get<std::string>()))
      errs.push_back({ErrorType::kInvalid, p.field("metadata").field("name").str(), msg, *name});
  }
  Path sp = p.field("spec");
  const json* modes = find_path(c, {"spec", "accessModes"});
  if (!modes || !modes->is_array() || modes->empty())
    errs.push_back({ErrorType::kRequired, sp.field("accessModes").str(),
                    "at least 1 access mode is required", ""});
  const json* storage = find_path(c, {"spec", "resources", "requests", "storage"});
  if (!storage)
    errs.push_back({ErrorType::kRequired,
                    sp.field("resources").field("requests").field("storage").str(), "", ""});
}

// ValidateStatefulSetSpec. Unlike Kubernetes (whose ValidatePodTemplateSpecForStatefulSet has a
// TODO and checks only labels and annotations), the template is validated as a pod, with the
// claim templates' names counted as volumes: an invalid template is refused at once instead of
// failing every pod creation later.
void validate_spec(const StatefulSetSpec& s, const Path& spec, FieldErrors& errs) {
  const std::string& pmp = s.pod_management_policy;
  if (pmp.empty())
    errs.push_back({ErrorType::kRequired, spec.field("podManagementPolicy").str(), "", ""});
  else if (pmp != "OrderedReady" && pmp != "Parallel")
    errs.push_back({ErrorType::kInvalid, spec.field("podManagementPolicy").str(),
                    "must be 'OrderedReady' or 'Parallel'", "\"" + pmp + "\""});
  validate_update_strategy(s.update_strategy, spec.field("updateStrategy"), errs);
  if (const auto& policy = s.persistent_volume_claim_retention_policy) {
    Path pp = spec.field("persistentVolumeClaimRetentionPolicy");
    not_supported(errs, pp.field("whenDeleted"), policy->when_deleted, {"Retain", "Delete"});
    not_supported(errs, pp.field("whenScaled"), policy->when_scaled, {"Retain", "Delete"});
  }
  non_negative(errs, spec.field("replicas"), s.replicas.value_or(0));
  non_negative(errs, spec.field("minReadySeconds"), s.min_ready_seconds);
  if (s.ordinals) non_negative(errs, spec.field("ordinals.start"), s.ordinals->start);
  if (s.revision_history_limit)
    non_negative(errs, spec.field("revisionHistoryLimit"), *s.revision_history_limit);

  const Path sel_path = spec.field("selector");
  if (!s.selector) {
    errs.push_back({ErrorType::kRequired, sel_path.str(), "", ""});
  } else {
    LabelSelector::validate_json(encode(*s.selector), sel_path, errs);
    if (s.selector->match_labels.empty() && s.selector->match_expressions.empty())
      errs.push_back({ErrorType::kInvalid, sel_path.str(),
                      "empty selector is invalid for statefulset", go_label_selector(*s.selector)});
  }
  const Path tp = spec.field("template");
  if (s.selector) {
    auto parsed = LabelSelector::from_json(encode(*s.selector));
    if (parsed.is_ok() && !parsed->empty() && !parsed->matches(s.template_.metadata.labels))
      errs.push_back({ErrorType::kInvalid, tp.field("metadata").field("labels").str(),
                      "`selector` does not match template `labels`",
                      go_string_map(s.template_.metadata.labels)});
  }
  PodTemplateSpec with_claims = s.template_;
  for (const json& c : s.volume_claim_templates) {
    const json* name = find_path(c, {"metadata", "name"});
    if (!name || !name->is_string()) continue;
    Volume v;
    v.name = name->get<std::string>();
    v.empty_dir = EmptyDirVolumeSource{};
    with_claims.spec.volumes.push_back(std::move(v));
  }
  validate_pod_template(with_claims, tp, errs);
  if (s.template_.spec.restart_policy != "Always")
    not_supported(errs, tp.field("spec").field("restartPolicy"), s.template_.spec.restart_policy,
                  {"Always"});
  if (s.template_.spec.active_deadline_seconds)
    errs.push_back({ErrorType::kForbidden, tp.field("spec").field("activeDeadlineSeconds").str(),
                    "activeDeadlineSeconds in StatefulSet is not Supported", ""});
  for (size_t i = 0; i < s.volume_claim_templates.size(); ++i)
    validate_claim_template(s.volume_claim_templates[i],
                            spec.field("volumeClaimTemplates").index(i), errs);
}

// ValidateStatefulSetUpdate: only replicas, ordinals, template, updateStrategy,
// persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
void validate_spec_update(const StatefulSetSpec& now, const StatefulSetSpec& before,
                          FieldErrors& errs) {
  StatefulSetSpec clone = now;
  clone.replicas = before.replicas;
  clone.template_ = before.template_;
  clone.update_strategy = before.update_strategy;
  clone.min_ready_seconds = before.min_ready_seconds;
  clone.ordinals = before.ordinals;
  clone.persistent_volume_claim_retention_policy = before.persistent_volume_claim_retention_policy;
  if (encode(clone) != encode(before))
    errs.push_back({ErrorType::kForbidden, "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                    "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden",
                    ""});
}

// ValidateStatefulSetStatus.
void validate_status(const StatefulSetStatus& st, FieldErrors& errs) {
  const Path status("status");
  non_negative(errs, status.field("replicas"), st.replicas);
  non_negative(errs, status.field("readyReplicas"), st.ready_replicas);
  non_negative(errs, status.field("currentReplicas"), st.current_replicas);
  non_negative(errs, status.field("updatedReplicas"), st.updated_replicas);
  non_negative(errs, status.field("availableReplicas"), st.available_replicas);
  non_negative(errs, status.field("observedGeneration"), st.observed_generation);
  if (st.collision_count) non_negative(errs, status.field("collisionCount"), *st.collision_count);
  const char* more = "cannot be greater than status.replicas";
  auto at_most = [&](const char* field, int32_t v, int32_t limit, const char* why) {
    validate_status_at_most(status, field, v, limit, why, errs);
  };
  at_most("readyReplicas", st.ready_replicas, st.replicas, more);
  at_most("currentReplicas", st.current_replicas, st.replicas, more);
  at_most("updatedReplicas", st.updated_replicas, st.replicas, more);
  at_most("availableReplicas", st.available_replicas, st.replicas, more);
  at_most("availableReplicas", st.available_replicas, st.ready_replicas,
          "cannot be greater than status.readyReplicas");
}

void validate_statefulset(const StatefulSet& s, const StatefulSet* old, FieldErrors& errs) {
  validate_spec(s.spec, Path("spec"), errs);
  if (old) validate_spec_update(s.spec, old->spec, errs);
  validate_status(s.status, errs);
}

// kubectl's printStatefulSet.
json statefulset_row(const StatefulSet& s, Clock::time_point now) {
  return json::array(
      {s.metadata.name,
       std::to_string(s.status.ready_replicas) + "/" + std::to_string(s.spec.replicas.value_or(0)),
       since(s.metadata.creation_timestamp.value_or(Time{}).value, now),
       container_names(s.spec.template_), container_images(s.spec.template_)});
}

}  // namespace

ResourceType statefulset_resource() {
  KindSpec<StatefulSet> k;
  k.type.group = "apps";
  k.type.version = "v1";
  k.type.kind = "StatefulSet";
  k.type.list_kind = "StatefulSetList";
  k.type.plural = "statefulsets";
  k.type.singular = "statefulset";
  k.type.namespaced = true;
  k.type.short_names = {"sts"};
  k.type.categories = {"all"};
  k.type.subresources = {"status", "scale"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Ready", "string", "Number of the pod with ready state"),
      age_column(),
      column("Containers", "string", "Names of each container in the template.", 1),
      column("Images", "string", "Images referenced by each container in the template.", 1),
  };
  k.defaults = default_statefulset;
  k.validate = validate_statefulset;
  k.row = statefulset_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
