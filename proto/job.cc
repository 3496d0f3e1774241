#include "proto/job.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

json job_row(const Job& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType job_resource() {
  KindSpec<Job> k;
  k.type.group = "batch";
  k.type.version = "v1";
  k.type.kind = "Job";
  k.type.list_kind = "JobList";
  k.type.plural = "jobs";
  k.type.singular = "job";
  k.type.namespaced = true;
  k.type.short_names = {};
  k.type.categories = {"all"};
  k.type.subresources = {"status"};
  k.type.columns = {name_column(), age_column()};
  k.row = job_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
