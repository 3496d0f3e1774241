// pods/eviction through Api::handle over the memory store: no budget, a budget that allows one
// disruption (then 429 with Kubernetes' cause), a budget not yet observed, terminal and pending
// pods, unready pods, two budgets (500), dry run, the DisruptionTarget condition and the
// preconditions, malformed requests, protobuf bodies and the discovery entry kubectl drain
// looks for.
#include <catch2/catch.hpp>

#include "apiserver/api.h"
#include "apiserver/store/store.h"
#include "proto/codec.h"

namespace skiff::apiserver {
namespace {

using proto::json;

struct Fixture {
  std::unique_ptr<store::Store> store = store::make_memory_store();
  std::unique_ptr<Api> api;

  Fixture() {
    ApiOptions o;
    o.store = store.get();
    std::string err;
    api = Api::create(o, &err);
    INFO(err);
    REQUIRE(api);
  }
  ~Fixture() { api->shutdown(); }

  Response call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& content_type = "application/json",
                std::map<std::string, std::string> query = {}) {
    Request r;
    r.method = method;
    r.raw_target = path;
    r.path = path;
    for (auto& [k, v] : query) r.query.emplace(k, v);
    if (!body.empty()) r.headers["content-type"] = content_type;
    r.body = body;
    r.user = "admin";
    return api->handle(r);
  }
  json ok(const std::string& method, const std::string& path, const std::string& body = "") {
    Response r = call(method, path, body);
    INFO(method << " " << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status / 100 == 2);
    return json::parse(r.body);
  }

  // A pod with labels, in phase `phase`, Ready or not (written through /status as a kubelet
  // would).
  void pod(const std::string& name, const std::string& labels, const std::string& phase = "Running",
           bool ready = true) {
    ok("POST", "/api/v1/namespaces/default/pods",
       R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name + R"(","labels":)" +
           labels + R"(},"spec":{"containers":[{"name":"c","image":"nginx"}]}})");
    json p = ok("GET", "/api/v1/namespaces/default/pods/" + name);
    p["status"] = {{"phase", phase},
                   {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}};
    ok("PUT", "/api/v1/namespaces/default/pods/" + name + "/status", p.dump());
  }
  bool pod_exists(const std::string& name) {
    return call("GET", "/api/v1/namespaces/default/pods/" + name).status == 200;
  }
  // A budget and the status the disruption controller would have written.
  void pdb(const std::string& name, const std::string& selector, int allowed, int current,
           int desired, bool observed = true) {
    ok("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
       R"({"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":")" + name +
           R"("},"spec":{"minAvailable":)" + std::to_string(desired) + R"(,"selector":)" +
           selector + "}}");
    json b = ok("GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/" + name);
    b["status"] = {{"observedGeneration", observed ? 1 : 0},
                   {"disruptionsAllowed", allowed},
                   {"currentHealthy", current},
                   {"desiredHealthy", desired},
                   {"expectedPods", current}};
    ok("PUT", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/" + name + "/status",
       b.dump());
  }
  json get_pdb(const std::string& name) {
    return ok("GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/" + name);
  }
  Response evict(const std::string& name, const std::string& delete_options = "",
                 std::map<std::string, std::string> query = {}) {
    std::string body = R"({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":")" +
                       name + R"(","namespace":"default"})" +
                       (delete_options.empty() ? "" : ",\"deleteOptions\":" + delete_options) + "}";
    return call("POST", "/api/v1/namespaces/default/pods/" + name + "/eviction", body,
                "application/json", std::move(query));
  }
};

const char* kApp = R"({"app":"a"})";
const char* kSel = R"({"matchLabels":{"app":"a"}})";

TEST_CASE("eviction: no budget deletes the pod, 201 Success") {
  Fixture f;
  f.pod("p1", kApp);
  Response r = f.evict("p1");
  INFO(r.body);
  CHECK(r.status == 201);
  json s = json::parse(r.body);
  CHECK(s["kind"] == "Status");
  CHECK(s["status"] == "Success");
  CHECK(!f.pod_exists("p1"));
  // A missing pod is a 404 naming it.
  r = f.evict("p1");
  CHECK(r.status == 404);
  CHECK(json::parse(r.body)["message"] == "pods \"p1\" not found");
}

