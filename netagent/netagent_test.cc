#include "netagent/netagent.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "netagent/service_agent.h"
#include "proto/time.h"

using namespace skiff;
using namespace skiff::netagent;
using json = nlohmann::json;

namespace {

json node(const std::string& name, const std::string& cidr, const std::string& ip,
          json annotations = json::object()) {
  json n = {{"metadata", {{"name", name}, {"annotations", annotations}}},
            {"spec", json::object()},
            {"status", {{"addresses", json::array({{{"type", "Hostname"}, {"address", name}}})}}}};
  if (!cidr.empty()) n["spec"]["podCIDR"] = cidr;
  if (!ip.empty()) n["status"]["addresses"].push_back({{"type", "InternalIP"}, {"address", ip}});
  return n;
}

}  // namespace

TEST_CASE("node facts come from spec, status and annotations") {
  auto f = node_facts(node("b", "10.244.2.0/24", "10.250.8.12",
                           {{kAnnotationBackend, "vxlan"},
                            {kAnnotationUnderlayIp, "10.250.8.12"},
                            {kAnnotationVtepMac, "0a:00:00:00:00:bb"}}));
  CHECK(f.name == "b");
  CHECK(f.pod_cidr == "10.244.2.0/24");
  CHECK(f.internal_ip == "10.250.8.12");
  CHECK(f.underlay_ip == "10.250.8.12");
  CHECK(f.vtep_mac == "0a:00:00:00:00:bb");
  auto p = peer_of(f, overlay::Backend::kVxlan);
  REQUIRE(p);
  CHECK(p->pod_cidr.str() == "10.244.2.0/24");
  CHECK(p->underlay.str() == "10.250.8.12");
  // Garbage never throws: a wrong type is an absent field.
  json bad = {{"metadata", {{"name", 5}, {"annotations", "x"}}}, {"status", {{"addresses", 3}}}};
  auto g = node_facts(bad);
  CHECK(g.name.empty());
  CHECK(g.internal_ip.empty());
}

TEST_CASE("nodes missing data are not peers, with a reason") {
  auto no_cidr = peer_of(node_facts(node("c", "", "10.250.8.13")), overlay::Backend::kVxlan);
  CHECK(no_cidr.status().message() == "no spec.podCIDR yet");
  auto no_ann =
      peer_of(node_facts(node("c", "10.244.3.0/24", "10.250.8.13")), overlay::Backend::kVxlan);
  CHECK(no_ann.status().message().find("no skiff.io/underlay-ip") == 0);
  json hg = {{kAnnotationBackend, "host-gw"}, {kAnnotationUnderlayIp, "10.250.8.13"}};
  auto no_mac = peer_of(node_facts(node("c", "10.244.3.0/24", "", hg)), overlay::Backend::kVxlan);
  CHECK(no_mac.status().message() == "no skiff.io/vtep-mac annotation (its backend is host-gw)");
  CHECK(peer_of(node_facts(node("c", "10.244.3.0/24", "", hg)), overlay::Backend::kHostGw));
  json bad_ip = {{kAnnotationUnderlayIp, "10.250.8"}};
  auto b = peer_of(node_facts(node("c", "10.244.3.0/24", "", bad_ip)), overlay::Backend::kHostGw);
  CHECK(b.status().code() == Code::kInvalid);
  auto bc = peer_of(node_facts(node("c", "10.244.3.0/33", "")), overlay::Backend::kHostGw);
  CHECK(bc.status().message().find("not an IPv4 CIDR") != std::string::npos);
}

