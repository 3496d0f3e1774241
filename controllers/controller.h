// Controller: what skiff-controller-manager runs. One controller per folder under controllers/
// (nodeipam/ now; replicaset/, deployment/, gc/ ... later); the manager (manager.h) owns the
// shared informers, the event recorder and the metrics, and runs every enabled controller while
// it is the leader.
//
// Life of a controller:
//   1. init(ctx): ask ctx.informers for the informers it needs and add its handlers (which only
//      enqueue keys). Nothing runs yet.
//   2. The manager starts the informers and waits until all have synced.
//   3. run(stop): rebuild whatever state it keeps from the synced caches, then run its workers
//      (get key -> sync(key) -> done; error => add_rate_limited) until `stop`; shut the queue
//      down and return once the workers have exited.
//
// This header is interfaces only (no library), so controller folders depend on it without
// depending on the manager.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <stop_token>
#include <string>

#include "common/status.h"

namespace skiff::proto {
struct ResourceType;
}
namespace skiff::client {
class ApiClient;
class Informer;
}  // namespace skiff::client

namespace skiff::controllers {

using json = nlohmann::json;

// Events about API objects (core/v1 Event, source = the controller). Thread-safe; never
// blocks on the API (a recorder may drop under pressure).
class EventSink {
 public:
  virtual ~EventSink() = default;
  // `obj` is the involved object as JSON (kind/apiVersion may be missing: `kind` fills them).
  virtual void event(const json& obj, const std::string& kind, bool warning,
                     const std::string& reason, const std::string& message) = 0;
};

// One informer per resource type, shared by every controller that asks for it.
class InformerFactory {
 public:
  virtual ~InformerFactory() = default;
  // REQUIRES: before the manager starts the informers.
  virtual client::Informer& informer(const proto::ResourceType& type) = 0;
};

// Counters a controller's workers keep; the manager renders them on /metrics.
struct WorkerStats {
  std::atomic<int64_t> syncs{0};
  std::atomic<int64_t> sync_errors{0};
  std::atomic<int64_t> retries{0};      // keys re-queued with back-off
  std::atomic<int64_t> sync_micros{0};  // total time spent in sync
  std::function<size_t()> depth;        // keys waiting in the queue (set by the controller)
};

struct ControllerContext {
  std::shared_ptr<client::ApiClient> api;
  InformerFactory* informers = nullptr;
  EventSink* events = nullptr;
};

class Controller {
 public:
  virtual ~Controller() = default;
  // "nodeipam": used in logs and as the metrics label.
  virtual std::string name() const = 0;
  // Registers informers and handlers. Errors stop the manager (bad configuration).
  [[nodiscard]] virtual Status init(ControllerContext& ctx) = 0;
  // Runs until `stop` (see above). Called once, after every informer has synced.
  virtual void run(std::stop_token stop) = 0;
  virtual const WorkerStats& stats() const = 0;
};

}  // namespace skiff::controllers