TEST_CASE("eviction: a budget allowing one disruption, then 429 with the cause") {
  Fixture f;
  for (const char* n : {"p1", "p2", "p3"}) f.pod(n, kApp);
  f.pod("other", R"({"app":"b"})");
  f.pdb("budget", kSel, 1, 3, 2);

  Response r = f.evict("p1");
  INFO(r.body);
  REQUIRE(r.status == 201);
  CHECK(!f.pod_exists("p1"));
  json b = f.get_pdb("budget");
  CHECK(b["status"]["disruptionsAllowed"] == 0);
  CHECK(b["status"]["disruptedPods"].contains("p1"));
  REQUIRE(b["status"]["conditions"].size() == 1);
  CHECK(b["status"]["conditions"][0]["type"] == "DisruptionAllowed");
  CHECK(b["status"]["conditions"][0]["status"] == "False");
  CHECK(b["status"]["conditions"][0]["reason"] == "InsufficientPods");

  r = f.evict("p2");
  INFO(r.body);
  CHECK(r.status == 429);
  json s = json::parse(r.body);
  CHECK(s["reason"] == "TooManyRequests");
  CHECK(s["message"] == "Cannot evict pod as it would violate the pod's disruption budget.");
  CHECK(s["details"]["causes"] ==
        json::parse(R"([{"reason":"DisruptionBudget","message":"The disruption budget budget )"
                    R"(needs 2 healthy pods and has 3 currently"}])"));
  CHECK(f.pod_exists("p2"));
  // A pod the budget does not select goes.
  CHECK(f.evict("other").status == 201);
}

TEST_CASE("eviction: a budget the controller has not observed yet is 429") {
  Fixture f;
  f.pod("p1", kApp);
  f.pdb("budget", kSel, 5, 3, 1, /*observed=*/false);
  Response r = f.evict("p1");
  CHECK(r.status == 429);
  CHECK(json::parse(r.body)["details"]["causes"][0]["message"] ==
        "The disruption budget budget is still being processed by the server.");
  CHECK(f.pod_exists("p1"));
  // A budget just created (no status at all) is the same 429.
  f.ok("DELETE", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/budget");
  f.ok("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
       R"({"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"fresh"},
           "spec":{"maxUnavailable":1,"selector":{"matchLabels":{"app":"a"}}}})");
  r = f.evict("p1");
  CHECK(r.status == 429);
  CHECK(f.pod_exists("p1"));
}

TEST_CASE("eviction: terminal and pending pods go without consulting the budget") {
  Fixture f;
  f.pod("done", kApp, "Failed", false);
  f.pod("ok", kApp, "Succeeded", false);
  f.pod("wait", kApp, "Pending", false);
  f.pdb("budget", kSel, 0, 0, 3);
  for (const char* n : {"done", "ok", "wait"}) {
    Response r = f.evict(n);
    INFO(n << ": " << r.body);
    CHECK(r.status == 201);
    CHECK(!f.pod_exists(n));
  }
  CHECK(f.get_pdb("budget")["status"]["disruptionsAllowed"] == 0);
}

