// policy/v1 PodDisruptionBudget: codec round trip, omission rules, validation paths and messages
// (pkg/apis/policy/validation), the Table cells kubectl prints, and the registry entry.
#include "proto/poddisruptionbudget.h"

#include <catch2/catch.hpp>
#include <map>

#include "proto/patch.h"
#include "proto/registry.h"
#include "proto/test_util.h"

namespace skiff::proto {
namespace {

json fixture() { return testutil::fixture("poddisruptionbudget"); }

const ResourceType& pdb_type() {
  const ResourceType* t = Registry::builtin().find("policy", "v1", "poddisruptionbudgets");
  REQUIRE(t != nullptr);
  return *t;
}

std::map<std::string, std::string> validate(const json& obj, const json* old = nullptr) {
  std::map<std::string, std::string> m;
  for (const auto& e : pdb_type().validate(obj, old)) m[e.field] = e.message();
  return m;
}

json minimal(const std::string& spec) {
  return json::parse(R"({"apiVersion":"policy/v1","kind":"PodDisruptionBudget",
    "metadata":{"name":"p","namespace":"default"},"spec":)" +
                     spec + "}");
}

TEST_CASE("pdb: the fixture round-trips unchanged and is valid") {
  json in = fixture();
  FieldErrors errs;
  json out = pdb_type().normalize(in, errs, {});
  CHECK(errs.empty());
  CHECK(out == in);
  CHECK(validate(in).empty());
  FieldErrors e2;
  auto pdb = decode<PodDisruptionBudget>(in, e2, {});
  CHECK(pdb.spec.min_available->str_val == "50%");
  CHECK(pdb.status.disrupted_pods.count("web-1") == 1);
}

TEST_CASE("pdb: unset fields are omitted, the status counters always written") {
  FieldErrors errs;
  json out = pdb_type().normalize(minimal(R"({"maxUnavailable":1})"), errs, {});
  CHECK(errs.empty());
  CHECK(out["spec"] == json::parse(R"({"maxUnavailable":1})"));
  CHECK(out["status"] == json::parse(
                             R"({"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,
                                 "expectedPods":0})"));
  // An explicit 0 is a value (a pointer in Go), kept.
  out = pdb_type().normalize(minimal(R"({"minAvailable":0})"), errs, {});
  CHECK(out["spec"]["minAvailable"] == 0);
  // An unknown field is reported for strict field validation.
  pdb_type().normalize(minimal(R"({"minAvailble":1})"), errs, {});
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].field == "spec.minAvailble");
}

TEST_CASE("pdb: validation paths and messages as Kubernetes") {
  auto m = validate(minimal(R"({"minAvailable":1,"maxUnavailable":"10%"})"));
  REQUIRE(m.count("spec"));
  CHECK(m["spec"].find("minAvailable and maxUnavailable cannot be both set") != std::string::npos);

  m = validate(minimal(R"({"minAvailable":-1})"));
  CHECK(m["spec.minAvailable"] == "Invalid value: -1: must be greater than or equal to 0");

  m = validate(minimal(R"({"maxUnavailable":"120%"})"));
  CHECK(m["spec.maxUnavailable"] ==
        "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"120%\"}: must not be "
        "greater than 100%");

  m = validate(minimal(R"({"minAvailable":"x"})"));
  CHECK(m["spec.minAvailable"].find("a valid percent string must be a numeric string") !=
        std::string::npos);

  m = validate(minimal(R"({"minAvailable":1,"unhealthyPodEvictionPolicy":"Never"})"));
  CHECK(m["spec.unhealthyPodEvictionPolicy"] ==
        "Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\"");

  m = validate(minimal(
      R"({"minAvailable":1,"selector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]}})"));
  CHECK(m.count("spec.selector.matchExpressions[0].operator") == 1);

  // Neither set, no selector: valid (it selects nothing).
  CHECK(validate(minimal("{}")).empty());
  CHECK(validate(minimal(R"({"minAvailable":"100%","selector":{}})")).empty());

  json bad = minimal(R"({"minAvailable":1})");
  bad["status"] = json::parse(R"({"disruptionsAllowed":-1,"currentHealthy":0,
      "desiredHealthy":0,"expectedPods":-2,"conditions":[
      {"type":"DisruptionAllowed","status":"Maybe","reason":"9x","message":""}]})");
  m = validate(bad);
  CHECK(m["status.disruptionsAllowed"] == "Invalid value: -1: must be greater than or equal to 0");
  CHECK(m["status.expectedPods"] == "Invalid value: -2: must be greater than or equal to 0");
  CHECK(m["status.conditions[0].status"].find("Unsupported value: \"Maybe\"") == 0);
  CHECK(m["status.conditions[0].lastTransitionTime"] == "Required value: must be set");
  CHECK(m["status.conditions[0].reason"].find("a condition reason must start with alphabetic") !=
        std::string::npos);
}

