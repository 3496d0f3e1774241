#include "controllers/cronjob/cronjob.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/job.h"
#include "proto/time.h"

namespace skiff::controllers::cronjob {

namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

const proto::ResourceType& cj_type() { return resource_type<proto::cronjob_resource>(); }
const proto::ResourceType& job_type() { return resource_type<proto::job_resource>(); }

constexpr auto kNextScheduleDelta = std::chrono::milliseconds(100);

int64_t unix_seconds(Clock::time_point t) {
  return std::chrono::floor<seconds>(t.time_since_epoch()).count();
}

std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

std::optional<Clock::time_point> time_at(const json& j) {
  if (!j.is_string()) return std::nullopt;
  return proto::parse_rfc3339(j.get<std::string>());
}

CronJob decode_cj(const json& j) {
  proto::FieldErrors errs;
  return proto::decode<CronJob>(j, errs, proto::DecodeOptions{.report_unknown = false});
}

// RFC 3339 in the zone `z` ("2026-11-25T05:15:00-05:00", "Z" for a zero offset), as Go's
// time.RFC3339 layout prints it.
std::string rfc3339_in(Clock::time_point t, const cron::TimeZone& z) {
  const int64_t u = unix_seconds(t);
  const int32_t off = z.offset_at(u);
  const cron::Civil c = cron::civil_at(u, off);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d",
                        static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second);
  if (off == 0) {
    std::snprintf(buf + n, sizeof buf - n, "Z");
  } else {
    const int a = off < 0 ? -off : off;
    std::snprintf(buf + n, sizeof buf - n, "%c%02d:%02d", off < 0 ? '-' : '+', a / 3600,
                  a / 60 % 60);
  }
  return buf;
}

Clock::time_point earliest_time(const CronJob& cj) {
  if (cj.status.last_schedule_time) return cj.status.last_schedule_time->value;
  return cj.metadata.creation_timestamp.value_or(proto::Time{}).value;
}

bool in_active_list(const CronJob& cj, const std::string& uid) {
  return std::any_of(cj.status.active.begin(), cj.status.active.end(),
                     [&](const proto::ObjectReference& r) { return r.uid == uid; });
}

void delete_from_active_list(CronJob& cj, const std::string& uid) {
  auto& a = cj.status.active;
  a.erase(std::remove_if(a.begin(), a.end(),
                         [&](const proto::ObjectReference& r) { return r.uid == uid; }),
          a.end());
}

proto::ObjectReference job_ref(const JobInfo& j) {
  proto::ObjectReference r;
  r.kind = "Job";
  r.api_version = "batch/v1";
  r.namespace_ = j.namespace_;
  r.name = j.name;
  r.uid = j.uid;
  r.resource_version = j.resource_version;
  return r;
}

// The real client: informer caches and the API.
class ApiCronJobClient : public CronJobClient {
 public:
  ApiCronJobClient(client::Informer& cjs, client::Informer& jobs,
                   std::shared_ptr<client::ApiClient> api)
      : cjs_(cjs), jobs_(jobs), api_(std::move(api)) {}

