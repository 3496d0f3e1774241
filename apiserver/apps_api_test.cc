// In-process tests of the apps/v1 workloads in the API: discovery, create/update with
// defaults, validation and generation, Tables, and the scale subresource (GET, PUT, PATCH).
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "apiserver/api.h"
#include "apiserver/store/store.h"
#include "proto/codec.h"

namespace skiff::apiserver {
namespace {

using proto::json;

struct AppsFixture {
  std::unique_ptr<store::Store> store = store::make_memory_store();
  std::unique_ptr<Api> api;

  AppsFixture() {
    ApiOptions o;
    o.store = store.get();
    std::string err;
    api = Api::create(o, &err);
    INFO(err);
    REQUIRE(api);
  }
  ~AppsFixture() { api->shutdown(); }

  Response call(const std::string& method, const std::string& target, const std::string& body = "",
                std::map<std::string, std::string> headers = {}) {
    Request r;
    r.method = method;
    r.raw_target = target;
    auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string qs = target.substr(q + 1);
      for (size_t i = 0; i <= qs.size();) {
        size_t amp = qs.find('&', i);
        if (amp == std::string::npos) amp = qs.size();
        std::string kv = qs.substr(i, amp - i);
        auto eq = kv.find('=');
        if (!kv.empty())
          r.query.emplace(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
        i = amp + 1;
      }
    }
    r.headers = std::move(headers);
    r.body = body;
    r.user = "admin";
    return api->handle(r);
  }
  json call_json(const std::string& method, const std::string& target, const std::string& body = "",
                 std::map<std::string, std::string> headers = {}) {
    Response r = call(method, target, body, std::move(headers));
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.content_type.find("application/json") == 0);
    json j = json::parse(r.body);
    j["__status"] = r.status;
    return j;
  }
};

const std::string kDeploys = "/apis/apps/v1/namespaces/default/deployments";
const std::string kRSes = "/apis/apps/v1/namespaces/default/replicasets";
const std::map<std::string, std::string> kJson = {{"content-type", "application/json"}};
const std::map<std::string, std::string> kMerge = {
    {"content-type", "application/merge-patch+json"}};

std::string deployment(const std::string& name, const std::string& image = "nginx:1.25",
                       const std::string& template_app = "web") {
  return R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":")" + name +
         R"("},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
         "template":{"metadata":{"labels":{"app":")" +
         template_app + R"("}},"spec":{"containers":[{"name":"nginx","image":")" + image +
         R"("}]}}},"status":{"replicas":9}})";
}

TEST_CASE("apps/v1 and autoscaling/v1 discovery") {
  AppsFixture f;
  auto groups = f.call_json("GET", "/apis");
  std::map<std::string, json> by_name;
  for (const auto& g : groups["groups"]) by_name[g["name"]] = g;
  REQUIRE(by_name.count("apps"));
  CHECK(by_name["apps"]["preferredVersion"] ==
        json::parse(R"({"groupVersion":"apps/v1","version":"v1"})"));
  // autoscaling holds no resource here (no HPA): listing it with an empty resource list would
  // make client-go's discovery report a failed group; it is served when asked for directly.
  CHECK_FALSE(by_name.count("autoscaling"));
  CHECK(f.call_json("GET", "/apis/apps")["preferredVersion"]["groupVersion"] == "apps/v1");
  CHECK(f.call_json("GET", "/apis/autoscaling")["versions"].size() == 1);
  auto as = f.call_json("GET", "/apis/autoscaling/v1");
  CHECK(as["__status"] == 200);
  CHECK(as["groupVersion"] == "autoscaling/v1");
  CHECK(as["resources"] == json::array());

  auto apps = f.call_json("GET", "/apis/apps/v1");
  CHECK(apps["groupVersion"] == "apps/v1");
  std::map<std::string, json> res;
  for (const auto& r : apps["resources"]) res[r["name"]] = r;
  REQUIRE(res.count("deployments"));
  CHECK(res["deployments"]["kind"] == "Deployment");
  CHECK(res["deployments"]["namespaced"] == true);
  CHECK(res["deployments"]["shortNames"] == json::array({"deploy"}));
  CHECK(res["deployments"]["categories"] == json::array({"all"}));
  CHECK(res["replicasets"]["shortNames"] == json::array({"rs"}));
  CHECK(res["replicasets"]["categories"] == json::array({"all"}));
  CHECK(res["deployments/status"]["kind"] == "Deployment");
  for (const char* sub : {"deployments/scale", "replicasets/scale"}) {
    INFO(sub);
    CHECK(res[sub]["group"] == "autoscaling");
    CHECK(res[sub]["version"] == "v1");
    CHECK(res[sub]["kind"] == "Scale");
    CHECK(res[sub]["verbs"] == json::array({"get", "patch", "update"}));
  }
}

