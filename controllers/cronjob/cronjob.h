// CronJobController: Kubernetes' pkg/controller/cronjob (the v2 controller). At each time a
// CronJob's schedule names (common/cron.h, in spec.timeZone or this process's local zone) it
// creates a Job from spec.jobTemplate, then keeps status.active / lastScheduleTime /
// lastSuccessfulTime and the finished-Job history.
//
// - Job `<cronjob>-<scheduled time in minutes since the epoch>` (the name is the lock against
//   double creation), labels and annotations from jobTemplate.metadata plus
//   `batch.kubernetes.io/cronjob-scheduled-timestamp` (RFC 3339 in the CronJob's zone), a
//   controller ownerReference (blockOwnerDeletion) to the CronJob.
// - Missed times: only the most recent unmet time since status.lastScheduleTime (else
//   creationTimestamp) runs; more than 100 missed ones are reported (TooManyMissedTimes). With
//   startingDeadlineSeconds, a time older than the deadline is skipped (MissSchedule).
// - concurrencyPolicy Forbid skips a time while a Job is active (JobAlreadyActive); Replace
//   deletes the active Jobs (background propagation) first; Allow runs them side by side.
// - suspend stops new Jobs, not running ones. History: finished Jobs beyond
//   successfulJobsHistoryLimit / failedJobsHistoryLimit are deleted oldest (status.startTime)
//   first.
// - Events (on the CronJob): SuccessfulCreate, SawCompletedJob, SuccessfulDelete, MissSchedule,
//   JobAlreadyActive, UnexpectedJob, MissingJob, UnknownTimeZone, UnparseableSchedule,
//   InvalidSchedule, TooManyMissedTimes, FailedCreate, FailedDelete, UnsupportedSchedule — with
//   Kubernetes' messages.
// - sync(key) reads through CronJobClient and returns after scheduling the key again for the
//   next time (+100 ms), as Kubernetes requeues.
//
// Thread-safety: handlers and workers may run concurrently; the queue never hands one key to two
// workers; the controller keeps no other mutable state.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/cron.h"
#include "controllers/controller.h"
#include "proto/client/workqueue.h"
#include "proto/cronjob.h"

namespace skiff::controllers::cronjob {

using proto::Clock;
using proto::CronJob;

inline constexpr char kScheduledTimestampAnnotation[] =
    "batch.kubernetes.io/cronjob-scheduled-timestamp";

// What the controller needs of a Job (read from its JSON; the Job type is proto/job.h's).
struct JobInfo {
  std::string namespace_, name, uid, resource_version;
  std::string controller_kind, controller_name, controller_uid;  // controller ownerReference
  std::string finished;  // "Complete" or "Failed" when that condition is True, else ""
  std::optional<Clock::time_point> start_time, completion_time;
  bool deleting = false;
};
JobInfo job_info(const json& job);

// What sync reads (caches, and live reads where Kubernetes does them) and writes. Tests fake it.
class CronJobClient {
 public:
  virtual ~CronJobClient() = default;
  virtual std::optional<CronJob> get_cronjob(const std::string& ns, const std::string& name) = 0;
  [[nodiscard]] virtual Result<CronJob> get_cronjob_live(const std::string& ns,
                                                         const std::string& name) = 0;
  virtual std::vector<JobInfo> list_jobs(const std::string& ns) = 0;
  // NotFound when the Job does not exist.
  [[nodiscard]] virtual Result<JobInfo> get_job_live(const std::string& ns,
                                                     const std::string& name) = 0;
  // AlreadyExists when the name is taken.
  [[nodiscard]] virtual Result<JobInfo> create_job(const std::string& ns, const json& job) = 0;
  // DELETE with propagationPolicy Background.
  [[nodiscard]] virtual Status delete_job(const std::string& ns, const std::string& name) = 0;
  // Conditional on the resourceVersion.
  [[nodiscard]] virtual Result<CronJob> update_status(const CronJob& cj) = 0;
};

// --- Kubernetes' pure helpers (utils.go), public for tests.

// "<cronjob>-<unix minutes>".
std::string job_name(const CronJob& cj, Clock::time_point scheduled);
// The Job to create for `scheduled` (getJobFromTemplate2), or an error when the zone is gone.
Result<json> job_from_template(const CronJob& cj, Clock::time_point scheduled,
                               const cron::TimeZone& zone);
struct MostRecent {
  std::optional<Clock::time_point> time;  // the latest unmet time <= now
  int64_t missed = 0;                     // approximate number of unmet times
};
// mostRecentScheduleTime: unmet times after lastScheduleTime (else creationTimestamp, or the
// starting deadline when later and `with_deadline`). Invalid for a schedule that never runs.
Result<MostRecent> most_recent_schedule_time(const CronJob& cj, Clock::time_point now,
                                             const cron::Schedule& s, const cron::TimeZone& zone,
                                             bool with_deadline);
// nextScheduleTimeDuration: how long until the next time after the most recent one, + 100 ms.
std::chrono::nanoseconds next_schedule_delay(const CronJob& cj, Clock::time_point now,
                                             const cron::Schedule& s, const cron::TimeZone& zone);
// "Mon, 02 Jan 2006 15:04:05 +0000" (Go's RFC1123Z, in UTC).
std::string rfc1123z_utc(Clock::time_point t);

struct CronJobOptions {
  int workers = 1;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(60)};
  // Wall clock (tests inject a fake one).
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  // The zone of a CronJob without spec.timeZone (Kubernetes: the controller-manager's own).
  std::shared_ptr<const cron::TimeZone> local_zone = cron::TimeZone::local();
};

class CronJobController : public Controller {
 public:
  explicit CronJobController(CronJobOptions opts = {});
  ~CronJobController() override;

  std::string name() const override { return "cronjob"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- public for tests (fake client and event sink).
  void set_clients(CronJobClient* c, EventSink* events);
  // Converges one CronJob; on success `requeue_after` (when given) receives the delay until its
  // next time, which the worker loop also schedules.
  [[nodiscard]] Status sync(const std::string& key,
                            std::optional<std::chrono::nanoseconds>* requeue_after = nullptr);
  client::WorkQueue& queue() { return *queue_; }

  // Handlers (informer callbacks; only enqueue).
  void on_cronjob_add(const json& cj);
  void on_cronjob_update(const json& old_cj, const json& cur_cj);
  void on_job(const json& job);
  void on_job_update(const json& old_job, const json& cur_job);

 private:
  struct Sync;
  void enqueue_controller_of(const json& job);

  CronJobOptions opts_;
  CronJobClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<CronJobClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::cronjob
