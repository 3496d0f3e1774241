// Service address allocation: the allocator on its own (ranges, banding, conflicts, dry run)
// and through the API (create, update rules, release on delete, restart rebuild, the
// `kubernetes` Service).
#include "apiserver/service_alloc.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <thread>

#include "apiserver/api.h"
#include "apiserver/api_impl.h"
#include "apiserver/protobuf.h"
#include "apiserver/store/store.h"
#include "proto/registry.h"

namespace skiff::apiserver {
namespace {

using proto::json;

const proto::ResourceType& svc_rt() {
  return *proto::Registry::builtin().find("", "v1", "services");
}

ServiceAllocator make_alloc(const std::string& cidr = "10.96.0.0/16",
                            const std::string& ports = "30000-32767") {
  return ServiceAllocator(*parse_service_cidr(cidr), *parse_port_range(ports), 42);
}

json svc(const std::string& name, const std::string& type = "ClusterIP", json extra = {}) {
  json s = {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec",
             {{"type", type},
              {"selector", {{"app", name}}},
              {"ports", json::array({{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}})}}}};
  if (extra.is_object()) s["spec"].update(extra);
  return s;
}

uint32_t ip_of(const std::string& s) { return *parse_ipv4(s); }

TEST_CASE("service ranges: parsing and errors") {
  auto c = parse_service_cidr("10.96.0.0/16");
  REQUIRE(c.is_ok());
  CHECK(c->str() == "10.96.0.0/16");
  CHECK(c->size() == 65536);
  CHECK(!parse_service_cidr("10.96.0.1/16").is_ok());  // host bits
  CHECK(parse_service_cidr("10.96.0.1/16").status().message().find("host bits") !=
        std::string::npos);
  CHECK(!parse_service_cidr("10.96.0.0").is_ok());
  CHECK(!parse_service_cidr("fd00::/108").is_ok());
  CHECK(!parse_service_cidr("10.0.0.0/8").is_ok());  // larger than /12
  CHECK(!parse_service_cidr("10.96.0.0/31").is_ok());
  CHECK(!parse_service_cidr("10.96.0.0/x").is_ok());
  CHECK(!parse_service_cidr("banana/16").is_ok());
  auto p = parse_port_range("30000-32767");
  REQUIRE(p.is_ok());
  CHECK(p->base == 30000);
  CHECK(p->size == 2768);
  CHECK(p->str() == "30000-32767");
  CHECK(!parse_port_range("32767-30000").is_ok());
  CHECK(!parse_port_range("0-100").is_ok());
  CHECK(!parse_port_range("30000-70000").is_ok());
  CHECK(!parse_port_range("a-b").is_ok());
  CHECK(parse_port_range("30080").is_ok());
}

TEST_CASE("service ranges: KEP-3070 band offsets") {
  CHECK(ip_band_offset(65536) == 256);  // /16
  CHECK(ip_band_offset(4096) == 256);   // /20
  CHECK(ip_band_offset(1024) == 64);    // /22: size/16
  CHECK(ip_band_offset(256) == 16);     // /24: min 16
  CHECK(ip_band_offset(16) == 0);       // /28: no band
  CHECK(port_band_offset(2768) == 86);  // 30000-32767
  CHECK(port_band_offset(100000) == 128);
  CHECK(port_band_offset(10) == 0);
}

TEST_CASE("service allocator: dynamic ClusterIPs come from the upper band, then the lower") {
  // /24: 254 usable, the lower band = the first 16 (10.96.0.1-10.96.0.16).
  auto a = make_alloc("10.96.0.0/24");
  std::set<std::string> got;
  for (int i = 0; i < 254 - 16; ++i) {
    json s = svc("s" + std::to_string(i));
    auto r = a.allocate_create(svc_rt(), s, false);
    REQUIRE(r.ok());
    std::string ip = s["spec"]["clusterIP"];
    CHECK(got.insert(ip).second);
    uint32_t v = ip_of(ip);
    CHECK(v > ip_of("10.96.0.16"));   // upper band only while it has room
    CHECK(v < ip_of("10.96.0.255"));  // never the broadcast address
  }
  // The upper band is full: the lower band now serves, never the network address.
  for (int i = 0; i < 16; ++i) {
    json s = svc("l" + std::to_string(i));
    REQUIRE(a.allocate_create(svc_rt(), s, false).ok());
    uint32_t v = ip_of(s["spec"]["clusterIP"]);
    CHECK(v >= ip_of("10.96.0.1"));
    CHECK(v <= ip_of("10.96.0.16"));
  }
  CHECK(a.ips_used() == 254);
  json full = svc("full");
  auto r = a.allocate_create(svc_rt(), full, false);
  REQUIRE(!r.ok());
  CHECK(r.error().code == 500);
  CHECK(r.error().message.find("failed to allocate a serviceIP: range is full") !=
        std::string::npos);
}

TEST_CASE("service allocator: fields set on create; headless and ExternalName") {
  auto a = make_alloc();
  json s = svc("web");
  REQUIRE(a.allocate_create(svc_rt(), s, false).ok());
  const json& sp = s["spec"];
  CHECK(sp["clusterIPs"] == json::array({sp["clusterIP"]}));
  CHECK(sp["ipFamilies"] == json::array({"IPv4"}));
  CHECK(sp["ipFamilyPolicy"] == "SingleStack");
  CHECK(!sp["ports"][0].contains("nodePort"));

  json h = svc("h", "ClusterIP", {{"clusterIP", "None"}});
  REQUIRE(a.allocate_create(svc_rt(), h, false).ok());
  CHECK(h["spec"]["clusterIP"] == "None");
  CHECK(h["spec"]["clusterIPs"] == json::array({"None"}));
  CHECK(h["spec"]["ipFamilyPolicy"] == "SingleStack");
  CHECK(h["spec"]["ipFamilies"] == json::array({"IPv4"}));

  json e = svc("e", "ExternalName", {{"externalName", "example.com"}});
  REQUIRE(a.allocate_create(svc_rt(), e, false).ok());
  CHECK(!e["spec"].contains("clusterIP"));
  CHECK(!e["spec"].contains("ipFamilies"));
  CHECK(a.ips_used() == 1);
}

TEST_CASE("service allocator: requested ClusterIP validated with Kubernetes' messages") {
  auto a = make_alloc();
  json s = svc("x", "ClusterIP", {{"clusterIP", "10.96.0.5"}});
  REQUIRE(a.allocate_create(svc_rt(), s, false).ok());
  CHECK(s["spec"]["clusterIPs"] == json::array({"10.96.0.5"}));
  json dup = svc("x", "ClusterIP", {{"clusterIP", "10.96.0.5"}});
  auto r = a.allocate_create(svc_rt(), dup, false);
  REQUIRE(!r.ok());
  CHECK(r.error().code == 422);
  CHECK(r.error().message ==
        "Service \"x\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.5\"}: "
        "failed to allocate IP 10.96.0.5: provided IP is already allocated");
  json out = svc("y", "ClusterIP", {{"clusterIPs", {"10.97.0.5"}}});
  r = a.allocate_create(svc_rt(), out, false);
  REQUIRE(!r.ok());
  CHECK(r.error().message ==
        "Service \"y\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.97.0.5\"}: "
        "failed to allocate IP 10.97.0.5: provided IP is not in the valid range. The range of "
        "valid IPs is 10.96.0.0/16");
  for (const char* edge : {"10.96.0.0", "10.96.255.255"}) {
    json b = svc("b", "ClusterIP", {{"clusterIP", edge}});
    CHECK(!a.allocate_create(svc_rt(), b, false).ok());
  }
  json v6 = svc("v6", "ClusterIP", {{"ipFamilies", {"IPv6"}}});
  r = a.allocate_create(svc_rt(), v6, false);
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on "
                               "this cluster") != std::string::npos);
  CHECK(a.ips_used() == 1);
}

