// The Proxier against netagent/nft's FakeNftTables: the rendered ruleset compared as text, and
// what each incremental sync sends (inspected in the recorded batch).
#include "netagent/services/proxier.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "netagent/nft/fake.h"
#include "netagent/nft/skiff_table.h"
#include "netagent/services/testdata.h"

using namespace skiff;
using namespace skiff::services;
using skiff::nft::Batch;
using skiff::nft::FakeNftTables;

namespace {

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

// The table a fresh proxier (full sync) makes for `m`: what any sequence of incremental syncs
// ending at `m` must also have made.
std::string fresh_listing(const ServiceMap& m) {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  auto r = p->sync(m);
  REQUIRE(r.is_ok());
  return testdata::canonical(fake.list());
}

// Operation kinds of a batch in order, as "add_chain x" lines (rules: "add_rule x").
std::multiset<std::string> ops(const Batch& b) {
  std::multiset<std::string> out;
  for (size_t i = 0; i < b.ops().size(); ++i) out.insert(b.describe(i));
  return out;
}

size_t count_kind(const Batch& b, Batch::Kind k) {
  size_t n = 0;
  for (const auto& op : b.ops()) n += op.kind == k;
  return n;
}

size_t elements_in(const Batch& b, Batch::Kind k) {
  size_t n = 0;
  for (const auto& op : b.ops()) {
    if (op.kind == k) n += op.elements.size();
  }
  return n;
}

}  // namespace

TEST_CASE("create validates the cluster CIDR", "[proxier]") {
  FakeNftTables fake;
  ProxierOptions o;
  o.cluster_cidr = "10.244.1.0/16";
  auto p = Proxier::create(fake, o);
  REQUIRE_FALSE(p.is_ok());
  CHECK(p.status().message().find("--cluster-cidr") != std::string::npos);
}

TEST_CASE("chain names follow kube-proxy's scheme and fit the kernel", "[proxier]") {
  ServicePort sp = testdata::port("ns1", "svc1", "p80", Protocol::kTcp, "10.96.0.41", 80,
                                  {{"10.244.1.5", 8080, true}});
  std::string s = service_chain_name(sp);
  CHECK(s.rfind("service-", 0) == 0);
  CHECK(s.size() == 8 + 8 + 1 + std::string("ns1/svc1/tcp/p80").size());
  CHECK(s.substr(17) == "ns1/svc1/tcp/p80");
  CHECK(endpoint_chain_name(sp, sp.endpoints[0]).substr(18) == "ns1/svc1/tcp/p80__10.244.1.5/8080");
  CHECK(external_chain_name(sp).rfind("external-", 0) == 0);
  ServicePort big = sp;
  big.ns = std::string(63, 'n');
  big.name = std::string(63, 's');
  big.port_name = std::string(15, 'p');
  CHECK(endpoint_chain_name(big, big.endpoints[0]).size() <= 255);
  ServicePort huge = big;
  huge.ns = std::string(250, 'n');  // not a valid namespace, but never over the limit
  CHECK(endpoint_chain_name(huge, huge.endpoints[0]).size() == 255);
  ServicePort huge2 = huge;
  huge2.endpoints[0].port = 8081;
  CHECK(endpoint_chain_name(huge, huge.endpoints[0]) !=
        endpoint_chain_name(huge2, huge2.endpoints[0]));
}

TEST_CASE("the rendered ruleset for the reference Services", "[proxier][golden]") {
  for (const testdata::Golden& g : testdata::goldens()) {
    DYNAMIC_SECTION(g.name) {
      FakeNftTables fake;
      Clock clock;
      auto p = make_proxier(fake, &clock);
      auto r = p->sync(g.map);
      REQUIRE(r.is_ok());
      CHECK(r->full);
      CHECK(fake.committed().size() == 1);
      CHECK(testdata::canonical(fake.list()) == testdata::canonical(g.listing));
      // A second sync with nothing changed sends nothing.
      auto r2 = p->sync(g.map);
      REQUIRE(r2.is_ok());
      CHECK_FALSE(r2->full);
      CHECK(r2->batch_ops == 0);
      CHECK(fake.committed().size() == 1);
    }
  }
}

