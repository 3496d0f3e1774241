#include "proto/controllerrevision.h"

#include <cctype>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

// pkg/apis/apps/validation ValidateControllerRevision: revision >= 0, data immutable (the whole
// object but metadata is, in fact: a revision is a snapshot).
void validate_revision(const ControllerRevision& r, const ControllerRevision* old,
                       FieldErrors& errs) {
  non_negative(errs, Path("revision"), r.revision);
  if (!r.data.is_null() && !r.data.is_object())
    errs.push_back({ErrorType::kInvalid, "data", "must be an object", r.data.dump()});
  if (old && old->data != r.data)
    errs.push_back({ErrorType::kInvalid, "data", "field is immutable", ""});
}

// kubectl: NAME CONTROLLER REVISION AGE; CONTROLLER is "<lower-case kind>.<group>/<name>" of the
// controlling owner ("<none>" without one).
json revision_row(const ControllerRevision& r, Clock::time_point now) {
  std::string controller = "<none>";
  for (const auto& o : r.metadata.owner_references) {
    if (!o.controller.value_or(false)) continue;
    auto slash = o.api_version.find('/');
    std::string group = slash == std::string::npos ? "" : o.api_version.substr(0, slash);
    std::string kind = o.kind;
    for (auto& ch : kind) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    controller = kind + (group.empty() ? "" : "." + group) + "/" + o.name;
  }
  return json::array({r.metadata.name, controller, r.revision,
                      since(r.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

}  // namespace

ResourceType controllerrevision_resource() {
  KindSpec<ControllerRevision> k;
  k.type.group = "apps";
  k.type.version = "v1";
  k.type.kind = "ControllerRevision";
  k.type.list_kind = "ControllerRevisionList";
  k.type.plural = "controllerrevisions";
  k.type.singular = "controllerrevision";
  k.type.has_spec = false;
  k.type.columns = {name_column(), column("Controller", "string", "Controller of the object"),
                    column("Revision", "integer", "Revision of the ControllerRevision"),
                    age_column()};
  k.validate = validate_revision;
  k.row = revision_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