  std::optional<CronJob> get_cronjob(const std::string& ns, const std::string& name) override {
    auto j = cjs_.get(key_of(ns, name));
    if (!j) return std::nullopt;
    return decode_cj(*j);
  }
  Result<CronJob> get_cronjob_live(const std::string& ns, const std::string& name) override {
    auto r = api_->get(cj_type(), ns, name);
    if (!r) return r.status().with_context("reading cron job " + ns + "/" + name);
    return decode_cj(*r);
  }
  std::vector<JobInfo> list_jobs(const std::string& ns) override {
    std::vector<JobInfo> out;
    for (const auto& j : jobs_.by_namespace(ns)) out.push_back(job_info(j));
    return out;
  }
  Result<JobInfo> get_job_live(const std::string& ns, const std::string& name) override {
    auto r = api_->get(job_type(), ns, name);
    if (!r) return r.status().with_context("reading job " + ns + "/" + name);
    return job_info(*r);
  }
  Result<JobInfo> create_job(const std::string& ns, const json& job) override {
    auto r = api_->create(job_type(), ns, job);
    if (!r)
      return r.status().with_context("creating job " + ns + "/" + str(at(job, "metadata", "name")));
    return job_info(*r);
  }
  Status delete_job(const std::string& ns, const std::string& name) override {
    auto st = api_->remove(job_type(), ns, name, "Background");
    return st ? st : st.with_context("deleting job " + ns + "/" + name);
  }
  Result<CronJob> update_status(const CronJob& cj) override {
    auto r = api_->update_status(cj_type(), proto::encode(cj));
    if (!r)
      return r.status().with_context("updating the status of cron job " + cj.metadata.namespace_ +
                                     "/" + cj.metadata.name);
    return decode_cj(*r);
  }

