// DisruptionController: the status of every policy/v1 PodDisruptionBudget, as Kubernetes'
// pkg/controller/disruption computes it, so that the API server's pods/eviction subresource
// (and `kubectl drain` through it) knows how many pods may go.
//
// For a budget: its pods are those of its namespace matching spec.selector (none for a nil
// selector, all for an empty one). currentHealthy = Ready pods, not being deleted, not in
// status.disruptedPods (evicted within the last 2 minutes); expectedPods = the number of pods
// for an integer minAvailable, else the sum of the scales of the pods' controllers (a
// Deployment through its ReplicaSet, a ReplicaSet, a StatefulSet: spec.replicas) plus one per
// pod without such a controller; desiredHealthy = minAvailable (an int, or a percentage of
// expectedPods rounded up) or expectedPods - maxUnavailable (rounded up; not below 0);
// disruptionsAllowed = currentHealthy - desiredHealthy (0 when negative or no pods expected);
// condition DisruptionAllowed True/SufficientPods or False/InsufficientPods; observedGeneration
// = metadata.generation. disruptedPods entries older than 2 minutes, or whose pod is gone or
// being deleted, are dropped; a budget with entries is re-checked when the oldest expires.
// The status is written (PUT /status, conditional on the resourceVersion) only when one of
// these changed.
//
// Thread-safety: handlers only enqueue; sync() runs on the workers (tests call it directly).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::disruption {

using Clock = std::chrono::system_clock;

// The controlling owner of a pod the budget counts by scale: its uid and desired replicas.
struct OwnerScale {
  std::string uid;
  int32_t scale = 0;
};

// What sync reads and writes, so unit tests run it on fakes.
class DisruptionClient {
 public:
  virtual ~DisruptionClient() = default;
  virtual std::optional<json> get_pdb(const std::string& key) = 0;  // "ns/name" from the cache
  virtual std::vector<json> list_pdbs(const std::string& ns) = 0;   // "" = every namespace
  virtual std::vector<json> list_pods(const std::string& ns) = 0;
  // The cached apps/v1 ReplicaSet, Deployment or StatefulSet `kind` ns/name, nullopt if absent.
  virtual std::optional<json> get_owner(const std::string& kind, const std::string& ns,
                                        const std::string& name) = 0;
  // PUT of the budget's status subresource (conditional on its resourceVersion).
  [[nodiscard]] virtual Status update_status(const json& pdb) = 0;
};

struct DisruptionOptions {
  int workers = 2;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(30)};
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
};

class DisruptionController : public Controller {
 public:
  explicit DisruptionController(DisruptionOptions opts = {});
  ~DisruptionController() override;

  std::string name() const override { return "disruption"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- for tests.
  void set_client(DisruptionClient* c) { client_ = c; }
  client::WorkQueue& queue() { return *queue_; }
  // Handlers as init() registers them (they only enqueue).
  void on_pdb(const json& pdb);
  void on_pod(const json* old_pod, const json& pod);
  // One budget "ns/name": recomputes and writes its status when it changed.
  [[nodiscard]] Status sync(const std::string& key);
  // The scale of a pod's controller, read through the client (see compute_status).
  std::optional<OwnerScale> owner_scale(const json& pod);
  int64_t writes() const { return writes_; }

 private:
  DisruptionOptions opts_;
  DisruptionClient* client_ = nullptr;
  std::unique_ptr<DisruptionClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
  std::atomic<int64_t> writes_{0};
};

}  // namespace skiff::controllers::disruption
