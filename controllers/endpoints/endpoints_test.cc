#include "controllers/endpoints/endpoints.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "controllers/endpoints/endpoints_util.h"
#include "proto/time.h"

using namespace skiff;
using namespace skiff::controllers;
using namespace skiff::controllers::endpoints;
using json = nlohmann::json;

namespace {

json make_svc(const std::string& name, const json& selector, const json& ports,
              const std::string& cluster_ip = "10.96.0.20") {
  json s = {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata",
             {{"name", name},
              {"namespace", "default"},
              {"uid", "uid-" + name},
              {"creationTimestamp", "2026-12-01T10:00:00Z"},
              {"labels", {{"app", name}}}}},
            {"spec", {{"type", "ClusterIP"}, {"clusterIP", cluster_ip}, {"ports", ports}}}};
  if (!selector.is_null()) s["spec"]["selector"] = selector;
  return s;
}

json port(const std::string& name, int p, const json& target) {
  json j = {{"port", p}, {"protocol", "TCP"}, {"targetPort", target}};
  if (!name.empty()) j["name"] = name;
  return j;
}

json make_pod(const std::string& name, const std::string& ip, bool ready,
              const json& labels = {{"app", "web"}}, const std::string& ready_at = "") {
  json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata",
             {{"name", name},
              {"namespace", "default"},
              {"uid", "uid-" + name},
              {"resourceVersion", "1"},
              {"labels", labels}}},
            {"spec",
             {{"nodeName", "node1"},
              {"containers",
               {{{"name", "c"},
                 {"image", "busybox"},
                 {"ports", {{{"name", "http"}, {"containerPort", 8080}, {"protocol", "TCP"}}}}}}}}},
            {"status",
             {{"phase", "Running"},
              {"podIP", ip},
              {"conditions",
               {{{"type", "Ready"},
                 {"status", ready ? "True" : "False"},
                 {"lastTransitionTime", ready_at.empty() ? "2026-12-01T10:00:05Z" : ready_at}}}}}}};
  if (ip.empty()) p["status"].erase("podIP");
  return p;
}

json addr(const std::string& pod, const std::string& ip) {
  return {{"ip", ip},
          {"nodeName", "node1"},
          {"targetRef",
           {{"kind", "Pod"}, {"namespace", "default"}, {"name", pod}, {"uid", "uid-" + pod}}}};
}

// The informer caches and the API server in one: writes land in both unless `lag` is set (a
// cache that has not seen our writes yet).
class FakeCluster : public Listers, public EndpointsClient {
 public:
  std::mutex mu;
  std::map<std::string, json> services_, pods_, eps_api, eps_cache;
  int creates = 0, updates = 0, deletes = 0, gets = 0, conflicts_to_inject = 0, rv = 100;
  bool lag = false;

  void add_svc(const json& s) {
    services_["default/" + s["metadata"]["name"].get<std::string>()] = s;
  }
  void add_pod(const json& p) { pods_["default/" + p["metadata"]["name"].get<std::string>()] = p; }
  void put_ep(const json& e) {
    std::string k = "default/" + e["metadata"]["name"].get<std::string>();
    eps_api[k] = eps_cache[k] = e;
  }
  json ep(const std::string& name) { return eps_api.at("default/" + name); }
  bool has_ep(const std::string& name) { return eps_api.count("default/" + name) > 0; }

