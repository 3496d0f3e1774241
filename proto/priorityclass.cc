#include "proto/priorityclass.h"

#include <vector>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {

void default_priorityclass(PriorityClass& pc) {
  if (!pc.preemption_policy) pc.preemption_policy = kPreemptLowerPriority;
}

std::vector<PriorityClass> system_priority_classes() {
  std::vector<PriorityClass> out(2);
  out[0].metadata.name = kSystemNodeCritical;
  out[0].value = kSystemCriticalPriority + 1000;
  out[0].description =
      "Used for system critical pods that must not be moved from their current node.";
  out[1].metadata.name = kSystemClusterCritical;
  out[1].value = kSystemCriticalPriority;
  out[1].description =
      "Used for system critical pods that must run in the cluster, but can be moved to another "
      "node if necessary.";
  for (auto& pc : out) {
    pc.type_meta.api_version = "scheduling.k8s.io/v1";
    pc.type_meta.kind = "PriorityClass";
    default_priorityclass(pc);
  }
  return out;
}

std::string known_system_priority_class_error(const std::string& name, int32_t value,
                                              bool global_default) {
  for (const auto& spc : system_priority_classes()) {
    if (spc.metadata.name != name) continue;
    if (spc.value != value)
      return "value of " + name + " PriorityClass must be " + std::to_string(spc.value);
    if (spc.global_default != global_default)
      return "globalDefault of " + name + " PriorityClass must be " +
             (spc.global_default ? "true" : "false");
    return "";
  }
  return name + " is not a known system priority class";
}

namespace {

// pkg/apis/scheduling/validation ValidatePriorityClass and ValidatePriorityClassUpdate.
void validate_priorityclass(const PriorityClass& pc, const PriorityClass* old, FieldErrors& errs) {
  const std::string& name = pc.metadata.name;
  if (name.rfind(kSystemPriorityClassPrefix, 0) == 0) {
    std::string why = known_system_priority_class_error(name, pc.value, pc.global_default);
    if (!why.empty())
      errs.push_back({ErrorType::kForbidden, "metadata.name",
                      std::string("priority class names with '") + kSystemPriorityClassPrefix +
                          "' prefix are reserved for system use only. error: " + why,
                      ""});
  } else if (pc.value > kHighestUserDefinablePriority) {
    errs.push_back({ErrorType::kForbidden, "value",
                    "maximum allowed value of a user defined priority is " +
                        std::to_string(kHighestUserDefinablePriority),
                    ""});
  }
  if (pc.preemption_policy)  // ValidatePreemptionPolicy
    required_one_of(errs, Path("preemptionPolicy"), *pc.preemption_policy,
                    {kPreemptLowerPriority, "Never"});
  if (!old) return;
  if (pc.value != old->value)
    errs.push_back({ErrorType::kForbidden, "value", "may not be changed in an update.", ""});
  // ValidateImmutableField on the pointer: nil and "" differ; the stored object is defaulted.
  if (pc.preemption_policy != old->preemption_policy)
    errs.push_back({ErrorType::kInvalid, "preemptionPolicy", "field is immutable",
                    pc.preemption_policy ? quote_value(*pc.preemption_policy) : "null"});
}

// kubectl's printPriorityClass (1.30+: PreemptionPolicy after Age).
json priorityclass_row(const PriorityClass& o, Clock::time_point now) {
  return json::array({o.metadata.name, static_cast<int64_t>(o.value), o.global_default,
                      since(o.metadata.creation_timestamp.value_or(Time{}).value, now),
                      o.preemption_policy.value_or("")});
}

}  // namespace

ResourceType priorityclass_resource() {
  KindSpec<PriorityClass> k;
  k.type.group = "scheduling.k8s.io";
  k.type.version = "v1";
  k.type.kind = "PriorityClass";
  k.type.list_kind = "PriorityClassList";
  k.type.plural = "priorityclasses";
  k.type.singular = "priorityclass";
  k.type.has_spec = false;
  k.type.namespaced = false;
  k.type.short_names = {"pc"};
  k.type.columns = {
      name_column(),
      column("Value", "integer",
             "value represents the integer value of this priority class. This is the actual "
             "priority that pods receive when they have the name of this class in their pod "
             "spec."),
      column("Global-Default", "boolean",
             "globalDefault specifies whether this PriorityClass should be considered as the "
             "default priority for pods that do not have any priority class. Only one "
             "PriorityClass can be marked as `globalDefault`. However, if more than one "
             "PriorityClasses exists with their `globalDefault` field set to true, the smallest "
             "value of such global default PriorityClasses will be used as the default "
             "priority."),
      age_column(),
      column("PreemptionPolicy", "string",
             "preemptionPolicy is the Policy for preempting pods with lower priority. One of "
             "Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
  };
  k.defaults = default_priorityclass;
  k.validate = validate_priorityclass;
  k.row = priorityclass_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
