// Set-up shared by the proto/*_test.cc files: testdata fixtures and field-error printing.
// Test-only (Catch2); no library code includes it.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "proto/codec.h"
#include "proto/registry.h"

namespace skiff::proto::testutil {

// proto/testdata/<name>.json, parsed; fails the test case when the file is missing.
inline json fixture(const std::string& name) {
  auto path = std::filesystem::path(__FILE__).parent_path() / "testdata" / (name + ".json");
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// One "field: message" line per error, for INFO().
inline std::string describe(const FieldErrors& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message() + "\n";
  return s;
}

// field -> message, for exact checks.
inline std::map<std::string, std::string> by_field(const FieldErrors& errs) {
  std::map<std::string, std::string> m;
  for (const auto& e : errs) m[e.field] = e.message();
  return m;
}

// A fixture that is already normalized and defaulted: normalize(in) == in, decode -> encode
// gives `in` back and is stable, defaulting changes nothing, and it passes validation.
template <class T>
void check_round_trip(const ResourceType& t, const json& in) {
  FieldErrors errs;
  json out = t.normalize(in, errs, DecodeOptions{});
  INFO(describe(errs));
  CHECK(errs.empty());
  INFO(json::diff(in, out).dump(1));
  CHECK(out == in);
  T typed = decode<T>(in, errs);
  CHECK(errs.empty());
  CHECK(encode(typed) == in);
  CHECK(encode(decode<T>(encode(typed), errs)) == encode(typed));
  json defaulted = out;
  t.apply_defaults(defaulted);
  CHECK(defaulted == out);
  FieldErrors verrs = t.validate(defaulted, nullptr);
  INFO(describe(verrs));
  CHECK(verrs.empty());
}

}  // namespace skiff::proto::testutil