TEST_CASE("deployments: create defaults, generation, status reset and validation") {
  AppsFixture f;
  auto d = f.call_json("POST", kDeploys, deployment("web"), kJson);
  REQUIRE(d["__status"] == 201);
  CHECK(d["metadata"]["generation"] == 1);
  CHECK(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%");
  CHECK(d["spec"]["revisionHistoryLimit"] == 10);
  CHECK(d["spec"]["progressDeadlineSeconds"] == 600);
  CHECK(d["spec"]["template"]["spec"]["restartPolicy"] == "Always");
  CHECK(d["status"] == json::object());  // what the client sent is dropped on create

  // Spec changes bump the generation; metadata-only changes (labels) do not, annotations do
  // (Kubernetes copies them to the ReplicaSets); status writes never do.
  auto p1 = f.call_json("PATCH", kDeploys + "/web", R"({"spec":{"replicas":3}})", kMerge);
  CHECK(p1["metadata"]["generation"] == 2);
  auto p2 = f.call_json("PATCH", kDeploys + "/web", R"({"metadata":{"labels":{"x":"y"}}})", kMerge);
  CHECK(p2["metadata"]["generation"] == 2);
  auto p3 = f.call_json("PATCH", kDeploys + "/web", R"({"metadata":{"annotations":{"note":"n"}}})",
                        kMerge);
  CHECK(p3["metadata"]["generation"] == 3);
  auto st = f.call_json("PATCH", kDeploys + "/web/status",
                        R"({"status":{"observedGeneration":3,"replicas":3}})", kMerge);
  CHECK(st["metadata"]["generation"] == 3);
  CHECK(st["status"]["replicas"] == 3);
  // Strategic merge patch (kubectl apply) on the template: image change bumps.
  auto p4 = f.call_json(
      "PATCH", kDeploys + "/web",
      R"({"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}})",
      {{"content-type", "application/strategic-merge-patch+json"}});
  CHECK(p4["metadata"]["generation"] == 4);
  CHECK(p4["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26");
  CHECK(p4["status"]["replicas"] == 3);  // the main resource keeps status

  // kubectl apply switching to Recreate sends $retainKeys, which drops the defaulted
  // rollingUpdate (else validation would forbid it).
  auto rc = f.call_json("PATCH", kDeploys + "/web",
                        R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})",
                        {{"content-type", "application/strategic-merge-patch+json"}});
  CHECK(rc["__status"] == 200);
  CHECK(rc["spec"]["strategy"] == json::parse(R"({"type":"Recreate"})"));
  CHECK(rc["metadata"]["generation"] == 5);
  auto bad_rc = f.call_json("PATCH", kDeploys + "/web",
                            R"({"spec":{"strategy":{"rollingUpdate":{"maxSurge":1}}}})", kMerge);
  CHECK(bad_rc["__status"] == 422);
  CHECK(bad_rc["details"]["causes"][0]["field"] == "spec.strategy.rollingUpdate");

  // ReplicaSets: annotations do not bump.
  std::string rs = deployment("web-1");
  rs.replace(rs.find("Deployment"), 10, "ReplicaSet");
  REQUIRE(f.call_json("POST", kRSes, rs, kJson)["__status"] == 201);
  auto r1 =
      f.call_json("PATCH", kRSes + "/web-1", R"({"metadata":{"annotations":{"a":"b"}}})", kMerge);
  CHECK(r1["metadata"]["generation"] == 1);
  CHECK(r1["status"] == json::parse(R"({"replicas":0})"));

  // Invalid: selector not matching the template labels, with Kubernetes' message and cause.
  auto bad = f.call_json("POST", kDeploys, deployment("bad", "nginx", "other"), kJson);
  CHECK(bad["__status"] == 422);
  CHECK(bad["reason"] == "Invalid");
  CHECK(bad["message"] ==
        "Deployment.apps \"bad\" is invalid: spec.template.metadata.labels: Invalid value: "
        "map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`");
  CHECK(bad["details"]["kind"] == "Deployment");
  CHECK(bad["details"]["group"] == "apps");
  CHECK(bad["details"]["causes"][0]["field"] == "spec.template.metadata.labels");
  auto noimage = f.call_json("POST", kDeploys, deployment("noimg", ""), kJson);
  CHECK(noimage["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].image");
  // The selector is immutable.
  auto sel = f.call_json(
      "PATCH", kDeploys + "/web",
      R"({"spec":{"selector":{"matchLabels":{"v":"2"}},"template":{"metadata":{"labels":{"v":"2"}}}}})",
      kMerge);
  CHECK(sel["__status"] == 422);
  CHECK(sel["details"]["causes"][0]["field"] == "spec.selector");
  CHECK(
      sel["details"]["causes"][0]["message"].get<std::string>().ends_with(": field is immutable"));
}