  std::optional<json> service(const std::string& key) override {
    std::lock_guard l(mu);
    auto it = services_.find(key);
    if (it == services_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> services(const std::string&) override {
    std::lock_guard l(mu);
    std::vector<json> out;
    for (auto& [k, v] : services_) out.push_back(v);
    return out;
  }
  std::vector<json> pods(const std::string&) override {
    std::lock_guard l(mu);
    std::vector<json> out;
    for (auto& [k, v] : pods_) out.push_back(v);
    return out;
  }
  std::optional<json> endpoints(const std::string& key) override {
    std::lock_guard l(mu);
    auto it = eps_cache.find(key);
    if (it == eps_cache.end()) return std::nullopt;
    return it->second;
  }
  std::vector<json> all_endpoints() override {
    std::lock_guard l(mu);
    std::vector<json> out;
    for (auto& [k, v] : eps_cache) out.push_back(v);
    return out;
  }

  Result<json> create(const std::string& ns, const json& e) override {
    std::lock_guard l(mu);
    ++creates;
    std::string k = ns + "/" + e["metadata"]["name"].get<std::string>();
    if (eps_api.count(k)) return Status::already_exists("endpoints exists");
    json stored = e;
    stored["metadata"]["resourceVersion"] = std::to_string(++rv);
    eps_api[k] = stored;
    if (!lag) eps_cache[k] = stored;
    return stored;
  }
  Result<json> update(const json& e) override {
    std::lock_guard l(mu);
    ++updates;
    std::string k = "default/" + e["metadata"]["name"].get<std::string>();
    if (!eps_api.count(k)) return Status::not_found("endpoints not found");
    if (conflicts_to_inject > 0) {
      --conflicts_to_inject;
      eps_api[k]["metadata"]["resourceVersion"] = std::to_string(++rv);
      return Status::conflict("the object has been modified");
    }
    if (eps_api[k]["metadata"]["resourceVersion"] != e["metadata"]["resourceVersion"])
      return Status::conflict("the object has been modified");
    json stored = e;
    stored["metadata"]["resourceVersion"] = std::to_string(++rv);
    eps_api[k] = stored;
    if (!lag) eps_cache[k] = stored;
    return stored;
  }
  Status remove(const std::string& ns, const std::string& name) override {
    std::lock_guard l(mu);
    ++deletes;
    std::string k = ns + "/" + name;
    if (!eps_api.erase(k)) return Status::not_found("endpoints not found");
    eps_cache.erase(k);
    return Status::ok();
  }
  Result<json> get(const std::string& ns, const std::string& name) override {
    std::lock_guard l(mu);
    ++gets;
    auto it = eps_api.find(ns + "/" + name);
    if (it == eps_api.end()) return Status::not_found("endpoints not found");
    return it->second;
  }
};

class RecordingEvents : public EventSink {
 public:
  std::vector<std::string> reasons;
  void event(const json&, const std::string&, bool, const std::string& reason,
             const std::string&) override {
    reasons.push_back(reason);
  }
};

struct Fixture {
  FakeCluster c;
  RecordingEvents ev;
  EndpointsController ctl;
  Fixture() { ctl.set_clients(&c, &c, &ev); }
  // Keys waiting in the queue, drained.
  std::set<std::string> drain() {
    std::set<std::string> keys;
    while (auto k = ctl.queue().get_for(std::chrono::milliseconds(0))) {
      keys.insert(*k);
      ctl.queue().done(*k);
    }
    return keys;
  }
};

}  // namespace

TEST_CASE("endpoints: ready pods are addresses, others notReadyAddresses", "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 8080)})));
  f.c.add_pod(make_pod("a", "10.244.1.3", true));
  f.c.add_pod(make_pod("b", "10.244.1.2", false));
  f.c.add_pod(make_pod("c", "10.244.1.10", true));
  f.c.add_pod(make_pod("other", "10.244.1.9", true, {{"app", "db"}}));
  f.c.add_pod(make_pod("noip", "", true));
  REQUIRE(f.ctl.sync("default/web"));
  json ep = f.c.ep("web");
  json want = json::array({{{"addresses", {addr("c", "10.244.1.10"), addr("a", "10.244.1.3")}},
                            {"notReadyAddresses", {addr("b", "10.244.1.2")}},
                            {"ports", {{{"port", 8080}, {"protocol", "TCP"}}}}}});
  CHECK(ep["subsets"] == want);
  // A created Endpoints carries its type and the Service's name and namespace.
  CHECK(ep["apiVersion"] == "v1");
  CHECK(ep["kind"] == "Endpoints");
  CHECK(ep["metadata"]["name"] == "web");
  CHECK(ep["metadata"]["namespace"] == "default");
  CHECK(ep["metadata"]["labels"] == json{{"app", "web"}});
  CHECK(ep["metadata"]["annotations"][kTriggerTimeAnnotation] ==
        "2026-12-01T10:00:00Z");  // first sight: the Service's creation
  CHECK(f.c.creates == 1);

  SECTION("a second sync with nothing changed writes nothing") {
    REQUIRE(f.ctl.sync("default/web"));
    CHECK(f.c.creates == 1);
    CHECK(f.c.updates == 0);
  }
  SECTION("a readiness flip moves the address and stamps its time") {
    json b = make_pod("b", "10.244.1.2", true, {{"app", "web"}}, "2026-12-01T10:01:00Z");
    b["metadata"]["resourceVersion"] = "2";
    json old = make_pod("b", "10.244.1.2", false);
    f.c.add_pod(b);
    f.ctl.on_pod_update(old, b);
    CHECK(f.drain() == std::set<std::string>{"default/web"});
    REQUIRE(f.ctl.sync("default/web"));
    json ep2 = f.c.ep("web");
    CHECK(ep2["subsets"][0]["addresses"].size() == 3);
    CHECK_FALSE(ep2["subsets"][0].contains("notReadyAddresses"));
    CHECK(ep2["metadata"]["annotations"][kTriggerTimeAnnotation] == "2026-12-01T10:01:00Z");
    CHECK(f.c.updates == 1);
  }
  SECTION("publishNotReadyAddresses publishes every pod as an address") {
    json svc = make_svc("web", {{"app", "web"}}, json::array({port("", 80, 8080)}));
    svc["spec"]["publishNotReadyAddresses"] = true;
    f.c.add_svc(svc);
    REQUIRE(f.ctl.sync("default/web"));
    CHECK(f.c.ep("web")["subsets"][0]["addresses"].size() == 3);
  }
}

TEST_CASE("endpoints: terminating and finished pods are left out", "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)})));
  json dying = make_pod("dying", "10.244.1.5", true);
  dying["metadata"]["deletionTimestamp"] = "2026-12-01T10:02:00Z";
  json done = make_pod("done", "10.244.1.6", false);
  done["status"]["phase"] = "Succeeded";
  f.c.add_pod(dying);
  f.c.add_pod(done);
  f.c.add_pod(make_pod("a", "10.244.1.7", true));
  REQUIRE(f.ctl.sync("default/web"));
  CHECK(f.c.ep("web")["subsets"] ==
        json::array({{{"addresses", {addr("a", "10.244.1.7")}},
                      {"ports", {{{"port", 80}, {"protocol", "TCP"}}}}}}));
  SECTION("publishNotReadyAddresses keeps the terminating one") {
    json svc = make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)}));
    svc["spec"]["publishNotReadyAddresses"] = true;
    f.c.add_svc(svc);
    REQUIRE(f.ctl.sync("default/web"));
    CHECK(f.c.ep("web")["subsets"][0]["addresses"].size() == 2);
  }
}

