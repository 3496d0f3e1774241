// The Store conformance suite: every test runs against every backend.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "apiserver/store/dispatcher.h"
#include "apiserver/store/store.h"

namespace skiff::store {
namespace {

using namespace std::chrono_literals;

struct MemoryBackend {
  static constexpr const char* kName = "memory";
  static constexpr bool kDurable = false;
  std::unique_ptr<Store> open(int64_t keep = 10000, int compact_interval_ms = 0) {
    (void)compact_interval_ms;  // the memory store compacts on every write
    return make_memory_store(keep);
  }
};

struct SqliteBackend {
  static constexpr const char* kName = "sqlite";
  static constexpr bool kDurable = true;
  std::string dir;
  SqliteBackend() {
    char tmpl[] = "/tmp/skiff-store-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }
  ~SqliteBackend() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path() const { return dir + "/store.db"; }
  std::unique_ptr<Store> open(int64_t keep = 10000, int compact_interval_ms = 0) {
    SqliteOptions opts;
    opts.path = path();
    opts.keep_revisions = keep;
    opts.compact_interval_ms = compact_interval_ms;
    auto r = open_sqlite_store(opts);
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    return std::move(r).value();
  }
};

template <class T>
T must(Result<T> r) {
  INFO(r.status().to_string());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

Code code_of(const Status& s) { return s.code(); }
template <class T>
Code code_of(const Result<T>& r) {
  return r.status().code();
}

// Polls `cond` for up to 20 s: background work has no deadline, the test does.
template <class F>
bool eventually(F cond) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

std::vector<std::string> keys_of(const ListResult& l) {
  std::vector<std::string> out;
  for (const auto& kv : l.items) out.push_back(kv.key);
  return out;
}

TEMPLATE_TEST_CASE("store: create, get, update, delete and their errors", "[store]", MemoryBackend,
                   SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  CHECK(store->current_revision() == 0);

  auto a = must(store->create("/r/a", "{\"v\":1}"));
  CHECK(a.key == "/r/a");
  CHECK(a.value == "{\"v\":1}");
  CHECK(a.create_revision == 1);
  CHECK(a.mod_revision == 1);
  CHECK(code_of(store->create("/r/a", "x")) == Code::kAlreadyExists);
  CHECK(store->current_revision() == 1);  // a failed write takes no revision

  auto got = must(store->get("/r/a"));
  CHECK(got.value == "{\"v\":1}");
  CHECK(got.mod_revision == 1);
  CHECK(code_of(store->get("/r/missing")) == Code::kNotFound);
  CHECK(code_of(store->get("/r")) == Code::kNotFound);  // a prefix is not a key

  auto b = must(store->create("/r/b", ""));  // empty values are values
  CHECK(b.mod_revision == 2);
  CHECK(must(store->get("/r/b")).value.empty());

  CHECK(code_of(store->update("/r/a", "y", 2)) == Code::kConflict);
  CHECK(code_of(store->update("/r/missing", "y", 0)) == Code::kNotFound);
  auto a2 = must(store->update("/r/a", "{\"v\":2}", 1));
  CHECK(a2.mod_revision == 3);
  CHECK(a2.create_revision == 1);
  auto a3 = must(store->update("/r/a", "{\"v\":3}", 0));  // 0: unconditional
  CHECK(a3.mod_revision == 4);
  CHECK(must(store->get("/r/a")).value == "{\"v\":3}");

  CHECK(code_of(store->remove("/r/a", 3)) == Code::kConflict);
  CHECK(code_of(store->remove("/r/missing", 0)) == Code::kNotFound);
  auto del = must(store->remove("/r/a", 4));
  CHECK(del.mod_revision == 5);
  CHECK(del.value == "{\"v\":3}");
  CHECK(del.create_revision == 1);
  CHECK(code_of(store->get("/r/a")) == Code::kNotFound);
  CHECK(code_of(store->remove("/r/a", 0)) == Code::kNotFound);
  CHECK(code_of(store->update("/r/a", "z", 0)) == Code::kNotFound);

  // A key created again starts a new life.
  auto again = must(store->create("/r/a", "new"));
  CHECK(again.create_revision == 6);
  CHECK(again.mod_revision == 6);
  CHECK(store->current_revision() == 6);

  // Values are bytes, not C strings.
  std::string binary("a\0b\xff", 4);
  auto bin = must(store->create("/r/bin", binary));
  CHECK(must(store->get("/r/bin")).value == binary);
  CHECK(bin.mod_revision == 7);
  CHECK(store->close().is_ok());
  CHECK(store->close().is_ok());  // idempotent
}

TEMPLATE_TEST_CASE("store: list by prefix, page and past revision", "[store]", MemoryBackend,
                   SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  for (const char* k : {"/p/ns1/c", "/p/ns1/a", "/p/ns2/a", "/p/ns1/b", "/q/x", "/p/ns10/z"}) {
    must(store->create(k, std::string("v-") + k));
  }
  // revisions 1..6
  auto all = must(store->list("/p/", 0, 0, ""));
  CHECK(all.revision == 6);
  CHECK(!all.more);
  CHECK(keys_of(all) ==
        std::vector<std::string>{"/p/ns1/a", "/p/ns1/b", "/p/ns1/c", "/p/ns10/z", "/p/ns2/a"});
  CHECK(all.items[0].value == "v-/p/ns1/a");
  CHECK(all.items[0].mod_revision == 2);
  CHECK(all.items[0].create_revision == 2);
  CHECK(keys_of(must(store->list("/p/ns1/", 0, 0, ""))) ==
        std::vector<std::string>{"/p/ns1/a", "/p/ns1/b", "/p/ns1/c"});
  CHECK(must(store->list("", 0, 0, "")).items.size() == 6);
  CHECK(must(store->list("/nothing/", 0, 0, "")).items.empty());

  // Paging: limit + start_after (the last key of the previous page).
  auto p1 = must(store->list("/p/", 0, 2, ""));
  CHECK(keys_of(p1) == std::vector<std::string>{"/p/ns1/a", "/p/ns1/b"});
  CHECK(p1.more);
  auto p2 = must(store->list("/p/", p1.revision, 2, p1.items.back().key));
  CHECK(keys_of(p2) == std::vector<std::string>{"/p/ns1/c", "/p/ns10/z"});
  CHECK(p2.more);
  auto p3 = must(store->list("/p/", p1.revision, 2, p2.items.back().key));
  CHECK(keys_of(p3) == std::vector<std::string>{"/p/ns2/a"});
  CHECK(!p3.more);
  auto exact = must(store->list("/p/", 0, 5, ""));
  CHECK(exact.items.size() == 5);
  CHECK(!exact.more);
  // A start_after before the prefix range starts at the prefix; past it, nothing.
  CHECK(must(store->list("/p/", 0, 0, "/a")).items.size() == 5);
  CHECK(must(store->list("/p/", 0, 0, "/z")).items.empty());

  // Change things, then read the past.
  must(store->update("/p/ns1/a", "changed", 0));  // 7
  must(store->remove("/p/ns1/b", 0));             // 8
  must(store->create("/p/ns1/d", "new"));         // 9
  must(store->remove("/p/ns2/a", 0));             // 10
  must(store->create("/p/ns2/a", "reborn"));      // 11

  auto now = must(store->list("/p/ns", 0, 0, ""));
  CHECK(now.revision == 11);
  CHECK(keys_of(now) ==
        std::vector<std::string>{"/p/ns1/a", "/p/ns1/c", "/p/ns1/d", "/p/ns10/z", "/p/ns2/a"});
  CHECK(now.items[0].value == "changed");
  CHECK(now.items[0].mod_revision == 7);
  CHECK(now.items[4].create_revision == 11);

  auto at6 = must(store->list("/p/", 6, 0, ""));
  CHECK(at6.revision == 6);
  CHECK(keys_of(at6) == keys_of(all));
  CHECK(at6.items[0].value == "v-/p/ns1/a");
  CHECK(at6.items[0].mod_revision == 2);
  CHECK(at6.items[4].create_revision == 3);

  auto at9 = must(store->list("/p/", 9, 0, ""));
  CHECK(keys_of(at9) ==
        std::vector<std::string>{"/p/ns1/a", "/p/ns1/c", "/p/ns1/d", "/p/ns10/z", "/p/ns2/a"});
  CHECK(at9.items[4].value == "v-/p/ns2/a");
  auto at10 = must(store->list("/p/", 10, 0, ""));
  CHECK(keys_of(at10) == std::vector<std::string>{"/p/ns1/a", "/p/ns1/c", "/p/ns1/d", "/p/ns10/z"});
  // Paging at a past revision.
  auto past1 = must(store->list("/p/", 6, 3, ""));
  CHECK(keys_of(past1) == std::vector<std::string>{"/p/ns1/a", "/p/ns1/b", "/p/ns1/c"});
  CHECK(past1.more);
  auto past2 = must(store->list("/p/", 6, 3, "/p/ns1/c"));
  CHECK(keys_of(past2) == std::vector<std::string>{"/p/ns10/z", "/p/ns2/a"});
  CHECK(!past2.more);
  auto at1 = must(store->list("", 1, 0, ""));
  CHECK(keys_of(at1) == std::vector<std::string>{"/p/ns1/c"});

  CHECK(code_of(store->list("/p/", 12, 0, "")) == Code::kInvalid);
  CHECK(code_of(store->list("/p/", -1, 0, "")) == Code::kInvalid);
}

TEMPLATE_TEST_CASE("store: compaction answers Gone below the compaction point", "[store]",
                   MemoryBackend, SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  for (int i = 0; i < 10; ++i) must(store->create("/k/" + std::to_string(i), "v"));
  for (int i = 0; i < 5; ++i) must(store->update("/k/" + std::to_string(i), "w", 0));  // 11..15
  must(store->remove("/k/9", 0));                                                      // 16
  CHECK(store->compacted_revision() == 0);
  CHECK(code_of(store->compact(17)) == Code::kInvalid);
  REQUIRE(store->compact(13).is_ok());
  CHECK(store->compacted_revision() == 13);
  CHECK(store->current_revision() == 16);

  CHECK(code_of(store->list("/k/", 12, 0, "")) == Code::kGone);
  CHECK(code_of(store->list("/k/", 13, 0, "")) == Code::kGone);
  CHECK(code_of(store->events_since("/k/", 12)) == Code::kGone);
  auto ev = must(store->events_since("/k/", 13));
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].revision() == 14);
  CHECK(ev[0].prev.has_value());
  CHECK(ev[0].prev->mod_revision == 4);
  CHECK(ev[2].type == EventType::kDelete);

