// The Proxier on the real kernel (root; each case in a private network namespace, so nothing of
// the machine's nftables is touched): the table read back with `nft list table ip skiff` equals
// the fake's listing of the same syncs, and a batch the kernel refuses leaves the previous
// ruleset intact. Skips (exit 77) without root, nf_tables or the nft binary.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "netagent/nft/fake.h"
#include "netagent/nft/skiff_table.h"
#include "netagent/services/proxier.h"
#include "netagent/services/testdata.h"
#include "test/netns.h"
#include "test/testing.h"

using namespace skiff;
using namespace skiff::services;

namespace {

using skiff::testing::PrivateNetns;
using skiff::testing::Run;
using skiff::testing::sh;

std::string kernel_listing() {
  Run r = sh("nft list table ip skiff");
  return r.status == 0 ? r.out : "";
}

// The kernel in a private namespace, or a skip reason.
struct Kernel {
  PrivateNetns ns;
  std::unique_ptr<nft::NftnlTables> tables;
  std::string why;
  Kernel() {
    if (geteuid() != 0) {
      why = "needs root (network namespaces, nftables)";
      return;
    }
    if (sh("command -v nft").status != 0) {
      why = "the nft binary (to read back) is missing";
      return;
    }
    if (!ns.error().empty()) {
      why = ns.error();
      return;
    }
    auto t = nft::NftnlTables::open();
    if (!t.is_ok()) {
      why = "nf_tables unavailable: " + t.status().to_string();
      return;
    }
    tables = std::move(t).value();
  }
};

struct Clock {
  std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
};

std::unique_ptr<Proxier> make_proxier(nft::NftTables& tables, Clock* clock) {
  ProxierOptions o;
  o.cluster_cidr = "10.244.0.0/16";
  o.now = [clock] { return clock->t; };
  auto p = Proxier::create(tables, o);
  REQUIRE(p.is_ok());
  return std::move(p).value();
}

// Adds an operation the kernel refuses (deleting a chain that does not exist) to every batch.
class Sabotaged : public nft::NftTables {
 public:
  explicit Sabotaged(nft::NftTables& real) : real_(real) {}
  Status commit(const nft::Batch& batch) override {
    nft::Batch b = batch;
    b.delete_chain("no-such-chain");
    return real_.commit(b);
  }

 private:
  nft::NftTables& real_;
};

}  // namespace

TEST_CASE("kernel: each reference ruleset reads back as the fake lists it",
          "[proxier][kernel][root]") {
  for (const testdata::Golden& g : testdata::goldens()) {
    DYNAMIC_SECTION(g.name) {
      Kernel k;
      if (!k.why.empty()) {
        testing::skip(k.why);
        return;
      }
      REQUIRE(nft::sync_masquerade(*k.tables, "10.244.0.0/16").is_ok());
      nft::FakeNftTables fake;
      REQUIRE(nft::sync_masquerade(fake, "10.244.0.0/16").is_ok());
      Clock clock;
      auto kp = make_proxier(*k.tables, &clock);
      auto fp = make_proxier(fake, &clock);
      auto r = kp->sync(g.map);
      INFO(r.status().to_string());
      REQUIRE(r.is_ok());
      REQUIRE(fp->sync(g.map).is_ok());
      CHECK(testdata::canonical(kernel_listing()) == testdata::canonical(fake.list()));
    }
  }
}

TEST_CASE("kernel: incremental syncs, a full re-assert and removal read back like the fake",
          "[proxier][kernel][root]") {
  Kernel k;
  if (!k.why.empty()) {
    testing::skip(k.why);
    return;
  }
  nft::FakeNftTables fake;
  Clock clock;
  auto kp = make_proxier(*k.tables, &clock);
  auto fp = make_proxier(fake, &clock);
  ServiceMap m;
  for (const testdata::Golden& g : testdata::goldens()) m.insert(g.map.begin(), g.map.end());
  auto step = [&](const char* what) {
    INFO(what);
    auto r = kp->sync(m);
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    REQUIRE(fp->sync(m).is_ok());
    CHECK(testdata::canonical(kernel_listing()) == testdata::canonical(fake.list()));
  };
  step("everything");
  ServicePort& web = m.at("default/web:http/TCP");
  web.endpoints.push_back(testdata::ep("10.244.4.5", 8080, false));
  step("endpoint added");
  web.endpoints.erase(web.endpoints.begin());
  step("endpoint removed");
  m.at("default/sticky:http/TCP").affinity_timeout_seconds = 600;
  step("affinity timeout changed");
  m.at("default/empty:http/TCP").endpoints.push_back(testdata::ep("10.244.1.99", 8080, true));
  step("a Service gets its first endpoint");
  m.at("default/np:http/TCP").endpoints.clear();
  step("a Service loses its last endpoint");
  m.erase("default/lb:/TCP");
  step("a Service removed");
  clock.t += std::chrono::seconds(61);
  step("periodic full re-assert");
  m.clear();
  step("everything removed");
  // Only the static chains and maps are left.
  std::string left = kernel_listing();
  CHECK(left.find("default/") == std::string::npos);  // no chain or set of a Service
}

