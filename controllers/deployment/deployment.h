// DeploymentController: rolls Deployments out through ReplicaSets, as Kubernetes'
// pkg/controller/deployment does (it manages ReplicaSets only; the ReplicaSet controller turns
// their replicas into pods).
//
// - One ReplicaSet per pod template, named "<deployment>-<hash>", labelled and selected by
//   pod-template-hash=<hash>, owned by the Deployment (controller ownerReference). ReplicaSets
//   matching the selector are adopted, owned ones that stop matching are released
//   (ControllerRefManager). The "new" RS is the oldest whose template equals the Deployment's
//   ignoring the hash label; the rest are "old".
// - RollingUpdate (maxSurge/maxUnavailable) and Recreate; revisions
//   (deployment.kubernetes.io/revision, max old + 1 for the new RS, so a rollback to an old
//   template reuses that RS with a new number); proportional scaling; pause; progress deadline
//   and the Available/Progressing conditions; revisionHistoryLimit cleanup.
// - sync(key) reads through DeploymentClient (the informers' caches) and writes through it,
//   every write conditional on the resourceVersion read, so a stale cache only costs a retry.
//
// Thread-safety: handlers and workers may run concurrently; the queue never hands one key to
// two workers; the controller keeps no other mutable state.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/deployment/util.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::deployment {

// What sync needs of a pod (Recreate waits for the old ones to be gone).
struct PodInfo {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string controller_uid;  // uid of its controller ownerReference, "" if none
  std::string phase;
};

// What sync reads (caches) and writes (API). Tests use a fake.
class DeploymentClient {
 public:
  virtual ~DeploymentClient() = default;
  virtual std::optional<Deployment> get_deployment(const std::string& ns,
                                                   const std::string& name) = 0;
  virtual std::vector<Deployment> list_deployments(const std::string& ns) = 0;
  virtual std::vector<ReplicaSet> list_replicasets(const std::string& ns) = 0;
  virtual std::vector<PodInfo> list_pods(const std::string& ns) = 0;
  // A live read (not the cache), used before adopting: NotFound when gone.
  [[nodiscard]] virtual Result<Deployment> get_deployment_live(const std::string& ns,
                                                               const std::string& name) = 0;
  // AlreadyExists when the name is taken.
  [[nodiscard]] virtual Result<ReplicaSet> create_replicaset(const ReplicaSet& rs) = 0;
  // Conditional on rs.metadata.resourceVersion (Conflict when stale).
  [[nodiscard]] virtual Result<ReplicaSet> update_replicaset(const ReplicaSet& rs) = 0;
  [[nodiscard]] virtual Status delete_replicaset(const std::string& ns,
                                                 const std::string& name) = 0;
  // Writes status (conditional on the resourceVersion).
  [[nodiscard]] virtual Result<Deployment> update_status(const Deployment& d) = 0;
  // Writes metadata.annotations (conditional on the resourceVersion). In skiff the status
  // subresource keeps metadata, so this is a separate write of the main resource (which bumps
  // metadata.generation, as annotation changes do for Deployments).
  [[nodiscard]] virtual Result<Deployment> update_annotations(const Deployment& d) = 0;
};

struct DeploymentOptions {
  int workers = 2;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(60)};
  // Wall clock for conditions and the progress deadline (tests inject one).
  std::function<proto::Clock::time_point()> now = [] { return proto::Clock::now(); };
};

class DeploymentController : public Controller {
 public:
  explicit DeploymentController(DeploymentOptions opts = {});
  ~DeploymentController() override;

  std::string name() const override { return "deployment"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- public for tests (fake client and event sink).
  void set_clients(DeploymentClient* c, EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }

  // Handlers (informer callbacks; only enqueue).
  void on_deployment(const json& d);
  void on_rs_add(const json& rs);
  void on_rs_update(const json& old_rs, const json& cur_rs);
  void on_rs_delete(const json& rs);
  void on_pod_delete(const json& pod);

 private:
  struct Sync;  // one sync's state (deployment.cc)
  void enqueue_key(const std::string& key);
  void enqueue_for_rs(const ReplicaSet& rs, bool orphan_too);

  DeploymentOptions opts_;
  DeploymentClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<DeploymentClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::deployment