 private:
  client::Informer& cjs_;
  client::Informer& jobs_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

JobInfo job_info(const json& j) {
  JobInfo out;
  out.namespace_ = str(at(j, "metadata", "namespace"));
  out.name = str(at(j, "metadata", "name"));
  out.uid = str(at(j, "metadata", "uid"));
  out.resource_version = str(at(j, "metadata", "resourceVersion"));
  const json& owners = at(j, "metadata", "ownerReferences");
  if (owners.is_array())
    for (const auto& r : owners)
      if (at(r, "controller") == json(true)) {
        out.controller_kind = str(at(r, "kind"));
        out.controller_name = str(at(r, "name"));
        out.controller_uid = str(at(r, "uid"));
      }
  const json& conds = at(j, "status", "conditions");
  if (conds.is_array())
    for (const auto& c : conds) {
      const std::string type = str(at(c, "type"));
      if ((type == "Complete" || type == "Failed") && str(at(c, "status")) == "True")
        out.finished = type;
    }
  out.start_time = time_at(at(j, "status", "startTime"));
  out.completion_time = time_at(at(j, "status", "completionTime"));
  return out;
}

std::string job_name(const CronJob& cj, Clock::time_point scheduled) {
  return cj.metadata.name + "-" + std::to_string(unix_seconds(scheduled) / 60);
}

Result<json> job_from_template(const CronJob& cj, Clock::time_point scheduled,
                               const cron::TimeZone& zone) {
  const auto& tm = cj.spec.job_template.metadata;
  json meta = json::object();
  meta["name"] = job_name(cj, scheduled);
  meta["namespace"] = cj.metadata.namespace_;
  if (!tm.labels.empty()) meta["labels"] = tm.labels;
  json annotations = json::object();
  for (const auto& [k, v] : tm.annotations) annotations[k] = v;
  annotations[kScheduledTimestampAnnotation] = rfc3339_in(scheduled, zone);
  meta["annotations"] = annotations;
  meta["ownerReferences"] = json::array({{{"apiVersion", "batch/v1"},
                                          {"kind", "CronJob"},
                                          {"name", cj.metadata.name},
                                          {"uid", cj.metadata.uid},
                                          {"controller", true},
                                          {"blockOwnerDeletion", true}}});
  json job = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", meta}};
  job["spec"] = cj.spec.job_template.spec.is_object() ? cj.spec.job_template.spec : json::object();
  return job;
}

Result<MostRecent> most_recent_schedule_time(const CronJob& cj, Clock::time_point now,
                                             const cron::Schedule& s, const cron::TimeZone& zone,
                                             bool with_deadline) {
  Clock::time_point earliest = earliest_time(cj);
  if (with_deadline && cj.spec.starting_deadline_seconds) {
    // The controller never schedules anything before this point.
    const auto deadline = now - seconds(*cj.spec.starting_deadline_seconds);
    if (deadline > earliest) earliest = deadline;
  }
  const Status never =
      Status::invalid("time difference between two schedules is less than 1 second");
  const auto t1 = s.next(earliest, zone);
  if (!t1) return never;
  if (now < *t1) return MostRecent{};
  const auto t2 = s.next(*t1, zone);
  if (!t2 || now < *t2) return MostRecent{t1, 1};
  // Count the missed times roughly (Kubernetes' approximation: how many t2-t1 intervals fit
  // since t1), then walk the schedule from just before the last of them.
  const int64_t between = std::chrono::round<seconds>(*t2 - *t1).count();
  if (between < 1) return never;
  const int64_t elapsed = std::chrono::duration_cast<seconds>(now - *t1).count();
  MostRecent out;
  out.missed = elapsed / between + 1;
  const auto potential = *t1 + seconds((out.missed - 2) * between);
  for (auto t = s.next(potential, zone); t && *t <= now; t = s.next(*t, zone)) out.time = t;
  return out;
}

std::chrono::nanoseconds next_schedule_delay(const CronJob& cj, Clock::time_point now,
                                             const cron::Schedule& s, const cron::TimeZone& zone) {
  auto r = most_recent_schedule_time(cj, now, s, zone, false);
  Clock::time_point base = now;  // on error, aim for the next slot from now
  if (r.is_ok()) base = r->time ? *r->time : earliest_time(cj);
  const auto next = s.next(base, zone);
  if (!next) return std::chrono::hours(24);  // never again; a spec change re-queues it
  return *next + kNextScheduleDelta - now;
}

std::string rfc1123z_utc(Clock::time_point t) {
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const cron::Civil c = cron::civil_at(unix_seconds(t), 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04lld %02d:%02d:%02d +0000", kDays[c.weekday], c.day,
                kMonths[c.month - 1], static_cast<long long>(c.year), c.hour, c.minute, c.second);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// One sync of one CronJob (cronjob_controllerv2.go sync/syncCronJob/cleanupFinishedJobs).

struct CronJobController::Sync {
  CronJobController& c;
  CronJob cj;
  std::vector<JobInfo> jobs;
  bool update_status = false;
  std::optional<nanoseconds> requeue;

  void event(bool warning, const std::string& reason, const std::string& message) {
    if (c.events_) c.events_->event(proto::encode(cj), "CronJob", warning, reason, message);
  }

  // Reconciles status.active and lastSuccessfulTime with the Jobs we control.
  Status reconcile_jobs() {
    std::set<std::string> children;
    for (const auto& j : jobs) {
      children.insert(j.uid);
      const bool found = in_active_list(cj, j.uid);
      if (!found && j.finished.empty()) {
        auto fresh = c.client_->get_cronjob_live(cj.metadata.namespace_, cj.metadata.name);
        if (!fresh.is_ok()) return fresh.status();
        if (in_active_list(*fresh, j.uid)) {
          cj = *fresh;  // our cache was behind our own status write
          continue;
        }
        // Crashed between creating it and writing status, or created by someone else.
        event(true, "UnexpectedJob",
              "Saw a job that the controller did not create or forgot: " + j.name);
      } else if (found && !j.finished.empty()) {
        delete_from_active_list(cj, j.uid);
        event(false, "SawCompletedJob",
              "Saw completed job: " + j.name + ", condition: " + j.finished);
        update_status = true;
      } else if (j.finished == "Complete" && j.completion_time) {
        // Counted whether or not it was in the active list.
        auto& last = cj.status.last_successful_time;
        if (!last || *j.completion_time > last->value) {
          last = proto::Time::at(*j.completion_time);
          update_status = true;
        }
      }
    }
    // An active entry whose Job is gone would keep the CronJob "active" forever; ask the API
    // server rather than trust a cache that may lag.
    for (const auto& ref : std::vector<proto::ObjectReference>(cj.status.active)) {
      if (children.count(ref.uid)) continue;
      auto live = c.client_->get_job_live(ref.namespace_, ref.name);
      if (live.is_ok()) continue;
      if (live.status().code() != Code::kNotFound) return live.status();
      event(false, "MissingJob", "Active job went missing: " + ref.name);
      delete_from_active_list(cj, ref.uid);
      update_status = true;
    }
    return Status::ok();
  }

  // Deletes a Job and drops it from the active list (deleteJob).
  bool delete_job(const JobInfo& j) {
    Status st = c.client_->delete_job(j.namespace_, j.name);
    if (!st.is_ok() && st.code() != Code::kNotFound) {
      event(true, "FailedDelete", "Deleted job: " + st.message());
      spdlog::warn("cronjob: {}/{}: {}", cj.metadata.namespace_, cj.metadata.name, st.to_string());
      return false;
    }
    delete_from_active_list(cj, j.uid);
    event(false, "SuccessfulDelete", "Deleted job " + j.name);
    return true;
  }

  Status schedule() {
    if (cj.metadata.deletion_timestamp) return Status::ok();
    std::shared_ptr<const cron::TimeZone> zone = c.opts_.local_zone;
    std::shared_ptr<const cron::TimeZone> annotation_zone = cron::TimeZone::utc();
    const proto::CronJobSpec& spec = cj.spec;
    if (spec.time_zone) {
      auto z = cron::TimeZone::load(*spec.time_zone);
      if (!z.is_ok()) {
        event(true, "UnknownTimeZone",
              "invalid timeZone: \"" + *spec.time_zone + "\": " + z.status().message());
        return Status::ok();
      }
      zone = annotation_zone = *z;
      if (spec.schedule.find("TZ") != std::string::npos)
        event(true, "UnsupportedSchedule",
              "CRON_TZ or TZ used in schedule \"" + spec.schedule +
                  "\" is not officially supported, see "
                  "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more "
                  "details");
    }
    if (spec.suspend.value_or(false)) return Status::ok();
    auto sched = cron::Schedule::parse(spec.schedule);
    if (!sched.is_ok()) {
      event(true, "UnparseableSchedule",
            "unparseable schedule: \"" + spec.schedule + "\" : " + sched.status().message());
      return Status::ok();
    }
    const Clock::time_point now = c.opts_.now();
    auto recent = most_recent_schedule_time(cj, now, *sched, *zone, true);
    if (!recent.is_ok()) {
      event(true, "InvalidSchedule",
            "invalid schedule: " + spec.schedule + " : " + recent.status().message());
      return Status::ok();
    }
    auto requeue_next = [&] { requeue = next_schedule_delay(cj, now, *sched, *zone); };
    if (!recent->time) {
      // Kubernetes' v2 controller drops times older than the starting deadline before it looks
      // for late ones, so its MissSchedule never fires; skiff says which time it skipped.
      if (spec.starting_deadline_seconds) {
        auto all = most_recent_schedule_time(cj, now, *sched, *zone, false);
        if (all.is_ok() && all->time)
          event(true, "MissSchedule",
                "Missed scheduled time to start a job: " + rfc1123z_utc(*all->time));
      }
      requeue_next();
      return Status::ok();
    }
    if (recent->missed > 100)
      event(true, "TooManyMissedTimes",
            "too many missed start times: " + std::to_string(recent->missed) +
                ". Set or decrease .spec.startingDeadlineSeconds or check clock skew");
    const Clock::time_point scheduled = *recent->time;
    if (spec.starting_deadline_seconds &&
        scheduled + seconds(*spec.starting_deadline_seconds) < now) {
      event(true, "MissSchedule",
            "Missed scheduled time to start a job: " + rfc1123z_utc(scheduled));
      requeue_next();
      return Status::ok();
    }
    const std::string name = job_name(cj, scheduled);
    const bool done_already =
        std::any_of(cj.status.active.begin(), cj.status.active.end(),
                    [&](const proto::ObjectReference& r) { return r.name == name; }) ||
        (cj.status.last_schedule_time && cj.status.last_schedule_time->value == scheduled);
    if (done_already) {
      requeue_next();
      return Status::ok();
    }
    if (spec.concurrency_policy == "Forbid" && !cj.status.active.empty()) {
      event(false, "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is "
            "Forbid");
      requeue_next();
      return Status::ok();
    }
    if (spec.concurrency_policy == "Replace") {
      for (const auto& ref : std::vector<proto::ObjectReference>(cj.status.active)) {
        auto live = c.client_->get_job_live(ref.namespace_, ref.name);
        if (!live.is_ok()) {
          event(true, "FailedGet", "Get job: " + live.status().message());
          return live.status();
        }
        if (!delete_job(*live))
          return Status::unavailable("could not replace job " + ref.namespace_ + "/" + ref.name);
        update_status = true;
      }
    }
    auto req = job_from_template(cj, scheduled, *annotation_zone);
    if (!req.is_ok()) return req.status();
    auto created = c.client_->create_job(cj.metadata.namespace_, *req);
    if (!created.is_ok()) {
      const Status& st = created.status();
      if (namespace_terminating(st)) return Status::ok();
      if (st.code() != Code::kAlreadyExists) {
        event(true, "FailedCreate", "Error creating job: " + st.message());
        return st;
      }
      // Someone (we, before a crash) made it: adopt it into the status only if it is ours.
      auto existing = c.client_->get_job_live(cj.metadata.namespace_, name);
      if (!existing.is_ok()) return existing.status();
      if (existing->controller_uid != cj.metadata.uid || in_active_list(cj, existing->uid))
        return Status::ok();
      created = std::move(existing);
    } else {
      event(false, "SuccessfulCreate", "Created job " + created->name);
    }
    cj.status.active.push_back(job_ref(*created));
    cj.status.last_schedule_time = proto::Time::at(scheduled);
    update_status = true;
    requeue_next();
    return Status::ok();
  }

  // cleanupFinishedJobs: finished Jobs beyond the history limits, oldest first.
  void cleanup() {
    std::vector<const JobInfo*> ok, failed;
    for (const auto& j : jobs) {
      if (j.finished == "Complete") ok.push_back(&j);
      if (j.finished == "Failed") failed.push_back(&j);
    }
    if (cj.spec.successful_jobs_history_limit)
      remove_oldest(ok, *cj.spec.successful_jobs_history_limit);
    if (cj.spec.failed_jobs_history_limit)
      remove_oldest(failed, *cj.spec.failed_jobs_history_limit);
  }

  void remove_oldest(std::vector<const JobInfo*>& js, int32_t max) {
    const int64_t to_delete = static_cast<int64_t>(js.size()) - max;
    if (to_delete <= 0) return;
    // byJobStartTime: by status.startTime (unset last), then by name.
    std::sort(js.begin(), js.end(), [](const JobInfo* a, const JobInfo* b) {
      if (a->start_time.has_value() != b->start_time.has_value()) return a->start_time.has_value();
      if (a->start_time && *a->start_time != *b->start_time) return *a->start_time < *b->start_time;
      return a->name < b->name;
    });
    for (int64_t i = 0; i < to_delete; ++i)
      if (delete_job(*js[i])) update_status = true;
  }
};

CronJobController::CronJobController(CronJobOptions opts)
    : opts_(std::move(opts)), queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  if (!opts_.local_zone) opts_.local_zone = cron::TimeZone::utc();
  stats_.depth = [this] { return queue_->len(); };
}

CronJobController::~CronJobController() = default;

void CronJobController::set_clients(CronJobClient* c, EventSink* events) {
  client_ = c;
  events_ = events;
}

Status CronJobController::sync(const std::string& key,
                               std::optional<std::chrono::nanoseconds>* requeue_after) {
  if (requeue_after) requeue_after->reset();
  const size_t slash = key.find('/');
  if (slash == std::string::npos) return Status::ok();  // not ours: CronJobs are namespaced
  const std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  auto cached = client_->get_cronjob(ns, name);
  if (!cached) return Status::ok();  // deleted; its Jobs go with it (garbage collector)

  Sync s{*this, *cached, {}, false, std::nullopt};
  for (auto& j : client_->list_jobs(ns))
    if (j.controller_kind == "CronJob" && j.controller_name == name) s.jobs.push_back(std::move(j));

  Status st = s.reconcile_jobs();
  if (st.is_ok()) st = s.schedule();
  s.cleanup();
  if (s.update_status) {
    auto r = client_->update_status(s.cj);
    if (!r.is_ok()) return r.status();
  }
  if (s.requeue) {
    if (requeue_after) *requeue_after = s.requeue;
    return Status::ok();
  }
  return st;
}

Status CronJobController::init(ControllerContext& ctx) {
  auto& cjs = ctx.informers->informer(cj_type());
  auto& jobs = ctx.informers->informer(job_type());
  owned_client_ = std::make_unique<ApiCronJobClient>(cjs, jobs, ctx.api);
  set_clients(owned_client_.get(), ctx.events);
  cjs.add_handlers({[this](const json& o) { on_cronjob_add(o); },
                    [this](const json& a, const json& b) { on_cronjob_update(a, b); },
                    [this](const json& o) { on_cronjob_add(o); }});
  jobs.add_handlers({[this](const json& o) { on_job(o); },
                     [this](const json& a, const json& b) { on_job_update(a, b); },
                     [this](const json& o) { on_job(o); }});
  return Status::ok();
}

void CronJobController::on_cronjob_add(const json& cj) {
  queue_->add(key_of(str(at(cj, "metadata", "namespace")), str(at(cj, "metadata", "name"))));
}

void CronJobController::on_cronjob_update(const json& old_j, const json& cur_j) {
  const std::string key =
      key_of(str(at(cur_j, "metadata", "namespace")), str(at(cur_j, "metadata", "name")));
  const CronJob old_cj = decode_cj(old_j), cj = decode_cj(cur_j);
  if (old_cj.spec.schedule == cj.spec.schedule && old_cj.spec.time_zone == cj.spec.time_zone) {
    queue_->add(key);  // other fields: sync now
    return;
  }
  // A new schedule: wake up at its next time (an earlier one than queued wins in the queue).
  auto sched = cron::Schedule::parse(cj.spec.schedule);
  if (!sched.is_ok()) return;
  std::shared_ptr<const cron::TimeZone> zone = opts_.local_zone;
  if (cj.spec.time_zone) {
    auto z = cron::TimeZone::load(*cj.spec.time_zone);
    if (!z.is_ok()) return;
    zone = *z;
  }
  queue_->add_after(key, next_schedule_delay(cj, opts_.now(), *sched, *zone));
}

void CronJobController::enqueue_controller_of(const json& job) {
  const JobInfo j = job_info(job);
  if (j.controller_kind != "CronJob" || !client_) return;
  auto cj = client_->get_cronjob(j.namespace_, j.controller_name);
  if (cj && cj->metadata.uid == j.controller_uid)
    queue_->add(key_of(j.namespace_, j.controller_name));
}

void CronJobController::on_job(const json& job) { enqueue_controller_of(job); }

void CronJobController::on_job_update(const json& old_job, const json& cur_job) {
  const JobInfo a = job_info(old_job), b = job_info(cur_job);
  if (a.controller_uid != b.controller_uid) enqueue_controller_of(old_job);
  enqueue_controller_of(cur_job);
}

void CronJobController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_,
      [this](const std::string& key) {
        std::optional<nanoseconds> after;
        Status st = sync(key, &after);
        if (st.is_ok() && after) queue_->add_after(key, *after);
        return st;
      },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict || st.code() == Code::kAlreadyExists)
          spdlog::debug("cronjob: {}: {} (retrying)", key, st.to_string());
        else
          spdlog::warn("cronjob: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::cronjob