TEST_CASE("incremental syncs send only what changed", "[proxier][incremental]") {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServiceMap m;
  for (int i = 0; i < 20; ++i) {
    std::string ip = "10.96.1." + std::to_string(i + 1);
    ServicePort sp =
        testdata::port("default", "svc" + std::to_string(i), "http", Protocol::kTcp, ip, 80,
                       {{"10.244.1." + std::to_string(i + 10), 8080, true},
                        {"10.244.2." + std::to_string(i + 10), 8080, false}});
    m[sp.key()] = sp;
  }
  REQUIRE(p->sync(m).is_ok());
  REQUIRE(fake.committed().size() == 1);

  SECTION("one endpoint added: element changes, and one new count set the first time") {
    ServicePort& sp = m.at("default/svc3:http/TCP");
    sp.endpoints.push_back(testdata::ep("10.244.3.9", 8080, false));
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK_FALSE(r->full);
    CHECK(r->ports_changed == 1);
    CHECK(r->chains_written == 1);  // pick-3: the first Service with 3 endpoints
    CHECK(r->chains_deleted == 0);
    CHECK(r->elements_deleted == 1);  // the ClusterIP key leaves all-2
    CHECK(r->elements_added == 3);    // ... joins all-3; slot 2; the hairpin pair
    const Batch& b = fake.committed().back();
    CHECK(ops(b) ==
          std::multiset<std::string>{
              "add set ip skiff all-3", "add chain ip skiff pick-3", "add rule ip skiff pick-3",
              "add rule ip skiff pick-3", "add rule ip skiff pick-3",
              "flush chain ip skiff service-dispatch", "add rule ip skiff service-dispatch",
              "add rule ip skiff service-dispatch", "delete 1 element from set ip skiff all-2",
              "add 1 element to set ip skiff all-3", "add 1 element to set ip skiff hairpin",
              "add 1 element to set ip skiff service-endpoints"});
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
    // The next Service reaching 3 endpoints: elements only (no rule: the kernel does not
    // re-validate the chain graph).
    ServicePort& sp2 = m.at("default/svc8:http/TCP");
    sp2.endpoints.push_back(testdata::ep("10.244.3.10", 8080, false));
    r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->chains_written == 0);
    const Batch& b2 = fake.committed().back();
    CHECK(count_kind(b2, Batch::Kind::kAddRule) == 0);
    CHECK(count_kind(b2, Batch::Kind::kAddChain) == 0);
    CHECK(count_kind(b2, Batch::Kind::kAddSet) == 0);
    CHECK(b2.ops().size() == 4);  // delete from all-2; add to all-3, service-endpoints, hairpin
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("one endpoint replaced: its slot's data, the hairpin pairs") {
    ServicePort& sp = m.at("default/svc4:http/TCP");
    sp.endpoints.back() = testdata::ep("10.244.2.99", 8080, false);
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    const Batch& b = fake.committed().back();
    CHECK(ops(b) ==
          std::multiset<std::string>{"delete 1 element from set ip skiff service-endpoints",
                                     "add 1 element to set ip skiff service-endpoints",
                                     "delete 1 element from set ip skiff hairpin",
                                     "add 1 element to set ip skiff hairpin"});
    CHECK(fake.list().find("10.96.1.5 . tcp . 80 . 1 : 10.244.2.99 . 8080") != std::string::npos);
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("one endpoint removed") {
    ServicePort& sp = m.at("default/svc4:http/TCP");
    sp.endpoints.pop_back();
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->chains_written == 1);    // pick-1, new
    CHECK(r->chains_deleted == 0);    // unused count chains go at the next full re-assert
    CHECK(r->stale_udp.empty());      // TCP
    CHECK(r->elements_deleted == 3);  // all-2, slot 1, hairpin
    CHECK(r->elements_added == 1);    // all-1
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("one Service added: elements only") {
    ServicePort sp = testdata::port("other", "new", "", Protocol::kTcp, "10.96.2.1", 443,
                                    {{"10.244.5.1", 8443, false}, {"10.244.5.2", 8443, false}});
    m[sp.key()] = sp;
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->ports_added == 1);
    CHECK(r->chains_written == 0);
    CHECK(r->elements_added == 6);  // cluster-masq, all-2, 2 slots, 2 hairpin pairs
    const Batch& b = fake.committed().back();
    CHECK(count_kind(b, Batch::Kind::kAddRule) == 0);
    CHECK(count_kind(b, Batch::Kind::kAddChain) == 0);
    CHECK(elements_in(b, Batch::Kind::kAddElements) == 6);
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("one Service removed: elements only") {
    ServicePort sp = m.at("default/svc7:http/TCP");
    m.erase(sp.key());
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->ports_removed == 1);
    CHECK(r->chains_deleted == 0);
    CHECK(r->elements_deleted == 6);
    const Batch& b = fake.committed().back();
    CHECK(elements_in(b, Batch::Kind::kDeleteElements) == 6);
    CHECK(count_kind(b, Batch::Kind::kAddRule) == 0);
    CHECK(b.ops().size() == 4);
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("last endpoint gone: the ClusterIP moves to the reject set, and back") {
    ServicePort& sp = m.at("default/svc2:http/TCP");
    auto eps = sp.endpoints;
    sp.endpoints.clear();
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->elements_deleted == 6);
    CHECK(r->elements_added == 1);
    CHECK(count_kind(fake.committed().back(), Batch::Kind::kAddRule) == 0);
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
    auto noep = fake.elements(kSetNoEndpointServices);
    REQUIRE(noep.size() == 1);
    CHECK(noep[0].key == nft::service_key(sp.cluster_ip, nft::kTcp, 80));
    sp.endpoints = eps;
    REQUIRE(p->sync(m).is_ok());
    CHECK(fake.elements(kSetNoEndpointServices).empty());
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("a NodePort and affinity added, then removed") {
    ServicePort& sp = m.at("default/svc5:http/TCP");
    ServicePort before = sp;
    sp.node_port = 30005;
    sp.affinity_timeout_seconds = 30;
    REQUIRE(p->sync(m).is_ok());
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
    CHECK(fake.has_set(affinity_set_name(sp, sp.endpoints[0])));
    sp.affinity_timeout_seconds = 60;  // new sets, old ones deleted
    REQUIRE(p->sync(m).is_ok());
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
    sp = before;
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
  SECTION("nothing changed: nothing sent, until the periodic full re-assert") {
    auto r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->batch_ops == 0);
    clock.t += std::chrono::seconds(61);
    r = p->sync(m);
    REQUIRE(r.is_ok());
    CHECK(r->full);
    CHECK(r->batch_ops > 0);
    CHECK(fake.committed().size() == 2);
    CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
  }
}

TEST_CASE("UDP endpoints removed are reported for conntrack cleanup", "[proxier][udp]") {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServicePort sp = testdata::port("default", "dns", "dns", Protocol::kUdp, "10.96.0.53", 53,
                                  {{"10.244.1.2", 5353, true}, {"10.244.2.2", 5353, false}});
  sp.node_port = 30053;
  sp.external_ips = {0xc0000209};  // 192.0.2.9
  ServiceMap m{{sp.key(), sp}};
  REQUIRE(p->sync(m).is_ok());
  m.at(sp.key()).endpoints.erase(m.at(sp.key()).endpoints.begin());
  auto r = p->sync(m);
  REQUIRE(r.is_ok());
  std::vector<StaleUdpFlow> want = {{0x0a600035, 53, 0x0af40102, 5353},
                                    {0xc0000209, 53, 0x0af40102, 5353},
                                    {0, 30053, 0x0af40102, 5353}};
  CHECK(r->stale_udp == want);
  m.clear();
  r = p->sync(m);
  REQUIRE(r.is_ok());
  CHECK(r->stale_udp.size() == 3);  // the other endpoint, on all three addresses
}

TEST_CASE("a full re-assert repairs drift and removes stale chains", "[proxier][full]") {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServiceMap m = testdata::goldens().front().map;
  REQUIRE(p->sync(m).is_ok());
  const std::string want = fake.list();
  const ServicePort& sp = m.begin()->second;

  // Drift by hand: an element deleted, a pick chain flushed, a rule added to `services`, the
  // hairpin set emptied.
  Batch drift(nft::kSkiffFamily, nft::kSkiffTable);
  nft::Element e;
  e.key = nft::service_key(sp.cluster_ip, static_cast<uint8_t>(sp.protocol), sp.port);
  drift.delete_elements(kSetClusterMasq, {e});
  drift.flush_chain("pick-3");
  drift.flush_set(kSetHairpin);
  drift.add_rule(kChainServices, nft::Rule{{nft::Verdict{nft::VerdictCode::kDrop, {}}}, {}});
  REQUIRE(fake.commit(drift).is_ok());
  REQUIRE(fake.list() != want);

  // Incremental syncs do not see drift...
  auto r = p->sync(m);
  REQUIRE(r.is_ok());
  CHECK(r->batch_ops == 0);
  // ...the full re-assert repairs it, in one batch, without deleting the table.
  p->request_full_sync();
  r = p->sync(m);
  REQUIRE(r.is_ok());
  CHECK(r->full);
  CHECK(count_kind(fake.committed().back(), Batch::Kind::kDeleteTable) == 0);
  CHECK(testdata::canonical(fake.list()) == testdata::canonical(want));

  // A port dropped while the next sync is a full one: its chains are removed as stale.
  ServiceMap fewer = m;
  fewer.erase(fewer.begin());
  p->request_full_sync();
  r = p->sync(fewer);
  REQUIRE(r.is_ok());
  CHECK(r->full);
  CHECK(r->chains_deleted == 1);  // pick-3: no Service has 3 endpoints any more
  CHECK_FALSE(fake.has_chain("pick-3"));
  CHECK_FALSE(fake.has_set("all-3"));
  CHECK(testdata::canonical(fake.list()) == fresh_listing(fewer));

  // An endpoint dropped from a port while the next sync is a full one: its count's chain is
  // stale.
  REQUIRE(p->sync(m).is_ok());
  ServiceMap changed = m;
  ServicePort& csp = changed.begin()->second;
  const std::string gone = "pick-3";
  REQUIRE(fake.has_chain(gone));
  csp.endpoints.pop_back();
  p->request_full_sync();
  r = p->sync(changed);
  REQUIRE(r.is_ok());
  CHECK(r->full);
  CHECK(r->chains_deleted == 1);
  CHECK_FALSE(fake.has_chain(gone));
  CHECK(testdata::canonical(fake.list()) == fresh_listing(changed));
}

TEST_CASE("masquerade's postrouting chain survives every sync", "[proxier][full]") {
  FakeNftTables fake;
  REQUIRE(nft::sync_masquerade(fake, "10.244.0.0/16").is_ok());
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServiceMap m = testdata::goldens().front().map;
  REQUIRE(p->sync(m).is_ok());
  p->request_full_sync();
  REQUIRE(p->sync(m).is_ok());
  m.clear();
  REQUIRE(p->sync(m).is_ok());
  CHECK(fake.rules(nft::kPostroutingChain).size() == 2);
}

TEST_CASE("a failed commit changes nothing and makes the next sync a full one", "[proxier]") {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServiceMap m = testdata::goldens().front().map;
  REQUIRE(p->sync(m).is_ok());
  const std::string before = fake.list();
  ServiceMap changed = m;
  changed.begin()->second.endpoints.pop_back();
  fake.fail_next_commit(Status(Code::kIo, "add rule ip skiff x: No buffer space available", 105));
  auto r = p->sync(changed);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("sync service rules") != std::string::npos);
  CHECK(r.status().os_errno() == 105);
  CHECK(fake.list() == before);
  CHECK(p->applied() == m);
  r = p->sync(changed);
  REQUIRE(r.is_ok());
  CHECK(r->full);
  CHECK(testdata::canonical(fake.list()) == fresh_listing(changed));
}