TEST_CASE("the annotation patch says only what differs") {
  auto self = node_facts(node("a", "10.244.1.0/24", "10.250.8.11"));
  auto p = annotation_patch(self, overlay::Backend::kVxlan, "10.250.8.11", "0a:00:00:00:00:aa");
  REQUIRE(p);
  CHECK((*p)["metadata"]["annotations"] == json({{kAnnotationBackend, "vxlan"},
                                                 {kAnnotationUnderlayIp, "10.250.8.11"},
                                                 {kAnnotationVtepMac, "0a:00:00:00:00:aa"}}));
  auto done = node_facts(node("a", "10.244.1.0/24", "10.250.8.11",
                              {{kAnnotationBackend, "vxlan"},
                               {kAnnotationUnderlayIp, "10.250.8.11"},
                               {kAnnotationVtepMac, "0a:00:00:00:00:aa"}}));
  CHECK_FALSE(annotation_patch(done, overlay::Backend::kVxlan, "10.250.8.11", "0a:00:00:00:00:aa"));
  // host-gw: the VTEP MAC annotation is removed (null in a merge patch).
  auto hg = annotation_patch(done, overlay::Backend::kHostGw, "10.250.8.11", "");
  REQUIRE(hg);
  CHECK((*hg)["metadata"]["annotations"][kAnnotationBackend] == "host-gw");
  CHECK((*hg)["metadata"]["annotations"][kAnnotationVtepMac].is_null());
  CHECK_FALSE((*hg)["metadata"]["annotations"].contains(kAnnotationUnderlayIp));
}

// ---- services (service_agent.h) --------------------------------------------------------------

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

services::ServicePort udp_port(const std::string& name, const char* cluster_ip, uint16_t port,
                               std::vector<services::Endpoint> eps, uint16_t node_port = 0) {
  services::ServicePort sp;
  sp.ns = "default";
  sp.name = name;
  sp.protocol = services::Protocol::kUdp;
  services::parse_ipv4(cluster_ip, &sp.cluster_ip);
  sp.port = port;
  sp.node_port = node_port;
  sp.endpoints = std::move(eps);
  return sp;
}

services::Endpoint ep(const char* ip, uint16_t port) {
  services::Endpoint e;
  services::parse_ipv4(ip, &e.ip);
  e.port = port;
  return e;
}

uint32_t ip(const char* s) { return *conntrack::parse_ip(s); }

}  // namespace

