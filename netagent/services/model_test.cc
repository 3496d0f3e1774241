#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "netagent/services/proxier.h"

using namespace skiff::services;
using json = nlohmann::json;

namespace {

Ipv4 ip(const char* s) {
  Ipv4 a = 0;
  REQUIRE(parse_ipv4(s, &a));
  return a;
}

json service(const char* name, json spec, json status = json::object()) {
  return json{{"metadata", {{"namespace", "default"}, {"name", name}}},
              {"spec", std::move(spec)},
              {"status", std::move(status)}};
}

json endpoints(const char* name, json subsets) {
  return json{{"metadata", {{"namespace", "default"}, {"name", name}}},
              {"subsets", std::move(subsets)}};
}

}  // namespace

TEST_CASE("parse_ipv4 is strict", "[model]") {
  Ipv4 a;
  CHECK(parse_ipv4("10.96.0.1", &a));
  CHECK(a == 0x0a600001);
  CHECK(ipv4_to_string(a) == "10.96.0.1");
  for (const char* bad : {"", "10.96.0", "10.96.0.1.2", "256.1.1.1", "01.2.3.4", "a.b.c.d",
                          "10.96.0.1 ", "::1", "1..2.3"}) {
    INFO(bad);
    CHECK_FALSE(parse_ipv4(bad, &a));
  }
}

TEST_CASE("a ClusterIP Service with named ports and its Endpoints", "[model]") {
  json svc = service("web", {{"clusterIP", "10.96.0.20"},
                             {"type", "ClusterIP"},
                             {"ports",
                              {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}},
                               {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}}}}});
  json eps =
      endpoints("web", {{{"addresses",
                          {{{"ip", "10.244.1.5"}, {"nodeName", "node1"}},
                           {{"ip", "10.244.2.5"}, {"nodeName", "node2"}}}},
                         {"notReadyAddresses", {{{"ip", "10.244.3.5"}, {"nodeName", "node1"}}}},
                         {"ports",
                          {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}},
                           {{"name", "dns"}, {"port", 5353}, {"protocol", "UDP"}}}}}});
  std::vector<Skipped> skipped;
  ServiceMap m = build_service_map({svc}, {eps}, ModelOptions{"node1"}, &skipped);
  CHECK(skipped.empty());
  REQUIRE(m.size() == 2);
  const ServicePort& http = m.at("default/web:http/TCP");
  CHECK(http.cluster_ip == ip("10.96.0.20"));
  CHECK(http.port == 80);
  CHECK(http.protocol == Protocol::kTcp);
  REQUIRE(http.endpoints.size() == 2);  // the not-ready address is not one
  CHECK(http.endpoints[0] == Endpoint{ip("10.244.1.5"), 8080, true});
  CHECK(http.endpoints[1] == Endpoint{ip("10.244.2.5"), 8080, false});
  const ServicePort& dns = m.at("default/web:dns/UDP");
  CHECK(dns.protocol == Protocol::kUdp);
  REQUIRE(dns.endpoints.size() == 2);
  CHECK(dns.endpoints[0].port == 5353);
  CHECK(http.affinity_timeout_seconds == 0);
  CHECK_FALSE(http.has_external());
}

