// Where the kinds meet: the built-in registry and the helpers every kind's Table uses.
#include "proto/registry.h"

#include <algorithm>
#include <cctype>

#include "proto/resource.h"

namespace skiff::proto {

// One line per kind; each is defined in its own type file (pod.cc, service.cc, ...).
ResourceType namespace_resource();
ResourceType pod_resource();
ResourceType node_resource();
ResourceType service_resource();
ResourceType endpoints_resource();
ResourceType configmap_resource();
ResourceType secret_resource();
ResourceType event_resource();
ResourceType lease_resource();
ResourceType replicaset_resource();
ResourceType deployment_resource();
ResourceType statefulset_resource();
ResourceType daemonset_resource();
ResourceType controllerrevision_resource();
ResourceType job_resource();
ResourceType cronjob_resource();
ResourceType persistentvolume_resource();
ResourceType persistentvolumeclaim_resource();
ResourceType storageclass_resource();
ResourceType endpointslice_resource();
ResourceType priorityclass_resource();
ResourceType serviceaccount_resource();
ResourceType role_resource();
ResourceType clusterrole_resource();
ResourceType rolebinding_resource();
ResourceType clusterrolebinding_resource();
ResourceType poddisruptionbudget_resource();

const Registry& Registry::builtin() {
  static const Registry* r = [] {
    auto* reg = new Registry();
    reg->add(namespace_resource());
    reg->add(pod_resource());
    reg->add(node_resource());
    reg->add(service_resource());
    reg->add(endpoints_resource());
    reg->add(configmap_resource());
    reg->add(secret_resource());
    reg->add(event_resource());
    reg->add(lease_resource());
    reg->add(deployment_resource());
    reg->add(replicaset_resource());
    reg->add(statefulset_resource());
    reg->add(daemonset_resource());
    reg->add(controllerrevision_resource());
    reg->add(job_resource());
    reg->add(cronjob_resource());
    reg->add(persistentvolume_resource());
    reg->add(persistentvolumeclaim_resource());
    reg->add(storageclass_resource());
    reg->add(endpointslice_resource());
    reg->add(priorityclass_resource());
    reg->add(serviceaccount_resource());
    reg->add(role_resource());
    reg->add(clusterrole_resource());
    reg->add(rolebinding_resource());
    reg->add(clusterrolebinding_resource());
    reg->add(poddisruptionbudget_resource());
    return reg;
  }();
  return *r;
}

const ResourceType* Registry::find(std::string_view group, std::string_view version,
                                   std::string_view plural) const {
  for (const auto& t : types_)
    if (t.group == group && t.version == version && t.plural == plural) return &t;
  return nullptr;
}

const ResourceType* Registry::by_kind(std::string_view api_version, std::string_view kind) const {
  for (const auto& t : types_)
    if (t.kind == kind && t.api_version() == api_version) return &t;
  return nullptr;
}

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

const ResourceType* Registry::resolve(std::string_view name) const {
  // kubectl's forms: "pods", "pods.apps", "leases.coordination.k8s.io",
  // "leases.v1.coordination.k8s.io"; "pods." and "pods.v1" name the core group.
  auto dot = name.find('.');
  std::string_view res = name.substr(0, dot);
  std::optional<std::string_view> group;
  if (dot != std::string_view::npos) group = name.substr(dot + 1);
  for (const auto& t : types_) {
    if (group) {
      bool g = iequals(*group, t.group) ||
               iequals(*group, t.version + (t.group.empty() ? "" : "." + t.group));
      if (!g) continue;
    }
    if (iequals(res, t.plural) || iequals(res, t.singular) || iequals(res, t.kind)) return &t;
    for (const auto& s : t.short_names)
      if (iequals(res, s)) return &t;
  }
  return nullptr;
}

// kubectl's duration.HumanDuration.
std::string human_duration(std::chrono::system_clock::duration d) {
  using namespace std::chrono;
  int64_t seconds = duration_cast<std::chrono::seconds>(d).count();
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return std::to_string(seconds) + "s";
  int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    return std::to_string(minutes) + "m" + (s ? std::to_string(s) + "s" : "");
  }
  if (minutes < 60 * 3) return std::to_string(minutes) + "m";
  int64_t hours = minutes / 60;
  if (hours < 8) {
    int64_t m = minutes % 60;
    return std::to_string(hours) + "h" + (m ? std::to_string(m) + "m" : "");
  }
  if (hours < 48) return std::to_string(hours) + "h";
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    return std::to_string(hours / 24) + "d" + (h ? std::to_string(h) + "h" : "");
  }
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24) + "d";
  if (hours < 24 * 365 * 8) {
    int64_t dy = hours / 24 % 365;
    return std::to_string(hours / 24 / 365) + "y" + (dy ? std::to_string(dy) + "d" : "");
  }
  return std::to_string(hours / 24 / 365) + "y";
}

std::string since(Clock::time_point t, Clock::time_point now) {
  if (t.time_since_epoch().count() == 0) return "<unknown>";
  return human_duration(now - t);
}

std::string age_of(const json& obj, std::chrono::system_clock::time_point now) {
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return "<unknown>";
  auto ts = md->find("creationTimestamp");
  if (ts == md->end() || !ts->is_string()) return "<unknown>";
  auto t = parse_rfc3339(ts->get<std::string>());
  return t ? since(*t, now) : "<unknown>";
}

std::string json_field_string(const json& obj, std::string_view path) {
  bool boolean = path.starts_with("bool:");
  if (boolean) path.remove_prefix(5);
  const json* cur = &obj;
  while (!path.empty()) {
    auto dot = path.find('.');
    std::string key(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    if (!cur->is_object()) return boolean ? "false" : "";
    auto it = cur->find(key);
    if (it == cur->end()) return boolean ? "false" : "";
    cur = &*it;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  if (cur->is_number()) return cur->dump();
  return boolean ? "false" : "";
}

Column name_column() {
  return Column{"Name", "string", "name",
                "Name must be unique within a namespace. More info: "
                "http://kubernetes.io/docs/user-guide/identifiers#names",
                0};
}

Column age_column() {
  return Column{"Age", "string", "",
                "CreationTimestamp is a timestamp representing the server time when this object "
                "was created.",
                0};
}

Column column(std::string name, std::string type, std::string description, int priority) {
  return Column{std::move(name), std::move(type), "", std::move(description), priority};
}

}  // namespace skiff::proto
