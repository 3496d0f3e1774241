// The reference Services of testdata.h and the tables they must produce. The expected text was
// reviewed rule by rule against kube-proxy's nftables layout (pkg/proxy/nftables/proxier.go);
// the kernel test (kernel_test.cc) checks that the kernel lists the same text.
#include "netagent/services/testdata.h"

namespace skiff::services::testdata {
namespace {

using nlohmann::json;

json ports(const std::string& name, int port, const std::string& proto = "TCP", int node_port = 0) {
  json p = {{"name", name}, {"port", port}, {"protocol", proto}};
  if (node_port) p["nodePort"] = node_port;
  return json::array({p});
}

// The static chains every table has (between the maps/sets and the service chains).
constexpr char kStatic[] = R"(  chain mark-for-masquerade {
    meta mark set meta mark | 0x00004000
  }

  chain reject-chain {
    reject with tcp reset
    reject
  }

  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
  }

  chain service-endpoints-check {
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
  }

  chain nodeport-endpoints-check {
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
  }

  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }

  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }

  chain filter-input {
    type filter hook input priority filter; policy accept;
    ct state new jump service-endpoints-check
    ct state new jump nodeport-endpoints-check
  }

  chain filter-forward {
    type filter hook forward priority filter; policy accept;
    ct state new jump service-endpoints-check
  }

  chain filter-output {
    type filter hook output priority filter; policy accept;
    ct state new jump service-endpoints-check
    ct state new jump nodeport-endpoints-check
  }
)";

// The listing with its @STATIC@ marker replaced (two-space indents: normalize_listing ignores
// whitespace).
std::string with_static(std::string text) {
  size_t at = text.find("@STATIC@");
  if (at != std::string::npos) text.replace(at, 8, kStatic);
  return text;
}

// The elements of the four service maps ("" = none), in nft syntax.
struct Maps {
  std::string service_ips, nodeports, no_endpoint_services, no_endpoint_nodeports;
};

// The listing of table ip skiff: the four maps with `maps`' elements, then `rest` (affinity
// sets, @STATIC@, the service chains and the table's closing brace).
std::string listing(const Maps& maps, std::string rest) {
  std::string out = "table ip skiff {\n";
  auto map = [&](const char* name, const char* type, const std::string& elements) {
    out.append("  map ").append(name).append(" {\n    type ").append(type);
    out.append(" : verdict\n");
    if (!elements.empty()) out.append("    elements = { ").append(elements).append(" }\n");
    out.append("  }\n\n");
  };
  map("service-ips", "ipv4_addr . inet_proto . inet_service", maps.service_ips);
  map("service-nodeports", "inet_proto . inet_service", maps.nodeports);
  map("no-endpoint-services", "ipv4_addr . inet_proto . inet_service", maps.no_endpoint_services);
  map("no-endpoint-nodeports", "inet_proto . inet_service", maps.no_endpoint_nodeports);
  return out + with_static(std::move(rest));
}

}  // namespace

std::string canonical(const std::string& listing) {
  std::vector<std::string> blocks;
  std::string cur, head;
  size_t pos = 0;
  while (pos < listing.size()) {
    size_t nl = listing.find('\n', pos);
    if (nl == std::string::npos) nl = listing.size();
    std::string line = listing.substr(pos, nl - pos);
    pos = nl + 1;
    // Block boundaries: a line indented by one tab (or two spaces) opening or closing a block.
    bool open = (line.rfind("\tchain ", 0) == 0 || line.rfind("\tmap ", 0) == 0 ||
                 line.rfind("\tset ", 0) == 0);
    if (open) cur.clear();
    cur += line + "\n";
    if (line == "\t}") blocks.push_back(nft::normalize_listing(cur));
    if (line.rfind("table ", 0) == 0) head = line;
  }
  std::sort(blocks.begin(), blocks.end());
  std::string out = head + "\n";
  for (const std::string& b : blocks) out += b + "\n";
  return out;
}

