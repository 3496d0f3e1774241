// apps/v1 ReplicaSet and Deployment, and autoscaling/v1 Scale: codec, defaulting, validation
// (paths and messages as Kubernetes gives them), Table rows and the Scale view of a parent.
#include <catch2/catch.hpp>

#include "proto/deployment.h"
#include "proto/registry.h"
#include "proto/replicaset.h"
#include "proto/scale.h"
#include "proto/test_util.h"

namespace skiff::proto {
namespace {

const Clock::time_point kNow = *parse_rfc3339("2026-11-25T10:10:00Z");

using testutil::fixture;

const ResourceType& type(const char* name) {
  const ResourceType* t = Registry::builtin().resolve(name);
  REQUIRE(t != nullptr);
  return *t;
}

std::string describe(const FieldErrors& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message() + "\n";
  return s;
}

json normalized(const char* plural, const std::string& text) {
  FieldErrors errs;
  json out = type(plural).normalize(json::parse(text), errs, DecodeOptions{});
  INFO(describe(errs));
  REQUIRE(errs.empty());
  return out;
}

json defaulted(const char* plural, const std::string& text) {
  json obj = normalized(plural, text);
  type(plural).apply_defaults(obj);
  return obj;
}

// The errors of validating `text` (defaulted first), one "field: message" line each.
std::string errors_of(const char* plural, const std::string& text, const json* old = nullptr) {
  json obj = defaulted(plural, text);
  return describe(type(plural).validate(obj, old));
}

const char kDeploy[] = R"({"metadata":{"name":"web","namespace":"default"},"spec":{
    "selector":{"matchLabels":{"app":"web"}},
    "template":{"metadata":{"labels":{"app":"web"}},
                "spec":{"containers":[{"name":"nginx","image":"nginx:1.25"}]}}}})";

// kDeploy with `spec_patch` merged into its spec.
std::string deploy_with(const char* spec_patch) {
  json d = json::parse(kDeploy);
  d["spec"].merge_patch(json::parse(spec_patch));
  return d.dump();
}

std::string rs_with(const char* spec_patch) {
  json d = json::parse(kDeploy);
  d["metadata"]["name"] = "web-1";
  d["spec"].merge_patch(json::parse(spec_patch));
  return d.dump();
}

TEST_CASE("deployment and replicaset fixtures round-trip and validate") {
  for (const char* kind : {"deployment", "replicaset"}) {
    INFO(kind);
    const ResourceType& t = type(kind);
    json in = fixture(kind);
    FieldErrors errs;
    json out = t.normalize(in, errs, DecodeOptions{});
    INFO(describe(errs));
    CHECK(errs.empty());
    INFO(json::diff(in, out).dump(1));
    CHECK(out == in);
    json d = out;
    t.apply_defaults(d);
    CHECK(describe(t.validate(d, nullptr)).empty());
  }
}

TEST_CASE("registry knows apps/v1 workloads") {
  const Registry& r = Registry::builtin();
  for (const char* n : {"deploy", "deployment", "deployments", "Deployment", "deployments.apps",
                        "deployments.v1.apps"})
    CHECK(r.resolve(n) == r.find("apps", "v1", "deployments"));
  for (const char* n : {"rs", "replicaset", "replicasets.apps"})
    CHECK(r.resolve(n) == r.find("apps", "v1", "replicasets"));
  const ResourceType& d = *r.find("apps", "v1", "deployments");
  CHECK(d.namespaced);
  CHECK(d.list_kind == "DeploymentList");
  CHECK(d.api_version() == "apps/v1");
  CHECK(d.categories == std::vector<std::string>{"all"});
  CHECK(d.subresources == std::vector<std::string>{"status", "scale"});
  CHECK(d.reset_status_on_create);
  CHECK(d.generation_tracks_annotations);
  CHECK_FALSE(r.find("apps", "v1", "replicasets")->generation_tracks_annotations);
  CHECK(r.by_kind("apps/v1", "ReplicaSet")->plural == "replicasets");
  // Strategic merge patch: strategy keeps only the keys the patch names (retainKeys),
  // template containers merge by name, conditions by type.
  const Schema& spec = *d.schema->find("spec")->elem;
  CHECK(spec.find("strategy")->opts.strategy == PatchStrategy::kRetainKeys);
  const Schema& pod_spec = *spec.find("template")->elem->find("spec")->elem;
  CHECK(pod_spec.find("containers")->opts.merge_key == "name");
  CHECK(d.schema->find("status")->elem->find("conditions")->opts.merge_key == "type");
}

