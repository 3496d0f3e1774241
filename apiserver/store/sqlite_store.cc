// The SQLite Store: kine's log table in one WAL-mode file.
//
// Every write appends one row to `log` (revision = rowid). The live value of a key is its
// highest-revision row unless that row is a tombstone (deleted = 1, value = the deleted value).
// One write connection; whichever caller finds it free commits whatever writes are queued in one
// transaction on its own thread (group commit: one WAL fsync for the whole batch). Readers use a
// pool of their own connections; WAL gives each statement a consistent snapshot without blocking
// the writer.
//
// Compaction to C first records C in `meta` (from then on reads at or below C answer Gone), then
// deletes, in chunks of revisions between writer batches, the rows no read above C can see: the
// predecessor of every row at or below C and every tombstone at or below C. `compact_done`
// records how far that got, so a restart resumes it.

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "apiserver/store/dispatcher.h"
#include "apiserver/store/store.h"

namespace skiff::store {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kBusyTimeoutMs = 10000;
constexpr int64_t kCompactChunk = 5000;  // revisions per compaction transaction
constexpr size_t kMaxBatch = 4096;
// What the WAL is pre-sized to: a little over two checkpoint cycles (kCheckpointFrames each).
constexpr int64_t kWalPreallocBytes = 8 << 20;
// WAL frames after which the checkpoint thread copies the WAL into the database (SQLite's
// auto-checkpoint default).
constexpr int kCheckpointFrames = 1000;
// WAL frames after which the committing writer checkpoints inline. Under steady writes the
// background checkpoint rarely ends with the whole WAL copied (frames keep arriving while it
// runs), and SQLite restarts the WAL from its start only then; without a bound the WAL would
// outgrow its pre-sized part and every commit would append again. The inline checkpoint copies
// only what the background one has not, and keeps the WAL (4120-byte frames) within
// kWalPreallocBytes.
constexpr int kInlineCheckpointFrames = 1900;

// The store whose writer thread this is: its watch callbacks must not queue writes and wait for
// the very thread that runs them.
thread_local const void* tl_writer_of = nullptr;

Status sql_status(sqlite3* db, int rc, std::string_view what) {
  std::string m(what);
  m += ": ";
  m += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::unavailable(std::move(m));
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status(Code::kIo, std::move(m), 0);
    default:
      return Status::internal(std::move(m));
  }
}

// Creates `path` mode 0600 if absent (the store holds Secrets; SQLite gives its -wal and -shm
// files the database file's mode) and makes its directory entry durable.
Status create_private_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::ok();
    return Status::io("create sqlite store " + path);
  }
  ::close(fd);
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::io("open directory " + dir);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) return Status::io("fsync directory " + dir, err);
  return Status::ok();
}

// Extends the WAL file of `db` with written zeros to `bytes`. On ext4 (and most filesystems) an
// fdatasync after an append must also commit the new file size and block allocation (a journal
// commit: a second flush); an fdatasync after an overwrite inside the file does not. SQLite
// restarts the WAL from its start after each checkpoint but grows it until then, so without this
// every commit of the first cycles after open is an append and costs about twice the floor.
// Zeros past the last frame are safe: recovery stops at the first frame whose salt does not
// match the header, and writers overwrite from the last valid frame. The write lock is held so
// no commit appends while the file grows. Durability is unchanged: commits still fdatasync.
Status preallocate_wal(sqlite3* db, int64_t bytes) {
  sqlite3_file* f = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
      f == nullptr || f->pMethods == nullptr) {
    return Status::ok();  // no WAL file open (not expected in WAL mode): nothing to size
  }
  char* err = nullptr;
  if (int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, &err); rc != SQLITE_OK) {
    sqlite3_free(err);
    return sql_status(db, rc, "preallocate the WAL");
  }
  sqlite3_int64 size = 0;
  int rc = f->pMethods->xFileSize(f, &size);
  if (rc == SQLITE_OK && size < bytes) {
    static const std::string zeros(64 << 10, '\0');
    for (sqlite3_int64 off = size; rc == SQLITE_OK && off < bytes;) {
      const int n = static_cast<int>(std::min<sqlite3_int64>(zeros.size(), bytes - off));
      rc = f->pMethods->xWrite(f, zeros.data(), n, off);
      off += n;
    }
    if (rc == SQLITE_OK) rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
  }
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sql_status(nullptr, rc, "preallocate the WAL");
  return Status::ok();
}

