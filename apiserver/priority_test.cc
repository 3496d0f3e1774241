// The Priority admission and PriorityClasses through the API (Api::handle over the memory
// store): the built-ins made at start, a pod's priority from its class, the global default,
// Kubernetes' 403s (unknown class, a conflicting explicit priority or policy, a second default,
// deleting a built-in), the reserved `system-` prefix, value immutability, and updates keeping
// a pod's priority.
#include "apiserver/priority.h"

#include <catch2/catch.hpp>

#include "apiserver/api.h"
#include "apiserver/api_impl.h"
#include "apiserver/store/store.h"

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
  Response call(const std::string& method, const std::string& path, const std::string& body = "") {
    Request r;
    r.method = method;
    r.raw_target = path;
    r.path = path.substr(0, path.find('?'));
    if (path.find("?dryRun=All") != std::string::npos) r.query.emplace("dryRun", "All");
    if (!body.empty() && method != "PATCH") r.headers["content-type"] = "application/json";
    if (method == "PATCH") r.headers["content-type"] = "application/merge-patch+json";
    r.body = body;
    r.user = "admin";
    return api->handle(r);
  }
  json call_json(const std::string& method, const std::string& path, const std::string& body = "",
                 int want = 0) {
    Response r = call(method, path, body);
    INFO(method << " " << path << " -> " << r.status << " " << r.body);
    if (want) REQUIRE(r.status == want);
    return json::parse(r.body);
  }
};

const char* kPcs = "/apis/scheduling.k8s.io/v1/priorityclasses";
const char* kPods = "/api/v1/namespaces/default/pods";

std::string pc(const std::string& name, int64_t value, bool def = false,
               const std::string& extra = "") {
  return R"({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{"name":")" +
         name + R"("},"value":)" + std::to_string(value) + (def ? R"(,"globalDefault":true)" : "") +
         extra + "}";
}

std::string pod(const std::string& name, const std::string& spec_extra = "") {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name +
         R"("},"spec":{"containers":[{"name":"c","image":"nginx"}])" + spec_extra + "}}";
}

TEST_CASE("the built-in PriorityClasses exist at start and cannot be deleted") {
  Fixture f;
  auto list = f.call_json("GET", kPcs, "", 200);
  std::map<std::string, json> by_name;
  for (auto& i : list["items"]) by_name[i["metadata"]["name"]] = i;
  REQUIRE(by_name.size() == 2);
  CHECK(by_name["system-node-critical"]["value"] == 2000001000);
  CHECK(by_name["system-cluster-critical"]["value"] == 2000000000);
  CHECK(by_name["system-cluster-critical"]["preemptionPolicy"] == "PreemptLowerPriority");
  CHECK(by_name["system-node-critical"]["description"] ==
        "Used for system critical pods that must not be moved from their current node.");
  auto del = f.call_json("DELETE", std::string(kPcs) + "/system-node-critical", "", 403);
  CHECK(del["message"] ==
        "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a "
        "system priority class and cannot be deleted");
  CHECK(del["reason"] == "Forbidden");
  // A second start over the same store makes nothing new.
  ApiOptions o;
  o.store = f.store.get();
  std::string err;
  auto again = Api::create(o, &err);
  REQUIRE(again);
  again->shutdown();
  CHECK(f.call_json("GET", kPcs, "", 200)["items"].size() == 2);
}

