// StatefulSetController: pods with stable identities for each apps/v1 StatefulSet, as
// Kubernetes' pkg/controller/statefulset (stateful_set.go, stateful_set_control.go,
// stateful_pod_control.go) does.
//
// sync("ns/name"):
//   1. The StatefulSet from the cache (gone => nothing).
//   2. Claim pods: an orphan whose name is `<set>-<n>` and whose labels the selector matches is
//      adopted (after a fresh read shows the set is not being deleted); an owned pod the
//      selector no longer matches is released. Orphan ControllerRevisions are adopted.
//   3. Revisions (controllers/history): the update revision holds the current template
//      (`{"spec":{"template":{...,"$patch":"replace"}}}`), created with the collision count, or
//      an equal older one renumbered to the next revision; the current revision is the one named
//      by status.currentRevision (else the update revision).
//   4. Replicas: ordinals [start, start+replicas) (`replicas`), the others are condemned.
//      In order of ordinal, for each replica: a Failed or Succeeded pod is deleted (recreated on
//      a later sync); a missing one is created (its PVCs first, never deleted with the pod) at
//      the current revision when its ordinal is below the partition, else at the update
//      revision; with OrderedReady (monotonic) the sync stops after a create, at a terminating
//      pod, and at a pod that is not Running+Ready (and available for minReadySeconds). Pods
//      whose identity labels or claim owners are off are updated.
//      Then the claims of condemned pods get the owners the retention policy asks for, and the
//      condemned are deleted from the highest ordinal: OrderedReady one at a time, waiting for
//      it to go and for every other pod to be healthy (the first unhealthy pod may go); Parallel
//      all at once.
//   5. RollingUpdate: the pod with the highest ordinal >= partition not at the update revision
//      is deleted (one per sync), after every higher one is healthy at the update revision.
//      OnDelete: nothing (pods pick up the update when deleted).
//   6. Status (status subresource, only when changed): observedGeneration, replicas,
//      readyReplicas, availableReplicas, currentReplicas, updatedReplicas, currentRevision,
//      updateRevision, collisionCount; a finished RollingUpdate makes the update revision the
//      current one. Revisions beyond revisionHistoryLimit that no pod uses are deleted, oldest
//      first.
// Events on the StatefulSet (Kubernetes' words): SuccessfulCreate "create Pod web-0 in
// StatefulSet web successful", "create Claim www-web-0 Pod web-0 in StatefulSet web success";
// SuccessfulDelete "delete Pod web-1 in StatefulSet web successful"; SuccessfulUpdate; and
// FailedCreate/FailedDelete/FailedUpdate "... failed error: <why>" (Warning).
//
// Handlers only enqueue: StatefulSet add/update/delete; pod add/update/delete enqueue the pod's
// controlling StatefulSet, or for an orphan every StatefulSet whose selector matches it. A pod
// that becomes ready re-queues its set after minReadySeconds.
//
// Thread-safety: handlers and workers run concurrently; one key is synced by one worker at a
// time (WorkQueue). sync() reads through Listers and writes through StatefulSetClient and
// history::History (fakes in tests).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/history/history.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::statefulset {

// Cache reads (the informers' caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> statefulset(const std::string& key) = 0;  // "ns/name"
  virtual std::vector<json> statefulsets(const std::string& ns) = 0;
  virtual std::vector<json> pods(const std::string& ns) = 0;
  virtual std::optional<json> claim(const std::string& ns, const std::string& name) = 0;
};

// API writes (and the fresh reads Kubernetes makes before adopting).
class StatefulSetClient {
 public:
  virtual ~StatefulSetClient() = default;
  [[nodiscard]] virtual Result<json> create_pod(const std::string& ns, const json& pod) = 0;
  [[nodiscard]] virtual Status delete_pod(const std::string& ns, const std::string& name) = 0;
  // PUT of the pod, conditional on its resourceVersion.
  [[nodiscard]] virtual Result<json> update_pod(const json& pod) = 0;
  // Strategic merge patch (adopt/release: ownerReferences merge by uid).
  [[nodiscard]] virtual Status patch_pod(const std::string& ns, const std::string& name,
                                         const json& patch) = 0;
  [[nodiscard]] virtual Result<json> create_claim(const std::string& ns, const json& claim) = 0;
  [[nodiscard]] virtual Result<json> update_claim(const json& claim) = 0;
  [[nodiscard]] virtual Result<json> get_statefulset(const std::string& ns,
                                                     const std::string& name) = 0;
  // PUT of the status subresource, conditional on metadata.resourceVersion.
  [[nodiscard]] virtual Result<json> update_status(const json& set) = 0;
};

struct StatefulSetOptions {
  int workers = 2;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(300)};
  const client::Clock* clock = nullptr;  // steady time of the queue (nullptr: real)
  // Wall time for minReadySeconds (empty: system_clock::now).
  std::function<std::chrono::system_clock::time_point()> wall_clock;
};

class StatefulSetController : public Controller {
 public:
  explicit StatefulSetController(StatefulSetOptions opts = {});
  ~StatefulSetController() override;

  std::string name() const override { return "statefulset"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, StatefulSetClient* client, history::History* history,
                   EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }

  void on_set_add(const json& set);
  void on_set_update(const json& old_set, const json& set);
  void on_set_delete(const json& set);
  void on_pod_add(const json& pod);
  void on_pod_update(const json& old_pod, const json& pod);
  void on_pod_delete(const json& pod);

 private:
  struct Replica;
  struct Revisions;
  std::chrono::system_clock::time_point wall_now() const;
  void enqueue(const json& set);
  std::optional<json> resolve_controller(const json& pod);
  std::vector<json> matching_sets(const json& pod);

  Result<std::vector<json>> claim_pods(const json& set, std::vector<json> pods);
  Status adopt_orphan_revisions(const json& set, const history::Parent& parent,
                                const proto::LabelSelector& selector);
  Result<Revisions> get_revisions(const json& set, const history::Parent& parent,
                                  const proto::LabelSelector& selector);
  // Steps 4 and 5: the status computed (counts, revisions) and the first error.
  Status update_set(const json& set, Revisions& revs, const std::vector<json>& pods, json& status);
  Status update_status(const json& set, json status);
  Status truncate_history(const json& set, const std::vector<json>& pods, Revisions& revs);

  // stateful_pod_control.go.
  Status create_claims(const json& set, const json& pod);
  Status create_stateful_pod(const json& set, const json& pod);
  Status delete_stateful_pod(const json& set, const json& pod);
  Status update_stateful_pod(const json& set, json pod);
  // ClaimsMatchRetentionPolicy / UpdatePodClaimForRetentionPolicy.
  bool claims_match_policy(const json& set, const json& pod);
  Status update_claims_for_policy(const json& set, const json& pod);
  bool pod_claim_is_stale(const json& set, const json& pod);
  void pod_event(const json& set, const json& pod, const char* verb, const Status& st);

  StatefulSetOptions opts_;
  const client::Clock& clock_;
  Listers* listers_ = nullptr;
  StatefulSetClient* client_ = nullptr;
  history::History* history_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<StatefulSetClient> owned_client_;
  std::unique_ptr<history::History> owned_history_;
  std::shared_ptr<client::ApiClient> api_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::statefulset
