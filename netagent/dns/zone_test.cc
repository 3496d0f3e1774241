#include "netagent/dns/zone.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>

namespace skiff::dns {
namespace {

using nlohmann::json;

json svc(const std::string& ns, const std::string& name, const std::string& cluster_ip,
         json ports = json::array(), const std::string& type = "ClusterIP") {
  json s = {{"metadata", {{"namespace", ns}, {"name", name}}},
            {"spec", {{"type", type}, {"clusterIP", cluster_ip}, {"ports", ports}}}};
  if (cluster_ip != "None" && !cluster_ip.empty()) s["spec"]["clusterIPs"] = {cluster_ip};
  return s;
}

json eps(const std::string& ns, const std::string& name, json addresses, json ports,
         json not_ready = json::array()) {
  return {{"metadata", {{"namespace", ns}, {"name", name}}},
          {"subsets",
           {{{"addresses", addresses}, {"notReadyAddresses", not_ready}, {"ports", ports}}}}};
}

std::shared_ptr<const Zone> zone() {
  std::vector<json> services = {
      svc("default", "web", "10.96.0.5",
          {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}},
           {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}},
           {{"port", 8080}, {"protocol", "TCP"}}}),
      svc("default", "db", "None", {{{"name", "pg"}, {"port", 5432}, {"protocol", "TCP"}}}),
      svc("default", "empty", "None"),
      svc("prod", "ext", "", json::array(), "ExternalName"),
      svc("prod", "pending", ""),
  };
  services[3]["spec"]["externalName"] = "db.example.com.";
  std::vector<json> endpoints = {
      eps("default", "db",
          {{{"ip", "10.244.1.5"}, {"hostname", "db-0"}},
           {{"ip", "10.244.2.6"}, {"hostname", "db-1"}},
           {{"ip", "10.244.3.7"}}},
          {{{"name", "pg"}, {"port", 5432}, {"protocol", "TCP"}}},
          {{{"ip", "10.244.4.8"}, {"hostname", "db-2"}}}),
      eps("default", "web", {{{"ip", "10.244.1.9"}}}, {{{"name", "http"}, {"port", 8080}}}),
  };
  return Zone::build(ZoneConfig{}, services, endpoints);
}

std::vector<std::string> texts(const std::vector<Record>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(to_string(r));
  std::sort(out.begin(), out.end());
  return out;
}

Answer ask(const std::string& name, uint16_t type) {
  return zone()->lookup({name, type, kClassIN});
}

TEST_CASE("ClusterIP Service: A, case-insensitive, owner spelled as asked") {
  Answer a = ask("web.default.svc.cluster.local", kA);
  CHECK(a.rcode == kNoError);
  CHECK(texts(a.answers) ==
        std::vector<std::string>{"web.default.svc.cluster.local. 5 IN A 10.96.0.5"});
  a = ask("WEB.Default.SVC.cluster.local.", kA);
  CHECK(texts(a.answers) ==
        std::vector<std::string>{"WEB.Default.SVC.cluster.local. 5 IN A 10.96.0.5"});
  CHECK(a.authority.empty());
}

TEST_CASE("NODATA vs NXDOMAIN, with the SOA") {
  Answer a = ask("web.default.svc.cluster.local", kAAAA);
  CHECK(a.rcode == kNoError);
  CHECK(a.answers.empty());
  REQUIRE(a.authority.size() == 1);
  CHECK(a.authority[0].type == kSOA);
  CHECK(a.authority[0].name == "cluster.local");
  CHECK(a.authority[0].soa.minimum == 5);
  a = ask("nope.default.svc.cluster.local", kA);
  CHECK(a.rcode == kNxDomain);
  REQUIRE(a.authority.size() == 1);
  CHECK(a.authority[0].type == kSOA);
  // Empty non-terminals exist.
  CHECK(ask("default.svc.cluster.local", kA).rcode == kNoError);
  CHECK(ask("svc.cluster.local", kA).rcode == kNoError);
  CHECK(ask("_tcp.web.default.svc.cluster.local", kA).rcode == kNoError);
  CHECK(ask("nons.svc.cluster.local", kA).rcode == kNxDomain);
  CHECK(ask("www.google.com.default.svc.cluster.local", kA).rcode == kNxDomain);
  // A Service without an address yet exists but has no A.
  a = ask("pending.prod.svc.cluster.local", kA);
  CHECK(a.rcode == kNoError);
  CHECK(a.answers.empty());
  // A headless Service without endpoints: NODATA.
  CHECK(ask("empty.default.svc.cluster.local", kA).rcode == kNoError);
  CHECK(ask("empty.default.svc.cluster.local", kA).answers.empty());
}

