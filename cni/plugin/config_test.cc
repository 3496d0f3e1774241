#include "cni/plugin/config.h"

#include <catch2/catch.hpp>

#include "cni/plugin/plugin.h"
#include "cni/plugin/result.h"

using namespace skiff::cni::plugin;

namespace {

const char* kGood = R"({"cniVersion":"1.0.0","name":"skiff","type":"skiff",
  "subnet":"10.244.1.0/24"})";

std::map<std::string, std::string> add_env() {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "abc123"},
          {"CNI_NETNS", "/run/netns/x"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/opt/cni/bin"}};
}

}  // namespace

TEST_CASE("config: defaults and derived values") {
  auto c = parse_config(kGood);
  REQUIRE(c.is_ok());
  CHECK(c->name == "skiff");
  CHECK(c->bridge == "skiff0");
  CHECK(c->subnet.str() == "10.244.1.0/24");
  CHECK(c->gateway.str() == "10.244.1.1");
  CHECK(c->data_dir == "/var/lib/skiff/cni/networks/skiff");
  CHECK(c->hairpin);
  CHECK(c->mtu == 0);
}

TEST_CASE("config: podCIDR, host bits, all fields") {
  auto c =
      parse_config(R"({"cniVersion":"0.4.0","name":"n1","type":"skiff","podCIDR":"10.9.0.77/16",
    "bridge":"br-x","mtu":1400,"mode":"vxlan","hairpinMode":false,"dataDir":"/tmp/d",
    "dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]},
    "prevResult":{"ips":[]},"runtimeConfig":{"portMappings":[]},"args":{"x":1}})");
  REQUIRE(c.is_ok());
  CHECK(c->subnet.str() == "10.9.0.0/16");
  CHECK(c->gateway.str() == "10.9.0.1");
  CHECK(c->bridge == "br-x");
  CHECK(c->mtu == 1400);
  CHECK(c->mode == "vxlan");
  CHECK_FALSE(c->hairpin);
  CHECK(c->data_dir == "/tmp/d");
  CHECK(c->dns.nameservers == std::vector<std::string>{"10.96.0.10"});
  CHECK(!c->prev_result.empty());
}

TEST_CASE("config: GC attachments under either key, merged") {
  auto none = parse_config(kGood);
  REQUIRE(none.is_ok());
  CHECK_FALSE(none->has_valid_attachments);
  auto c = parse_config(R"({"cniVersion":"1.1.0","name":"n","type":"skiff",
    "subnet":"10.244.1.0/24",
    "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
    "cni.dev/attachments":[{"containerID":"b","ifname":"eth1"}]})");
  REQUIRE(c.is_ok());
  CHECK(c->has_valid_attachments);
  REQUIRE(c->valid_attachments.size() == 2);
  CHECK(c->valid_attachments[0].container_id == "a");
  CHECK(c->valid_attachments[1].container_id == "b");
  CHECK(c->valid_attachments[1].ifname == "eth1");
  auto only_old = parse_config(R"({"cniVersion":"1.1.0","name":"n","type":"skiff",
    "subnet":"10.244.1.0/24","cni.dev/attachments":[]})");
  REQUIRE(only_old.is_ok());
  CHECK(only_old->has_valid_attachments);  // an empty list is a list: nothing is valid
  auto bad = parse_config(R"({"cniVersion":"1.1.0","name":"n","type":"skiff",
    "subnet":"10.244.1.0/24","cni.dev/attachments":{}})");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.error().details.find("cni.dev/attachments") != std::string::npos);
}

TEST_CASE("config: errors carry the spec's codes and name the field") {
  struct Case {
    const char* json;
    int code;
    const char* needle;
  };
  const Case cases[] = {
      {"not json", kDecodeFailure, "not JSON"},
      {"[1,2]", kDecodeFailure, "not a JSON object"},
      {R"({"name":"n","type":"skiff","subnet":"10.0.0.0/24"})", kInvalidConfig, "cniVersion"},
      {R"({"cniVersion":"0.2.0","name":"n","type":"skiff","subnet":"10.0.0.0/24"})",
       kIncompatibleVersion, "0.2.0"},
      {R"({"cniVersion":"9.9.9","name":"n","type":"skiff","subnet":"10.0.0.0/24"})",
       kIncompatibleVersion, "supports"},
      {R"({"cniVersion":"1.0.0","type":"skiff","subnet":"10.0.0.0/24"})", kInvalidConfig, "name"},
      {R"({"cniVersion":"1.0.0","name":"a/b","type":"skiff","subnet":"10.0.0.0/24"})",
       kInvalidConfig, "name"},
      {R"({"cniVersion":"1.0.0","name":"n","subnet":"10.0.0.0/24"})", kInvalidConfig, "type"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff"})", kInvalidConfig, "subnet"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0/24"})", kInvalidConfig,
       "10.0.0/24"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"fd00::/64"})", kInvalidConfig,
       "IPv4"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/31"})", kInvalidConfig,
       "prefix"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24","mtu":"9000"})",
       kInvalidConfig, "mtu"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24","mtu":100})",
       kInvalidConfig, "mtu"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24","mode":"ipip"})",
       kInvalidConfig, "ipip"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24",
           "bridge":"a-very-long-bridge-name"})",
       kInvalidConfig, "bridge"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24",
           "dataDir":"relative"})",
       kInvalidConfig, "dataDir"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24",
           "ipam":{"type":"host-local"}})",
       kUnsupportedField, "ipam"},
      {R"({"cniVersion":"1.0.0","name":"n","type":"skiff","subnet":"10.0.0.0/24","dns":[1]})",
       kInvalidConfig, "dns"},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    auto r = parse_config(c.json);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.error().code == c.code);
    CHECK_THAT(r.error().details + r.error().msg, Catch::Contains(c.needle));
  }
}

