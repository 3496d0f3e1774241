// Time and MicroTime: Kubernetes' metav1.Time (RFC 3339 with whole seconds,
// "2026-11-25T10:00:00Z") and metav1.MicroTime (six fractional digits,
// "2026-11-25T10:00:00.123456Z", used by Lease.spec.renewTime and Event.eventTime).
//
// Both wrap a system_clock time_point; the epoch itself stands for Go's zero time, which is
// encoded as JSON null (Go writes `"lastProbeTime": null` for an unset non-pointer Time).
// Parsing accepts any RFC 3339 form: fractions of any length and numeric offsets. Value types;
// thread-compatible.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "proto/codec.h"

namespace skiff::proto {

using Clock = std::chrono::system_clock;

// Parses an RFC 3339 timestamp; nullopt if malformed or outside what the clock holds (its
// nanoseconds span 1677-09-21 to 2262-04-11; kTimeRange says so in errors).
std::optional<Clock::time_point> parse_rfc3339(std::string_view s);
inline constexpr const char* kTimeRange = "years 1678 to 2261";

// The most whole seconds either side of the epoch a clock counting `Duration` holds, with room
// left for a fraction: for system_clock's nanoseconds 2262-04-11T23:47:15Z and its mirror.
template <class Duration>
inline constexpr int64_t kSecondsRange =
    std::chrono::duration_cast<std::chrono::seconds>(Duration::max()).count() - 1;

// `t + secs`, saturated near the ends of t's clock. API objects carry int64 seconds (grace
// periods, deadlines, timeouts) and times up to 2262; a sum past the clock's 292 years would
// otherwise overflow its nanoseconds (undefined behaviour; in practice a time in the past).
template <class TimePoint>
TimePoint plus_seconds(TimePoint t, int64_t secs) {
  using Duration = typename TimePoint::duration;
  constexpr int64_t limit = kSecondsRange<Duration>;
  const Duration since = t.time_since_epoch();
  const int64_t whole = std::chrono::floor<std::chrono::seconds>(since).count();
  // Saturated at whole seconds the parser reads back (the clock's own max prints as :16Z).
  if (secs > 0 && whole > limit - secs)
    return TimePoint(std::chrono::duration_cast<Duration>(std::chrono::seconds(limit)));
  if (secs < 0 && whole < -limit - secs)
    return TimePoint(std::chrono::duration_cast<Duration>(std::chrono::seconds(-limit)));
  const Duration rest = since - std::chrono::duration_cast<Duration>(std::chrono::seconds(whole));
  return TimePoint(std::chrono::duration_cast<Duration>(std::chrono::seconds(whole + secs)) + rest);
}

// An API object's int64 seconds as a duration that a nanosecond clock can add to "now":
// clamped to +-100 years (a grace period or timeout that long never ends in practice).
inline std::chrono::seconds capped_seconds(int64_t s) {
  constexpr int64_t kMax = 100LL * 366 * 86400;
  return std::chrono::seconds(s > kMax ? kMax : s < -kMax ? -kMax : s);
}

// "2026-11-25T10:00:00Z" (fraction_digits 0) or with 1..9 fractional digits, always UTC.
std::string format_rfc3339(Clock::time_point t, int fraction_digits = 0);

struct Time {
  Clock::time_point value{};
  static Time now();  // truncated to seconds, as Kubernetes stores it
  static Time at(Clock::time_point t) { return Time{t}; }
  bool is_zero() const { return value.time_since_epoch().count() == 0; }
  std::string to_string() const { return format_rfc3339(value, 0); }
  bool operator==(const Time&) const = default;
};

struct MicroTime {
  Clock::time_point value{};
  static MicroTime now();  // truncated to microseconds
  static MicroTime at(Clock::time_point t) { return MicroTime{t}; }
  bool is_zero() const { return value.time_since_epoch().count() == 0; }
  std::string to_string() const { return format_rfc3339(value, 6); }
  bool operator==(const MicroTime&) const = default;
};

template <>
struct Scalar<Time> {
  static bool decode(const json& j, Time& out, std::string& err);
  static json encode(const Time& t) { return t.is_zero() ? json(nullptr) : json(t.to_string()); }
  static bool empty(const Time&) { return false; }  // Go struct: written (as null when zero)
};

template <>
struct Scalar<MicroTime> {
  static bool decode(const json& j, MicroTime& out, std::string& err);
  static json encode(const MicroTime& t) {
    return t.is_zero() ? json(nullptr) : json(t.to_string());
  }
  static bool empty(const MicroTime&) { return false; }
};

}  // namespace skiff::proto
