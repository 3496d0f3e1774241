// CRI log parsing and the kubelet's log options (timestamps, tail, since, limit), fed in
// arbitrary pieces as a following reader sees them.
#include "kubelet/server/cri_log.h"

#include <catch2/catch.hpp>

using namespace skiff::kubelet::logs;

namespace {

const char* kLog =
    "2024-05-01T10:00:00.000000000Z stdout F hello\n"
    "2024-05-01T10:00:01.500000000Z stderr P part1-\n"
    "2024-05-01T10:00:02.000000000Z stderr F part2\n"
    "2024-05-01T10:00:03.123000000Z stdout F third\n";

std::string run(LogOptions o, std::string_view data, size_t piece = 0) {
  LogFormatter f(o);
  if (piece == 0) {
    f.feed(data);
  } else {
    for (size_t i = 0; i < data.size(); i += piece) f.feed(data.substr(i, piece));
  }
  f.end_tail();
  return f.take();
}

}  // namespace

TEST_CASE("records parse; others do not", "[logs]") {
  auto r = parse_record("2024-05-01T10:00:01.5Z stderr P abc def");
  REQUIRE(r);
  CHECK(r->stream == "stderr");
  CHECK(r->partial);
  CHECK(r->content == "abc def");
  CHECK(r->time_ns == 1714557601500000000LL);
  auto empty = parse_record("2024-05-01T10:00:01Z stdout F");
  REQUIRE(empty);
  CHECK(empty->content.empty());
  CHECK_FALSE(parse_record("hello world"));
  CHECK_FALSE(parse_record("2024-05-01T10:00:01Z stdin F x"));
  CHECK_FALSE(parse_record("2024-05-01T10:00:01Z stdout X x"));
}

TEST_CASE("RFC3339 parsing and Go's RFC3339Nano output", "[logs]") {
  CHECK(parse_rfc3339("1970-01-01T00:00:01Z") == 1'000'000'000);
  CHECK(parse_rfc3339("1970-01-01T01:00:01+01:00") == 1'000'000'000);
  CHECK(parse_rfc3339("1970-01-01T00:00:00.000000001Z") == 1);
  CHECK_FALSE(parse_rfc3339("1970-01-01 00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("1970-01-01T00:00:00"));
  CHECK(format_rfc3339_nano(1714557601500000000LL) == "2024-05-01T10:00:01.5Z");
  CHECK(format_rfc3339_nano(1714557600000000000LL) == "2024-05-01T10:00:00Z");
  CHECK(format_rfc3339_nano(1714557600000000123LL) == "2024-05-01T10:00:00.000000123Z");
}

TEST_CASE("partial records are joined, in any split of the input", "[logs]") {
  for (size_t piece : {0, 1, 3, 7, 64}) {
    CHECK(run({}, kLog, piece) == "hello\npart1-part2\nthird\n");
  }
}

TEST_CASE("timestamps prefix each message with its first record's time", "[logs]") {
  LogOptions o;
  o.timestamps = true;
  CHECK(run(o, kLog) ==
        "2024-05-01T10:00:00Z hello\n2024-05-01T10:00:01.5Z part1-part2\n"
        "2024-05-01T10:00:03.123Z third\n");
}

TEST_CASE("tail, since and limit", "[logs]") {
  LogOptions tail;
  tail.tail_lines = 2;
  CHECK(run(tail, kLog) == "part1-part2\nthird\n");
  tail.tail_lines = 0;
  CHECK(run(tail, kLog).empty());
  LogOptions since;
  since.since_ns = *parse_rfc3339("2024-05-01T10:00:01.7Z");
  // The joined message carries its first record's time (10:00:01.5), so it is skipped.
  CHECK(run(since, kLog) == "third\n");
  LogOptions limit;
  limit.limit_bytes = 8;
  CHECK(run(limit, kLog) == "hello\npa");
}

TEST_CASE("following: after the tail, new messages flow straight out", "[logs]") {
  LogOptions o;
  o.tail_lines = 1;
  LogFormatter f(o);
  f.feed(kLog);
  f.end_tail();
  CHECK(f.take() == "third\n");
  f.feed("2024-05-01T10:00:04Z stdout F fou");
  CHECK(f.take().empty());  // an incomplete line waits for its newline
  f.feed("r\n2024-05-01T10:00:05Z stdout P fi");
  CHECK(f.take() == "four\n");
  f.feed("ve\n2024-05-01T10:00:05Z stdout F !\n");
  CHECK(f.take() == "five!\n");
}

TEST_CASE("lines that are not CRI records pass through", "[logs]") {
  CHECK(run({}, "plain text\n2024-05-01T10:00:00Z stdout F x\n") == "plain text\nx\n");
}