TEST_CASE("workload tables") {
  AppsFixture f;
  REQUIRE(f.call_json("POST", kDeploys, deployment("web"), kJson)["__status"] == 201);
  const std::map<std::string, std::string> table = {
      {"accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}};
  auto t = f.call_json("GET", kDeploys, "", table);
  CHECK(t["kind"] == "Table");
  std::vector<std::string> cols;
  for (const auto& c : t["columnDefinitions"]) cols.push_back(c["name"]);
  CHECK(cols == std::vector<std::string>{"Name", "Ready", "Up-to-date", "Available", "Age",
                                         "Containers", "Images", "Selector"});
  REQUIRE(t["rows"].size() == 1);
  json cells = t["rows"][0]["cells"];
  cells[4] = "age";
  CHECK(cells == json::parse(R"(["web","0/2",0,0,"age","nginx","nginx:1.25","app=web"])"));
}

TEST_CASE("scale subresource: GET, PATCH (merge, strategic, JSON), PUT, conflicts") {
  AppsFixture f;
  auto d = f.call_json("POST", kDeploys, deployment("web"), kJson);
  REQUIRE(d["__status"] == 201);
  f.call_json("PATCH", kDeploys + "/web/status", R"({"status":{"replicas":2}})", kMerge);
  auto cur = f.call_json("GET", kDeploys + "/web");

  auto s = f.call_json("GET", kDeploys + "/web/scale");
  s.erase("__status");
  CHECK(s == json{{"apiVersion", "autoscaling/v1"},
                  {"kind", "Scale"},
                  {"metadata",
                   {{"name", "web"},
                    {"namespace", "default"},
                    {"uid", cur["metadata"]["uid"]},
                    {"resourceVersion", cur["metadata"]["resourceVersion"]},
                    {"creationTimestamp", cur["metadata"]["creationTimestamp"]}}},
                  {"spec", {{"replicas", 2}}},
                  {"status", {{"replicas", 2}, {"selector", "app=web"}}}});

  // kubectl scale: a merge patch of spec.replicas.
  auto m = f.call_json("PATCH", kDeploys + "/web/scale", R"({"spec":{"replicas":5}})", kMerge);
  CHECK(m["__status"] == 200);
  CHECK(m["kind"] == "Scale");
  CHECK(m["spec"]["replicas"] == 5);
  CHECK(m["status"]["replicas"] == 2);
  auto after = f.call_json("GET", kDeploys + "/web");
  CHECK(after["spec"]["replicas"] == 5);
  CHECK(after["metadata"]["generation"] == 2);
  CHECK(m["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]);
  // The Python client: strategic merge patch. A JSON patch too. Status in a patch is ignored.
  auto sm = f.call_json("PATCH", kDeploys + "/web/scale",
                        R"({"spec":{"replicas":6},"status":{"replicas":100}})",
                        {{"content-type", "application/strategic-merge-patch+json"}});
  CHECK(sm["spec"]["replicas"] == 6);
  CHECK(sm["status"]["replicas"] == 2);
  auto jp = f.call_json("PATCH", kDeploys + "/web/scale",
                        R"([{"op":"replace","path":"/spec/replicas","value":7}])",
                        {{"content-type", "application/json-patch+json"}});
  CHECK(jp["spec"]["replicas"] == 7);
  CHECK(f.call_json("GET", kDeploys + "/web")["metadata"]["generation"] == 4);
  // Same value again: nothing is written, the generation stays.
  auto same = f.call_json("PATCH", kDeploys + "/web/scale", R"({"spec":{"replicas":7}})", kMerge);
  CHECK(same["metadata"]["resourceVersion"] == jp["metadata"]["resourceVersion"]);
  CHECK(f.call_json("GET", kDeploys + "/web")["metadata"]["generation"] == 4);

  // PUT (kubectl scale --current-replicas sends no Content-Type) with resourceVersion.
  auto got = f.call_json("GET", kDeploys + "/web/scale");
  got.erase("__status");
  got["spec"]["replicas"] = 1;
  auto put = f.call_json("PUT", kDeploys + "/web/scale", got.dump());
  CHECK(put["__status"] == 200);
  CHECK(put["spec"]["replicas"] == 1);
  // The same (now stale) resourceVersion: 409 Conflict on the parent.
  got["spec"]["replicas"] = 3;
  auto stale = f.call_json("PUT", kDeploys + "/web/scale", got.dump());
  CHECK(stale["__status"] == 409);
  CHECK(stale["reason"] == "Conflict");
  CHECK(stale["message"] ==
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been "
        "modified; please apply your changes to the latest version and try again");
  auto stale_patch = f.call_json("PATCH", kDeploys + "/web/scale",
                                 R"({"metadata":{"resourceVersion":")" +
                                     got["metadata"]["resourceVersion"].get<std::string>() +
                                     R"("},"spec":{"replicas":3}})",
                                 kMerge);
  CHECK(stale_patch["__status"] == 409);

  // Bad input.
  auto neg = f.call_json("PATCH", kDeploys + "/web/scale", R"({"spec":{"replicas":-1}})", kMerge);
  CHECK(neg["__status"] == 422);
  CHECK(neg["message"] ==
        "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater "
        "than or equal to 0");
  auto str = f.call_json("PATCH", kDeploys + "/web/scale", R"({"spec":{"replicas":"x"}})", kMerge);
  CHECK(str["__status"] == 400);
  auto kind = f.call_json("PUT", kDeploys + "/web/scale",
                          R"({"kind":"Deployment","spec":{"replicas":1}})", kJson);
  CHECK(kind["__status"] == 400);
  auto name = f.call_json("PUT", kDeploys + "/web/scale",
                          R"({"metadata":{"name":"other"},"spec":{"replicas":1}})", kJson);
  CHECK(name["__status"] == 400);
  auto missing = f.call_json("GET", kDeploys + "/nope/scale");
  CHECK(missing["__status"] == 404);
  CHECK(missing["message"] == "deployments.apps \"nope\" not found");
  CHECK(f.call_json("PATCH", kDeploys + "/nope/scale", R"({"spec":{"replicas":1}})",
                    kMerge)["__status"] == 404);
  CHECK(f.call("POST", kDeploys + "/web/scale", "{}", kJson).status == 405);
  CHECK(f.call("PATCH", kDeploys + "/web/scale", "{}", {{"content-type", "text/plain"}}).status ==
        415);
  CHECK(f.call("GET", "/api/v1/namespaces/default/pods/x/scale").status == 404);
  CHECK(f.call_json("GET", kDeploys + "/web")["spec"]["replicas"] == 1);

  // Dry run changes nothing.
  auto dry = f.call_json("PATCH", kDeploys + "/web/scale?dryRun=All", R"({"spec":{"replicas":9}})",
                         kMerge);
  CHECK(dry["spec"]["replicas"] == 9);
  CHECK(f.call_json("GET", kDeploys + "/web")["spec"]["replicas"] == 1);
}

