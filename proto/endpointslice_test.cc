// discovery.k8s.io/v1 EndpointSlice: codec round trip, defaults, validation paths and messages
// (pkg/apis/discovery/validation), kubectl's Table cells, and the registry entry discovery uses.
#include "proto/endpointslice.h"

#include <catch2/catch.hpp>

#include "proto/registry.h"
#include "proto/test_util.h"
#include "proto/time.h"

namespace skiff::proto {
namespace {

using testutil::describe;

json fixture() { return testutil::fixture("endpointslice"); }

const ResourceType& slices() {
  const ResourceType* t = Registry::builtin().find("discovery.k8s.io", "v1", "endpointslices");
  REQUIRE(t != nullptr);
  return *t;
}

// normalize + defaults + validate, as the API server's create (or update, with `old`) does.
FieldErrors validate(const std::string& body, const std::string& old = "") {
  const ResourceType& t = slices();
  FieldErrors errs;
  json n = t.normalize(json::parse(body), errs, {});
  REQUIRE(errs.empty());
  t.apply_defaults(n);
  if (old.empty()) return t.validate(n, nullptr);
  json o = t.normalize(json::parse(old), errs, {});
  t.apply_defaults(o);
  return t.validate(n, &o);
}

std::string slice(const std::string& type, const std::string& endpoints,
                  const std::string& ports = "[]") {
  return R"({"metadata":{"name":"s","namespace":"d"},"addressType":")" + type +
         R"(","endpoints":)" + endpoints + R"(,"ports":)" + ports + "}";
}

TEST_CASE("endpointslice round-trips through the codec and passes validation") {
  const ResourceType& t = slices();
  testutil::check_round_trip<EndpointSlice>(t, fixture());
  FieldErrors errs;
  // Go's omission rules: optional booleans and pointers are written when set, even when false
  // or ""; addressType, endpoints and ports are always written; conditions is a struct.
  json min =
      t.normalize(json::parse(R"({"metadata":{"name":"m"},"addressType":"IPv4"})"), errs, {});
  CHECK(min == json::parse(R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
      "metadata":{"name":"m"},"addressType":"IPv4","endpoints":[],"ports":[]})"));
  json e = t.normalize(json::parse(R"({"metadata":{"name":"m"},"addressType":"IPv4",
      "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":false},"hostname":""}],
      "ports":[{"name":"","port":0}]})"),
                       errs, {});
  CHECK(e["endpoints"][0] == json::parse(R"({"addresses":["10.0.0.1"],"conditions":{"ready":false},
      "hostname":""})"));
  CHECK(e["ports"][0] == json::parse(R"({"name":"","port":0})"));
  CHECK(errs.empty());
}

TEST_CASE("endpointslice defaults: port name \"\" and protocol TCP") {
  const ResourceType& t = slices();
  FieldErrors errs;
  json s = t.normalize(json::parse(R"({"metadata":{"name":"m"},"addressType":"IPv4",
      "ports":[{"port":80},{"name":"dns","port":53,"protocol":"UDP"},{}]})"),
                       errs, {});
  t.apply_defaults(s);
  CHECK(s["ports"] == json::parse(R"([{"name":"","port":80,"protocol":"TCP"},
      {"name":"dns","port":53,"protocol":"UDP"},{"name":"","protocol":"TCP"}])"));
  json again = s;
  t.apply_defaults(again);
  CHECK(again == s);
}