TEST_CASE("service allocator: node ports, requested, shared by protocol, health check") {
  auto a = make_alloc();
  json s = svc("np", "NodePort", {{"clusterIP", "10.96.0.20"}});
  s["spec"]["ports"] =
      json::array({{{"name", "a"}, {"port", 80}, {"protocol", "TCP"}, {"nodePort", 30080}},
                   {{"name", "b"}, {"port", 53}, {"protocol", "TCP"}},
                   {{"name", "c"}, {"port", 53}, {"protocol", "UDP"}}});
  REQUIRE(a.allocate_create(svc_rt(), s, false).ok());
  const json& p = s["spec"]["ports"];
  CHECK(p[0]["nodePort"] == 30080);
  int np53 = p[1]["nodePort"];
  CHECK(np53 >= 30000 + 86);  // upper band
  CHECK(np53 <= 32767);
  CHECK(p[2]["nodePort"] == np53);
  CHECK(a.ports_used() == 2);

  json dup = svc("dup", "NodePort");
  dup["spec"]["ports"][0]["nodePort"] = 30080;
  auto r = a.allocate_create(svc_rt(), dup, false);
  REQUIRE(!r.ok());
  CHECK(r.error().message ==
        "Service \"dup\" is invalid: spec.ports[0].nodePort: Invalid value: "
        "30080: provided port is already allocated");
  CHECK(a.ips_used() == 1);  // the ClusterIP it took was given back
  dup["spec"]["ports"][0]["nodePort"] = 8080;
  r = a.allocate_create(svc_rt(), dup, false);
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("provided port is not in the valid range. The range of valid "
                               "ports is 30000-32767") != std::string::npos);

  json lb = svc("lb", "LoadBalancer",
                {{"externalTrafficPolicy", "Local"}, {"allocateLoadBalancerNodePorts", true}});
  REQUIRE(a.allocate_create(svc_rt(), lb, false).ok());
  CHECK(lb["spec"]["ports"][0]["nodePort"] > 0);
  CHECK(lb["spec"]["healthCheckNodePort"] > 0);
  CHECK(lb["spec"]["healthCheckNodePort"] != lb["spec"]["ports"][0]["nodePort"]);

  json lb2 = svc("lb2", "LoadBalancer", {{"allocateLoadBalancerNodePorts", false}});
  REQUIRE(a.allocate_create(svc_rt(), lb2, false).ok());
  CHECK(!lb2["spec"]["ports"][0].contains("nodePort"));
  CHECK(!lb2["spec"].contains("healthCheckNodePort"));
}

