#include "proto/time.h"

#include <cstdio>

namespace skiff::proto {
namespace {

// Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian, no time zone files.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// The fields of YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) as seconds since the epoch (UTC)
// and nanoseconds; false if malformed. Years 0000-9999, as Go's time package reads them.
bool parse_fields(std::string_view s, int64_t& secs_out, int64_t& nanos_out) {
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > static_cast<int>(days_in_month(y, mo)) || h > 23 ||
      mi > 59 || sec > 59)
    return false;
  size_t i = 19;
  int64_t nanos = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    int64_t scale = 100'000'000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      nanos += (s[i] - '0') * scale;  // digits past nanoseconds are dropped
      scale /= 10;
      ++i;
    }
    if (i == start) return false;
  }
  if (i >= s.size()) return false;
  int64_t offset = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om;
    if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !digits(s, i + 4, 2, om) || oh > 23 || om > 59)
      return false;
    offset = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return false;
  }
  if (i != s.size()) return false;
  secs_out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
  nanos_out = nanos;
  return true;
}

template <class Duration>
Clock::time_point truncate(Clock::time_point t) {
  auto d = std::chrono::floor<Duration>(t.time_since_epoch());
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(d));
}

template <class T, class Duration>
bool decode_time(const json& j, T& out, std::string& err) {
  if (!j.is_string()) {
    err = "expected an RFC 3339 time string, got " + detail::json_type_name(j);
    return false;
  }
  auto s = j.get<std::string>();
  if (s.empty()) {  // Go accepts "" as the zero time
    out = T{};
    return true;
  }
  auto t = parse_rfc3339(s);
  if (!t) {
    int64_t secs = 0, nanos = 0;
    err = parse_fields(s, secs, nanos)
              ? std::string("time out of the range skiff stores (") + kTimeRange + ")"
              : "invalid RFC 3339 time";
    return false;
  }
  out = T{truncate<Duration>(*t)};
  return true;
}

}  // namespace

std::optional<Clock::time_point> parse_rfc3339(std::string_view s) {
  int64_t secs = 0, nanos = 0;
  if (!parse_fields(s, secs, nanos)) return std::nullopt;
  // Past the clock's ends the nanoseconds would overflow (year 3000 came back as 1830).
  constexpr int64_t limit = kSecondsRange<Clock::duration>;
  if (secs > limit || secs < -limit) return std::nullopt;
  auto dur = std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos);
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(dur));
}

std::string format_rfc3339(Clock::time_point t, int fraction_digits) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns >= 0 ? ns / 1'000'000'000 : -((-ns + 999'999'999) / 1'000'000'000);
  int64_t frac = ns - secs * 1'000'000'000;
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  int64_t rem = secs - days * 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                        static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
  std::string out(buf, n);
  if (fraction_digits > 0) {
    if (fraction_digits > 9) fraction_digits = 9;
    char fb[32];
    std::snprintf(fb, sizeof fb, "%09lld", static_cast<long long>(frac));
    out += ".";
    out.append(fb, fraction_digits);
  }
  out += "Z";
  return out;
}

Time Time::now() { return Time{truncate<std::chrono::seconds>(Clock::now())}; }
MicroTime MicroTime::now() { return MicroTime{truncate<std::chrono::microseconds>(Clock::now())}; }

bool Scalar<Time>::decode(const json& j, Time& out, std::string& err) {
  return decode_time<Time, std::chrono::seconds>(j, out, err);
}
bool Scalar<MicroTime>::decode(const json& j, MicroTime& out, std::string& err) {
  return decode_time<MicroTime, std::chrono::microseconds>(j, out, err);
}

}  // namespace skiff::proto
