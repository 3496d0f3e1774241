// The EndpointSlice controller: the pure plan (Endpoints JSON -> slices to create, update,
// delete) and sync() on a fake cache + API server (no write when nothing changed, the lagging
// cache, conflicts, deletion).
#include "controllers/endpointslice/endpointslice.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "controllers/endpointslice/endpointslice_util.h"
#include "proto/registry.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::endpointslice;
using json = nlohmann::json;

namespace {

const char* kManagedBy = "endpointslice.kubernetes.io/managed-by";
const char* kServiceName = "kubernetes.io/service-name";

json addr(const std::string& ip, const std::string& pod = "") {
  json a = {{"ip", ip}};
  if (!pod.empty()) {
    a["nodeName"] = "node1";
    a["targetRef"] = {
        {"kind", "Pod"}, {"namespace", "default"}, {"name", pod}, {"uid", "u-" + pod}};
  }
  return a;
}

json port(const std::string& name, int p, const std::string& proto = "TCP") {
  return {{"name", name}, {"port", p}, {"protocol", proto}};
}

json make_ep(const json& subsets, const json& labels = {{"app", "web"}}) {
  json e = {{"apiVersion", "v1"},
            {"kind", "Endpoints"},
            {"metadata",
             {{"name", "web"},
              {"namespace", "default"},
              {"labels", labels},
              {"annotations",
               {{"endpoints.kubernetes.io/last-change-trigger-time", "2026-12-01T10:00:00Z"}}}}}};
  if (!subsets.is_null()) e["subsets"] = subsets;
  return e;
}

const json kSvc = {{"apiVersion", "v1"},
                   {"kind", "Service"},
                   {"metadata", {{"name", "web"}, {"namespace", "default"}, {"uid", "svc-uid"}}}};

// What the API server makes of a create: normalized, defaulted, named, versioned.
json stored(const json& obj, const std::string& name, int rv) {
  const proto::ResourceType* t =
      proto::Registry::builtin().find("discovery.k8s.io", "v1", "endpointslices");
  REQUIRE(t);
  proto::FieldErrors errs;
  json n = t->normalize(obj, errs, {});
  REQUIRE(errs.empty());
  t->apply_defaults(n);
  REQUIRE(t->validate(n, nullptr).empty());
  n["metadata"]["name"] = name;
  n["metadata"].erase("generateName");
  n["metadata"]["resourceVersion"] = std::to_string(rv);
  return n;
}

std::vector<std::string> addresses(const json& slice) {
  std::vector<std::string> out;
  for (const auto& e : slice["endpoints"]) out.push_back(e["addresses"][0]);
  return out;
}

json many_addresses(int n, int from = 0) {
  json a = json::array();
  for (int i = from; i < from + n; ++i)
    a.push_back(addr("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)));
  return a;
}

// Applies a plan to `slices` as the API server would (names s-0, s-1, ...).
void apply_plan(const SlicePlan& plan, std::vector<json>& slices, int& rv) {
  for (const auto& c : plan.create)
    slices.push_back(stored(c, "web-" + std::to_string(slices.size()), ++rv));
  for (const auto& u : plan.update)
    for (auto& s : slices)
      if (s["metadata"]["name"] == u["metadata"]["name"])
        s = stored(u, u["metadata"]["name"], ++rv);
  for (const auto& name : plan.remove)
    std::erase_if(slices, [&](const json& s) { return s["metadata"]["name"] == name; });
}

}  // namespace

TEST_CASE("desired groups: conditions, copied fields, port sets, skipped addresses") {
  json ep = make_ep(json::array(
      {{{"addresses",
         {addr("10.0.0.2", "b"), addr("10.0.0.1", "a"), addr("fd00::1"), addr("127.0.0.1"),
          addr("nope")}},
        {"notReadyAddresses", {addr("10.0.0.3", "c")}},
        {"ports", {port("metrics", 9090), port("http", 80)}}},
       {{"addresses", {addr("10.0.0.9")}}, {"ports", {port("dns", 53, "UDP")}}},
       // Same port set again, the address listed ready here and not ready above: ready wins.
       {{"addresses", {addr("10.0.0.3", "c")}},
        {"ports", {port("http", 80), port("metrics", 9090)}}}}));
  ep["subsets"][0]["addresses"][0]["hostname"] = "web-b";
  Groups g = desired_groups(ep);
  CHECK(g.skipped == 3);
  REQUIRE(g.groups.size() == 2);
  const PortGroup& dns = g.groups[0].ports[0]["name"] == "dns" ? g.groups[0] : g.groups[1];
  const PortGroup& web = &dns == &g.groups[0] ? g.groups[1] : g.groups[0];
  CHECK(dns.ports == json::parse(R"([{"name":"dns","port":53,"protocol":"UDP"}])"));
  CHECK(web.ports == json::parse(R"([{"name":"http","port":80,"protocol":"TCP"},
                                     {"name":"metrics","port":9090,"protocol":"TCP"}])"));
  REQUIRE(web.endpoints.size() == 3);
  CHECK(web.endpoints[0] == json::parse(R"({"addresses":["10.0.0.1"],
      "conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"node1",
      "targetRef":{"kind":"Pod","namespace":"default","name":"a","uid":"u-a"}})"));
  CHECK(web.endpoints[1]["hostname"] == "web-b");
  CHECK(web.endpoints[2]["addresses"][0] == "10.0.0.3");
  CHECK(web.endpoints[2]["conditions"]["ready"] == true);

  json nr = make_ep(json::array({{{"notReadyAddresses", {addr("10.0.0.7")}}}}));
  Groups g2 = desired_groups(nr);
  REQUIRE(g2.groups.size() == 1);
  CHECK(g2.groups[0].ports == json::array());
  CHECK(g2.groups[0].endpoints[0]["conditions"] ==
        json::parse(R"({"ready":false,"serving":false,"terminating":false})"));
}

TEST_CASE("plan: a new Endpoints gets one slice with labels, owner and generateName") {
  json ep = make_ep(json::array({{{"addresses", {addr("10.0.0.1", "a")}},
                                  {"notReadyAddresses", {addr("10.0.0.2", "b")}},
                                  {"ports", {port("http", 80)}}}}));
  SlicePlan plan = plan_slices(ep, &kSvc, {});
  REQUIRE(plan.create.size() == 1);
  CHECK(plan.update.empty());
  CHECK(plan.remove.empty());
  const json& s = plan.create[0];
  CHECK(s["apiVersion"] == "discovery.k8s.io/v1");
  CHECK(s["kind"] == "EndpointSlice");
  CHECK(s["addressType"] == "IPv4");
  CHECK(s["metadata"]["generateName"] == "web-");
  CHECK(s["metadata"]["namespace"] == "default");
  CHECK(s["metadata"]["labels"] == json{{"app", "web"},
                                        {kServiceName, "web"},
                                        {kManagedBy, "endpointslice-controller.k8s.io"}});
  CHECK(s["metadata"]["ownerReferences"] == json::parse(R"([{"apiVersion":"v1","kind":"Service",
      "name":"web","uid":"svc-uid","controller":true,"blockOwnerDeletion":true}])"));
  CHECK(s["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] ==
        "2026-12-01T10:00:00Z");
  CHECK(s["ports"] == json::parse(R"([{"name":"http","port":80,"protocol":"TCP"}])"));
  CHECK(addresses(s) == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  CHECK(s["endpoints"][1]["conditions"]["ready"] == false);
  // Without a Service: no ownerReference.
  SlicePlan orphan = plan_slices(ep, nullptr, {});
  REQUIRE(orphan.create.size() == 1);
  CHECK_FALSE(orphan.create[0]["metadata"].contains("ownerReferences"));
}

TEST_CASE("plan: nothing to do when the slices already match (after the API's defaults)") {
  json ep = make_ep(json::array({{{"addresses", {addr("10.0.0.1", "a"), addr("10.0.0.2")}},
                                  {"ports", {{{"name", "http"}, {"port", 80}}}}}}));
  std::vector<json> slices;
  int rv = 10;
  apply_plan(plan_slices(ep, &kSvc, slices), slices, rv);
  REQUIRE(slices.size() == 1);
  CHECK(plan_slices(ep, &kSvc, slices).empty());
  // The trigger time alone does not cause a write.
  ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = "later";
  CHECK(plan_slices(ep, &kSvc, slices).empty());
  // The Service appearing adds the owner; its labels changing changes the slice's.
  CHECK(plan_slices(ep, nullptr, slices).update.size() == 1);
  ep["metadata"]["labels"]["tier"] = "front";
  SlicePlan p = plan_slices(ep, &kSvc, slices);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0]["metadata"]["labels"]["tier"] == "front");
  CHECK(
      p.update[0]["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] ==
      "later");
}

TEST_CASE("plan: changes update the slice in place") {
  json ep =
      make_ep(json::array({{{"addresses", {addr("10.0.0.1")}}, {"ports", {port("http", 80)}}}}));
  std::vector<json> slices;
  int rv = 10;
  apply_plan(plan_slices(ep, &kSvc, slices), slices, rv);
  REQUIRE(slices.size() == 1);

  // An address added, one made not ready.
  ep["subsets"][0]["addresses"] = {addr("10.0.0.2")};
  ep["subsets"][0]["notReadyAddresses"] = {addr("10.0.0.1")};
  SlicePlan p = plan_slices(ep, &kSvc, slices);
  REQUIRE(p.update.size() == 1);
  CHECK(p.create.empty());
  CHECK(p.remove.empty());
  CHECK(p.update[0]["metadata"]["name"] == "web-0");
  CHECK(p.update[0]["metadata"]["resourceVersion"] == "11");
  CHECK(addresses(p.update[0]) == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  CHECK(p.update[0]["endpoints"][0]["conditions"]["ready"] == false);
  apply_plan(p, slices, rv);

  // The port changed: same slice, new ports.
  ep["subsets"][0]["ports"] = {port("http", 8080)};
  p = plan_slices(ep, &kSvc, slices);
  REQUIRE(p.update.size() == 1);
  CHECK(p.create.empty());
  CHECK(p.remove.empty());
  CHECK(p.update[0]["ports"][0]["port"] == 8080);
  apply_plan(p, slices, rv);
  CHECK(plan_slices(ep, &kSvc, slices).empty());

  // Two port sets: the existing slice keeps the first, a new one for the second.
  ep["subsets"].push_back({{"addresses", {addr("10.0.0.5")}}, {"ports", {port("dns", 53, "UDP")}}});
  p = plan_slices(ep, &kSvc, slices);
  CHECK(p.create.size() == 1);
  CHECK(p.update.empty());
  apply_plan(p, slices, rv);
  CHECK(slices.size() == 2);
  // The first port set gone: its slice deleted.
  ep["subsets"].erase(0);
  p = plan_slices(ep, &kSvc, slices);
  CHECK(p.create.empty());
  CHECK(p.update.empty());
  CHECK(p.remove == std::vector<std::string>{"web-0"});
}

TEST_CASE("plan: at most 100 endpoints per slice; endpoints stay where they are") {
  json ep = make_ep(json::array({{{"addresses", many_addresses(150)}, {"ports", {port("", 80)}}}}));
  std::vector<json> slices;
  int rv = 10;
  SlicePlan p = plan_slices(ep, &kSvc, slices);
  REQUIRE(p.create.size() == 2);
  CHECK(p.create[0]["endpoints"].size() == 100);
  CHECK(p.create[1]["endpoints"].size() == 50);
  apply_plan(p, slices, rv);
  CHECK(plan_slices(ep, &kSvc, slices).empty());

  // One more address: only the slice with room changes.
  ep["subsets"][0]["addresses"].push_back(addr("10.9.9.9"));
  p = plan_slices(ep, &kSvc, slices);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0]["metadata"]["name"] == "web-1");
  CHECK(p.update[0]["endpoints"].size() == 51);
  CHECK(p.create.empty());
  apply_plan(p, slices, rv);

  // Down to 30: the emptied slice is deleted, the other keeps its endpoints.
  ep["subsets"][0]["addresses"] = many_addresses(30);
  p = plan_slices(ep, &kSvc, slices);
  CHECK(p.update.size() == 1);
  CHECK(p.update[0]["metadata"]["name"] == "web-0");
  CHECK(p.remove == std::vector<std::string>{"web-1"});
  apply_plan(p, slices, rv);
  REQUIRE(slices.size() == 1);
  CHECK(slices[0]["endpoints"].size() == 30);

  // A smaller limit (the option) splits further.
  json big = make_ep(json::array({{{"addresses", many_addresses(25)}, {"ports", {port("", 80)}}}}));
  CHECK(plan_slices(big, &kSvc, {}, 10).create.size() == 3);
}

TEST_CASE("plan: placeholder, deletion, skip-mirror, other managers, other address types") {
  // No addresses: one empty placeholder slice, as Kubernetes keeps for a Service.
  json empty = make_ep(nullptr);
  SlicePlan p = plan_slices(empty, &kSvc, {});
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0]["endpoints"] == json::array());
  CHECK(p.create[0]["ports"] == json::array());
  std::vector<json> slices;
  int rv = 1;
  apply_plan(p, slices, rv);
  CHECK(plan_slices(empty, &kSvc, slices).empty());
  // Addresses arrive: the placeholder is filled.
  json ep = make_ep(json::array({{{"addresses", {addr("10.0.0.1")}}, {"ports", {port("", 80)}}}}));
  p = plan_slices(ep, &kSvc, slices);
  REQUIRE(p.update.size() == 1);
  CHECK(p.create.empty());
  apply_plan(p, slices, rv);

  // Slices of another manager are left alone; an IPv6 slice of ours goes.
  json foreign = slices[0];
  foreign["metadata"]["name"] = "foreign";
  foreign["metadata"]["labels"][kManagedBy] = "someone-else";
  json v6 = slices[0];
  v6["metadata"]["name"] = "v6";
  v6["addressType"] = "IPv6";
  slices.push_back(foreign);
  slices.push_back(v6);
  p = plan_slices(ep, &kSvc, slices);
  CHECK(p.remove == std::vector<std::string>{"v6"});
  CHECK(p.update.empty());
  CHECK(p.create.empty());
  // The Endpoints gone: every slice of ours goes.
  CHECK(slices_to_remove(slices) == std::vector<std::string>{"v6", "web-0"});

  CHECK(should_mirror(ep));
  json skip = ep;
  skip["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] = "true";
  CHECK_FALSE(should_mirror(skip));
  json lock = ep;
  lock["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"] = "{}";
  CHECK_FALSE(should_mirror(lock));
  json long_name = ep;
  long_name["metadata"]["name"] = std::string(64, 'a');
  CHECK_FALSE(should_mirror(long_name));
}

