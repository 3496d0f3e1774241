// CronJobController::sync on a fake client and a fake clock: scheduled creation, idempotence,
// completion, concurrency policies, missed times, starting deadline, history, suspend, time
// zones (DST), and the events Kubernetes gives.
#include "controllers/cronjob/cronjob.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "test/testing.h"

namespace skiff::controllers::cronjob {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Clock::time_point at(const char* s) { return *proto::parse_rfc3339(s); }

struct Event {
  bool warning;
  std::string reason, message;
};

class FakeEvents : public EventSink {
 public:
  void event(const json&, const std::string&, bool warning, const std::string& reason,
             const std::string& message) override {
    events.push_back({warning, reason, message});
  }
  bool has(const std::string& reason) const {
    for (const auto& e : events)
      if (e.reason == reason) return true;
    return false;
  }
  std::string message(const std::string& reason) const {
    for (const auto& e : events)
      if (e.reason == reason) return e.message;
    return "";
  }
  std::vector<Event> events;
};

class FakeClient : public CronJobClient {
 public:
  std::optional<CronJob> get_cronjob(const std::string& ns, const std::string& name) override {
    auto it = cronjobs.find(ns + "/" + name);
    if (it == cronjobs.end()) return std::nullopt;
    return it->second;
  }
  Result<CronJob> get_cronjob_live(const std::string& ns, const std::string& name) override {
    auto c = get_cronjob(ns, name);
    if (!c) return Status::not_found("cronjobs \"" + name + "\" not found");
    return *c;
  }
  std::vector<JobInfo> list_jobs(const std::string& ns) override {
    std::vector<JobInfo> out;
    if (hide_jobs) return out;
    for (const auto& [k, j] : jobs)
      if (job_info(j).namespace_ == ns) out.push_back(job_info(j));
    return out;
  }
  Result<JobInfo> get_job_live(const std::string& ns, const std::string& name) override {
    auto it = jobs.find(ns + "/" + name);
    if (it == jobs.end()) return Status::not_found("jobs.batch \"" + name + "\" not found");
    return job_info(it->second);
  }
  Result<JobInfo> create_job(const std::string& ns, const json& job) override {
    const std::string key = ns + "/" + job["metadata"]["name"].get<std::string>();
    if (jobs.count(key)) return Status::already_exists("jobs.batch already exists");
    json j = job;
    j["metadata"]["uid"] = "job-uid-" + std::to_string(++uids);
    j["metadata"]["resourceVersion"] = "1";
    jobs[key] = j;
    created.push_back(j);
    return job_info(j);
  }
  Status delete_job(const std::string& ns, const std::string& name) override {
    deleted.push_back(name);
    if (!jobs.erase(ns + "/" + name)) return Status::not_found("jobs.batch not found");
    return Status::ok();
  }
  Result<CronJob> update_status(const CronJob& cj) override {
    ++status_writes;
    cronjobs[cj.metadata.namespace_ + "/" + cj.metadata.name] = cj;
    return cj;
  }

  // A Job controlled by `cj` named `name`; `finished` "Complete"/"Failed"/"".
  void add_job(const CronJob& cj, const std::string& name, const std::string& finished,
               const char* start = nullptr, const char* completion = nullptr) {
    json j = {{"metadata",
               {{"name", name},
                {"namespace", cj.metadata.namespace_},
                {"uid", "uid-" + name},
                {"ownerReferences", json::array({{{"apiVersion", "batch/v1"},
                                                  {"kind", "CronJob"},
                                                  {"name", cj.metadata.name},
                                                  {"uid", cj.metadata.uid},
                                                  {"controller", true}}})}}},
              {"status", json::object()}};
    if (!finished.empty())
      j["status"]["conditions"] = json::array({{{"type", finished}, {"status", "True"}}});
    if (start) j["status"]["startTime"] = start;
    if (completion) j["status"]["completionTime"] = completion;
    jobs[cj.metadata.namespace_ + "/" + name] = j;
  }

  std::map<std::string, CronJob> cronjobs;
  std::map<std::string, json> jobs;
  std::vector<json> created;
  std::vector<std::string> deleted;
  int status_writes = 0;
  int uids = 0;
  bool hide_jobs = false;  // a cache that has not seen the Jobs yet
};

CronJob make_cj(const std::string& schedule, const char* created = "2026-11-25T10:00:30Z") {
  CronJob cj;
  cj.metadata.name = "hello";
  cj.metadata.namespace_ = "default";
  cj.metadata.uid = "cj-uid";
  cj.metadata.creation_timestamp = proto::Time::at(at(created));
  cj.spec.schedule = schedule;
  cj.spec.job_template.metadata.labels = {{"app", "hello"}};
  cj.spec.job_template.metadata.annotations = {{"note", "x"}};
  cj.spec.job_template.spec = json::parse(
      R"({"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
          "containers": [{"name": "c", "image": "busybox"}]}}})");
  proto::default_cronjob(cj);
  return cj;
}

