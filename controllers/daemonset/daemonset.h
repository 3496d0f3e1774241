// DaemonSetController: one pod per eligible node for each apps/v1 DaemonSet, as Kubernetes'
// pkg/controller/daemon does.
//
// sync("ns/name"):
//   1. The DaemonSet from the cache (gone => its expectations are dropped). An empty selector
//      is refused (Warning event SelectingAll); a DaemonSet being deleted is left alone.
//   2. Revisions (controllers/history): the ControllerRevision whose data equals the current
//      template patch is current (its revision number raised to max+1 when it is older, as a
//      rollback does); none => a new one `<ds>-<ComputeHash(template, collisionCount)>`
//      (labels = template labels + controller-revision-hash, owner = the DaemonSet). A name taken
//      by other data bumps status.collisionCount (the sync fails and is retried).
//   3. Pods: claimed (orphans matching the selector adopted, owned non-matching released),
//      grouped by target node (spec.nodeName or the matchFields metadata.name affinity).
//   4. If the expectations are met, per node (node_should_run_daemon_pod): a node that should
//      run the pod and has none gets one (created through the API without nodeName: the
//      scheduler places it by the required matchFields affinity); failed pods are deleted
//      (Warning FailedDaemonPod) at most once per back-off period (1 s doubling to 15 min) and
//      recreated by a later sync; succeeded pods deleted; extra pods deleted (the oldest kept;
//      with surge the oldest updated and the oldest old); a node that should not keep the pod
//      (selector, affinity, NoExecute taint, node deleted) loses all of them.
//   5. RollingUpdate (maxSurge 0): old pods deleted while the unavailable count (nodes without
//      an available updated pod, counting nodes with missing or duplicate pods) stays within
//      maxUnavailable; unavailable old pods are always replaced. With maxSurge: new pods created
//      beside old ones on at most maxSurge nodes, the old deleted once the new is available.
//      OnDelete: nothing (pods are replaced when the user deletes them).
//   6. Old revisions beyond revisionHistoryLimit not used by any pod are deleted, oldest first.
//   7. Status (PUT of the status subresource, only when changed): desired/current/ready/
//      available/updated/misscheduled/unavailable counts, observedGeneration. A pod ready but not
//      yet available re-queues the key for the moment it becomes available.
// Events on the DaemonSet: SuccessfulCreate "Created pod: X", SuccessfulDelete "Deleted pod: X",
// FailedCreate/FailedDelete "Error creating/deleting: ...", FailedDaemonPod "Found failed daemon
// pod ns/X on node N, will try to kill it", SelectingAll.
//
// Handlers only enqueue: DaemonSet add/update/delete; pod add/update/delete (its controlling
// DaemonSet, or for an orphan every DaemonSet whose selector matches); node add/delete and node
// updates that change labels, taints, unschedulable or condition statuses (every DaemonSet).
//
// Thread-safety: handlers and workers run concurrently; the WorkQueue gives one key to one
// worker at a time. sync() reads through Listers and writes through DaemonControl and History.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/daemonset/util.h"
#include "controllers/history/history.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::daemonset {

// Cache reads (informer caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> daemonset(const std::string& key) = 0;  // "ns/name"
  virtual std::vector<json> daemonsets() = 0;                         // all namespaces
  virtual std::vector<json> pods(const std::string& ns) = 0;
  virtual std::vector<json> nodes() = 0;
};

// API writes, and the fresh DaemonSet read the collision handling needs.
class DaemonControl {
 public:
  virtual ~DaemonControl() = default;
  [[nodiscard]] virtual Result<json> create_pod(const std::string& ns, const json& pod) = 0;
  [[nodiscard]] virtual Status delete_pod(const std::string& ns, const std::string& name) = 0;
  // Strategic merge patch (adoption and release of pods).
  [[nodiscard]] virtual Status patch_pod(const std::string& ns, const std::string& name,
                                         const json& patch) = 0;
  [[nodiscard]] virtual Result<json> get_daemonset(const std::string& ns,
                                                   const std::string& name) = 0;
  // PUT of the status subresource, conditional on metadata.resourceVersion.
  [[nodiscard]] virtual Result<json> update_status(const json& ds) = 0;
};

