#include "netagent/announce/announcer.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "proto/client/api_client.h"
#include "proto/client/kubeconfig.h"

namespace an = skiff::netagent::announce;
using an::json;

namespace {

json lb_service(const std::string& name, const std::string& ip, bool local = false) {
  json s = {{"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", {{"type", "LoadBalancer"}}},
            {"status", {{"loadBalancer", {{"ingress", {{{"ip", ip}}}}}}}}};
  if (local) s["spec"]["externalTrafficPolicy"] = "Local";
  return s;
}

json node(const std::string& name, const std::string& ready = "True") {
  return {{"metadata", {{"name", name}}},
          {"status", {{"conditions", {{{"type", "Ready"}, {"status", ready}}}}}}};
}

json endpoints(const std::string& name, const std::vector<std::string>& ready_nodes,
               const std::vector<std::string>& not_ready_nodes = {}) {
  json addrs = json::array(), nr = json::array();
  int i = 1;
  for (auto& n : ready_nodes)
    addrs.push_back({{"ip", "10.244.0." + std::to_string(i++)}, {"nodeName", n}});
  for (auto& n : not_ready_nodes)
    nr.push_back({{"ip", "10.244.0." + std::to_string(i++)}, {"nodeName", n}});
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"subsets",
           {{{"addresses", addrs}, {"notReadyAddresses", nr}, {"ports", {{{"port", 80}}}}}}}};
}

}  // namespace

TEST_CASE("lease names", "[announce]") {
  CHECK(an::lease_name_for("10.250.0.200") == "skiff-lb-10-250-0-200");
}