TEST_CASE("deployment defaults") {
  json d = defaulted("deployments", kDeploy);
  const json& s = d["spec"];
  CHECK(s["replicas"] == 1);
  CHECK(s["strategy"] == json::parse(
                             R"({"type":"RollingUpdate",
                                 "rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}})"));
  CHECK(s["revisionHistoryLimit"] == 10);
  CHECK(s["progressDeadlineSeconds"] == 600);
  // The template gets a pod's spec defaults, and nothing of a pod's status.
  const json& ps = s["template"]["spec"];
  CHECK(ps["restartPolicy"] == "Always");
  CHECK(ps["dnsPolicy"] == "ClusterFirst");
  CHECK(ps["terminationGracePeriodSeconds"] == 30);
  CHECK(ps["schedulerName"] == "default-scheduler");
  CHECK(ps["containers"][0]["imagePullPolicy"] == "IfNotPresent");
  CHECK(ps["containers"][0]["terminationMessagePath"] == "/dev/termination-log");
  CHECK_FALSE(s["template"].contains("status"));
  // Explicit values stay; Recreate gets no rollingUpdate.
  json e = defaulted("deployments", deploy_with(R"({"replicas":0,"revisionHistoryLimit":0,
                                     "strategy":{"type":"Recreate"}})"));
  CHECK(e["spec"]["replicas"] == 0);
  CHECK(e["spec"]["revisionHistoryLimit"] == 0);
  CHECK(e["spec"]["strategy"] == json::parse(R"({"type":"Recreate"})"));
  json f =
      defaulted("deployments", deploy_with(R"({"strategy":{"rollingUpdate":{"maxSurge":2}}})"));
  CHECK(f["spec"]["strategy"]["rollingUpdate"] ==
        json::parse(R"({"maxSurge":2,"maxUnavailable":"25%"})"));
  // Idempotent.
  json again = d;
  type("deployments").apply_defaults(again);
  CHECK(again == d);
}

TEST_CASE("replicaset defaults") {
  json rs = defaulted("replicasets", rs_with("{}"));
  CHECK(rs["spec"]["replicas"] == 1);
  CHECK(rs["spec"]["template"]["spec"]["restartPolicy"] == "Always");
  CHECK_FALSE(rs["spec"].contains("strategy"));
  CHECK(rs["status"] == json::parse(R"({"replicas":0})"));
}

