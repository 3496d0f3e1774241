// IntOrString: a field that holds a port number or a named port ("targetPort: 8080" or
// "targetPort: http"), Kubernetes' intstr.IntOrString. Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

#include "proto/codec.h"

namespace skiff::proto {

struct IntOrString {
  bool is_string = false;
  int32_t int_val = 0;
  std::string str_val;

  static IntOrString from_int(int32_t v) { return IntOrString{false, v, {}}; }
  static IntOrString from_string(std::string s) { return IntOrString{true, 0, std::move(s)}; }
  // Go's zero value (int 0) and the empty string both mean "not given".
  bool unset() const { return is_string ? str_val.empty() : int_val == 0; }
  std::string to_string() const { return is_string ? str_val : std::to_string(int_val); }
  bool operator==(const IntOrString&) const = default;
};

template <>
struct Scalar<IntOrString> {
  static bool decode(const json& j, IntOrString& out, std::string& err) {
    if (j.is_string()) {
      out = IntOrString::from_string(j.get<std::string>());
      return true;
    }
    if (j.is_number_integer()) {
      auto v = j.get<int64_t>();
      if (j.is_number_unsigned() && j.get<uint64_t>() > INT32_MAX) v = INT64_MAX;
      if (v < INT32_MIN || v > INT32_MAX) {
        err = "expected an int32 or a string";
        return false;
      }
      out = IntOrString::from_int(static_cast<int32_t>(v));
      return true;
    }
    err = "expected an integer or a string, got " + detail::json_type_name(j);
    return false;
  }
  static json encode(const IntOrString& v) {
    return v.is_string ? json(v.str_val) : json(v.int_val);
  }
  static bool empty(const IntOrString&) { return false; }  // a Go struct: never omitted
};

}  // namespace skiff::proto
