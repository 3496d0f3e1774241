// NamespaceController: finishes namespaces left in Terminating.
//
// The API server deletes a namespace the way it always has (apiserver/README.md): DELETE marks
// it (deletionTimestamp, status.phase Terminating; creating objects in it is refused with 403
// "unable to create new content in namespace X because it is being terminated"), deletes its
// contents synchronously and removes the namespace once nothing is left; an object held by a
// finalizer keeps the namespace Terminating until it goes. Kubernetes instead leaves the
// deleting to this controller (spec.finalizers "kubernetes" + the finalize subresource);
// skiff keeps the synchronous sweep so that clusters without a controller-manager (and every
// existing test) behave the same, and this controller is the safety net: for every namespace
// still Terminating it deletes whatever is left in it (every namespaced type, Background
// propagation, uid preconditions), and once nothing is left asks the API server to finish
// (DELETE of the namespace again, which sweeps and removes it). It re-checks a namespace
// every recheck_period while it is Terminating.
//
// Thread-safety: handlers enqueue only; sync() runs on the worker (tests call it directly).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::ns {

class NamespaceClient {
 public:
  virtual ~NamespaceClient() = default;
  // The cached Namespace, nullopt when gone.
  virtual std::optional<json> get(const std::string& name) = 0;
  virtual std::vector<json> list_namespaces() = 0;
  // Live list of `t` in namespace `ns` (items only).
  virtual Result<std::vector<json>> list(const proto::ResourceType& t, const std::string& ns) = 0;
  // DELETE (Background, preconditions.uid); NotFound/Conflict mean already gone.
  [[nodiscard]] virtual Status remove(const proto::ResourceType& t, const std::string& ns,
                                      const std::string& name, const std::string& uid) = 0;
  // DELETE of the namespace itself (the API server removes it once it is empty).
  [[nodiscard]] virtual Status finish(const std::string& name) = 0;
};

struct NamespaceOptions {
  // Namespaced types to empty; empty = every namespaced type of proto::Registry::builtin().
  std::vector<const proto::ResourceType*> types;
  // First look after the namespace turned Terminating (the API server's sweep usually
  // finished by then), and the interval while it stays Terminating.
  std::chrono::milliseconds first_delay{2'000};
  std::chrono::milliseconds recheck_period{5'000};
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(60)};
};

class NamespaceController : public Controller {
 public:
  explicit NamespaceController(NamespaceOptions opts = {});
  ~NamespaceController() override;

  std::string name() const override { return "namespace"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- for tests.
  void set_client(NamespaceClient* c) { client_ = c; }
  // One namespace: true when there is nothing (more) to do for it, false when it is still
  // Terminating and must be looked at again; an error when some call failed.
  [[nodiscard]] Result<bool> sync(const std::string& name);

 private:
  NamespaceOptions opts_;
  NamespaceClient* client_ = nullptr;
  std::unique_ptr<NamespaceClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::ns
