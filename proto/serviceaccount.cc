#include "proto/serviceaccount.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

json serviceaccount_row(const ServiceAccount& sa, Clock::time_point now) {
  return json::array({sa.metadata.name, static_cast<int64_t>(sa.secrets.size()),
                      since(sa.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType serviceaccount_resource() {
  KindSpec<ServiceAccount> k;
  k.type.version = "v1";
  k.type.kind = "ServiceAccount";
  k.type.list_kind = "ServiceAccountList";
  k.type.plural = "serviceaccounts";
  k.type.singular = "serviceaccount";
  k.type.short_names = {"sa"};
  k.type.has_spec = false;
  // kubectl's printers.go: NAME, SECRETS (the number of secrets), AGE.
  k.type.columns = {name_column(),
                    column("Secrets", "string",
                           "Secrets is a list of the secrets in the same namespace that pods "
                           "running using this ServiceAccount are allowed to use."),
                    age_column()};
  k.row = serviceaccount_row;
  // No validate: Kubernetes' ValidateServiceAccount checks only the metadata (name: a DNS-1123
  // subdomain); secrets and imagePullSecrets are references, not checked for existence.
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