  auto at14 = must(store->list("/k/", 14, 0, ""));
  CHECK(at14.items.size() == 10);
  CHECK(at14.items[3].value == "w");
  CHECK(at14.items[4].value == "v");
  auto now = must(store->list("/k/", 0, 0, ""));
  REQUIRE(now.items.size() == 9);
  for (int i = 0; i < 9; ++i) CHECK(now.items[i].value == (i < 5 ? "w" : "v"));
  CHECK(must(store->get("/k/0")).mod_revision == 11);
  CHECK(must(store->get("/k/8")).mod_revision == 9);

  // Compacting everything keeps the live state readable.
  REQUIRE(store->compact(16).is_ok());
  CHECK(must(store->list("/k/", 0, 0, "")).items.size() == 9);
  CHECK(must(store->list("/k/", 16, 0, "")).items.size() == 9);
  CHECK(must(store->events_since("/k/", 16)).empty());
  CHECK(store->compact(10).is_ok());  // an older point is already done
  CHECK(store->compacted_revision() == 16);
  auto next = must(store->update("/k/0", "x", 11));
  CHECK(next.mod_revision == 17);
}

TEMPLATE_TEST_CASE("store: automatic compaction keeps keep_revisions of history", "[store]",
                   MemoryBackend, SqliteBackend) {
  TestType backend;
  auto store = backend.open(/*keep=*/20, /*compact_interval_ms=*/10);
  for (int i = 0; i < 30; ++i) must(store->create("/a/" + std::to_string(i), "v"));
  for (int i = 0; i < 30; ++i) must(store->update("/a/" + std::to_string(i), "w", 0));
  for (int i = 0; i < 30; i += 2) must(store->remove("/a/" + std::to_string(i), 0));
  const int64_t cur = store->current_revision();
  REQUIRE(cur == 75);
  REQUIRE(eventually([&] { return store->compacted_revision() >= cur - 20; }));
  int64_t c = store->compacted_revision();
  CHECK(c <= cur - 20);  // at least keep_revisions of history stay
  CHECK(code_of(store->events_since("", c - 1)) == Code::kGone);
  auto ev = must(store->events_since("", c));
  CHECK(static_cast<int64_t>(ev.size()) == cur - c);
  auto live = must(store->list("/a/", 0, 0, ""));
  REQUIRE(live.items.size() == 15);
  for (const auto& kv : live.items) CHECK(kv.value == "w");

  if constexpr (TestType::kDurable) {
    // The superseded rows and old tombstones are gone from the file: what is left is the live
    // rows plus at most the history window.
    store.reset();
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(backend.path().c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM log", -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    int64_t rows = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    CHECK(rows <= 15 + 20 + 15);  // live + window + predecessors of the window's rows
    CHECK(rows < 75);
  }
}

TEMPLATE_TEST_CASE("store: events_since returns every event in order", "[store]", MemoryBackend,
                   SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  must(store->create("/e/a", "1"));      // 1
  must(store->create("/other/x", "1"));  // 2
  must(store->update("/e/a", "2", 1));   // 3
  must(store->create("/e/b", "1"));      // 4
  must(store->remove("/e/a", 3));        // 5
  must(store->create("/e/a", "3"));      // 6

  auto ev = must(store->events_since("/e/", 0));
  REQUIRE(ev.size() == 5);
  std::vector<int64_t> revs;
  for (const auto& e : ev) revs.push_back(e.revision());
  CHECK(revs == std::vector<int64_t>{1, 3, 4, 5, 6});
  CHECK(ev[0].type == EventType::kPut);
  CHECK(ev[0].is_create);
  CHECK(!ev[0].prev.has_value());
  CHECK(ev[1].type == EventType::kPut);
  CHECK(!ev[1].is_create);
  REQUIRE(ev[1].prev.has_value());
  CHECK(ev[1].prev->value == "1");
  CHECK(ev[1].prev->mod_revision == 1);
  CHECK(ev[1].kv.value == "2");
  CHECK(ev[1].kv.create_revision == 1);
  CHECK(ev[3].type == EventType::kDelete);
  CHECK(ev[3].kv.key == "/e/a");
  CHECK(ev[3].kv.value == "2");
  CHECK(ev[3].kv.mod_revision == 5);
  CHECK(ev[3].kv.create_revision == 1);
  REQUIRE(ev[3].prev.has_value());
  CHECK(ev[3].prev->mod_revision == 3);
  CHECK(ev[4].is_create);
  CHECK(ev[4].kv.create_revision == 6);

  auto tail = must(store->events_since("/e/", 4));
  REQUIRE(tail.size() == 2);
  CHECK(tail[0].revision() == 5);
  CHECK(must(store->events_since("", 0)).size() == 6);
  CHECK(must(store->events_since("/e/", 6)).empty());
}

TEMPLATE_TEST_CASE("store: subscribers get committed events in order", "[store]", MemoryBackend,
                   SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  must(store->create("/s/before", "x"));  // before subscribing: not delivered

  std::mutex mu;
  std::vector<Event> seen;
  uint64_t id = store->subscribe([&](const Event& e) {
    std::lock_guard lock(mu);
    seen.push_back(e);
  });
  must(store->create("/s/a", "1"));
  must(store->update("/s/a", "2", 0));
  must(store->remove("/s/before", 0));
  {
    // Delivery happens before the write returns.
    std::lock_guard lock(mu);
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].revision() == 2);
    CHECK(seen[0].is_create);
    CHECK(seen[1].revision() == 3);
    REQUIRE(seen[1].prev.has_value());
    CHECK(seen[1].prev->value == "1");
    CHECK(seen[2].type == EventType::kDelete);
    CHECK(seen[2].kv.key == "/s/before");
    CHECK(seen[2].kv.value == "x");
  }
  // A failed write publishes nothing.
  CHECK(code_of(store->create("/s/a", "dup")) == Code::kAlreadyExists);
  store->unsubscribe(id);
  must(store->create("/s/after", "1"));
  std::lock_guard lock(mu);
  CHECK(seen.size() == 3);
}

TEMPLATE_TEST_CASE("store: a watcher may read the store", "[store]", MemoryBackend, SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  std::atomic<int> reads{0};
  store->subscribe([&](const Event& e) {
    auto r = store->get(e.kv.key);
    if (r.is_ok() && r->mod_revision >= e.revision()) ++reads;
  });
  must(store->create("/w/a", "1"));
  must(store->update("/w/a", "2", 0));
  CHECK(reads.load() == 2);
}

TEMPLATE_TEST_CASE("store: 32 concurrent writers", "[store]", MemoryBackend, SqliteBackend) {
  TestType backend;
  auto store = backend.open(/*keep=*/100000);
  constexpr int kThreads = 32;
  constexpr int kPerThread = 200;

  std::mutex mu;
  std::vector<int64_t> delivered;
  store->subscribe([&](const Event& e) {
    std::lock_guard lock(mu);
    delivered.push_back(e.revision());
  });

  std::atomic<int> failures{0};
  std::vector<std::vector<KeyValue>> acked(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = "/c/" + std::to_string(t) + "/" + std::to_string(i);
        auto c = store->create(key, "v0-" + key);
        if (!c.is_ok()) {
          ++failures;
          continue;
        }
        auto u = store->update(key, "v1-" + key, c->mod_revision);
        if (!u.is_ok()) {
          ++failures;
          continue;
        }
        acked[t].push_back(*u);
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(failures.load() == 0);

  constexpr int64_t kWrites = 2LL * kThreads * kPerThread;
  CHECK(store->current_revision() == kWrites);
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(acked[t].size() == kPerThread);
    for (const auto& kv : acked[t]) {
      auto got = store->get(kv.key);
      REQUIRE(got.is_ok());
      CHECK(got->value == "v1-" + kv.key);
      CHECK(got->mod_revision == kv.mod_revision);
    }
  }
  auto all = must(store->list("/c/", 0, 0, ""));
  CHECK(all.items.size() == static_cast<size_t>(kThreads * kPerThread));
  {
    std::lock_guard lock(mu);
    REQUIRE(delivered.size() == static_cast<size_t>(kWrites));
    for (size_t i = 0; i < delivered.size(); ++i) {
      if (delivered[i] != static_cast<int64_t>(i) + 1)
        FAIL("event " << i << " has revision " << delivered[i]);
    }
  }
  auto ev = must(store->events_since("/c/", 0));
  CHECK(ev.size() == static_cast<size_t>(kWrites));
}

TEMPLATE_TEST_CASE("store: compare-and-swap from racing writers loses no update", "[store]",
                   MemoryBackend, SqliteBackend) {
  TestType backend;
  auto store = backend.open();
  must(store->create("/cas/counter", "0"));
  constexpr int kThreads = 8;
  constexpr int kIncrements = 50;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int done = 0; done < kIncrements;) {
        auto cur = store->get("/cas/counter");
        if (!cur.is_ok()) return;
        int n = std::stoi(cur->value);
        auto r = store->update("/cas/counter", std::to_string(n + 1), cur->mod_revision);
        if (r.is_ok()) {
          ++done;
        } else if (r.status().code() == Code::kConflict) {
          ++conflicts;
        } else {
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  auto final_value = must(store->get("/cas/counter"));
  CHECK(final_value.value == std::to_string(kThreads * kIncrements));
  CHECK(final_value.mod_revision == 1 + kThreads * kIncrements);
}

TEST_CASE("sqlite store: reopen keeps data, revisions and the compaction point", "[store]") {
  SqliteBackend backend;
  {
    auto store = backend.open();
    for (int i = 0; i < 20; ++i) must(store->create("/d/" + std::to_string(i), "v"));
    must(store->update("/d/3", "w", 0));  // 21
    must(store->remove("/d/19", 0));      // 22
    REQUIRE(store->compact(10).is_ok());
    must(store->remove("/d/18", 0));  // 23: the newest row is a tombstone
    REQUIRE(store->compact(23).is_ok());
    CHECK(store->close().is_ok());
    CHECK(code_of(store->create("/d/x", "v")) == Code::kUnavailable);
    CHECK(code_of(store->get("/d/1")) == Code::kUnavailable);
  }
  struct stat st {};
  REQUIRE(::stat(backend.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);  // it holds Secrets
  auto store = backend.open();
  CHECK(store->current_revision() == 23);
  CHECK(store->compacted_revision() == 23);
  CHECK(must(store->get("/d/3")).value == "w");
  CHECK(must(store->get("/d/3")).mod_revision == 21);
  CHECK(code_of(store->get("/d/19")) == Code::kNotFound);
  CHECK(must(store->list("/d/", 0, 0, "")).items.size() == 18);
  CHECK(code_of(store->events_since("", 9)) == Code::kGone);
  auto next = must(store->create("/d/new", "v"));
  CHECK(next.mod_revision == 24);
  auto ev = must(store->events_since("", 23));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kv.key == "/d/new");
}

TEST_CASE("sqlite store: acknowledged writes survive kill -9", "[store]") {
  SqliteBackend backend;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child writes from 8 threads and reports each acknowledged key, until it is killed.
    ::close(fds[0]);
    SqliteOptions opts;
    opts.path = backend.path();
    auto store = open_sqlite_store(opts);
    if (!store.is_ok()) ::_exit(3);
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < 100000; ++i) {
          char key[64];
          int n = std::snprintf(key, sizeof key, "/k/%d/%d\n", t, i);
          if (!(*store)->create(std::string_view(key, n - 1), key).is_ok()) ::_exit(4);
          if (::write(fds[1], key, n) != n) ::_exit(5);
        }
      });
    }
    for (auto& th : ts) th.join();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string acked;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::count(acked.begin(), acked.end(), '\n') < 400 &&
         std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, 1000) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    acked.append(buf, static_cast<size_t>(n));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  // Whatever was acknowledged before the kill is in the pipe.
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) acked.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  REQUIRE(WIFSIGNALED(status));

  auto store = backend.open();
  size_t count = 0;
  for (size_t pos = 0, nl; (nl = acked.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    std::string key = acked.substr(pos, nl - pos);
    auto got = store->get(key);
    INFO(key);
    REQUIRE(got.is_ok());
    CHECK(got->value == key + "\n");
    ++count;
  }
  CHECK(count >= 400);
  // Revisions stay gap-free across the crash, and new writes continue after them.
  int64_t cur = store->current_revision();
  CHECK(cur >= static_cast<int64_t>(count));
  auto ev = must(store->events_since("", 0));
  REQUIRE(static_cast<int64_t>(ev.size()) == cur);
  for (int64_t i = 0; i < cur; ++i) REQUIRE(ev[i].revision() == i + 1);
  CHECK(must(store->create("/after", "v")).mod_revision == cur + 1);
}

