// JobController: runs each batch/v1 Job's pods to completion, as Kubernetes'
// pkg/controller/job does (job tracking with finalizers, 1.32 semantics).
//
// sync("ns/name"):
//   1. The Job from the cache (gone => its expectations are dropped). Its pods: those of the
//      namespace whose controller reference is the Job's uid.
//   2. Counting (job tracking with finalizers): every pod carries the finalizer
//      batch.kubernetes.io/job-tracking from its creation. A pod that ended (Succeeded, Failed,
//      or deleted by someone else before succeeding) while carrying it has its uid recorded in
//      status.uncountedTerminatedPods first (a status write), then its finalizer removed, then
//      is moved into status.succeeded / status.failed (a second write). A crash between the
//      steps neither loses nor double-counts a pod.
//   3. Finishing: succeeded >= completions (Indexed: every index 0..completions-1 has a
//      succeeded pod; work queue: one succeeded and none active) => SuccessCriteriaMet, then
//      once no pod is active or terminating Complete (completionTime). failed > backoffLimit,
//      or with restartPolicy OnFailure the containers' restarts >= backoffLimit =>
//      FailureTarget BackoffLimitExceeded; startTime + activeDeadlineSeconds passed =>
//      FailureTarget DeadlineExceeded; then active pods are deleted and, once none remains,
//      Failed with the same reason.
//   4. Suspended (spec.suspend): active pods deleted (their finalizer removed first, so they do
//      not count as failures), condition Suspended=True; on resume Suspended=False and
//      startTime restarts, so activeDeadlineSeconds counts from the resume.
//   5. Otherwise keep min(parallelism, remaining completions) pods active: create pods from
//      the template (generateName "<job>-" or "<job>-<index>-", labels, the finalizer, the
//      controller reference; Indexed: annotation and label batch.kubernetes.io/
//      job-completion-index, env JOB_COMPLETION_INDEX from that annotation, hostname
//      "<job>-<index>"), in slow-start batches, never more than the wanted number; after a
//      failed pod (restartPolicy Never) no new pod before the back-off 10 s * 2^(n-1) (n =
//      failures since the last success, at most 6 min) has passed since the last failure; or
//      delete the surplus.
//   6. Status (status subresource) only when it changed: active, ready, terminating, succeeded,
//      failed, completedIndexes, uncountedTerminatedPods, startTime, completionTime, conditions.
// Events: SuccessfulCreate "Created pod: X", SuccessfulDelete "Deleted pod: X", FailedCreate,
// Completed "Job completed", BackoffLimitExceeded, DeadlineExceeded, Suspended, Resumed.
//
// TtlAfterFinishedController: deletes a finished Job (Complete or Failed) with
// spec.ttlSecondsAfterFinished once that many seconds have passed since it finished, with
// propagationPolicy Background (the garbage collector then deletes its pods).
//
// Thread-safety: handlers and workers may run concurrently; a key is synced by one worker at a
// time (WorkQueue). sync() reads through Listers and writes through JobControl (fakes in tests).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::job {

using WallTime = std::chrono::system_clock::time_point;

// Cache reads (the informers' caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> job(const std::string& key) = 0;  // "ns/name"
  virtual std::vector<json> pods(const std::string& ns) = 0;
};

// API writes, and the fresh reads before a status retry and a TTL deletion.
class JobControl {
 public:
  virtual ~JobControl() = default;
  [[nodiscard]] virtual Result<json> create_pod(const std::string& ns, const json& pod) = 0;
  [[nodiscard]] virtual Status delete_pod(const std::string& ns, const std::string& name) = 0;
  // Strategic merge patch of a pod.
  [[nodiscard]] virtual Status patch_pod(const std::string& ns, const std::string& name,
                                         const json& patch) = 0;
  [[nodiscard]] virtual Result<json> get_job(const std::string& ns, const std::string& name) = 0;
  // PUT of the Job's status subresource, conditional on its metadata.resourceVersion.
  [[nodiscard]] virtual Result<json> update_status(const json& job) = 0;
  // DELETE of the Job with propagationPolicy Background.
  [[nodiscard]] virtual Status delete_job(const std::string& ns, const std::string& name) = 0;
};