std::vector<Golden> goldens() {
  std::vector<Golden> out;
  {
    ApiObjects o;
    o.add("web", {{"clusterIP", "10.96.0.20"}, {"ports", ports("http", 80)}},
          {{"10.244.1.5", "node1"}, {"10.244.2.5", "node2"}, {"10.244.3.5", "node3"}}, "http",
          8080);
    out.push_back(
        {"clusterip-3-endpoints", o.map(),
         listing(
             {.service_ips = "10.96.0.20 . tcp . 80 : goto service-GB7ZZQEM-default/web/tcp/http"},
             R"(@STATIC@
  chain endpoint-C3TUYKI3-default/web/tcp/http__10.244.1.5/8080 {
    ip saddr 10.244.1.5 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.1.5:8080
  }

  chain endpoint-ETFDNHNL-default/web/tcp/http__10.244.3.5/8080 {
    ip saddr 10.244.3.5 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.3.5:8080
  }

  chain endpoint-JB3KCOE3-default/web/tcp/http__10.244.2.5/8080 {
    ip saddr 10.244.2.5 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.2.5:8080
  }

  chain service-GB7ZZQEM-default/web/tcp/http {
    ip daddr 10.96.0.20 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    numgen random mod 3 vmap { 0 : goto endpoint-C3TUYKI3-default/web/tcp/http__10.244.1.5/8080, 1 : goto endpoint-JB3KCOE3-default/web/tcp/http__10.244.2.5/8080, 2 : goto endpoint-ETFDNHNL-default/web/tcp/http__10.244.3.5/8080 }
  }
}
)")});
  }
  {
    ApiObjects o;
    o.add("np",
          {{"clusterIP", "10.96.0.21"},
           {"type", "NodePort"},
           {"ports", ports("http", 80, "TCP", 30080)}},
          {{"10.244.1.6", "node1"}, {"10.244.2.6", "node2"}}, "http", 8080);
    out.push_back(
        {"nodeport", o.map(),
         listing(
             {.service_ips = "10.96.0.21 . tcp . 80 : goto service-QU2TOGX4-default/np/tcp/http",
              .nodeports = "tcp . 30080 : goto external-QU2TOGX4-default/np/tcp/http"},
             R"(@STATIC@
  chain endpoint-35TTZRRU-default/np/tcp/http__10.244.1.6/8080 {
    ip saddr 10.244.1.6 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.1.6:8080
  }

  chain endpoint-QADJ4I24-default/np/tcp/http__10.244.2.6/8080 {
    ip saddr 10.244.2.6 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.2.6:8080
  }

  chain external-QU2TOGX4-default/np/tcp/http {
    meta mark set meta mark | 0x00004000
    goto service-QU2TOGX4-default/np/tcp/http
  }

  chain service-QU2TOGX4-default/np/tcp/http {
    ip daddr 10.96.0.21 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    numgen random mod 2 vmap { 0 : goto endpoint-35TTZRRU-default/np/tcp/http__10.244.1.6/8080, 1 : goto endpoint-QADJ4I24-default/np/tcp/http__10.244.2.6/8080 }
  }
}
)")});
  }
  {
    ApiObjects o;
    o.add("lb",
          {{"clusterIP", "10.96.0.22"},
           {"type", "LoadBalancer"},
           {"externalIPs", {"192.0.2.10"}},
           {"ports", ports("", 80, "TCP", 30081)}},
          {{"10.244.2.7", "node2"}}, "", 80, "TCP",
          {{"loadBalancer", {{"ingress", {{{"ip", "10.250.0.200"}}}}}}});
    out.push_back({"loadbalancer-externalips", o.map(),
                   listing({.service_ips =
                                "10.96.0.22 . tcp . 80 : goto service-YTST3GUL-default/lb/tcp/, "
                                "10.250.0.200 . tcp . 80 : goto external-YTST3GUL-default/lb/tcp/, "
                                "192.0.2.10 . tcp . 80 : goto external-YTST3GUL-default/lb/tcp/",
                            .nodeports = "tcp . 30081 : goto external-YTST3GUL-default/lb/tcp/"},
                           R"(@STATIC@
  chain endpoint-BUX5U4AF-default/lb/tcp/__10.244.2.7/80 {
    ip saddr 10.244.2.7 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.2.7:80
  }

  chain external-YTST3GUL-default/lb/tcp/ {
    meta mark set meta mark | 0x00004000
    goto service-YTST3GUL-default/lb/tcp/
  }

  chain service-YTST3GUL-default/lb/tcp/ {
    ip daddr 10.96.0.22 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    numgen random mod 1 vmap { 0 : goto endpoint-BUX5U4AF-default/lb/tcp/__10.244.2.7/80 }
  }
}
)")});
  }
  {
    ApiObjects o;
    o.add("local",
          {{"clusterIP", "10.96.0.23"},
           {"type", "NodePort"},
           {"externalTrafficPolicy", "Local"},
           {"ports", ports("http", 80, "TCP", 30082)}},
          {{"10.244.1.8", "node1"}, {"10.244.2.8", "node2"}}, "http", 8080);
    o.add("remote",
          {{"clusterIP", "10.96.0.24"},
           {"type", "NodePort"},
           {"externalTrafficPolicy", "Local"},
           {"ports", ports("http", 80, "TCP", 30083)}},
          {{"10.244.2.9", "node2"}}, "http", 8080);
    out.push_back(
        {"external-traffic-policy-local", o.map(),
         listing({.service_ips =
                      "10.96.0.23 . tcp . 80 : goto service-JQ3LB3W6-default/local/tcp/http, "
                      "10.96.0.24 . tcp . 80 : goto service-QEADQSA5-default/remote/tcp/http",
                  .nodeports = "tcp . 30082 : goto external-JQ3LB3W6-default/local/tcp/http, tcp . "
                               "30083 : goto external-QEADQSA5-default/remote/tcp/http"},
                 R"(@STATIC@
  chain endpoint-NIB7DQ24-default/local/tcp/http__10.244.2.8/8080 {
    ip saddr 10.244.2.8 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.2.8:8080
  }

  chain endpoint-WIBLVIOM-default/local/tcp/http__10.244.1.8/8080 {
    ip saddr 10.244.1.8 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.1.8:8080
  }

  chain external-JQ3LB3W6-default/local/tcp/http {
    ip saddr 10.244.0.0/16 goto service-JQ3LB3W6-default/local/tcp/http comment "short-circuit pod traffic"
    fib saddr type local meta mark set meta mark | 0x00004000 comment "masquerade local traffic"
    fib saddr type local goto service-JQ3LB3W6-default/local/tcp/http comment "short-circuit local traffic"
    goto local-JQ3LB3W6-default/local/tcp/http
  }

  chain local-JQ3LB3W6-default/local/tcp/http {
    numgen random mod 1 vmap { 0 : goto endpoint-WIBLVIOM-default/local/tcp/http__10.244.1.8/8080 }
  }

  chain service-JQ3LB3W6-default/local/tcp/http {
    ip daddr 10.96.0.23 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    numgen random mod 2 vmap { 0 : goto endpoint-WIBLVIOM-default/local/tcp/http__10.244.1.8/8080, 1 : goto endpoint-NIB7DQ24-default/local/tcp/http__10.244.2.8/8080 }
  }

  chain endpoint-DNCVJ4VC-default/remote/tcp/http__10.244.2.9/8080 {
    ip saddr 10.244.2.9 meta mark set meta mark | 0x00004000
    meta l4proto tcp dnat to 10.244.2.9:8080
  }

  chain external-QEADQSA5-default/remote/tcp/http {
    ip saddr 10.244.0.0/16 goto service-QEADQSA5-default/remote/tcp/http comment "short-circuit pod traffic"
    fib saddr type local meta mark set meta mark | 0x00004000 comment "masquerade local traffic"
    fib saddr type local goto service-QEADQSA5-default/remote/tcp/http comment "short-circuit local traffic"
    goto local-QEADQSA5-default/remote/tcp/http
  }

  chain local-QEADQSA5-default/remote/tcp/http {
    drop comment "no local endpoints"
  }

  chain service-QEADQSA5-default/remote/tcp/http {
    ip daddr 10.96.0.24 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    numgen random mod 1 vmap { 0 : goto endpoint-DNCVJ4VC-default/remote/tcp/http__10.244.2.9/8080 }
  }
}
)")});
  }
  {
    ApiObjects o;
    o.add("empty",
          {{"clusterIP", "10.96.0.25"},
           {"type", "NodePort"},
           {"ports", ports("http", 80, "TCP", 30084)}},
          {}, "http", 8080);
    out.push_back({"no-endpoints-reject", o.map(),
                   listing({.no_endpoint_services = "10.96.0.25 . tcp . 80 : goto reject-chain",
                            .no_endpoint_nodeports = "tcp . 30084 : goto reject-chain"},
                           R"(@STATIC@}
)")});
  }
  {
    ApiObjects o;
    o.add("sticky",
          {{"clusterIP", "10.96.0.26"},
           {"sessionAffinity", "ClientIP"},
           {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 300}}}}},
           {"ports", ports("http", 80)}},
          {{"10.244.1.10", "node1"}, {"10.244.2.10", "node2"}}, "http", 8080);
    out.push_back(
        {"session-affinity", o.map(),
         listing({.service_ips =
                      "10.96.0.26 . tcp . 80 : goto service-LBIPX4XU-default/sticky/tcp/http"},
                 R"(  set affinity-5ZOHLYQX-default/sticky/tcp/http__10.244.2.10/8080 {
    type ipv4_addr
    size 65535
    flags dynamic,timeout
    timeout 5m
  }

  set affinity-GWANOPQG-default/sticky/tcp/http__10.244.1.10/8080 {
    type ipv4_addr
    size 65535
    flags dynamic,timeout
    timeout 5m
  }

@STATIC@
  chain endpoint-BZZJNP2N-default/sticky/tcp/http__10.244.1.10/8080 {
    ip saddr 10.244.1.10 meta mark set meta mark | 0x00004000
    update @affinity-GWANOPQG-default/sticky/tcp/http__10.244.1.10/8080 { ip saddr }
    meta l4proto tcp dnat to 10.244.1.10:8080
  }

  chain endpoint-EKSTVVSK-default/sticky/tcp/http__10.244.2.10/8080 {
    ip saddr 10.244.2.10 meta mark set meta mark | 0x00004000
    update @affinity-5ZOHLYQX-default/sticky/tcp/http__10.244.2.10/8080 { ip saddr }
    meta l4proto tcp dnat to 10.244.2.10:8080
  }

  chain service-LBIPX4XU-default/sticky/tcp/http {
    ip daddr 10.96.0.26 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    ip saddr @affinity-GWANOPQG-default/sticky/tcp/http__10.244.1.10/8080 goto endpoint-BZZJNP2N-default/sticky/tcp/http__10.244.1.10/8080
    ip saddr @affinity-5ZOHLYQX-default/sticky/tcp/http__10.244.2.10/8080 goto endpoint-EKSTVVSK-default/sticky/tcp/http__10.244.2.10/8080
    numgen random mod 2 vmap { 0 : goto endpoint-BZZJNP2N-default/sticky/tcp/http__10.244.1.10/8080, 1 : goto endpoint-EKSTVVSK-default/sticky/tcp/http__10.244.2.10/8080 }
  }
}
)")});
  }
  {
    ApiObjects o;
    o.add("headless", {{"clusterIP", "None"}, {"ports", ports("http", 80)}},
          {{"10.244.1.11", "node1"}}, "http", 8080);
    o.add("dns", {{"clusterIP", "10.96.0.27"}, {"ports", ports("dns", 53, "UDP")}},
          {{"10.244.1.12", "node1"}}, "dns", 5353, "UDP");
    out.push_back(
        {"headless-skipped-and-udp", o.map(),
         listing(
             {.service_ips = "10.96.0.27 . udp . 53 : goto service-YJ6LADPD-default/dns/udp/dns"},
             R"(@STATIC@
  chain endpoint-AQDDAWSQ-default/dns/udp/dns__10.244.1.12/5353 {
    ip saddr 10.244.1.12 meta mark set meta mark | 0x00004000
    meta l4proto udp dnat to 10.244.1.12:5353
  }

  chain service-YJ6LADPD-default/dns/udp/dns {
    ip daddr 10.96.0.27 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000
    numgen random mod 1 vmap { 0 : goto endpoint-AQDDAWSQ-default/dns/udp/dns__10.244.1.12/5353 }
  }
}
)")});
  }
  return out;
}

}  // namespace skiff::services::testdata

// Not a test: prints each reference table as the fake lists it (to review a layout change).
#include <catch2/catch.hpp>
#include <cstdio>

#include "netagent/nft/fake.h"

TEST_CASE("print the reference tables", "[.][golden-print]") {
  using namespace skiff::services;
  for (const testdata::Golden& g : testdata::goldens()) {
    skiff::nft::FakeNftTables fake;
    ProxierOptions o;
    auto p = Proxier::create(fake, o);
    REQUIRE(p.is_ok());
    REQUIRE(p.value()->sync(g.map).is_ok());
    std::printf("==== %s\n%s", g.name.c_str(), fake.list().c_str());
  }
}
