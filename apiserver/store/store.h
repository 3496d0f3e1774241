// Store: the revisioned key-value log under the API server (DESIGN.md §4).
//
// Keys are paths ("/registry/pods/default/web-1"), values are opaque bytes (the object's JSON,
// written without metadata.resourceVersion: the API server sets it from mod_revision on read).
// Every successful write (create, update, delete) gets the next global revision, starting at 1.
// History is kept until compacted, so watches can resume from any revision > compacted_revision().
//
// Thread-safety: every method may be called from any thread concurrently. Methods block until
// the operation is durable (for SQLite: fsynced; concurrent writers share one commit).
// Watchers are called after the write is committed, in strictly increasing revision order, from
// the committing thread, with no store lock held that a watcher could deadlock on; they must be
// quick (copy and post elsewhere).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::store {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;  // revision of the create that started this key's life
  int64_t mod_revision = 0;     // revision of the last write (for a delete event: the delete's)
};

enum class EventType { kPut, kDelete };

struct Event {
  EventType type = EventType::kPut;
  KeyValue kv;                  // for kDelete: the value as it was before deletion
  bool is_create = false;       // kPut that created the key
  std::optional<KeyValue> prev; // the previous value for kPut updates and kDelete, when known
  int64_t revision() const { return kv.mod_revision; }
};

struct ListResult {
  std::vector<KeyValue> items;  // ordered by key
  int64_t revision = 0;         // the revision the list was read at
  bool more = false;            // more keys after the last item (paging)
};

using WatchCallback = std::function<void(const Event&)>;

class Store {
 public:
  virtual ~Store() = default;

  // On success: the live value. NotFound if absent.
  virtual Result<KeyValue> get(std::string_view key) = 0;

  // Keys with `prefix` as they were at `revision` (0 = current), ordered by key, starting after
  // `start_after` (exclusive; "" = from the start), at most `limit` items (0 = no limit).
  // Gone if revision <= compacted_revision(); Invalid if revision > current.
  virtual Result<ListResult> list(std::string_view prefix, int64_t revision, int64_t limit,
                                  std::string_view start_after) = 0;

  // Creates key. AlreadyExists if it is live.
  virtual Result<KeyValue> create(std::string_view key, std::string_view value) = 0;

  // Replaces the value. NotFound if absent; Conflict if expected_revision != 0 and differs from
  // the key's mod_revision.
  virtual Result<KeyValue> update(std::string_view key, std::string_view value,
                                  int64_t expected_revision) = 0;

  // Deletes key; returns the deleted value with mod_revision = the delete's revision.
  // NotFound / Conflict as for update.
  virtual Result<KeyValue> remove(std::string_view key, int64_t expected_revision) = 0;

  virtual int64_t current_revision() = 0;
  virtual int64_t compacted_revision() = 0;

  // Drops history at or below `revision` (live values are kept). Later list/events_since at or
  // below it answer Gone.
  virtual Status compact(int64_t revision) = 0;

  // Events on keys with `prefix` with revision > from_revision, in order, up to the current
  // revision. Gone if from_revision < compacted_revision().
  virtual Result<std::vector<Event>> events_since(std::string_view prefix,
                                                  int64_t from_revision) = 0;

  // Registers a callback for every committed event from now on (all keys). The returned id
  // unregisters it. Subscribers: the API server's watch cache and its store follower.
  virtual uint64_t subscribe(WatchCallback cb) = 0;
  virtual void unsubscribe(uint64_t id) = 0;

  // Whether other API servers may write to this store too (etcd): then whatever must be unique
  // across them (ClusterIPs, node ports) is guarded in the store, not only in memory.
  virtual bool shared() const { return false; }

  // Whether the store can serve now (etcd: a member answers); /readyz and /healthz report it.
  virtual Status health() { return Status::ok(); }

  // Makes everything acknowledged durable and stops background work (compaction). Idempotent.
  virtual Status close() = 0;
};

struct SqliteOptions {
  std::string path;                  // the database file, created if absent
  int64_t keep_revisions = 10000;    // automatic compaction keeps at least this much history
  int compact_interval_ms = 60000;   // how often automatic compaction runs (0 = never)
};

// Opens (creating if needed) the SQLite store at opts.path: WAL, synchronous=FULL, group commit.
Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& opts);

struct EtcdOptions {
  // Client URLs of the etcd members, "http://HOST:PORT" or "https://HOST:PORT" (etcd's v3 API
  // through its JSON gateway); requests go to the first that answers and move on when it stops
  // answering.
  std::vector<std::string> endpoints;
  // For https:// endpoints: the CA that signed etcd's serving certificates (empty: the
  // system's), and a client certificate and key when etcd asks for one (--client-cert-auth).
  std::string ca_file, cert_file, key_file;
  int64_t keep_revisions = 10000;   // automatic compaction keeps at least this much history
  int compact_interval_ms = 60000;  // how often automatic compaction runs (0 = never)
  int request_timeout_ms = 10000;   // one request to etcd, connect to answer
};

// Opens the etcd store: several API servers may share one etcd cluster (each sees the others'
// writes through its watch). Revisions are etcd's minus one (a fresh etcd is at revision 1), so
// they start at 1 like the other backends; they have gaps only if something else writes to the
// same etcd. Fails if no endpoint answers.
Result<std::unique_ptr<Store>> open_etcd_store(const EtcdOptions& opts);

// The in-memory store: same semantics, nothing durable. Also the fake for tests.
std::unique_ptr<Store> make_memory_store(int64_t keep_revisions = 10000);

}  // namespace skiff::store