TEST_CASE("endpoints: named targetPort resolved per pod; pods lacking it left out of that port",
          "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}},
                       json::array({port("http", 80, "http"), port("metrics", 9090, 9090)})));
  f.c.add_pod(make_pod("a", "10.244.1.2", true));
  json b = make_pod("b", "10.244.1.3", true);
  b["spec"]["containers"][0]["ports"] = json::array();  // no "http" port
  f.c.add_pod(b);
  json c = make_pod("c", "10.244.1.4", true);
  c["spec"]["containers"][0]["ports"][0]["containerPort"] = 8081;  // "http" on another number
  f.c.add_pod(c);
  REQUIRE(f.ctl.sync("default/web"));
  // Repacked as Kubernetes does: each port with the set of addresses offering it, ports with
  // the same set share a subset.
  json want = json::array(
      {{{"addresses", {addr("a", "10.244.1.2"), addr("b", "10.244.1.3"), addr("c", "10.244.1.4")}},
        {"ports", {{{"name", "metrics"}, {"port", 9090}, {"protocol", "TCP"}}}}},
       {{"addresses", {addr("a", "10.244.1.2")}},
        {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}}},
       {{"addresses", {addr("c", "10.244.1.4")}},
        {"ports", {{{"name", "http"}, {"port", 8081}, {"protocol", "TCP"}}}}}});
  CHECK(f.c.ep("web")["subsets"] == want);
}

