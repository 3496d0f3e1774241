#include "proto/kind_util.h"

namespace skiff::proto {

void not_supported(FieldErrors& errs, const Path& p, const std::string& v,
                   std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (v == a) return;
  std::string detail = "supported values: ";
  bool first = true;
  for (const char* a : allowed) {
    detail += (first ? "" : ", ") + quote_value(a);
    first = false;
  }
  errs.push_back({ErrorType::kNotSupported, p.str(), detail, quote_value(v)});
}

void required_one_of(FieldErrors& errs, const Path& p, const std::string& v,
                     std::initializer_list<const char*> allowed) {
  if (v.empty())
    errs.push_back({ErrorType::kRequired, p.str(), "", ""});
  else
    not_supported(errs, p, v, allowed);
}

void non_negative(FieldErrors& errs, const Path& p, int64_t v) {
  if (v < 0)
    errs.push_back(
        {ErrorType::kInvalid, p.str(), "must be greater than or equal to 0", std::to_string(v)});
}

void immutable(FieldErrors& errs, const Path& p, const std::string& now,
               const std::string& before) {
  if (now != before)
    errs.push_back({ErrorType::kInvalid, p.str(), "field is immutable", quote_value(now)});
}

std::string format_labels(const std::map<std::string, std::string>& m) {
  if (m.empty()) return "<none>";
  std::string out;
  for (const auto& [k, v] : m) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

std::string go_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string go_string_slice(const std::vector<std::string>& v) {
  if (v.empty()) return "[]string(nil)";
  std::string out = "[]string{";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + go_quote(v[i]);
  return out + "}";
}

}  // namespace skiff::proto
