// batch/v1 CronJob: codec, defaulting, validation (paths and messages as Kubernetes gives
// them), the kubectl 1.32 Table.
#include "proto/cronjob.h"

#include <catch2/catch.hpp>

#include "proto/registry.h"
#include "proto/test_util.h"

namespace skiff::proto {
namespace {

const Clock::time_point kNow = *parse_rfc3339("2026-11-25T10:20:00Z");

using testutil::fixture;

const ResourceType& cj_type() {
  const ResourceType* t = Registry::builtin().resolve("cj");
  REQUIRE(t != nullptr);
  return *t;
}

std::string errors_of(const json& obj, const json* old = nullptr) {
  const ResourceType& t = cj_type();
  json o = obj;
  t.apply_defaults(o);
  std::string s;
  for (const auto& e : t.validate(o, old)) s += e.field + ": " + e.message() + "\n";
  return s;
}

json minimal() {
  return json::parse(R"({"apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "hello", "namespace": "default"},
    "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
      "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}})");
}

TEST_CASE("cronjob fixture round-trips, is already defaulted and validates") {
  const ResourceType& t = cj_type();
  json in = fixture("cronjob");
  FieldErrors errs;
  json out = t.normalize(in, errs, DecodeOptions{});
  CHECK(errs.empty());
  INFO(json::diff(in, out).dump(1));
  CHECK(out == in);
  json defaulted = out;
  t.apply_defaults(defaulted);
  INFO(defaulted.dump());
  CHECK(defaulted == in);
  CHECK(errors_of(in).empty());
}

TEST_CASE("cronjob defaults") {
  json o = minimal();
  cj_type().apply_defaults(o);
  CHECK(o["spec"]["concurrencyPolicy"] == "Allow");
  CHECK(o["spec"]["suspend"] == false);
  CHECK(o["spec"]["successfulJobsHistoryLimit"] == 3);
  CHECK(o["spec"]["failedJobsHistoryLimit"] == 1);
  CHECK_FALSE(o["spec"].contains("timeZone"));
  CHECK_FALSE(o["spec"].contains("startingDeadlineSeconds"));
  // The pod template gets pod defaults; the JobSpec keeps only what the user wrote.
  const json& tmpl = o["spec"]["jobTemplate"]["spec"]["template"];
  CHECK(tmpl["spec"]["dnsPolicy"] == "ClusterFirst");
  CHECK(tmpl["spec"]["restartPolicy"] == "Never");
  CHECK_FALSE(o["spec"]["jobTemplate"]["spec"].contains("backoffLimit"));
  // Explicit zeros stay.
  json z = minimal();
  z["spec"]["successfulJobsHistoryLimit"] = 0;
  z["spec"]["suspend"] = true;
  cj_type().apply_defaults(z);
  CHECK(z["spec"]["successfulJobsHistoryLimit"] == 0);
  CHECK(z["spec"]["suspend"] == true);
  CHECK(errors_of(minimal()).empty());
}

TEST_CASE("cronjob validation: schedule") {
  json o = minimal();
  o["spec"]["schedule"] = "";
  CHECK(errors_of(o) == "spec.schedule: Required value\n");
  o["spec"]["schedule"] = "* * * *";
  CHECK(errors_of(o) ==
        "spec.schedule: Invalid value: \"* * * *\": expected exactly 5 fields, found 4: "
        "[* * * *]\n");
  o["spec"]["schedule"] = "61 * * * *";
  CHECK(errors_of(o) ==
        "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): "
        "61\n");
  o["spec"]["schedule"] = "TZ=UTC 0 * * * *";
  CHECK(errors_of(o) ==
        "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in "
        "schedule, use timeZone field instead\n");
  o["spec"]["schedule"] = "CRON_TZ=UTC 0 * * * *";
  CHECK(errors_of(o).find("cannot use TZ or CRON_TZ in schedule") != std::string::npos);
  // Grandfathered: an object stored with TZ= may keep it, but not together with timeZone.
  json old = o;
  cj_type().apply_defaults(old);
  CHECK(errors_of(o, &old).empty());
  o["spec"]["timeZone"] = "UTC";
  CHECK(errors_of(o, &old) ==
        "spec.schedule: Invalid value: \"CRON_TZ=UTC 0 * * * *\": cannot use both timeZone "
        "field and TZ or CRON_TZ in schedule\n");
  for (const char* ok : {"@hourly", "@daily", "0 0 1 jan,JUL ?", "*/5 1-10/2 * * SUN-sat"}) {
    o = minimal();
    o["spec"]["schedule"] = ok;
    INFO(ok);
    CHECK(errors_of(o).empty());
  }
  o["spec"]["schedule"] = "@every 1h";  // robfig's ParseStandard takes it, so Kubernetes does
  CHECK(errors_of(o).empty());
  o["spec"]["schedule"] = "@every 1d";
  CHECK(errors_of(o).find("spec.schedule: Invalid value: \"@every 1d\": failed to parse duration "
                          "@every 1d: time: unknown unit \"d\" in duration \"1d\"") == 0);
}

TEST_CASE("cronjob validation: timeZone") {
  json o = minimal();
  o["spec"]["timeZone"] = "Etc/UTC";
  CHECK(errors_of(o).empty());
  o["spec"]["timeZone"] = "";
  CHECK(errors_of(o) ==
        "spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string\n");
  o["spec"]["timeZone"] = "Mars/Olympus_Mons";
  CHECK(errors_of(o) ==
        "spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone "
        "Mars/Olympus_Mons\n");
  o["spec"]["timeZone"] = "../etc/passwd";
  CHECK(errors_of(o) ==
        "spec.timeZone: Invalid value: \"../etc/passwd\": unknown time zone ../etc/passwd\n");
  o["spec"]["timeZone"] = "local";
  CHECK(errors_of(o) ==
        "spec.timeZone: Invalid value: \"local\": timeZone must be an explicit time zone as "
        "defined in https://www.iana.org/time-zones\n");
  // Unchanged on update: not re-checked (a zone removed from the host keeps the object valid).
  json old = o;
  old["spec"]["timeZone"] = "Mars/Olympus_Mons";
  o["spec"]["timeZone"] = "Mars/Olympus_Mons";
  cj_type().apply_defaults(old);
  CHECK(errors_of(o, &old).empty());
}

TEST_CASE("cronjob validation: policy, limits, name, job template") {
  json o = minimal();
  o["spec"]["concurrencyPolicy"] = "Sometimes";
  o["spec"]["startingDeadlineSeconds"] = -1;
  o["spec"]["successfulJobsHistoryLimit"] = -1;
  o["spec"]["failedJobsHistoryLimit"] = -2;
  const std::string e = errors_of(o);
  CHECK(e.find("spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: "
               "\"Allow\", \"Forbid\", \"Replace\"") != std::string::npos);
  CHECK(e.find("spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal "
               "to 0") != std::string::npos);
  CHECK(e.find("spec.successfulJobsHistoryLimit: Invalid value: -1") != std::string::npos);
  CHECK(e.find("spec.failedJobsHistoryLimit: Invalid value: -2") != std::string::npos);

  o = minimal();
  o["metadata"]["name"] = std::string(53, 'a');
  CHECK(errors_of(o) == "metadata.name: Invalid value: \"" + std::string(53, 'a') +
                            "\": must be no more than 52 characters\n");
  json old = o;
  cj_type().apply_defaults(old);
  CHECK(errors_of(o, &old).empty());  // only on create, as Kubernetes

  o = minimal();
  o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always";
  CHECK(errors_of(o) ==
        "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": "
        "supported values: \"OnFailure\", \"Never\"\n");
  o = minimal();
  o["spec"]["jobTemplate"]["spec"]["template"]["spec"].erase("restartPolicy");
  CHECK(errors_of(o).find("restartPolicy: Unsupported value: \"Always\"") != std::string::npos);
  o = minimal();
  o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].erase("image");
  CHECK(errors_of(o) ==
        "spec.jobTemplate.spec.template.spec.containers[0].image: Required value\n");
  o = minimal();
  o["spec"]["jobTemplate"]["spec"]["selector"] = {{"matchLabels", {{"a", "b"}}}};
  o["spec"]["jobTemplate"]["spec"]["backoffLimit"] = -1;
  const std::string e2 = errors_of(o);
  CHECK(e2.find("spec.jobTemplate.spec.selector: Invalid value: ") != std::string::npos);
  CHECK(e2.find("`selector` will be auto-generated") != std::string::npos);
  CHECK(e2.find("spec.jobTemplate.spec.backoffLimit: Invalid value: -1") != std::string::npos);

