#include "proto/meta.h"

#include "proto/validation.h"

namespace skiff::proto {

std::string quote_value(std::string_view s) { return json(std::string(s)).dump(); }

void validate_object_meta(const ObjectMeta& meta, bool namespaced, NameRule name_rule,
                          FieldErrors& errs) {
  const Path md("metadata");
  if (!meta.generate_name.empty()) {
    // A prefix: the random suffix follows, so a trailing dash is fine.
    std::string_view prefix = meta.generate_name;
    while (!prefix.empty() && prefix.back() == '-') prefix.remove_suffix(1);
    if (!prefix.empty())
      add_errors(errs, md.field("generateName"), meta.generate_name, name_rule(prefix));
  }
  if (meta.name.empty()) {
    if (meta.generate_name.empty())
      errs.push_back(
          {ErrorType::kRequired, md.field("name").str(), "name or generateName is required", ""});
  } else {
    add_errors(errs, md.field("name"), meta.name, name_rule(meta.name));
  }
  if (namespaced) {
    if (meta.namespace_.empty())
      errs.push_back({ErrorType::kRequired, md.field("namespace").str(), "", ""});
    else
      add_errors(errs, md.field("namespace"), meta.namespace_, is_dns1123_label(meta.namespace_));
  } else if (!meta.namespace_.empty()) {
    errs.push_back(
        {ErrorType::kForbidden, md.field("namespace").str(), "not allowed on this type", ""});
  }
  if (meta.generation < 0)
    errs.push_back({ErrorType::kInvalid, md.field("generation").str(),
                    "must be greater than or equal to 0", std::to_string(meta.generation)});
  if (meta.deletion_grace_period_seconds && *meta.deletion_grace_period_seconds < 0)
    errs.push_back({ErrorType::kInvalid, md.field("deletionGracePeriodSeconds").str(),
                    "must be greater than or equal to 0",
                    std::to_string(*meta.deletion_grace_period_seconds)});
  validate_labels(meta.labels, md.field("labels"), errs);
  validate_annotations(meta.annotations, md.field("annotations"), errs);

  int controllers = 0;
  for (size_t i = 0; i < meta.owner_references.size(); ++i) {
    const auto& r = meta.owner_references[i];
    Path p = md.field("ownerReferences").index(i);
    auto need = [&](const std::string& v, const char* field, const char* what) {
      if (v.empty())
        errs.push_back({ErrorType::kInvalid, p.field(field).str(),
                        std::string(what) + " must not be empty", quote_value(v)});
    };
    need(r.api_version, "apiVersion", "version");
    need(r.kind, "kind", "kind");
    need(r.name, "name", "name");
    need(r.uid, "uid", "uid");
    if (r.controller.value_or(false)) ++controllers;
  }
  if (controllers > 1)
    errs.push_back({ErrorType::kInvalid, md.field("ownerReferences").str(),
                    "Only one reference can have Controller set to true", ""});
  for (const auto& f : meta.finalizers)
    add_errors(errs, md.field("finalizers"), f, is_qualified_name(f));
}

void validate_object_meta_update(const ObjectMeta& meta, const ObjectMeta& old, FieldErrors& errs) {
  const Path md("metadata");
  auto immutable = [&](const std::string& now, const std::string& before, const char* field) {
    if (now != before)
      errs.push_back(
          {ErrorType::kInvalid, md.field(field).str(), "field is immutable", quote_value(now)});
  };
  immutable(meta.name, old.name, "name");
  immutable(meta.namespace_, old.namespace_, "namespace");
  // The server fills uid and creationTimestamp from the stored object when a client omits them.
  if (!meta.uid.empty()) immutable(meta.uid, old.uid, "uid");
  if (meta.creation_timestamp && old.creation_timestamp &&
      !(*meta.creation_timestamp == *old.creation_timestamp))
    immutable(meta.creation_timestamp->to_string(), old.creation_timestamp->to_string(),
              "creationTimestamp");
  if (meta.generation < 0)
    errs.push_back({ErrorType::kInvalid, md.field("generation").str(),
                    "must be greater than or equal to 0", std::to_string(meta.generation)});
}

}  // namespace skiff::proto
