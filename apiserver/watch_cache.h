// WatchCache: the API server's fan-out of store events to watch streams.
//
// It subscribes to the Store once and keeps, per resource, a window of the most recent events.
// Each event holds the stored text of the object (and of the previous one), parsed only while
// it is being delivered, and its serialized watch lines per encoding, computed once on first
// use and shared by every watcher. A watch starts from the
// current state (synthetic ADDED events), from a revision inside the window (replayed from
// memory), or from an older, not yet compacted revision (replayed from Store::events_since);
// otherwise it gets one ERROR 410 Expired event. Each watcher sees events in revision order,
// each once, filtered by namespace, labels and fields with Kubernetes' move-in/move-out rules.
//
// Threading: the store's commit thread only enqueues (and wakes the dispatcher, after the
// request's answer has gone out when it is an API I/O thread); one dispatcher thread parses events,
// appends them to the window and writes to the watchers' streams (Stream::write never blocks);
// one housekeeping thread sends bookmarks, ends watches at their timeout and forgets closed
// ones. serve() runs on the caller's (worker) thread. All methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apiserver/api_util.h"
#include "apiserver/http.h"
#include "common/status.h"
#include "proto/selector.h"

namespace skiff::proto {
class Registry;
struct ResourceType;
}  // namespace skiff::proto
namespace skiff::store {
class Store;
struct Event;
}  // namespace skiff::store

namespace skiff::apiserver {

// Which objects a list or watch selects: namespace, label and field selectors.
struct ObjectFilter {
  const proto::ResourceType* rt = nullptr;
  std::string ns;  // "" = all namespaces
  proto::LabelSelector labels;
  proto::FieldSelector fields;
  bool matches(const json& obj) const;
  // True when every object of rt matches (no need to parse objects to filter them).
  bool selects_all() const;
};

struct WatchRequest {
  const proto::ResourceType* rt = nullptr;
  ObjectFilter filter;
  Encoding enc;
  // Start after this revision; nullopt (or 0) = the current state as ADDED events first.
  std::optional<int64_t> from_revision;
  bool bookmarks = false;
  std::chrono::steady_clock::duration timeout = std::chrono::minutes(30);
};

class WatchCache {
 public:
  struct Event;
  struct Watcher;
  struct Resource;

  WatchCache(store::Store* store, int64_t window_events, int bookmark_interval_ms);
  ~WatchCache();
  WatchCache(const WatchCache&) = delete;
  WatchCache& operator=(const WatchCache&) = delete;

  // Subscribes to the store and starts the threads. Call once, before serve().
  Status start(const proto::Registry& registry);
  // Closes every watch stream, stops the threads and unsubscribes. Idempotent.
  void shutdown();

  // Runs one watch on `stream`: sends the initial state or the replay, then leaves the watcher
  // registered for live events and returns. The stream is closed at the timeout, on shutdown,
  // or when the transport cuts it off.
  void serve(std::shared_ptr<Stream> stream, WatchRequest req);

  // The newest revision whose event has been handed to every watcher (for tests and
  // bookmarks).
  int64_t dispatched_revision() const { return dispatched_rev_.load(); }
  size_t watcher_count();

 private:
  void on_store_event(const store::Event& ev);
  void dispatch_loop();
  void housekeeping_loop();
  void dispatch(const store::Event& ev);
  Resource* resource_for_key(const std::string& key);

  store::Store* store_;
  const int64_t window_events_;
  const std::chrono::milliseconds bookmark_interval_;
  uint64_t subscription_ = 0;
  bool started_ = false;

  std::map<std::string, std::unique_ptr<Resource>> resources_;  // by resource_prefix(); fixed

  std::mutex queue_mu_;
  // The dispatcher waits for events here. Shared with wake-ups deferred past the answer of the
  // request that committed the event (see on_store_event), which may outlive this object.
  std::shared_ptr<std::condition_variable> queue_cv_ = std::make_shared<std::condition_variable>();
  std::condition_variable stop_cv_;  // the housekeeper sleeps here between ticks
  std::deque<store::Event> queue_;
  bool stopping_ = false;  // under queue_mu_
  std::atomic<bool> shut_down_{false};
  std::atomic<int64_t> dispatched_rev_{0};
  std::atomic<uint64_t> next_watcher_id_{1};

  std::thread dispatcher_;
  std::thread housekeeper_;
};

}  // namespace skiff::apiserver