TEST_CASE("the histogram prints cumulative Prometheus buckets") {
  Histogram h({0.01, 0.1, 1});
  h.observe(0.005);
  h.observe(0.05);
  h.observe(0.05);
  h.observe(5);
  CHECK(h.count() == 4);
  CHECK(h.sum() == Approx(5.105));
  std::string t = h.text("x_seconds", "What x is.");
  CHECK(t.find("# TYPE x_seconds histogram\n") != std::string::npos);
  CHECK(t.find("x_seconds_bucket{le=\"0.01\"} 1\n") != std::string::npos);
  CHECK(t.find("x_seconds_bucket{le=\"0.1\"} 3\n") != std::string::npos);
  CHECK(t.find("x_seconds_bucket{le=\"1\"} 3\n") != std::string::npos);
  CHECK(t.find("x_seconds_bucket{le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(t.find("x_seconds_count 4\n") != std::string::npos);
}

TEST_CASE("the trigger time comes from the Endpoints annotation") {
  json e = {{"metadata",
             {{"name", "web"},
              {"annotations", {{kTriggerTimeAnnotation, "2026-12-06T04:30:00.250000000Z"}}}}}};
  auto t = trigger_time(e);
  REQUIRE(t);
  CHECK(proto::format_rfc3339(*t, 3) == "2026-12-06T04:30:00.250Z");
  CHECK_FALSE(trigger_time(json{{"metadata", {{"name", "web"}}}}));
  CHECK_FALSE(trigger_time(json{{"metadata", {{"annotations", {{kTriggerTimeAnnotation, 5}}}}}}));
  CHECK_FALSE(
      trigger_time(json{{"metadata", {{"annotations", {{kTriggerTimeAnnotation, "yesterday"}}}}}}));
  CHECK_FALSE(trigger_time(json("garbage")));
}

TEST_CASE("the informer transforms keep what the proxy, DNS and the announcer read") {
  json svc = json::parse(R"({"apiVersion":"v1","kind":"Service",
    "metadata":{"name":"web","namespace":"default","uid":"u1","resourceVersion":"7",
      "labels":{"app":"web"},"annotations":{"a":"b"},"managedFields":[{"manager":"x"}]},
    "spec":{"type":"LoadBalancer","clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5"],
      "selector":{"app":"web"},"ipFamilies":["IPv4"],"externalTrafficPolicy":"Local",
      "ports":[{"name":"http","port":80,"targetPort":8080,"nodePort":30080,"protocol":"TCP",
                "appProtocol":"http"}]},
    "status":{"loadBalancer":{"ingress":[{"ip":"10.250.0.200"}]},"conditions":[]}})");
  json want_svc = json::parse(R"({
    "metadata":{"name":"web","namespace":"default","resourceVersion":"7"},
    "spec":{"type":"LoadBalancer","clusterIP":"10.96.0.5","externalTrafficPolicy":"Local",
      "ports":[{"name":"http","port":80,"nodePort":30080,"protocol":"TCP"}]},
    "status":{"loadBalancer":{"ingress":[{"ip":"10.250.0.200"}]}}})");
  slim_service(svc);
  CHECK(svc == want_svc);
  // clusterIPs stays when it says more than clusterIP (dual-stack).
  json dual = json::parse(R"({"spec":{"clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5","fd00::5"]}})");
  slim_service(dual);
  CHECK(dual["spec"]["clusterIPs"].size() == 2);

  json eps = json::parse(R"({"apiVersion":"v1","kind":"Endpoints",
    "metadata":{"name":"web","namespace":"default","resourceVersion":"8","labels":{"x":"y"},
      "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-12-06T09:00:00Z",
                     "other":"z"}},
    "subsets":[{"addresses":[{"ip":"10.244.1.2","nodeName":"n1","hostname":"h",
                              "targetRef":{"kind":"Pod","name":"web-1","uid":"p1"}}],
                "notReadyAddresses":[{"ip":"10.244.1.3"}],
                "ports":[{"name":"http","port":8080,"protocol":"TCP","appProtocol":"http"}]}]})");
  slim_endpoints(eps);
  CHECK(eps == json::parse(R"({
    "metadata":{"name":"web","namespace":"default","resourceVersion":"8",
      "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-12-06T09:00:00Z"}},
    "subsets":[{"addresses":[{"ip":"10.244.1.2","nodeName":"n1","hostname":"h"}],
                "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]})"));
  CHECK(trigger_time(eps).has_value());

  // Garbage stays garbage (the model reports it), and nothing throws.
  json g =
      json::parse(R"({"metadata":"x","spec":{"ports":[1,"a"]},"subsets":[null,{"addresses":5}]})");
  json g2 = g;
  slim_service(g);
  slim_endpoints(g2);
  CHECK(g["spec"]["ports"] == json::parse(R"([1,"a"])"));
  CHECK(g2["subsets"] == json::parse(R"([null,{"addresses":5}])"));
  json s = "garbage";
  slim_service(s);
  CHECK(s == "garbage");
}

TEST_CASE("changes merge per Service: first seen time, distinct trigger times") {
  ChangeTracker c;
  auto t0 = steady::now();
  auto w0 = wall::now();
  c.mark("default/web", t0 + milliseconds(5), std::nullopt, true);
  c.mark("default/web", t0, w0, true);
  c.mark("default/web", t0 + milliseconds(9), w0, true);  // same trigger: once
  c.mark("default/web", t0 + milliseconds(9), w0 + milliseconds(3), true);
  c.mark("kube-system/dns", t0, std::nullopt, false);
  CHECK(c.size() == 2);
  auto taken = c.take();
  CHECK(c.empty());
  REQUIRE(taken.count("default/web"));
  CHECK(taken["default/web"].seen == t0);
  CHECK(taken["default/web"].triggers.size() == 2);
  CHECK_FALSE(taken["kube-system/dns"].measure);
  // A failed sync puts them back; a newer change of the same Service merges in.
  c.mark("default/web", t0 + milliseconds(20), std::nullopt, true);
  c.restore(std::move(taken));
  auto again = c.take();
  CHECK(again.size() == 2);
  CHECK(again["default/web"].seen == t0);
  for (int i = 0; i < 40; ++i) c.mark("a/b", t0, w0 + milliseconds(i), true);
  CHECK(c.take()["a/b"].triggers.size() == ChangeTracker::kMaxTriggers);
}

