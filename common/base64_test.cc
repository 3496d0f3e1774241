#include "common/base64.h"

#include <catch2/catch.hpp>

namespace skiff {
namespace {

TEST_CASE("base64 encodes RFC 4648 vectors and decodes them back") {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [raw, enc] : vectors) {
    CHECK(base64_encode(raw) == enc);
    auto dec = base64_decode(enc);
    REQUIRE(dec.is_ok());
    CHECK(dec.value() == raw);
    CHECK(base64_problem(enc).empty());
  }
}

TEST_CASE("base64 decoding is lenient, the problem check strict as Go") {
  auto d = base64_decode("Zm9v\nYmFy");
  REQUIRE(d.is_ok());
  CHECK(d.value() == "foobar");
  CHECK(base64_decode("-_8").is_ok());  // URL-safe alphabet
  CHECK(!base64_decode("Zm9v!").is_ok());
  CHECK(base64_problem("not base64!") == "illegal base64 data at input byte 3");
  CHECK(base64_problem("Zm9") == "illegal base64 data at input byte 0");
  CHECK(base64_problem("Zg=a") == "illegal base64 data at input byte 2");
}

}  // namespace
}  // namespace skiff