TEST_CASE("env: required variables and the spec's name rules") {
  auto e = parse_env(add_env());
  REQUIRE(e.is_ok());
  CHECK(e->command == Command::kAdd);
  CHECK(e->container_id == "abc123");

  auto without = [](const char* k) {
    auto m = add_env();
    m.erase(k);
    return parse_env(m);
  };
  for (const char* k : {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"}) {
    INFO(k);
    auto r = without(k);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.error().code == kInvalidEnv);
    CHECK_THAT(r.error().details, Catch::Contains(k));
  }
  auto m = add_env();
  m["CNI_COMMAND"] = "DEL";
  m.erase("CNI_NETNS");
  CHECK(parse_env(m).is_ok());  // DEL after the netns is gone
  m["CNI_COMMAND"] = "FROB";
  CHECK(parse_env(m).error().code == kInvalidEnv);
  m = add_env();
  m["CNI_CONTAINERID"] = "-bad";
  CHECK(parse_env(m).error().code == kInvalidEnv);
  m["CNI_CONTAINERID"] = "a/b";
  CHECK(parse_env(m).error().code == kInvalidEnv);
  m = add_env();
  m["CNI_IFNAME"] = "eth0:1";
  CHECK(parse_env(m).error().code == kInvalidEnv);
  m["CNI_IFNAME"] = "abcdefghijklmnop";  // 16 bytes
  CHECK(parse_env(m).error().code == kInvalidEnv);
  CHECK(parse_env({{"CNI_COMMAND", "VERSION"}}).is_ok());
}

TEST_CASE("mtu: configured, underlay, vxlan overhead") {
  Config c;
  CHECK(effective_mtu(c, 9000) == 9000);
  CHECK(effective_mtu(c, 0) == 1500);
  c.mode = "vxlan";
  CHECK(effective_mtu(c, 1500) == 1450);
  CHECK(effective_mtu(c, 9000) == 8950);
  c.mtu = 1300;
  CHECK(effective_mtu(c, 1500) == 1300);
}

TEST_CASE("names: host veth is stable, short, distinct") {
  auto a = host_veth_name("abc", "eth0");
  CHECK(a == host_veth_name("abc", "eth0"));
  CHECK(a.size() == 15);
  CHECK(a.rfind("veth", 0) == 0);
  CHECK(a != host_veth_name("abc", "eth1"));
  CHECK(a != host_veth_name("abd", "eth0"));
  CHECK(mac_for_ip(*parse_ip4("10.244.1.2")) == "0a:58:0a:f4:01:02");
}

TEST_CASE("versions") {
  CHECK(compare_versions("0.4.0", "1.0.0") < 0);
  CHECK(compare_versions("1.0.0", "1.0.0") == 0);
  CHECK(compare_versions("1.1.0", "1.0.0") > 0);
  CHECK(version_supported("0.3.1"));
  CHECK_FALSE(version_supported("0.2.0"));
}

TEST_CASE("run: VERSION, and errors before any kernel work") {
  auto v = run({{"CNI_COMMAND", "VERSION"}}, R"({"cniVersion":"0.4.0"})");
  REQUIRE(v.is_ok());
  CHECK(*v ==
        R"({"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})");
  CHECK(run({{"CNI_COMMAND", "VERSION"}}, "").is_ok());

  auto bad = run(add_env(), R"({"cniVersion":"1.0.0","name":"n","type":"skiff"})");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.error().code == kInvalidConfig);
  auto noenv = run({}, kGood);
  REQUIRE_FALSE(noenv.is_ok());
  CHECK(noenv.error().code == kInvalidEnv);
  // CHECK does not exist before 0.4.0.
  auto env = add_env();
  env["CNI_COMMAND"] = "CHECK";
  auto chk = run(env, R"({"cniVersion":"0.3.1","name":"n","type":"skiff","subnet":"10.0.0.0/24"})");
  REQUIRE_FALSE(chk.is_ok());
  CHECK(chk.error().code == kIncompatibleVersion);
  // An ADD whose netns does not exist: code 3, nothing to clean up.
  env = add_env();
  env["CNI_NETNS"] = "/nonexistent/netns/path";
  auto add = run(env, kGood);
  REQUIRE_FALSE(add.is_ok());
  CHECK(add.error().code == kUnknownContainer);
}