TEST_CASE("eviction: an unready pod goes while the application is healthy") {
  Fixture f;
  f.pod("sick", kApp, "Running", false);
  f.pod("sick2", kApp, "Running", false);
  f.pdb("budget", kSel, 0, 2, 2);  // healthy enough: current >= desired > 0
  CHECK(f.evict("sick").status == 201);
  CHECK(f.get_pdb("budget")["status"]["disruptionsAllowed"] == 0);  // not decremented
  // Not healthy enough: the unready pod is protected like the others.
  f.pdb("b2", R"({"matchLabels":{"app":"c"}})", 0, 1, 2);
  f.pod("sick3", R"({"app":"c"})", "Running", false);
  CHECK(f.evict("sick3").status == 429);
  // ... unless the budget says AlwaysAllow.
  json b = f.get_pdb("b2");
  b["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow";
  f.ok("PUT", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/b2", b.dump());
  json st = f.get_pdb("b2");
  st["status"]["observedGeneration"] = st["metadata"]["generation"];
  f.ok("PUT", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/b2/status", st.dump());
  CHECK(f.evict("sick3").status == 201);
}

TEST_CASE("eviction: two budgets selecting the pod are a 500") {
  Fixture f;
  f.pod("p1", kApp);
  f.pdb("b1", kSel, 1, 1, 0);
  f.pdb("b2", R"({"matchExpressions":[{"key":"app","operator":"Exists"}]})", 1, 1, 0);
  // An empty selector selects nothing for the eviction subresource.
  f.pdb("b3", "{}", 0, 0, 1);
  Response r = f.evict("p1");
  INFO(r.body);
  CHECK(r.status == 500);
  json s = json::parse(r.body);
  CHECK(s["status"] == "Failure");
  CHECK(s["message"] ==
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
        "not support.");
  CHECK(f.pod_exists("p1"));
}

TEST_CASE("eviction: dry run changes nothing; deleteOptions are honoured") {
  Fixture f;
  f.pod("p1", kApp);
  f.pod("p2", kApp);
  f.pdb("budget", kSel, 1, 2, 1);
  const json before = f.get_pdb("budget");
  CHECK(f.evict("p1", R"({"dryRun":["All"]})").status == 201);
  CHECK(f.evict("p1", "", {{"dryRun", "All"}}).status == 201);
  CHECK(f.pod_exists("p1"));
  CHECK(f.get_pdb("budget") == before);
  // A failed precondition is the delete's 409; the budget's disruption is spent meanwhile,
  // as in Kubernetes (the controller gives it back after the disruptedPods timeout).
  Response r = f.evict("p1", R"({"preconditions":{"uid":"not-it"}})");
  CHECK(r.status == 409);
  CHECK(f.pod_exists("p1"));
  // Bad deleteOptions.
  CHECK(f.evict("p2", R"({"propagationPolicy":"Sideways"})").status == 400);
}

TEST_CASE("eviction: the pod gets the DisruptionTarget condition, then a graceful delete") {
  Fixture f;
  f.ok("POST", "/api/v1/namespaces/default/pods",
       R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"bound"},"spec":{"nodeName":"n1",
           "containers":[{"name":"c","image":"nginx"}]}})");
  json p = f.ok("GET", "/api/v1/namespaces/default/pods/bound");
  p["status"] = {{"phase", "Running"}, {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}};
  p = f.ok("PUT", "/api/v1/namespaces/default/pods/bound/status", p.dump());
  // The client's resourceVersion precondition holds (it names the version before the
  // condition was added); the grace period of the deleteOptions is used.
  Response r = f.evict("bound", R"({"gracePeriodSeconds":30,"preconditions":{"resourceVersion":")" +
                                    p["metadata"]["resourceVersion"].get<std::string>() + R"("}})");
  INFO(r.body);
  REQUIRE(r.status == 201);
  json got = f.ok("GET", "/api/v1/namespaces/default/pods/bound");
  CHECK(got["metadata"]["deletionGracePeriodSeconds"] == 30);
  json target;
  for (const auto& c : got["status"]["conditions"])
    if (c["type"] == "DisruptionTarget") target = c;
  CHECK(target["status"] == "True");
  CHECK(target["reason"] == "EvictionByEvictionAPI");
  CHECK(target["message"] == "Eviction API: evicting");
  // A stale resourceVersion is a conflict and changes nothing.
  f.pod("p2", kApp);
  r = f.evict("p2", R"({"preconditions":{"resourceVersion":"1"}})");
  CHECK(r.status == 409);
  json p2 = f.ok("GET", "/api/v1/namespaces/default/pods/p2");
  CHECK(p2["status"]["conditions"].size() == 1);
  // A dry run adds nothing.
  CHECK(f.evict("p2", R"({"dryRun":["All"]})").status == 201);
  CHECK(f.ok("GET", "/api/v1/namespaces/default/pods/p2")["status"]["conditions"].size() == 1);
}

