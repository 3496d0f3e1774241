#include "proto/scale.h"

#include "proto/replicaset.h"

namespace skiff::proto {

Scale scale_of(const json& parent) {
  FieldErrors ignored;
  const DecodeOptions lenient{.report_unknown = false};
  Scale s;
  if (auto m = parent.find("metadata"); m != parent.end()) {
    ObjectMeta pm = decode<ObjectMeta>(*m, ignored, lenient);
    s.metadata.name = pm.name;
    s.metadata.namespace_ = pm.namespace_;
    s.metadata.uid = pm.uid;
    s.metadata.resource_version = pm.resource_version;
    s.metadata.creation_timestamp = pm.creation_timestamp;
  }
  auto int_at = [&](const char* obj, const char* field) -> int32_t {
    auto o = parent.find(obj);
    if (o == parent.end() || !o->is_object()) return 0;
    auto f = o->find(field);
    return f != o->end() && f->is_number_integer() ? f->get<int32_t>() : 0;
  };
  s.spec.replicas = int_at("spec", "replicas");
  s.status.replicas = int_at("status", "replicas");
  if (auto sp = parent.find("spec"); sp != parent.end() && sp->is_object()) {
    if (auto sel = sp->find("selector"); sel != sp->end() && sel->is_object())
      s.status.selector = label_selector_string(decode<LabelSelectorSpec>(*sel, ignored, lenient));
  }
  return s;
}

FieldErrors validate_scale(const Scale& s) {
  FieldErrors errs;
  if (s.spec.replicas < 0)
    errs.push_back({ErrorType::kInvalid, "spec.replicas", "must be greater than or equal to 0",
                    std::to_string(s.spec.replicas)});
  return errs;
}

}  // namespace skiff::proto