TEST_CASE("NodePort, LoadBalancer, externalIPs, policies and affinity", "[model]") {
  json svc =
      service("lb",
              {{"clusterIP", "10.96.0.30"},
               {"type", "LoadBalancer"},
               {"externalIPs", {"192.0.2.9", "192.0.2.8", "192.0.2.9"}},
               {"externalTrafficPolicy", "Local"},
               {"internalTrafficPolicy", "Local"},
               {"sessionAffinity", "ClientIP"},
               {"ports", {{{"port", 80}, {"nodePort", 30080}}}}},
              {{"loadBalancer", {{"ingress", {{{"ip", "10.250.0.200"}}, {{"hostname", "x"}}}}}}});
  std::vector<Skipped> skipped;
  auto ports = service_ports(svc, nullptr, ModelOptions{"n"}, &skipped);
  CHECK(skipped.empty());
  REQUIRE(ports.size() == 1);
  const ServicePort& p = ports[0];
  CHECK(p.key() == "default/lb:/TCP");
  CHECK(p.node_port == 30080);
  CHECK(p.external_ips == std::vector<Ipv4>{ip("192.0.2.8"), ip("192.0.2.9")});
  CHECK(p.load_balancer_ips == std::vector<Ipv4>{ip("10.250.0.200")});
  CHECK(p.external_policy_local);
  CHECK(p.internal_policy_local);
  CHECK(p.affinity_timeout_seconds == kDefaultAffinityTimeoutSeconds);
  CHECK(p.endpoints.empty());
  CHECK(p.has_external());

  svc["spec"]["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 60}}}};
  svc["spec"]["type"] = "NodePort";  // ingress IPs only count for type LoadBalancer
  ports = service_ports(svc, nullptr, ModelOptions{"n"}, &skipped);
  REQUIRE(ports.size() == 1);
  CHECK(ports[0].affinity_timeout_seconds == 60);
  CHECK(ports[0].load_balancer_ips.empty());
}

TEST_CASE("headless and ExternalName Services have no rules", "[model]") {
  std::vector<Skipped> skipped;
  json headless = service("h", {{"clusterIP", "None"}, {"ports", {{{"port", 80}}}}});
  json empty = service("e", {{"ports", {{{"port", 80}}}}});
  json ext = service("x", {{"type", "ExternalName"}, {"externalName", "example.com"}});
  CHECK(build_service_map({headless, empty, ext}, {}, ModelOptions{}, &skipped).empty());
  CHECK(skipped.empty());
}

TEST_CASE("garbage is skipped with a reason, never thrown", "[model]") {
  std::vector<Skipped> skipped;
  std::vector<json> garbage = {
      json(nullptr),
      json("string"),
      json::array(),
      json{{"metadata", 5}},
      service("a", json(7)),
      service("b", {{"clusterIP", 12}}),
      service("c", {{"clusterIP", "10.96.0.300"}, {"ports", {{{"port", 80}}}}}),
      service("d", {{"clusterIP", "10.96.0.4"}, {"ports", "x"}}),
      service("e", {{"clusterIP", "10.96.0.5"},
                    {"externalIPs", {"nope", 7}},
                    {"sessionAffinity", "ClientIP"},
                    {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", "x"}}}}},
                    {"ports",
                     {{{"port", 0}},
                      {{"port", 70000}},
                      {{"port", "80"}},
                      {{"port", 81}, {"protocol", "ICMP"}},
                      {{"port", 82}, {"nodePort", -1}},
                      {{"name", "ok"}, {"port", 83}},
                      7}}})};
  json bad_eps = endpoints("e", {{{"addresses", {{{"ip", "x"}}, 5, {{"ip", "10.244.0.9"}}}},
                                  {"ports", {{{"name", "ok"}, {"port", "80"}}, 3}}},
                                 7,
                                 {{"addresses", {{{"ip", "10.244.0.8"}}}},
                                  {"ports", {{{"name", "ok"}, {"port", 8083}}}}}});
  ServiceMap m;
  REQUIRE_NOTHROW(m = build_service_map(garbage, {bad_eps, json(nullptr), json{{"metadata", 1}}},
                                        ModelOptions{"n"}, &skipped));
  // e:82 (node port dropped) and e:ok survive.
  REQUIRE(m.size() == 2);
  CHECK(m.at("default/e:/TCP").port == 82);
  CHECK(m.at("default/e:/TCP").node_port == 0);
  const ServicePort& ok = m.at("default/e:ok/TCP");
  CHECK(ok.affinity_timeout_seconds == kDefaultAffinityTimeoutSeconds);
  REQUIRE(ok.endpoints.size() == 1);
  CHECK(ok.endpoints[0] == Endpoint{ip("10.244.0.8"), 8083, false});
  std::string reasons;
  for (const Skipped& s : skipped) reasons += s.object + ": " + s.reason + "\n";
  INFO(reasons);
  CHECK(reasons.find("default/c: spec.clusterIP \"10.96.0.300\" is not an IPv4 address") !=
        std::string::npos);
  CHECK(reasons.find("default/e:: protocol \"ICMP\" is not TCP/UDP/SCTP") != std::string::npos);
  CHECK(reasons.find("port is missing or not 1..65535") != std::string::npos);
  CHECK(reasons.find("spec.externalIPs entry \"nope\" is not an IPv4 address") !=
        std::string::npos);
  CHECK(reasons.find("timeoutSeconds is not 1..86400") != std::string::npos);
  CHECK(reasons.find("nodePort is not 0..65535") != std::string::npos);
}

TEST_CASE("update_service replaces one Service's ports and reports change", "[model]") {
  ModelOptions opts{"node1"};
  json a = service("a", {{"clusterIP", "10.96.0.1"}, {"ports", {{{"name", "p"}, {"port", 80}}}}});
  json ab = service("ab", {{"clusterIP", "10.96.0.2"}, {"ports", {{{"port", 80}}}}});
  ServiceMap m = build_service_map({a, ab}, {}, opts, nullptr);
  REQUIRE(m.size() == 2);
  json eps = endpoints("a", {{{"addresses", {{{"ip", "10.244.1.1"}}}},
                              {"ports", {{{"name", "p"}, {"port", 8080}}}}}});
  CHECK(update_service(&m, "default", "a", &a, &eps, opts, nullptr));
  CHECK(m.at("default/a:p/TCP").endpoints.size() == 1);
  CHECK_FALSE(update_service(&m, "default", "a", &a, &eps, opts, nullptr));
  // Two ports now: the old one renamed.
  a["spec"]["ports"] = {{{"name", "q"}, {"port", 81}}, {{"name", "r"}, {"port", 82}}};
  CHECK(update_service(&m, "default", "a", &a, &eps, opts, nullptr));
  CHECK(m.count("default/a:p/TCP") == 0);
  CHECK(m.count("default/a:q/TCP") == 1);
  CHECK(m.count("default/ab:/TCP") == 1);  // "ab" is not a port of "a"
  CHECK(update_service(&m, "default", "a", nullptr, nullptr, opts, nullptr));
  CHECK(m.size() == 1);
  CHECK(m.count("default/ab:/TCP") == 1);
  CHECK_FALSE(update_service(&m, "default", "a", nullptr, nullptr, opts, nullptr));
}
