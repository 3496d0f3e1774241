// apps/v1 StatefulSet: codec, defaulting, validation (paths and messages as Kubernetes'
// pkg/apis/apps/validation gives them), the Table and the Scale view.
#include "proto/statefulset.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/registry.h"
#include "proto/scale.h"

namespace skiff::proto {
namespace {

const Clock::time_point kNow = *parse_rfc3339("2026-11-25T10:10:00Z");

json sts_fixture() {
  auto path = std::filesystem::path(__FILE__).parent_path() / "testdata" / "statefulset.json";
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

const ResourceType& sts_type() {
  const ResourceType* t = Registry::builtin().resolve("sts");
  REQUIRE(t != nullptr);
  return *t;
}

std::string lines(const FieldErrors& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message() + "\n";
  return s;
}

json defaulted(const json& in) {
  FieldErrors errs;
  json out = sts_type().normalize(in, errs, DecodeOptions{});
  INFO(lines(errs));
  REQUIRE(errs.empty());
  sts_type().apply_defaults(out);
  return out;
}

const char kSts[] = R"({"metadata":{"name":"web","namespace":"default"},"spec":{
    "serviceName":"nginx",
    "selector":{"matchLabels":{"app":"nginx"}},
    "template":{"metadata":{"labels":{"app":"nginx"}},
                "spec":{"containers":[{"name":"nginx","image":"nginx:1.25",
                  "volumeMounts":[{"name":"www","mountPath":"/data"}]}]}},
    "volumeClaimTemplates":[{"metadata":{"name":"www"},"spec":{"accessModes":["ReadWriteOnce"],
                              "resources":{"requests":{"storage":"1Gi"}}}}]}})";

json sts_with(const char* spec_patch) {
  json d = json::parse(kSts);
  d["spec"].merge_patch(json::parse(spec_patch));
  return d;
}

std::string errors_of(const json& in, const json* old = nullptr) {
  json obj = defaulted(in);
  if (old) {
    json o = defaulted(*old);
    return lines(sts_type().validate(obj, &o));
  }
  return lines(sts_type().validate(obj, nullptr));
}

TEST_CASE("statefulset fixture round-trips, is stable under defaulting and validates") {
  json in = sts_fixture();
  FieldErrors errs;
  json out = sts_type().normalize(in, errs, DecodeOptions{});
  INFO(lines(errs));
  CHECK(errs.empty());
  INFO(json::diff(in, out).dump(1));
  CHECK(out == in);
  StatefulSet typed = decode<StatefulSet>(in, errs);
  CHECK(errs.empty());
  CHECK(encode(typed) == in);
  json d = out;
  sts_type().apply_defaults(d);
  CHECK(d == in);
  CHECK(lines(sts_type().validate(d, nullptr)).empty());
}

TEST_CASE("statefulset registration") {
  const Registry& r = Registry::builtin();
  for (const char* n : {"sts", "statefulset", "statefulsets", "statefulsets.apps"})
    CHECK(r.resolve(n) == r.find("apps", "v1", "statefulsets"));
  const ResourceType& t = sts_type();
  CHECK(t.subresources == std::vector<std::string>{"status", "scale"});
  CHECK(t.reset_status_on_create);
  CHECK(t.schema->find("status")->elem->find("conditions")->opts.merge_key == "type");
}

