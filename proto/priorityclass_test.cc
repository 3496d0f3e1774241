// scheduling.k8s.io/v1 PriorityClass: codec round trip and omission rules, defaults, validation
// paths and messages (pkg/apis/scheduling/validation: the `system-` prefix, the user maximum,
// preemptionPolicy, value/preemptionPolicy immutable), the built-ins, Table cells, registry entry.
#include "proto/priorityclass.h"

#include <catch2/catch.hpp>
#include <map>

#include "proto/registry.h"
#include "proto/test_util.h"
#include "proto/time.h"

namespace skiff::proto {
namespace {

using testutil::by_field;

const ResourceType& pc_type() {
  const ResourceType* t = Registry::builtin().find("scheduling.k8s.io", "v1", "priorityclasses");
  REQUIRE(t != nullptr);
  return *t;
}

json defaulted(const std::string& body) {
  FieldErrors errs;
  json n = pc_type().normalize(json::parse(body), errs, {});
  REQUIRE(errs.empty());
  pc_type().apply_defaults(n);
  return n;
}

FieldErrors validate(const std::string& body, const std::string& old = "") {
  json n = defaulted(body);
  if (old.empty()) return pc_type().validate(n, nullptr);
  json o = defaulted(old);
  return pc_type().validate(n, &o);
}

TEST_CASE("priorityclass round trip, omission rules and defaults") {
  auto n = defaulted(R"({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
      "metadata":{"name":"high"},"value":1000,"globalDefault":true,"description":"d",
      "preemptionPolicy":"Never"})");
  CHECK(n["value"] == 1000);
  CHECK(n["globalDefault"] == true);
  CHECK(n["description"] == "d");
  CHECK(n["preemptionPolicy"] == "Never");
  FieldErrors errs;
  auto typed = decode<PriorityClass>(n, errs);
  CHECK(errs.empty());
  CHECK(encode(typed) == n);
  // value is written even when 0; globalDefault false and an empty description are omitted; the
  // policy defaults to PreemptLowerPriority.
  auto z = defaulted(R"({"metadata":{"name":"zero"}})");
  CHECK(z["value"] == 0);
  CHECK_FALSE(z.contains("globalDefault"));
  CHECK_FALSE(z.contains("description"));
  CHECK(z["preemptionPolicy"] == "PreemptLowerPriority");
  CHECK(z["apiVersion"] == "scheduling.k8s.io/v1");
  CHECK(z["kind"] == "PriorityClass");
  // A wrong type is a decode error with its path.
  FieldErrors bad;
  pc_type().normalize(json::parse(R"({"metadata":{"name":"x"},"value":"high"})"), bad, {});
  CHECK(by_field(bad).count("value"));
}

TEST_CASE("priorityclass validation as Kubernetes") {
  CHECK(validate(R"({"metadata":{"name":"high"},"value":1000000000})").empty());
  CHECK(validate(R"({"metadata":{"name":"low"},"value":-2147483648})").empty());
  CHECK(by_field(validate(R"({"metadata":{"name":"high"},"value":1000000001})"))["value"] ==
        "Forbidden: maximum allowed value of a user defined priority is 1000000000");
  CHECK(by_field(validate(R"({"metadata":{"name":"system-mine"},"value":1})"))["metadata.name"] ==
        "Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
        "error: system-mine is not a known system priority class");
  CHECK(by_field(validate(
            R"({"metadata":{"name":"system-node-critical"},"value":1})"))["metadata.name"] ==
        "Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
        "error: value of system-node-critical PriorityClass must be 2000001000");
  CHECK(by_field(validate(R"({"metadata":{"name":"system-cluster-critical"},"value":2000000000,
                              "globalDefault":true})"))["metadata.name"] ==
        "Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
        "error: globalDefault of system-cluster-critical PriorityClass must be false");
  CHECK(validate(R"({"metadata":{"name":"system-node-critical"},"value":2000001000})").empty());
  CHECK(by_field(validate(
            R"({"metadata":{"name":"p"},"preemptionPolicy":"Sometimes"})"))["preemptionPolicy"] ==
        "Unsupported value: \"Sometimes\": supported values: \"PreemptLowerPriority\", \"Never\"");
  CHECK(by_field(
            validate(R"({"metadata":{"name":"p"},"preemptionPolicy":""})"))["preemptionPolicy"] ==
        "Required value");
  CHECK(by_field(validate(R"({"metadata":{"name":"UPPER"}})")).count("metadata.name"));
  CHECK(by_field(validate(R"({"metadata":{"name":"p","namespace":"x"}})"))
            .count("metadata.namespace"));
}

TEST_CASE("priorityclass updates: value and preemptionPolicy are immutable") {
  const std::string old = R"({"metadata":{"name":"p","resourceVersion":"1"},"value":10})";
  CHECK(validate(R"({"metadata":{"name":"p","resourceVersion":"1"},"value":10,
                     "description":"new","globalDefault":true})",
                 old)
            .empty());
  CHECK(by_field(validate(R"({"metadata":{"name":"p","resourceVersion":"1"},"value":11})",
                          old))["value"] == "Forbidden: may not be changed in an update.");
  CHECK(by_field(validate(R"({"metadata":{"name":"p","resourceVersion":"1"},"value":10,
                              "preemptionPolicy":"Never"})",
                          old))["preemptionPolicy"] ==
        "Invalid value: \"Never\": field is immutable");
  // A manifest without the policy is defaulted to the stored one: no change.
  CHECK(validate(R"({"metadata":{"name":"p","resourceVersion":"1"},"value":10})", old).empty());
}

