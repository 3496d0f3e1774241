#include "common/cron.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "test/testing.h"

namespace skiff::cron {
namespace {

using std::chrono::seconds;

// "2012-03-11T00:00:00-0500" (or "Z") -> time_point.
Clock::time_point at(const std::string& s) {
  int y, mo, d, h, mi, sec;
  REQUIRE(std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) == 6);
  int64_t off = 0;
  if (s.size() > 19 && s[19] != 'Z') {
    const int hh = std::stoi(s.substr(20, 2)), mm = std::stoi(s.substr(22, 2));
    off = (hh * 3600 + mm * 60) * (s[19] == '-' ? -1 : 1);
  }
  const int64_t unix = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
  return Clock::time_point(seconds(unix));
}

// The instant as "YYYY-MM-DDTHH:MM:SS+hhmm" in `z`.
std::string show(std::optional<Clock::time_point> t, const TimeZone& z) {
  if (!t) return "none";
  const int64_t unix = std::chrono::duration_cast<seconds>(t->time_since_epoch()).count();
  const int32_t off = z.offset_at(unix);
  const Civil c = civil_at(unix, off);
  char buf[64];
  const int a = off < 0 ? -off : off;
  std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02d%02d",
                static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second,
                off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
  return buf;
}

std::string next_in(const std::string& spec, const std::string& from, const TimeZone& z) {
  auto s = Schedule::parse(spec);
  REQUIRE(s.is_ok());
  return show(s->next(at(from), z), z);
}

std::string parse_error(const std::string& spec) {
  auto s = Schedule::parse(spec);
  return s.is_ok() ? "ok" : s.status().message();
}

bool have_tzdata() {
  const char* env = std::getenv("ZONEINFO");
  const std::string dir = env && *env ? env : "/usr/share/zoneinfo";
  return access((dir + "/America/New_York").c_str(), R_OK) == 0 &&
         access((dir + "/Europe/Berlin").c_str(), R_OK) == 0;
}

TEST_CASE("cron: civil time arithmetic normalises like Go's time.Date") {
  CHECK(days_from_civil(1970, 1, 1) == 0);
  CHECK(days_from_civil(2000, 3, 1) == 11017);
  CHECK(days_from_civil(2024, 13, 1) == days_from_civil(2025, 1, 1));
  CHECK(days_from_civil(2024, 3, 0) == days_from_civil(2024, 2, 29));
  const Civil c = civil_at(951782400, 0);  // 2000-02-29T00:00:00Z, a Tuesday
  CHECK(c.year == 2000);
  CHECK(c.month == 2);
  CHECK(c.day == 29);
  CHECK(c.weekday == 2);
}

TEST_CASE("cron: fields, lists, ranges, steps and names (UTC)") {
  const TimeZone& u = *TimeZone::utc();
  CHECK(next_in("*/5 * * * *", "2026-01-05T10:02:10Z", u) == "2026-01-05T10:05:00+0000");
  CHECK(next_in("*/5 * * * *", "2026-01-05T10:05:00Z", u) == "2026-01-05T10:10:00+0000");
  CHECK(next_in("1-10/2 * * * *", "2026-01-05T10:03:00Z", u) == "2026-01-05T10:05:00+0000");
  CHECK(next_in("1-10/2 * * * *", "2026-01-05T10:09:00Z", u) == "2026-01-05T11:01:00+0000");
  CHECK(next_in("5/20 * * * *", "2026-01-05T10:30:00Z", u) == "2026-01-05T10:45:00+0000");
  CHECK(next_in("0,30 9-17 * * *", "2026-01-05T17:30:00Z", u) == "2026-01-06T09:00:00+0000");
  CHECK(next_in("0 0 1 jan,Jul *", "2026-01-05T00:00:00Z", u) == "2026-07-01T00:00:00+0000");
  CHECK(next_in("0 12 * * MON-fri", "2026-01-09T12:00:00Z", u) == "2026-01-12T12:00:00+0000");
  CHECK(next_in("0 12 ? * sun", "2026-01-05T00:00:00Z", u) == "2026-01-11T12:00:00+0000");
  // Day-of-month and day-of-week both restricted: either matches (13th or a Friday).
  CHECK(next_in("0 0 13 * 5", "2026-02-01T00:00:00Z", u) == "2026-02-06T00:00:00+0000");
  CHECK(next_in("0 0 13 * 5", "2026-02-12T00:00:00Z", u) == "2026-02-13T00:00:00+0000");
  CHECK(next_in("0 0 14 * 5", "2026-02-13T00:00:00Z", u) == "2026-02-14T00:00:00+0000");
  // One of them a star: both must match (a Friday that is the 13th).
  CHECK(next_in("0 0 13 * *", "2026-02-14T00:00:00Z", u) == "2026-03-13T00:00:00+0000");
  CHECK(next_in("0 0 * * 5", "2026-02-13T00:00:00Z", u) == "2026-02-20T00:00:00+0000");
  CHECK(next_in("0 0 29 2 *", "2026-01-01T00:00:00Z", u) == "2028-02-29T00:00:00+0000");
  CHECK(next_in("0 0 30 2 *", "2026-01-01T00:00:00Z", u) == "none");
  // Seconds are not a field: everything runs at second 0, strictly after `t`.
  CHECK(next_in("* * * * *", "2026-01-05T10:02:59Z", u) == "2026-01-05T10:03:00+0000");
}

TEST_CASE("cron: descriptors") {
  const TimeZone& u = *TimeZone::utc();
  const std::string from = "2026-05-13T10:20:00Z";  // a Wednesday
  CHECK(next_in("@hourly", from, u) == "2026-05-13T11:00:00+0000");
  CHECK(next_in("@daily", from, u) == "2026-05-14T00:00:00+0000");
  CHECK(next_in("@midnight", from, u) == "2026-05-14T00:00:00+0000");
  CHECK(next_in("@weekly", from, u) == "2026-05-17T00:00:00+0000");
  CHECK(next_in("@monthly", from, u) == "2026-06-01T00:00:00+0000");
  CHECK(next_in("@yearly", from, u) == "2027-01-01T00:00:00+0000");
  CHECK(next_in("@annually", from, u) == "2027-01-01T00:00:00+0000");
}

TEST_CASE("cron: parse errors are robfig's") {
  CHECK(parse_error("") == "empty spec string");
  CHECK(parse_error("* * * *") == "expected exactly 5 fields, found 4: [* * * *]");
  CHECK(parse_error("0 0 0 * * ?") == "expected exactly 5 fields, found 6: [0 0 0 * * ?]");
  CHECK(parse_error("60 * * * *") == "end of range (60) above maximum (59): 60");
  CHECK(parse_error("* 24 * * *") == "end of range (24) above maximum (23): 24");
  CHECK(parse_error("* * 0 * *") == "beginning of range (0) below minimum (1): 0");
  CHECK(parse_error("* * * * 7") == "end of range (7) above maximum (6): 7");
  CHECK(parse_error("5-1 * * * *") == "beginning of range (5) beyond end of range (1): 5-1");
  CHECK(parse_error("*/0 * * * *") == "step of range should be a positive number: */0");
  CHECK(parse_error("1-2-3 * * * *") == "too many hyphens: 1-2-3");
  CHECK(parse_error("1/2/3 * * * *") == "too many slashes: 1/2/3");
  CHECK(parse_error("a * * * *") ==
        "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax");
  CHECK(parse_error("* * * FOO *") ==
        "failed to parse int from FOO: strconv.Atoi: parsing \"FOO\": invalid syntax");
  CHECK(parse_error("@fortnightly") == "unrecognized descriptor: @fortnightly");
  CHECK(parse_error("@every 5x") ==
        "failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\"");
  CHECK(parse_error("@every 5") ==
        "failed to parse duration @every 5: time: missing unit in duration \"5\"");
  CHECK(parse_error("@every ") == "failed to parse duration @every : time: invalid duration \"\"");
  CHECK(parse_error("@every 1h-5m") ==
        "failed to parse duration @every 1h-5m: time: unknown unit \"h-\" in duration \"1h-5m\"");
  CHECK(parse_error("CRON_TZ=Mars/Olympus 0 * * * *") ==
        "provided bad location Mars/Olympus: unknown time zone Mars/Olympus");
}

TEST_CASE("cron: time zones load, and unknown ones are refused in Go's words") {
  auto bad = TimeZone::load("Mars/Olympus");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().message() == "unknown time zone Mars/Olympus");
  CHECK(TimeZone::load("../etc/passwd").status().message() == "unknown time zone ../etc/passwd");
  CHECK(TimeZone::load("UTC").is_ok());
  auto garbage = TimeZone::from_tzif("X", "not a tzif file at all, sorry........................");
  REQUIRE_FALSE(garbage.is_ok());
  CHECK(garbage.status().message().find("not a TZif file") != std::string::npos);
}

