// Building a ResourceType from a typed kind: each kind file fills a KindSpec<T> with its typed
// hooks and make_resource() wraps them into the JSON-level functions of registry.h
// (decode -> typed work -> encode). Included only by kind .cc files and registry.cc.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/meta.h"
#include "proto/registry.h"
#include "proto/validation.h"

namespace skiff::proto {

template <class T>
struct KindSpec {
  ResourceType type;  // names, scope, columns; the functions are filled by make_resource
  NameRule name_rule = is_dns1123_subdomain;
  void (*defaults)(T& obj) = nullptr;
  // Kind-specific rules beyond metadata; `old` is the stored object on update, else nullptr.
  void (*validate)(const T& obj, const T* old, FieldErrors& errs) = nullptr;
  // All cells of one Table row, in the order of type.columns.
  json (*row)(const T& obj, Clock::time_point now) = nullptr;
  // Field-selector fields beyond metadata.name/namespace: {selector field, JSON dotted path};
  // a path prefixed "bool:" names a boolean that reads "false" when absent (Go omitempty).
  std::vector<std::pair<std::string, std::string>> fields;
};

// The value at a dotted JSON path as a field selector sees it: strings as they are, booleans
// "true"/"false", numbers in decimal, absent fields "" (or "false" with a "bool:" prefix).
std::string json_field_string(const json& obj, std::string_view dotted_path);
// "5m" since `t`, or "<unknown>" for the zero time (kubectl's translateTimestampSince).
std::string since(Clock::time_point t, Clock::time_point now);
// "<none>" for an empty string, else the string.
inline std::string or_none(const std::string& s) { return s.empty() ? "<none>" : s; }
// A Name column (format "name"), an Age column, and a plain column.
Column name_column();
Column age_column();
Column column(std::string name, std::string type, std::string description, int priority = 0);

template <class T>
ResourceType make_resource(KindSpec<T> k) {
  ResourceType rt = std::move(k.type);
  rt.schema = &schema_of<T>();
  const std::string api_version = rt.api_version(), kind = rt.kind;
  const bool namespaced = rt.namespaced;

  rt.normalize = [api_version, kind](const json& in, FieldErrors& errs, const DecodeOptions& opts) {
    T obj = decode<T>(in, errs, opts);
    obj.type_meta.api_version = api_version;
    obj.type_meta.kind = kind;
    return encode(obj);
  };
  rt.apply_defaults = [defaults = k.defaults](json& obj) {
    if (!defaults) return;
    FieldErrors ignored;
    T t = decode<T>(obj, ignored, DecodeOptions{.report_unknown = false});
    defaults(t);
    obj = encode(t);
  };
  rt.validate = [namespaced, name_rule = k.name_rule, validate = k.validate](const json& obj,
                                                                             const json* old) {
    FieldErrors errs;
    const DecodeOptions lenient{.report_unknown = false};
    T t = decode<T>(obj, errs, lenient);
    validate_object_meta(t.metadata, namespaced, name_rule, errs);
    std::optional<T> o;
    if (old) {
      FieldErrors ignored;
      o = decode<T>(*old, ignored, lenient);
      validate_object_meta_update(t.metadata, o->metadata, errs);
    }
    if (validate) validate(t, o ? &*o : nullptr, errs);
    return errs;
  };
  rt.row_cells = [row = k.row](const json& obj, Clock::time_point now) {
    FieldErrors ignored;
    return row(decode<T>(obj, ignored, DecodeOptions{.report_unknown = false}), now);
  };
  rt.field_value = [fields = std::move(k.fields)](
                       const json& obj, std::string_view field) -> std::optional<std::string> {
    if (field == "metadata.name") return json_field_string(obj, "metadata.name");
    if (field == "metadata.namespace") return json_field_string(obj, "metadata.namespace");
    for (const auto& [name, path] : fields)
      if (name == field) return json_field_string(obj, path);
    return std::nullopt;
  };
  return rt;
}

}  // namespace skiff::proto
