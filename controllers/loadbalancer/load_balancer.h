// LoadBalancerController: gives every Service of type LoadBalancer an address from the pool
// (MetalLB's controller): status.loadBalancer.ingress = [{ip}], written through the status
// subresource. The address is announced on the LAN by skiff-netagent (netagent/announce).
//
// - Services handled: type LoadBalancer without spec.loadBalancerClass, or with class
//   "skiff.io/lb" (kLoadBalancerClass). Others are never touched.
// - Pool: the --lb-pool entries (options.pool) plus ConfigMap kube-system/skiff-lb-pool key
//   `pool` (comma/space separated), followed as it changes. Bad entries are reported (log, and
//   a Warning event `InvalidPool` on the ConfigMap, once per distinct text) and the good ones
//   still used. Bad --lb-pool entries make create() fail (a flag error).
// - spec.loadBalancerIP is honoured when it is in the pool and free; otherwise a Warning event
//   `AllocationFailed` says why and the Service gets no address until that changes.
// - At start (after the informers synced, before any allocation) every address already in a
//   handled Service's status is recorded for it (so a restarted controller keeps them); a
//   second Service claiming the same address is given another one.
// - Released when the Service is deleted or stops being handled (its ingress cleared when it
//   still exists); an address that left the pool is replaced by a pool address.
// - Pool exhausted: Warning event `AllocationFailed` (once while it waits), retried with
//   back-off and at once when an address is freed or the pool changes.
// - sync(key) is idempotent: a Service that has its address causes no write.
//
// Thread-safety: handlers and workers may call in concurrently; the pool is under one mutex,
// API calls are made outside it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/loadbalancer/pool.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::loadbalancer {

inline constexpr const char* kLoadBalancerClass = "skiff.io/lb";

// What sync reads (the informers' caches) and writes (the API). Tests use a fake.
class LbClient {
 public:
  virtual ~LbClient() = default;
  // The Service "namespace/name" from the cache.
  virtual std::optional<json> get_service(const std::string& key) = 0;
  virtual std::vector<json> list_services() = 0;
  // The pool ConfigMap from the cache (nullopt when absent).
  virtual std::optional<json> get_pool_configmap() = 0;
  // Replaces status.loadBalancer of `svc` (as read: namespace, name, resourceVersion) through
  // the status subresource: Conflict when the Service changed since, NotFound when gone.
  [[nodiscard]] virtual Status write_status(const json& svc, const json& load_balancer) = 0;
};

struct LoadBalancerOptions {
  // --lb-pool entries: "A-B" ranges, CIDRs or single addresses (see pool.h). May be empty.
  std::vector<std::string> pool;
  std::string configmap_namespace = "kube-system";
  std::string configmap_name = "skiff-lb-pool";
  int workers = 1;
  // max_delay bounds how long a Service waits for an address when the pool is exhausted (it is
  // also woken at once when an address is freed or the pool changes).
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(30)};
};

// True when this controller handles `svc` (type LoadBalancer, class absent or ours).
bool handles(const json& svc);

class LoadBalancerController : public Controller {
 public:
  // Invalid (naming each bad entry) when an options.pool entry is bad.
  static Result<std::unique_ptr<LoadBalancerController>> create(LoadBalancerOptions opts);
  ~LoadBalancerController() override;

  std::string name() const override { return "loadbalancer"; }
  // Informers: Services and ConfigMaps.
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests (with a fake LbClient and EventSink).
  void set_clients(LbClient* client, EventSink* events);
  // Reads the ConfigMap and sets the pool (flags + ConfigMap); re-queues every handled Service
  // when the ranges changed. Bad entries are reported once per distinct text.
  void reload_pool();
  // Records the addresses already in handled Services' statuses. REQUIRES: after reload_pool,
  // before the first sync.
  void rebuild();
  // Key: "namespace/name" of a Service, or kPoolKey (the ConfigMap changed).
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }
  static constexpr const char* kPoolKey = "#pool";

  // The address recorded for Service "ns/name" ("" when none).
  std::string address_of(const std::string& key) const;
  uint64_t used() const;
  uint64_t capacity() const;

 private:
  LoadBalancerController(LoadBalancerOptions opts, std::vector<AddrRange> flag_ranges);
  void enqueue_service(const json& svc);
  void enqueue_configmap(const json& cm);
  void wake_waiting();
  // Reports a failed allocation once per distinct message while the Service waits.
  void report_failure(const json& svc, const std::string& key, const std::string& msg);
  // Frees the address `key` holds and clears the ingress of `svc` (when given and not empty).
  [[nodiscard]] Status release_and_clear(const std::string& key, const json* svc,
                                         bool keep_waiting = false);

  LoadBalancerOptions opts_;
  std::vector<AddrRange> flag_ranges_;
  LbClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<LbClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;

  mutable std::mutex mu_;
  AddressPool pool_;
  std::map<std::string, std::string> waiting_;  // Service key -> last failure reported
  std::set<std::string> reported_bad_pool_;     // bad ConfigMap texts already reported
};

}  // namespace skiff::controllers::loadbalancer