TEST_CASE("endpoints: find_port", "[endpoints]") {
  json pod = make_pod("a", "10.244.1.2", true);
  CHECK(find_port(pod, port("", 80, 8080)) == 8080);
  CHECK(find_port(pod, port("", 80, "http")) == 8080);
  CHECK(find_port(pod, {{"port", 81}}) == 81);
  CHECK_FALSE(find_port(pod, port("", 80, "grpc")));
  json udp = port("", 80, "http");
  udp["protocol"] = "UDP";
  CHECK_FALSE(find_port(pod, udp));  // the name must match with the protocol
  json sidecar = pod;
  sidecar["spec"]["initContainers"] = {{{"name", "s"},
                                        {"restartPolicy", "Always"},
                                        {"ports", {{{"name", "grpc"}, {"containerPort", 9000}}}}}};
  CHECK(find_port(sidecar, port("", 80, "grpc")) == 9000);
}

TEST_CASE("endpoints: scale down removes the address; none left keeps empty Endpoints",
          "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)})));
  f.c.add_pod(make_pod("a", "10.244.1.2", true));
  f.c.add_pod(make_pod("b", "10.244.1.3", true));
  REQUIRE(f.ctl.sync("default/web"));
  CHECK(f.c.ep("web")["subsets"][0]["addresses"].size() == 2);
  json b = f.c.pods_.at("default/b");
  f.c.pods_.erase("default/b");
  f.ctl.on_pod_delete(b);
  CHECK(f.drain() == std::set<std::string>{"default/web"});
  REQUIRE(f.ctl.sync("default/web"));
  CHECK(f.c.ep("web")["subsets"][0]["addresses"] == json::array({addr("a", "10.244.1.2")}));
  f.c.pods_.clear();
  REQUIRE(f.ctl.sync("default/web"));
  CHECK(f.c.has_ep("web"));
  CHECK_FALSE(f.c.ep("web").contains("subsets"));
  // No pod changed, no trigger time: the annotation goes (as Kubernetes).
  CHECK_FALSE(f.c.ep("web")["metadata"].contains("annotations"));
}

TEST_CASE("endpoints: selector-less and ExternalName Services are left alone", "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("manual", nullptr, json::array({port("", 80, 80)})));
  json ext = make_svc("ext", {{"app", "web"}}, json::array());
  ext["spec"]["type"] = "ExternalName";
  ext["spec"]["externalName"] = "example.com";
  f.c.add_svc(ext);
  json user = {
      {"apiVersion", "v1"},
      {"kind", "Endpoints"},
      {"metadata", {{"name", "manual"}, {"namespace", "default"}, {"resourceVersion", "5"}}},
      {"subsets", {{{"addresses", {{{"ip", "192.0.2.1"}}}}, {"ports", {{{"port", 80}}}}}}}};
  f.c.put_ep(user);
  f.c.add_pod(make_pod("a", "10.244.1.2", true));
  REQUIRE(f.ctl.sync("default/manual"));
  REQUIRE(f.ctl.sync("default/ext"));
  CHECK(f.c.ep("manual") == user);
  CHECK_FALSE(f.c.has_ep("ext"));
  CHECK(f.c.creates + f.c.updates + f.c.deletes == 0);
}

TEST_CASE("endpoints: Service deleted => Endpoints deleted; leftovers at start", "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)})));
  f.c.add_pod(make_pod("a", "10.244.1.2", true));
  REQUIRE(f.ctl.sync("default/web"));
  REQUIRE(f.c.has_ep("web"));
  json svc = f.c.services_.at("default/web");
  f.c.services_.clear();
  f.ctl.on_service_delete(svc);
  CHECK(f.drain() == std::set<std::string>{"default/web"});
  REQUIRE(f.ctl.sync("default/web"));
  CHECK_FALSE(f.c.has_ep("web"));
  REQUIRE(f.ctl.sync("default/web"));  // already gone: fine

  json orphan = {{"apiVersion", "v1"},
                 {"kind", "Endpoints"},
                 {"metadata", {{"name", "orphan"}, {"namespace", "default"}}}};
  json lock = orphan;
  lock["metadata"]["name"] = "lock";
  lock["metadata"]["annotations"] = {{kLeaderAnnotation, "{}"}};
  f.c.put_ep(orphan);
  f.c.put_ep(lock);
  f.ctl.enqueue_leftovers();
  CHECK(f.drain() == std::set<std::string>{"default/orphan"});
}