// A connection with its prepared statements, used by one thread at a time.
class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    for (sqlite3_stmt* s : stmts_) sqlite3_finalize(s);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  Status open(const std::string& path, bool create) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) return sql_status(db_, rc, "open sqlite store " + path);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    sqlite3_extended_result_codes(db_, 1);
    return Status::ok();
  }

  Status exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return Status::ok();
    std::string m = std::string("sqlite: ") + sql + ": " + (err != nullptr ? err : "?");
    sqlite3_free(err);
    return sql_status(nullptr, rc, m);
  }

  // The statement cached in `slot`, prepared from `sql` on first use.
  Result<sqlite3_stmt*> stmt(size_t slot, const std::string& sql) {
    if (slot >= stmts_.size()) stmts_.resize(slot + 1, nullptr);
    if (stmts_[slot] == nullptr) {
      int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                  SQLITE_PREPARE_PERSISTENT, &stmts_[slot], nullptr);
      if (rc != SQLITE_OK) return sql_status(db_, rc, "prepare " + sql);
    }
    return stmts_[slot];
  }

  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> stmts_;
};

// Resets a statement when the scope ends: a statement left stepping holds its read snapshot.
struct StmtReset {
  sqlite3_stmt* s;
  ~StmtReset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                    SQLITE_STATIC);
}
void bind_blob(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_blob(s, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                    SQLITE_STATIC);
}
std::string column_string(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  int n = sqlite3_column_bytes(s, i);
  return p != nullptr ? std::string(static_cast<const char*>(p), static_cast<size_t>(n))
                      : std::string();
}

// Statement slots. The list and event queries come in variants by key bounds.
enum Slot : size_t {
  kGet,
  kListGeNoHi,
  kListGeHi,
  kListGtNoHi,
  kListGtHi,
  kEventsNoHi,
  kEventsHi,
  kBegin,
  kCommit,
  kRollback,
  kInsert,
  kSetMeta,
  kDeletePreds,
  kDeleteTombstones,
};

const char* const kLatestSql =
    "SELECT revision, value, create_revision, deleted FROM log WHERE key = ?1 "
    "ORDER BY revision DESC LIMIT 1";

std::string list_sql(bool gt, bool hi) {
  // The live rows at ?3: no newer row for the key at or below ?3, and not a tombstone. This walks
  // the (key, revision, deleted) index in key order, so it streams and stops at the page limit,
  // and reads table rows only for the rows it returns.
  std::string s = "SELECT key, revision, value, create_revision FROM log l WHERE key ";
  s += gt ? "> ?1" : ">= ?1";
  if (hi) s += " AND key < ?2";
  s += " AND revision <= ?3 AND deleted = 0 AND NOT EXISTS (SELECT 1 FROM log n WHERE "
       "n.key = l.key AND n.revision > l.revision AND n.revision <= ?3) ORDER BY key";
  return s;
}