TEST_CASE("cron: POSIX TZ rules, both hemispheres") {
  auto ny = TimeZone::from_posix("US", "EST5EDT,M3.2.0,M11.1.0");
  REQUIRE(ny.is_ok());
  auto off = [](const TimeZone& z, const std::string& t) {
    return z.offset_at(std::chrono::duration_cast<seconds>(at(t).time_since_epoch()).count());
  };
  CHECK(off(**ny, "2045-01-10T12:00:00Z") == -5 * 3600);
  CHECK(off(**ny, "2045-07-10T12:00:00Z") == -4 * 3600);
  // 2045-03-12 is the second Sunday of March: 02:00 EST = 07:00Z.
  CHECK(off(**ny, "2045-03-12T06:59:59Z") == -5 * 3600);
  CHECK(off(**ny, "2045-03-12T07:00:00Z") == -4 * 3600);
  auto syd = TimeZone::from_posix("AU", "AEST-10AEDT,M10.1.0,M4.1.0/3");
  REQUIRE(syd.is_ok());
  CHECK(off(**syd, "2045-01-10T00:00:00Z") == 11 * 3600);
  CHECK(off(**syd, "2045-07-10T00:00:00Z") == 10 * 3600);
  auto fixed = TimeZone::from_posix("X", "<+0330>-3:30");
  REQUIRE(fixed.is_ok());
  CHECK(off(**fixed, "2045-01-10T00:00:00Z") == 3 * 3600 + 1800);
  CHECK_FALSE(TimeZone::from_posix("X", "E5E,M13.1.0,M1.1.0").is_ok());
}

