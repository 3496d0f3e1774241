#include "proto/lease.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

void validate_lease(const Lease& l, const Lease*, FieldErrors& errs) {
  const Path spec("spec");
  if (l.spec.lease_duration_seconds && *l.spec.lease_duration_seconds <= 0)
    errs.push_back({ErrorType::kInvalid, spec.field("leaseDurationSeconds").str(),
                    "must be greater than 0", std::to_string(*l.spec.lease_duration_seconds)});
  if (l.spec.lease_transitions)
    non_negative(errs, spec.field("leaseTransitions"), *l.spec.lease_transitions);
}

json lease_row(const Lease& l, Clock::time_point now) {
  return json::array({l.metadata.name, l.spec.holder_identity.value_or(""),
                      since(l.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType lease_resource() {
  KindSpec<Lease> k;
  k.type.group = "coordination.k8s.io";
  k.type.version = "v1";
  k.type.kind = "Lease";
  k.type.list_kind = "LeaseList";
  k.type.plural = "leases";
  k.type.singular = "lease";
  k.type.columns = {name_column(), column("Holder", "string", "Name of the lease holder"),
                    age_column()};
  k.validate = validate_lease;
  k.row = lease_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