TEST_CASE("kernel: endpoint moves and count changes are element-only and read back like the fake",
          "[proxier][kernel][root]") {
  Kernel k;
  if (!k.why.empty()) {
    testing::skip(k.why);
    return;
  }
  nft::FakeNftTables fake;
  Clock clock;
  auto kp = make_proxier(*k.tables, &clock);
  auto fp = make_proxier(fake, &clock);
  ServiceMap m;
  auto add = [&](ServicePort sp) { m[sp.key()] = std::move(sp); };
  add(testdata::port("default", "web", "", Protocol::kTcp, "10.96.100.10", 80,
                     {{"10.244.1.2", 8080, true}, {"10.244.2.2", 8080, false}}));
  add(testdata::port("default", "udp", "", Protocol::kUdp, "10.96.100.20", 53,
                     {{"10.244.1.2", 5353, true}}));
  add(testdata::port("default", "empty", "", Protocol::kTcp, "10.96.100.40", 80, {}));
  m.at("default/web:/TCP").node_port = 30080;
  size_t commits = 0;
  auto step = [&](const char* what, bool rules_expected) {
    INFO(what);
    auto r = kp->sync(m);
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    REQUIRE(fp->sync(m).is_ok());
    CHECK(testdata::canonical(kernel_listing()) == testdata::canonical(fake.list()));
    if (fake.committed().size() > commits && !rules_expected) {
      CHECK(fake.committed().back().ops().size() > 0);
      for (const auto& op : fake.committed().back().ops()) {
        CHECK(op.kind != nft::Batch::Kind::kAddRule);
      }
    }
    commits = fake.committed().size();
  };
  step("first", true);
  m.at("default/web:/TCP").endpoints = {testdata::ep("10.244.2.2", 8080, false)};
  step("web 2 -> 1 endpoints (a new count)", true);
  std::string listing = kernel_listing();
  CHECK(listing.find("10.96.100.10 . tcp . 80 . 0 : 10.244.2.2 . 8080") != std::string::npos);
  CHECK(listing.find("10.244.1.2 . 8080") == std::string::npos);
  m.at("default/udp:/UDP").endpoints = {testdata::ep("10.244.2.2", 5353, false)};
  step("udp endpoint replaced", false);
  m.at("default/empty:/TCP").endpoints = {testdata::ep("10.244.1.2", 8080, true)};
  step("empty gets an endpoint", false);
  m.at("default/web:/TCP").endpoints.push_back(testdata::ep("10.244.1.2", 8080, true));
  step("web back to 2 (the count 2 was dropped when web left it: a new count)", true);
  m.at("default/udp:/UDP").endpoints.push_back(testdata::ep("10.244.1.3", 5353, true));
  step("udp 1 -> 2 (the count exists: elements only)", false);
  clock.t += std::chrono::seconds(61);
  step("full re-assert", true);
}

TEST_CASE("kernel: a refused batch leaves the previous ruleset intact", "[proxier][kernel][root]") {
  Kernel k;
  if (!k.why.empty()) {
    testing::skip(k.why);
    return;
  }
  Clock clock;
  ServiceMap m = testdata::goldens().front().map;
  auto p = make_proxier(*k.tables, &clock);
  REQUIRE(p->sync(m).is_ok());
  const std::string before = kernel_listing();
  REQUIRE_FALSE(before.empty());

  ServiceMap changed = m;
  changed.begin()->second.endpoints.pop_back();
  Sabotaged bad(*k.tables);
  auto bp = make_proxier(bad, &clock);
  auto r = bp->sync(changed);  // a full sync (first of this proxier) with one bad operation
  REQUIRE_FALSE(r.is_ok());
  CHECK_THAT(r.status().message(), Catch::Contains("delete chain ip skiff no-such-chain"));
  CHECK(r.status().os_errno() == ENOENT);
  CHECK(kernel_listing() == before);

  // The good proxier's incremental sync of the same change still applies.
  auto ok = p->sync(changed);
  REQUIRE(ok.is_ok());
  CHECK_FALSE(ok->full);
  CHECK(kernel_listing() != before);
}