TEST_CASE("SRV for named ports of a ClusterIP Service") {
  Answer a = ask("_http._tcp.web.default.svc.cluster.local", kSRV);
  CHECK(texts(a.answers) ==
        std::vector<std::string>{"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 "
                                 "web.default.svc.cluster.local."});
  a = ask("_dns._udp.web.default.svc.cluster.local", kSRV);
  CHECK(a.answers.size() == 1);
  CHECK(a.answers[0].port == 53);
  CHECK(ask("_dns._tcp.web.default.svc.cluster.local", kSRV).rcode == kNxDomain);
  CHECK(ask("_http._tcp.web.default.svc.cluster.local", kA).rcode == kNoError);
}

TEST_CASE("headless Service: ready endpoint IPs, hostnames, SRV per endpoint, PTR") {
  Answer a = ask("db.default.svc.cluster.local", kA);
  CHECK(texts(a.answers) ==
        std::vector<std::string>{"db.default.svc.cluster.local. 5 IN A 10.244.1.5",
                                 "db.default.svc.cluster.local. 5 IN A 10.244.2.6",
                                 "db.default.svc.cluster.local. 5 IN A 10.244.3.7"});  // not .8
  CHECK(texts(ask("db-1.db.default.svc.cluster.local", kA).answers) ==
        std::vector<std::string>{"db-1.db.default.svc.cluster.local. 5 IN A 10.244.2.6"});
  // Not ready: not served.
  CHECK(ask("db-2.db.default.svc.cluster.local", kA).rcode == kNxDomain);
  // No hostname: the dashed address.
  CHECK(ask("10-244-3-7.db.default.svc.cluster.local", kA).answers.size() == 1);
  CHECK(texts(ask("_pg._tcp.db.default.svc.cluster.local", kSRV).answers) ==
        std::vector<std::string>{"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 33 5432 "
                                 "10-244-3-7.db.default.svc.cluster.local.",
                                 "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 33 5432 "
                                 "db-0.db.default.svc.cluster.local.",
                                 "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 33 5432 "
                                 "db-1.db.default.svc.cluster.local."});
  CHECK(texts(ask("5.1.244.10.in-addr.arpa", kPTR).answers) ==
        std::vector<std::string>{
            "5.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."});
  // Endpoints of a ClusterIP Service do not make names.
  CHECK(ask("10-244-1-9.web.default.svc.cluster.local", kA).rcode == kNxDomain);
}

TEST_CASE("PTR for a ClusterIP; reverse zones are authoritative only inside the CIDRs") {
  auto z = zone();
  CHECK(
      texts(ask("5.0.96.10.in-addr.arpa", kPTR).answers) ==
      std::vector<std::string>{"5.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."});
  Answer a = ask("99.0.96.10.in-addr.arpa", kPTR);
  CHECK(a.rcode == kNxDomain);
  REQUIRE(a.authority.size() == 1);
  CHECK(a.authority[0].name == "96.10.in-addr.arpa");
  CHECK(z->authoritative("5.0.96.10.in-addr.arpa"));
  CHECK(z->authoritative("96.10.in-addr.arpa"));
  CHECK(z->authoritative("7.3.244.10.in-addr.arpa."));
  CHECK_FALSE(z->authoritative("10.in-addr.arpa"));
  CHECK_FALSE(z->authoritative("1.1.168.192.in-addr.arpa"));
  CHECK(z->authoritative("cluster.local"));
  CHECK(z->authoritative("a.b.CLUSTER.local"));
  CHECK_FALSE(z->authoritative("example.com"));
  CHECK_FALSE(z->authoritative("notcluster.local"));
  CHECK(ask("96.10.in-addr.arpa", kSOA).answers.size() == 1);
}

