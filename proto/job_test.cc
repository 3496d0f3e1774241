// batch/v1 Job: codec, defaulting (incl. the generated selector), validation paths and messages
// as pkg/apis/batch/validation gives them, and kubectl's Table row.
#include "proto/job.h"

#include <catch2/catch.hpp>

#include "proto/registry.h"
#include "proto/test_util.h"

namespace skiff::proto {
namespace {

const Clock::time_point kNow = *parse_rfc3339("2026-11-25T10:10:00Z");

using testutil::fixture;

const ResourceType& jobs() {
  const ResourceType* t = Registry::builtin().resolve("jobs");
  REQUIRE(t != nullptr);
  return *t;
}

std::string describe(const FieldErrors& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message() + "\n";
  return s;
}

// A Job as the API server sees it at create time: uid and name filled, then normalized and
// defaulted.
const char kJob[] = R"({"metadata":{"name":"pi","namespace":"default","uid":"u1"},"spec":{
    "template":{"spec":{"restartPolicy":"Never",
                        "containers":[{"name":"pi","image":"perl:5.34.0"}]}}}})";

json job_with(const char* spec_patch, const char* base = kJob) {
  json j = json::parse(base);
  j["spec"].merge_patch(json::parse(spec_patch));
  FieldErrors errs;
  json out = jobs().normalize(j, errs, DecodeOptions{});
  INFO(describe(errs));
  REQUIRE(errs.empty());
  jobs().apply_defaults(out);
  return out;
}

std::string errors_of(const json& obj, const json* old = nullptr) {
  return describe(jobs().validate(obj, old));
}

TEST_CASE("job fixture round-trips, keeps its defaults and validates") {
  json in = fixture("job");
  FieldErrors errs;
  json out = jobs().normalize(in, errs, DecodeOptions{});
  INFO(describe(errs));
  CHECK(errs.empty());
  INFO(json::diff(in, out).dump(1));
  CHECK(out == in);
  Job typed = decode<Job>(in, errs);
  CHECK(encode(typed) == in);
  json d = out;
  jobs().apply_defaults(d);
  CHECK(d["spec"]["selector"] == in["spec"]["selector"]);
  CHECK(d["spec"]["template"]["metadata"] == in["spec"]["template"]["metadata"]);
  CHECK(errors_of(d).empty());
}

TEST_CASE("job registration") {
  const ResourceType& t = jobs();
  CHECK(t.api_version() == "batch/v1");
  CHECK(t.kind == "Job");
  CHECK(t.subresources == std::vector<std::string>{"status"});
  CHECK(t.reset_status_on_create);
  CHECK(t.schema->find("spec") != nullptr);
}

TEST_CASE("job defaults and generated selector") {
  json j = job_with("{}");
  const json& s = j["spec"];
  CHECK(s["parallelism"] == 1);
  CHECK(s["completions"] == 1);
  CHECK(s["backoffLimit"] == 6);
  CHECK(s["completionMode"] == "NonIndexed");
  CHECK(s["suspend"] == false);
  CHECK(s["podReplacementPolicy"] == "TerminatingOrFailed");
  CHECK(s["selector"] ==
        json::parse(R"({"matchLabels":{"batch.kubernetes.io/controller-uid":"u1"}})"));
  CHECK(s["template"]["metadata"]["labels"] == json::parse(R"({
      "batch.kubernetes.io/controller-uid":"u1","batch.kubernetes.io/job-name":"pi",
      "controller-uid":"u1","job-name":"pi"})"));
  CHECK(s["template"]["spec"]["dnsPolicy"] == "ClusterFirst");
  // Job labels default to the template's labels (the generated ones included).
  CHECK(j["metadata"]["labels"]["job-name"] == "pi");
  CHECK(errors_of(j).empty());

  // Work queue: parallelism alone leaves completions unset.
  json wq = job_with(R"({"parallelism":3})");
  CHECK_FALSE(wq["spec"].contains("completions"));
  CHECK(wq["spec"]["parallelism"] == 3);
  // backoffLimitPerIndex => backoffLimit MaxInt32.
  json bpi = job_with(R"({"completionMode":"Indexed","completions":3,"backoffLimitPerIndex":1})");
  CHECK(bpi["spec"]["backoffLimit"] == 2147483647);
  CHECK(errors_of(bpi).empty());
  // podFailurePolicy => podReplacementPolicy Failed.
  json pfp = job_with(R"({"podFailurePolicy":{"rules":[]}})");
  CHECK(pfp["spec"]["podReplacementPolicy"] == "Failed");
  CHECK(pfp["spec"]["podFailurePolicy"] == json::parse(R"({"rules":[]})"));
  // A user's own labels stay; a wrong generated one is refused.
  json own = job_with(R"({"template":{"metadata":{"labels":{"app":"pi","job-name":"other"}}}})");
  CHECK(own["spec"]["template"]["metadata"]["labels"]["app"] == "pi");
  CHECK(own["spec"]["template"]["metadata"]["labels"]["job-name"] == "other");
  CHECK(errors_of(own) ==
        "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{"
        "\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":\"u1\", "
        "\"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u1\", "
        "\"job-name\":\"other\"}: must be 'pi'\n");
}

