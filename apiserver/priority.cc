#include "apiserver/priority.h"

#include <limits>
#include <vector>

#include "apiserver/api_impl.h"
#include "apiserver/api_util.h"
#include "apiserver/store/store.h"
#include "proto/priorityclass.h"
#include "proto/registry.h"

namespace skiff::apiserver {
namespace {

// admission.NewForbidden: `<resource[.group]> "<name>" is forbidden: <why>`, details naming it.
ApiError forbidden_for(const std::string& resource, const std::string& group,
                       const std::string& name, const std::string& why) {
  ApiError e = errors::forbidden((group.empty() ? resource : resource + "." + group) + " \"" +
                                 name + "\" is forbidden: " + why);
  e.details = {{"name", name}, {"kind", resource}};
  if (!group.empty()) e.details["group"] = group;
  return e;
}

using ClassInfo = PriorityClassInfo;

}  // namespace

PriorityClassInfo priority_class_info(const json& pc) {
  ClassInfo c;
  c.name = meta_string(pc, "name");
  if (auto v = pc.find("value"); v != pc.end() && v->is_number_integer())
    c.value = v->get<int64_t>();
  if (auto p = pc.find("preemptionPolicy"); p != pc.end() && p->is_string())
    c.policy = p->get<std::string>();
  if (auto g = pc.find("globalDefault"); g != pc.end() && g->is_boolean()) c.global_default = *g;
  return c;
}

namespace {

// Every stored class; an unreadable store is a 500.
ApiResult<std::vector<ClassInfo>> list_classes(store::Store& store,
                                               const proto::ResourceType& pcs) {
  auto page = store.list(list_prefix(pcs, ""), 0, 0, "");
  if (!page.is_ok())
    return errors::internal("listing PriorityClasses: " + page.status().to_string());
  std::vector<ClassInfo> out;
  for (const auto& kv : page->items) {
    auto obj = read_object(kv);
    if (obj.ok()) out.push_back(priority_class_info(obj.value()));
  }
  return out;
}

// getDefaultPriorityClass: among globalDefault classes (normally at most one) the lowest value.
std::optional<ClassInfo> default_class(const std::vector<ClassInfo>& all) {
  std::optional<ClassInfo> best;
  for (const auto& c : all)
    if (c.global_default && (!best || c.value < best->value)) best = c;
  return best;
}

const ClassInfo* find_known(const std::map<std::string, ClassInfo>* known,
                            const std::string& name) {
  if (known == nullptr) return nullptr;
  auto it = known->find(name);
  return it == known->end() ? nullptr : &it->second;
}

std::string spec_string(const json& spec, const char* field) {
  auto it = spec.find(field);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

bool is_pod_resource(const proto::ResourceType& rt) {
  return rt.group.empty() && rt.plural == "pods";
}

bool is_priorityclass_resource(const proto::ResourceType& rt) {
  return rt.group == "scheduling.k8s.io" && rt.plural == "priorityclasses";
}

std::optional<ApiError> admit_pod_priority(store::Store& store, const proto::ResourceType& pcs,
                                           json& pod,
                                           const std::map<std::string, PriorityClassInfo>* known) {
  json& spec = pod["spec"];
  if (!spec.is_object()) spec = json::object();
  const std::string pod_name = meta_string(pod, "name");
  const std::string class_name = spec_string(spec, "priorityClassName");
  int64_t priority = 0;
  std::optional<std::string> policy = proto::kPreemptLowerPriority;
  if (class_name.empty()) {
    std::vector<ClassInfo> cached;
    if (known)
      for (const auto& [_, c] : *known) cached.push_back(c);
    auto all =
        known ? ApiResult<std::vector<ClassInfo>>(std::move(cached)) : list_classes(store, pcs);
    if (!all.ok())
      return errors::internal("failed to get default priority class: " + all.error().message);
    if (auto d = default_class(all.value())) {
      spec["priorityClassName"] = d->name;
      priority = d->value;
      policy = d->policy;
    }
  } else if (const ClassInfo* k = find_known(known, class_name)) {
    priority = k->value;
    policy = k->policy;
  } else {
    auto kv = store.get(object_key(pcs, "", class_name));
    if (!kv.is_ok()) {
      if (kv.status().code() == Code::kNotFound)
        return forbidden_for("pods", "", pod_name,
                             "no PriorityClass with name " + class_name + " was found");
      return errors::internal("failed to get PriorityClass with name " + class_name + ": " +
                              kv.status().to_string());
    }
    auto obj = read_object(*kv);
    if (!obj.ok()) return obj.error();
    ClassInfo c = priority_class_info(obj.value());
    priority = c.value;
    policy = c.policy;
  }
  if (auto p = spec.find("priority"); p != spec.end() && !p->is_null()) {
    if (!p->is_number_integer() || p->get<int64_t>() != priority)
      return forbidden_for("pods", "", pod_name,
                           "the integer value of priority (" + p->dump() +
                               ") must not be provided in pod spec; priority admission "
                               "controller computed " +
                               std::to_string(priority) + " from the given PriorityClass name");
  }
  spec["priority"] = priority;
  if (policy) {
    if (auto p = spec.find("preemptionPolicy"); p != spec.end() && !p->is_null()) {
      if (!p->is_string() || p->get<std::string>() != *policy)
        return forbidden_for("pods", "", pod_name,
                             "the string value of PreemptionPolicy (" +
                                 (p->is_string() ? p->get<std::string>() : p->dump()) +
                                 ") must not be provided in pod spec; priority admission "
                                 "controller computed " +
                                 *policy + " from the given PriorityClass name");
    }
    spec["preemptionPolicy"] = *policy;
  }
  return std::nullopt;
}

void keep_pod_priority(json& pod, const json& old) {
  auto os = old.find("spec");
  if (os == old.end() || !os->is_object()) return;
  json& spec = pod["spec"];
  if (!spec.is_object()) return;  // validation reports it
  for (const char* f : {"priority", "preemptionPolicy"}) {
    auto was = os->find(f);
    if (was == os->end() || was->is_null()) continue;
    auto now = spec.find(f);
    if (now == spec.end() || now->is_null()) spec[f] = *was;
  }
}

std::optional<ApiError> admit_priorityclass(store::Store& store, const proto::ResourceType& pcs,
                                            const json& pc) {
  ClassInfo me = priority_class_info(pc);
  if (!me.global_default) return std::nullopt;
  auto all = list_classes(store, pcs);
  if (!all.ok())
    return errors::internal("failed to get default priority class: " + all.error().message);
  // Any other default (Kubernetes looks at the lowest one; any is enough to refuse).
  for (const auto& c : all.value())
    if (c.global_default && c.name != me.name)
      return forbidden_for(
          "priorityclasses", "scheduling.k8s.io", me.name,
          "PriorityClass " + c.name + " is already marked as default. Only one default can exist");
  return std::nullopt;
}

std::optional<ApiError> check_priorityclass_delete(const std::string& name) {
  for (const auto& spc : proto::system_priority_classes())
    if (spc.metadata.name == name)
      return forbidden_for("priorityclasses", "scheduling.k8s.io", name,
                           "this is a system priority class and cannot be deleted");
  return std::nullopt;
}

std::optional<ApiError> ApiImpl::admit_priority(const proto::ResourceType& rt, json& obj,
                                                const json* old) {
  if (is_pod_resource(rt)) {
    if (old) {
      keep_pod_priority(obj, *old);
      return std::nullopt;
    }
    const proto::ResourceType* pcs = reg_.find("scheduling.k8s.io", "v1", "priorityclasses");
    if (pcs == nullptr) return std::nullopt;
    auto known = priority_classes_known();
    return admit_pod_priority(*store_, *pcs, obj, known.get());
  }
  if (is_priorityclass_resource(rt)) return admit_priorityclass(*store_, rt, obj);
  return std::nullopt;
}

bool ApiImpl::init_priority_classes(std::string* error) {
  const proto::ResourceType* pcs = reg_.find("scheduling.k8s.io", "v1", "priorityclasses");
  if (pcs == nullptr) return true;
  for (const auto& spc : proto::system_priority_classes()) {
    const std::string& name = spc.metadata.name;
    auto existing = store_->get(object_key(*pcs, "", name));
    if (existing.is_ok()) continue;
    if (existing.status().code() != Code::kNotFound) {
      if (error) *error = "reading PriorityClass " + name + ": " + existing.status().to_string();
      return false;
    }
    auto norm = normalize(proto::encode(spc), *pcs, WriteOptions{}, nullptr);
    if (!norm.ok()) {
      if (error) *error = "creating PriorityClass " + name + ": " + norm.error().message;
      return false;
    }
    auto made = create_object(*pcs, "", std::move(norm.value()), WriteOptions{});
    if (!made.ok() && made.error().code != 409) {
      if (error) *error = "creating PriorityClass " + name + ": " + made.error().message;
      return false;
    }
  }
  return true;
}

}  // namespace skiff::apiserver