std::string events_sql(bool hi) {
  std::string s =
      "SELECT l.revision, l.key, l.value, l.create_revision, l.prev_revision, l.deleted, "
      "p.value, p.create_revision FROM log l "
      "LEFT JOIN log p ON p.revision = l.prev_revision AND l.deleted = 0 "
      "WHERE l.revision > ?1 AND l.revision <= ?2 AND l.key >= ?3";
  if (hi) s += " AND l.key < ?4";
  s += " ORDER BY l.revision";
  return s;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(SqliteOptions opts)
      : opts_(std::move(opts)), dispatch_(std::make_unique<Dispatcher>(0)) {}

  ~SqliteStore() override { (void)close(); }

  Status open() {
    SKIFF_RETURN_IF_ERROR(create_private_file(opts_.path));
    SKIFF_RETURN_IF_ERROR(writer_.open(opts_.path, true));
    // journal_mode answers with the mode it ended in; anything but wal means no WAL here.
    {
      sqlite3_stmt* s = nullptr;
      int rc = sqlite3_prepare_v2(writer_.db(), "PRAGMA journal_mode=WAL", -1, &s, nullptr);
      if (rc != SQLITE_OK) return sql_status(writer_.db(), rc, "set WAL on " + opts_.path);
      rc = sqlite3_step(s);
      std::string mode = rc == SQLITE_ROW ? column_string(s, 0) : "";
      sqlite3_finalize(s);
      if (mode != "wal") {
        return Status(Code::kIo, "open sqlite store " + opts_.path +
                                     ": cannot enable WAL journal mode (got \"" + mode + "\")");
      }
    }
    SKIFF_RETURN_IF_ERROR(writer_.exec(
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS log("
        "  revision INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB,"
        "  create_revision INTEGER NOT NULL, prev_revision INTEGER NOT NULL,"
        "  deleted INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS log_key_revision_deleted ON log(key, revision, deleted);"
        "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"));
    // Best effort: a store whose WAL could not be pre-sized works, only with slower commits.
    (void)preallocate_wal(writer_.db(), kWalPreallocBytes);
    // Checkpoints run on a connection and thread of their own. SQLite's auto-checkpoint would
    // run them inside the COMMIT of whichever write crosses the threshold: copying ~1000 pages
    // into the database and fsyncing it while holding the write connection, so every queued
    // writer waits for it, longest when the disk is busy. A PASSIVE checkpoint on another
    // connection runs beside the writers (WAL: the checkpointer never blocks a writer) and
    // syncs the database before SQLite may reuse the WAL (synchronous=FULL on that connection).
    SKIFF_RETURN_IF_ERROR(checkpointer_.open(opts_.path, false));
    SKIFF_RETURN_IF_ERROR(checkpointer_.exec("PRAGMA synchronous=FULL"));
    sqlite3_wal_hook(writer_.db(), &SqliteStore::on_wal_commit, this);
    auto meta = [&](const char* name) -> Result<int64_t> {
      std::string sql = std::string("SELECT value FROM meta WHERE name = '") + name + "'";
      return scalar(sql.c_str());
    };
    auto max_rev = scalar("SELECT COALESCE(MAX(revision), 0) FROM log");
    auto cur = meta("current_revision");
    auto compacted = meta("compacted_revision");
    auto done = meta("compact_done");
    for (auto* r : {&max_rev, &cur, &compacted, &done}) {
      if (!r->is_ok()) return r->status().with_context("read store metadata from " + opts_.path);
    }
    int64_t current = std::max({*max_rev, *cur, *compacted});
    current_.store(current);
    compacted_.store(*compacted);
    compact_done_ = *done;
    dispatch_ = std::make_unique<Dispatcher>(current);
    next_auto_compact_ = Clock::now() + std::chrono::milliseconds(opts_.compact_interval_ms);
    writer_thread_ = std::thread([this] { run_writer(); });
    checkpoint_thread_ = std::thread([this] { run_checkpointer(); });
    opened_ = true;
    return Status::ok();
  }

  Result<KeyValue> get(std::string_view key) override {
    auto lease = acquire_reader();
    if (!lease.is_ok()) return lease.status();
    Conn& c = *lease->conn;
    auto st = c.stmt(kGet, kLatestSql);
    if (!st.is_ok()) return st.status();
    sqlite3_stmt* s = *st;
    StmtReset reset{s};
    bind_text(s, 1, key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_int64(s, 3) != 0)) {
      return Status::not_found("get " + quote_key(key) + ": not found");
    }
    if (rc != SQLITE_ROW) return sql_status(c.db(), rc, "get " + quote_key(key));
    return KeyValue{std::string(key), column_string(s, 1), sqlite3_column_int64(s, 2),
                    sqlite3_column_int64(s, 0)};
  }

  Result<ListResult> list(std::string_view prefix, int64_t revision, int64_t limit,
                          std::string_view start_after) override {
    // A list at the current revision that loses a race with compaction is simply retried.
    for (int attempt = 0;; ++attempt) {
      auto r = list_once(prefix, revision, limit, start_after);
      if (revision != 0 || attempt == 3 || r.is_ok() || r.status().code() != Code::kGone) {
        return r;
      }
    }
  }

  Result<ListResult> list_once(std::string_view prefix, int64_t revision, int64_t limit,
                               std::string_view start_after) {
    const int64_t current = current_.load();
    if (revision < 0 || revision > current) {
      return Status::invalid("list at revision " + std::to_string(revision) +
                             ": the current revision is " + std::to_string(current));
    }
    const int64_t at = revision == 0 ? current : revision;
    auto gone = [&](int64_t compacted) {
      return Status::gone("list at revision " + std::to_string(at) +
                          ": compacted (history starts after " + std::to_string(compacted) + ")");
    };
    // The state at the compaction point itself survives compaction, so the current state is
    // always readable.
    if (int64_t c = compacted_.load(); at != current && at <= c) return gone(c);

    auto lease = acquire_reader();
    if (!lease.is_ok()) return lease.status();
    Conn& c = *lease->conn;
    const bool gt = !start_after.empty() && start_after >= prefix;
    const std::optional<std::string> hi = prefix_end(prefix);
    size_t slot = gt ? (hi ? kListGtHi : kListGtNoHi) : (hi ? kListGeHi : kListGeNoHi);
    auto st = c.stmt(slot, list_sql(gt, hi.has_value()));
    if (!st.is_ok()) return st.status();
    sqlite3_stmt* s = *st;
    StmtReset reset{s};
    bind_text(s, 1, gt ? start_after : prefix);
    if (hi) bind_text(s, 2, *hi);
    sqlite3_bind_int64(s, 3, at);

    ListResult out;
    out.revision = at;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      if (limit > 0 && static_cast<int64_t>(out.items.size()) >= limit) {
        out.more = true;
        break;
      }
      out.items.push_back(KeyValue{column_string(s, 0), column_string(s, 2),
                                   sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 1)});
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return sql_status(c.db(), rc, "list " + quote_key(prefix));
    }
    // Compaction past `at` may have removed rows this snapshot needed while we read.
    if (int64_t c = compacted_.load(); at < c) return gone(c);
    return out;
  }

  Result<KeyValue> create(std::string_view key, std::string_view value) override {
    Op op(OpKind::kCreate, key, value, 0);
    return submit(op);
  }
  Result<KeyValue> update(std::string_view key, std::string_view value,
                          int64_t expected_revision) override {
    Op op(OpKind::kUpdate, key, value, expected_revision);
    return submit(op);
  }
  Result<KeyValue> remove(std::string_view key, int64_t expected_revision) override {
    Op op(OpKind::kDelete, key, {}, expected_revision);
    return submit(op);
  }

  int64_t current_revision() override { return current_.load(); }
  int64_t compacted_revision() override { return compacted_.load(); }

  Status compact(int64_t revision) override {
    Op op(OpKind::kCompact, {}, {}, revision);
    auto r = submit(op);
    return r.status();
  }

  Result<std::vector<Event>> events_since(std::string_view prefix, int64_t from_revision) override {
    auto gone = [&]() -> std::optional<Status> {
      int64_t compacted = compacted_.load();
      if (from_revision >= compacted) return std::nullopt;
      return Status::gone("events since " + std::to_string(from_revision) +
                          ": compacted (history starts after " + std::to_string(compacted) + ")");
    };
    if (auto g = gone()) return *g;
    const int64_t upto = current_.load();
    std::vector<Event> out;
    if (from_revision >= upto) return out;

    auto lease = acquire_reader();
    if (!lease.is_ok()) return lease.status();
    Conn& c = *lease->conn;
    const std::optional<std::string> hi = prefix_end(prefix);
    auto st = c.stmt(hi ? kEventsHi : kEventsNoHi, events_sql(hi.has_value()));
    if (!st.is_ok()) return st.status();
    sqlite3_stmt* s = *st;
    StmtReset reset{s};
    sqlite3_bind_int64(s, 1, from_revision);
    sqlite3_bind_int64(s, 2, upto);
    bind_text(s, 3, prefix);
    if (hi) bind_text(s, 4, *hi);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(event_from_row(s));
    if (rc != SQLITE_DONE) return sql_status(c.db(), rc, "events since " + quote_key(prefix));
    if (auto g = gone()) return *g;
    return out;
  }

  uint64_t subscribe(WatchCallback cb) override { return dispatch_->subscribe(std::move(cb)); }
  void unsubscribe(uint64_t id) override { dispatch_->unsubscribe(id); }

  Status close() override {
    {
      std::lock_guard lock(q_mu_);
      if (stopping_) return close_status_;
      stopping_ = true;
    }
    q_cv_.notify_all();
    if (writer_thread_.joinable()) writer_thread_.join();
    {
      std::lock_guard lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
    {
      // Writes queued before stopping_ are still committed by the leader chain.
      std::unique_lock lock(q_mu_);
      q_cv_.wait(lock, [&] { return !busy_ && queue_.empty(); });
    }
    {
      std::lock_guard lock(pool_mu_);
      pool_closed_ = true;
      idle_.clear();
    }
    Status st;
    if (opened_) {
      std::string sql = "INSERT INTO meta(name, value) VALUES('current_revision', " +
                        std::to_string(current_.load()) +
                        ") ON CONFLICT(name) DO UPDATE SET value = excluded.value";
      st = writer_.exec(sql.c_str());
    }
    std::lock_guard lock(q_mu_);
    close_status_ = st;
    return st;
  }

 private:
  enum class OpKind { kCreate, kUpdate, kDelete, kCompact };

  // One queued write, living on the caller's stack until `done` is released.
  struct Op {
    Op(OpKind k, std::string_view key, std::string_view value, int64_t expected)
        : kind(k), key(key), value(value), expected(expected) {}
    OpKind kind;
    std::string_view key;
    std::string_view value;
    int64_t expected;  // for kCompact: the revision to compact to
    Status status;
    KeyValue kv;
    bool lead = false;  // set under q_mu_ before `done` is released: commit the queue yourself
    std::binary_semaphore done{0};
  };

  struct Lease {
    SqliteStore* store;
    std::unique_ptr<Conn> conn;
    Lease(SqliteStore* s, std::unique_ptr<Conn> c) : store(s), conn(std::move(c)) {}
    Lease(Lease&& o) noexcept : store(o.store), conn(std::move(o.conn)) {}
    ~Lease() {
      if (conn) store->release_reader(std::move(conn));
    }
  };

  Result<int64_t> scalar(const char* sql) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(writer_.db(), sql, -1, &s, nullptr);
    if (rc != SQLITE_OK) return sql_status(writer_.db(), rc, sql);
    rc = sqlite3_step(s);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_status(writer_.db(), rc, sql);
    return v;
  }

  Result<Lease> acquire_reader() {
    {
      std::lock_guard lock(pool_mu_);
      if (pool_closed_) return Status::unavailable("sqlite store " + opts_.path + " is closed");
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(c));
      }
    }
    auto c = std::make_unique<Conn>();
    SKIFF_RETURN_IF_ERROR(c->open(opts_.path, false));
    return Lease(this, std::move(c));
  }

  void release_reader(std::unique_ptr<Conn> c) {
    std::lock_guard lock(pool_mu_);
    if (!pool_closed_) idle_.push_back(std::move(c));
  }

  static Event event_from_row(sqlite3_stmt* s) {
    Event ev;
    const int64_t rev = sqlite3_column_int64(s, 0);
    const int64_t prev_rev = sqlite3_column_int64(s, 4);
    const bool deleted = sqlite3_column_int64(s, 5) != 0;
    ev.kv = KeyValue{column_string(s, 1), column_string(s, 2), sqlite3_column_int64(s, 3), rev};
    if (deleted) {
      ev.type = EventType::kDelete;
      ev.prev = KeyValue{ev.kv.key, ev.kv.value, ev.kv.create_revision, prev_rev};
    } else {
      ev.type = EventType::kPut;
      ev.is_create = prev_rev == 0;
      if (prev_rev != 0 && sqlite3_column_type(s, 7) != SQLITE_NULL) {
        ev.prev = KeyValue{ev.kv.key, column_string(s, 6), sqlite3_column_int64(s, 7), prev_rev};
      }
    }
    return ev;
  }

  // Group commit with a rotating leader: the caller that finds the write connection free commits
  // the queue on its own thread, so a lone client's write costs no thread hand-offs; callers
  // arriving meanwhile queue up and the next leader (the oldest of them) commits them all in one
  // transaction. The writer thread only runs compaction, taking turns with the leaders.
  Result<KeyValue> submit(Op& op) {
    if (tl_writer_of == this) {
      return Status::internal("sqlite store: a watch callback must not write to the store");
    }
    bool lead;
    {
      std::lock_guard lock(q_mu_);
      if (stopping_) return Status::unavailable("sqlite store " + opts_.path + " is closed");
      queue_.push_back(&op);
      lead = !busy_;  // invariant: !busy_ implies an empty queue, so `op` heads it
      busy_ = true;
    }
    if (!lead) {
      op.done.acquire();
      lead = op.lead;
    }
    if (lead) lead_batch(&op);  // commits `op` (the queue's head) with the rest of the batch
    if (!op.status.is_ok()) return op.status;
    return std::move(op.kv);
  }

  // REQUIRES: this thread holds the connection (busy_) and `self` heads the queue. Commits the
  // head of the queue, then passes the connection on and releases the batch's other callers
  // (`self` returns from here: no semaphore round trip, a futex wake, for the leader's own op).
  void lead_batch(Op* self) {
    std::vector<Op*> batch;
    {
      std::lock_guard lock(q_mu_);
      const size_t n = std::min(queue_.size(), kMaxBatch);
      batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    const void* outer = tl_writer_of;
    tl_writer_of = this;  // watch callbacks run here and must not write
    const int64_t compacted_before = compacted_.load();
    if (!batch.empty()) commit_batch(batch);
    // The next leader first: its batch has been queueing during our fsync. Delivery runs after
    // that, off the connection, so a long fan-out (a watch cache with many watchers) delays
    // only this batch's acknowledgements, not the next commit. The dispatcher keeps events in
    // revision order across leaders (one deliverer at a time drains everything published).
    release_connection();
    // Delivering before acknowledging means a watch cache has seen a write once it returns.
    dispatch_->deliver();
    tl_writer_of = outer;
    for (Op* op : batch) {
      if (op != self) op->done.release();
    }
    // A compact() in the batch left rows for the compaction thread to delete.
    if (compacted_.load() != compacted_before) q_cv_.notify_all();
  }

  // Passes the connection to the compaction thread if it asked, else to the oldest queued
  // caller, else frees it. Wakes nobody when nobody waits: the compaction thread sleeps on q_cv_
  // for work too, and waking it after every commit cost a lone client's create a context switch.
  void release_connection() {
    Op* next = nullptr;
    bool wake = false;
    {
      std::lock_guard lock(q_mu_);
      if (compactor_waiting_) {
        compactor_granted_ = true;
        wake = true;
      } else if (!queue_.empty()) {
        next = queue_.front();
        next->lead = true;
      } else {
        busy_ = false;
        wake = stopping_;  // close() waits for the connection to be free
      }
    }
    if (next != nullptr) {
      next->done.release();
    } else if (wake) {
      q_cv_.notify_all();
    }
  }

  // SQLite's WAL hook on the write connection, after each commit (whoever holds the connection
  // runs it): `frames` is the WAL's length. One cycle of the WAL: past kCheckpointFrames the
  // checkpoint thread copies the WAL into the database, off the write path; the WAL is still
  // growing meanwhile, so that checkpoint is rarely complete, and SQLite restarts the WAL from
  // its start only after a complete one. The first commit after it has run therefore copies the
  // few frames left inline, and the next write restarts the WAL. (Asking the thread again
  // instead kept it chasing the writer: a checkpoint, two fsyncs, every two or three commits of
  // a lone client, each one contending for the disk with the commits.)
  static int on_wal_commit(void* self, sqlite3* db, const char* schema, int frames) {
    auto* store = static_cast<SqliteStore*>(self);
    if (frames < store->wal_frames_) store->ckpt_cycle_.store(CkptCycle::kIdle);  // restarted
    store->wal_frames_ = frames;
    if (frames < kCheckpointFrames) return SQLITE_OK;
    CkptCycle idle = CkptCycle::kIdle;
    if (frames < kInlineCheckpointFrames &&
        store->ckpt_cycle_.compare_exchange_strong(idle, CkptCycle::kRequested)) {
      store->request_checkpoint();
    } else if (frames >= kInlineCheckpointFrames || idle == CkptCycle::kCopied) {
      // Best effort, as SQLite's own auto-checkpoint: BUSY (the checkpoint thread is running)
      // or a failure only leaves the WAL longer; the commit itself is already durable.
      (void)sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    return SQLITE_OK;
  }

  void request_checkpoint() {
    {
      std::lock_guard lock(ckpt_mu_);
      if (ckpt_wanted_) return;
      ckpt_wanted_ = true;
    }
    ckpt_cv_.notify_one();
  }

  void run_checkpointer() {
    for (;;) {
      {
        std::unique_lock lock(ckpt_mu_);
        ckpt_cv_.wait(lock, [&] { return ckpt_wanted_ || ckpt_stop_; });
        if (ckpt_stop_) return;
        ckpt_wanted_ = false;
      }
      // Best effort: a checkpoint that fails or cannot finish (a reader still needs old frames)
      // leaves the WAL longer, and the next commit past the threshold asks again. The next
      // write transaction after a complete checkpoint restarts the WAL from its start.
      int log_frames = 0;
      int copied = 0;
      (void)sqlite3_wal_checkpoint_v2(checkpointer_.db(), "main", SQLITE_CHECKPOINT_PASSIVE,
                                      &log_frames, &copied);
      CkptCycle requested = CkptCycle::kRequested;
      ckpt_cycle_.compare_exchange_strong(requested, CkptCycle::kCopied);
    }
  }

  void run_writer() {
    tl_writer_of = this;
    const bool auto_compaction = opts_.compact_interval_ms > 0;
    auto compaction_due = [&] { return auto_compaction && Clock::now() >= next_auto_compact_; };
    for (;;) {
      {
        std::unique_lock lock(q_mu_);
        while (!stopping_ && compact_done_ >= compacted_.load() && !compaction_due()) {
          if (auto_compaction) {
            q_cv_.wait_until(lock, next_auto_compact_);
          } else {
            q_cv_.wait(lock);
          }
        }
        if (stopping_) break;
        // Take the connection between two batches, so that steady writes cannot starve
        // compaction.
        compactor_waiting_ = true;
        q_cv_.wait(lock, [&] { return !busy_ || compactor_granted_ || stopping_; });
        compactor_waiting_ = false;
        if (!compactor_granted_ && (stopping_ || busy_)) break;
        compactor_granted_ = false;
        busy_ = true;
      }
      if (compaction_due()) {
        next_auto_compact_ = Clock::now() + std::chrono::milliseconds(opts_.compact_interval_ms);
        int64_t target = current_.load() - opts_.keep_revisions;
        if (target > compacted_.load()) (void)set_compacted(target);
      }
      if (compact_done_ < compacted_.load()) (void)compact_chunk();
      release_connection();
    }
  }

  // Applies `batch` in one transaction and publishes its events; the caller then delivers them
  // and releases the ops. Each op is checked against the state including the ops before it in
  // the batch (the transaction sees its own writes).
  void commit_batch(const std::vector<Op*>& batch) {
    std::vector<Event> events;
    events.reserve(batch.size());
    int64_t rev = current_.load();
    int64_t new_compacted = 0;
    Status failed = step_stmt(kBegin, "BEGIN IMMEDIATE");
    for (size_t i = 0; i < batch.size() && failed.is_ok(); ++i) {
      Op& op = *batch[i];
      if (op.kind == OpKind::kCompact) {
        if (op.expected > rev) {
          op.status = Status::invalid("compact to " + std::to_string(op.expected) +
                                      ": beyond the current revision " + std::to_string(rev));
        } else if (op.expected > std::max(compacted_.load(), new_compacted)) {
          new_compacted = op.expected;
          failed = set_meta("compacted_revision", new_compacted);
        }
        continue;
      }
      failed = apply(op, rev, events);
    }
    if (failed.is_ok()) failed = step_stmt(kCommit, "COMMIT");
    if (!failed.is_ok()) {
      (void)step_stmt(kRollback, "ROLLBACK");
      for (Op* op : batch) op->status = failed.with_context("store write (batch rolled back)");
      return;
    }
    current_.store(rev);
    if (new_compacted > 0) compacted_.store(new_compacted);
    // Published under the connection, so in revision order; lead_batch() delivers.
    for (Event& ev : events) dispatch_->publish(std::move(ev));
  }

  // Checks `op` against the latest row for its key and appends its row. Logical failures go to
  // op.status; the returned Status is a database failure that aborts the batch.
  Status apply(Op& op, int64_t& rev, std::vector<Event>& events) {
    auto st = writer_.stmt(kGet, kLatestSql);
    if (!st.is_ok()) return st.status();
    sqlite3_stmt* s = *st;
    StmtReset reset{s};
    bind_text(s, 1, op.key);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_status(writer_.db(), rc, "read key");
    const bool live = rc == SQLITE_ROW && sqlite3_column_int64(s, 3) == 0;
    const int64_t next = rev + 1;
    Event ev;
    if (op.kind == OpKind::kCreate) {
      if (live) {
        op.status = Status::already_exists("create " + quote_key(op.key) + ": already exists");
        return Status::ok();
      }
      SKIFF_RETURN_IF_ERROR(insert(next, op.key, op.value, next, 0, false));
      ev.is_create = true;
      ev.kv = KeyValue{std::string(op.key), std::string(op.value), next, next};
    } else {
      const char* verb = op.kind == OpKind::kUpdate ? "update " : "delete ";
      if (!live) {
        op.status = Status::not_found(verb + quote_key(op.key) + ": not found");
        return Status::ok();
      }
      const int64_t mod = sqlite3_column_int64(s, 0);
      const int64_t created = sqlite3_column_int64(s, 2);
      if (op.expected != 0 && op.expected != mod) {
        op.status =
            Status::conflict(verb + quote_key(op.key) + ": expected revision " +
                             std::to_string(op.expected) + ", current is " + std::to_string(mod));
        return Status::ok();
      }
      ev.prev = KeyValue{std::string(op.key), column_string(s, 1), created, mod};
      if (op.kind == OpKind::kUpdate) {
        SKIFF_RETURN_IF_ERROR(insert(next, op.key, op.value, created, mod, false));
        ev.kv = KeyValue{std::string(op.key), std::string(op.value), created, next};
      } else {
        SKIFF_RETURN_IF_ERROR(insert(next, op.key, ev.prev->value, created, mod, true));
        ev.type = EventType::kDelete;
        ev.kv = KeyValue{std::string(op.key), ev.prev->value, created, next};
      }
    }
    rev = next;
    op.kv = ev.kv;
    events.push_back(std::move(ev));
    return Status::ok();
  }

  Status insert(int64_t rev, std::string_view key, std::string_view value, int64_t created,
                int64_t prev, bool deleted) {
    auto st = writer_.stmt(kInsert,
                           "INSERT INTO log(revision, key, value, create_revision, prev_revision,"
                           " deleted) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st.is_ok()) return st.status();
    sqlite3_stmt* s = *st;
    StmtReset reset{s};
    sqlite3_bind_int64(s, 1, rev);
    bind_text(s, 2, key);
    bind_blob(s, 3, value);
    sqlite3_bind_int64(s, 4, created);
    sqlite3_bind_int64(s, 5, prev);
    sqlite3_bind_int(s, 6, deleted ? 1 : 0);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return sql_status(writer_.db(), rc, "append to log " + quote_key(key));
    return Status::ok();
  }

  Status step_stmt(Slot slot, const char* sql) {
    auto st = writer_.stmt(slot, sql);
    if (!st.is_ok()) return st.status();
    StmtReset reset{*st};
    int rc = sqlite3_step(*st);
    if (rc != SQLITE_DONE) return sql_status(writer_.db(), rc, sql);
    return Status::ok();
  }

  Status set_meta(const char* name, int64_t value) {
    auto st = writer_.stmt(kSetMeta,
                           "INSERT INTO meta(name, value) VALUES(?1, ?2) "
                           "ON CONFLICT(name) DO UPDATE SET value = excluded.value");
    if (!st.is_ok()) return st.status();
    sqlite3_stmt* s = *st;
    StmtReset reset{s};
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return sql_status(writer_.db(), rc, std::string("set meta ") + name);
    return Status::ok();
  }

  // Records a new compaction point durably; rows are deleted later by compact_chunk().
  Status set_compacted(int64_t revision) {
    Status st = step_stmt(kBegin, "BEGIN IMMEDIATE");
    if (st.is_ok()) st = set_meta("compacted_revision", revision);
    if (st.is_ok()) st = step_stmt(kCommit, "COMMIT");
    if (!st.is_ok()) {
      (void)step_stmt(kRollback, "ROLLBACK");
      return st;
    }
    compacted_.store(revision);
    return st;
  }

  // Deletes the rows made invisible by compaction for one chunk of revisions.
  Status compact_chunk() {
    const int64_t lo = compact_done_;
    const int64_t hi = std::min(lo + kCompactChunk, compacted_.load());
    Status st = step_stmt(kBegin, "BEGIN IMMEDIATE");
    // Predecessors first: a tombstone's predecessor is found through the tombstone.
    for (auto [slot, sql] : {std::pair{kDeletePreds,
                                       "DELETE FROM log WHERE revision IN (SELECT prev_revision "
                                       "FROM log WHERE revision > ?1 AND revision <= ?2 AND "
                                       "prev_revision > 0)"},
                             std::pair{kDeleteTombstones,
                                       "DELETE FROM log WHERE revision > ?1 AND revision <= ?2 "
                                       "AND deleted = 1"}}) {
      if (!st.is_ok()) break;
      auto s = writer_.stmt(slot, sql);
      if (!s.is_ok()) {
        st = s.status();
        break;
      }
      StmtReset reset{*s};
      sqlite3_bind_int64(*s, 1, lo);
      sqlite3_bind_int64(*s, 2, hi);
      int rc = sqlite3_step(*s);
      if (rc != SQLITE_DONE) st = sql_status(writer_.db(), rc, "compact the store log");
    }
    if (st.is_ok()) st = set_meta("compact_done", hi);
    if (st.is_ok()) st = step_stmt(kCommit, "COMMIT");
    if (!st.is_ok()) {
      (void)step_stmt(kRollback, "ROLLBACK");
      return st;
    }
    compact_done_ = hi;
    return st;
  }

  const SqliteOptions opts_;
  Conn writer_;  // used by open(), then by whoever holds the connection (busy_), then by close()
  std::thread writer_thread_;
  Conn checkpointer_;  // checkpoint thread only (after open())
  std::thread checkpoint_thread_;
  std::mutex ckpt_mu_;  // guards the two members below
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
  // Where the WAL is in its cycle (on_wal_commit): nothing asked yet, the checkpoint thread
  // asked, or it has copied (the next commit finishes the checkpoint inline).
  enum class CkptCycle { kIdle, kRequested, kCopied };
  std::atomic<CkptCycle> ckpt_cycle_{CkptCycle::kIdle};
  int wal_frames_ = 0;  // the WAL's length at the last commit; whoever holds the connection
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> compacted_{0};
  int64_t compact_done_ = 0;  // compaction thread only
  bool opened_ = false;
  Clock::time_point next_auto_compact_;
  std::unique_ptr<Dispatcher> dispatch_;

  std::mutex q_mu_;  // guards the members below
  std::condition_variable q_cv_;
  std::vector<Op*> queue_;
  bool busy_ = false;  // a leader or the compaction thread holds the write connection
  bool compactor_waiting_ = false;
  bool compactor_granted_ = false;  // a leader passed the connection to the compaction thread
  bool stopping_ = false;
  Status close_status_;

  std::mutex pool_mu_;  // guards the members below
  std::vector<std::unique_ptr<Conn>> idle_;
  bool pool_closed_ = false;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& opts) {
  auto store = std::make_unique<SqliteStore>(opts);
  Status st = store->open();
  if (!st.is_ok()) return st;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace skiff::store
