#include "proto/configmap.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

constexpr size_t kMaxConfigMapBytes = 1024 * 1024;  // 1 MiB, as in Kubernetes

void validate_configmap(const ConfigMap& cm, const ConfigMap* old, FieldErrors& errs) {
  size_t total = 0;
  for (const auto& [k, v] : cm.data) {
    add_errors(errs, Path("data").key(k), k, is_config_map_key(k));
    total += v.size();
  }
  for (const auto& [k, v] : cm.binary_data) {
    add_errors(errs, Path("binaryData").key(k), k, is_config_map_key(k));
    if (cm.data.count(k))
      errs.push_back({ErrorType::kInvalid, Path("data").key(k).str(),
                      "duplicate of key present in binaryData", quote_value(k)});
    if (auto p = base64_problem(v); !p.empty())
      errs.push_back({ErrorType::kInvalid, Path("binaryData").key(k).str(), p, ""});
    total += v.size() / 4 * 3;
  }
  if (total > kMaxConfigMapBytes)
    errs.push_back({ErrorType::kTooLong, "", "must have at most 1048576 bytes", ""});
  if (old && old->immutable.value_or(false)) {
    if (!cm.immutable.value_or(false))
      errs.push_back(
          {ErrorType::kForbidden, "immutable", "field is immutable when `immutable` is set", ""});
    if (cm.data != old->data)
      errs.push_back(
          {ErrorType::kForbidden, "data", "field is immutable when `immutable` is set", ""});
    if (cm.binary_data != old->binary_data)
      errs.push_back(
          {ErrorType::kForbidden, "binaryData", "field is immutable when `immutable` is set", ""});
  }
}

json configmap_row(const ConfigMap& cm, Clock::time_point now) {
  return json::array({cm.metadata.name,
                      static_cast<int64_t>(cm.data.size() + cm.binary_data.size()),
                      since(cm.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType configmap_resource() {
  KindSpec<ConfigMap> k;
  k.type.version = "v1";
  k.type.kind = "ConfigMap";
  k.type.list_kind = "ConfigMapList";
  k.type.plural = "configmaps";
  k.type.singular = "configmap";
  k.type.short_names = {"cm"};
  k.type.has_spec = false;
  k.type.columns = {name_column(), column("Data", "string", "Number of keys in the config map"),
                    age_column()};
  k.validate = validate_configmap;
  k.row = configmap_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
