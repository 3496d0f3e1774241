#include "proto/namespace.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

void default_namespace(Namespace& ns) {
  if (ns.spec.finalizers.empty()) ns.spec.finalizers = {"kubernetes"};
  if (ns.status.phase.empty()) ns.status.phase = "Active";
}

void validate_namespace(const Namespace& ns, const Namespace* old, FieldErrors& errs) {
  for (size_t i = 0; i < ns.spec.finalizers.size(); ++i) {
    const auto& f = ns.spec.finalizers[i];
    // "kubernetes" is the one standard finalizer without a domain prefix.
    if (f != "kubernetes")
      add_errors(errs, Path("spec").field("finalizers").index(i), f, is_qualified_name(f));
  }
  if (!ns.status.phase.empty())
    not_supported(errs, Path("status").field("phase"), ns.status.phase, {"Active", "Terminating"});
}

json namespace_row(const Namespace& ns, Clock::time_point now) {
  return json::array({ns.metadata.name, ns.status.phase,
                      since(ns.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType namespace_resource() {
  KindSpec<Namespace> k;
  k.type.version = "v1";
  k.type.kind = "Namespace";
  k.type.list_kind = "NamespaceList";
  k.type.plural = "namespaces";
  k.type.singular = "namespace";
  k.type.namespaced = false;
  k.type.short_names = {"ns"};
  k.type.subresources = {"status", "finalize"};
  k.type.columns = {name_column(), column("Status", "string", "The status of the namespace"),
                    age_column()};
  k.name_rule = is_dns1123_label;
  k.defaults = default_namespace;
  k.validate = validate_namespace;
  k.row = namespace_row;
  k.fields = {{"status.phase", "status.phase"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