TEST_CASE("endpointslice validation: address type and addresses") {
  auto errs = validate(R"({"metadata":{"name":"s","namespace":"d"}})");
  CHECK(describe(errs) == "addressType: Required value\n");
  errs = validate(slice("IP", "[]"));
  CHECK(describe(errs) ==
        "addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"\n");
  errs = validate(slice("IPv4", R"([{"addresses":[]},{"addresses":["10.0.0.1","fd00::1","x"]}])"));
  CHECK(describe(errs) ==
        "endpoints[0].addresses: Required value: must contain at least 1 address\n"
        "endpoints[1].addresses[1]: Invalid value: \"fd00::1\": must be a valid IPv4 address\n"
        "endpoints[1].addresses[2]: Invalid value: \"x\": must be a valid IPv4 address\n"
        "endpoints[1].addresses[2]: Invalid value: \"x\": must be a valid IP address\n");
  errs = validate(slice("IPv6", R"([{"addresses":["fd00::1","10.0.0.1","::1","fe80::1"]}])"));
  CHECK(describe(errs) ==
        "endpoints[0].addresses[1]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address\n"
        "endpoints[0].addresses[2]: Invalid value: \"::1\": may not be in the loopback range "
        "(127.0.0.0/8, ::1/128)\n"
        "endpoints[0].addresses[3]: Invalid value: \"fe80::1\": may not be in the link-local "
        "range (169.254.0.0/16, fe80::/10)\n");
  errs = validate(slice("IPv4", R"([{"addresses":["0.0.0.0","127.0.0.1","169.254.169.254",
      "224.0.0.5","010.1.2.3"]}])"));
  CHECK(describe(errs) ==
        "endpoints[0].addresses[0]: Invalid value: \"0.0.0.0\": may not be unspecified "
        "(0.0.0.0)\n"
        "endpoints[0].addresses[1]: Invalid value: \"127.0.0.1\": may not be in the loopback "
        "range (127.0.0.0/8, ::1/128)\n"
        "endpoints[0].addresses[2]: Invalid value: \"169.254.169.254\": may not be in the "
        "link-local range (169.254.0.0/16, fe80::/10)\n"
        "endpoints[0].addresses[3]: Invalid value: \"224.0.0.5\": may not be in the link-local "
        "multicast range (224.0.0.0/24, ff02::/10)\n");
  errs = validate(slice("FQDN", R"([{"addresses":["web.example.com.","web","Bad_Name.x"]}])"));
  REQUIRE(errs.size() == 2);
  CHECK(errs[0].field == "endpoints[0].addresses[1]");
  CHECK(errs[0].detail == "should be a domain with at least two segments separated by dots");
  CHECK(errs[1].field == "endpoints[0].addresses[2]");
  CHECK(errs[1].detail.find("RFC 1123 subdomain") != std::string::npos);

  std::string many = "[";
  for (int i = 0; i < 101; ++i) many += std::string(i ? "," : "") + "\"10.0.0." + "1\"";
  errs = validate(slice("IPv4", R"([{"addresses":)" + many + "]}]"));
  CHECK(describe(errs) == "endpoints[0].addresses: Too many: 101: must have at most 100 items\n");
  std::string eps = "[";
  for (int i = 0; i < 1001; ++i) eps += std::string(i ? "," : "") + R"({"addresses":["x"]})";
  errs = validate(slice("IPv4", eps + "]"));
  CHECK(describe(errs) == "endpoints: Too many: 1001: must have at most 1000 items\n");
}

TEST_CASE("endpointslice validation: endpoint fields and ports") {
  auto errs = validate(slice("IPv4", R"([{"addresses":["10.0.0.1"],"nodeName":"Node_1",
      "hostname":"a.b","hints":{"forZones":[{"name":"z"},{"name":"z"}]}}])"));
  REQUIRE(errs.size() == 3);
  CHECK(errs[0].field == "endpoints[0].nodeName");
  CHECK(errs[1].field == "endpoints[0].hostname");
  CHECK(errs[1].detail == "must not contain dots");
  CHECK(errs[2].field == "endpoints[0].hints.forZones[1].name");
  CHECK(errs[2].type == ErrorType::kDuplicate);
  // More than 8 zone hints: one Too many, the names unchecked; node hints: unique DNS subdomains.
  errs = validate(slice("IPv4", R"([{"addresses":["10.0.0.1"],"hints":{"forZones":[
      {"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},
      {"name":"a"},{"name":"a"}],"forNodes":[{"name":"n"},{"name":"n"},{"name":"N_1"}]}}])"));
  REQUIRE(errs.size() == 3);
  CHECK(describe({errs[0], errs[1]}) ==
        "endpoints[0].hints.forZones: Too many: 9: must have at most 8 items\n"
        "endpoints[0].hints.forNodes[1].name: Duplicate value: \"n\"\n");
  CHECK(errs[2].field == "endpoints[0].hints.forNodes[2].name");
  CHECK(errs[2].detail.find("RFC 1123 subdomain") != std::string::npos);

  errs = validate(slice("IPv4", "[]", R"([{"name":"http","port":80},{"name":"http","port":81},
      {"port":82},{"port":83},{"name":"Bad","port":84,"protocol":"ICMP","appProtocol":"a/b/c"}])"));
  REQUIRE(errs.size() == 5);
  CHECK(errs[0].message() == "Duplicate value: \"http\"");
  CHECK(errs[0].field == "ports[1].name");
  CHECK(errs[1].field == "ports[3].name");
  CHECK(errs[1].type == ErrorType::kDuplicate);
  CHECK(errs[2].field == "ports[4].name");
  CHECK(errs[2].detail.find("RFC 1123 label") != std::string::npos);
  CHECK(errs[3].field + ": " + errs[3].message() ==
        "ports[4].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", "
        "\"UDP\"");
  CHECK(errs[4].field == "ports[4].appProtocol");
  CHECK(errs[4].detail.find("qualified name") != std::string::npos);
  // A port without a number means "all ports"; Kubernetes checks no range here.
  CHECK(validate(slice("IPv4", R"([{"addresses":["10.0.0.1"]}])", R"([{"name":"all"}])")).empty());
}

