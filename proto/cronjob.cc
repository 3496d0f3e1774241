#include "proto/cronjob.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

json cronjob_row(const CronJob& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType cronjob_resource() {
  KindSpec<CronJob> k;
  k.type.group = "batch";
  k.type.version = "v1";
  k.type.kind = "CronJob";
  k.type.list_kind = "CronJobList";
  k.type.plural = "cronjobs";
  k.type.singular = "cronjob";
  k.type.namespaced = true;
  k.type.short_names = {"cj"};
  k.type.categories = {"all"};
  k.type.subresources = {"status"};
  k.type.columns = {name_column(), age_column()};
  k.row = cronjob_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