TEST_CASE("deployment validation: paths and messages as Kubernetes gives them") {
  CHECK(errors_of("deployments", kDeploy).empty());
  CHECK(errors_of("deployments", deploy_with(R"({"selector":null})")) ==
        "spec.selector: Required value\n"
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: "
        "`selector` does not match template `labels`\n");
  CHECK(errors_of("deployments", deploy_with(R"({"selector":{"matchLabels":{"app":"x"}}})")) ==
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: "
        "`selector` does not match template `labels`\n");
  CHECK(errors_of("deployments", deploy_with(R"({"selector":{"matchLabels":null}})")) ==
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "deployment\n");
  CHECK(errors_of("deployments", deploy_with(R"({"replicas":-1})")) ==
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0\n");
  CHECK(errors_of("deployments", deploy_with(R"({"template":{"spec":{"containers":[{"name":"nginx",
                                  "image":null}]}}})")) ==
        "spec.template.spec.containers[0].image: Required value\n");
  CHECK(errors_of("deployments", deploy_with(R"({"template":{"spec":{"restartPolicy":"Never",
                                  "activeDeadlineSeconds":5}}})")) ==
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: "
        "\"Always\"\n"
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
        "ReplicaSet is not Supported\n");
  CHECK(errors_of(
            "deployments",
            deploy_with(R"({"template":{"metadata":{"labels":{"app":"web","bad key":"x"}}}})")) ==
        "spec.template.labels: Invalid value: \"bad key\": name part must consist of "
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')\n");
  CHECK(errors_of(
            "deployments",
            deploy_with(R"({"strategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":0}}})")) ==
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "
        "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0\n");
  CHECK(errors_of("deployments", deploy_with(R"({"strategy":{"rollingUpdate":{"maxSurge":"0%",
                                  "maxUnavailable":"0%"}}})")) ==
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "
        "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is "
        "0\n");
  CHECK(errors_of("deployments", deploy_with(R"({"strategy":{"rollingUpdate":{"maxSurge":"50",
                                  "maxUnavailable":"150%"}}})")) ==
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, "
        "IntVal:0, StrVal:\"50\"}: a valid percent string must be a numeric string followed by "
        "an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')\n"
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, "
        "IntVal:0, StrVal:\"150%\"}: must not be greater than 100%\n");
  CHECK(
      errors_of("deployments", deploy_with(R"({"strategy":{"rollingUpdate":{"maxSurge":-1}}})")) ==
      "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal "
      "to 0\n");
  CHECK(errors_of("deployments", deploy_with(R"({"strategy":{"type":"Recreate",
                                   "rollingUpdate":{"maxSurge":1}}})")) ==
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'\n");
  CHECK(errors_of("deployments", deploy_with(R"({"strategy":{"type":"Canary"}})")) ==
        "spec.strategy.type: Unsupported value: \"Canary\": supported values: \"Recreate\", "
        "\"RollingUpdate\"\n");
  CHECK(errors_of("deployments", deploy_with(R"({"minReadySeconds":10,"progressDeadlineSeconds":10,
                                  "revisionHistoryLimit":-1})")) ==
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0\n"
        "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than "
        "minReadySeconds\n");
  json bad_status = json::parse(kDeploy);
  bad_status["status"] = {{"replicas", 1}, {"readyReplicas", 2}, {"availableReplicas", -1}};
  CHECK(errors_of("deployments", bad_status.dump()) ==
        "status.availableReplicas: Invalid value: -1: must be greater than or equal to 0\n"
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas\n");
}

TEST_CASE("the selector is immutable after creation (apps/v1)") {
  json old = defaulted("deployments", kDeploy);
  std::string changed = deploy_with(R"({"selector":{"matchLabels":{"app":"web","v":"2"}},
      "template":{"metadata":{"labels":{"app":"web","v":"2"}}}})");
  CHECK(errors_of("deployments", changed, &old) ==
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"
        "\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
        "field is immutable\n");
  CHECK(errors_of("deployments", deploy_with(R"({"replicas":7})"), &old).empty());
  json old_rs = defaulted("replicasets", rs_with("{}"));
  CHECK(errors_of(
            "replicasets",
            rs_with(
                R"({"selector":{"matchLabels":null,"matchExpressions":[{"key":"app","operator":"In",
                              "values":["web"]}]}})"),
            &old_rs) ==
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", "
        "Operator:\"In\", Values:[]string{\"web\"}}}}: field is immutable\n");
}

TEST_CASE("replicaset validation") {
  CHECK(errors_of("replicasets", rs_with("{}")).empty());
  CHECK(errors_of("replicasets", rs_with(R"({"replicas":-2,"minReadySeconds":-1})")) ==
        "spec.replicas: Invalid value: -2: must be greater than or equal to 0\n"
        "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0\n");
  CHECK(errors_of("replicasets", rs_with(R"({"selector":{"matchLabels":null,
                                     "matchExpressions":[{"key":"app","operator":"Near"}]}})")) ==
        "spec.selector.matchExpressions[0].operator: Invalid value: \"Near\": not a valid "
        "selector operator\n"
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", "
        "Operator:\"Near\", Values:[]string(nil)}}}: invalid label selector\n");
  json st = json::parse(rs_with("{}"));
  st["status"] = {
      {"replicas", 2}, {"fullyLabeledReplicas", 3}, {"readyReplicas", 1}, {"availableReplicas", 2}};
  CHECK(errors_of("replicasets", st.dump()) ==
        "status.fullyLabeledReplicas: Invalid value: 3: cannot be greater than "
        "status.replicas\n"
        "status.availableReplicas: Invalid value: 2: cannot be greater than readyReplicas\n");
}

