// EndpointSliceController: keeps discovery.k8s.io/v1 EndpointSlices in step with core/v1
// Endpoints, so that clients reading slices (kubectl >= 1.31 `describe svc`, kube-proxy-like
// consumers) see what skiff's endpoints controller (or a user, for a selector-less Service) put
// in the Endpoints. What the slices hold is endpointslice_util.h's plan.
//
// sync("ns/name"):
//   1. The Endpoints from the cache. Absent, labelled endpointslice.kubernetes.io/skip-mirror=true,
//      a leader-election lock, or named longer than a label value => every slice of ours labelled
//      kubernetes.io/service-name=name is deleted (NotFound is fine).
//   2. Otherwise plan_slices(Endpoints, Service or none, current slices): creates (generateName
//      `<name>-`), then updates (PUT conditional on the resourceVersion), then deletes. Nothing
//      is written when the slices already say what the Endpoints says.
//   3. A conflict, AlreadyExists or NotFound means our view was stale: the slices are listed
//      from the API server and the plan made again (3 attempts), then the key goes back to the
//      queue with back-off and a Warning event FailedToUpdateEndpointSlices goes to the Service.
// Because the slice cache lags behind this controller's own writes (a second sync before the
// watch delivers a create would create a duplicate), the slices it wrote or deleted stand in
// for the cached ones until the cache shows a resourceVersion at least as new.
//
// Handlers only enqueue: Endpoints add/update/delete its key; Service add/delete (and a uid
// change) its key (the ownerReference); a slice managed by us added/changed/deleted by anyone
// the key of its service-name label (so a slice deleted by hand comes back).
//
// Thread-safety: handlers and workers may run concurrently; a key is synced by one worker at a
// time (WorkQueue).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>  // Tracked holds objects; included only by main.cc and tests
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::endpointslice {

// Cache reads (the informers' caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> endpoints(const std::string& key) = 0;  // "ns/name"
  virtual std::optional<json> service(const std::string& key) = 0;
  // Slices of namespace `ns` labelled kubernetes.io/service-name=`service`.
  virtual std::vector<json> slices(const std::string& ns, const std::string& service) = 0;
  // The newest resourceVersion the slice cache has seen ("" when unknown).
  virtual std::string slices_version() = 0;
};

// API calls on EndpointSlices.
class SliceClient {
 public:
  virtual ~SliceClient() = default;
  [[nodiscard]] virtual Result<json> create(const std::string& ns, const json& slice) = 0;
  // PUT conditional on slice's metadata.resourceVersion.
  [[nodiscard]] virtual Result<json> update(const json& slice) = 0;
  [[nodiscard]] virtual Status remove(const std::string& ns, const std::string& name) = 0;
  // GET of the slices labelled kubernetes.io/service-name=`service` (after a conflict).
  [[nodiscard]] virtual Result<std::vector<json>> list(const std::string& ns,
                                                       const std::string& service) = 0;
};

struct EndpointSliceOptions {
  int workers = 4;
  size_t max_endpoints_per_slice = 100;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(100)};
};

class EndpointSliceController : public Controller {
 public:
  explicit EndpointSliceController(EndpointSliceOptions opts = {});
  ~EndpointSliceController() override;

  std::string name() const override { return "endpointslice"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, SliceClient* client, EventSink* events);
  [[nodiscard]] Status sync(const std::string& key);
  client::WorkQueue& queue() { return *queue_; }

  void on_endpoints(const json& ep);
  void on_endpoints_update(const json& old_ep, const json& ep);
  void on_service(const json& svc);
  void on_service_update(const json& old_svc, const json& svc);
  void on_slice(const json& slice);

 private:
  // A slice this controller wrote (object) or deleted (nullopt), by name, until the cache
  // shows it.
  struct Tracked {
    std::string rv;  // the resourceVersion of our write ("" for a delete)
    std::optional<json> object;
  };
  std::vector<json> current_slices(const std::string& key, const std::string& ns,
                                   const std::string& name);
  void track(const std::string& key, const std::string& slice_name, Tracked t);
  void forget(const std::string& key);
  Status apply(const std::string& key, const std::string& ns, const std::string& name,
               const std::optional<json>& ep, const std::optional<json>& svc,
               const std::vector<json>& current);

  EndpointSliceOptions opts_;
  Listers* listers_ = nullptr;
  SliceClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<SliceClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  std::mutex tracked_mu_;
  std::map<std::string, std::map<std::string, Tracked>> tracked_;  // key -> slice name -> write
  WorkerStats stats_;
};

}  // namespace skiff::controllers::endpointslice