struct Harness {
  FakeClient client;
  FakeEvents events;
  Clock::time_point now = at("2026-11-25T10:00:40Z");
  CronJobController ctl;
  explicit Harness(std::shared_ptr<const cron::TimeZone> zone = cron::TimeZone::utc())
      : ctl(CronJobOptions{.now = [this] { return now; }, .local_zone = std::move(zone)}) {
    ctl.set_clients(&client, &events);
  }
  void put(const CronJob& cj) { client.cronjobs["default/" + cj.metadata.name] = cj; }
  CronJob cj() { return client.cronjobs.at("default/hello"); }
  std::optional<std::chrono::nanoseconds> sync() {
    std::optional<std::chrono::nanoseconds> after;
    Status st = ctl.sync("default/hello", &after);
    INFO(st.to_string());
    REQUIRE(st.is_ok());
    return after;
  }
};

bool have_tzdata() {
  return access("/usr/share/zoneinfo/America/New_York", R_OK) == 0 || std::getenv("ZONEINFO");
}

TEST_CASE("cronjob: creates the Job at its time, named by minutes since the epoch") {
  Harness h;
  h.put(make_cj("*/5 * * * *"));
  // Before the first time: nothing, and a wake-up 100 ms after 10:05:00.
  auto after = h.sync();
  CHECK(h.client.created.empty());
  REQUIRE(after);
  CHECK(*after == at("2026-11-25T10:05:00Z") + milliseconds(100) - h.now);

  h.now = at("2026-11-25T10:05:00Z") + milliseconds(100);
  after = h.sync();
  REQUIRE(h.client.created.size() == 1);
  const json& job = h.client.created[0];
  const int64_t minutes =
      std::chrono::duration_cast<seconds>(at("2026-11-25T10:05:00Z").time_since_epoch()).count() /
      60;
  CHECK(job["metadata"]["name"] == "hello-" + std::to_string(minutes));
  CHECK(job["metadata"]["namespace"] == "default");
  CHECK(job["metadata"]["labels"] == json({{"app", "hello"}}));
  CHECK(job["metadata"]["annotations"] ==
        json({{"note", "x"}, {kScheduledTimestampAnnotation, "2026-11-25T10:05:00Z"}}));
  CHECK(job["metadata"]["ownerReferences"] == json::array({{{"apiVersion", "batch/v1"},
                                                            {"kind", "CronJob"},
                                                            {"name", "hello"},
                                                            {"uid", "cj-uid"},
                                                            {"controller", true},
                                                            {"blockOwnerDeletion", true}}}));
  CHECK(job["spec"]["backoffLimit"] == 1);
  CHECK(job["spec"]["template"]["spec"]["restartPolicy"] == "Never");
  CHECK(h.events.message("SuccessfulCreate") == "Created job hello-" + std::to_string(minutes));
  CronJob cj = h.cj();
  REQUIRE(cj.status.active.size() == 1);
  CHECK(cj.status.active[0].kind == "Job");
  CHECK(cj.status.active[0].api_version == "batch/v1");
  CHECK(cj.status.active[0].name == job["metadata"]["name"]);
  CHECK(cj.status.active[0].uid == "job-uid-1");
  REQUIRE(cj.status.last_schedule_time);
  CHECK(cj.status.last_schedule_time->value == at("2026-11-25T10:05:00Z"));
  REQUIRE(after);
  CHECK(*after == at("2026-11-25T10:10:00Z") + milliseconds(100) - h.now);

  // The same time again (a re-sync, a Job event): no second Job.
  h.now += seconds(20);
  h.sync();
  CHECK(h.client.created.size() == 1);
}