TEST_CASE("programming latency runs from the trigger time, else from when it was seen") {
  auto t0 = steady::now();
  auto start = wall::now();
  std::map<std::string, PendingChange> applied;
  applied["default/a"] = {t0, {start + milliseconds(100), start + milliseconds(300)}, true};
  applied["default/b"] = {t0 + milliseconds(200), {}, true};
  // A trigger time before the agent started: from the first lists; falls back to seen.
  applied["default/c"] = {t0 + milliseconds(400), {start - seconds(3600)}, true};
  applied["default/d"] = {t0, {start + milliseconds(100)}, false};  // first list: none
  auto lat =
      programming_latencies(applied, t0 + milliseconds(500), start + milliseconds(500), start);
  std::sort(lat.begin(), lat.end());
  REQUIRE(lat.size() == 4);
  CHECK(lat[0] == Approx(0.1).margin(1e-6));  // c: seen 400 ms
  CHECK(lat[1] == Approx(0.2).margin(1e-6));  // a: trigger at 300 ms
  CHECK(lat[2] == Approx(0.3).margin(1e-6));  // b: seen at 200 ms
  CHECK(lat[3] == Approx(0.4).margin(1e-6));  // a: trigger at 100 ms
  // Clock skew (a trigger in the future) gives no negative value.
  applied.clear();
  applied["x/y"] = {t0, {start + seconds(10)}, true};
  CHECK(programming_latencies(applied, t0, start, start).empty());
}

TEST_CASE("conntrack cleanup: removed UDP endpoints and UDP ports that got their first one") {
  services::ServiceMap before, after;
  auto dns_before = udp_port("dns", "10.96.0.53", 53, {ep("10.244.1.7", 5353)}, 30053);
  auto dns_after = udp_port("dns", "10.96.0.53", 53, {ep("10.244.1.8", 5353)}, 30053);
  auto empty_before = udp_port("syslog", "10.96.0.60", 514, {});
  empty_before.external_ips = {ip("192.0.2.1")};
  empty_before.load_balancer_ips = {ip("10.250.0.200")};
  empty_before.node_port = 30514;
  auto filled_after = empty_before;
  filled_after.endpoints = {ep("10.244.2.3", 514)};
  auto tcp_after = udp_port("web", "10.96.0.80", 80, {ep("10.244.1.9", 8080)});
  tcp_after.protocol = services::Protocol::kTcp;
  before[dns_before.key()] = dns_before;
  before[empty_before.key()] = empty_before;
  after[dns_after.key()] = dns_after;
  after[filled_after.key()] = filled_after;
  after[tcp_after.key()] = tcp_after;  // new TCP: nothing
  auto brand_new = udp_port("new", "10.96.0.70", 70, {ep("10.244.1.1", 70)});
  after[brand_new.key()] = brand_new;

  std::vector<services::StaleUdpFlow> stale = {
      {ip("10.96.0.53"), 53, ip("10.244.1.7"), 5353},
      {0, 30053, ip("10.244.1.7"), 5353},
      {ip("10.96.0.53"), 53, ip("10.244.1.7"), 5353},  // duplicates collapse
  };
  auto spec = conntrack_cleanup_spec(before, after, stale);
  CHECK(spec.proto == conntrack::kProtoUdp);
  REQUIRE(spec.service_endpoints.size() == 1);
  CHECK(spec.service_endpoints[0].service == conntrack::IpPort{ip("10.96.0.53"), 53});
  CHECK(spec.service_endpoints[0].endpoint == conntrack::IpPort{ip("10.244.1.7"), 5353});
  REQUIRE(spec.node_port_endpoints.size() == 1);
  CHECK(spec.node_port_endpoints[0].node_port == 30053);
  // syslog got its first endpoint: ClusterIP, external IP, LB IP, node port; "new" too.
  std::vector<conntrack::IpPort> want = {{ip("10.96.0.60"), 514},
                                         {ip("10.96.0.70"), 70},
                                         {ip("10.250.0.200"), 514},
                                         {ip("192.0.2.1"), 514}};
  std::sort(want.begin(), want.end());
  CHECK(spec.services == want);
  CHECK(spec.node_ports == std::vector<uint16_t>{30514});
  // Nothing changed: nothing to delete.
  CHECK(conntrack_cleanup_spec(after, after, {}).empty());

  conntrack::CleanupSpec acc;
  merge_cleanup(&acc, spec);
  merge_cleanup(&acc, spec);
  CHECK(acc.services.size() == 4);
  CHECK(acc.service_endpoints.size() == 1);
}