TEST_CASE("the built-in priority classes") {
  auto b = system_priority_classes();
  REQUIRE(b.size() == 2);
  std::map<std::string, PriorityClass> m;
  for (auto& pc : b) m[pc.metadata.name] = pc;
  CHECK(m["system-node-critical"].value == 2000001000);
  CHECK(m["system-cluster-critical"].value == 2000000000);
  CHECK(m["system-node-critical"].description ==
        "Used for system critical pods that must not be moved from their current node.");
  CHECK(m["system-cluster-critical"].description ==
        "Used for system critical pods that must run in the cluster, but can be moved to another "
        "node if necessary.");
  for (auto& pc : b) {
    CHECK(pc.preemption_policy == std::optional<std::string>("PreemptLowerPriority"));
    CHECK_FALSE(pc.global_default);
    CHECK(pc_type().validate(encode(pc), nullptr).empty());
  }
  CHECK(known_system_priority_class_error("system-node-critical", 2000001000, false).empty());
}

TEST_CASE("priorityclass Table cells and registry entry") {
  auto now = parse_rfc3339("2026-12-01T10:05:00Z").value();
  json o = defaulted(R"({"metadata":{"name":"high","creationTimestamp":"2026-12-01T10:00:00Z"},
                         "value":1000,"globalDefault":true})");
  CHECK(pc_type().row_cells(o, now) ==
        json::parse(R"(["high", 1000, true, "5m", "PreemptLowerPriority"])"));
  std::vector<std::string> names;
  for (const auto& c : pc_type().columns) names.push_back(c.name + (c.priority ? "*" : ""));
  CHECK(names ==
        std::vector<std::string>{"Name", "Value", "Global-Default", "Age", "PreemptionPolicy"});
  const Registry& r = Registry::builtin();
  CHECK(r.resolve("pc")->kind == "PriorityClass");
  CHECK(r.resolve("priorityclass")->plural == "priorityclasses");
  CHECK(r.resolve("priorityclasses.scheduling.k8s.io")->kind == "PriorityClass");
  CHECK_FALSE(pc_type().namespaced);
  CHECK(pc_type().list_kind == "PriorityClassList");
}

}  // namespace
}  // namespace skiff::proto
