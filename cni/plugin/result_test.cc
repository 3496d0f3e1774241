#include "cni/plugin/result.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace skiff::cni::plugin;
using json = nlohmann::json;

namespace {

AddOutcome outcome() {
  AddOutcome o;
  o.interfaces = {{"skiff0", "0a:58:0a:f4:01:01", ""},
                  {"veth0123456789a", "32:37:33:56:a3:2f", ""},
                  {"eth0", "0a:58:0a:f4:01:05", "/run/netns/p"}};
  o.ip = *parse_ip4("10.244.1.5");
  o.prefix = 24;
  o.gateway = *parse_ip4("10.244.1.1");
  return o;
}

Config config(const char* version) {
  Config c;
  c.cni_version = version;
  c.name = "skiff";
  return c;
}

}  // namespace

TEST_CASE("result: 1.0.0 shape") {
  auto j = json::parse(add_result_json(config("1.0.0"), outcome()));
  CHECK(j["cniVersion"] == "1.0.0");
  REQUIRE(j["interfaces"].size() == 3);
  CHECK(j["interfaces"][2] ==
        json{{"name", "eth0"}, {"mac", "0a:58:0a:f4:01:05"}, {"sandbox", "/run/netns/p"}});
  CHECK_FALSE(j["interfaces"][0].contains("sandbox"));
  REQUIRE(j["ips"].size() == 1);
  CHECK(j["ips"][0] ==
        json{{"address", "10.244.1.5/24"}, {"gateway", "10.244.1.1"}, {"interface", 2}});
  CHECK(j["routes"] == json::parse(R"([{"dst":"0.0.0.0/0","gw":"10.244.1.1"}])"));
  CHECK(j["dns"] == json::object());
}

TEST_CASE("result: before 1.0.0 each IP has version 4") {
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0"}) {
    auto j = json::parse(add_result_json(config(v), outcome()));
    CHECK(j["cniVersion"] == v);
    CHECK(j["ips"][0]["version"] == "4");
  }
}

TEST_CASE("result: prevResult is kept and indices shift; dns from config") {
  auto c = config("1.0.0");
  c.prev_result = R"({"cniVersion":"1.0.0","interfaces":[{"name":"lo"}],
    "ips":[{"address":"127.0.0.1/8","interface":0}]})";
  c.dns.nameservers = {"10.96.0.10"};
  auto j = json::parse(add_result_json(c, outcome()));
  REQUIRE(j["interfaces"].size() == 4);
  CHECK(j["interfaces"][0]["name"] == "lo");
  REQUIRE(j["ips"].size() == 2);
  CHECK(j["ips"][1]["interface"] == 3);
  CHECK(j["dns"]["nameservers"][0] == "10.96.0.10");
}

TEST_CASE("error JSON") {
  auto j = json::parse(error_json("0.4.0", CniError{7, "invalid network config", "\"subnet\": x"}));
  CHECK(j == json{{"cniVersion", "0.4.0"},
                  {"code", 7},
                  {"msg", "invalid network config"},
                  {"details", "\"subnet\": x"}});
  CHECK(json::parse(error_json("bogus", CniError{11, "busy", ""}))["cniVersion"] == "1.0.0");
  CHECK_FALSE(json::parse(error_json("1.0.0", CniError{11, "busy", ""})).contains("details"));
}

TEST_CASE("prevResult addresses") {
  CHECK(prev_result_ips(R"({"ips":[{"address":"10.0.0.2/24"},{"x":1}]})") ==
        std::vector<std::string>{"10.0.0.2/24"});
  CHECK(prev_result_ips("garbage").empty());
}
