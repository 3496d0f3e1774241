// GarbageCollector: deletes objects whose owners (metadata.ownerReferences) are gone, and
// finishes Foreground and Orphan deletions, as Kubernetes' garbage collector does.
//
// - Background (the default): a dependent whose every owner is gone is deleted (Background,
//   with its uid as a precondition); when some owners remain, only the dangling references are
//   removed. "Gone" is decided by a live GET of the owner (by name; another uid counts as
//   gone), never by the cache alone, so a lagging cache cannot cause a deletion.
// - Foreground: the API server marks the owner (deletionTimestamp + finalizer
//   foregroundDeletion). The collector deletes its dependents (Foreground when they have
//   dependents themselves, so chains wait bottom-up; a dependent that another live owner still
//   holds only loses its reference to this owner), waits until no dependent with
//   blockOwnerDeletion: true is left, then removes the finalizer and the API server deletes
//   the owner.
// - Orphan: the owner carries the finalizer `orphan`; the collector removes the references to
//   it from every dependent, then the finalizer.
//
// One worker runs sync(), a full pass over every watched type's cache: it is woken by changes
// that matter (objects with owners or being deleted, and every deletion) and every
// resync_period. Simple, and cheap for the cluster sizes skiff targets (one pass is linear in
// the cached objects; API calls happen only for objects that need action).
//
// Thread-safety: handlers enqueue only; sync() runs on the single worker (tests call it
// directly).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>  // Item holds objects by value; only main.cc and gc/ include this
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::gc {

inline constexpr const char* kForegroundFinalizer = "foregroundDeletion";
inline constexpr const char* kOrphanFinalizer = "orphan";

// One cached object and its type.
struct Item {
  const proto::ResourceType* type = nullptr;
  json obj;
};

// What sync reads (caches, live GETs) and writes (the API). Tests use a fake.
class GcClient {
 public:
  virtual ~GcClient() = default;
  // Every cached object of every watched type.
  virtual std::vector<Item> list_all() = 0;
  // The resource type for an ownerReference (apiVersion, kind); nullptr when not served.
  virtual const proto::ResourceType* type_of(const std::string& api_version,
                                             const std::string& kind) = 0;
  // Live read from the API server: nullopt when NotFound, an error on any other failure.
  virtual Result<std::optional<json>> get_live(const proto::ResourceType& t, const std::string& ns,
                                               const std::string& name) = 0;
  // DELETE with preconditions.uid = uid and the given propagationPolicy. NotFound and a
  // failed uid precondition (Conflict) mean the object is already gone.
  [[nodiscard]] virtual Status remove(const proto::ResourceType& t, const std::string& ns,
                                      const std::string& name, const std::string& uid,
                                      const std::string& propagation) = 0;
  // JSON merge patch of the object (conditional when the patch carries
  // metadata.resourceVersion).
  [[nodiscard]] virtual Status patch(const proto::ResourceType& t, const std::string& ns,
                                     const std::string& name, const json& merge_patch) = 0;
};

struct GcOptions {
  // Types to watch; empty = every type of proto::Registry::builtin().
  std::vector<const proto::ResourceType*> types;
  std::chrono::milliseconds resync_period{30'000};
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(30)};
};

class GarbageCollector : public Controller {
 public:
  explicit GarbageCollector(GcOptions opts = {});
  ~GarbageCollector() override;

  std::string name() const override { return "garbagecollector"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- for tests (with a fake GcClient).
  void set_client(GcClient* c, EventSink* events = nullptr) {
    client_ = c;
    events_ = events;
  }
  // One full pass (see above). An error when some action failed (the pass is retried).
  [[nodiscard]] Status sync();
  // Whether a change from `old_obj` (null on add/delete) to `obj` needs a pass.
  static bool relevant(const json* old_obj, const json& obj);

 private:
  class Pass;

  GcOptions opts_;
  GcClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<GcClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::gc