TEST_CASE("concurrent scale patches without a resourceVersion all succeed (retried)") {
  AppsFixture f;
  REQUIRE(f.call_json("POST", kDeploys, deployment("web"), kJson)["__status"] == 201);
  std::atomic<int> ok{0}, other{0};
  std::mutex mu;
  std::string first_other;  // the status and body of the first answer that was not 200
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        std::string body = R"({"spec":{"replicas":)" + std::to_string(i * 10 + k + 1) + "}}";
        Response r = f.call("PATCH", kDeploys + "/web/scale", body, kMerge);
        (r.status == 200 ? ok : other)++;
        std::lock_guard l(mu);
        if (r.status != 200 && first_other.empty())
          first_other = std::to_string(r.status) + " " + r.body;
      }
    });
  for (auto& t : threads) t.join();
  INFO("first answer other than 200: " << first_other);
  CHECK(ok == 40);
  CHECK(other == 0);
  // Every write that changed replicas bumped the generation exactly once.
  auto d = f.call_json("GET", kDeploys + "/web");
  CHECK(d["metadata"]["generation"].get<int>() >= 2);
  CHECK(d["metadata"]["generation"].get<int>() <= 41);
}

TEST_CASE("replicasets/scale") {
  AppsFixture f;
  std::string rs = deployment("web-1");
  rs.replace(rs.find("Deployment"), 10, "ReplicaSet");
  REQUIRE(f.call_json("POST", kRSes, rs, kJson)["__status"] == 201);
  auto s = f.call_json("GET", kRSes + "/web-1/scale");
  CHECK(s["spec"]["replicas"] == 2);
  CHECK(s["status"] == json::parse(R"({"replicas":0,"selector":"app=web"})"));
  auto m = f.call_json("PATCH", kRSes + "/web-1/scale", R"({"spec":{"replicas":0}})", kMerge);
  CHECK(m["__status"] == 200);
  CHECK(!m["spec"].contains("replicas"));  // autoscaling/v1 omits a zero spec.replicas
  auto after = f.call_json("GET", kRSes + "/web-1");
  CHECK(after["spec"]["replicas"] == 0);
  CHECK(after["metadata"]["generation"] == 2);
  // List by label selector and status.replicas field selector (kubectl describe's queries).
  // (The fixture passes query values as they are: the transport URL-decodes.)
  CHECK(f.call_json("GET", kRSes + "?labelSelector=app=web")["items"].size() == 0);
  f.call_json("PATCH", kRSes + "/web-1", R"({"metadata":{"labels":{"app":"web"}}})", kMerge);
  CHECK(f.call_json("GET", kRSes + "?labelSelector=app=web")["items"].size() == 1);
  auto byfield = f.call_json("GET", kRSes + "?fieldSelector=status.replicas=0");
  CHECK(byfield["items"].size() == 1);
}

}  // namespace
}  // namespace skiff::apiserver
