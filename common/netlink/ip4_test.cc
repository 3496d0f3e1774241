#include "common/netlink/ip4.h"

#include <catch2/catch.hpp>

#include "common/netlink/netlink.h"

using namespace skiff::netlink;

TEST_CASE("IPv4 addresses and prefixes") {
  CHECK(parse_ip4("10.244.1.2")->str() == "10.244.1.2");
  CHECK_FALSE(parse_ip4("10.244.1"));
  CHECK_FALSE(parse_ip4("10.244.1.256"));
  auto n = parse_ip4_net("10.244.1.7/24");
  REQUIRE(n);
  CHECK(n->network().str() == "10.244.1.0");
  CHECK(n->broadcast().str() == "10.244.1.255");
  CHECK(n->str() == "10.244.1.0/24");
  CHECK(n->contains(*parse_ip4("10.244.1.200")));
  CHECK_FALSE(n->contains(*parse_ip4("10.244.2.1")));
  CHECK(parse_ip4_net("0.0.0.0/0")->contains(*parse_ip4("1.2.3.4")));
  for (const char* bad :
       {"10.244.1.0", "10.244.1.0/", "10.244.1.0/33", "10.244.1.0/-1", "10.244.1.0/2x", "x/24"})
    CHECK_FALSE(parse_ip4_net(bad));
}

TEST_CASE("MAC addresses") {
  uint8_t m[6];
  REQUIRE(parse_mac("0A:00:27:ff:10:01", m));
  CHECK(m[0] == 0x0a);
  CHECK(m[3] == 0xff);
  CHECK(m[5] == 0x01);
  for (const char* bad : {"", "0a:00:27:ff:10", "0a:00:27:ff:10:01:02", "0a-00-27-ff-10-01",
                          "zz:00:27:ff:10:01", "0a:00:27:ff:10:1"})
    CHECK_FALSE(parse_mac(bad, m));
}