// ---------------------------------------------------------------------------------------------
// sync() on fakes.

namespace {

// The informer caches and the API server in one. With `lag`, the slice cache does not see
// writes (a watch that has not delivered them yet).
class FakeCluster : public Listers, public SliceClient {
 public:
  std::mutex mu;
  std::map<std::string, json> eps, svcs;
  std::map<std::string, json> api, cache;  // slice name -> slice
  int creates = 0, updates = 0, deletes = 0, lists = 0, conflicts_to_inject = 0, rv = 100;
  bool lag = false;

  std::optional<json> endpoints(const std::string& key) override {
    std::lock_guard l(mu);
    auto it = eps.find(key);
    return it == eps.end() ? std::nullopt : std::optional<json>(it->second);
  }
  std::optional<json> service(const std::string& key) override {
    std::lock_guard l(mu);
    auto it = svcs.find(key);
    return it == svcs.end() ? std::nullopt : std::optional<json>(it->second);
  }
  std::vector<json> slices(const std::string& ns, const std::string& service) override {
    std::lock_guard l(mu);
    return select(cache, ns, service);
  }
  std::string slices_version() override { return lag ? "1" : std::to_string(rv); }

  Result<json> create(const std::string& ns, const json& s) override {
    std::lock_guard l(mu);
    ++creates;
    json n = stored(s, "web-" + std::to_string(creates), ++rv);
    n["metadata"]["namespace"] = ns;
    api[n["metadata"]["name"]] = n;
    if (!lag) cache[n["metadata"]["name"]] = n;
    return n;
  }
  Result<json> update(const json& s) override {
    std::lock_guard l(mu);
    ++updates;
    std::string name = s["metadata"]["name"];
    auto it = api.find(name);
    if (it == api.end()) return Status::not_found("endpointslices \"" + name + "\" not found");
    if (conflicts_to_inject > 0 ||
        it->second["metadata"]["resourceVersion"] != s["metadata"]["resourceVersion"]) {
      if (conflicts_to_inject > 0) --conflicts_to_inject;
      return Status::conflict("the object has been modified");
    }
    json n = stored(s, name, ++rv);
    api[name] = n;
    if (!lag) cache[name] = n;
    return n;
  }
  Status remove(const std::string&, const std::string& name) override {
    std::lock_guard l(mu);
    ++deletes;
    if (!api.erase(name)) return Status::not_found("endpointslices \"" + name + "\" not found");
    if (!lag) cache.erase(name);
    return Status::ok();
  }
  Result<std::vector<json>> list(const std::string& ns, const std::string& service) override {
    std::lock_guard l(mu);
    ++lists;
    return select(api, ns, service);
  }