TEST_CASE("eligibility", "[announce]") {
  std::vector<json> svcs = {lb_service("web", "10.250.0.200"),
                            lb_service("local", "10.250.0.201", true), lb_service("none", "")};
  auto cip = lb_service("cip", "10.250.0.99");
  cip["spec"]["type"] = "ClusterIP";  // stale status of a former LoadBalancer: not announced
  svcs.push_back(cip);
  auto other = lb_service("other", "10.250.0.98");
  other["spec"]["loadBalancerClass"] = "example.com/lb";
  svcs.push_back(other);
  auto bad = lb_service("bad", "not-an-ip");
  svcs.push_back(bad);

  std::vector<json> eps = {endpoints("local", {"n1"}, {"n2"})};
  auto n1 = node("n1"), n2 = node("n2");

  auto d1 = an::decide(svcs, eps, &n1, "n1");
  REQUIRE(d1.size() == 2);
  CHECK(d1[0] == an::Decision{"10.250.0.200", "default/web", true, ""});
  CHECK(d1[1] == an::Decision{"10.250.0.201", "default/local", true, ""});

  // n2 has only a not-ready endpoint: not eligible for the Local Service.
  auto d2 = an::decide(svcs, eps, &n2, "n2");
  REQUIRE(d2.size() == 2);
  CHECK(d2[0].eligible);
  CHECK(!d2[1].eligible);
  CHECK_THAT(d2[1].reason, Catch::Contains("no ready endpoint of default/local on node n2"));

  // No Endpoints object at all.
  auto d3 = an::decide(svcs, {}, &n1, "n1");
  CHECK(!d3[1].eligible);

  // A node that is not Ready, missing, or excluded by label is eligible for nothing.
  auto nr = node("n1", "Unknown");
  for (const auto& d : an::decide(svcs, eps, &nr, "n1")) {
    CHECK(!d.eligible);
    CHECK_THAT(d.reason, Catch::Contains("not Ready"));
  }
  for (const auto& d : an::decide(svcs, eps, nullptr, "n1")) CHECK(!d.eligible);
  auto ex = node("n1");
  ex["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] = "";
  for (const auto& d : an::decide(svcs, eps, &ex, "n1")) {
    CHECK(!d.eligible);
    CHECK_THAT(d.reason, Catch::Contains("exclude-from-external-load-balancers"));
  }

  // Two Services on one address: eligible when eligible for either.
  std::vector<json> shared = {lb_service("a", "10.250.0.210", true),
                              lb_service("b", "10.250.0.210")};
  auto d4 = an::decide(shared, {}, &n2, "n2");
  REQUIRE(d4.size() == 1);
  CHECK(d4[0].eligible);
  CHECK(d4[0].service == "default/b");

  // Garbage never throws.
  std::vector<json> junk = {json(1), json::object(), json{{"spec", 3}}, json{{"status", "x"}}};
  CHECK(an::decide(junk, {json("x")}, &n1, "n1").empty());
}

TEST_CASE("ARP frames", "[announce]") {
  const uint8_t ours[6] = {0x02, 0, 0, 0, 0, 0x01};
  const uint8_t theirs[6] = {0x02, 0, 0, 0, 0, 0x99};
  in_addr vip, asker;
  inet_pton(AF_INET, "10.250.0.200", &vip);
  inet_pton(AF_INET, "10.250.0.100", &asker);

  // A who-has from the outside (as a gratuitous request built the same way, then retargeted).
  auto req_frame = an::build_gratuitous_arp(vip.s_addr, theirs, 1);
  auto req = an::parse_arp_frame(req_frame.data(), req_frame.size());
  REQUIRE(req);
  CHECK(req->op == 1);
  CHECK(req->sender_ip == vip.s_addr);
  CHECK(req->target_ip == vip.s_addr);
  CHECK(
      std::equal(req_frame.begin(), req_frame.begin() + 6, std::vector<uint8_t>(6, 0xff).begin()));
  req->sender_ip = asker.s_addr;

  auto reply = an::build_arp_reply(*req, ours);
  REQUIRE(reply.size() == 42);
  CHECK(std::equal(reply.begin(), reply.begin() + 6, theirs));     // unicast to the asker
  CHECK(std::equal(reply.begin() + 6, reply.begin() + 12, ours));  // from us
  auto r = an::parse_arp_frame(reply.data(), reply.size());
  REQUIRE(r);
  CHECK(r->op == 2);
  CHECK(std::equal(r->sender_mac, r->sender_mac + 6, ours));
  CHECK(r->sender_ip == vip.s_addr);
  CHECK(std::equal(r->target_mac, r->target_mac + 6, theirs));
  CHECK(r->target_ip == asker.s_addr);

  auto g = an::build_gratuitous_arp(vip.s_addr, ours, 2);
  auto gp = an::parse_arp_frame(g.data(), g.size());
  REQUIRE(gp);
  CHECK(gp->op == 2);

  // Not ARP / truncated / not IPv4 over Ethernet.
  CHECK(!an::parse_arp_frame(reply.data(), 41));
  auto ip_frame = reply;
  ip_frame[12] = 0x08;
  ip_frame[13] = 0x00;
  CHECK(!an::parse_arp_frame(ip_frame.data(), ip_frame.size()));
  auto v6 = reply;
  v6[16] = 0x86;
  CHECK(!an::parse_arp_frame(v6.data(), v6.size()));
}

TEST_CASE("start refuses bad options", "[announce]") {
  auto api = std::shared_ptr<skiff::client::ApiClient>();
  {
    an::Announcer a(api, an::Options{});
    CHECK_THAT(a.start().message(), Catch::Contains("no node name"));
  }
  an::Options o;
  o.node_name = "n1";
  o.lease_duration = std::chrono::seconds(2);
  o.renew_deadline = std::chrono::seconds(3);
  auto rest = skiff::client::RestClient::create(
      skiff::client::ClientConfig{.server = "http://127.0.0.1:1"});
  REQUIRE(rest.is_ok());
  auto real = std::make_shared<skiff::client::ApiClient>(
      std::shared_ptr<skiff::client::RestClient>(std::move(*rest)));
  {
    an::Announcer a(real, o);
    CHECK_THAT(a.start().message(), Catch::Contains("renew deadline"));
  }
  o = an::Options{};
  o.node_name = "n1";
  o.interface = "skiff-no-such-if0";
  an::Announcer b(real, o);
  CHECK_THAT(b.start().message(), Catch::Contains("skiff-no-such-if0"));
  o.interface = "";
  o.underlay_ip = "bogus";
  an::Announcer c(real, o);
  CHECK_THAT(c.start().message(), Catch::Contains("underlay IP"));
}

// ---- a runner for test/integration/lb_test.py (hidden: only run when named) ----------------
// Runs an Announcer for node $SKIFF_LB_NODE on interface $SKIFF_LB_IFACE against the API server
// of $SKIFF_LB_KUBECONFIG until SIGTERM/SIGINT; writes its metrics to $SKIFF_LB_METRICS (when
// set) every 200 ms; $SKIFF_LB_GARP_INTERVAL_MS overrides the gratuitous ARP interval.
TEST_CASE("run an announcer from the environment", "[.run]") {
  const char* kc = std::getenv("SKIFF_LB_KUBECONFIG");
  const char* node_name = std::getenv("SKIFF_LB_NODE");
  const char* iface = std::getenv("SKIFF_LB_IFACE");
  const char* metrics = std::getenv("SKIFF_LB_METRICS");
  REQUIRE(kc);
  REQUIRE(node_name);
  REQUIRE(iface);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread: only sigwait sees them

  auto cfg = skiff::client::load_kubeconfig(kc);
  REQUIRE(cfg.is_ok());
  auto cc = skiff::client::ClientConfig::from_kubeconfig(*cfg);
  auto rest = skiff::client::RestClient::create(cc);
  REQUIRE(rest.is_ok());
  auto api = std::make_shared<skiff::client::ApiClient>(
      std::shared_ptr<skiff::client::RestClient>(std::move(*rest)));
  an::Options o;
  o.node_name = node_name;
  o.interface = iface;
  if (const char* g = std::getenv("SKIFF_LB_GARP_INTERVAL_MS"))
    o.garp_interval = std::chrono::milliseconds(std::atoi(g));
  an::Announcer a(api, o);
  auto st = a.start();
  if (!st) {
    spdlog::error("{}", st.to_string());
    std::exit(1);
  }
  timespec tick{0, 200'000'000};
  while (true) {
    if (metrics) {
      std::string tmp = std::string(metrics) + ".tmp";
      std::ofstream(tmp) << a.metrics_text();
      std::rename(tmp.c_str(), metrics);
    }
    if (sigtimedwait(&set, nullptr, &tick) > 0) break;
  }
  a.stop();
  spdlog::info("announcer stopped");
}