TEST_CASE("cron: America/New_York daylight saving (robfig/cron v3 spec_test cases)") {
  if (!have_tzdata()) {
    skiff::testing::skip("tzdata is not installed (/usr/share/zoneinfo): apt-get install tzdata");
    return;
  }
  auto z = TimeZone::load("America/New_York");
  REQUIRE(z.is_ok());
  const TimeZone& ny = **z;
  // Spring forward 2012-03-11 02:00 EST -> 03:00 EDT.
  CHECK(next_in("30 2 11 Mar *", "2012-03-11T00:00:00-0500", ny) == "2013-03-11T02:30:00-0400");
  CHECK(next_in("0 * * * *", "2012-03-11T00:00:00-0500", ny) == "2012-03-11T01:00:00-0500");
  CHECK(next_in("0 * * * *", "2012-03-11T01:00:00-0500", ny) == "2012-03-11T03:00:00-0400");
  CHECK(next_in("0 * * * *", "2012-03-11T03:00:00-0400", ny) == "2012-03-11T04:00:00-0400");
  CHECK(next_in("0 1 * * *", "2012-03-11T00:00:00-0500", ny) == "2012-03-11T01:00:00-0500");
  CHECK(next_in("0 1 * * *", "2012-03-11T01:00:00-0500", ny) == "2012-03-12T01:00:00-0400");
  // The skipped 2am does not run that day.
  CHECK(next_in("0 2 * * *", "2012-03-11T00:00:00-0500", ny) == "2012-03-12T02:00:00-0400");
  // Fall back 2012-11-04 02:00 EDT -> 01:00 EST.
  CHECK(next_in("30 2 04 Nov *", "2012-11-04T00:00:00-0400", ny) == "2012-11-04T02:30:00-0500");
  CHECK(next_in("30 1 04 Nov *", "2012-11-04T01:45:00-0400", ny) == "2012-11-04T01:30:00-0500");
  CHECK(next_in("0 * * * *", "2012-11-04T00:00:00-0400", ny) == "2012-11-04T01:00:00-0400");
  CHECK(next_in("0 * * * *", "2012-11-04T01:00:00-0400", ny) == "2012-11-04T01:00:00-0500");
  CHECK(next_in("0 * * * *", "2012-11-04T01:00:00-0500", ny) == "2012-11-04T02:00:00-0500");
  // The repeated 1am runs twice.
  CHECK(next_in("0 1 * * *", "2012-11-04T00:00:00-0400", ny) == "2012-11-04T01:00:00-0400");
  CHECK(next_in("0 1 * * *", "2012-11-04T01:00:00-0400", ny) == "2012-11-04T01:00:00-0500");
  CHECK(next_in("0 1 * * *", "2012-11-04T01:00:00-0500", ny) == "2012-11-05T01:00:00-0500");
  CHECK(next_in("0 2 * * *", "2012-11-04T00:00:00-0400", ny) == "2012-11-04T02:00:00-0500");
  CHECK(next_in("0 3 * * *", "2012-11-04T00:00:00-0400", ny) == "2012-11-04T03:00:00-0500");
  // A TZ= prefix overrides the zone passed in.
  CHECK(next_in("TZ=America/New_York 0 12 * * *", "2026-07-01T00:00:00Z", *TimeZone::utc()) ==
        "2026-07-01T16:00:00+0000");
  // Beyond the file's explicit transitions (2037) the footer rule applies.
  CHECK(next_in("0 12 * * *", "2050-07-01T00:00:00Z", ny) == "2050-07-01T12:00:00-0400");
  CHECK(next_in("0 12 * * *", "2050-12-01T00:00:00Z", ny) == "2050-12-01T12:00:00-0500");
  CHECK(next_in("0 2 * * *", "2050-03-13T00:00:00-0500", ny) == "2050-03-14T02:00:00-0400");
}