TEST_CASE("two Services claiming one external IP and port do not break the batch", "[proxier]") {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServicePort a = testdata::port("default", "a", "", Protocol::kTcp, "10.96.0.2", 80,
                                 {{"10.244.1.2", 80, false}});
  ServicePort b = testdata::port("default", "b", "", Protocol::kTcp, "10.96.0.3", 80,
                                 {{"10.244.1.3", 80, false}});
  a.external_ips = b.external_ips = {0xc0000201};
  ServiceMap m{{a.key(), a}};
  REQUIRE(p->sync(m).is_ok());
  m[b.key()] = b;
  REQUIRE(p->sync(m).is_ok());  // b's element is not added: a owns it
  m.erase(a.key());
  REQUIRE(p->sync(m).is_ok());
  p->request_full_sync();
  REQUIRE(p->sync(m).is_ok());  // the full sync gives it to b
  CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
}

TEST_CASE("the changed-keys hint from update_service makes the same batch as the full walk",
          "[proxier][incremental]") {
  testdata::ApiObjects o;
  for (int i = 0; i < 5; ++i) {
    o.add("s" + std::to_string(i),
          {{"clusterIP", "10.96.3." + std::to_string(i + 1)},
           {"ports", {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}}},
          {{"10.244.1." + std::to_string(i + 1), "node1"}}, "http", 8080);
  }
  ServiceMap m = o.map();
  FakeNftTables walk_fake, hint_fake;
  Clock clock;
  auto walk = make_proxier(walk_fake, &clock);
  auto hint = make_proxier(hint_fake, &clock);
  REQUIRE(walk->sync(m).is_ok());
  REQUIRE(hint->sync(m).is_ok());

  // s2 gains an endpoint; s4 is deleted.
  ModelOptions opts{"node1"};
  std::vector<std::string> keys;
  nlohmann::json eps = o.endpoints[2];
  eps["subsets"][0]["addresses"].push_back({{"ip", "10.244.2.9"}, {"nodeName", "node2"}});
  CHECK(update_service(&m, "default", "s2", &o.services[2], &eps, opts, nullptr, &keys));
  CHECK(update_service(&m, "default", "s4", nullptr, nullptr, opts, nullptr, &keys));
  CHECK_FALSE(
      update_service(&m, "default", "s1", &o.services[1], &o.endpoints[1], opts, nullptr, &keys));
  CHECK(keys == std::vector<std::string>{"default/s2:http/TCP", "default/s2:http/TCP",
                                         "default/s4:http/TCP"});
  auto rw = walk->sync(m);
  auto rh = hint->sync(m, &keys);
  REQUIRE(rw.is_ok());
  REQUIRE(rh.is_ok());
  CHECK(rh->ports_changed == 1);
  CHECK(rh->ports_removed == 1);
  CHECK(ops(walk_fake.committed().back()) == ops(hint_fake.committed().back()));
  CHECK(hint_fake.list() == walk_fake.list());
  CHECK(hint->applied() == m);
}

TEST_CASE("a ClusterIP moving to another Service in one sync is not lost", "[proxier]") {
  FakeNftTables fake;
  Clock clock;
  auto p = make_proxier(fake, &clock);
  ServicePort old_svc = testdata::port("default", "zzz-old", "", Protocol::kTcp, "10.96.0.9", 80,
                                       {{"10.244.1.2", 80, false}});
  ServicePort new_svc = testdata::port("default", "aaa-new", "", Protocol::kTcp, "10.96.0.9", 80,
                                       {{"10.244.1.3", 80, false}});
  ServiceMap m{{old_svc.key(), old_svc}};
  REQUIRE(p->sync(m).is_ok());
  m = ServiceMap{{new_svc.key(), new_svc}};
  auto r = p->sync(m);
  REQUIRE(r.is_ok());
  CHECK(r->elements_deleted == 4);  // the old port's cluster-masq, all-1, slot, hairpin pair
  CHECK(r->elements_added == 4);    // the new port's (it claims the address its owner freed)
  CHECK(testdata::canonical(fake.list()) == fresh_listing(m));
}