TEST_CASE("pdb: the registry entry and kubectl's Table cells") {
  const ResourceType& t = pdb_type();
  CHECK(t.kind == "PodDisruptionBudget");
  CHECK(t.namespaced);
  CHECK(t.short_names == std::vector<std::string>{"pdb"});
  CHECK(t.subresources == std::vector<std::string>{"status"});
  CHECK(t.reset_status_on_create);
  CHECK(Registry::builtin().resolve("pdb") == &t);
  REQUIRE(t.columns.size() == 5);
  CHECK(t.columns[1].name == "Min Available");
  CHECK(t.columns[2].name == "Max Unavailable");
  CHECK(t.columns[3].name == "Allowed Disruptions");
  auto now = parse_rfc3339("2026-12-01T10:10:00Z").value();
  json row = t.row_cells(fixture(), now);
  CHECK(row == json::array({"web", "50%", "N/A", 1, "10m"}));
  json other = minimal(R"({"maxUnavailable":2})");
  row = t.row_cells(other, now);
  CHECK(row[1] == "N/A");
  CHECK(row[2] == "2");
}

TEST_CASE(
    "pdb: spec.selector is replaced whole by strategic merge patches (patchStrategy replace)") {
  const ResourceType& t = pdb_type();  // registering the kind declares the strategy
  json live = minimal(R"({"minAvailable":1,"selector":{"matchLabels":{"app":"web","tier":"x"}}})");
  // kubectl apply of a manifest whose selector lost `tier` sends the whole new selector.
  json patch = json::parse(R"({"spec":{"selector":{"matchLabels":{"app":"web"}}}})");
  auto got = apply_strategic_merge_patch(live, patch, *t.schema);
  REQUIRE(got.is_ok());
  CHECK((*got)["spec"]["selector"] == json::parse(R"({"matchLabels":{"app":"web"}})"));
  CHECK((*got)["spec"]["minAvailable"] == 1);
  // Other objects still merge (metadata.labels).
  live["metadata"]["labels"] = {{"a", "1"}};
  got = apply_strategic_merge_patch(live, json::parse(R"({"metadata":{"labels":{"b":"2"}}})"),
                                    *t.schema);
  REQUIRE(got.is_ok());
  CHECK((*got)["metadata"]["labels"] == json::parse(R"({"a":"1","b":"2"})"));
  // The three-way patch (client-side apply) carries the whole selector, even unchanged.
  json original =
      minimal(R"({"minAvailable":1,"selector":{"matchLabels":{"app":"web","tier":"x"}}})");
  json modified = minimal(R"({"minAvailable":1,"selector":{"matchLabels":{"app":"web"}}})");
  auto p3 = create_three_way_strategic_patch(original, modified, original, *t.schema);
  REQUIRE(p3.is_ok());
  CHECK((*p3)["spec"] == json::parse(R"({"selector":{"matchLabels":{"app":"web"}}})"));
  p3 = create_three_way_strategic_patch(modified, modified, modified, *t.schema);
  REQUIRE(p3.is_ok());
  CHECK((*p3)["spec"] == json::parse(R"({"selector":{"matchLabels":{"app":"web"}}})"));
}

}  // namespace
}  // namespace skiff::proto
