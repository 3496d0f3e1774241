#include "proto/quantity.h"

#include <catch2/catch.hpp>

namespace skiff::proto {
namespace {

std::string canon(const char* s) {
  auto q = Quantity::parse(s);
  REQUIRE(q.is_ok());
  return q->to_string();
}

TEST_CASE("quantities serialize in Kubernetes' canonical form") {
  const std::pair<const char*, const char*> cases[] = {
      {"250m", "250m"},   {"1.5Gi", "1536Mi"},  {"128Mi", "128Mi"}, {"1e3", "1e3"},
      {"0.5", "500m"},    {"1", "1"},           {"1000m", "1"},     {"1000", "1k"},
      {"1024Mi", "1Gi"},  {"2000Mi", "2000Mi"}, {"1.5Ki", "1536"},  {"512Ki", "512Ki"},
      {"100Ki", "100Ki"}, {"0.5Ki", "512"},     {"0", "0"},         {"0Mi", "0"},
      {"-1", "-1"},       {"-250m", "-250m"},   {"1.5", "1500m"},   {"0.001", "1m"},
      {"0.0001", "100u"}, {"1n", "1n"},         {"0.1n", "1n"},     {"1k", "1k"},
      {"1M", "1M"},       {"1.5G", "1500M"},    {"2T", "2T"},       {"1E", "1E"},
      {"1e-3", "1e-3"},   {"12e2", "1200"},     {"+5", "5"},        {"100", "100"},
      {"3Ti", "3Ti"},     {"1Ei", "1Ei"},       {"1023", "1023"},   {"1.", "1"},
      {".5", "500m"},     {"1e+3", "1e3"},      {"1E3", "1e3"},     {"10Gi", "10Gi"}};
  for (const auto& [in, want] : cases) {
    INFO(in);
    CHECK(canon(in) == want);
  }
}

TEST_CASE("quantity parse errors") {
  for (const char* bad : {"", "abc", "1.2.3", "1Zi", "--1", "1 Gi", "Gi", "1e", "1iK", "."}) {
    INFO(bad);
    CHECK_FALSE(Quantity::parse(bad).is_ok());
  }
  CHECK(Quantity::parse("x").status().message().find("regular expression") != std::string::npos);
}

TEST_CASE("quantity values, comparison and arithmetic") {
  auto q = [](const char* s) { return *Quantity::parse(s); };
  CHECK(q("250m").milli_value() == 250);
  CHECK(q("1").milli_value() == 1000);
  CHECK(q("1.5Gi").value() == 1610612736);
  CHECK(q("100m").value() == 1);  // rounds up, like Kubernetes' Value()
  CHECK(q("1Ki") == q("1024"));
  CHECK(q("500m") < q("1"));
  CHECK(q("2") > q("1999m"));
  CHECK((q("250m") + q("750m")).to_string() == "1");
  CHECK((q("1Gi") + q("1Gi")).to_string() == "2Gi");
  CHECK((q("1") - q("250m")).to_string() == "750m");
  CHECK(Quantity::from_milli(1500).to_string() == "1500m");
  CHECK(Quantity::from_int(2048, Quantity::Format::kBinarySI).to_string() == "2Ki");
  CHECK(q("0").is_zero());
}

TEST_CASE("quantity JSON codec accepts strings and numbers") {
  Quantity q;
  std::string err;
  CHECK(Scalar<Quantity>::decode(json("1.5Gi"), q, err));
  CHECK(Scalar<Quantity>::encode(q) == json("1536Mi"));
  CHECK(Scalar<Quantity>::decode(json(2), q, err));
  CHECK(q.to_string() == "2");
  CHECK(Scalar<Quantity>::decode(json(0.5), q, err));
  CHECK(q.to_string() == "500m");
  CHECK_FALSE(Scalar<Quantity>::decode(json("lots"), q, err));
  CHECK_FALSE(err.empty());
  CHECK_FALSE(Scalar<Quantity>::decode(json(true), q, err));
}

}  // namespace
}  // namespace skiff::proto
