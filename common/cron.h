// Cron schedules and IANA time zones, as Kubernetes' CronJob reads them.
//
// Schedule is robfig/cron v3's ParseStandard (the parser Kubernetes validates spec.schedule with
// and its CronJob controller schedules by): five fields `minute hour day-of-month month
// day-of-week`, each a comma list of `*`, `?`, `N`, `A-B`, with an optional `/step` (`N/step`
// means `N-max/step`); month names JAN-DEC and day names SUN-SAT in any case; when both
// day-of-month and day-of-week are restricted (neither starts with `*` or `?`) a day matching
// either runs (the classic cron OR rule). Descriptors `@yearly @annually @monthly @weekly @daily
// @midnight @hourly`. A `TZ=Zone ` or `CRON_TZ=Zone ` prefix is parsed as robfig does (the API
// validation refuses it; see proto/cronjob.cc). Errors are robfig's words ("expected exactly 5
// fields, found 1: [x]", "end of range (60) above maximum (59): 60"). `@every <duration>` (Go's
// time.ParseDuration syntax: "90s", "1h30m", "1.5h") is robfig's ConstantDelaySchedule: the
// duration truncated to whole seconds, at least 1 s, added to the time truncated to the second.
//
// Schedule::next(t) is robfig's SpecSchedule.Next in a zone, with its daylight-saving semantics
// (robfig/cron v3 spec_test.go): a wall-clock time skipped by a spring-forward transition does
// not run that day ("0 2 * * *" on 2012-03-11 in America/New_York runs next on 03-12), an hourly
// schedule runs at the first hour after the jump, and a wall-clock time repeated by a fall-back
// transition runs twice (once per UTC instant).
//
// TimeZone reads TZif files (RFC 8536; version 2+ 64-bit data, else version 1) from the zoneinfo
// directory ($ZONEINFO, else /usr/share/zoneinfo) and applies the POSIX TZ footer rule after the
// last transition. libstdc++ 12 has no std::chrono::tzdb, hence this reader.
//
// Values are immutable once built and safe to share between threads; TimeZone::load caches.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::cron {

using Clock = std::chrono::system_clock;

// A broken-down wall-clock time (proleptic Gregorian); weekday 0 = Sunday.
struct Civil {
  int64_t year = 1970;
  int month = 1, day = 1, hour = 0, minute = 0, second = 0, weekday = 4;
};

// Days since 1970-01-01 of a date; month and day may overflow and are normalised as Go's
// time.Date does (month 13 = January of the next year, day 0 = the last day of the month
// before).
int64_t days_from_civil(int64_t year, int64_t month, int64_t day);
// The wall-clock fields of `unix` seconds shifted by `offset` seconds east of UTC.
Civil civil_at(int64_t unix, int32_t offset);

class TimeZone {
 public:
  // The zone named `name` ("America/New_York"), from `$ZONEINFO` or /usr/share/zoneinfo.
  // "UTC" (and "") need no file. Failure: NotFound "unknown time zone NAME" (Go's words) when
  // the name is malformed or no such file exists; Invalid when the file is not TZif.
  // Loaded zones are cached for the life of the process.
  static Result<std::shared_ptr<const TimeZone>> load(const std::string& name);
  // The same, from an explicit zoneinfo directory (uncached; tests).
  static Result<std::shared_ptr<const TimeZone>> load_from(const std::string& dir,
                                                           const std::string& name);
  // A zone from the bytes of a TZif file.
  static Result<std::shared_ptr<const TimeZone>> from_tzif(std::string name, std::string_view data);
  // A zone following a POSIX TZ rule only ("EST5EDT,M3.2.0,M11.1.0").
  static Result<std::shared_ptr<const TimeZone>> from_posix(std::string name,
                                                            std::string_view rule);
  static std::shared_ptr<const TimeZone> utc();
  // The process's local zone as Go's time.Local finds it: $TZ (unset: /etc/localtime; empty:
  // UTC; a name or a POSIX rule), falling back to UTC when nothing can be read.
  static std::shared_ptr<const TimeZone> local();

  const std::string& name() const { return name_; }
  // Seconds east of UTC in effect at `unix`.
  int32_t offset_at(int64_t unix) const;
  // The instant of a wall-clock time, resolved as Go's time.Date does: the offset in effect at
  // the wall time read as UTC, corrected once by the offset at the instant that gives. Fields
  // may overflow (normalised as days_from_civil). A time skipped by a spring-forward
  // transition and one repeated by a fall-back transition resolve to one instant each, which
  // one depending on the offsets (as in Go; robfig's DST behaviour follows from it).
  int64_t to_unix(int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                  int64_t second) const;

  struct LocalType {
    int32_t offset = 0;
    bool dst = false;
  };
  struct PosixRule;  // defined in cron.cc

  ~TimeZone();
  TimeZone(const TimeZone&) = delete;
  TimeZone& operator=(const TimeZone&) = delete;

 private:
  TimeZone();
  std::string name_;
  std::vector<int64_t> transitions_;      // ascending instants
  std::vector<uint8_t> transition_type_;  // index into types_, one per transition
  std::vector<LocalType> types_;
  std::unique_ptr<PosixRule> rule_;  // for instants after the last transition
};

// Go's time.ParseDuration in whole nanoseconds ("1h30m", "1.5h", "-90s", "300ms", "0"); Invalid
// with Go's message (`time: unknown unit "d" in duration "5d"`).
Result<int64_t> parse_go_duration(std::string_view s);

class Schedule {
 public:
  // robfig/cron v3 ParseStandard (see the file comment). Invalid with robfig's message.
  static Result<Schedule> parse(std::string_view spec);

  // The first activation strictly after `t` (whole seconds; robfig's Next), computed in the
  // schedule's own TZ= zone if it has one, else in `zone`. nullopt when nothing matches within
  // five years (e.g. "0 0 30 2 *").
  std::optional<Clock::time_point> next(Clock::time_point t, const TimeZone& zone) const;

  // The zone named by a TZ=/CRON_TZ= prefix, or null.
  const std::shared_ptr<const TimeZone>& zone() const { return zone_; }

 private:
  bool day_matches(const Civil& c) const;
  int64_t every_seconds_ = 0;  // > 0: an @every schedule, no fields
  uint64_t second_ = 0, minute_ = 0, hour_ = 0, dom_ = 0, month_ = 0, dow_ = 0;
  std::shared_ptr<const TimeZone> zone_;
};

}  // namespace skiff::cron
