// ServiceAccountsController: every active namespace has a ServiceAccount `default`, as
// Kubernetes' serviceaccounts controller (pkg/controller/serviceaccount) makes sure.
//
// A namespace added or updated is queued; so is the namespace of a ServiceAccount deleted (a
// deleted `default` comes back). sync(namespace) does nothing for a namespace that is gone or
// not active (deletionTimestamp set or status.phase Terminating); otherwise it creates each
// wanted ServiceAccount missing from the informer cache. AlreadyExists (the cache lags), NotFound
// (the namespace went meanwhile) and the API server's "being terminated" refusal are not
// errors. Nothing else is written: no tokens (skiff has no token controller yet), no pod
// admission (pods' serviceAccountName is neither defaulted nor checked).
//
// Thread-safety: handlers only enqueue; sync() runs on the workers (tests call it directly).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::serviceaccount {

// What sync reads and writes, so unit tests run it on fakes.
class SaClient {
 public:
  virtual ~SaClient() = default;
  // The cached Namespace, nullopt when gone.
  virtual std::optional<json> get_namespace(const std::string& name) = 0;
  virtual std::vector<json> list_namespaces() = 0;
  // Whether the ServiceAccount ns/name is in the cache.
  virtual bool has_service_account(const std::string& ns, const std::string& name) = 0;
  // POST of `sa` into namespace `ns`; the API server's error as it is.
  [[nodiscard]] virtual Status create(const std::string& ns, const json& sa) = 0;
};

struct ServiceAccountsOptions {
  // Kubernetes' DefaultServiceAccountsControllerOptions: just `default`.
  std::vector<std::string> names = {"default"};
  int workers = 2;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(60)};
};

class ServiceAccountsController : public Controller {
 public:
  explicit ServiceAccountsController(ServiceAccountsOptions opts = {});
  ~ServiceAccountsController() override;

  std::string name() const override { return "serviceaccount"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- for tests.
  void set_client(SaClient* c) { client_ = c; }
  client::WorkQueue& queue() { return *queue_; }
  // Handlers as init() registers them (they only enqueue).
  void on_namespace(const json& ns);
  void on_service_account_deleted(const json& sa);
  // One namespace: creates what is missing. Error when a create failed (retried with back-off).
  [[nodiscard]] Status sync(const std::string& ns);
  // Number of ServiceAccounts this controller created.
  int64_t created() const { return created_; }

 private:
  ServiceAccountsOptions opts_;
  SaClient* client_ = nullptr;
  std::unique_ptr<SaClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
  std::atomic<int64_t> created_{0};
};

// A namespace objects may be created in: not being deleted (no deletionTimestamp, phase not
// Terminating). A missing phase counts as Active (the API server defaults it).
bool namespace_active(const json& ns);

}  // namespace skiff::controllers::serviceaccount
