// EndpointsController: keeps each selector Service's core/v1 Endpoints (same namespace and name)
// listing the pods its selector picks, as Kubernetes' pkg/controller/endpoint does.
//
// sync("ns/name"):
//   1. The Service from the cache. Gone => its Endpoints are deleted (NotFound is fine) and its
//      trigger-time state dropped.
//   2. ExternalName, or no selector => nothing (the user owns those Endpoints).
//   3. The namespace's pods the selector matches that should be in Endpoints (pod IP set, not
//      Succeeded/Failed, not being deleted unless publishNotReadyAddresses): ready ones (or all,
//      with publishNotReadyAddresses) as addresses, others as notReadyAddresses; one port per
//      service port with the targetPort resolved for that pod (a pod lacking a named port is
//      left out of that port); a headless Service without ports gets its addresses bare.
//      Repacked and truncated at 1000 addresses (endpoints_util.h).
//   4. Labels = the Service's (+ service.kubernetes.io/headless when it has no cluster IP);
//      annotation endpoints.kubernetes.io/last-change-trigger-time (Go's RFC3339Nano: RFC 3339,
//      fraction only when non-zero) from the TriggerTimeTracker, removed when no trigger time is
//      known.
//   5. Written only when the subsets, the labels or the over-capacity mark differ from the
//      stored Endpoints (the trigger time alone never causes a write): POST when absent, else
//      PUT conditional on its resourceVersion. A conflict (or AlreadyExists) re-reads the
//      Endpoints from the API server and tries again, up to 3 times; further failures go back
//      to the queue with back-off. A create refused because the namespace is terminating is
//      dropped. Warning events FailedToCreateEndpoint / FailedToUpdateEndpoint.
// Because the Endpoints cache can lag behind this controller's own writes, the last Endpoints it
// wrote for a key stands in for the cached one while the cache still shows what that write
// replaced (no needless conflict on the next sync).
//
// run() first enqueues every existing Endpoints (except leader-election locks) so that the
// Endpoints of Services deleted while no controller ran are removed (checkLeftoverEndpoints).
//
// Handlers only enqueue: Service add/update/delete its key; Endpoints delete its key (it is
// re-created if still wanted); pod add/delete every Service selecting it; pod update (when its
// readiness, IPs, node, phase or deletion changed, or its labels/hostname/subdomain changed)
// the Services selecting the old or the new pod (the union when the pod changed, the symmetric
// difference when only its membership did).
//
// Thread-safety: handlers and workers may run concurrently; a key is synced by one worker at a
// time (WorkQueue).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/endpoints/endpoints_util.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::endpoints {

// Cache reads (the informers' caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> service(const std::string& key) = 0;  // "ns/name"
  virtual std::vector<json> services(const std::string& ns) = 0;
  virtual std::vector<json> pods(const std::string& ns) = 0;
  virtual std::optional<json> endpoints(const std::string& key) = 0;
  virtual std::vector<json> all_endpoints() = 0;
};

// API calls on Endpoints.
class EndpointsClient {
 public:
  virtual ~EndpointsClient() = default;
  [[nodiscard]] virtual Result<json> create(const std::string& ns, const json& ep) = 0;
  // PUT conditional on ep's metadata.resourceVersion.
  [[nodiscard]] virtual Result<json> update(const json& ep) = 0;
  [[nodiscard]] virtual Status remove(const std::string& ns, const std::string& name) = 0;
  // GET from the API server (after a conflict).
  [[nodiscard]] virtual Result<json> get(const std::string& ns, const std::string& name) = 0;
};

struct EndpointsOptions {
  int workers = 4;
  int max_capacity = kMaxCapacity;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(100)};
};

class EndpointsController : public Controller {
 public:
  explicit EndpointsController(EndpointsOptions opts = {});
  ~EndpointsController() override;

  std::string name() const override { return "endpoints"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, EndpointsClient* client, EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }
  // Enqueues every Endpoints of the cache that is not a leader-election lock.
  void enqueue_leftovers();

  void on_service_add(const json& svc);
  void on_service_update(const json& old_svc, const json& svc);
  void on_service_delete(const json& svc);
  void on_pod_add(const json& pod);
  void on_pod_update(const json& old_pod, const json& pod);
  void on_pod_delete(const json& pod);
  void on_endpoints_delete(const json& ep);

 private:
  struct Written {
    std::string replaced_rv;  // resourceVersion the write replaced ("" = created)
    json object;              // the Endpoints as the API server returned it
  };
  // Keys of the Services (of pod's namespace) selecting pod.
  std::vector<std::string> services_of(const json& pod);
  // The stored Endpoints: the cache's, or our last write while the cache lags behind it.
  std::optional<json> current_endpoints(const std::string& key);
  void remember_write(const std::string& key, std::string replaced_rv, json written);
  void forget_write(const std::string& key);
  Status delete_endpoints(const std::string& key, const std::string& ns, const std::string& name);

  EndpointsOptions opts_;
  Listers* listers_ = nullptr;
  EndpointsClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<EndpointsClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  TriggerTimeTracker triggers_;
  std::mutex written_mu_;
  std::map<std::string, Written> written_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::endpoints