TEST_CASE("cron: Europe/Berlin daylight saving") {
  if (!have_tzdata()) {
    skiff::testing::skip("tzdata is not installed (/usr/share/zoneinfo): apt-get install tzdata");
    return;
  }
  auto z = TimeZone::load("Europe/Berlin");
  REQUIRE(z.is_ok());
  const TimeZone& b = **z;
  // 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 is skipped that day.
  CHECK(next_in("30 2 * * *", "2024-03-31T00:00:00+0100", b) == "2024-04-01T02:30:00+0200");
  CHECK(next_in("0 * * * *", "2024-03-31T01:00:00+0100", b) == "2024-03-31T03:00:00+0200");
  CHECK(next_in("0 9 * * *", "2024-03-30T09:00:00+0100", b) == "2024-03-31T09:00:00+0200");
  // 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 happens twice and runs twice.
  CHECK(next_in("30 2 * * *", "2024-10-27T00:00:00+0200", b) == "2024-10-27T02:30:00+0200");
  CHECK(next_in("30 2 * * *", "2024-10-27T02:30:00+0200", b) == "2024-10-27T02:30:00+0100");
  CHECK(next_in("30 2 * * *", "2024-10-27T02:30:00+0100", b) == "2024-10-28T02:30:00+0100");
  CHECK(next_in("@daily", "2024-10-26T12:00:00+0200", b) == "2024-10-27T00:00:00+0200");
  CHECK(next_in("@daily", "2024-10-27T00:00:00+0200", b) == "2024-10-28T00:00:00+0100");
}

}  // namespace
}  // namespace skiff::cron

namespace skiff::cron {
namespace {

TEST_CASE("cron: Go durations as time.ParseDuration reads them") {
  constexpr int64_t kS = 1'000'000'000;
  CHECK(*parse_go_duration("0") == 0);
  CHECK(*parse_go_duration("90s") == 90 * kS);
  CHECK(*parse_go_duration("1h30m") == 5400 * kS);
  CHECK(*parse_go_duration("1.5h") == 5400 * kS);
  CHECK(*parse_go_duration("+2m") == 120 * kS);
  CHECK(*parse_go_duration("-1.5s") == -1'500'000'000);
  CHECK(*parse_go_duration("300ms") == 300'000'000);
  CHECK(*parse_go_duration("1us2ns") == 1'002);
  CHECK(*parse_go_duration("3\u00b5s") == 3'000);
  CHECK_FALSE(parse_go_duration("\u00b5s").is_ok());  // no digits
  CHECK(*parse_go_duration(".5s") == 500'000'000);
  CHECK(*parse_go_duration("2562047h47m16.854775807s") == INT64_MAX);
  CHECK_FALSE(parse_go_duration("2562047h47m16.854775808s").is_ok());
  CHECK(*parse_go_duration("-2562047h47m16.854775808s") == INT64_MIN);
  for (const char* bad : {"", "h", ".s", "1..5s", "5", "-", "1h 2m", "1d"}) {
    INFO(bad);
    CHECK_FALSE(parse_go_duration(bad).is_ok());
  }
}

TEST_CASE("cron: @every is robfig's constant delay, in whole seconds") {
  const auto at = [](int64_t s, int64_t ms = 0) {
    return Clock::time_point(std::chrono::seconds(s)) + std::chrono::milliseconds(ms);
  };
  const auto secs = [](std::optional<Clock::time_point> t) {
    return t ? std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count()
             : int64_t{-1};
  };
  auto s = Schedule::parse("@every 1h30m");
  REQUIRE(s.is_ok());
  CHECK(secs(s->next(at(1000, 700), *TimeZone::utc())) == 1000 + 5400);
  auto sub = Schedule::parse("@every 1.9s");  // truncated to 1 s
  REQUIRE(sub.is_ok());
  CHECK(secs(sub->next(at(50), *TimeZone::utc())) == 51);
  auto tiny = Schedule::parse("@every 10ms");  // below a second: 1 s
  REQUIRE(tiny.is_ok());
  CHECK(secs(tiny->next(at(50, 999), *TimeZone::utc())) == 51);
  auto neg = Schedule::parse("@every -5m");  // robfig accepts it, as 1 s
  REQUIRE(neg.is_ok());
  CHECK(secs(neg->next(at(7), *TimeZone::utc())) == 8);
}

}  // namespace
}  // namespace skiff::cron