TEST_CASE("endpointslice update: addressType is immutable, unchanged endpoints not revalidated") {
  auto errs = validate(slice("IPv6", "[]"), slice("IPv4", "[]"));
  CHECK(describe(errs) == "addressType: Invalid value: \"IPv6\": field is immutable\n");
  // An old slice holding an address today's rules refuse may still be updated (labels, ports).
  std::string old = slice("IPv4", R"([{"addresses":["127.0.0.1"]}])");
  CHECK(
      validate(slice("IPv4", R"([{"addresses":["127.0.0.1"]}])", R"([{"port":80}])"), old).empty());
  CHECK(validate(slice("IPv4", R"([{"addresses":["127.0.0.2"]}])"), old).size() == 1);
}

TEST_CASE("endpointslice Table is kubectl's") {
  const ResourceType& t = slices();
  std::vector<std::string> names;
  for (const auto& c : t.columns) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"Name", "AddressType", "Ports", "Endpoints", "Age"});
  CHECK(t.columns[0].format == "name");
  const auto now = *parse_rfc3339("2026-11-25T10:10:00Z");
  CHECK(t.row_cells(fixture(), now) == json::parse(R"(["web-abc12","IPv4","8080,9090",
                        "10.244.1.5,10.244.2.7,10.244.3.9 + 1 more...","10m"])"));
  EndpointSlice s;
  CHECK(format_slice_ports(s) == "<unset>");
  CHECK(format_slice_endpoints(s) == "<unset>");
  s.ports = {{"a", "TCP", 80, {}}, {"b", "TCP", 443, {}}};
  CHECK(format_slice_ports(s) == "80,443");
  s.ports.push_back({"named", "TCP", std::nullopt, {}});
  s.ports.push_back({std::nullopt, "TCP", std::nullopt, {}});
  CHECK(format_slice_ports(s) == "80,443,named + 1 more...");
  s.ports = {{std::nullopt, std::nullopt, std::nullopt, {}}};
  CHECK(format_slice_ports(s) == "*");
  s.endpoints = {{{"10.0.0.1", "10.0.0.2"}}, {{"10.0.0.3"}}};
  CHECK(format_slice_endpoints(s) == "10.0.0.1,10.0.0.2,10.0.0.3");
}

TEST_CASE("endpointslice registry entry") {
  const Registry& r = Registry::builtin();
  for (const char* name :
       {"endpointslices", "endpointslice", "EndpointSlice", "endpointslices.discovery.k8s.io",
        "endpointslices.v1.discovery.k8s.io"}) {
    INFO(name);
    REQUIRE(r.resolve(name));
    CHECK(r.resolve(name)->kind == "EndpointSlice");
  }
  CHECK(r.resolve("endpointslices.apps") == nullptr);
  const ResourceType* t = r.by_kind("discovery.k8s.io/v1", "EndpointSlice");
  REQUIRE(t);
  CHECK(t->namespaced);
  CHECK(t->list_kind == "EndpointSliceList");
  CHECK(t->short_names.empty());
  CHECK(t->subresources.empty());
  CHECK(t->field_value(fixture(), "metadata.name") == "web-abc12");
  CHECK_FALSE(t->field_value(fixture(), "addressType"));
}

}  // namespace
}  // namespace skiff::proto
