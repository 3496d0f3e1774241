// `describe job` in kubectl 1.32's layout.
#include "cli/job.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

namespace skiff::cli {
namespace {

json make_job() {
  return json::parse(R"({
    "apiVersion":"batch/v1","kind":"Job",
    "metadata":{"name":"pi","namespace":"default","uid":"u1",
                "labels":{"batch.kubernetes.io/controller-uid":"u1",
                          "batch.kubernetes.io/job-name":"pi","controller-uid":"u1",
                          "job-name":"pi"},
                "ownerReferences":[{"apiVersion":"batch/v1","kind":"CronJob","name":"nightly",
                                    "uid":"c1","controller":true}]},
    "spec":{"parallelism":2,"completions":5,"completionMode":"NonIndexed","suspend":false,
            "backoffLimit":6,
            "selector":{"matchLabels":{"batch.kubernetes.io/controller-uid":"u1"}},
            "template":{"metadata":{"labels":{"batch.kubernetes.io/controller-uid":"u1",
                                              "job-name":"pi"}},
                        "spec":{"restartPolicy":"Never",
                                "containers":[{"name":"pi","image":"perl:5.34.0",
                                               "command":["perl","-e","print 1"]}]}}},
    "status":{"startTime":"2026-11-25T10:00:00Z","completionTime":"2026-11-25T10:01:05Z",
              "succeeded":5,"ready":0,"terminating":0,"uncountedTerminatedPods":{}}})");
}

TEST_CASE("describe job: kubectl 1.32 layout") {
  setenv("TZ", "UTC", 1);
  tzset();
  DescribeWriter w;
  describe_job(w, make_job());
  CHECK(w.flush() ==
        "Name:             pi\n"
        "Namespace:        default\n"
        "Selector:         batch.kubernetes.io/controller-uid=u1\n"
        "Labels:           batch.kubernetes.io/controller-uid=u1\n"
        "                  batch.kubernetes.io/job-name=pi\n"
        "                  controller-uid=u1\n"
        "                  job-name=pi\n"
        "Annotations:      <none>\n"
        "Controlled By:    CronJob/nightly\n"
        "Parallelism:      2\n"
        "Completions:      5\n"
        "Completion Mode:  NonIndexed\n"
        "Suspend:          false\n"
        "Backoff Limit:    6\n"
        "Start Time:       Wed, 25 Nov 2026 10:00:00 +0000\n"
        "Completed At:     Wed, 25 Nov 2026 10:01:05 +0000\n"
        "Duration:         65s\n"
        "Pods Statuses:    0 Active (0 Ready) / 5 Succeeded / 0 Failed\n"
        "Pod Template:\n"
        "  Labels:  batch.kubernetes.io/controller-uid=u1\n"
        "           job-name=pi\n"
        "  Containers:\n"
        "   pi:\n"
        "    Image:      perl:5.34.0\n"
        "    Port:       <none>\n"
        "    Host Port:  <none>\n"
        "    Command:\n"
        "      perl\n"
        "      -e\n"
        "      print 1\n"
        "    Environment:   <none>\n"
        "    Mounts:        <none>\n"
        "  Volumes:         <none>\n"
        "  Node-Selectors:  <none>\n"
        "  Tolerations:     <none>\n");
}

TEST_CASE("describe job: work queue, running, Indexed, deadline, TTL") {
  setenv("TZ", "UTC", 1);
  tzset();
  json j = make_job();
  j["spec"].erase("completions");
  j["spec"]["activeDeadlineSeconds"] = 600;
  j["spec"]["ttlSecondsAfterFinished"] = 100;
  j["status"] = {{"startTime", "2026-11-25T10:00:00Z"}, {"active", 2}, {"ready", 1}, {"failed", 1}};
  DescribeWriter w;
  describe_job(w, j);
  std::string text = w.flush();
  CHECK(text.find("Completions:                 <unset>\n") != std::string::npos);
  CHECK(text.find("TTL Seconds After Finished:  100\n") != std::string::npos);
  CHECK(text.find("Active Deadline Seconds:     600s\n") != std::string::npos);
  CHECK(text.find("Pods Statuses:               2 Active (1 Ready) / 0 Succeeded / 1 Failed\n") !=
        std::string::npos);
  CHECK(text.find("Completed At") == std::string::npos);
  CHECK(text.find("Duration") == std::string::npos);

  j["status"].erase("ready");
  j["spec"]["completionMode"] = "Indexed";
  j["spec"]["completions"] = 100;
  j["status"]["completedIndexes"] = "1,3-5";
  DescribeWriter w2;
  describe_job(w2, j);
  text = w2.flush();
  CHECK(text.find("2 Active / 0 Succeeded / 1 Failed\n") != std::string::npos);
  CHECK(text.find("Completed Indexes:           1,3-5\n") != std::string::npos);
}

TEST_CASE("completed indexes are capped as kubectl does") {
  CHECK(cap_indexes("") == "<none>");
  CHECK(cap_indexes("0-3") == "0-3");
  CHECK(cap_indexes("1,3,5,7,9", 4) == "1,3,5,...");
  CHECK(cap_indexes("1,3,5,7,9", 3) == "1,3,...");
  CHECK(cap_indexes("1,3", 50) == "1,3");
}

}  // namespace
}  // namespace skiff::cli