struct JobOptions {
  int workers = 2;
  // Kubernetes' MaxPodCreateDeletePerSync.
  int max_pods_per_sync = 500;
  // Pod failure back-off: DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
  std::chrono::nanoseconds backoff_base = std::chrono::seconds(10);
  std::chrono::nanoseconds backoff_max = std::chrono::minutes(6);
  std::chrono::nanoseconds expectations_ttl = std::chrono::minutes(5);
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(360)};
  // Steady time for expectations and the queue (nullptr: real); wall time for startTime,
  // deadlines, back-off and conditions (empty: system_clock::now). Tests pass fakes.
  const client::Clock* clock = nullptr;
  std::function<WallTime()> wall_clock;
};

// The pod back-off Kubernetes applies after `failures` consecutive failed pods (0: none):
// base * 2^(failures-1), at most `max`.
std::chrono::nanoseconds pod_failure_backoff(int failures, std::chrono::nanoseconds base,
                                             std::chrono::nanoseconds max);
// "1,3-5,7" (Kubernetes' completedIndexes format) of a sorted set; and back (bad parts and
// indexes >= completions are dropped).
std::string format_indexes(const std::set<int>& indexes);
std::set<int> parse_indexes(const std::string& s, int completions);

class JobController : public Controller {
 public:
  explicit JobController(JobOptions opts = {});
  ~JobController() override;

  std::string name() const override { return "job"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, JobControl* control, EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }

  void on_job_add(const json& job);
  void on_job_update(const json& old_job, const json& job);
  void on_job_delete(const json& job);
  void on_pod_add(const json& pod);
  void on_pod_update(const json& old_pod, const json& pod);
  void on_pod_delete(const json& pod);

 private:
  struct Ctx;
  // Creations and deletions in flight per Job key, and uids whose finalizer this controller
  // removed but the cache may still show (Kubernetes' expectations and
  // uidTrackingExpectations): a lagging cache must cause neither over-creation nor a pod
  // counted twice.
  struct Expect {
    int adds = 0;
    std::set<std::string> deletes;  // pod uids
    client::Clock::time_point since{};
    std::set<std::string> finalizers_removed;  // pod uids
  };
  // Consecutive failures since the last success and when the last one happened.
  struct Backoff {
    int failures = 0;
    WallTime last_failure{};
  };

  WallTime wall_now() const;
  void enqueue(const json& job);
  std::string owner_key(const json& pod);  // "ns/job" of the Job controlling pod, or ""
  bool expectations_met(const std::string& key);

  Status track_pods(Ctx& c);
  Status manage(Ctx& c);
  Status create_pods(Ctx& c, const std::vector<int>& indexes);
  // Removes the finalizer, then deletes; the number deleted.
  Status delete_pods(Ctx& c, const std::vector<json>& pods, int* deleted);
  Status remove_finalizer(Ctx& c, const json& pod);
  Result<json> write_status(Ctx& c);
  void event(const json& job, bool warning, const std::string& reason, const std::string& msg);

  JobOptions opts_;
  const client::Clock& clock_;
  Listers* listers_ = nullptr;
  JobControl* control_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<JobControl> owned_control_;
  std::unique_ptr<client::WorkQueue> queue_;
  std::mutex mu_;
  std::map<std::string, Expect> expect_;    // by Job key; guarded by mu_
  std::map<std::string, Backoff> backoff_;  // by Job key; guarded by mu_
  std::map<std::string, json> written_;     // our last status write per Job key; mu_
  WorkerStats stats_;
};

struct TtlOptions {
  int workers = 1;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(300)};
  const client::Clock* clock = nullptr;
  std::function<WallTime()> wall_clock;
};

// Kubernetes' pkg/controller/ttlafterfinished.
class TtlAfterFinishedController : public Controller {
 public:
  explicit TtlAfterFinishedController(TtlOptions opts = {});
  ~TtlAfterFinishedController() override;

  std::string name() const override { return "ttl-after-finished"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  void set_clients(Listers* listers, JobControl* control);
  // Deletes the Job if its TTL expired; else re-queues it for the moment it does.
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }
  void on_job(const json& job);

 private:
  // How long until `job` expires (<= 0: expired); nullopt when it never does.
  std::optional<std::chrono::nanoseconds> time_left(const json& job) const;

  TtlOptions opts_;
  const client::Clock& clock_;
  Listers* listers_ = nullptr;
  JobControl* control_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<JobControl> owned_control_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::job
