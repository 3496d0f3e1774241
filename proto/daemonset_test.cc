// apps/v1 DaemonSet: codec, defaulting, validation (paths and messages as Kubernetes'
// ValidateDaemonSet gives them), the immutable selector and kubectl 1.32's Table.
#include "proto/daemonset.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/registry.h"

namespace skiff::proto {
namespace {

const Clock::time_point kNow = *parse_rfc3339("2026-11-25T10:10:00Z");

json ds_fixture() {
  auto path = std::filesystem::path(__FILE__).parent_path() / "testdata" / "daemonset.json";
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

const ResourceType& ds_type() {
  const ResourceType* t = Registry::builtin().resolve("ds");
  REQUIRE(t != nullptr);
  return *t;
}

std::string lines(const FieldErrors& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message() + "\n";
  return s;
}

const char kDs[] = R"({"metadata":{"name":"agent","namespace":"kube-system"},"spec":{
    "selector":{"matchLabels":{"app":"agent"}},
    "template":{"metadata":{"labels":{"app":"agent"}},
                "spec":{"containers":[{"name":"agent","image":"busybox:1.36"}]}}}})";

json defaulted(const std::string& text) {
  FieldErrors errs;
  json obj = ds_type().normalize(json::parse(text), errs, DecodeOptions{});
  INFO(lines(errs));
  REQUIRE(errs.empty());
  ds_type().apply_defaults(obj);
  return obj;
}

// Validation errors of kDs with `spec_patch` merged into its spec (after defaulting).
std::string errors_with(const char* spec_patch, const json* old = nullptr) {
  json d = json::parse(kDs);
  d["spec"].merge_patch(json::parse(spec_patch));
  return lines(ds_type().validate(defaulted(d.dump()), old));
}

}  // namespace

TEST_CASE("daemonset fixture round-trips, stays as defaulted and validates") {
  const ResourceType& t = ds_type();
  json in = ds_fixture();
  FieldErrors errs;
  json out = t.normalize(in, errs, DecodeOptions{});
  INFO(lines(errs));
  CHECK(errs.empty());
  INFO(json::diff(in, out).dump(1));
  CHECK(out == in);
  json d = out;
  t.apply_defaults(d);
  CHECK(d["spec"]["updateStrategy"] == in["spec"]["updateStrategy"]);
  CHECK(lines(t.validate(d, nullptr)).empty());
}

TEST_CASE("daemonset registration") {
  const Registry& r = Registry::builtin();
  for (const char* n : {"ds", "daemonset", "daemonsets", "DaemonSet", "daemonsets.apps"})
    CHECK(r.resolve(n) == r.find("apps", "v1", "daemonsets"));
  const ResourceType& t = ds_type();
  CHECK(t.namespaced);
  CHECK(t.list_kind == "DaemonSetList");
  CHECK(t.subresources == std::vector<std::string>{"status"});
  CHECK(t.categories == std::vector<std::string>{"all"});
  CHECK(t.reset_status_on_create);
  CHECK(t.schema->find("spec")->elem->find("updateStrategy")->opts.strategy ==
        PatchStrategy::kRetainKeys);
  CHECK(t.schema->find("status")->elem->find("conditions")->opts.merge_key == "type");
}

TEST_CASE("daemonset defaults: RollingUpdate 1/0, revisionHistoryLimit 10, pod defaults") {
  json d = defaulted(kDs);
  CHECK(
      d["spec"]["updateStrategy"] ==
      json::parse(R"({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":0}})"));
  CHECK(d["spec"]["revisionHistoryLimit"] == 10);
  CHECK(d["spec"]["template"]["spec"]["restartPolicy"] == "Always");
  CHECK(d["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst");
  // OnDelete gets no rollingUpdate; a given limit is kept.
  json od = json::parse(kDs);
  od["spec"]["updateStrategy"] = {{"type", "OnDelete"}};
  od["spec"]["revisionHistoryLimit"] = 3;
  json o = defaulted(od.dump());
  CHECK(o["spec"]["updateStrategy"] == json({{"type", "OnDelete"}}));
  CHECK(o["spec"]["revisionHistoryLimit"] == 3);
  // The four scheduling counters are always written, the rest omitted when zero.
  CHECK(d["status"] == json::parse(R"({"currentNumberScheduled":0,"numberMisscheduled":0,
                                       "desiredNumberScheduled":0,"numberReady":0})"));
}