TEST_CASE("eviction: malformed requests and protobuf bodies") {
  Fixture f;
  f.pod("p1", kApp);
  f.pod("p2", kApp);
  const std::string url = "/api/v1/namespaces/default/pods/p1/eviction";
  Response r = f.call("POST", url, R"({"apiVersion":"policy/v1","kind":"Eviction",
      "metadata":{"name":"p2"}})");
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["message"] == "name in URL does not match name in Eviction object");
  r = f.call("POST", url, R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1"}})");
  CHECK(r.status == 400);
  r = f.call("POST", url, "[1]");
  CHECK(r.status == 400);
  CHECK(f.call("GET", url).status == 405);
  // Odd shapes are 4xx, never a crash or a 5xx.
  for (const char* body :
       {"", "{", "null", R"({"metadata":5})", R"({"metadata":{"name":5}})",
        R"({"metadata":{"name":"p1"},"deleteOptions":"x"})",
        R"({"metadata":{"name":"p1"},"deleteOptions":{"dryRun":"All"}})",
        R"({"metadata":{"name":"p1"},"deleteOptions":{"dryRun":["Some"]}})",
        R"({"metadata":{"name":"p1"},"deleteOptions":{"gracePeriodSeconds":"0"}})",
        R"({"metadata":{"name":"p1"},"deleteOptions":{"preconditions":{"uid":1}}})",
        R"({"metadata":{"name":"p1","namespace":"other"}})"}) {
    Response odd = f.call("POST", url, body);
    INFO(body << " -> " << odd.status << " " << odd.body);
    CHECK(odd.status >= 400);
    CHECK(odd.status < 500);
  }
  for (const std::string& pb : {std::string("k8s\0", 4) + "garbage", std::string("xyz")}) {
    Response odd = f.call("POST", url, pb, "application/vnd.kubernetes.protobuf");
    CHECK(odd.status >= 400);
    CHECK(odd.status < 500);
  }
  CHECK(f.pod_exists("p1"));
  CHECK(f.call("POST", "/api/v1/namespaces/default/configmaps/x/eviction", "{}").status == 404);
  CHECK(f.pod_exists("p1"));

  // kubectl drain's body: protobuf, policy/v1 Eviction {metadata{name, namespace},
  // deleteOptions{gracePeriodSeconds: 0}} (1.20 sends policy/v1beta1 in the envelope).
  auto ld = [](int field, const std::string& b) {
    std::string s(1, char(field << 3 | 2));
    s += char(b.size());
    return s + b;
  };
  std::string raw = ld(1, ld(1, "p1") + ld(3, "default")) + ld(2, std::string{0x08, 0x00});
  std::string body =
      std::string("k8s\0", 4) + ld(1, ld(1, "policy/v1beta1") + ld(2, "Eviction")) + ld(2, raw);
  r = f.call("POST", url, body, "application/vnd.kubernetes.protobuf");
  INFO(r.body);
  CHECK(r.status == 201);
  CHECK(!f.pod_exists("p1"));
}

TEST_CASE("eviction: discovery lists pods/eviction as Kubernetes does") {
  Fixture f;
  json v1 = f.ok("GET", "/api/v1");
  json found;
  for (const auto& e : v1["resources"])
    if (e["name"] == "pods/eviction") found = e;
  CHECK(found == json::parse(R"({"name":"pods/eviction","singularName":"","namespaced":true,
      "group":"policy","version":"v1","kind":"Eviction","verbs":["create"]})"));
  json policy = f.ok("GET", "/apis/policy/v1");
  bool pdb = false;
  for (const auto& e : policy["resources"])
    if (e["name"] == "poddisruptionbudgets") pdb = e["shortNames"] == json::array({"pdb"});
  CHECK(pdb);
}

}  // namespace
}  // namespace skiff::apiserver