TEST_CASE("service allocator: dry run records nothing; revert and release give back") {
  auto a = make_alloc();
  json s = svc("d", "NodePort", {{"clusterIP", "10.96.0.7"}});
  auto r = a.allocate_create(svc_rt(), s, true);
  REQUIRE(r.ok());
  CHECK(s["spec"]["ports"][0]["nodePort"] > 0);
  CHECK(a.ips_used() == 0);
  CHECK(a.ports_used() == 0);
  a.revert(r.value());  // harmless for a dry run
  json real = svc("d", "NodePort", {{"clusterIP", "10.96.0.7"}});
  auto r2 = a.allocate_create(svc_rt(), real, false);
  REQUIRE(r2.ok());
  CHECK(a.ip_allocated("10.96.0.7"));
  a.revert(r2.value());  // the store write failed
  CHECK(!a.ip_allocated("10.96.0.7"));
  CHECK(a.ports_used() == 0);
  REQUIRE(a.allocate_create(svc_rt(), real, false).ok());
  a.release_service(real);
  CHECK(a.ips_used() == 0);
  CHECK(a.ports_used() == 0);
}

TEST_CASE("service allocator: update keeps, allocates and releases") {
  auto a = make_alloc();
  json old = svc("u", "NodePort");
  REQUIRE(a.allocate_create(svc_rt(), old, false).ok());
  const int np = old["spec"]["ports"][0]["nodePort"];
  const std::string ip = old["spec"]["clusterIP"];

  // A manifest without the allocated values (kubectl replace) keeps them.
  json m = svc("u", "NodePort");
  ServiceAllocator::prepare_update(m, old);
  CHECK(m["spec"]["clusterIP"] == ip);
  CHECK(m["spec"]["ports"][0]["nodePort"] == np);
  auto t = a.allocate_update(svc_rt(), m, old, false);
  REQUIRE(t.ok());
  CHECK(t.value().ips.empty());
  CHECK(t.value().ports.empty());
  CHECK(t.value().release_ports.empty());

  // A second port gets one; removing it later releases it.
  json two = m;
  two["spec"]["ports"].push_back({{"name", "https"}, {"port", 443}, {"protocol", "TCP"}});
  ServiceAllocator::prepare_update(two, m);
  t = a.allocate_update(svc_rt(), two, m, false);
  REQUIRE(t.ok());
  a.commit(t.value());
  const int np2 = two["spec"]["ports"][1]["nodePort"];
  CHECK(a.port_allocated(np2));
  json one = m;
  ServiceAllocator::prepare_update(one, two);
  t = a.allocate_update(svc_rt(), one, two, false);
  REQUIRE(t.ok());
  CHECK(t.value().release_ports == std::vector<int>{np2});
  a.commit(t.value());
  CHECK(!a.port_allocated(np2));

  // NodePort -> ClusterIP drops and releases the node port, keeps the ClusterIP.
  json cip = one;
  cip["spec"]["type"] = "ClusterIP";
  ServiceAllocator::prepare_update(cip, one);
  CHECK(!cip["spec"]["ports"][0].contains("nodePort"));
  t = a.allocate_update(svc_rt(), cip, one, false);
  REQUIRE(t.ok());
  a.commit(t.value());
  CHECK(!a.port_allocated(np));
  CHECK(a.ip_allocated(ip));

  // ClusterIP -> NodePort allocates; a failed write gives it back.
  json back = cip;
  back["spec"]["type"] = "NodePort";
  ServiceAllocator::prepare_update(back, cip);
  t = a.allocate_update(svc_rt(), back, cip, false);
  REQUIRE(t.ok());
  const int np3 = back["spec"]["ports"][0]["nodePort"];
  CHECK(a.port_allocated(np3));
  a.revert(t.value());
  CHECK(!a.port_allocated(np3));

  // -> ExternalName releases the ClusterIP; ExternalName -> ClusterIP allocates a new one.
  json en = cip;
  en["spec"]["type"] = "ExternalName";
  en["spec"]["externalName"] = "example.com";
  ServiceAllocator::prepare_update(en, cip);
  CHECK(!en["spec"].contains("clusterIP"));
  t = a.allocate_update(svc_rt(), en, cip, false);
  REQUIRE(t.ok());
  a.commit(t.value());
  CHECK(!a.ip_allocated(ip));
  json again = svc("u");
  ServiceAllocator::prepare_update(again, en);
  t = a.allocate_update(svc_rt(), again, en, false);
  REQUIRE(t.ok());
  CHECK(a.ip_allocated(again["spec"]["clusterIP"]));

  // Dry-run updates record nothing.
  json dry = again;
  dry["spec"]["type"] = "NodePort";
  t = a.allocate_update(svc_rt(), dry, again, true);
  REQUIRE(t.ok());
  CHECK(a.ports_used() == 0);
}

