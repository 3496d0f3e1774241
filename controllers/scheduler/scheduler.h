// Scheduler: skiff-scheduler's engine. Watches Pods and Nodes, keeps the cache (cache.h) and
// the queue of pending pods (queue.h), and places one pod at a time:
//
//   pop -> filters over the nodes (filters.h; stops after num_feasible_nodes_to_find feasible
//   nodes, starting where the previous pod stopped, as kube-scheduler) -> scores (scores.h) ->
//   assume in the cache -> POST pods/{name}/binding asynchronously (bounded in flight).
//
// No fit: the pod is parked (queue.h), its PodScheduled condition set to False/Unschedulable
// with kube-scheduler's message, and a Warning event FailedScheduling posted. Binding done:
// a Normal event Scheduled ("Successfully assigned ns/pod to node"). Binding failed: the
// assumption is dropped and the pod retried after back-off.
//
// Thread-safety: run() on one thread; metrics_text() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <vector>

#include "common/status.h"
#include "controllers/scheduler/cache.h"
#include "controllers/scheduler/queue.h"

namespace skiff::client {
class ApiClient;
class Informer;
struct Request;
}  // namespace skiff::client

namespace skiff::scheduler {

class Recorder;

struct SchedulerOptions {
  std::string scheduler_name = "default-scheduler";
  std::string identity;                  // reportingInstance of events
  int percentage_of_nodes_to_score = 0;  // 0: adaptive (kube-scheduler's default)
  int max_binds_in_flight = 64;
  QueueOptions queue;
  std::chrono::milliseconds informer_sync_timeout{60'000};
  uint64_t seed = 0;  // tie-breaking; 0: random
};

// Prometheus-style histogram with fixed buckets (seconds). Thread-safe.
class Histogram {
 public:
  Histogram();
  void observe(double seconds);
  // "<name>_bucket{le=..} n", "_sum", "_count" lines.
  std::string text(const std::string& name) const;

 private:
  static constexpr int kBuckets = 16;
  static const double kBounds[kBuckets];
  std::atomic<int64_t> counts_[kBuckets + 1];
  std::atomic<int64_t> sum_micros_{0};
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<client::ApiClient> api, SchedulerOptions opts);
  ~Scheduler();

  // Starts the informers, waits for them, then schedules until `stop`. Waits for bindings in
  // flight (bounded) before it returns. false when the informers did not sync (stop aside).
  bool run(std::stop_token stop);

  std::string metrics_text() const;
  Cache& cache() { return cache_; }

 private:
  struct Result {
    std::string node;     // "" when none fits
    std::string message;  // why not (kube-scheduler's FitError text)
  };
  void handle_pod_add(const json& obj);
  void handle_pod_update(const json& old_obj, const json& obj);
  void handle_pod_delete(const json& obj);
  void handle_node(const json& obj);
  void handle_node_delete(const json& obj);
  // A PVC, PV or StorageClass changed: parked pods may fit now (kube-scheduler's queueing
  // hints for VolumeBinding, coarsely: every change wakes them).
  void handle_storage_change();
  void schedule_one(const QueuedPod& qp);
  Result find_node(const PodInfo& pod);
  // Takes a binding slot, runs PreBind (claimRef of the chosen static PVs, selected-node on the
  // other unbound WaitForFirstConsumer claims), then the binding.
  void bind(const PodInfo& pod, const std::string& node, Clock::time_point first_seen,
            bool set_scheduled_true, const std::map<std::string, std::string>& static_pvs);
  // For each unbound WaitForFirstConsumer claim: the smallest fitting Available PV usable on
  // `node` (claim -> PV name); claims without one are left to the provisioner.
  std::map<std::string, std::string> static_bindings(const PodInfo& pod, const std::string& node);
  // PreBind's API writes, one after another, then `then` (ok, or the first failure). On the
  // client's I/O thread.
  void run_prebind(std::shared_ptr<std::vector<client::Request>> reqs, size_t i,
                   std::function<void(Status)> then);
  // POST pods/{name}/binding; releases the slot when answered.
  void post_binding(const PodInfo& pod, const std::string& node, Clock::time_point first_seen,
                    bool set_scheduled_true);
  // A failed PreBind or binding: the assumption dropped, the pod retried after back-off.
  void binding_failed(const std::string& key, const std::string& node, const std::string& why);
  void wait_binds(std::chrono::milliseconds timeout);

  std::shared_ptr<client::ApiClient> api_;
  SchedulerOptions opts_;
  Cache cache_;
  SchedulingQueue queue_;
  std::unique_ptr<Recorder> recorder_;
  std::unique_ptr<client::Informer> pods_, nodes_, claims_, volumes_, classes_;
  std::mt19937_64 rng_;
  size_t next_start_ = 0;  // node index where the next pod's filtering starts

  std::mutex bind_mu_;
  std::condition_variable bind_cv_;
  int binds_in_flight_ = 0;

  std::atomic<int64_t> scheduled_{0}, unschedulable_{0}, errors_{0};
  Histogram e2e_;
};

}  // namespace skiff::scheduler