TEST_CASE("endpoints: hostname only when the subdomain is the Service", "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("db", {{"app", "web"}}, json::array(), "None"));
  json a = make_pod("a", "10.244.1.2", true);
  a["spec"]["hostname"] = "db-0";
  a["spec"]["subdomain"] = "db";
  json b = make_pod("b", "10.244.1.3", true);
  b["spec"]["hostname"] = "other";
  b["spec"]["subdomain"] = "elsewhere";
  f.c.add_pod(a);
  f.c.add_pod(b);
  REQUIRE(f.ctl.sync("default/db"));
  json ep = f.c.ep("db");
  json want_a = addr("a", "10.244.1.2");
  want_a["hostname"] = "db-0";
  // Headless without ports: bare addresses, and the headless label.
  CHECK(ep["subsets"] == json::array({{{"addresses", {want_a, addr("b", "10.244.1.3")}}}}));
  CHECK(ep["metadata"]["labels"] == json{{"app", "db"}, {kHeadlessLabel, ""}});

  SECTION("a hostname change re-queues the Service") {
    json a2 = a;
    a2["spec"]["hostname"] = "db-1";
    a2["metadata"]["resourceVersion"] = "2";
    f.ctl.on_pod_update(a, a2);
    CHECK(f.drain() == std::set<std::string>{"default/db"});
  }
}

TEST_CASE("endpoints: pod handlers enqueue the Services of the old and new labels", "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)})));
  f.c.add_svc(make_svc("db", {{"app", "db"}}, json::array({port("", 80, 80)})));
  f.c.add_svc(make_svc("all", {{"tier", "x"}}, json::array({port("", 80, 80)})));
  json p = make_pod("a", "10.244.1.2", true, {{"app", "web"}, {"tier", "x"}});
  f.ctl.on_pod_add(p);
  CHECK(f.drain() == std::set<std::string>{"default/web", "default/all"});

  json relabeled = p;
  relabeled["metadata"]["labels"]["app"] = "db";
  relabeled["metadata"]["resourceVersion"] = "2";
  f.ctl.on_pod_update(p, relabeled);
  // Only membership changed: the Services it left and joined.
  CHECK(f.drain() == std::set<std::string>{"default/web", "default/db"});

  json same_rv = p;
  same_rv["status"]["conditions"][0]["status"] = "False";
  f.ctl.on_pod_update(p, same_rv);  // a resync: same resourceVersion
  CHECK(f.drain().empty());

  json annotated = p;
  annotated["metadata"]["resourceVersion"] = "3";
  annotated["metadata"]["annotations"] = {{"x", "y"}};
  f.ctl.on_pod_update(p, annotated);  // nothing Endpoints care about
  CHECK(f.drain().empty());

  json unready = p;
  unready["metadata"]["resourceVersion"] = "4";
  unready["status"]["conditions"][0]["status"] = "False";
  f.ctl.on_pod_update(p, unready);
  CHECK(f.drain() == std::set<std::string>{"default/web", "default/all"});
}

TEST_CASE("endpoints: conflicts are retried on a fresh read; a lagging cache causes none",
          "[endpoints]") {
  Fixture f;
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)})));
  f.c.add_pod(make_pod("a", "10.244.1.2", true));
  REQUIRE(f.ctl.sync("default/web"));

  SECTION("conflict") {
    f.c.add_pod(make_pod("b", "10.244.1.3", true));
    f.c.conflicts_to_inject = 1;
    REQUIRE(f.ctl.sync("default/web"));
    CHECK(f.c.gets == 1);
    CHECK(f.c.ep("web")["subsets"][0]["addresses"].size() == 2);
  }
  SECTION("persistent conflicts end in an error and an event") {
    f.c.add_pod(make_pod("b", "10.244.1.3", true));
    f.c.conflicts_to_inject = 10;
    auto st = f.ctl.sync("default/web");
    CHECK(st.code() == Code::kConflict);
    CHECK(f.ev.reasons == std::vector<std::string>{"FailedToUpdateEndpoint"});
  }
  SECTION("lagging cache") {
    f.c.lag = true;
    f.c.add_pod(make_pod("b", "10.244.1.3", true));
    REQUIRE(f.ctl.sync("default/web"));
    f.c.add_pod(make_pod("c", "10.244.1.4", true));
    REQUIRE(f.ctl.sync("default/web"));  // the cache still shows the first version
    CHECK(f.c.gets == 0);
    CHECK(f.c.ep("web")["subsets"][0]["addresses"].size() == 3);
    REQUIRE(f.ctl.sync("default/web"));
    CHECK(f.c.updates == 2);
  }
  SECTION("Endpoints created by someone else meanwhile") {
    f.c.add_svc(make_svc("new", {{"app", "web"}}, json::array({port("", 80, 80)})));
    f.c.lag = true;
    json theirs = {
        {"apiVersion", "v1"},
        {"kind", "Endpoints"},
        {"metadata", {{"name", "new"}, {"namespace", "default"}, {"resourceVersion", "7"}}}};
    f.c.eps_api["default/new"] = theirs;  // not in the cache yet
    REQUIRE(f.ctl.sync("default/new"));
    CHECK(f.c.ep("new")["subsets"][0]["addresses"].size() == 1);
  }
}