TEST_CASE("sync schedule: full at start and every period, changes coalesce per interval") {
  using std::chrono::milliseconds;
  const auto t0 = SyncSchedule::Clock::time_point() + std::chrono::hours(1);
  SyncSchedule s(milliseconds(60'000), milliseconds(20), milliseconds(500), milliseconds(2000), t0);
  CHECK(s.due(false) == t0);
  CHECK(s.full(t0));
  CHECK(s.done(true, t0, t0 + milliseconds(5)) == milliseconds(0));
  // Changes: at most one sync per interval from the last start; none: the next full one.
  CHECK(s.due(false) == t0 + milliseconds(60'000));
  CHECK(s.due(true) == t0 + milliseconds(20));
  CHECK_FALSE(s.full(t0 + milliseconds(20)));
  CHECK(s.done(true, t0 + milliseconds(20), t0 + milliseconds(21)) == milliseconds(0));
  CHECK(s.due(true) == t0 + milliseconds(40));
  CHECK(s.due(false) == t0 + milliseconds(60'000));
  CHECK(s.full(t0 + milliseconds(60'000)));
}

TEST_CASE("sync schedule: a failed sync is retried as a full one with exponential back-off") {
  using std::chrono::milliseconds;
  const auto t0 = SyncSchedule::Clock::time_point() + std::chrono::hours(1);
  SyncSchedule s(milliseconds(60'000), milliseconds(20), milliseconds(500), milliseconds(2000), t0);
  // The first (full) sync fails: the retry waits min_retry, even though it is a full one.
  auto end = t0 + milliseconds(10);
  CHECK(s.done(false, t0, end) == milliseconds(500));
  CHECK(s.due(false) == end + milliseconds(500));
  CHECK(s.due(true) == end + milliseconds(500));  // changes wait for the retry
  CHECK_FALSE(s.full(end + milliseconds(499)));
  CHECK(s.full(end + milliseconds(500)));
  // Failing again doubles the delay, up to max_retry.
  auto t1 = end + milliseconds(500);
  CHECK(s.done(false, t1, t1) == milliseconds(1000));
  CHECK(s.due(true) == t1 + milliseconds(1000));
  auto t2 = t1 + milliseconds(1000);
  CHECK(s.done(false, t2, t2) == milliseconds(2000));
  auto t3 = t2 + milliseconds(2000);
  CHECK(s.done(false, t3, t3) == milliseconds(2000));
  // A failed partial sync is retried as a full one too.
  auto t4 = t3 + milliseconds(2000);
  CHECK(s.done(true, t4, t4) == milliseconds(0));
  CHECK(s.due(false) == t4 + milliseconds(60'000));
  CHECK_FALSE(s.full(t4 + milliseconds(20)));
  CHECK(s.done(false, t4 + milliseconds(20), t4 + milliseconds(20)) == milliseconds(500));
  CHECK(s.full(t4 + milliseconds(520)));
  CHECK_FALSE(s.full(t4 + milliseconds(519)));
}
