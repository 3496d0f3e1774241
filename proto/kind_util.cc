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

namespace {
int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string base64_problem(const std::string& s) {
  // Go's encoding/base64 StdEncoding: groups of 4, '=' padding only at the end.
  size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    char c = s[i];
    if (c == '=') {
      size_t pad = n - i;
      bool ok = n % 4 == 0 && pad <= 2 && i % 4 >= 2 && (pad == 1 || s[i + 1] == '=');
      if (!ok) return "illegal base64 data at input byte " + std::to_string(i);
      return "";
    }
    if (b64_value(c) < 0) return "illegal base64 data at input byte " + std::to_string(i);
  }
  if (n % 4 != 0) return "illegal base64 data at input byte " + std::to_string(n - n % 4);
  return "";
}

std::string base64_encode(const std::string& raw) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < raw.size(); i += 3) {
    uint32_t v = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8) | uint8_t(raw[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == raw.size()) {
    uint32_t v = uint8_t(raw[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == raw.size()) {
    uint32_t v = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace skiff::proto