TEST_CASE("cronjob: @every counts from the creation time, then from the last run") {
  Harness h;
  h.put(make_cj("@every 90s"));  // created 10:00:30: first at 10:02:00
  auto after = h.sync();
  CHECK(h.client.created.empty());
  REQUIRE(after);
  CHECK(*after == at("2026-11-25T10:02:00Z") + milliseconds(100) - h.now);
  h.now = at("2026-11-25T10:02:00Z") + milliseconds(100);
  after = h.sync();
  REQUIRE(h.client.created.size() == 1);
  CHECK(h.client.created[0]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-11-25T10:02:00Z");
  REQUIRE(after);
  CHECK(*after == at("2026-11-25T10:03:30Z") + milliseconds(100) - h.now);
  // Down for 10 minutes: one run, for the most recent missed time (10:02:00 + 7 x 90 s).
  h.now = at("2026-11-25T10:12:40Z");
  h.sync();
  REQUIRE(h.client.created.size() == 2);
  CHECK(h.client.created[1]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-11-25T10:12:30Z");
}

TEST_CASE("cronjob: a finished Job leaves the active list; success time recorded") {
  Harness h;
  CronJob cj = make_cj("*/5 * * * *");
  cj.status.last_schedule_time = proto::Time::at(at("2026-11-25T10:05:00Z"));
  cj.status.active.push_back({"Job", "default", "hello-1", "uid-hello-1", "batch/v1", "", ""});
  h.put(cj);
  h.client.add_job(cj, "hello-1", "Complete", "2026-11-25T10:05:01Z", "2026-11-25T10:06:00Z");
  h.now = at("2026-11-25T10:07:00Z");
  h.sync();
  CHECK(h.events.message("SawCompletedJob") == "Saw completed job: hello-1, condition: Complete");
  cj = h.cj();
  CHECK(cj.status.active.empty());
  // The completion counts on the next pass (Kubernetes' else-if order), which a status write
  // triggers through the informer.
  h.sync();
  cj = h.cj();
  REQUIRE(cj.status.last_successful_time);
  CHECK(cj.status.last_successful_time->value == at("2026-11-25T10:06:00Z"));
  CHECK(h.client.created.empty());
}

TEST_CASE("cronjob: Forbid skips while a Job runs; Replace deletes it first; Allow runs both") {
  for (const char* policy : {"Forbid", "Replace", "Allow"}) {
    INFO(policy);
    Harness h;
    CronJob cj = make_cj("*/5 * * * *");
    cj.spec.concurrency_policy = policy;
    cj.status.last_schedule_time = proto::Time::at(at("2026-11-25T10:05:00Z"));
    cj.status.active.push_back({"Job", "default", "hello-1", "uid-hello-1", "batch/v1", "", ""});
    h.put(cj);
    h.client.add_job(cj, "hello-1", "");
    h.now = at("2026-11-25T10:10:00Z") + milliseconds(100);
    auto after = h.sync();
    cj = h.cj();
    if (std::string(policy) == "Forbid") {
      CHECK(h.client.created.empty());
      CHECK(h.events.message("JobAlreadyActive") ==
            "Not starting job because prior execution is running and concurrency policy is "
            "Forbid");
      REQUIRE(after);
      CHECK(*after == at("2026-11-25T10:15:00Z") + milliseconds(100) - h.now);
      CHECK(cj.status.active.size() == 1);
    } else if (std::string(policy) == "Replace") {
      CHECK(h.client.deleted == std::vector<std::string>{"hello-1"});
      CHECK(h.events.message("SuccessfulDelete") == "Deleted job hello-1");
      REQUIRE(h.client.created.size() == 1);
      REQUIRE(cj.status.active.size() == 1);
      CHECK(cj.status.active[0].uid == "job-uid-1");
    } else {
      CHECK(h.client.deleted.empty());
      CHECK(h.client.created.size() == 1);
      CHECK(cj.status.active.size() == 2);
    }
  }
}

TEST_CASE("cronjob: after downtime only the most recent missed time runs") {
  Harness h;
  CronJob cj = make_cj("*/5 * * * *");
  cj.status.last_schedule_time = proto::Time::at(at("2026-11-25T10:00:00Z"));
  h.put(cj);
  h.now = at("2026-11-25T12:07:00Z");
  auto after = h.sync();
  REQUIRE(h.client.created.size() == 1);
  CHECK(h.client.created[0]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-11-25T12:05:00Z");
  CHECK_FALSE(h.events.has("TooManyMissedTimes"));
  REQUIRE(after);
  CHECK(*after == at("2026-11-25T12:10:00Z") + milliseconds(100) - h.now);
  h.sync();
  CHECK(h.client.created.size() == 1);
}

TEST_CASE("cronjob: more than 100 missed times are reported") {
  Harness h;
  CronJob cj = make_cj("* * * * *");
  cj.status.last_schedule_time = proto::Time::at(at("2026-11-25T07:00:00Z"));
  h.put(cj);
  h.now = at("2026-11-25T10:00:30Z");
  h.sync();
  CHECK(h.events.message("TooManyMissedTimes") ==
        "too many missed start times: 180. Set or decrease .spec.startingDeadlineSeconds or "
        "check clock skew");
  REQUIRE(h.client.created.size() == 1);
  CHECK(h.client.created[0]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-11-25T10:00:00Z");
}

TEST_CASE("cronjob: startingDeadlineSeconds skips a time missed beyond it") {
  Harness h;
  CronJob cj = make_cj("*/5 * * * *");
  cj.spec.starting_deadline_seconds = 60;
  cj.status.last_schedule_time = proto::Time::at(at("2026-11-25T10:00:00Z"));
  h.put(cj);
  h.now = at("2026-11-25T10:07:00Z");  // 10:05 is 120 s late
  auto after = h.sync();
  CHECK(h.client.created.empty());
  CHECK(h.events.message("MissSchedule") ==
        "Missed scheduled time to start a job: Wed, 25 Nov 2026 10:05:00 +0000");
  REQUIRE(after);
  CHECK(*after == at("2026-11-25T10:10:00Z") + milliseconds(100) - h.now);
  // Within the deadline it runs late.
  h.now = at("2026-11-25T10:10:50Z");
  h.sync();
  REQUIRE(h.client.created.size() == 1);
  CHECK(h.client.created[0]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-11-25T10:10:00Z");
}

TEST_CASE("cronjob: history limits delete the oldest finished Jobs") {
  Harness h;
  CronJob cj = make_cj("0 0 1 1 *");  // far away: only cleanup happens
  cj.spec.successful_jobs_history_limit = 2;
  cj.spec.failed_jobs_history_limit = 1;
  h.put(cj);
  h.client.add_job(cj, "s1", "Complete", "2026-11-25T10:01:00Z", "2026-11-25T10:02:00Z");
  h.client.add_job(cj, "s2", "Complete", "2026-11-25T10:03:00Z", "2026-11-25T10:04:00Z");
  h.client.add_job(cj, "s0", "Complete", "2026-11-25T09:00:00Z", "2026-11-25T09:01:00Z");
  h.client.add_job(cj, "s3", "Complete", nullptr, "2026-11-25T10:04:00Z");
  h.client.add_job(cj, "f1", "Failed", "2026-11-25T10:00:00Z");
  h.client.add_job(cj, "f2", "Failed", "2026-11-25T10:05:00Z");
  h.client.add_job(cj, "running", "", "2026-11-25T08:00:00Z");
  h.sync();
  std::vector<std::string> deleted = h.client.deleted;
  std::sort(deleted.begin(), deleted.end());
  CHECK(deleted == std::vector<std::string>{"f1", "s0", "s1"});
  CHECK(h.events.has("SuccessfulDelete"));
  // A Job of another CronJob is never touched.
  Harness h2;
  CronJob other = make_cj("0 0 1 1 *");
  other.metadata.name = "other";
  h2.put(cj);
  h2.client.add_job(other, "o1", "Complete", "2026-11-25T10:01:00Z");
  h2.client.add_job(other, "o2", "Complete", "2026-11-25T10:01:00Z");
  h2.client.add_job(other, "o3", "Complete", "2026-11-25T10:01:00Z");
  h2.sync();
  CHECK(h2.client.deleted.empty());
}

TEST_CASE("cronjob: suspend creates nothing; an unknown zone and a bad schedule are events") {
  Harness h;
  CronJob cj = make_cj("*/5 * * * *");
  cj.spec.suspend = true;
  h.put(cj);
  h.now = at("2026-11-25T10:05:01Z");
  CHECK_FALSE(h.sync());
  CHECK(h.client.created.empty());

  cj.spec.suspend = false;
  cj.spec.time_zone = "Mars/Olympus";
  h.put(cj);
  CHECK_FALSE(h.sync());
  CHECK(h.events.message("UnknownTimeZone") ==
        "invalid timeZone: \"Mars/Olympus\": unknown time zone Mars/Olympus");

  cj.spec.time_zone.reset();
  cj.spec.schedule = "61 * * * *";
  h.put(cj);
  CHECK_FALSE(h.sync());
  CHECK(h.events.message("UnparseableSchedule") ==
        "unparseable schedule: \"61 * * * *\" : end of range (61) above maximum (59): 61");

  cj.spec.schedule = "0 0 30 2 *";
  h.put(cj);
  CHECK_FALSE(h.sync());
  CHECK(h.events.message("InvalidSchedule") ==
        "invalid schedule: 0 0 30 2 * : time difference between two schedules is less than 1 "
        "second");
  CHECK(h.client.created.empty());
}

TEST_CASE("cronjob: active Jobs that vanished or were never ours") {
  Harness h;
  CronJob cj = make_cj("0 0 1 1 *");
  cj.status.active.push_back({"Job", "default", "gone", "uid-gone", "batch/v1", "", ""});
  h.put(cj);
  h.client.add_job(cj, "stray", "");
  h.sync();
  CHECK(h.events.message("MissingJob") == "Active job went missing: gone");
  CHECK(h.events.message("UnexpectedJob") ==
        "Saw a job that the controller did not create or forgot: stray");
  CHECK(h.cj().status.active.empty());
}

TEST_CASE("cronjob: a Job already created (crash before the status write) is adopted") {
  Harness h;
  CronJob cj = make_cj("*/5 * * * *");
  h.put(cj);
  h.now = at("2026-11-25T10:05:00Z") + milliseconds(100);
  // Created, status lost; the informer has not shown us the Job yet.
  auto req = job_from_template(cj, at("2026-11-25T10:05:00Z"), *cron::TimeZone::utc());
  REQUIRE(req.is_ok());
  REQUIRE(h.client.create_job("default", *req).is_ok());
  h.client.created.clear();
  // list_jobs sees nothing, create says AlreadyExists, the live GET finds it.
  h.client.hide_jobs = true;
  h.sync();
  CHECK(h.client.created.empty());
  REQUIRE(h.cj().status.active.size() == 1);
  CHECK(h.cj().status.active[0].uid == "job-uid-1");
}

TEST_CASE("cronjob: time zones, DST (America/New_York) and the scheduled-timestamp annotation") {
  if (!have_tzdata()) {
    skiff::testing::skip("tzdata is not installed (/usr/share/zoneinfo): apt-get install tzdata");
    return;
  }
  Harness h;  // controller zone UTC; the CronJob's own zone wins
  CronJob cj = make_cj("30 2 * * *", "2026-03-01T00:00:00Z");
  cj.spec.time_zone = "America/New_York";
  cj.status.last_schedule_time = proto::Time::at(at("2026-03-07T07:30:00Z"));  // 02:30 EST
  h.put(cj);
  // 2026-03-08 (spring forward): 02:30 does not exist and does not run (robfig/cron).
  h.now = at("2026-03-08T12:00:00Z");
  auto after = h.sync();
  CHECK(h.client.created.empty());
  REQUIRE(after);
  CHECK(*after == at("2026-03-09T06:30:00Z") + milliseconds(100) - h.now);
  h.now = at("2026-03-09T06:30:00Z") + milliseconds(100);
  h.sync();
  REQUIRE(h.client.created.size() == 1);
  CHECK(h.client.created[0]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-03-09T02:30:00-04:00");
  // Without spec.timeZone the controller's own zone decides.
  auto ny = cron::TimeZone::load("America/New_York");
  REQUIRE(ny.is_ok());
  Harness local(*ny);
  CronJob plain = make_cj("0 9 * * *", "2026-07-01T00:00:00Z");
  local.put(plain);
  local.now = at("2026-07-01T12:00:00Z");
  auto a2 = local.sync();
  REQUIRE(a2);
  CHECK(*a2 == at("2026-07-01T13:00:00Z") + milliseconds(100) - local.now);
  local.now = at("2026-07-01T13:00:01Z");
  local.sync();
  REQUIRE(local.client.created.size() == 1);
  // Kubernetes formats the annotation in spec.timeZone, UTC when unset.
  CHECK(local.client.created[0]["metadata"]["annotations"][kScheduledTimestampAnnotation] ==
        "2026-07-01T13:00:00Z");
}

TEST_CASE("cronjob: handlers enqueue the owning CronJob only") {
  Harness h;
  CronJob cj = make_cj("*/5 * * * *");
  h.put(cj);
  h.client.add_job(cj, "j1", "");
  h.ctl.on_job(h.client.jobs.at("default/j1"));
  CHECK(h.ctl.queue().len() == 1);
  auto k = h.ctl.queue().get();
  REQUIRE(k);
  CHECK(*k == "default/hello");
  h.ctl.queue().done(*k);
  json foreign = h.client.jobs.at("default/j1");
  foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else";
  h.ctl.on_job(foreign);
  CHECK(h.ctl.queue().len() == 0);
}

}  // namespace
}  // namespace skiff::controllers::cronjob
