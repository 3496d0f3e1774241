#include "proto/quantity.h"

#include <algorithm>
#include <limits>

namespace skiff::proto {
namespace {

using i128 = __int128;
constexpr i128 kNano = 1'000'000'000;

const char kFormatWrong[] =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

i128 pow10(int n) {
  i128 r = 1;
  while (n-- > 0) r *= 10;
  return r;
}

bool mul_ok(i128 a, i128 b, i128& out) { return !__builtin_mul_overflow(a, b, &out); }

// Divides rounding away from zero: Kubernetes rounds sub-nano amounts up to 1n.
i128 div_up(i128 a, i128 b) {
  i128 q = a / b;
  if (a % b != 0) q += a < 0 ? -1 : 1;
  return q;
}

std::string i128_to_string(i128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  std::string s;
  // Work with negative remainders so the most negative value needs no special case.
  while (v != 0) {
    int d = static_cast<int>(v % 10);
    s.push_back(static_cast<char>('0' + (d < 0 ? -d : d)));
    v /= 10;
  }
  if (neg) s.push_back('-');
  std::reverse(s.begin(), s.end());
  return s;
}

int64_t saturate(i128 v) {
  if (v > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (v < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

struct Suffix {
  int base10_exp = 0;  // power of ten
  int base2_exp = 0;   // power of two (multiple of 10)
  Quantity::Format format = Quantity::Format::kDecimalSI;
};

bool interpret_suffix(std::string_view s, Suffix& out) {
  static const struct {
    std::string_view name;
    int e10, e2;
  } kTable[] = {{"", 0, 0},    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},
                {"k", 3, 0},   {"M", 6, 0},   {"G", 9, 0},   {"T", 12, 0},
                {"P", 15, 0},  {"E", 18, 0},  {"Ki", 0, 10}, {"Mi", 0, 20},
                {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60}};
  for (const auto& e : kTable) {
    if (e.name != s) continue;
    out.base10_exp = e.e10;
    out.base2_exp = e.e2;
    out.format = e.e2 ? Quantity::Format::kBinarySI : Quantity::Format::kDecimalSI;
    return true;
  }
  // Decimal exponent: e|E followed by a signed integer.
  if (s.size() < 2 || (s[0] != 'e' && s[0] != 'E')) return false;
  std::string_view num = s.substr(1);
  bool neg = false;
  if (num[0] == '+' || num[0] == '-') {
    neg = num[0] == '-';
    num.remove_prefix(1);
  }
  if (num.empty() || num.size() > 3) return false;
  int e = 0;
  for (char c : num) {
    if (c < '0' || c > '9') return false;
    e = e * 10 + (c - '0');
  }
  out.base10_exp = neg ? -e : e;
  out.format = Quantity::Format::kDecimalExponent;
  return true;
}

}  // namespace

Result<Quantity> Quantity::parse(std::string_view s) {
  if (s.empty()) return Status::invalid(kFormatWrong);
  size_t i = 0;
  bool neg = false;
  if (s[i] == '+' || s[i] == '-') {
    neg = s[i] == '-';
    ++i;
  }
  std::string digits;
  int frac_digits = 0;
  bool seen_point = false, seen_digit = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      digits.push_back(c);
      if (seen_point) ++frac_digits;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return Status::invalid(kFormatWrong);
  std::string_view suffix = s.substr(i);
  for (char c : suffix) {
    bool ok = (c >= '0' && c <= '9') || c == '+' || c == '-' ||
              std::string_view("eEinumkKMGTP").find(c) != std::string_view::npos;
    if (!ok) return Status::invalid(kFormatWrong);
  }
  Suffix sfx;
  if (!interpret_suffix(suffix, sfx)) return Status::invalid("unable to parse quantity's suffix");

  // Trailing fractional zeros carry no value; dropping them keeps big inputs in range.
  while (frac_digits > 0 && digits.back() == '0') {
    digits.pop_back();
    --frac_digits;
  }
  size_t lead = digits.find_first_not_of('0');
  digits = lead == std::string::npos ? "0" : digits.substr(lead);
  if (digits.size() > 36) return Status::invalid("quantity is too large: " + std::string(s));
  i128 mant = 0;
  for (char c : digits) mant = mant * 10 + (c - '0');

  i128 v = mant;
  if (sfx.base2_exp && !mul_ok(v, static_cast<i128>(1) << sfx.base2_exp, v))
    return Status::invalid("quantity is too large: " + std::string(s));
  int e10 = sfx.base10_exp - frac_digits + 9;  // to nano-units
  if (e10 >= 0) {
    if (e10 > 38 || !mul_ok(v, pow10(e10), v))
      return Status::invalid("quantity is too large: " + std::string(s));
  } else {
    v = -e10 > 38 ? (v != 0 ? 1 : 0) : div_up(v, pow10(-e10));
  }
  Quantity q;
  q.nanos_ = neg ? -v : v;
  q.format_ = sfx.format;
  return q;
}

Quantity Quantity::from_milli(int64_t milli, Format f) {
  Quantity q;
  q.nanos_ = static_cast<i128>(milli) * 1'000'000;
  q.format_ = f;
  return q;
}

Quantity Quantity::from_int(int64_t v, Format f) {
  Quantity q;
  q.nanos_ = static_cast<i128>(v) * kNano;
  q.format_ = f;
  return q;
}

int64_t Quantity::milli_value() const { return saturate(div_up(nanos_, 1'000'000)); }
int64_t Quantity::value() const { return saturate(div_up(nanos_, kNano)); }

Quantity Quantity::operator+(const Quantity& o) const {
  Quantity q = *this;
  q.nanos_ += o.nanos_;
  return q;
}

Quantity Quantity::operator-(const Quantity& o) const {
  Quantity q = *this;
  q.nanos_ -= o.nanos_;
  return q;
}

// Mirrors apimachinery's CanonicalizeBytes: binary SI only for integers of at least 1024 in
// magnitude (smaller or fractional values would lose precision or read oddly), otherwise a
// mantissa with an exponent that is a multiple of three.
std::string Quantity::to_string() const {
  if (nanos_ == 0) return "0";
  Format f = format_;
  if (f == Format::kBinarySI) {
    if ((nanos_ > -1024 * kNano && nanos_ < 1024 * kNano) || nanos_ % kNano != 0)
      f = Format::kDecimalSI;
  }
  if (f == Format::kBinarySI) {
    static const char* kBin[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    i128 v = nanos_ / kNano;
    int k = 0;
    while (k < 6 && v % 1024 == 0) {
      v /= 1024;
      ++k;
    }
    return i128_to_string(v) + kBin[k];
  }
  i128 mant = nanos_;
  int exp = -9;
  while (mant % 10 == 0) {
    mant /= 10;
    ++exp;
  }
  int r = ((exp % 3) + 3) % 3;
  mant *= pow10(r);
  exp -= r;
  std::string out = i128_to_string(mant);
  if (f == Format::kDecimalExponent) return exp == 0 ? out : out + "e" + std::to_string(exp);
  switch (exp) {
    case -9:
      return out + "n";
    case -6:
      return out + "u";
    case -3:
      return out + "m";
    case 0:
      return out;
    case 3:
      return out + "k";
    case 6:
      return out + "M";
    case 9:
      return out + "G";
    case 12:
      return out + "T";
    case 15:
      return out + "P";
    case 18:
      return out + "E";
    default:
      return out + "e" + std::to_string(exp);
  }
}

bool Scalar<Quantity>::decode(const json& j, Quantity& out, std::string& err) {
  std::string s;
  if (j.is_string()) {
    s = j.get<std::string>();
    // Kubernetes trims surrounding space before parsing.
    auto b = s.find_first_not_of(" \t\n\r");
    auto e = s.find_last_not_of(" \t\n\r");
    s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  } else if (j.is_number()) {
    s = j.dump();  // YAML "cpu: 1" arrives as a number
  } else {
    err = "expected a quantity string, got " + detail::json_type_name(j);
    return false;
  }
  auto q = Quantity::parse(s);
  if (!q) {
    err = q.status().message();
    return false;
  }
  out = *q;
  return true;
}

}  // namespace skiff::proto
