#include "proto/poddisruptionbudget.h"

#include <regex>
#include <set>

#include "proto/kind_util.h"
#include "proto/patch.h"
#include "proto/resource.h"
#include "proto/selector.h"
#include "proto/validation.h"
#include "proto/workload_util.h"

namespace skiff::proto {
namespace {

// Go's %#v of the spec is unreadable; Kubernetes prints the whole struct, we print the two
// values that clash.
std::string both_set_value(const PodDisruptionBudgetSpec& s) {
  return "policy.PodDisruptionBudgetSpec{MinAvailable:" + go_int_or_string(*s.min_available) +
         ", MaxUnavailable:" + go_int_or_string(*s.max_unavailable) + "}";
}

// apimachinery's ValidateConditions (metav1.Condition): type a qualified name, unique; status
// True|False|Unknown; observedGeneration >= 0; lastTransitionTime and reason set; reason in
// CamelCase form; message at most 32768 bytes.
void validate_conditions(const std::vector<MetaCondition>& conds, const Path& p,
                         FieldErrors& errs) {
  static const std::regex kReason("[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?");
  std::set<std::string> seen;
  for (size_t i = 0; i < conds.size(); ++i) {
    const MetaCondition& c = conds[i];
    const Path cp = p.index(i);
    if (c.type.empty())
      errs.push_back({ErrorType::kRequired, cp.field("type").str(), "must be set", ""});
    else
      add_errors(errs, cp.field("type"), quote_value(c.type), is_qualified_name(c.type));
    if (!c.type.empty() && !seen.insert(c.type).second)
      errs.push_back({ErrorType::kDuplicate, cp.field("type").str(), "", quote_value(c.type)});
    not_supported(errs, cp.field("status"), c.status, {"False", "True", "Unknown"});
    non_negative(errs, cp.field("observedGeneration"), c.observed_generation);
    if (c.last_transition_time.is_zero())
      errs.push_back(
          {ErrorType::kRequired, cp.field("lastTransitionTime").str(), "must be set", ""});
    if (c.reason.empty())
      errs.push_back({ErrorType::kRequired, cp.field("reason").str(), "must be set", ""});
    else if (c.reason.size() > 1024)
      errs.push_back(
          {ErrorType::kTooLong, cp.field("reason").str(), "may not be more than 1024 bytes", ""});
    else if (!std::regex_match(c.reason, kReason))
      errs.push_back({ErrorType::kInvalid, cp.field("reason").str(),
                      "a condition reason must start with alphabetic character, optionally "
                      "followed by a string of alphanumeric characters or '_,:', and must end "
                      "with an alphanumeric character or '_' (regex used for validation is "
                      "'[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
                      quote_value(c.reason)});
    if (c.message.size() > 32768)
      errs.push_back(
          {ErrorType::kTooLong, cp.field("message").str(), "may not be more than 32768 bytes", ""});
  }
}

// pkg/apis/policy/validation: ValidatePodDisruptionBudget (the spec; mutable since 1.15) and
// ValidatePodDisruptionBudgetStatusUpdate (policy/v1 rules), run on every write.
void validate_pdb(const PodDisruptionBudget& pdb, const PodDisruptionBudget*, FieldErrors& errs) {
  const Path spec("spec");
  const PodDisruptionBudgetSpec& s = pdb.spec;
  if (s.min_available && s.max_unavailable)
    errs.push_back({ErrorType::kInvalid, spec.str(),
                    "minAvailable and maxUnavailable cannot be both set", both_set_value(s)});
  if (s.min_available) {
    validate_positive_int_or_percent(*s.min_available, spec.field("minAvailable"), errs);
    not_more_than_100_percent(*s.min_available, spec.field("minAvailable"), errs);
  }
  if (s.max_unavailable) {
    validate_positive_int_or_percent(*s.max_unavailable, spec.field("maxUnavailable"), errs);
    not_more_than_100_percent(*s.max_unavailable, spec.field("maxUnavailable"), errs);
  }
  if (s.selector) LabelSelector::validate_json(encode(*s.selector), spec.field("selector"), errs);
  if (s.unhealthy_pod_eviction_policy)
    not_supported(errs, spec.field("unhealthyPodEvictionPolicy"), *s.unhealthy_pod_eviction_policy,
                  {"AlwaysAllow", "IfHealthyBudget"});

  const Path st("status");
  validate_conditions(pdb.status.conditions, st.field("conditions"), errs);
  non_negative(errs, st.field("disruptionsAllowed"), pdb.status.disruptions_allowed);
  non_negative(errs, st.field("currentHealthy"), pdb.status.current_healthy);
  non_negative(errs, st.field("desiredHealthy"), pdb.status.desired_healthy);
  non_negative(errs, st.field("expectedPods"), pdb.status.expected_pods);
}

json pdb_row(const PodDisruptionBudget& pdb, Clock::time_point now) {
  return json::array({pdb.metadata.name, pdb_cell(pdb.spec.min_available),
                      pdb_cell(pdb.spec.max_unavailable),
                      static_cast<int64_t>(pdb.status.disruptions_allowed),
                      since(pdb.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

std::string pdb_cell(const std::optional<IntOrString>& v) { return v ? v->to_string() : "N/A"; }

ResourceType poddisruptionbudget_resource() {
  KindSpec<PodDisruptionBudget> k;
  k.type.group = kPolicyGroup;
  k.type.version = "v1";
  k.type.kind = "PodDisruptionBudget";
  k.type.list_kind = "PodDisruptionBudgetList";
  k.type.plural = "poddisruptionbudgets";
  k.type.singular = "poddisruptionbudget";
  k.type.short_names = {"pdb"};
  k.type.subresources = {"status"};
  k.type.reset_status_on_create = true;  // Kubernetes' PrepareForCreate clears the status
  // kubectl's printers.go (podDisruptionBudgetColumnDefinitions).
  k.type.columns = {
      name_column(),
      column("Min Available", "string",
             "The minimum number of pods that must be available simultaneously. This can be "
             "either an integer or a string specifying a percentage, e.g. \"28%\"."),
      column("Max Unavailable", "string",
             "The maximum number of pods that may be unavailable simultaneously. This can be "
             "either an integer or a string specifying a percentage, e.g. \"28%\"."),
      column("Allowed Disruptions", "integer",
             "Number of pod disruptions that are currently allowed."),
      age_column()};
  k.validate = validate_pdb;
  k.row = pdb_row;
  // `patchStrategy:"replace"` on spec.selector, as k8s.io/api tags it: a selector key removed
  // by `kubectl apply` must go, not be merged back.
  set_struct_replace(&schema_of<PodDisruptionBudgetSpec>(), "selector");
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
