#include "proto/time.h"

#include <catch2/catch.hpp>
#include <limits>

#include "proto/intstr.h"

namespace skiff::proto {
namespace {

TEST_CASE("RFC 3339 parse and format") {
  auto t = parse_rfc3339("2026-11-25T10:00:00Z");
  REQUIRE(t);
  CHECK(format_rfc3339(*t) == "2026-11-25T10:00:00Z");
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() ==
        1795600800);
  // Offsets are converted to UTC.
  auto o = parse_rfc3339("2026-11-25T12:30:00+02:30");
  REQUIRE(o);
  CHECK(format_rfc3339(*o) == "2026-11-25T10:00:00Z");
  auto n = parse_rfc3339("2026-11-25T05:00:00-05:00");
  REQUIRE(n);
  CHECK(*n == *t);
  // Fractions of any length; MicroTime keeps six digits.
  auto f = parse_rfc3339("2026-11-25T10:00:00.123456789Z");
  REQUIRE(f);
  CHECK(format_rfc3339(*f, 6) == "2026-11-25T10:00:00.123456Z");
  CHECK(format_rfc3339(*f, 0) == "2026-11-25T10:00:00Z");
  CHECK(format_rfc3339(*parse_rfc3339("2024-02-29T23:59:59.5Z"), 3) == "2024-02-29T23:59:59.500Z");
  CHECK(format_rfc3339(*parse_rfc3339("1999-12-31T23:59:59Z")) == "1999-12-31T23:59:59Z");
  for (const char* bad :
       {"", "2026-11-25", "2026-11-25T10:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:00:00.Z",
        "2026-11-25T10:00:00+0200", "2026-11-25T10:00:00Zjunk", "2026-11-25 10:00:00Z"}) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339(bad));
  }
}

TEST_CASE("Time and MicroTime JSON") {
  Time t;
  std::string err;
  CHECK(Scalar<Time>::encode(t).is_null());  // Go's zero time is written as null
  REQUIRE(Scalar<Time>::decode(json("2026-11-25T10:00:00.75+01:00"), t, err));
  CHECK(Scalar<Time>::encode(t) == json("2026-11-25T09:00:00Z"));
  MicroTime m;
  REQUIRE(Scalar<MicroTime>::decode(json("2026-11-25T10:00:00.123456Z"), m, err));
  CHECK(Scalar<MicroTime>::encode(m) == json("2026-11-25T10:00:00.123456Z"));
  REQUIRE(Scalar<MicroTime>::decode(json("2026-11-25T10:00:00Z"), m, err));
  CHECK(Scalar<MicroTime>::encode(m) == json("2026-11-25T10:00:00.000000Z"));
  CHECK_FALSE(Scalar<Time>::decode(json("yesterday"), t, err));
  CHECK_FALSE(Scalar<Time>::decode(json(5), t, err));
  CHECK(Time::now().value.time_since_epoch() % std::chrono::seconds(1) == Clock::duration::zero());
}

TEST_CASE("times past the clock's range are refused, never wrapped") {
  // The clock counts int64 nanoseconds: 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z. Year 3000
  // used to come back as 1830-11-23T00:50:52Z.
  CHECK(format_rfc3339(*parse_rfc3339("2262-04-11T23:47:15Z")) == "2262-04-11T23:47:15Z");
  CHECK(format_rfc3339(*parse_rfc3339("1677-09-21T00:12:45Z")) == "1677-09-21T00:12:45Z");
  for (const char* far : {"2262-04-11T23:47:16Z", "3000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                          "1677-09-21T00:12:43Z", "0000-01-01T00:00:00Z",
                          "2262-04-11T22:00:00-02:00"}) {
    INFO(far);
    CHECK_FALSE(parse_rfc3339(far));
    Time t;
    std::string err;
    CHECK_FALSE(Scalar<Time>::decode(json(far), t, err));
    CHECK(err == "time out of the range skiff stores (years 1678 to 2261)");
  }
  Time t;
  std::string err;
  CHECK_FALSE(Scalar<Time>::decode(json("3000-02-29T00:00:00Z"), t, err));  // no such day
  CHECK(err == "invalid RFC 3339 time");
}

TEST_CASE("plus_seconds saturates where the sum leaves the clock; capped_seconds") {
  using std::chrono::seconds;
  auto t = *parse_rfc3339("2026-11-25T10:00:00.5Z");
  CHECK(format_rfc3339(plus_seconds(t, 30), 1) == "2026-11-25T10:00:30.5Z");
  CHECK(format_rfc3339(plus_seconds(t, -86400), 1) == "2026-11-24T10:00:00.5Z");
  // int64 grace periods and deadlines: the sum saturates at a time that parses back.
  const int64_t huge = std::numeric_limits<int64_t>::max();
  CHECK(format_rfc3339(plus_seconds(t, huge)) == "2262-04-11T23:47:15Z");
  CHECK(format_rfc3339(plus_seconds(t, 4'000'000'000'000)) == "2262-04-11T23:47:15Z");
  CHECK(format_rfc3339(plus_seconds(t, std::numeric_limits<int64_t>::min())) ==
        "1677-09-21T00:12:45Z");
  CHECK(parse_rfc3339(format_rfc3339(plus_seconds(t, huge))));
  auto late = *parse_rfc3339("2262-01-01T00:00:00Z");
  CHECK(format_rfc3339(plus_seconds(late, 200 * 86400)) == "2262-04-11T23:47:15Z");
  CHECK(format_rfc3339(plus_seconds(late, 86400)) == "2262-01-02T00:00:00Z");
  // A steady clock too (the kubelet's).
  auto now = std::chrono::steady_clock::now();
  CHECK(plus_seconds(now, huge) > now + std::chrono::hours(24 * 365 * 100));
  CHECK(plus_seconds(now, 5) - now == seconds(5));
  CHECK(capped_seconds(30) == seconds(30));
  CHECK(capped_seconds(huge) == seconds(100LL * 366 * 86400));
  CHECK(capped_seconds(-huge) == seconds(-100LL * 366 * 86400));
  CHECK(now + capped_seconds(huge) > now);  // no overflow
}

TEST_CASE("IntOrString JSON") {
  IntOrString v;
  std::string err;
  REQUIRE(Scalar<IntOrString>::decode(json(8080), v, err));
  CHECK(!v.is_string);
  CHECK(Scalar<IntOrString>::encode(v) == json(8080));
  REQUIRE(Scalar<IntOrString>::decode(json("http"), v, err));
  CHECK(v.is_string);
  CHECK(Scalar<IntOrString>::encode(v) == json("http"));
  CHECK_FALSE(Scalar<IntOrString>::decode(json(1.5), v, err));
  CHECK_FALSE(Scalar<IntOrString>::decode(json(4294967296LL), v, err));
  CHECK(IntOrString{}.unset());
}

}  // namespace
}  // namespace skiff::proto
