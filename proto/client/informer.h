// Informer: keeps a local cache of one resource type (optionally one namespace and selectors)
// in step with the API server, and tells handlers about changes.
//
// It lists, then watches from the list's resourceVersion; when a watch ends or drops it
// watches again from the last resourceVersion seen (events and bookmarks); on 410 Gone it lists
// again and reports the differences (adds, updates, deletes) so handlers never miss a change.
// Transport errors are retried with exponential back-off. It runs on its own thread between
// start() and stop(); handlers run on that thread, one at a time, after the cache is updated,
// and should only enqueue keys (see workqueue.h).
//
// The cache is keyed "namespace/name" ("name" for cluster-scoped types) and indexed by
// namespace, by label and by owner uid. Cache reads are thread-safe and return copies, except
// snapshot(), which shares the cached objects (immutable) without copying them.
//
// An optional transform (InformerOptions::transform, client-go's SetTransform) rewrites every
// object before it is cached and handed to handlers, so a cache of 20,000 objects keeps only the
// fields its users read.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "proto/client/api_client.h"
#include "proto/selector.h"

namespace skiff::client {

struct InformerOptions {
  std::string namespace_;  // "" = all namespaces
  std::string label_selector;
  std::string field_selector;
  int watch_timeout_seconds = 300;  // the server ends each watch after this; we resume
  // A watch on which nothing arrives (not even a BOOKMARK: skiff's API server sends one every
  // 5 s) for this long is given up and resumed: an API server whose machine rebooted or lost
  // its network never closes the old connection. 0: wait for watch_timeout_seconds.
  std::chrono::milliseconds watch_idle_timeout{30'000};
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{30'000};
  // Applied to every object (listed, watched, deleted) before it is cached or reaches a handler;
  // it may drop fields (also apiVersion/kind, which the informer adds before calling it). The
  // cache key and the resourceVersion the informer resumes from are read before it runs, so it
  // may drop those too, but relists compare cached objects by metadata.resourceVersion first:
  // keep it to spare the deep comparison. Must not throw; runs on the informer's thread.
  std::function<void(json& obj)> transform;
  // Keeps each cached object serialized (CBOR, ~1/10 of nlohmann's in-memory size: a slim
  // Endpoints with 5 addresses is 3.7 KB as json, 343 bytes as CBOR). Reads decode: get(),
  // list(), by_*() return copies as always; snapshot() then decodes everything (avoid it),
  // for_each() one object at a time. Handlers still receive decoded objects.
  bool compact_cache = false;
  // Lists in pages of this many objects (client-go's reflector uses 500), each handled before
  // the next is fetched, so a relist holds one page of parsed JSON at a time, not the whole
  // list. 0 = one request.
  int64_t page_size = 500;
  // Keeps the namespace, label and owner indexes behind by_namespace/by_label/by_owner. Off,
  // those walk the whole cache instead (same answers), and each object costs less memory (at
  // 20,000 objects the indexes were 1.6 MB).
  bool indexes = true;
};

struct InformerHandlers {
  std::function<void(const json& obj)> on_add;
  std::function<void(const json& old_obj, const json& new_obj)> on_update;
  std::function<void(const json& obj)> on_delete;
};

// "namespace/name", or "name" when the object has no namespace.
std::string object_key(const json& obj);

class Informer {
 public:
  Informer(std::shared_ptr<ApiClient> api, const proto::ResourceType& type,
           InformerOptions opts = {});
  ~Informer();  // stops
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // REQUIRES: before start().
  void add_handlers(InformerHandlers h);
  void start();
  // Ends the watch and joins the thread. Idempotent.
  void stop();

  // True once the first list has been stored and reported.
  bool has_synced() const;
  // Waits for has_synced(); false on timeout.
  bool wait_for_sync(std::chrono::milliseconds timeout) const;
  // The newest resourceVersion seen (list, event or bookmark).
  std::string resource_version() const;
  // How many times it listed (1 after the initial list; more after 410s).
  int list_count() const;

  std::optional<json> get(const std::string& key) const;
  std::vector<json> list() const;
  // The cached objects in key order, shared: no object is copied (at 10,000 Endpoints a list()
  // copy is tens of MB). They are immutable; an update replaces the pointer in the cache, so a
  // snapshot stays as it was taken.
  std::vector<std::shared_ptr<const json>> snapshot() const;
  // Calls fn for every cached object in key order, under the cache's lock (fn must not call
  // back into this informer). With compact_cache, decodes one object at a time.
  void for_each(const std::function<void(const json& obj)>& fn) const;
  std::vector<json> by_namespace(const std::string& ns) const;
  std::vector<json> by_label(const proto::LabelSelector& sel) const;
  std::vector<json> by_owner(const std::string& owner_uid) const;

 private:
  void run(std::stop_token stop);
  // One list and the diff against the cache; false when it failed.
  bool relist(std::stop_token& stop);
  // Adds apiVersion/kind when missing, then applies the transform. Returns the object's key
  // and sets *rv to its resourceVersion, both read before the transform.
  std::string prepare(json& obj, std::string* rv) const;
  // A cache entry: the json object, or with compact_cache one allocation holding its CBOR
  // encoding (a 4-byte length, then the bytes).
  using Entry = std::shared_ptr<const void>;
  Entry store(const std::shared_ptr<const json>& obj) const;
  // The compact_cache entry of `obj`, and whether two such entries hold the same bytes.
  static Entry pack(const json& obj);
  static bool same_packed(const Entry& a, const Entry& b);
  // The object an entry holds (decoded when compact_cache).
  json decode(const Entry& entry) const;
  std::shared_ptr<const json> load(const Entry& entry) const;
  // `obj` is prepared; `key` and `rv` are prepare()'s; `stored`, when given, is its entry.
  void upsert(const std::string& key, const std::string& rv, json obj, Entry stored = nullptr);
  // `obj` is prepared (or a cached object); `key` and `rv` as for upsert.
  void erase(const std::string& key, const std::string& rv, const json& obj);
  void index_locked(const std::string& key, const json& obj, bool add);
  void set_rv(const std::string& rv);
  void sleep(std::stop_token& stop, std::chrono::milliseconds d);

  std::shared_ptr<ApiClient> api_;
  const proto::ResourceType& type_;
  InformerOptions opts_;
  std::vector<InformerHandlers> handlers_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, Entry> cache_;
  std::map<std::string, std::set<std::string>> by_ns_;
  std::map<std::string, std::set<std::string>> by_label_;  // "k=v" -> keys
  std::map<std::string, std::set<std::string>> by_owner_;
  std::string rv_;
  bool synced_ = false;
  int lists_ = 0;
  std::jthread thread_;
};

}  // namespace skiff::client