TEST_CASE("ExternalName: CNAME for every type") {
  Answer a = ask("ext.prod.svc.cluster.local", kA);
  CHECK(a.rcode == kNoError);
  CHECK(texts(a.answers) ==
        std::vector<std::string>{"ext.prod.svc.cluster.local. 5 IN CNAME db.example.com."});
  CHECK(ask("ext.prod.svc.cluster.local", kCNAME).answers.size() == 1);
  CHECK(ask("ext.prod.svc.cluster.local", kAAAA).answers.size() == 1);
}

TEST_CASE("pod names and the apex") {
  CHECK(texts(ask("10-244-1-5.default.pod.cluster.local", kA).answers) ==
        std::vector<std::string>{"10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5"});
  CHECK(ask("10-244-1-5.default.pod.cluster.local", kAAAA).rcode == kNoError);
  CHECK(ask("10-244-1-5.default.pod.cluster.local", kAAAA).answers.empty());
  CHECK(ask("10-244-1-999.default.pod.cluster.local", kA).rcode == kNxDomain);
  CHECK(ask("foo.default.pod.cluster.local", kA).rcode == kNxDomain);
  CHECK(ask("default.pod.cluster.local", kA).rcode == kNoError);
  CHECK(ask("cluster.local", kSOA).answers.size() == 1);
  CHECK(texts(ask("cluster.local", kNS).answers) ==
        std::vector<std::string>{"cluster.local. 5 IN NS ns.dns.cluster.local."});
  CHECK(texts(ask("ns.dns.cluster.local", kA).answers) ==
        std::vector<std::string>{"ns.dns.cluster.local. 5 IN A 10.96.0.10"});
  CHECK(ask("cluster.local", kAXFR).rcode == kRefused);
  CHECK(ask("web.default.svc.cluster.local", kANY).answers.size() == 1);
}

TEST_CASE("reverse empty non-terminals; a reverse label is a decimal octet as written") {
  CHECK(ask("0.96.10.in-addr.arpa", kPTR).rcode == kNoError);  // 10.96.0.5 lies under it
  CHECK(ask("0.96.10.in-addr.arpa", kPTR).answers.empty());
  CHECK(ask("7.96.10.in-addr.arpa", kPTR).rcode == kNxDomain);
  CHECK(ask("05.0.96.10.in-addr.arpa", kPTR).rcode == kNxDomain);
  CHECK(ask("x.0.96.10.in-addr.arpa", kPTR).rcode == kNxDomain);
  CHECK(ask("1.5.0.96.10.in-addr.arpa", kPTR).rcode == kNxDomain);
}

TEST_CASE("names are answered from the objects as they are now; PTR from the last build") {
  // The lookups read a map the test changes after the build (the server's are its informers).
  auto svcs = std::make_shared<std::map<std::string, json>>();
  (*svcs)["default/web"] = svc("default", "web", "10.96.0.5");
  auto find = [svcs](const std::string& key) -> std::optional<json> {
    auto it = svcs->find(key);
    if (it == svcs->end()) return std::nullopt;
    return it->second;
  };
  auto z = Zone::build(
      ZoneConfig{},
      [&](const std::function<void(const json&)>& fn) {
        for (const auto& [k, v] : *svcs) fn(v);
      },
      find, [](const std::string&) { return std::optional<json>(); });
  auto a = [&](const std::string& name) { return z->lookup({name, kA, kClassIN}); };
  REQUIRE(a("web.default.svc.cluster.local").answers.size() == 1);
  CHECK(a("web.default.svc.cluster.local").answers[0].a == 0x0A600005);
  (*svcs)["default/web"]["spec"]["clusterIP"] = "10.96.0.6";
  (*svcs)["default/web"]["spec"]["clusterIPs"] = {"10.96.0.6"};
  REQUIRE(a("web.default.svc.cluster.local").answers.size() == 1);
  CHECK(a("web.default.svc.cluster.local").answers[0].a == 0x0A600006);
  svcs->erase("default/web");
  CHECK(a("web.default.svc.cluster.local").rcode == kNxDomain);
  // The PTR index is the build's until the next build.
  CHECK(z->lookup({"5.0.96.10.in-addr.arpa", kPTR, kClassIN}).answers.size() == 1);
}