// Expected pod creations and deletions per DaemonSet (ControllerExpectations): while some are
// outstanding the cache is behind our own writes, so no new creates/deletes are decided.
class Expectations {
 public:
  using Clock = client::Clock;
  explicit Expectations(const Clock& clock, std::chrono::nanoseconds ttl = std::chrono::minutes(5))
      : clock_(clock), ttl_(ttl) {}
  void expect(const std::string& key, int adds, int dels);
  void creation_observed(const std::string& key);
  void deletion_observed(const std::string& key);
  // Met (or never set, or older than the TTL).
  bool satisfied(const std::string& key);
  void forget(const std::string& key);

 private:
  struct Entry {
    int adds = 0, dels = 0;
    Clock::time_point at;
  };
  const Clock& clock_;
  std::chrono::nanoseconds ttl_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

struct DaemonSetOptions {
  int workers = 2;
  // Kubernetes' BurstReplicas: the most pods one sync creates or deletes.
  int burst_replicas = 250;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(300)};
  // Steady time for expectations, back-off and the queue (nullptr: real); wall time for pod
  // availability (empty: system_clock::now). Tests pass fakes.
  const client::Clock* clock = nullptr;
  std::function<WallTime()> wall_clock;
  std::chrono::nanoseconds failed_pod_backoff_initial = std::chrono::seconds(1);
  std::chrono::nanoseconds failed_pod_backoff_max = std::chrono::minutes(15);
};

class DaemonSetController : public Controller {
 public:
  explicit DaemonSetController(DaemonSetOptions opts = {});
  ~DaemonSetController() override;

  std::string name() const override { return "daemonset"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, DaemonControl* control, history::History* hist,
                   EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }
  Expectations& expectations() { return expectations_; }

  void on_ds_add(const json& ds);
  void on_ds_update(const json& old_ds, const json& ds);
  void on_ds_delete(const json& ds);
  void on_pod_add(const json& pod);
  void on_pod_update(const json& old_pod, const json& pod);
  void on_pod_delete(const json& pod);
  void on_node_add(const json& node);
  void on_node_update(const json& old_node, const json& node);
  void on_node_delete(const json& node);

 private:
  struct Revisions {
    history::ControllerRevision cur;
    std::vector<history::ControllerRevision> old;
  };
  using NodePods = std::map<std::string, std::vector<json>>;

  void enqueue(const json& ds);
  void enqueue_all();
  WallTime wall_now() const;
  std::optional<json> resolve_controller(const json& pod);
  std::vector<json> matching_daemonsets(const json& pod);
  void event(const json& ds, bool warning, const std::string& reason, const std::string& msg);

  Result<Revisions> construct_history(json& ds);
  Result<history::ControllerRevision> snapshot(json& ds, int64_t revision);
  Result<std::vector<json>> claim_pods(const json& ds);
  NodePods group_by_node(const std::vector<json>& pods);
  Status manage(const json& ds, const std::string& key, const std::vector<json>& nodes,
                const NodePods& by_node, const std::string& hash);
  Status rolling_update(const json& ds, const std::string& key, const std::vector<json>& nodes,
                        const NodePods& by_node, const std::string& hash);
  Status sync_nodes(const json& ds, const std::string& key, std::vector<std::string> to_delete,
                    std::vector<std::string> to_create, const std::string& hash);
  Status cleanup_history(const json& ds, const std::vector<history::ControllerRevision>& old,
                         const NodePods& by_node);
  Status update_status(const json& ds, const std::string& key, const std::vector<json>& nodes,
                       const NodePods& by_node, const std::string& hash);

  DaemonSetOptions opts_;
  const client::Clock& clock_;
  Listers* listers_ = nullptr;
  DaemonControl* control_ = nullptr;
  history::History* history_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<DaemonControl> owned_control_;
  std::unique_ptr<history::History> owned_history_;
  std::unique_ptr<client::WorkQueue> queue_;
  Expectations expectations_;
  FailedPodBackoff backoff_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::daemonset
