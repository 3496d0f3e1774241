#include "proto/statefulset.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

json statefulset_row(const StatefulSet& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
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
  k.type.columns = {name_column(), age_column()};
  k.row = statefulset_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
