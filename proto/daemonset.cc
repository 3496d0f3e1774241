#include "proto/daemonset.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

json daemonset_row(const DaemonSet& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
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
  k.type.columns = {name_column(), age_column()};
  k.row = daemonset_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