TEST_CASE("service allocator: rebuild marks stored values and reports clashes") {
  auto a = make_alloc();
  json s1 = svc("a", "NodePort", {{"clusterIP", "10.96.3.3"}});
  s1["spec"]["ports"][0]["nodePort"] = 30500;
  json s2 = svc("b", "ClusterIP", {{"clusterIP", "10.96.3.3"}});
  json s3 = svc("c", "ClusterIP", {{"clusterIP", "10.1.1.1"}});
  auto problems = a.rebuild({s1, s2, s3});
  CHECK(problems.size() == 2);
  CHECK(a.ip_allocated("10.96.3.3"));
  CHECK(a.port_allocated(30500));
  json req = svc("d", "ClusterIP", {{"clusterIP", "10.96.3.3"}});
  CHECK(!a.allocate_create(svc_rt(), req, false).ok());
}

// ---- through the API.

struct ApiFixture {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Api> api;

  explicit ApiFixture(store::Store* reuse = nullptr) {
    if (!reuse) store = store::make_memory_store();
    ApiOptions o;
    o.store = reuse ? reuse : store.get();
    o.kubernetes_service_interval_ms = 200;
    std::string err;
    api = Api::create(o, &err);
    INFO(err);
    REQUIRE(api);
  }
  ~ApiFixture() { api->shutdown(); }
  ServiceAllocator& alloc() { return *dynamic_cast<ApiImpl&>(*api).service_allocator(); }

  Response call(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& ct = "application/json") {
    Request r;
    r.method = method;
    r.raw_target = target;
    auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string kv = target.substr(q + 1);
      auto eq = kv.find('=');
      r.query.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (!body.empty()) r.headers["content-type"] = ct;
    r.body = body;
    r.user = "admin";
    return api->handle(r);
  }
  json call_json(const std::string& method, const std::string& target, const json& body = {},
                 int want = 0, const std::string& ct = "application/json") {
    Response r = call(method, target, body.is_null() ? "" : body.dump(), ct);
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    if (want) REQUIRE(r.status == want);
    return json::parse(r.body);
  }
};

