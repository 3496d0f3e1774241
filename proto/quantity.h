// Quantity: Kubernetes' resource amounts ("250m", "1.5Gi", "128Mi", "1e3").
//
// A quantity is an exact decimal number with a format remembered from the suffix it was
// written with (binary SI "Ki".."Ei", decimal SI "n".."E", or a decimal exponent "e3"). It is
// held as a count of nano-units in 128 bits, which covers every value Kubernetes objects carry
// (up to ~1.7e29); finer precision is rounded up to 1n, as Kubernetes does. Serialization is
// Kubernetes' canonical form, so "1.5Gi" is written back as "1536Mi" and "0.5" as "500m".
//
// Value type; thread-compatible.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "proto/codec.h"

namespace skiff::proto {

class Quantity {
 public:
  enum class Format { kDecimalSI, kBinarySI, kDecimalExponent };

  Quantity() = default;
  // Parses Kubernetes' quantity syntax: <sign><digits>[.<digits>][<suffix>]. On failure the
  // message is Kubernetes' ("quantities must match the regular expression ...").
  static Result<Quantity> parse(std::string_view s);
  static Quantity from_milli(int64_t milli, Format f = Format::kDecimalSI);
  static Quantity from_int(int64_t v, Format f = Format::kDecimalSI);

  // The canonical string ("0" for zero).
  std::string to_string() const;
  // The value in thousandths, rounded up (Kubernetes' MilliValue); saturates at int64 limits.
  int64_t milli_value() const;
  // The value rounded up to an integer (Kubernetes' Value); saturates.
  int64_t value() const;
  bool is_zero() const { return nanos_ == 0; }
  Format format() const { return format_; }

  // Sum; keeps this quantity's format (as Kubernetes' Add does).
  Quantity operator+(const Quantity& o) const;
  Quantity operator-(const Quantity& o) const;
  // Compares values only; the format does not matter ("1Ki" == "1024").
  std::strong_ordering operator<=>(const Quantity& o) const { return nanos_ <=> o.nanos_; }
  bool operator==(const Quantity& o) const { return nanos_ == o.nanos_; }

 private:
  __int128 nanos_ = 0;
  Format format_ = Format::kDecimalSI;
};

template <>
struct Scalar<Quantity> {
  static bool decode(const json& j, Quantity& out, std::string& err);
  static json encode(const Quantity& q) { return q.to_string(); }
  // Go never omits a struct, and Quantity is one ("divisor": "0" is written).
  static bool empty(const Quantity&) { return false; }
};

}  // namespace skiff::proto