  // A template field of the wrong type is reported with its path, not dropped by defaulting
  // (the API stored such a CronJob with `affinity: {}`; a Job with it gets a 400).
  o = minimal();
  o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["affinity"] = "x";
  CHECK(errors_of(o) ==
        "spec.jobTemplate.spec.template.spec.affinity: Invalid value: \"x\": "
        "expected object, got string\n");
}

TEST_CASE("cronjob table: kubectl 1.32 columns and cells") {
  const ResourceType& t = cj_type();
  std::vector<std::string> names;
  for (const auto& c : t.columns) names.push_back(c.name + (c.priority ? "*" : ""));
  CHECK(names == std::vector<std::string>{"Name", "Schedule", "Timezone", "Suspend", "Active",
                                          "Last Schedule", "Age", "Containers*", "Images*",
                                          "Selector*"});
  CHECK(t.row_cells(fixture("cronjob"), kNow) ==
        json::array({"backup", "*/15 1-5 * * MON-FRI", "Etc/UTC", "False", 1, "5m", "20m", "dump",
                     "busybox:1.36", "<none>"}));
  json m = minimal();
  m["metadata"]["creationTimestamp"] = "2026-11-25T10:00:00Z";
  CHECK(t.row_cells(m, kNow) == json::array({"hello", "*/1 * * * *", "<none>", "<unset>", 0,
                                             "<none>", "20m", "c", "busybox", "<none>"}));
  CHECK(t.short_names == std::vector<std::string>{"cj"});
  CHECK(t.reset_status_on_create);
}

}  // namespace
}  // namespace skiff::proto
