#include "proto/codec.h"

namespace skiff::proto {

std::string FieldError::reason() const {
  switch (type) {
    case ErrorType::kRequired: return "FieldValueRequired";
    case ErrorType::kInvalid: return "FieldValueInvalid";
    case ErrorType::kNotSupported: return "FieldValueNotSupported";
    case ErrorType::kDuplicate: return "FieldValueDuplicate";
    case ErrorType::kTooLong: return "FieldValueTooLong";
    case ErrorType::kTooMany: return "FieldValueTooMany";
    case ErrorType::kForbidden: return "FieldValueForbidden";
    case ErrorType::kTypeInvalid: return "FieldValueTypeInvalid";
    case ErrorType::kUnknownField: return "FieldValueUnknown";
  }
  return "FieldValueInvalid";
}

std::string FieldError::message() const {
  auto with_value = [&](const char* what) {
    std::string m = what;
    if (!value.empty()) m += ": " + value;
    if (!detail.empty()) m += ": " + detail;
    return m;
  };
  switch (type) {
    case ErrorType::kRequired:
      return detail.empty() ? "Required value" : "Required value: " + detail;
    case ErrorType::kInvalid: return with_value("Invalid value");
    case ErrorType::kNotSupported: return with_value("Unsupported value");
    case ErrorType::kDuplicate: return with_value("Duplicate value");
    case ErrorType::kTooLong: return with_value("Too long");
    case ErrorType::kTooMany: return with_value("Too many");
    case ErrorType::kForbidden:
      return detail.empty() ? "Forbidden" : "Forbidden: " + detail;
    case ErrorType::kTypeInvalid: return with_value("Invalid value");
    case ErrorType::kUnknownField: return "unknown field \"" + field + "\"";
  }
  return detail;
}

namespace detail {

std::string json_type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    case json::value_t::string: return "string";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    default: return "unknown";
  }
}

void type_error(FieldErrors& errs, const Path& path, const char* want, const json& got) {
  std::string shown = got.dump();
  if (shown.size() > 64) shown = shown.substr(0, 61) + "...";
  errs.push_back({ErrorType::kTypeInvalid, path.str(),
                  std::string("expected ") + want + ", got " + json_type_name(got), shown});
}

void report_unknown_fields(const json& j, const Schema& schema, const Path& path,
                           FieldErrors& errs) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (schema.find(it.key())) continue;
    // apiVersion/kind ride along on every top-level object; TypeMeta handles them where typed.
    errs.push_back({ErrorType::kUnknownField, path.field(it.key()).str(), "", ""});
  }
}

}  // namespace detail
}  // namespace skiff::proto
