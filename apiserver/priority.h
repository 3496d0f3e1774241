// Kubernetes' Priority admission plugin (plugin/pkg/admission/priority) and the checks its
// PriorityClass storage makes, as pure functions over the store so the write pipeline
// (handlers_write.cc) calls them at one place each. The built-in classes are made at start by
// ApiImpl::init_priority_classes (priority.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "apiserver/errors.h"

namespace skiff::proto {
struct ResourceType;
}
namespace skiff::store {
class Store;
}

namespace skiff::apiserver {

// True for core/v1 pods and scheduling.k8s.io/v1 priorityclasses.
bool is_pod_resource(const proto::ResourceType& rt);
bool is_priorityclass_resource(const proto::ResourceType& rt);

// What admission needs of a PriorityClass.
struct PriorityClassInfo {
  std::string name;
  int64_t value = 0;
  std::optional<std::string> policy;  // preemptionPolicy
  bool global_default = false;
};
PriorityClassInfo priority_class_info(const json& pc);

// Pod create: spec.priorityClassName names an existing class (else 403 `pods "x" is forbidden:
// no PriorityClass with name y was found`), or, when empty, the globalDefault class if there is
// one (its name is set); spec.priority becomes the class's value (0 without any class) and
// spec.preemptionPolicy its policy (PreemptLowerPriority without a class). A pod that sets
// spec.priority or spec.preemptionPolicy to something else is refused (403) as Kubernetes does.
// `pcs` is the priorityclasses resource. 500 when the classes cannot be read. With `known`
// (every class by name, as the API server's store follower has them) the store is read only
// for a named class missing there (one made a moment ago through another API server).
std::optional<ApiError> admit_pod_priority(
    store::Store& store, const proto::ResourceType& pcs, json& pod,
    const std::map<std::string, PriorityClassInfo>* known = nullptr);
// Pod update: a body without spec.priority / spec.preemptionPolicy keeps the stored ones (the
// fields are immutable; pod update validation refuses any other change).
void keep_pod_priority(json& pod, const json& old);
// PriorityClass create/update: when `pc` is globalDefault, no other class may be (403
// `priorityclasses.scheduling.k8s.io "x" is forbidden: PriorityClass y is already marked as
// default. Only one default can exist`).
std::optional<ApiError> admit_priorityclass(store::Store& store, const proto::ResourceType& pcs,
                                            const json& pc);
// DELETE of a built-in class: 403 `... this is a system priority class and cannot be deleted`.
std::optional<ApiError> check_priorityclass_delete(const std::string& name);

}  // namespace skiff::apiserver