// Not a test: test/integration/svcproxy_traffic_test.sh runs it in a namespace it made (via
// nsenter) to install the rules for the Services and Endpoints in the JSON file
// $SKIFF_SVCPROXY_APPLY ({"services": [...], "endpoints": [...]}, node "$SKIFF_SVCPROXY_NODE"),
// with the masquerade for 10.244.0.0/16, exactly as skiff-netagent would.
TEST_CASE("apply Services from a file in the current network namespace", "[.][svcproxy-apply]") {
  const char* path = std::getenv("SKIFF_SVCPROXY_APPLY");
  REQUIRE(path != nullptr);
  auto text = files::read_file(path);
  INFO(text.status().to_string());
  REQUIRE(text.is_ok());
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(j.is_discarded());
  std::vector<nlohmann::json> services(j["services"].begin(), j["services"].end());
  std::vector<nlohmann::json> endpoints(j["endpoints"].begin(), j["endpoints"].end());
  const char* node = std::getenv("SKIFF_SVCPROXY_NODE");
  std::vector<Skipped> skipped;
  ServiceMap m = build_service_map(services, endpoints, ModelOptions{node ? node : ""}, &skipped);
  for (const Skipped& s : skipped)
    std::printf("skipped %s: %s\n", s.object.c_str(), s.reason.c_str());
  auto t = nft::NftnlTables::open();
  REQUIRE(t.is_ok());
  Status st = nft::sync_masquerade(*t.value(), "10.244.0.0/16");
  INFO(st.to_string());
  REQUIRE(st.is_ok());
  Clock clock;
  auto p = make_proxier(*t.value(), &clock);
  auto r = p->sync(m);
  INFO(r.status().to_string());
  REQUIRE(r.is_ok());
  std::printf("applied %zu service ports in %zu operations\n", m.size(), r->batch_ops);
}

// Not a test (no timing assertions): programming times at scale on the kernel, in a private
// network namespace. SKIFF_SVCPROXY_SCALE=N Services (default 10000) x 5 endpoints.
TEST_CASE("print programming times at scale", "[.][svcproxy-scale]") {
  Kernel k;
  if (!k.why.empty()) {
    testing::skip(k.why);
    return;
  }
  const char* env = std::getenv("SKIFF_SVCPROXY_SCALE");
  int n = env ? std::atoi(env) : 10000;
  ServiceMap m;
  for (int i = 0; i < n; ++i) {
    ServicePort sp;
    sp.ns = "ns" + std::to_string(i % 100);
    sp.name = "svc" + std::to_string(i);
    sp.port_name = "http";
    sp.cluster_ip = 0x0a600000 + 10 + i;  // 10.96.0.10 + i
    sp.port = 80;
    for (int e = 0; e < 5; ++e) {
      sp.endpoints.push_back({0x0af40000u + uint32_t(i) * 8 + e, 8080, e == 0});
    }
    m[sp.key()] = sp;
  }
  Clock clock;
  auto p = make_proxier(*k.tables, &clock);
  auto report = [](const char* what, const Result<SyncResult>& r, double total_ms) {
    REQUIRE(r.is_ok());
    std::printf("%-28s total %8.2f ms  build %8.2f ms  commit %8.2f ms  ops %zu\n", what, total_ms,
                r->build_time.count() / 1e6, r->commit_time.count() / 1e6, r->batch_ops);
  };
  auto timed = [&](const char* what) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = p->sync(m);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    report(what, r, ms);
  };
  std::printf("%d Services x 5 endpoints\n", n);
  timed("cold sync");
  timed("no-op sync");
  m.begin()->second.endpoints.back().ip += 7;
  timed("change one endpoint");
  m.begin()->second.endpoints.back().ip += 1;
  {
    std::vector<std::string> keys{m.begin()->first};
    auto t0 = std::chrono::steady_clock::now();
    auto r = p->sync(m, &keys);
    report(
        "change one endpoint (hint)", r,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  ServicePort extra = m.begin()->second;
  extra.name = "extra";
  extra.cluster_ip = 0x0a60ff00;
  m[extra.key()] = extra;
  timed("add one Service");
  p->request_full_sync();
  timed("full re-assert");
  Run r =
      sh("nft list table ip skiff > /tmp/skiff-svcproxy-scale.nft; wc -l < "
         "/tmp/skiff-svcproxy-scale.nft");
  std::printf("listing: %s", r.out.c_str());
}