const char* kSvcs = "/api/v1/namespaces/default/services";

TEST_CASE("services API: create allocates, conflicts are 422, delete frees, dry run keeps none") {
  ApiFixture f;
  json a = f.call_json("POST", kSvcs, svc("a", "NodePort"), 201);
  std::string ip = a["spec"]["clusterIP"];
  int np = a["spec"]["ports"][0]["nodePort"];
  CHECK(f.alloc().ip_allocated(ip));
  CHECK(f.alloc().port_allocated(np));

  json conflict = f.call_json("POST", kSvcs, svc("b", "ClusterIP", {{"clusterIP", ip}}), 422);
  CHECK(conflict["message"] ==
        "Service \"b\" is invalid: spec.clusterIPs: Invalid value: "
        "[]string{\"" +
            ip + "\"}: failed to allocate IP " + ip + ": provided IP is already allocated");
  CHECK(conflict["details"]["causes"][0]["field"] == "spec.clusterIPs");
  json c = svc("c", "NodePort");
  c["spec"]["ports"][0]["nodePort"] = np;
  json pc = f.call_json("POST", kSvcs, c, 422);
  CHECK(pc["message"] == "Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: " +
                             std::to_string(np) + ": provided port is already allocated");
  CHECK(f.alloc().ips_used() == 1);  // the refused ones kept nothing

  // Dry run: the answer has addresses, nothing is held.
  json d = f.call_json("POST", std::string(kSvcs) + "?dryRun=All",
                       svc("d", "ClusterIP", {{"clusterIP", "10.96.0.9"}}), 201);
  CHECK(d["spec"]["clusterIP"] == "10.96.0.9");
  CHECK(!f.alloc().ip_allocated("10.96.0.9"));
  f.call_json("DELETE", std::string(kSvcs) + "/a?dryRun=All", {}, 200);
  CHECK(f.alloc().ip_allocated(ip));

  // A name clash (store write refused) gives the new addresses back.
  f.call_json("POST", kSvcs, svc("a", "ClusterIP", {{"clusterIP", "10.96.0.11"}}), 409);
  CHECK(!f.alloc().ip_allocated("10.96.0.11"));

  // Finalizers hold the addresses until the object really goes.
  json fin = svc("fin", "ClusterIP", {{"clusterIP", "10.96.0.12"}});
  fin["metadata"]["finalizers"] = {"example.com/hold"};
  f.call_json("POST", kSvcs, fin, 201);
  f.call_json("DELETE", std::string(kSvcs) + "/fin", {}, 200);
  CHECK(f.alloc().ip_allocated("10.96.0.12"));
  f.call_json("PATCH", std::string(kSvcs) + "/fin", {{"metadata", {{"finalizers", nullptr}}}}, 200,
              "application/merge-patch+json");
  CHECK(!f.alloc().ip_allocated("10.96.0.12"));

  f.call_json("DELETE", std::string(kSvcs) + "/a", {}, 200);
  CHECK(!f.alloc().ip_allocated(ip));
  CHECK(!f.alloc().port_allocated(np));
  CHECK(f.alloc().ips_used() == 0);
}

TEST_CASE("services API: update rules (replace without allocated values, type changes)") {
  ApiFixture f;
  json a = f.call_json("POST", kSvcs, svc("a", "NodePort"), 201);
  std::string ip = a["spec"]["clusterIP"];
  int np = a["spec"]["ports"][0]["nodePort"];
  // PUT of the original manifest (no clusterIP, no nodePort) keeps both.
  json put = f.call_json("PUT", std::string(kSvcs) + "/a", svc("a", "NodePort"), 200);
  CHECK(put["spec"]["clusterIP"] == ip);
  CHECK(put["spec"]["ports"][0]["nodePort"] == np);
  CHECK(put["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"]);  // no-op
  // clusterIP stays immutable.
  json moved = svc("a", "NodePort", {{"clusterIP", "10.96.0.99"}});
  json bad = f.call_json("PUT", std::string(kSvcs) + "/a", moved, 422);
  CHECK(bad["message"].get<std::string>().find("spec.clusterIP") != std::string::npos);
  // NodePort -> ClusterIP releases the node port.
  json toc = f.call_json("PATCH", std::string(kSvcs) + "/a", {{"spec", {{"type", "ClusterIP"}}}},
                         200, "application/merge-patch+json");
  CHECK(!toc["spec"]["ports"][0].contains("nodePort"));
  CHECK(!f.alloc().port_allocated(np));
  // ... and back allocates a fresh one.
  json ton = f.call_json("PATCH", std::string(kSvcs) + "/a", {{"spec", {{"type", "NodePort"}}}},
                         200, "application/merge-patch+json");
  int np2 = ton["spec"]["ports"][0]["nodePort"];
  CHECK(f.alloc().port_allocated(np2));
  // A dry-run type change keeps nothing.
  json lb = f.call_json("PATCH", std::string(kSvcs) + "/a?dryRun=All",
                        {{"spec", {{"type", "LoadBalancer"}, {"externalTrafficPolicy", "Local"}}}},
                        200, "application/merge-patch+json");
  CHECK(lb["spec"]["healthCheckNodePort"] > 0);
  CHECK(f.alloc().ports_used() == 1);
}