TEST_CASE("manual selector is not generated") {
  json j = job_with(R"({"manualSelector":true,"selector":{"matchLabels":{"app":"pi"}},
                        "template":{"metadata":{"labels":{"app":"pi"}}}})");
  CHECK(j["spec"]["selector"] == json::parse(R"({"matchLabels":{"app":"pi"}})"));
  CHECK(j["spec"]["template"]["metadata"]["labels"] == json::parse(R"({"app":"pi"})"));
  CHECK(errors_of(j).empty());
  json none = job_with(R"({"manualSelector":true})");
  CHECK(errors_of(none) == "spec.selector: Required value\n");
  json mismatch = job_with(R"({"manualSelector":true,"selector":{"matchLabels":{"app":"x"}},
                               "template":{"metadata":{"labels":{"app":"pi"}}}})");
  CHECK(errors_of(mismatch) ==
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"pi\"}: "
        "`selector` does not match template `labels`\n");
}

TEST_CASE("job validation messages") {
  // The default restartPolicy Always is not for Jobs.
  json j = json::parse(kJob);
  j["spec"]["template"]["spec"].erase("restartPolicy");
  FieldErrors errs;
  json a = jobs().normalize(j, errs, DecodeOptions{});
  jobs().apply_defaults(a);
  CHECK(errors_of(a) ==
        "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: "
        "\"OnFailure\", \"Never\"\n");
  CHECK(errors_of(job_with(R"({"parallelism":-1,"completions":-2,"backoffLimit":-1,
                                "activeDeadlineSeconds":-5})")) ==
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0\n"
        "spec.completions: Invalid value: -2: must be greater than or equal to 0\n"
        "spec.activeDeadlineSeconds: Invalid value: -5: must be greater than or equal to 0\n"
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0\n");
  CHECK(errors_of(job_with(R"({"completionMode":"Indexed","parallelism":2})")) ==
        "spec.completions: Required value: when completion mode is Indexed\n");
  CHECK(errors_of(job_with(R"({"completionMode":"Sometimes"})")) ==
        "spec.completionMode: Unsupported value: \"Sometimes\": supported values: "
        "\"NonIndexed\", \"Indexed\"\n");
  CHECK(errors_of(job_with(R"({"maxFailedIndexes":1})")) ==
        "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified\n");
  json no_uid = job_with("{}");
  no_uid["metadata"].erase("uid");
  CHECK(errors_of(no_uid).find("metadata.uid: Required value") != std::string::npos);
  json wrong_sel = job_with("{}");
  wrong_sel["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] = "other";
  CHECK(errors_of(wrong_sel).find("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:"
                                  "map[string]string{\"batch.kubernetes.io/controller-uid\":"
                                  "\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
                                  ": `selector` not auto-generated") != std::string::npos);
}

TEST_CASE("job update rules") {
  json old = job_with(R"({"completions":3,"parallelism":1})");
  json j = old;
  j["spec"]["parallelism"] = 3;  // parallelism may change
  CHECK(errors_of(j, &old).empty());
  j["spec"]["completions"] = 4;
  CHECK(errors_of(j, &old) == "spec.completions: Invalid value: 4: field is immutable\n");
  j = old;
  j["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:6";
  CHECK(errors_of(j, &old) ==
        "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable\n");
  j = old;
  j["spec"]["selector"]["matchLabels"]["x"] = "y";
  INFO(errors_of(j, &old));
  CHECK(errors_of(j, &old).find("\nspec.selector: Invalid value: v1.LabelSelector") !=
        std::string::npos);
  j = old;
  j["spec"]["completionMode"] = "Indexed";
  CHECK(errors_of(j, &old) ==
        "spec.completionMode: Invalid value: \"Indexed\": field is immutable\n");
  // Suspend and resume are allowed; a suspended Job that never started may change its
  // scheduling directives (node selector, labels), nothing else.
  json sus = job_with(R"({"suspend":true})");
  j = sus;
  j["spec"]["suspend"] = false;
  j["spec"]["template"]["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  j["spec"]["template"]["metadata"]["annotations"] = {{"a", "b"}};
  CHECK(errors_of(j, &sus).empty());
  sus["status"]["startTime"] = "2026-11-25T10:00:00Z";
  CHECK(errors_of(j, &sus).find("spec.template: Invalid value") == 0);
  // Elastic Indexed Jobs: completions follows parallelism while both are equal.
  json idx = job_with(R"({"completionMode":"Indexed","completions":3,"parallelism":3})");
  j = idx;
  j["spec"]["completions"] = 5;
  j["spec"]["parallelism"] = 5;
  CHECK(errors_of(j, &idx).empty());
}

json fresh_job() { return job_with("{}"); }

TEST_CASE("job table rows as kubectl 1.32") {
  const ResourceType& t = jobs();
  std::vector<std::string> names;
  for (const auto& c : t.columns) names.push_back(c.name + (c.priority ? "*" : ""));
  CHECK(names == std::vector<std::string>{"Name", "Status", "Completions", "Duration", "Age",
                                          "Containers*", "Images*", "Selector*"});
  json f = fixture("job");
  CHECK(t.row_cells(f, kNow) ==
        json::parse(R"(["pi","Complete","5/5","65s","10m","pi","perl:5.34.0",
                    "batch.kubernetes.io/controller-uid=3c1a8e0f-6b0e-4c36-9d0a-5f7a1b2c3d4e"])"));
  // Running, duration so far; nil completions: "n/1 of p".
  json r = job_with(R"({"parallelism":3})");
  r["metadata"]["creationTimestamp"] = "2026-11-25T10:00:00Z";
  r["status"] = {{"startTime", "2026-11-25T10:00:00Z"}, {"succeeded", 1}, {"active", 2}};
  json row = t.row_cells(r, kNow);
  CHECK(row[1] == "Running");
  CHECK(row[2] == "1/1 of 3");
  CHECK(row[3] == "10m");
  r["spec"]["parallelism"] = 1;
  CHECK(t.row_cells(r, kNow)[2] == "1/1");
  r["status"]["conditions"] =
      json::parse(R"([{"type":"Failed","status":"True","reason":"BackoffLimitExceeded"}])");
  CHECK(t.row_cells(r, kNow)[1] == "Failed");
  r["status"]["conditions"] = json::parse(R"([{"type":"Suspended","status":"True"}])");
  CHECK(t.row_cells(r, kNow)[1] == "Suspended");
  r["metadata"]["deletionTimestamp"] = "2026-11-25T10:05:00Z";
  CHECK(t.row_cells(r, kNow)[1] == "Terminating");
  // Field selectors: status.successful reads 0 when succeeded is absent (omitempty).
  CHECK(t.field_value(f, "status.successful") == "5");
  CHECK(t.field_value(fresh_job(), "status.successful") == "0");
  CHECK(t.field_value(f, "metadata.name") == "pi");
  CHECK_FALSE(t.field_value(f, "spec.completions").has_value());
  // Not started: no duration.
  json fresh = job_with("{}");
  CHECK(t.row_cells(fresh, kNow)[3] == "");
  CHECK(t.row_cells(fresh, kNow)[2] == "0/1");
}

TEST_CASE("pod failure policy: defaults and validation") {
  json ok = job_with(R"({"podFailurePolicy":{"rules":[
      {"action":"FailJob","onExitCodes":{"containerName":"pi","operator":"In","values":[1,42]}},
      {"action":"Ignore","onPodConditions":[{"type":"DisruptionTarget"}]}]}})");
  CHECK(ok["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"] == "True");
  CHECK(ok["spec"]["podReplacementPolicy"] == "Failed");
  CHECK(errors_of(ok).empty());
  json bad = job_with(R"({"podFailurePolicy":{"rules":[
      {"action":"Explode","onExitCodes":{"operator":"In","values":[0,3,3,2]}},
      {"action":"Count"},
      {"action":"Count","onExitCodes":{"operator":"NotIn","values":[1]},
       "onPodConditions":[{"type":"X"}]}]}})");
  CHECK(errors_of(bad) ==
        "spec.podFailurePolicy.rules[0].action: Unsupported value: \"Explode\": supported "
        "values: \"FailJob\", \"FailIndex\", \"Ignore\", \"Count\"\n"
        "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 "
        "for the In operator\n"
        "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 3\n"
        "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Invalid value: 2: must be "
        "ordered\n"
        "spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and "
        "OnPodConditions is required\n"
        "spec.podFailurePolicy.rules[2]: Invalid value: specifying both OnExitCodes and "
        "OnPodConditions is not supported\n");
  json onf = job_with(R"({"podFailurePolicy":{"rules":[]},
                          "template":{"spec":{"restartPolicy":"OnFailure"}}})");
  CHECK(errors_of(onf) ==
        "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: "
        "\"Never\"\n");
}

TEST_CASE("job template spec validation (for CronJobs)") {
  FieldErrors errs;
  JobSpec s = decode<Job>(job_with("{}"), errs).spec;
  FieldErrors got;
  validate_job_template_spec(s, Path("spec.jobTemplate.spec"), got);
  CHECK(describe(got) ==
        "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:"
        "map[string]string{\"batch.kubernetes.io/controller-uid\":\"u1\"}, MatchExpressions:"
        "[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated\n");
  s.selector.reset();
  s.parallelism = -1;
  s.template_.spec.restart_policy = "Always";
  got.clear();
  validate_job_template_spec(s, Path("spec.jobTemplate.spec"), got);
  CHECK(describe(got) ==
        "spec.jobTemplate.spec.parallelism: Invalid value: -1: must be greater than or equal to "
        "0\nspec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": "
        "supported values: \"OnFailure\", \"Never\"\n");
}

}  // namespace
}  // namespace skiff::proto