TEST_CASE("garbage objects are skipped, never thrown on") {
  std::vector<json> services = {
      json(),
      json::array(),
      json{{"metadata", 5}},
      json{{"metadata", {{"name", "x"}, {"namespace", "d"}}}, {"spec", 1}},
      svc("d", "Bad.Name", "10.96.0.7"),
      svc("d", "ok", "fe80::1"),
      svc("d", "p", "10.96.0.8", {{{"name", "h"}, {"port", "80"}}})};
  std::vector<json> endpoints = {
      json{{"metadata", {{"name", "x"}, {"namespace", "d"}}}, {"subsets", 3}}};
  auto z = Zone::build(ZoneConfig{}, services, endpoints);
  CHECK(z->lookup({"ok.d.svc.cluster.local", kA, kClassIN}).rcode == kNoError);
  CHECK(z->lookup({"p.d.svc.cluster.local", kA, kClassIN}).answers.size() == 1);
  CHECK(z->lookup({"_h._tcp.p.d.svc.cluster.local", kSRV, kClassIN}).rcode == kNxDomain);
}

TEST_CASE("cidrs") {
  CHECK(parse_cidr("10.96.0.0/16")->prefix == 16);
  CHECK(parse_cidr("10.96.1.2/16")->net == 0x0A600000);
  CHECK_FALSE(parse_cidr("10.96.0.0"));
  CHECK_FALSE(parse_cidr("10.96.0.0/33"));
  CHECK_FALSE(parse_cidr("10.96.0.0/x"));
}

}  // namespace
}  // namespace skiff::dns

namespace skiff::dns {
namespace {

// Not a timing assertion: prints how long a 10,000-Service zone takes to build and answer.
// Run by hand: skiff_dns_test "[.bench]".
TEST_CASE("zone at 10,000 Services", "[.bench]") {
  std::vector<json> services, endpoints;
  for (int i = 0; i < 10000; ++i) {
    std::string name = "svc" + std::to_string(i);
    bool headless = i % 10 == 0;
    std::string ip = "10.96." + std::to_string(i / 250 + 1) + "." + std::to_string(i % 250 + 1);
    services.push_back(svc("ns" + std::to_string(i % 50), name, headless ? "None" : ip,
                           {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}));
    json addrs = json::array();
    for (int k = 0; k < 5; ++k)
      addrs.push_back({{"ip", "10.244." + std::to_string(i % 200) + "." +
                                  std::to_string(k + 1 + (i / 200) % 50 * 5)}});
    endpoints.push_back(
        eps("ns" + std::to_string(i % 50), name, addrs, {{{"name", "http"}, {"port", 8080}}}));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto z = Zone::build(ZoneConfig{}, services, endpoints);
  auto t1 = std::chrono::steady_clock::now();
  int n = 0;
  for (int i = 0; i < 100000; ++i) {
    int s = i % 10000;
    Answer a = z->lookup(
        {"svc" + std::to_string(s) + ".ns" + std::to_string(s % 50) + ".svc.cluster.local", kA,
         kClassIN});
    n += static_cast<int>(a.answers.size());
  }
  auto t2 = std::chrono::steady_clock::now();
  CHECK(n > 100000);
  using ms = std::chrono::duration<double, std::milli>;
  std::printf("zone: %zu records, build %.1f ms, lookup %.2f us each\n", z->record_count(),
              ms(t1 - t0).count(), ms(t2 - t1).count() * 1000 / 100000);
}

}  // namespace
}  // namespace skiff::dns
