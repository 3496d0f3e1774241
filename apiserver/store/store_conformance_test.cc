// The Store conformance suite: every test runs against every backend. The etcd backend launches
// a fresh one-member etcd per test case; its cases (names "... - EtcdBackend" and the [etcd]
// ones) form their own CTest entry, skiff_store_etcd, which reports "skipped" when no etcd can be
// had without touching the memory/SQLite results (skiff_store excludes them).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
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
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "apiserver/store/dispatcher.h"
#include "apiserver/store/store.h"
#include "bench/child.h"
#include "test/testing.h"

namespace skiff::store {
namespace {

using namespace std::chrono_literals;

struct MemoryBackend {
  static constexpr const char* kName = "memory";
  static constexpr bool kDurable = false;
  bool ready() { return true; }
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
  bool ready() { return true; }
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

// ---- etcd: a fresh one-member etcd per test case, on free loopback ports -------------------

using bench::Child;
using bench::free_port;

// One plain-HTTP request to 127.0.0.1:port (etcd's /health and JSON gateway); the status code
// (0 if no answer within timeout_ms) and the body. Connection: close, so the body ends at EOF.
std::pair<int, std::string> http_request(int port, const std::string& method,
                                         const std::string& path, const std::string& body,
                                         int timeout_ms = 5000) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {0, "socket failed"};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return {0, "connect failed"};
  }
  std::string req =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
      "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {0, "send failed"};
  }
  std::string resp;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buf[8192];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody" (the gateway answers with Content-Length, not chunks).
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12) return {0, resp};
  int status = std::atoi(resp.c_str() + 9);
  auto head_end = resp.find("\r\n\r\n");
  return {status, head_end == std::string::npos ? "" : resp.substr(head_end + 4)};
}

std::string base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string run_command(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) {
    *status = -1;
    return "popen failed";
  }
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  *status = ::pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The etcd binary: $SKIFF_ETCD, else Debian's etcd-server unpacked (never installed: that would
// start a system etcd) by test/tools/deb_unpack.sh of $SKIFF_SRC or the configured source dir.
// Looked up once per process. "" and the reason when none can be had.
const std::pair<std::string, std::string>& etcd_binary() {
  static const std::pair<std::string, std::string> found =
      []() -> std::pair<std::string, std::string> {
    if (const char* e = std::getenv("SKIFF_ETCD"); e != nullptr && *e != '\0') {
      if (::access(e, X_OK) == 0) return {e, ""};
      return {"", std::string("SKIFF_ETCD=") + e + " is not an executable"};
    }
    std::string src;
    if (const char* e = std::getenv("SKIFF_SRC"); e != nullptr && *e != '\0') src = e;
#ifdef SKIFF_SOURCE_DIR
    if (src.empty()) src = SKIFF_SOURCE_DIR;
#endif
    if (src.empty()) return {"", "no etcd: set SKIFF_ETCD or SKIFF_SRC (for deb_unpack.sh)"};
    int st = 0;
    std::string out = run_command(
        "bash '" + src + "/test/tools/deb_unpack.sh' etcd-server usr/bin/etcd 2>&1", &st);
    if (st == 0 && ::access(out.c_str(), X_OK) == 0) return {out, ""};
    return {"", "no etcd (set SKIFF_ETCD): deb_unpack.sh etcd-server failed: " + out};
  }();
  return found;
}