TEST_CASE("user PriorityClasses: system- names reserved, value immutable, one default") {
  Fixture f;
  auto sys = f.call_json("POST", kPcs, pc("system-mine", 5), 422);
  CHECK(sys["message"].get<std::string>().find(
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved "
            "for system use only. error: system-mine is not a known system priority class") !=
        std::string::npos);
  auto big = f.call_json("POST", kPcs, pc("huge", 1000000001), 422);
  CHECK(big["message"].get<std::string>().find(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000") !=
        std::string::npos);
  // The built-in's own manifest passes validation and clashes with the stored one.
  f.call_json("POST", kPcs, pc("system-node-critical", 2000001000), 409);

  f.call_json("POST", kPcs, pc("high", 1000, false, R"(,"description":"x")"), 201);
  auto changed = f.call_json("PUT", std::string(kPcs) + "/high", pc("high", 2000), 422);
  CHECK(changed["message"].get<std::string>().find(
            "value: Forbidden: may not be changed in an update.") != std::string::npos);
  f.call_json("PUT", std::string(kPcs) + "/high", pc("high", 1000, false, R"(,"description":"y")"),
              200);
  auto pol =
      f.call_json("PATCH", std::string(kPcs) + "/high", R"({"preemptionPolicy":"Never"})", 422);
  CHECK(pol["message"].get<std::string>().find(
            "preemptionPolicy: Invalid value: \"Never\": field is immutable") != std::string::npos);

  f.call_json("POST", kPcs, pc("default-a", 10, true), 201);
  auto second = f.call_json("POST", kPcs, pc("default-b", 20, true), 403);
  CHECK(second["message"] ==
        "priorityclasses.scheduling.k8s.io \"default-b\" is forbidden: PriorityClass default-a is "
        "already marked as default. Only one default can exist");
  auto mark = f.call_json("PATCH", std::string(kPcs) + "/high", R"({"globalDefault":true})", 403);
  CHECK(mark["message"].get<std::string>().find("PriorityClass default-a is already marked as "
                                                "default") != std::string::npos);
  // The default itself may be updated; once it is no longer the default another may be.
  f.call_json("PATCH", std::string(kPcs) + "/default-a", R"({"description":"d"})", 200);
  f.call_json("PATCH", std::string(kPcs) + "/default-a", R"({"globalDefault":false})", 200);
  f.call_json("PATCH", std::string(kPcs) + "/high", R"({"globalDefault":true})", 200);
}

TEST_CASE("pod priority from its PriorityClass") {
  Fixture f;
  f.call_json("POST", kPcs, pc("high", 1000, false, R"(,"preemptionPolicy":"Never")"), 201);

  auto p = f.call_json("POST", kPods, pod("a", R"(,"priorityClassName":"high")"), 201);
  CHECK(p["spec"]["priority"] == 1000);
  CHECK(p["spec"]["preemptionPolicy"] == "Never");
  CHECK(p["spec"]["priorityClassName"] == "high");

  auto crit =
      f.call_json("POST", kPods, pod("b", R"(,"priorityClassName":"system-node-critical")"), 201);
  CHECK(crit["spec"]["priority"] == 2000001000);
  CHECK(crit["spec"]["preemptionPolicy"] == "PreemptLowerPriority");

  auto unknown = f.call_json("POST", kPods, pod("c", R"(,"priorityClassName":"nope")"), 403);
  CHECK(unknown["message"] == "pods \"c\" is forbidden: no PriorityClass with name nope was found");
  CHECK(unknown["reason"] == "Forbidden");
  CHECK(unknown["details"]["kind"] == "pods");

  // The same value as the class is accepted; another one is refused as Kubernetes does.
  f.call_json("POST", kPods, pod("d", R"(,"priorityClassName":"high","priority":1000)"), 201);
  auto clash =
      f.call_json("POST", kPods, pod("e", R"(,"priorityClassName":"high","priority":7)"), 403);
  CHECK(clash["message"] ==
        "pods \"e\" is forbidden: the integer value of priority (7) must not be provided in pod "
        "spec; priority admission controller computed 1000 from the given PriorityClass name");
  auto policy = f.call_json(
      "POST", kPods,
      pod("g", R"(,"priorityClassName":"high","preemptionPolicy":"PreemptLowerPriority")"), 403);
  CHECK(policy["message"] ==
        "pods \"g\" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must "
        "not be provided in pod spec; priority admission controller computed Never from the "
        "given PriorityClass name");

  // No class and no default: priority 0, PreemptLowerPriority, no class name.
  auto plain = f.call_json("POST", kPods, pod("h"), 201);
  CHECK(plain["spec"]["priority"] == 0);
  CHECK(plain["spec"]["preemptionPolicy"] == "PreemptLowerPriority");
  CHECK_FALSE(plain["spec"].contains("priorityClassName"));
  auto nonzero = f.call_json("POST", kPods, pod("i", R"(,"priority":5)"), 403);
  CHECK(nonzero["message"].get<std::string>().find("computed 0 from the given PriorityClass") !=
        std::string::npos);

  // A dry run is admitted the same way and stores nothing.
  auto dry = f.call("POST", std::string(kPods) + "?dryRun=All",
                    pod("j", R"(,"priorityClassName":"nope")"));
  CHECK(dry.status == 403);
  auto dry_ok = f.call_json("POST", std::string(kPods) + "?dryRun=All",
                            pod("k", R"(,"priorityClassName":"high")"), 201);
  CHECK(dry_ok["spec"]["priority"] == 1000);
  f.call_json("GET", std::string(kPods) + "/k", "", 404);
}

TEST_CASE("the global default PriorityClass") {
  Fixture f;
  f.call_json("POST", kPcs, pc("everyone", 300, true), 201);
  auto p = f.call_json("POST", kPods, pod("a"), 201);
  CHECK(p["spec"]["priorityClassName"] == "everyone");
  CHECK(p["spec"]["priority"] == 300);
  CHECK(p["spec"]["preemptionPolicy"] == "PreemptLowerPriority");
  // A named class wins over the default.
  auto c = f.call_json("POST", kPods, pod("b", R"(,"priorityClassName":"system-cluster-critical")"),
                       201);
  CHECK(c["spec"]["priority"] == 2000000000);
}

TEST_CASE("pod updates keep the priority and may not change it") {
  Fixture f;
  f.call_json("POST", kPcs, pc("high", 1000), 201);
  auto p = f.call_json("POST", kPods, pod("a", R"(,"priorityClassName":"high")"), 201);
  // A PUT of the original manifest (no priority) keeps the admitted values.
  json put = json::parse(pod("a", R"(,"priorityClassName":"high")"));
  put["metadata"]["resourceVersion"] = p["metadata"]["resourceVersion"];
  put["spec"]["activeDeadlineSeconds"] = 100;
  auto u = f.call_json("PUT", std::string(kPods) + "/a", put.dump(), 200);
  CHECK(u["spec"]["priority"] == 1000);
  CHECK(u["spec"]["preemptionPolicy"] == "PreemptLowerPriority");
  // Changing the priority or the class is refused by pod update validation.
  auto bad = f.call_json("PATCH", std::string(kPods) + "/a", R"({"spec":{"priority":5}})", 422);
  CHECK(bad["message"].get<std::string>().find("pod updates may not change fields") !=
        std::string::npos);
  f.call_json("PATCH", std::string(kPods) + "/a",
              R"({"spec":{"priorityClassName":"system-node-critical"}})", 422);
  // A status write leaves them alone.
  auto st = f.call_json("PATCH", std::string(kPods) + "/a/status",
                        R"({"status":{"phase":"Running"}})", 200);
  CHECK(st["spec"]["priority"] == 1000);
}

}  // namespace
}  // namespace skiff::apiserver