TEST_CASE("endpoints: repack groups addresses by identical port sets", "[endpoints]") {
  json in = json::array(
      {{{"addresses", {{{"ip", "10.0.0.2"}}}}, {"ports", {{{"name", "a"}, {"port", 1}}}}},
       {{"addresses", {{{"ip", "10.0.0.1"}}}}, {"ports", {{{"name", "a"}, {"port", 1}}}}},
       {{"notReadyAddresses", {{{"ip", "10.0.0.1"}}}}, {"ports", {{{"name", "b"}, {"port", 2}}}}},
       {{"addresses", {{{"ip", "10.0.0.2"}}}}, {"ports", {{{"name", "b"}, {"port", 2}}}}}});
  json out = repack_subsets(in);
  CHECK(out == json::array({{{"addresses", {{{"ip", "10.0.0.1"}}, {{"ip", "10.0.0.2"}}}},
                             {"ports", {{{"name", "a"}, {"port", 1}, {"protocol", "TCP"}}}}},
                            {{"addresses", {{{"ip", "10.0.0.2"}}}},
                             {"notReadyAddresses", {{{"ip", "10.0.0.1"}}}},
                             {"ports", {{{"name", "b"}, {"port", 2}, {"protocol", "TCP"}}}}}}));
  CHECK(repack_subsets(out) == out);  // canonical
}

TEST_CASE("endpoints: truncation at capacity", "[endpoints]") {
  Fixture f;
  EndpointsController small({.max_capacity = 3});
  small.set_clients(&f.c, &f.c, &f.ev);
  f.c.add_svc(make_svc("web", {{"app", "web"}}, json::array({port("", 80, 80)})));
  for (int i = 0; i < 5; ++i)
    f.c.add_pod(make_pod("p" + std::to_string(i), "10.244.1." + std::to_string(10 + i), i < 4));
  REQUIRE(small.sync("default/web"));
  json ep = f.c.ep("web");
  CHECK(ep["subsets"][0]["addresses"].size() == 3);
  CHECK_FALSE(ep["subsets"][0].contains("notReadyAddresses"));
  CHECK(ep["metadata"]["annotations"][kOverCapacityAnnotation] == "truncated");
  REQUIRE(small.sync("default/web"));
  CHECK(f.c.updates == 0);  // stable once truncated
}

TEST_CASE("endpoints: trigger time is the earliest change since the last sync", "[endpoints]") {
  TriggerTimeTracker t;
  json svc = make_svc("web", {{"app", "web"}}, json::array());
  std::vector<json> pods = {make_pod("a", "10.0.0.1", true, {}, "2026-12-01T10:00:05Z")};
  auto c = t.compute("default/web", svc, pods);
  REQUIRE(c.time);
  CHECK(*c.time == *proto::parse_rfc3339("2026-12-01T10:00:00Z"));
  t.commit("default/web", c.next);
  CHECK_FALSE(t.compute("default/web", svc, pods).time);  // nothing changed
  pods.push_back(make_pod("b", "10.0.0.2", true, {}, "2026-12-01T10:00:09Z"));
  pods[0] = make_pod("a", "10.0.0.1", false, {}, "2026-12-01T10:00:08Z");
  c = t.compute("default/web", svc, pods);
  REQUIRE(c.time);
  CHECK(*c.time == *proto::parse_rfc3339("2026-12-01T10:00:08Z"));
  // Not committed (the write failed): the next computation still sees the change.
  CHECK(t.compute("default/web", svc, pods).time == c.time);
}
