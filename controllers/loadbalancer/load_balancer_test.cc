#include "controllers/loadbalancer/load_balancer.h"

#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/kubeconfig.h"
#include "proto/event.h"
#include "proto/registry.h"

namespace lb = skiff::controllers::loadbalancer;
using skiff::controllers::json;

namespace {

uint32_t ip(const char* s) { return *lb::parse_ipv4(s); }

json service(const std::string& name, const std::string& type = "LoadBalancer") {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata",
           {{"name", name},
            {"namespace", "default"},
            {"resourceVersion", "1"},
            {"creationTimestamp", "2026-01-01T00:00:0" + std::to_string(name.size() % 10) + "Z"}}},
          {"spec", {{"type", type}, {"ports", {{{"port", 80}}}}}}};
}

class FakeClient : public lb::LbClient {
 public:
  std::map<std::string, json> services;
  std::optional<json> cm;
  int writes = 0;
  skiff::Status next_error;

  void put(const json& s) { services["default/" + s["metadata"]["name"].get<std::string>()] = s; }
  std::string ip_of(const std::string& name) {
    auto& s = services.at("default/" + name);
    auto* st = &s["status"]["loadBalancer"]["ingress"];
    if (!st->is_array() || st->empty()) return "";
    return (*st)[0]["ip"].get<std::string>();
  }
  std::optional<json> get_service(const std::string& key) override {
    auto it = services.find(key);
    if (it == services.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> list_services() override {
    std::vector<json> out;
    for (auto& [k, v] : services) out.push_back(v);
    return out;
  }
  std::optional<json> get_pool_configmap() override { return cm; }
  skiff::Status write_status(const json& svc, const json& lbs) override {
    if (!next_error.is_ok()) {
      auto e = next_error;
      next_error = skiff::Status::ok();
      return e;
    }
    std::string key = "default/" + svc["metadata"]["name"].get<std::string>();
    auto it = services.find(key);
    if (it == services.end()) return skiff::Status::not_found("gone");
    if (it->second["metadata"]["resourceVersion"] != svc["metadata"]["resourceVersion"])
      return skiff::Status::conflict("stale");
    ++writes;
    it->second["status"]["loadBalancer"] = lbs;
    it->second["metadata"]["resourceVersion"] =
        std::to_string(std::stoi(it->second["metadata"]["resourceVersion"].get<std::string>()) + 1);
    return skiff::Status::ok();
  }
};

struct Event {
  std::string name, reason, message;
  bool warning;
};

class FakeEvents : public skiff::controllers::EventSink {
 public:
  std::vector<Event> events;
  void event(const json& obj, const std::string&, bool warning, const std::string& reason,
             const std::string& message) override {
    events.push_back({obj["metadata"]["name"].get<std::string>(), reason, message, warning});
  }
  int count(const std::string& reason) const {
    int n = 0;
    for (auto& e : events) n += e.reason == reason;
    return n;
  }
};

struct Fixture {
  FakeClient client;
  FakeEvents events;
  std::unique_ptr<lb::LoadBalancerController> ctrl;
  explicit Fixture(std::vector<std::string> pool = {"10.250.0.200-10.250.0.202"}) {
    ctrl = make(pool);
  }
  std::unique_ptr<lb::LoadBalancerController> make(std::vector<std::string> pool) {
    lb::LoadBalancerOptions o;
    o.pool = std::move(pool);
    auto c = lb::LoadBalancerController::create(o);
    REQUIRE(c.is_ok());
    auto ctrl = std::move(*c);
    ctrl->set_clients(&client, &events);
    ctrl->reload_pool();
    ctrl->rebuild();
    return ctrl;
  }
  skiff::Status sync(const std::string& name) { return ctrl->sync("default/" + name); }
};

}  // namespace

TEST_CASE("pool entries: ranges, CIDRs, single addresses, errors", "[lb][pool]") {
  CHECK(lb::split_pool_text(" 10.0.0.1-10.0.0.3,10.0.1.0/30\n 10.0.2.9 ,, ") ==
        std::vector<std::string>{"10.0.0.1-10.0.0.3", "10.0.1.0/30", "10.0.2.9"});
  auto p = lb::parse_pool(
      {"10.0.0.1-10.0.0.3", "10.0.1.0/30", "10.0.2.9", "10.0.3.0/32", "10.0.4.0/31"});
  CHECK(p.errors.empty());
  REQUIRE(p.ranges.size() == 5);
  CHECK(p.ranges[0] == lb::AddrRange{ip("10.0.0.1"), ip("10.0.0.3")});
  // /30: network and broadcast left out.
  CHECK(p.ranges[1] == lb::AddrRange{ip("10.0.1.1"), ip("10.0.1.2")});
  CHECK(p.ranges[2] == lb::AddrRange{ip("10.0.2.9"), ip("10.0.2.9")});
  CHECK(p.ranges[3] == lb::AddrRange{ip("10.0.3.0"), ip("10.0.3.0")});
  CHECK(p.ranges[4] == lb::AddrRange{ip("10.0.4.0"), ip("10.0.4.1")});

  auto bad = lb::parse_pool({"10.0.0.9-10.0.0.1", "10.0.0.1/33", "10.0.0.1/24", "nonsense",
                             "10.0.0.256", "1.2.3.4-x", "010.0.0.1", "10.9.9.9"});
  CHECK(bad.ranges.size() == 1);  // the good one is still used
  REQUIRE(bad.errors.size() == 7);
  CHECK_THAT(bad.errors[0], Catch::Contains("10.0.0.9-10.0.0.1") &&
                                Catch::Contains("first address is after the last"));
  CHECK_THAT(bad.errors[1], Catch::Contains("LEN 0..32"));
  CHECK_THAT(bad.errors[2], Catch::Contains("did you mean 10.0.0.0/24"));
  CHECK_THAT(bad.errors[3], Catch::Contains("\"nonsense\""));
}

TEST_CASE("address pool: lowest free, exhaustion, release, assign, out-of-pool", "[lb][pool]") {
  lb::AddressPool pool;
  pool.set_ranges({{ip("10.0.0.5"), ip("10.0.0.6")}, {ip("10.0.0.1"), ip("10.0.0.1")}});
  CHECK(pool.capacity() == 3);
  CHECK(*pool.allocate("a") == ip("10.0.0.1"));
  CHECK(*pool.allocate("a") == ip("10.0.0.1"));  // idempotent
  CHECK(*pool.allocate("b") == ip("10.0.0.5"));
  CHECK(pool.assign("c", ip("10.0.0.5")).code() == skiff::Code::kAlreadyExists);
  CHECK(pool.assign("c", ip("10.0.0.9")).code() == skiff::Code::kInvalid);
  CHECK(pool.assign("c", ip("10.0.0.6")).is_ok());
  auto full = pool.allocate("d");
  REQUIRE(!full.is_ok());
  CHECK_THAT(full.status().message(), Catch::Contains("3 of 3 in use"));
  CHECK(pool.release("b") == ip("10.0.0.5"));
  CHECK(*pool.allocate("d") == ip("10.0.0.5"));
  CHECK(pool.owner_of(ip("10.0.0.5")) == "d");
  // Shrinking the pool keeps allocations recorded but outside it.
  pool.set_ranges({{ip("10.0.0.5"), ip("10.0.0.7")}});
  CHECK(pool.used() == 2);
  CHECK(!pool.in_pool(*pool.address_of("a")));
  CHECK(*pool.allocate("a") == ip("10.0.0.7"));  // moved into the pool
  CHECK(pool.owner_of(ip("10.0.0.1")).empty());
}

TEST_CASE("create refuses bad --lb-pool entries", "[lb]") {
  lb::LoadBalancerOptions o;
  o.pool = {"10.250.0.200-10.250.0.250", "10.1.1.1/40"};
  auto c = lb::LoadBalancerController::create(o);
  REQUIRE(!c.is_ok());
  CHECK_THAT(c.status().message(), Catch::Contains("--lb-pool") && Catch::Contains("10.1.1.1/40"));
  o.pool = {"10.250.0.200-10.250.0.201, 10.250.0.210"};  // one flag value holding two entries
  auto ok = lb::LoadBalancerController::create(o);
  REQUIRE(ok.is_ok());
}

TEST_CASE("which services are handled", "[lb]") {
  auto s = service("a");
  CHECK(lb::handles(s));
  s["spec"]["loadBalancerClass"] = "skiff.io/lb";
  CHECK(lb::handles(s));
  s["spec"]["loadBalancerClass"] = "example.com/other";
  CHECK(!lb::handles(s));
  CHECK(!lb::handles(service("b", "ClusterIP")));
  CHECK(!lb::handles(service("c", "NodePort")));
}

TEST_CASE("controller: assign, idempotent, requested, release, exhaustion", "[lb]") {
  Fixture f;
  f.client.put(service("a"));
  f.client.put(service("b", "ClusterIP"));
  REQUIRE(f.sync("a").is_ok());
  CHECK(f.client.ip_of("a") == "10.250.0.200");
  CHECK(f.events.count("IPAllocated") == 1);
  REQUIRE(f.sync("b").is_ok());
  CHECK(f.client.writes == 1);  // ClusterIP untouched
  REQUIRE(f.sync("a").is_ok());
  CHECK(f.client.writes == 1);  // idempotent

  // Requested address in the pool and free.
  auto c = service("c");
  c["spec"]["loadBalancerIP"] = "10.250.0.202";
  f.client.put(c);
  REQUIRE(f.sync("c").is_ok());
  CHECK(f.client.ip_of("c") == "10.250.0.202");

  // Requested address held by another Service: event, retried.
  auto d = service("d");
  d["spec"]["loadBalancerIP"] = "10.250.0.200";
  f.client.put(d);
  auto st = f.sync("d");
  CHECK(st.code() == skiff::Code::kUnavailable);
  CHECK(f.events.count("AllocationFailed") == 1);
  CHECK_THAT(f.events.events.back().message, Catch::Contains("already assigned to default/a"));
  CHECK(f.client.ip_of("d").empty());

  // Requested address outside the pool: event, not retried, no address.
  auto e = service("e");
  e["spec"]["loadBalancerIP"] = "192.168.1.1";
  f.client.put(e);
  CHECK(f.sync("e").is_ok());
  CHECK(f.events.count("AllocationFailed") == 2);
  CHECK_THAT(f.events.events.back().message, Catch::Contains("not in the address pool"));
  CHECK(f.ctrl->address_of("default/e").empty());

  // Exhaustion: 201 goes to x, then y waits with one event however often it is synced.
  f.client.put(service("x"));
  REQUIRE(f.sync("x").is_ok());
  CHECK(f.client.ip_of("x") == "10.250.0.201");
  f.client.put(service("y"));
  CHECK(f.sync("y").code() == skiff::Code::kUnavailable);
  CHECK(f.sync("y").code() == skiff::Code::kUnavailable);
  CHECK(f.events.count("AllocationFailed") == 3);
  CHECK_THAT(f.events.events.back().message, Catch::Contains("3 of 3 in use"));

  // Deleting x frees 201 and wakes the waiting Services.
  while (f.ctrl->queue().len() > 0) {
    auto k = f.ctrl->queue().get();
    f.ctrl->queue().done(*k);
  }
  f.client.services.erase("default/x");
  REQUIRE(f.sync("x").is_ok());
  CHECK(f.ctrl->queue().len() >= 1);  // y (and d) re-queued
  REQUIRE(f.sync("y").is_ok());
  CHECK(f.client.ip_of("y") == "10.250.0.201");

  // a stops being a LoadBalancer: its address is released and its ingress cleared.
  auto a = f.client.services.at("default/a");
  a["spec"]["type"] = "ClusterIP";
  f.client.put(a);
  REQUIRE(f.sync("a").is_ok());
  CHECK(f.client.ip_of("a").empty());
  CHECK(f.ctrl->address_of("default/a").empty());
  REQUIRE(f.sync("d").is_ok());  // its requested address is free now
  CHECK(f.client.ip_of("d") == "10.250.0.200");
}

TEST_CASE("controller: rebuild keeps addresses across restarts", "[lb]") {
  Fixture f;
  f.client.put(service("a"));
  f.client.put(service("bb"));
  REQUIRE(f.sync("bb").is_ok());
  REQUIRE(f.sync("a").is_ok());
  CHECK(f.client.ip_of("bb") == "10.250.0.200");
  CHECK(f.client.ip_of("a") == "10.250.0.201");
  // A second Service claiming bb's address in its status (written by someone else).
  auto dup = service("dup");
  dup["status"]["loadBalancer"]["ingress"] = {{{"ip", "10.250.0.200"}}};
  f.client.put(dup);
  int writes = f.client.writes;

  auto restarted = f.make({"10.250.0.200-10.250.0.202"});
  CHECK(restarted->address_of("default/a") == "10.250.0.201");
  CHECK(restarted->address_of("default/bb") == "10.250.0.200");
  REQUIRE(restarted->sync("default/a").is_ok());
  REQUIRE(restarted->sync("default/bb").is_ok());
  CHECK(f.client.writes == writes);  // nothing to write
  REQUIRE(restarted->sync("default/dup").is_ok());
  CHECK(f.client.ip_of("dup") == "10.250.0.202");
}

TEST_CASE("controller: ConfigMap pool, bad entries, pool changes, foreign class", "[lb]") {
  Fixture f(std::vector<std::string>{});
  f.client.put(service("a"));
  CHECK(f.sync("a").code() == skiff::Code::kUnavailable);
  CHECK_THAT(f.events.events.back().message, Catch::Contains("pool is empty"));

  f.client.cm = json{{"metadata", {{"name", "skiff-lb-pool"}, {"namespace", "kube-system"}}},
                     {"data", {{"pool", "10.9.0.1/40, 10.9.0.10-10.9.0.11"}}}};
  REQUIRE(f.ctrl->sync(lb::LoadBalancerController::kPoolKey).is_ok());
  CHECK(f.events.count("InvalidPool") == 1);
  CHECK_THAT(f.events.events.back().message, Catch::Contains("10.9.0.1/40"));
  CHECK(f.ctrl->capacity() == 2);
  REQUIRE(f.ctrl->sync(lb::LoadBalancerController::kPoolKey).is_ok());
  CHECK(f.events.count("InvalidPool") == 1);  // once per text
  REQUIRE(f.sync("a").is_ok());
  CHECK(f.client.ip_of("a") == "10.9.0.10");

  // The pool moves: a's address left it, so a gets one of the new pool.
  f.client.cm->at("data")["pool"] = "10.9.1.0/30";
  REQUIRE(f.ctrl->sync(lb::LoadBalancerController::kPoolKey).is_ok());
  CHECK(f.ctrl->queue().len() >= 1);
  REQUIRE(f.sync("a").is_ok());
  CHECK(f.client.ip_of("a") == "10.9.1.1");

  // Another implementation's Service is never touched.
  auto o = service("other");
  o["spec"]["loadBalancerClass"] = "example.com/lb";
  o["status"]["loadBalancer"]["ingress"] = {{{"ip", "1.2.3.4"}}};
  f.client.put(o);
  int writes = f.client.writes;
  REQUIRE(f.sync("other").is_ok());
  CHECK(f.client.writes == writes);
  CHECK(f.client.ip_of("other") == "1.2.3.4");

  // A conflict on write keeps the reservation for the retry.
  f.client.put(service("c"));
  f.client.next_error = skiff::Status::conflict("stale");
  CHECK(f.sync("c").code() == skiff::Code::kConflict);
  CHECK(f.ctrl->address_of("default/c") == "10.9.1.2");
  REQUIRE(f.sync("c").is_ok());
  CHECK(f.client.ip_of("c") == "10.9.1.2");
}

// ---- a runner for test/integration/lb_test.py (hidden: only run when named) ----------------
// Runs the controller against the API server of $SKIFF_LB_KUBECONFIG with pool $SKIFF_LB_POOL
// until SIGTERM/SIGINT, with its own informers and an event sink posting straight to the API.
namespace {

class Factory : public skiff::controllers::InformerFactory {
 public:
  explicit Factory(std::shared_ptr<skiff::client::ApiClient> api) : api_(std::move(api)) {}
  skiff::client::Informer& informer(const skiff::proto::ResourceType& t) override {
    auto& p = informers_[t.plural];
    if (!p) p = std::make_unique<skiff::client::Informer>(api_, t);
    return *p;
  }
  std::map<std::string, std::unique_ptr<skiff::client::Informer>> informers_;

