// ReplicaSetController: keeps spec.replicas pods matching each apps/v1 ReplicaSet's selector,
// as Kubernetes' pkg/controller/replicaset does.
//
// sync("ns/name"):
//   1. The ReplicaSet from the cache (gone => its expectations are dropped, nothing else).
//   2. Active pods of the namespace (not Succeeded/Failed, not terminating) from the cache.
//   3. Claim (ControllerRefManager): an orphan the selector matches is adopted (strategic patch
//      adding an ownerReference with controller and blockOwnerDeletion true; never while the
//      ReplicaSet is being deleted, and only after a fresh read shows it is not); an owned pod
//      the selector no longer matches is released (patch deleting our ownerReference). Pods of
//      other controllers are ignored.
//   4. If its expectations are met and it is not being deleted: create (replicas - active) pods
//      from spec.template in slow-start batches 1, 2, 4, ... (at most burst_replicas per sync),
//      stopping after the first batch with a failure; or delete (active - replicas) pods in
//      Kubernetes' order (pod_util.h). Expectations are raised before the API calls and lowered
//      by the informer's events (and for calls that failed).
//   5. Status through the status subresource, only when it changed: replicas,
//      fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration and the
//      ReplicaFailure condition (set on a failed create/delete, removed once one succeeds).
//      While some pod is ready but not yet minReadySeconds old, the key is re-queued for when
//      the first of them becomes available.
// Errors (failed claims, creates, deletes, status writes) are returned: the worker retries the
// key with back-off. Events on the ReplicaSet: SuccessfulCreate, SuccessfulDelete (Normal),
// FailedCreate, FailedDelete (Warning).
//
// Handlers only enqueue: ReplicaSet add/update/delete; pod add/update/delete enqueue the pod's
// controller (if it is a ReplicaSet in the cache with that uid) or, for an orphan, every
// ReplicaSet whose selector matches its labels (old and new labels on an update).
//
// Thread-safety: handlers and workers may run concurrently; a key is synced by one worker at a
// time (WorkQueue). sync() reads through Listers and writes through PodControl (fakes in tests).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/replicaset/expectations.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::replicaset {

// Cache reads (the informers' caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> replicaset(const std::string& key) = 0;  // "ns/name"
  virtual std::vector<json> replicasets(const std::string& ns) = 0;
  virtual std::vector<json> pods(const std::string& ns) = 0;
};

// API writes (and the fresh reads Kubernetes makes before adopting and after a status conflict).
class PodControl {
 public:
  virtual ~PodControl() = default;
  // POST of `pod` (generateName set); the created pod.
  [[nodiscard]] virtual Result<json> create_pod(const std::string& ns, const json& pod) = 0;
  [[nodiscard]] virtual Status delete_pod(const std::string& ns, const std::string& name) = 0;
  // Strategic merge patch of a pod (ownerReferences are merged by uid).
  [[nodiscard]] virtual Status patch_pod(const std::string& ns, const std::string& name,
                                         const json& patch) = 0;
  // GET from the API server, not the cache.
  [[nodiscard]] virtual Result<json> get_replicaset(const std::string& ns,
                                                    const std::string& name) = 0;
  // PUT of rs's status subresource, conditional on its metadata.resourceVersion.
  [[nodiscard]] virtual Result<json> update_status(const json& rs) = 0;
};

struct ReplicaSetOptions {
  int workers = 2;
  // Kubernetes' BurstReplicas: the most pods one sync creates or deletes.
  int burst_replicas = 500;
  // API calls in flight at once within one slow-start batch (and for deletions).
  int max_parallel_calls = 16;
  std::chrono::nanoseconds expectations_ttl = Expectations::kDefaultTtl;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(300)};
  // Steady time for expectations and the queue (nullptr: real); wall time for pod readiness
  // (empty: system_clock::now). Tests pass fakes.
  const client::Clock* clock = nullptr;
  std::function<std::chrono::system_clock::time_point()> wall_clock;
};

class ReplicaSetController : public Controller {
 public:
  explicit ReplicaSetController(ReplicaSetOptions opts = {});
  ~ReplicaSetController() override;

  std::string name() const override { return "replicaset"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, PodControl* pods, EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }
  Expectations& expectations() { return expectations_; }

  void on_rs_add(const json& rs);
  void on_rs_update(const json& old_rs, const json& rs);
  void on_rs_delete(const json& rs);
  void on_pod_add(const json& pod);
  void on_pod_update(const json& old_pod, const json& pod);
  void on_pod_delete(const json& pod);

 private:
  struct Claimed;
  void enqueue(const json& rs);
  std::chrono::system_clock::time_point wall_now() const;
  // The ReplicaSet a pod's controller reference names, if it is in the cache with that uid.
  std::optional<json> resolve_controller(const json& pod);
  // ReplicaSets whose (non-empty) selector matches `pod`'s labels.
  std::vector<json> matching_replicasets(const json& pod);

  Result<std::vector<json>> claim_pods(const json& rs, const std::vector<json>& pods);
  Status manage_replicas(const json& rs, const std::string& key, const std::vector<json>& pods);
  Status create_pods(const json& rs, const std::string& key, int count);
  Status delete_pods(const json& rs, const std::string& key, const std::vector<json>& pods,
                     int count);
  // Pods of the ReplicaSets sharing rs's controller (for the same-node rank).
  std::vector<json> related_pods(const json& rs);
  // Writes the new status if it differs; the ReplicaSet as written (or as it was).
  Result<json> update_status(const json& rs, const std::vector<json>& pods,
                             const Status& manage_err);
  // Runs fn(i) for i in [0, n) with at most max_parallel_calls at once.
  void parallel(int n, const std::function<void(int)>& fn);

  ReplicaSetOptions opts_;
  const client::Clock& clock_;
  Listers* listers_ = nullptr;
  PodControl* pods_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<PodControl> owned_pods_;
  std::unique_ptr<client::WorkQueue> queue_;
  Expectations expectations_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::replicaset