 private:
  static std::vector<json> select(const std::map<std::string, json>& m, const std::string& ns,
                                  const std::string& service) {
    std::vector<json> out;
    for (const auto& [n, s] : m)
      if (s["metadata"]["namespace"] == ns && s["metadata"]["labels"][kServiceName] == service)
        out.push_back(s);
    return out;
  }
};

}  // namespace

TEST_CASE("sync: create, no-op, update, delete with the Endpoints") {
  FakeCluster f;
  EndpointSliceController c;
  c.set_clients(&f, &f, nullptr);
  f.svcs["default/web"] = kSvc;
  f.eps["default/web"] =
      make_ep(json::array({{{"addresses", {addr("10.0.0.1")}}, {"ports", {port("http", 80)}}}}));
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.creates == 1);
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.creates == 1);
  CHECK(f.updates == 0);
  f.eps["default/web"]["subsets"][0]["addresses"].push_back(addr("10.0.0.2"));
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.updates == 1);
  CHECK(addresses(f.api.begin()->second) == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  // skip-mirror: the slices go.
  f.eps["default/web"]["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] = "true";
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.api.empty());
  f.eps["default/web"]["metadata"]["labels"].erase("endpointslice.kubernetes.io/skip-mirror");
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.api.size() == 1);
  // The Endpoints deleted: the slices go; a second sync has nothing to do.
  f.eps.clear();
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.api.empty());
  int deletes = f.deletes;
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.deletes == deletes);
  CHECK(c.sync("no-namespace-key").is_ok());
}

