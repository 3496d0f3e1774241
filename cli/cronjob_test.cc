#include "cli/cronjob.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>

#include "cli/cli.h"

namespace skiff::cli {
namespace {

json cronjob() {
  return json::parse(R"({"apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "backup", "namespace": "prod", "uid": "cj-uid",
                 "labels": {"app": "backup"}, "annotations": {"team": "storage"}},
    "spec": {"schedule": "*/15 1-5 * * MON-FRI", "concurrencyPolicy": "Forbid", "suspend": false,
             "startingDeadlineSeconds": 200, "successfulJobsHistoryLimit": 3,
             "failedJobsHistoryLimit": 1,
             "jobTemplate": {"metadata": {"labels": {"app": "backup", "tier": "db"},
                                          "annotations": {"owner": "ops"}},
                             "spec": {"backoffLimit": 2, "parallelism": 1,
                                      "template": {"metadata": {"labels": {"app": "backup"}},
                                                   "spec": {"restartPolicy": "OnFailure",
                                                            "containers": [{"name": "dump",
                                                                            "image": "busybox:1.36",
                                                                            "command": ["sh", "-c", "date"]}]}}}}},
    "status": {"active": [{"kind": "Job", "name": "backup-29400615"},
                          {"kind": "Job", "name": "backup-29400630"}],
               "lastScheduleTime": "2026-11-25T10:15:00Z"}})");
}

int run_args(std::vector<const char*> args, std::string& err) {
  std::istringstream in;
  std::ostringstream out, errs;
  int rc = run(static_cast<int>(args.size()), const_cast<char**>(args.data()), in, out, errs);
  err = errs.str();
  return rc;
}

TEST_CASE("create job --from=cronjob: kubectl's Job") {
  json job = job_from_cronjob("manual-1", "prod", cronjob());
  CHECK(job == json::parse(R"({"apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"name": "manual-1", "namespace": "prod",
                 "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "owner": "ops"},
                 "labels": {"app": "backup", "tier": "db"},
                 "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                      "name": "backup", "uid": "cj-uid", "controller": true}]},
    "spec": {"backoffLimit": 2, "parallelism": 1,
             "template": {"metadata": {"labels": {"app": "backup"}},
                          "spec": {"restartPolicy": "OnFailure",
                                   "containers": [{"name": "dump", "image": "busybox:1.36",
                                                   "command": ["sh", "-c", "date"]}]}}}})"));
  // A template without labels or annotations: only the instantiate annotation.
  json bare = cronjob();
  bare["spec"]["jobTemplate"].erase("metadata");
  json j2 = job_from_cronjob("m", "prod", bare);
  CHECK(j2["metadata"]["annotations"] == json({{"cronjob.kubernetes.io/instantiate", "manual"}}));
  CHECK_FALSE(j2["metadata"].contains("labels"));
}

TEST_CASE("create job --image: kubectl's Job") {
  json job = job_from_image("pi", "default", "perl", {"perl", "-e", "print 1"});
  CHECK(job["spec"]["template"]["spec"]["restartPolicy"] == "Never");
  CHECK(job["spec"]["template"]["spec"]["containers"][0] ==
        json::parse(R"({"name": "pi", "image": "perl", "resources": {},
                        "command": ["perl", "-e", "print 1"]})"));
}

TEST_CASE("create job: usage errors in kubectl's words") {
  std::string err;
  const char* s = "https://127.0.0.1:1";  // connect() succeeds; no request is sent below
  CHECK(run_args({"skiffctl", "--server", s, "create", "job"}, err) == 1);
  CHECK(err == "error: exactly one NAME is required, got 0\n");
  CHECK(run_args({"skiffctl", "--server", s, "create", "job", "x"}, err) == 1);
  CHECK(err == "error: either --image or --from must be specified\n");
  CHECK(run_args({"skiffctl", "--server", s, "create", "job", "x", "--from", "backup"}, err) == 1);
  CHECK(err == "error: from must be of the form <resource>/<name>\n");
  CHECK(run_args({"skiffctl", "--server", s, "create", "job", "x", "--from=deploy/web"}, err) == 1);
  CHECK(err.find("error: from must be an existing cronjob") == 0);
  CHECK(run_args({"skiffctl", "--server", s, "create", "job", "x", "--from=frob/web"}, err) == 1);
  CHECK(err.find("frob") != std::string::npos);
}

TEST_CASE("describe cronjob: kubectl 1.32 layout") {
  const char* saved = std::getenv("TZ");
  std::string saved_tz = saved ? saved : "";
  setenv("TZ", "UTC", 1);
  tzset();
  DescribeWriter w;
  describe_cronjob(w, cronjob());
  const std::string got = w.flush();
  if (saved)
    setenv("TZ", saved_tz.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
  // Go's tabwriter aligns the pod template's last lines with the two after it (consecutive
  // cells), as kubectl's own output shows.
  const std::string want =
      "Name:                          backup\n"
      "Namespace:                     prod\n"
      "Labels:                        app=backup\n"
      "Annotations:                   team: storage\n"
      "Schedule:                      */15 1-5 * * MON-FRI\n"
      "Concurrency Policy:            Forbid\n"
      "Suspend:                       False\n"
      "Successful Job History Limit:  3\n"
      "Failed Job History Limit:      1\n"
      "Starting Deadline Seconds:     200s\n"
      "Selector:                      <unset>\n"
      "Parallelism:                   1\n"
      "Completions:                   <unset>\n"
      "Pod Template:\n"
      "  Labels:  app=backup\n"
      "  Containers:\n"
      "   dump:\n"
      "    Image:      busybox:1.36\n"
      "    Port:       <none>\n"
      "    Host Port:  <none>\n"
      "    Command:\n"
      "      sh\n"
      "      -c\n"
      "      date\n"
      "    Environment:     <none>\n"
      "    Mounts:          <none>\n"
      "  Volumes:           <none>\n"
      "  Node-Selectors:    <none>\n"
      "  Tolerations:       <none>\n"
      "Last Schedule Time:  Wed, 25 Nov 2026 10:15:00 +0000\n"
      "Active Jobs:         backup-29400615, backup-29400630\n";
  CHECK(got == want);

  json unset = cronjob();
  unset["spec"].erase("suspend");
  unset["spec"].erase("startingDeadlineSeconds");
  unset["spec"].erase("successfulJobsHistoryLimit");
  unset["spec"]["jobTemplate"]["spec"]["selector"] = {{"matchLabels", {{"a", "b"}}}};
  unset["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] = 30;
  unset.erase("status");
  DescribeWriter w2;
  describe_cronjob(w2, unset);
  const std::string g2 = w2.flush();
  CHECK(g2.find("Suspend:                       <unset>\n") != std::string::npos);
  CHECK(g2.find("Successful Job History Limit:  <unset>\n") != std::string::npos);
  CHECK(g2.find("Starting Deadline Seconds:     <unset>\n") != std::string::npos);
  CHECK(g2.find("Selector:                      a=b\n") != std::string::npos);
  CHECK(g2.find("Active Deadline Seconds:       30s\n") != std::string::npos);
  CHECK(g2.find("Last Schedule Time:  <unset>\nActive Jobs:         <none>\n") !=
        std::string::npos);
}

}  // namespace
}  // namespace skiff::cli