TEST_CASE("statefulset defaults (apps/v1 SetDefaults_StatefulSet)") {
  json d = defaulted(json::parse(kSts));
  const json& s = d["spec"];
  CHECK(s["replicas"] == 1);
  CHECK(s["podManagementPolicy"] == "OrderedReady");
  CHECK(s["updateStrategy"] == json::parse(R"({"type":"RollingUpdate",
                                              "rollingUpdate":{"partition":0}})"));
  CHECK(s["revisionHistoryLimit"] == 10);
  CHECK(s["persistentVolumeClaimRetentionPolicy"] ==
        json::parse(R"({"whenDeleted":"Retain","whenScaled":"Retain"})"));
  CHECK(s["template"]["spec"]["restartPolicy"] == "Always");
  CHECK(s["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem");
  CHECK(s["volumeClaimTemplates"][0]["status"] == json::parse(R"({"phase":"Pending"})"));
  CHECK_FALSE(s.contains("ordinals"));
  // An explicit RollingUpdate keeps its missing rollingUpdate (Kubernetes only fills a given
  // one), a given one gets partition 0, OnDelete gets nothing.
  CHECK(defaulted(
            sts_with(R"({"updateStrategy":{"type":"RollingUpdate"}})"))["spec"]["updateStrategy"] ==
        json::parse(R"({"type":"RollingUpdate"})"));
  CHECK(
      defaulted(sts_with(R"({"updateStrategy":{"type":"OnDelete"}})"))["spec"]["updateStrategy"] ==
      json::parse(R"({"type":"OnDelete"})"));
  CHECK(defaulted(sts_with(R"({"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete"}})"))
            ["spec"]["persistentVolumeClaimRetentionPolicy"] ==
        json::parse(R"({"whenDeleted":"Retain","whenScaled":"Delete"})"));
}

TEST_CASE("statefulset validation: paths and messages as Kubernetes gives them") {
  CHECK(errors_of(json::parse(kSts)).empty());
  CHECK(errors_of(sts_with(R"({"selector":null})")) == "spec.selector: Required value\n");
  CHECK(errors_of(sts_with(R"({"selector":{"matchLabels":{"app":"x"}}})")) ==
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: "
        "`selector` does not match template `labels`\n");
  CHECK(errors_of(sts_with(R"({"selector":{"matchLabels":null}})")) ==
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "statefulset\n");
  CHECK(errors_of(sts_with(R"({"replicas":-1,"minReadySeconds":-2,"ordinals":{"start":-1}})")) ==
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0\n"
        "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0\n"
        "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0\n");
  CHECK(errors_of(sts_with(R"({"podManagementPolicy":"Random"})")) ==
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or "
        "'Parallel'\n");
  CHECK(errors_of(sts_with(R"({"updateStrategy":{"type":"Sometimes"}})")) ==
        "spec.updateStrategy: Invalid value: {\"type\":\"Sometimes\"}: must be 'RollingUpdate' or "
        "'OnDelete'\n");
  CHECK(errors_of(sts_with(R"({"updateStrategy":{"type":"OnDelete",
                                "rollingUpdate":{"partition":1}}})")) ==
        "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":1}: only allowed for "
        "updateStrategy 'RollingUpdate'\n");
  CHECK(errors_of(sts_with(R"({"updateStrategy":{"rollingUpdate":{"partition":-1,
                                "maxUnavailable":0}}})")) ==
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or "
        "equal to 0\n"
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
        "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: must be greater than 0\n");
  CHECK(errors_of(sts_with(R"({"persistentVolumeClaimRetentionPolicy":{"whenDeleted":"Keep"}})")) ==
        "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": "
        "supported values: \"Retain\", \"Delete\"\n");
  CHECK(errors_of(sts_with(R"({"template":{"spec":{"restartPolicy":"Never",
                                  "activeDeadlineSeconds":5}}})")) ==
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: "
        "\"Always\"\n"
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
        "StatefulSet is not Supported\n");
  // A mount of a name that is neither a volume nor a claim template is refused.
  CHECK(errors_of(sts_with(R"({"volumeClaimTemplates":null})")) ==
        "spec.template.spec.containers[0].volumeMounts[0].name: Invalid value: \"www\": must "
        "match the name of a volume in spec.volumes\n");
  CHECK(errors_of(sts_with(R"({"volumeClaimTemplates":[{"metadata":{"name":"www"},
                                "spec":{"resources":{}}}]})")) ==
        "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode "
        "is required\n"
        "spec.volumeClaimTemplates[0].spec.resources.requests.storage: Required value\n");
  json st = json::parse(kSts);
  st["status"] = {{"replicas", 1}, {"readyReplicas", 2}, {"availableReplicas", 2}};
  CHECK(errors_of(st) ==
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas\n"
        "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas\n");
}

TEST_CASE("statefulset update: only some spec fields may change") {
  json old = json::parse(kSts);
  const char* forbidden =
      "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
      "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
      "'minReadySeconds' are forbidden\n";
  CHECK(errors_of(sts_with(R"({"replicas":5,"minReadySeconds":3,"ordinals":{"start":2},
        "updateStrategy":{"type":"OnDelete"},
        "persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete"},
        "template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26",
                    "volumeMounts":[{"name":"www","mountPath":"/data"}]}]}}})"),
                  &old)
            .empty());
  CHECK(errors_of(sts_with(R"({"serviceName":"other"})"), &old) == forbidden);
  CHECK(errors_of(sts_with(R"({"podManagementPolicy":"Parallel"})"), &old) == forbidden);
  CHECK(errors_of(sts_with(R"({"revisionHistoryLimit":3})"), &old) == forbidden);
  CHECK(errors_of(sts_with(R"({"volumeClaimTemplates":[{"metadata":{"name":"www"},
        "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"2Gi"}}}}]})"),
                  &old) == forbidden);
  json relabel = sts_with(R"({"selector":{"matchLabels":{"app":"nginx","x":"y"}},
      "template":{"metadata":{"labels":{"app":"nginx","x":"y"}}}})");
  CHECK(errors_of(relabel, &old) == forbidden);
}

TEST_CASE("statefulset table is kubectl 1.32's") {
  const ResourceType& t = sts_type();
  std::vector<std::string> names;
  for (const auto& c : t.columns) names.push_back(c.name + (c.priority ? "*" : ""));
  CHECK(names == std::vector<std::string>{"Name", "Ready", "Age", "Containers*", "Images*"});
  CHECK(t.row_cells(sts_fixture(), kNow) ==
        json::parse(R"(["web","2/3","10m","nginx","registry.k8s.io/nginx-slim:0.24"])"));
}

TEST_CASE("the Scale of a statefulset") {
  CHECK(encode(scale_of(sts_fixture())) == json::parse(R"({"apiVersion":"autoscaling/v1",
      "kind":"Scale","metadata":{"name":"web","namespace":"default","uid":"s1",
      "resourceVersion":"812","creationTimestamp":"2026-11-25T10:00:00Z"},
      "spec":{"replicas":3},"status":{"replicas":3,"selector":"app=nginx"}})"));
}

}  // namespace
}  // namespace skiff::proto