std::vector<std::string> column_names(const ResourceType& t, bool wide) {
  std::vector<std::string> out;
  for (const auto& c : t.columns)
    if (wide || c.priority == 0) out.push_back(c.name);
  return out;
}

TEST_CASE("workload tables are kubectl 1.32's") {
  using V = std::vector<std::string>;
  CHECK(column_names(type("deploy"), false) ==
        V{"Name", "Ready", "Up-to-date", "Available", "Age"});
  CHECK(column_names(type("deploy"), true) ==
        V{"Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"});
  CHECK(column_names(type("rs"), false) == V{"Name", "Desired", "Current", "Ready", "Age"});
  CHECK(column_names(type("rs"), true) ==
        V{"Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"});
  CHECK(type("rs").columns[1].type == "integer");
  CHECK(type("deploy").row_cells(fixture("deployment"), kNow) ==
        json::parse(R"j(["web","2/3",2,2,"10m","nginx,sidecar","nginx:1.25,busybox:1.36",
                        "app=web,tier in (a,b)"])j"));
  CHECK(type("rs").row_cells(fixture("replicaset"), kNow) ==
        json::parse(R"(["web-5d8f7c9b6d",3,3,2,"10m","nginx","nginx:1.25",
                        "app=web,pod-template-hash=5d8f7c9b6d"])"));
  // A selector-less object still renders (kubectl: "<none>" for replica sets).
  json rs = fixture("replicaset");
  rs["spec"].erase("selector");
  CHECK(type("rs").row_cells(rs, kNow)[7] == "<none>");
}

TEST_CASE("field selectors on workloads") {
  json rs = fixture("replicaset");
  CHECK(type("rs").field_value(rs, "status.replicas") == "3");
  CHECK(type("rs").field_value(rs, "metadata.name") == "web-5d8f7c9b6d");
  CHECK(type("deploy").field_value(fixture("deployment"), "metadata.namespace") == "default");
  CHECK_FALSE(type("deploy").field_value(fixture("deployment"), "spec.replicas"));
}

TEST_CASE("the Scale of a deployment or replicaset") {
  Scale s = scale_of(fixture("deployment"));
  CHECK(encode(s) == json::parse(R"j({"apiVersion":"autoscaling/v1","kind":"Scale",
      "metadata":{"name":"web","namespace":"default","uid":"d1","resourceVersion":"42",
                  "creationTimestamp":"2026-11-25T10:00:00Z"},
      "spec":{"replicas":3},"status":{"replicas":3,"selector":"app=web,tier in (a,b)"}})j"));
  json rs = fixture("replicaset");
  rs["status"] = json::object();
  rs["spec"]["replicas"] = 0;
  CHECK(encode(scale_of(rs))["spec"] == json::object());
  CHECK(encode(scale_of(rs))["status"] ==
        json::parse(R"({"replicas":0,"selector":"app=web,pod-template-hash=5d8f7c9b6d"})"));
  CHECK(validate_scale(s).empty());
  s.spec.replicas = -1;
  CHECK(describe(validate_scale(s)) ==
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0\n");
  // Typed access for controllers.
  FieldErrors errs;
  Deployment d = decode<Deployment>(fixture("deployment"), errs);
  CHECK(errs.empty());
  CHECK(d.spec.template_.spec.containers.size() == 2);
  CHECK(d.spec.strategy.rolling_update->max_surge == IntOrString::from_int(1));
  CHECK(label_selector_string(d.spec.selector) == "app=web,tier in (a,b)");
  CHECK(label_selector_string(std::nullopt).empty());
}

}  // namespace
}  // namespace skiff::proto