TEST_CASE("sqlite store: an unopenable path is an error, not a crash", "[store]") {
  SqliteOptions opts;
  opts.path = "/nonexistent-dir-for-skiff-test/sub/store.db";
  auto r = open_sqlite_store(opts);
  REQUIRE(!r.is_ok());
  CHECK(r.status().code() == Code::kIo);
}

TEST_CASE("sqlite store: a watcher that writes gets an error instead of a deadlock", "[store]") {
  SqliteBackend backend;
  auto store = backend.open();
  std::atomic<int> code{-1};
  store->subscribe([&](const Event& e) {
    if (e.kv.key == "/x/a") code = static_cast<int>(store->create("/x/b", "v").status().code());
  });
  must(store->create("/x/a", "v"));
  CHECK(code.load() == static_cast<int>(Code::kInternal));
}

TEST_CASE("memory store: a watcher may write", "[store]") {
  auto store = make_memory_store();
  std::vector<int64_t> revs;
  store->subscribe([&](const Event& e) {
    revs.push_back(e.revision());
    if (e.kv.key == "/x/a") must(store->create("/x/b", "v"));
  });
  must(store->create("/x/a", "v"));
  must(store->create("/x/c", "v"));
  CHECK(revs == std::vector<int64_t>{1, 2, 3});
}