TEST_CASE("daemonset validation: paths and messages as Kubernetes gives them") {
  CHECK(errors_with("{}") == "");
  CHECK(errors_with(R"({"selector":{"matchLabels":{"app":"other"}}})") ==
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: "
        "`selector` does not match template `labels`\n");
  CHECK(
      errors_with(R"({"selector":{"matchLabels":null}})")
          .find(
              "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
              "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
              "daemonset") != std::string::npos);
  CHECK(errors_with(R"({"selector":null})").find("spec.selector: Required value") !=
        std::string::npos);
  CHECK(errors_with(R"({"template":{"spec":{"restartPolicy":"OnFailure"}}})") ==
        "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: "
        "\"Always\"\n");
  CHECK(errors_with(R"({"template":{"spec":{"activeDeadlineSeconds":5}}})") ==
        "spec.template.spec.activeDeadlineSeconds: Invalid value: 5: activeDeadlineSeconds in "
        "DaemonSet is not Supported\n");
  CHECK(errors_with(R"({"template":{"spec":{"containers":[{"name":"agent","image":""}]}}})") ==
        "spec.template.spec.containers[0].image: Required value\n");
  CHECK(errors_with(R"({"minReadySeconds":-1,"revisionHistoryLimit":-2})") ==
        "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0\n"
        "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0\n");
  CHECK(errors_with(R"({"updateStrategy":{"type":"Sometimes"}})") ==
        "spec.updateStrategy.type: Unsupported value: \"Sometimes\": supported values: "
        "\"RollingUpdate\", \"OnDelete\"\n");
  CHECK(errors_with(R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":0,"maxSurge":0}}})") ==
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when "
        "maxSurge is 0\n");
  CHECK(errors_with(
            R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":1,"maxSurge":"10%"}}})") ==
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "
        "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"10%\"}: may not be set when "
        "maxUnavailable is non-zero\n");
  CHECK(errors_with(R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":"150%"}}})") ==
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
        "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%\n");
  CHECK(errors_with(R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":"x"}}})")
            .find("spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
                  "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string") !=
        std::string::npos);
  CHECK(errors_with(R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":-1}}})")
            .find("spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: -1: must be "
                  "greater "
                  "than or equal to 0") != std::string::npos);
  // Surge-only rollouts are valid.
  CHECK(errors_with(R"({"updateStrategy":{"rollingUpdate":{"maxUnavailable":0,"maxSurge":1}}})") ==
        "");
}

TEST_CASE("daemonset status counters must not be negative") {
  json d = defaulted(kDs);
  d["status"]["numberReady"] = -1;
  d["status"]["collisionCount"] = -3;
  CHECK(lines(ds_type().validate(d, nullptr)) ==
        "status.numberReady: Invalid value: -1: must be greater than or equal to 0\n"
        "status.collisionCount: Invalid value: -3: must be greater than or equal to 0\n");
}

TEST_CASE("daemonset selector is immutable") {
  json old = defaulted(kDs);
  json d = json::parse(kDs);
  d["spec"]["selector"]["matchLabels"]["tier"] = "x";
  d["spec"]["template"]["metadata"]["labels"]["tier"] = "x";
  CHECK(lines(ds_type().validate(defaulted(d.dump()), &old)) ==
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":"
        "\"agent\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field "
        "is immutable\n");
  // The template may change.
  json t = json::parse(kDs);
  t["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37";
  CHECK(lines(ds_type().validate(defaulted(t.dump()), &old)).empty());
}

TEST_CASE("daemonset table is kubectl 1.32's") {
  std::vector<std::string> names, narrow;
  for (const auto& c : ds_type().columns) {
    names.push_back(c.name);
    if (c.priority == 0) narrow.push_back(c.name);
  }
  CHECK(narrow == std::vector<std::string>{"Name", "Desired", "Current", "Ready", "Up-to-date",
                                           "Available", "Node Selector", "Age"});
  CHECK(names.size() == 11);
  CHECK(names[8] == "Containers");
  CHECK(names[10] == "Selector");
  CHECK(ds_type().columns[1].type == "integer");
  CHECK(ds_type().row_cells(ds_fixture(), kNow) ==
        json::parse(R"j(["node-exporter",3,3,2,2,2,"kubernetes.io/os=linux","10m",
                        "node-exporter,kube-rbac-proxy",
                        "prom/node-exporter:v1.8.2,quay.io/brancz/kube-rbac-proxy:v0.18.1",
                        "app.kubernetes.io/name=node-exporter"])j"));
  json none = defaulted(kDs);
  none["metadata"]["creationTimestamp"] = "2026-11-25T10:09:00Z";
  CHECK(ds_type().row_cells(none, kNow) ==
        json::parse(R"(["agent",0,0,0,0,0,"<none>","60s","agent","busybox:1.36","app=agent"])"));
}

TEST_CASE("daemonset field selectors") {
  CHECK(ds_type().field_value(ds_fixture(), "metadata.name") == "node-exporter");
  CHECK(ds_type().field_value(ds_fixture(), "metadata.namespace") == "monitoring");
}

}  // namespace skiff::proto