TEST_CASE("sync: a lagging cache causes no duplicate creates nor conflicts") {
  FakeCluster f;
  f.lag = true;
  EndpointSliceController c;
  c.set_clients(&f, &f, nullptr);
  f.eps["default/web"] =
      make_ep(json::array({{{"addresses", many_addresses(150)}, {"ports", {port("http", 80)}}}}));
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.creates == 2);
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.creates == 2);
  CHECK(f.updates == 0);
  f.eps["default/web"]["subsets"][0]["addresses"].push_back(addr("10.9.9.9"));
  REQUIRE(c.sync("default/web").is_ok());
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.updates == 1);
  CHECK(f.lists == 0);
  // The cache catches up: it is the truth again.
  f.lag = false;
  f.cache = f.api;
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.creates == 2);
  CHECK(f.updates == 1);
}

TEST_CASE("sync: conflicts re-read the slices from the API server") {
  FakeCluster f;
  EndpointSliceController c;
  c.set_clients(&f, &f, nullptr);
  f.eps["default/web"] =
      make_ep(json::array({{{"addresses", {addr("10.0.0.1")}}, {"ports", {port("http", 80)}}}}));
  REQUIRE(c.sync("default/web").is_ok());
  f.eps["default/web"]["subsets"][0]["addresses"].push_back(addr("10.0.0.2"));
  f.conflicts_to_inject = 1;
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.lists == 1);
  CHECK(addresses(f.api.begin()->second).size() == 2);
  // Persistent conflicts: an error after 3 attempts (the queue retries with back-off).
  f.eps["default/web"]["subsets"][0]["addresses"].push_back(addr("10.0.0.3"));
  f.conflicts_to_inject = 5;
  Status st = c.sync("default/web");
  CHECK(st.code() == Code::kConflict);
  CHECK(f.lists == 3);
  // Deleted behind our back (cache still shows it): recreated after a re-read.
  f.conflicts_to_inject = 0;
  f.api.clear();
  REQUIRE(c.sync("default/web").is_ok());
  CHECK(f.api.size() == 1);
}

TEST_CASE("handlers enqueue the Service key") {
  EndpointSliceController c;
  json ep = make_ep(nullptr);
  ep["metadata"]["resourceVersion"] = "5";
  c.on_endpoints_update(ep, ep);  // a resync
  CHECK(c.queue().len() == 0);
  c.on_endpoints(ep);
  CHECK(c.queue().len() == 1);
  json slice = {{"metadata",
                 {{"name", "web-x"},
                  {"namespace", "default"},
                  {"labels", {{kServiceName, "web"}, {kManagedBy, "other"}}}}}};
  c.on_slice(slice);
  slice["metadata"]["labels"][kManagedBy] = "endpointslice-controller.k8s.io";
  slice["metadata"]["labels"][kServiceName] = "api";
  c.on_slice(slice);
  CHECK(c.queue().len() == 2);
  c.on_service_update(kSvc, kSvc);
  CHECK(c.queue().len() == 2);
  auto k1 = c.queue().get();
  auto k2 = c.queue().get();
  REQUIRE(k1);
  REQUIRE(k2);
  CHECK(*k1 == "default/web");
  CHECK(*k2 == "default/api");
}