TEST_CASE("prefix_end", "[store]") {
  CHECK(prefix_end("/a/") == std::optional<std::string>("/a0"));
  CHECK(prefix_end("") == std::nullopt);
  CHECK(prefix_end("a\xff") == std::optional<std::string>("b"));
  CHECK(prefix_end("\xff\xff") == std::nullopt);
}

// Throughput numbers, not a test: ./skiff_store_test "[.perf]"
template <class MakeStore>
double creates_per_second(MakeStore make, int threads, int per_thread) {
  auto store = make();
  std::vector<std::thread> ts;
  auto start = std::chrono::steady_clock::now();
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::string value(600, 'x');
      for (int i = 0; i < per_thread; ++i) {
        if (!store
                 ->create("/registry/pods/default/p-" + std::to_string(t) + "-" + std::to_string(i),
                          value)
                 .is_ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : ts) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(failures.load() == 0);
  return threads * per_thread / secs;
}

TEST_CASE("store throughput", "[.perf]") {
  SqliteBackend backend;
  // The floor: 4 KiB append + fdatasync, as one WAL commit is.
  {
    std::string p = backend.dir + "/floor";
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    std::string block(4096, 'x');
    auto start = std::chrono::steady_clock::now();
    int n = 0;
    while (std::chrono::steady_clock::now() - start < 2s && n < 20000) {
      REQUIRE(::write(fd, block.data(), block.size()) == 4096);
      REQUIRE(::fdatasync(fd) == 0);
      ++n;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ::close(fd);
    std::printf("fsync floor: %.0f write+fdatasync/s\n", n / secs);
  }
  int run = 0;
  auto sqlite = [&] {
    SqliteOptions opts;
    opts.path = backend.dir + "/perf" + std::to_string(run++) + ".db";
    return std::move(open_sqlite_store(opts)).value();
  };
  auto memory = [] { return make_memory_store(); };
  std::printf("sqlite  1 thread : %.0f creates/s\n", creates_per_second(sqlite, 1, 2000));
  std::printf("sqlite 64 threads: %.0f creates/s\n", creates_per_second(sqlite, 64, 300));
  {
    // Reads over a store holding 10,000 objects with one update each in history.
    SqliteOptions opts;
    opts.path = backend.dir + "/perf-list.db";
    auto store = std::move(open_sqlite_store(opts)).value();
    std::vector<std::thread> ts;
    for (int t = 0; t < 50; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          std::string key = "/registry/pods/ns/p-" + std::to_string(t) + "-" + std::to_string(i);
          auto c = store->create(key, std::string(600, 'x'));
          if (c.is_ok()) (void)store->update(key, std::string(600, 'y'), 0);
        }
      });
    }
    for (auto& th : ts) th.join();
    auto start = std::chrono::steady_clock::now();
    auto l = store->list("/registry/pods/", 0, 0, "");
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    REQUIRE(l.is_ok());
    std::printf("sqlite list of %zu: %.1f ms\n", l->items.size(), ms);
    start = std::chrono::steady_clock::now();
    std::clock_t cpu = std::clock();
    for (int i = 0; i < 10; ++i) REQUIRE(store->list("/registry/pods/", 0, 0, "").is_ok());
    ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC;
    std::printf("sqlite list of 10000 again: %.1f ms each (%.1f ms CPU)\n", ms / 10, cpu_ms / 10);
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) REQUIRE(store->list("/registry/pods/", 0, 500, "").is_ok());
    ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("sqlite list, first page of 500: %.1f ms each\n", ms / 10);
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10000; ++i) {
      REQUIRE(store->get("/registry/pods/ns/p-7-" + std::to_string(i % 200)).is_ok());
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("sqlite gets: %.0f /s\n", 10000 / s);
  }
  std::printf("memory  1 thread : %.0f creates/s\n", creates_per_second(memory, 1, 50000));
  std::printf("memory 64 threads: %.0f creates/s\n", creates_per_second(memory, 64, 2000));
}

}  // namespace
}  // namespace skiff::store