TEST_CASE("services API: 50 concurrent creates get 50 distinct ClusterIPs") {
  ApiFixture f;
  std::vector<std::string> ips(50);
  std::vector<std::thread> ts;
  for (int i = 0; i < 50; ++i)
    ts.emplace_back([&, i] {
      Response r = f.call("POST", kSvcs, svc("c" + std::to_string(i), "NodePort").dump());
      if (r.status == 201) {
        json j = json::parse(r.body);
        ips[i] = j["spec"]["clusterIP"].get<std::string>() + "/" +
                 std::to_string(j["spec"]["ports"][0]["nodePort"].get<int>());
      }
    });
  for (auto& t : ts) t.join();
  std::set<std::string> distinct_ips, distinct_ports;
  for (const auto& s : ips) {
    REQUIRE(!s.empty());
    distinct_ips.insert(s.substr(0, s.find('/')));
    distinct_ports.insert(s.substr(s.find('/') + 1));
  }
  CHECK(distinct_ips.size() == 50);
  CHECK(distinct_ports.size() == 50);
}

TEST_CASE("services API: a restart rebuilds the allocator from the store") {
  auto st = store::make_memory_store();
  std::string ip;
  int np = 0;
  {
    ApiFixture f(st.get());
    json a = f.call_json("POST", kSvcs, svc("a", "NodePort"), 201);
    ip = a["spec"]["clusterIP"];
    np = a["spec"]["ports"][0]["nodePort"];
  }
  ApiFixture g(st.get());
  CHECK(g.alloc().ip_allocated(ip));
  CHECK(g.alloc().port_allocated(np));
  g.call_json("POST", kSvcs, svc("b", "ClusterIP", {{"clusterIP", ip}}), 422);
}

TEST_CASE("services API: the kubernetes Service and Endpoints are made and repaired") {
  ApiFixture f;
  f.api->start_kubernetes_service("10.250.0.11", 6443);
  json s = f.call_json("GET", std::string(kSvcs) + "/kubernetes", {}, 200);
  CHECK(s["spec"]["clusterIP"] == "10.96.0.1");
  CHECK(s["spec"]["type"] == "ClusterIP");
  CHECK(s["spec"]["ports"] == json::parse(R"([{"name":"https","port":443,"protocol":"TCP",
                                              "targetPort":6443}])"));
  CHECK(s["metadata"]["labels"]["component"] == "apiserver");
  CHECK(s["metadata"]["labels"]["provider"] == "kubernetes");
  json e = f.call_json("GET", "/api/v1/namespaces/default/endpoints/kubernetes", {}, 200);
  CHECK(e["subsets"][0]["addresses"][0]["ip"] == "10.250.0.11");
  CHECK(e["subsets"][0]["ports"][0]["port"] == 6443);

  // In the steady state a pass writes nothing (the timer runs every 10 s for the server's life).
  auto& impl = dynamic_cast<ApiImpl&>(*f.api);
  CHECK(impl.reconcile_kubernetes_service().empty());
  CHECK(impl.reconcile_kubernetes_service().empty());
  CHECK(f.call_json("GET", std::string(kSvcs) + "/kubernetes", {},
                    200)["metadata"]["resourceVersion"] == s["metadata"]["resourceVersion"]);
  CHECK(f.call_json("GET", "/api/v1/namespaces/default/endpoints/kubernetes", {},
                    200)["metadata"]["resourceVersion"] == e["metadata"]["resourceVersion"]);

  // Deleted or changed: the reconciler (200 ms here) puts it back.
  f.call_json("DELETE", std::string(kSvcs) + "/kubernetes", {}, 200);
  f.call_json("PATCH", "/api/v1/namespaces/default/endpoints/kubernetes",
              {{"subsets", json::array()}}, 200, "application/merge-patch+json");
  CHECK(impl.reconcile_kubernetes_service().empty());
  s = f.call_json("GET", std::string(kSvcs) + "/kubernetes", {}, 200);
  CHECK(s["spec"]["clusterIP"] == "10.96.0.1");
  e = f.call_json("GET", "/api/v1/namespaces/default/endpoints/kubernetes", {}, 200);
  CHECK(e["subsets"][0]["addresses"][0]["ip"] == "10.250.0.11");
}