// A temporary directory removed (with its contents) on destruction.
struct TempDir {
  std::string path;
  explicit TempDir(const char* prefix) {
    std::string tmpl = std::string("/tmp/") + prefix + "XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// One etcd member on free loopback ports with its data in a mkdtemp dir. The members are
// destroyed in reverse order: etcd is stopped (SIGTERM, then SIGKILL) before its dir goes, also
// when the test case fails (Catch unwinds through the destructors).
class EtcdProcess {
 public:
  explicit EtcdProcess(const std::string& exe) : dir_("skiff-store-etcd-") {
    if (dir_.path.empty()) {
      error_ = "mkdtemp failed";
      return;
    }
    port_ = free_port();
    std::string client = url();
    std::string peer = "http://127.0.0.1:" + std::to_string(free_port());
    log_ = dir_.path + "/etcd.log";
    const std::pair<const char*, std::string> flags[] = {
        {"--name", "skiff-test"},
        {"--data-dir", dir_.path + "/data"},
        {"--listen-client-urls", client},
        {"--advertise-client-urls", client},
        {"--listen-peer-urls", peer},
        {"--initial-advertise-peer-urls", peer},
        {"--initial-cluster", "skiff-test=" + peer},
        {"--logger", "zap"},
        {"--log-level", "warn"}};
    args_ = {exe};
    for (const auto& [flag, value] : flags) {
      args_.push_back(flag);
      args_.push_back(value);
    }
    start();
  }
  bool ready() const { return ready_; }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Stops etcd (SIGTERM, then SIGKILL) and starts it again on the same data and ports.
  bool restart() {
    child_.reset();
    ready_ = false;
    error_.clear();
    start();
    return ready_;
  }

 private:
  void start() {
    child_ = std::make_unique<Child>(args_, log_);
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!child_->alive()) {
        error_ = "etcd exited during start-up";
        break;
      }
      auto [status, body] = http_request(port_, "GET", "/health", "", 2000);
      if (status == 200 && body.find("\"true\"") != std::string::npos) {
        ready_ = true;
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (error_.empty()) error_ = "etcd not healthy within 60 s";
    std::ifstream f(log_);
    std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (log.size() > 3000) log = log.substr(log.size() - 3000);
    error_ += " (" + args_[0] + ", client " + url() + "); its log:\n" + log;
  }

  TempDir dir_;
  int port_ = 0;
  std::string log_;
  std::vector<std::string> args_;
  std::unique_ptr<Child> child_;
  bool ready_ = false;
  std::string error_;
};

struct EtcdBackend {
  static constexpr const char* kName = "etcd";
  static constexpr bool kDurable = true;
  std::unique_ptr<EtcdProcess> etcd;
  std::string skip_reason;
  EtcdBackend() {
    const auto& [exe, why] = etcd_binary();
    if (exe.empty()) {
      skip_reason = why;
      return;
    }
    etcd = std::make_unique<EtcdProcess>(exe);
  }
  // False when the case cannot run: skipped if no etcd binary can be had, failed if the one we
  // have does not start.
  bool ready() {
    if (!etcd) {
      skiff::testing::skip(skip_reason);
      return false;
    }
    INFO(etcd->error());
    CHECK(etcd->ready());
    return etcd->ready();
  }
  std::string url() const { return etcd->url(); }
  EtcdOptions options(int64_t keep = 10000, int compact_interval_ms = 0) const {
    EtcdOptions opts;
    opts.endpoints = {url()};
    opts.keep_revisions = keep;
    opts.compact_interval_ms = compact_interval_ms;
    return opts;
  }
  std::unique_ptr<Store> open(int64_t keep = 10000, int compact_interval_ms = 0) {
    auto r = open_etcd_store(options(keep, compact_interval_ms));
    INFO("open_etcd_store(" << url() << "): " << r.status().to_string());
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
                   SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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
                   SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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
                   MemoryBackend, SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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
  CHECK(ev[0].prev.has_value());  // the predecessor of the first event after the point
  if (ev[0].prev) CHECK(ev[0].prev->mod_revision == 4);
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
                   MemoryBackend, SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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

  if constexpr (std::is_same_v<TestType, EtcdBackend>) {
    // etcd itself compacted (not just the store's view of it): a raw read at etcd revision 2
    // (the store's revision 1, far below the compaction point) is refused as compacted.
    std::string body = "{\"key\":\"" + base64("/a/") + "\",\"range_end\":\"" + base64("/a0") +
                       "\",\"revision\":\"2\"}";
    auto [status, reply] = http_request(backend.etcd->port(), "POST", "/v3/kv/range", body);
    INFO("etcd range at revision 2: HTTP " << status << " " << reply);
    CHECK(status != 200);
    CHECK(reply.find("compacted") != std::string::npos);
  }
  if constexpr (std::is_same_v<TestType, SqliteBackend>) {
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
                   SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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
                   SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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

TEMPLATE_TEST_CASE("store: a watcher may read the store", "[store]", MemoryBackend, SqliteBackend,
                   EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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

TEMPLATE_TEST_CASE("store: 32 concurrent writers", "[store]", MemoryBackend, SqliteBackend,
                   EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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
                   MemoryBackend, SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
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

TEMPLATE_TEST_CASE("store: reopen keeps data, revisions and the compaction point", "[store]",
                   SqliteBackend, EtcdBackend) {
  TestType backend;
  if (!backend.ready()) return;
  {
    auto store = backend.open();
    for (int i = 0; i < 20; ++i) must(store->create("/d/" + std::to_string(i), "v"));
    must(store->update("/d/3", "w", 0));  // 21
    must(store->remove("/d/19", 0));      // 22
    REQUIRE(store->compact(10).is_ok());
    must(store->remove("/d/18", 0));  // 23: the newest row is a tombstone
    REQUIRE(store->compact(23).is_ok());
    CHECK(store->close().is_ok());
    if constexpr (std::is_same_v<TestType, SqliteBackend>) {
      CHECK(code_of(store->create("/d/x", "v")) == Code::kUnavailable);
      CHECK(code_of(store->get("/d/1")) == Code::kUnavailable);
    }
  }
  if constexpr (std::is_same_v<TestType, SqliteBackend>) {
    struct stat st {};
    REQUIRE(::stat(backend.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // it holds Secrets
  }
  auto store = backend.open();
  CHECK(store->current_revision() == 23);
  CHECK(store->compacted_revision() == 23);
  CHECK(must(store->get("/d/3")).value == "w");
  CHECK(must(store->get("/d/3")).mod_revision == 21);
  CHECK(code_of(store->get("/d/19")) == Code::kNotFound);
  CHECK(must(store->list("/d/", 0, 0, "")).items.size() == 18);
  CHECK(code_of(store->events_since("", 9)) == Code::kGone);
  CHECK(code_of(store->list("/d/", 22, 0, "")) == Code::kGone);
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

// ---- etcd only: several stores on one etcd, unreachable endpoints, failover, reopen --------

TEST_CASE("etcd store: two stores on one etcd see each other's writes", "[etcd]") {
  EtcdBackend backend;
  if (!backend.ready()) return;
  std::mutex mu;
  std::vector<Event> seen_a, seen_b;  // declared before the stores: they outlive them
  auto a = backend.open();
  auto first = must(a->create("/ha/first", "1"));
  CHECK(first.mod_revision == 1);

  // A store opened on an etcd that already holds data starts at its revision.
  auto b = backend.open();
  CHECK(b->current_revision() == 1);
  CHECK(must(b->get("/ha/first")).mod_revision == 1);
  b->subscribe([&](const Event& e) {
    std::lock_guard lock(mu);
    seen_b.push_back(e);
  });

  auto c = must(a->create("/ha/x", "1"));  // 2
  CHECK(c.mod_revision == 2);
  // Reads go to etcd: the other store sees the write as soon as it is acknowledged.
  auto got = must(b->get("/ha/x"));
  CHECK(got.value == "1");
  CHECK(got.mod_revision == 2);
  CHECK(got.create_revision == 2);
  auto l = must(b->list("/ha/", 0, 0, ""));
  CHECK(keys_of(l) == std::vector<std::string>{"/ha/first", "/ha/x"});
  CHECK(l.revision == 2);
  auto u = must(a->update("/ha/x", "2", c.mod_revision));  // 3
  CHECK(u.mod_revision == 3);
  auto d = must(a->remove("/ha/x", u.mod_revision));  // 4
  CHECK(d.mod_revision == 4);

  // The other store's subscriber gets them through its etcd watch, in order, with the revisions
  // the writer was given.
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return seen_b.size() >= 3;
  }));
  {
    std::lock_guard lock(mu);
    REQUIRE(seen_b.size() == 3);
    CHECK(seen_b[0].revision() == 2);
    CHECK(seen_b[0].type == EventType::kPut);
    CHECK(seen_b[0].is_create);
    CHECK(seen_b[0].kv.value == "1");
    CHECK(seen_b[1].revision() == 3);
    CHECK(!seen_b[1].is_create);
    CHECK(seen_b[1].kv.value == "2");
    REQUIRE(seen_b[1].prev.has_value());
    CHECK(seen_b[1].prev->value == "1");
    CHECK(seen_b[1].prev->mod_revision == 2);
    CHECK(seen_b[2].revision() == 4);
    CHECK(seen_b[2].type == EventType::kDelete);
    CHECK(seen_b[2].kv.key == "/ha/x");
    CHECK(seen_b[2].kv.value == "2");
  }
  CHECK(eventually([&] { return b->current_revision() == 4; }));
  auto ev = must(b->events_since("/ha/", 1));
  REQUIRE(ev.size() == 3);
  CHECK(ev[2].type == EventType::kDelete);

  // And the other way round.
  a->subscribe([&](const Event& e) {
    std::lock_guard lock(mu);
    seen_a.push_back(e);
  });
  auto y = must(b->create("/ha/y", "b"));  // 5
  CHECK(y.mod_revision == 5);
  CHECK(must(a->get("/ha/y")).value == "b");
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return !seen_a.empty();
  }));
  {
    std::lock_guard lock(mu);
    CHECK(seen_a[0].revision() == 5);
    CHECK(seen_a[0].kv.key == "/ha/y");
  }
  // Compare-and-swap holds across stores: b's revision is stale once a updated the key.
  must(a->update("/ha/y", "a", y.mod_revision));  // 6
  CHECK(code_of(b->update("/ha/y", "stale", y.mod_revision)) == Code::kConflict);
  CHECK(code_of(b->remove("/ha/y", y.mod_revision)) == Code::kConflict);
  CHECK(code_of(b->create("/ha/y", "dup")) == Code::kAlreadyExists);
  CHECK(must(b->get("/ha/y")).value == "a");
  CHECK(a->close().is_ok());
  CHECK(b->close().is_ok());
}

TEST_CASE("etcd store: compare-and-swap racing across two stores loses no update", "[etcd]") {
  EtcdBackend backend;
  if (!backend.ready()) return;
  auto a = backend.open();
  auto b = backend.open();
  must(a->create("/cas/counter", "0"));
  constexpr int kThreadsPerStore = 4;
  constexpr int kIncrements = 25;
  std::atomic<int> conflicts{0};
  std::mutex mu;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsPerStore; ++t) {
    Store* store = t % 2 == 0 ? a.get() : b.get();
    threads.emplace_back([&, store] {
      for (int done = 0, attempts = 0; done < kIncrements && attempts < 100 * kIncrements;
           ++attempts) {
        auto cur = store->get("/cas/counter");
        if (!cur.is_ok()) {
          std::lock_guard lock(mu);
          errors.push_back("get: " + cur.status().to_string());
          return;
        }
        int n = std::stoi(cur->value);
        auto r = store->update("/cas/counter", std::to_string(n + 1), cur->mod_revision);
        if (r.is_ok()) {
          ++done;
        } else if (r.status().code() == Code::kConflict) {
          ++conflicts;
        } else {
          std::lock_guard lock(mu);
          errors.push_back("update: " + r.status().to_string());
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) FAIL_CHECK(e);
  auto final_value = must(b->get("/cas/counter"));
  constexpr int kTotal = 2 * kThreadsPerStore * kIncrements;
  CHECK(final_value.value == std::to_string(kTotal));
  CHECK(final_value.mod_revision == 1 + kTotal);  // a failed compare takes no revision
  CHECK(must(a->get("/cas/counter")).value == std::to_string(kTotal));
}

// Runs open_etcd_store on a thread of its own and waits at most `limit` for it: a hang becomes a
// failure of this case instead of a stuck test binary (the thread is then left behind).
std::optional<Result<std::unique_ptr<Store>>> open_within(const EtcdOptions& opts,
                                                          std::chrono::seconds limit) {
  auto done = std::make_shared<std::promise<Result<std::unique_ptr<Store>>>>();
  auto future = done->get_future();
  std::thread([opts, done] { done->set_value(open_etcd_store(opts)); }).detach();
  if (future.wait_for(limit) != std::future_status::ready) return std::nullopt;
  return future.get();
}

// A loopback port that accepts connections (the kernel completes the handshake into the
// backlog) but never answers: an etcd that hangs, which only a request timeout gets past.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 64) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_CASE("etcd store: an endpoint that does not answer fails the open, bounded by the timeout",
          "[etcd]") {
  // No etcd binary is needed: nothing of etcd runs here.
  EtcdOptions opts;
  opts.request_timeout_ms = 2000;
  opts.compact_interval_ms = 0;
  SECTION("nothing listens (connection refused)") {
    std::string dead = "http://127.0.0.1:" + std::to_string(free_port());
    opts.endpoints = {dead};
    auto r = open_within(opts, 60s);
    REQUIRE(r.has_value());  // else: open_etcd_store did not return within 60 s
    INFO(r->status().to_string());
    CHECK(!r->is_ok());
    // The error names what it could not reach.
    CHECK(r->status().message().find(dead.substr(7)) != std::string::npos);
  }
  SECTION("a listener that never answers") {
    SilentListener silent;
    REQUIRE(silent.port() != 0);
    opts.endpoints = {silent.url()};
    auto r = open_within(opts, 60s);  // 30x request_timeout_ms
    REQUIRE(r.has_value());           // else: open_etcd_store hung on a silent endpoint
    INFO(r->status().to_string());
    CHECK(!r->is_ok());
    CHECK(r->status().message().find(silent.url().substr(7)) != std::string::npos);
  }
  SECTION("no endpoints at all") {
    opts.endpoints = {};
    auto r = open_within(opts, 60s);
    REQUIRE(r.has_value());
    INFO(r->status().to_string());
    CHECK(!r->is_ok());
  }
}

TEST_CASE("etcd store: endpoints {dead, live} fail over to the live one", "[etcd]") {
  EtcdBackend backend;
  if (!backend.ready()) return;
  SilentListener silent;
  REQUIRE(silent.port() != 0);
  std::string refused = "http://127.0.0.1:" + std::to_string(free_port());
  auto check_works = [&](std::vector<std::string> endpoints, const std::string& key) {
    INFO("endpoints: " << endpoints[0] << " then " << endpoints.back());
    EtcdOptions opts = backend.options();
    opts.endpoints = std::move(endpoints);
    opts.request_timeout_ms = 2000;
    auto r = open_within(opts, 60s);
    REQUIRE(r.has_value());
    INFO(r->status().to_string());
    REQUIRE(r->is_ok());
    auto store = std::move(*r).value();
    std::atomic<int64_t> last_seen{0};
    store->subscribe([&](const Event& e) { last_seen = e.revision(); });
    auto c = must(store->create(key, "v"));
    CHECK(must(store->get(key)).mod_revision == c.mod_revision);
    CHECK(keys_of(must(store->list(key, 0, 0, ""))) == std::vector<std::string>{key});
    auto u = must(store->update(key, "w", c.mod_revision));
    CHECK(u.mod_revision == c.mod_revision + 1);
    CHECK(eventually([&] { return last_seen.load() == u.mod_revision; }));
    CHECK(store->close().is_ok());
  };
  SECTION("the first refuses connections") {
    check_works({refused, backend.url()}, "/failover/refused-first");
  }
  SECTION("the first accepts connections but never answers (a hung member)") {
    check_works({silent.url(), backend.url()}, "/failover/silent-first");
  }
  SECTION("the live one first") { check_works({backend.url(), refused}, "/failover/live-first"); }
}

TEST_CASE("etcd store: subscribers keep receiving after etcd restarts", "[etcd]") {
  EtcdBackend backend;
  if (!backend.ready()) return;
  std::mutex mu;
  std::vector<int64_t> seen;
  auto a = backend.open();
  a->subscribe([&](const Event& e) {
    std::lock_guard lock(mu);
    seen.push_back(e.revision());
  });
  must(a->create("/r/1", "v"));  // 1
  must(a->create("/r/2", "v"));  // 2
  {
    INFO("restarting etcd: " << backend.etcd->error());
    REQUIRE(backend.etcd->restart());
  }
  // The first requests after the restart may meet a broken pooled connection: retry, bounded.
  REQUIRE(eventually([&] { return a->get("/r/1").is_ok(); }));
  // A write through another store after the restart reaches a's subscriber through a's resumed
  // watch; then a's own.
  auto b = backend.open();
  auto w3 = must(b->create("/r/3", "v"));
  CHECK(w3.mod_revision == 3);
  auto w4 = must(a->update("/r/1", "w", 1));
  CHECK(w4.mod_revision == 4);
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return seen.size() >= 4;
  }));
  std::lock_guard lock(mu);
  CHECK(seen == std::vector<int64_t>{1, 2, 3, 4});  // no gap, no repeat across the restart
}

TEST_CASE("sqlite: steady writes keep the WAL within its pre-sized length and reach the database") {
  SqliteBackend backend;
  SqliteOptions opts;
  opts.path = backend.dir + "/wal.db";
  auto store = std::move(open_sqlite_store(opts)).value();
  const std::string value(600, 'x');
  // A lone writer and then 8 at once, each well past two checkpoint cycles (1,000 frames).
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(store->create("/registry/pods/default/a-" + std::to_string(i), value).is_ok());
  }
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        std::string key = "/registry/pods/default/b-" + std::to_string(t) + "-" + std::to_string(i);
        if (!store->create(key, value).is_ok()) ++failures;
      }
    });
  }
  for (auto& th : ts) th.join();
  CHECK(failures.load() == 0);
  namespace fs = std::filesystem;
  // Pre-sized to 8 MiB; a WAL never restarted would hold every frame (tens of MiB here).
  CHECK(fs::file_size(opts.path + "-wal") <= (8u << 20) + (64u << 10));
  // The checkpoints copied the rows into the database file.
  CHECK(fs::file_size(opts.path) > (2u << 20));
  REQUIRE(store->close().is_ok());
  auto again = std::move(open_sqlite_store(opts)).value();
  auto l = again->list("/registry/pods/default/", 0, 0, "");
  REQUIRE(l.is_ok());
  CHECK(l->items.size() == 7000);
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