 private:
  std::shared_ptr<skiff::client::ApiClient> api_;
};

class ApiEvents : public skiff::controllers::EventSink {
 public:
  explicit ApiEvents(std::shared_ptr<skiff::client::ApiClient> api) : api_(std::move(api)) {}
  void event(const json& obj, const std::string& kind, bool warning, const std::string& reason,
             const std::string& message) override {
    std::string ns = obj["metadata"].value("namespace", "default");
    std::string name = obj["metadata"].value("name", "");
    json ev = {
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"name", name + "." + std::to_string(++seq_) + "lbtest"}, {"namespace", ns}}},
        {"involvedObject",
         {{"kind", kind}, {"apiVersion", "v1"}, {"name", name}, {"namespace", ns}}},
        {"reason", reason},
        {"message", message},
        {"type", warning ? "Warning" : "Normal"},
        {"count", 1},
        {"source", {{"component", "skiff-lb-test"}}}};
    static const auto t = skiff::proto::event_resource();
    if (auto r = api_->create(t, ns, ev); !r)
      spdlog::warn("event {}: {}", reason, r.status().to_string());
  }

 private:
  std::shared_ptr<skiff::client::ApiClient> api_;
  std::atomic<int> seq_{0};
};

}  // namespace

TEST_CASE("run the controller from the environment", "[.run]") {
  const char* kc = std::getenv("SKIFF_LB_KUBECONFIG");
  const char* pool = std::getenv("SKIFF_LB_POOL");
  REQUIRE(kc);
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
  lb::LoadBalancerOptions o;
  if (pool) o.pool = {pool};
  auto c = lb::LoadBalancerController::create(o);
  if (!c.is_ok()) {
    spdlog::error("{}", c.status().to_string());
    std::exit(1);
  }
  Factory factory(api);
  ApiEvents events(api);
  skiff::controllers::ControllerContext ctx{api, &factory, &events};
  REQUIRE((*c)->init(ctx).is_ok());
  for (auto& [n, inf] : factory.informers_) inf->start();
  for (auto& [n, inf] : factory.informers_) REQUIRE(inf->wait_for_sync(std::chrono::seconds(30)));
  spdlog::info("lb controller running");
  std::jthread runner([&](std::stop_token st) { (*c)->run(st); });
  int sig = 0;
  sigwait(&set, &sig);
  runner.request_stop();
  runner.join();
  for (auto& [n, inf] : factory.informers_) inf->stop();
}