TEST_CASE("services API: bad ranges refuse to start") {
  auto st = store::make_memory_store();
  ApiOptions o;
  o.store = st.get();
  o.service_cluster_ip_range = "10.96.0.1/16";
  std::string err;
  CHECK(!Api::create(o, &err));
  CHECK(err.find("--service-cluster-ip-range") != std::string::npos);
  o.service_cluster_ip_range = "10.96.0.0/16";
  o.service_node_port_range = "40000-30000";
  CHECK(!Api::create(o, &err));
  CHECK(err.find("--service-node-port-range") != std::string::npos);
}

// A minimal protobuf writer for the test: what client-go sends for `kubectl create service`.
std::string pb_varint(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    out.push_back(char(v ? b | 0x80 : b));
  } while (v);
  return out;
}
std::string pb_bytes(int field, const std::string& b) {
  return pb_varint(uint64_t(field) << 3 | 2) + pb_varint(b.size()) + b;
}
std::string pb_int(int field, uint64_t v) { return pb_varint(uint64_t(field) << 3) + pb_varint(v); }

TEST_CASE("protobuf Service bodies decode to JSON") {
  std::string meta =
      pb_bytes(1, "kx") + pb_bytes(3, "") + pb_bytes(11, pb_bytes(1, "app") + pb_bytes(2, "kx"));
  std::string port = pb_bytes(1, "80-8080") + pb_bytes(2, "TCP") + pb_int(3, 80) +
                     pb_bytes(4, pb_int(1, 0) + pb_int(2, 8080) + pb_bytes(3, "")) + pb_int(5, 0);
  std::string spec = pb_bytes(1, port) + pb_bytes(2, pb_bytes(1, "app") + pb_bytes(2, "kx")) +
                     pb_bytes(3, "") + pb_bytes(4, "NodePort") + pb_int(12, 0) + pb_int(20, 1);
  std::string raw = pb_bytes(1, meta) + pb_bytes(2, spec) + pb_bytes(3, "");
  std::string body = std::string("k8s\0", 4) +
                     pb_bytes(1, pb_bytes(1, "v1") + pb_bytes(2, "Service")) + pb_bytes(2, raw) +
                     pb_bytes(3, "") + pb_bytes(4, "");
  auto j = decode_protobuf_object(body);
  REQUIRE(j.ok());
  CHECK(j.value() == json::parse(R"({"apiVersion":"v1","kind":"Service",
    "metadata":{"name":"kx","labels":{"app":"kx"}},
    "spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080}],
            "selector":{"app":"kx"},"type":"NodePort","allocateLoadBalancerNodePorts":true}})"));
  CHECK(!decode_protobuf_object("k8s").ok());
  CHECK(decode_protobuf_object(body.substr(0, body.size() - 9)).error().code == 400);
  std::string cm = std::string("k8s\0", 4) +
                   pb_bytes(1, pb_bytes(1, "v1") + pb_bytes(2, "Binding")) + pb_bytes(2, "");
  CHECK(decode_protobuf_object(cm).error().code == 415);

  // Through the API: a protobuf POST creates the Service.
  ApiFixture f;
  Response r = f.call("POST", kSvcs, body, kProtobufMediaType);
  INFO(r.body);
  REQUIRE(r.status == 201);
  json made = json::parse(r.body);
  CHECK(made["spec"]["ports"][0]["nodePort"] > 0);
  CHECK(!made["spec"]["clusterIP"].get<std::string>().empty());
}

}  // namespace
}  // namespace skiff::apiserver
