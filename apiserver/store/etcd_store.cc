// The etcd Store: etcd's v3 API through its JSON gateway, as kube-apiserver uses it.
//
// Writes are single-key transactions guarded by a compare on the key's mod_revision (create:
// "mod_revision == 0"; update/delete with an expected revision: "mod_revision == expected";
// unconditional update/delete: "version > 0", i.e. the key is live). A failed compare returns
// the key as it is, which tells NotFound from Conflict without a second request.
//
// Events reach subscribers from one watch on the whole keyspace, started at open and resumed
// from the last delivered revision after a broken stream; it carries every API server's writes,
// so several servers on one etcd each keep their watch caches current. To keep the Store
// contract (a subscriber has seen a write before the write returns) a write waits until its
// revision came through the watch.
//
// Revisions: etcd's minus one (a fresh etcd is at revision 1; its first write is 2).

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "apiserver/store/dispatcher.h"
#include "apiserver/store/etcd_client.h"
#include "apiserver/store/store.h"
#include "common/base64.h"

namespace skiff::store {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kOffset = 1;  // etcd revision = skiff revision + kOffset
// A watch that has not brought a written revision for this long is taken for stuck.
constexpr std::chrono::milliseconds kStuckAfter{2000};

// The watch thread of this store, so that a subscriber's write does not wait for itself.
thread_local const void* tl_watch_thread_of = nullptr;

// grpc-gateway writes int64 fields as JSON strings and leaves out zero values.
int64_t num(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_string()) return std::strtoll(it->get_ref<const std::string&>().c_str(), nullptr, 10);
  if (it->is_number_integer()) return it->get<int64_t>();
  return 0;
}

std::string bytes(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return "";
  auto d = base64_decode(it->get_ref<const std::string&>());
  return d ? std::move(d).value() : "";
}

// j[field] and j[i], with anything absent or of another type read as null: etcd's answers are
// trusted only as far as they parse.
const json& member(const json& j, const char* field) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(field);
  return it == j.end() ? kNull : *it;
}
const json& element(const json& j, size_t i) {
  static const json kNull;
  return j.is_array() && i < j.size() ? j[i] : kNull;
}

bool flag(const json& j, const char* field) {
  auto it = j.find(field);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

// A KeyValue from etcd's mvccpb.KeyValue, revisions mapped to ours.
KeyValue to_kv(const json& j) {
  KeyValue kv;
  kv.key = bytes(j, "key");
  kv.value = bytes(j, "value");
  kv.create_revision = num(j, "create_revision") - kOffset;
  kv.mod_revision = num(j, "mod_revision") - kOffset;
  return kv;
}

int64_t header_revision(const json& j) {
  auto it = j.find("header");
  return it == j.end() ? 0 : num(*it, "revision") - kOffset;
}

json key_compare(const std::string& key, const char* target, const char* result, int64_t value) {
  json c = {{"key", base64_encode(key)}, {"target", target}, {"result", result}};
  c[std::string(target == std::string("MOD") ? "mod_revision" : "version")] = std::to_string(value);
  return c;
}

class EtcdStore final : public Store {
 public:
  EtcdStore(const EtcdOptions& opts, std::vector<etcd::Endpoint> eps, etcd::TlsContext tls)
      : opts_(opts),
        client_(std::move(eps), std::chrono::milliseconds(std::max(100, opts.request_timeout_ms)),
                std::move(tls)) {}

  ~EtcdStore() override { (void)close(); }

  // Reads the current revision and starts the watch and the compactor.
  Status open() {
    auto rev = fetch_revision();
    if (!rev) return rev.status();
    delivered_ = *rev;
    dispatch_.emplace(*rev);
    SKIFF_RETURN_IF_ERROR(learn_compaction());
    watch_thread_ = std::thread([this] { run_watch(); });
    if (opts_.compact_interval_ms > 0) compact_thread_ = std::thread([this] { run_compactor(); });
    return Status::ok();
  }

  Result<KeyValue> get(std::string_view key) override {
    auto r = call("/v3/kv/range", json{{"key", base64_encode(key)}});
    if (!r) return r.status().with_context("get " + quote_key(key));
    const json& kvs = member(*r, "kvs");
    if (!kvs.is_array() || kvs.empty())
      return Status::not_found("get " + quote_key(key) + ": not found");
    return to_kv(kvs[0]);
  }

  Result<ListResult> list(std::string_view prefix, int64_t revision, int64_t limit,
                          std::string_view start_after) override {
    std::string what = "list " + quote_key(prefix) + " at revision " + std::to_string(revision);
    if (revision < 0) return Status::invalid(what + ": negative revision");
    if (revision > 0 && revision <= compacted_.load()) {
      // The current revision itself always answers, even when compacted up to it.
      auto cur = fetch_revision();
      if (!cur) return cur.status().with_context(what);
      if (revision != *cur)
        return Status::gone(what + ": compacted (history starts after " +
                            std::to_string(compacted_.load()) + ")");
    }
    std::string from(prefix);
    if (!start_after.empty() && start_after >= prefix) from = std::string(start_after) + '\0';
    auto end = prefix_end(prefix);
    json req = {{"key", base64_encode(from.empty() ? std::string(1, '\0') : from)},
                {"range_end", base64_encode(end ? *end : std::string(1, '\0'))}};
    if (limit > 0) req["limit"] = std::to_string(limit);
    if (revision > 0) req["revision"] = std::to_string(revision + kOffset);
    auto r = call("/v3/kv/range", req);
    if (!r) return r.status().with_context(what);
    ListResult out;
    out.revision = revision > 0 ? revision : header_revision(*r);
    out.more = flag(*r, "more");
    if (auto it = r->find("kvs"); it != r->end() && it->is_array()) {
      out.items.reserve(it->size());
      for (const auto& kv : *it) out.items.push_back(to_kv(kv));
    }
    return out;
  }

  Result<KeyValue> create(std::string_view key, std::string_view value) override {
    std::string k(key);
    json txn = {{"compare", json::array({key_compare(k, "MOD", "EQUAL", 0)})},
                {"success",
                 json::array({{{"request_put",
                                {{"key", base64_encode(k)}, {"value", base64_encode(value)}}}}})},
                {"failure", json::array()}};
    auto r = call("/v3/kv/txn", txn);
    if (!r) return r.status().with_context("create " + quote_key(key));
    if (!flag(*r, "succeeded"))
      return Status::already_exists("create " + quote_key(key) + ": already exists");
    KeyValue kv;
    kv.key = k;
    kv.value = std::string(value);
    kv.create_revision = kv.mod_revision = header_revision(*r);
    wait_delivered(kv.mod_revision);
    return kv;
  }

  Result<KeyValue> update(std::string_view key, std::string_view value,
                          int64_t expected_revision) override {
    std::string k(key);
    json op = {{"request_put",
                {{"key", base64_encode(k)}, {"value", base64_encode(value)}, {"prev_kv", true}}}};
    auto r = guarded("update " + quote_key(key), k, expected_revision, op);
    if (!r) return r.status();
    const json& resp = member(element(member(*r, "responses"), 0), "response_put");
    KeyValue kv;
    kv.key = k;
    kv.value = std::string(value);
    kv.mod_revision = header_revision(*r);
    kv.create_revision = resp.contains("prev_kv")
                             ? num(member(resp, "prev_kv"), "create_revision") - kOffset
                             : kv.mod_revision;
    wait_delivered(kv.mod_revision);
    return kv;
  }

  Result<KeyValue> remove(std::string_view key, int64_t expected_revision) override {
    std::string k(key);
    json op = {{"request_delete_range", {{"key", base64_encode(k)}, {"prev_kv", true}}}};
    auto r = guarded("delete " + quote_key(key), k, expected_revision, op);
    if (!r) return r.status();
    const json& resp = member(element(member(*r, "responses"), 0), "response_delete_range");
    const json& prev = member(resp, "prev_kvs");
    if (!prev.is_array() || prev.empty())  // deleted by someone else between compare and delete
      return Status::not_found("delete " + quote_key(key) + ": not found");
    KeyValue kv = to_kv(prev[0]);
    kv.mod_revision = header_revision(*r);
    wait_delivered(kv.mod_revision);
    return kv;
  }

  int64_t current_revision() override {
    auto r = fetch_revision();
    if (r) {
      // Subscribers have seen everything up to the revision returned (the watch cache takes
      // it as the point from which their events are complete).
      wait_delivered(*r);
      return *r;
    }
    std::lock_guard lock(mu_);
    return delivered_;  // etcd is unreachable: the newest revision this server has seen
  }

  int64_t compacted_revision() override { return compacted_.load(); }

  Status compact(int64_t revision) override {
    if (revision <= compacted_.load()) return Status::ok();
    auto cur = fetch_revision();
    if (!cur) return cur.status().with_context("compact");
    if (revision > *cur)
      return Status::invalid("compact to " + std::to_string(revision) +
                             ": beyond the current revision " + std::to_string(*cur));
    // etcd at `revision` (ours): it keeps that state readable, which the first later event
    // needs for its prev_kv; reads of it are refused here (compacted_), as ours drop it.
    int64_t etcd_rev = revision + kOffset;
    auto r = call("/v3/kv/compaction", json{{"revision", std::to_string(etcd_rev)}});
    if (!r && r.status().code() != Code::kGone)
      return r.status().with_context("compact to " + std::to_string(revision));
    int64_t prev = compacted_.load();
    while (prev < revision && !compacted_.compare_exchange_weak(prev, revision)) {
    }
    return Status::ok();
  }

  Result<std::vector<Event>> events_since(std::string_view prefix, int64_t from_revision) override {
    std::string what = "events on " + quote_key(prefix) + " since " + std::to_string(from_revision);
    if (from_revision < compacted_.load())
      return Status::gone(what + ": compacted (history starts after " +
                          std::to_string(compacted_.load()) + ")");
    auto cur = fetch_revision();
    if (!cur) return cur.status().with_context(what);
    std::vector<Event> out;
    if (from_revision >= *cur) return out;
    // A watch of the whole keyspace from the next revision, read up to the current one: every
    // revision is some key's event, so the stream reaches it.
    auto stream = client_.stream("/v3/watch", watch_request(from_revision + 1).dump());
    if (!stream) return stream.status().with_context(what);
    etcd::WatchStream& ws = **stream;
    auto deadline = std::chrono::steady_clock::now() + 4 * client_.timeout();
    int64_t seen = from_revision;
    while (seen < *cur) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status::timeout(what + ": the etcd watch fell behind");
      auto line = ws.next(left);
      if (!line) return line.status().with_context(what);
      json msg = json::parse(*line, nullptr, false);
      const json* res = result_of(msg);
      if (res == nullptr) return Status::unavailable(what + ": etcd watch: " + *line);
      if (num(*res, "compact_revision") > 0) {
        note_compacted(num(*res, "compact_revision") - kOffset);
        return Status::gone(what + ": compacted");
      }
      for (const auto& e : events_of(*res)) {
        seen = std::max(seen, e.revision());
        if (e.revision() <= *cur && std::string_view(e.kv.key).starts_with(prefix))
          out.push_back(e);
      }
    }
    ws.close();
    return out;
  }

  bool shared() const override { return true; }

  Status health() override {
    auto r = fetch_revision();
    return r ? Status::ok() : r.status();
  }

  uint64_t subscribe(WatchCallback cb) override { return dispatch_->subscribe(std::move(cb)); }
  void unsubscribe(uint64_t id) override { dispatch_->unsubscribe(id); }

  Status close() override {
    {
      std::lock_guard lock(mu_);
      if (closed_) return Status::ok();
      closed_ = true;
      if (stream_) stream_->close();
    }
    cv_.notify_all();
    if (watch_thread_.joinable()) watch_thread_.join();
    if (compact_thread_.joinable()) compact_thread_.join();
    return Status::ok();
  }

 private:
  // POSTs a JSON request; maps etcd's errors: a compacted revision → Gone, a future one →
  // Invalid, anything else → Unavailable with etcd's message.
  Result<json> call(std::string_view path, const json& req) {
    std::string body;
    // Reads and compactions may be repeated on another member; transactions may not.
    const bool idempotent = path == "/v3/kv/range" || path == "/v3/kv/compaction";
    auto status = client_.post(path, req.dump(), &body, idempotent);
    if (!status) return status.status();
    json j = json::parse(body, nullptr, false);
    if (*status != 200 || j.is_discarded() || !j.is_object() || j.contains("error")) {
      std::string msg = j.is_object() && j.contains("error") && j["error"].is_string()
                            ? j["error"].get<std::string>()
                            : "HTTP " + std::to_string(*status) + ": " + body.substr(0, 200);
      if (msg.find("required revision has been compacted") != std::string::npos)
        return Status::gone("etcd: " + msg);
      if (msg.find("required revision is a future revision") != std::string::npos)
        return Status::invalid("etcd: " + msg);
      return Status::unavailable("etcd: " + msg);
    }
    return j;
  }

  Result<int64_t> fetch_revision() {
    auto r = call("/v3/kv/range",
                  json{{"key", base64_encode(std::string(1, '\0'))}, {"count_only", true}});
    if (!r) return r.status();
    return header_revision(*r);
  }

  // A write guarded by `expected` (0: the key must be live); on a failed compare, tells
  // NotFound from Conflict from the key's current state.
  Result<json> guarded(const std::string& what, const std::string& key, int64_t expected,
                       const json& op) {
    json cmp = expected != 0 ? key_compare(key, "MOD", "EQUAL", expected + kOffset)
                             : key_compare(key, "VERSION", "GREATER", 0);
    json txn = {{"compare", json::array({cmp})},
                {"success", json::array({op})},
                {"failure", json::array({{{"request_range", {{"key", base64_encode(key)}}}}})}};
    auto r = call("/v3/kv/txn", txn);
    if (!r) return r.status().with_context(what);
    if (flag(*r, "succeeded")) return r;
    const json& kvs = member(member(element(member(*r, "responses"), 0), "response_range"), "kvs");
    if (!kvs.is_array() || kvs.empty()) return Status::not_found(what + ": not found");
    return Status::conflict(what + ": the object has been modified (revision " +
                            std::to_string(num(kvs[0], "mod_revision") - kOffset) + ", expected " +
                            std::to_string(expected) + ")");
  }

  // etcd does not say where it was compacted, except to a watch that starts below that point:
  // one from the first revision, read up to its first events or its compaction notice.
  Status learn_compaction() {
    if (delivered_ <= 0) return Status::ok();  // nothing written: nothing compacted
    auto stream = client_.stream("/v3/watch", watch_request(0).dump());
    if (!stream) return stream.status().with_context("reading etcd's compaction point");
    auto deadline = std::chrono::steady_clock::now() + client_.timeout();
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status::timeout("reading etcd's compaction point");
      auto line = (*stream)->next(left);
      if (!line) return line.status().with_context("reading etcd's compaction point");
      json msg = json::parse(*line, nullptr, false);
      const json* res = result_of(msg);
      if (res == nullptr) return Status::unavailable("etcd watch: " + line->substr(0, 300));
      if (int64_t c = num(*res, "compact_revision"); c > 0) {
        note_compacted(c - kOffset);
        return Status::ok();
      }
      if (auto it = res->find("events"); it != res->end() && it->is_array() && !it->empty())
        return Status::ok();  // history from the start: never compacted
    }
  }

  json watch_request(int64_t start_revision) const {
    std::string all(1, '\0');
    return json{{"create_request",
                 {{"key", base64_encode(all)},
                  {"range_end", base64_encode(all)},
                  {"start_revision", std::to_string(start_revision + kOffset)},
                  {"prev_kv", true}}}};
  }

  static const json* result_of(const json& msg) {
    if (!msg.is_object()) return nullptr;
    auto it = msg.find("result");
    return it == msg.end() || !it->is_object() ? nullptr : &*it;
  }

  static std::vector<Event> events_of(const json& res) {
    std::vector<Event> out;
    auto it = res.find("events");
    if (it == res.end() || !it->is_array()) return out;
    for (const auto& e : *it) {
      Event ev;
      const bool del = member(e, "type") == "DELETE";
      ev.type = del ? EventType::kDelete : EventType::kPut;
      if (member(e, "prev_kv").is_object()) ev.prev = to_kv(member(e, "prev_kv"));
      if (del) {
        // etcd's delete event has only the key and the delete's revision: the value is the
        // previous one.
        int64_t rev = num(member(e, "kv"), "mod_revision") - kOffset;
        ev.kv = ev.prev ? *ev.prev : to_kv(member(e, "kv"));
        ev.kv.mod_revision = rev;
      } else {
        ev.kv = to_kv(member(e, "kv"));
        ev.is_create = num(member(e, "kv"), "version") == 1;
        if (ev.is_create) ev.prev.reset();
      }
      out.push_back(std::move(ev));
    }
    return out;
  }

  void note_compacted(int64_t rev) {
    int64_t prev = compacted_.load();
    while (prev < rev && !compacted_.compare_exchange_weak(prev, rev)) {
    }
  }

  // A write's revision has reached the subscribers (or the store is closing, or the watch is
  // stuck: then the write still succeeded, and the subscribers see it when the watch recovers).
  void wait_delivered(int64_t rev) {
    if (tl_watch_thread_of == this) return;  // a subscriber's own write: it would wait for itself
    std::unique_lock lock(mu_);
    if (delivered_ >= rev) return;
    if (awaited_ <= delivered_) awaited_since_ = std::chrono::steady_clock::now();
    awaited_ = std::max(awaited_, rev);
    if (!cv_.wait_for(lock, client_.timeout(), [&] { return delivered_ >= rev || closed_; }))
      spdlog::warn("etcd store: revision {} not seen on the watch after {} ms", rev,
                   client_.timeout().count());
  }

  void run_watch() {
    tl_watch_thread_of = this;
    auto backoff = 100ms;
    for (;;) {
      int64_t from;
      {
        std::lock_guard lock(mu_);
        if (closed_) return;
        from = delivered_;
      }
      bool started = false;
      Status st = watch_once(from, &started);
      if (started) backoff = 100ms;  // it ran: a new break starts the back-off afresh
      {
        std::lock_guard lock(mu_);
        if (closed_) return;
        stream_.reset();
      }
      if (st.code() == Code::kGone) {
        // History this server has not delivered is gone: its watch cache can no longer be made
        // complete. A restart lists everything afresh; keeping on would serve a stale cache.
        spdlog::critical(
            "etcd store: the watch cannot resume after revision {}: {}; exiting so "
            "the supervisor restarts this API server with a fresh cache",
            from, st.to_string());
        std::_Exit(70);
      }
      std::unique_lock lock(mu_);
      spdlog::warn("etcd store: watch stream: {}; resuming after revision {} in {} ms",
                   st.to_string(), delivered_, backoff.count());
      cv_.wait_for(lock, backoff, [&] { return closed_; });
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2s);
    }
  }

  // Follows one watch stream until it breaks. Delivers each response's events in order.
  Status watch_once(int64_t from, bool* started) {
    auto opened = client_.stream("/v3/watch", watch_request(from + 1).dump());
    if (!opened) return opened.status();
    std::shared_ptr<etcd::WatchStream> ws = std::move(opened).value();
    {
      std::lock_guard lock(mu_);
      if (closed_) return Status::unavailable("closing");
      stream_ = ws;
    }
    *started = true;
    for (;;) {
      auto line = ws->next(kStuckAfter);
      if (!line && line.status().code() == Code::kTimeout) {
        // A quiet stream is normal; one that holds back a revision a write is waiting for is
        // not: its member may be stopped or cut off (TCP alone would not tell). Reconnect,
        // to whichever member requests now go to.
        std::lock_guard lock(mu_);
        if (awaited_ > delivered_ &&
            std::chrono::steady_clock::now() - awaited_since_ > kStuckAfter)
          return Status::unavailable("revision " + std::to_string(awaited_) +
                                     " was written but the watch has not brought it for " +
                                     std::to_string(kStuckAfter.count()) + " ms");
        continue;
      }
      if (!line) return line.status();
      json msg = json::parse(*line, nullptr, false);
      const json* res = result_of(msg);
      if (res == nullptr) return Status::unavailable("etcd watch: " + line->substr(0, 300));
      if (num(*res, "compact_revision") > 0) {
        note_compacted(num(*res, "compact_revision") - kOffset);
        return Status::gone("etcd compacted past revision " + std::to_string(from));
      }
      if (flag(*res, "canceled"))
        return Status::unavailable("etcd canceled the watch: " +
                                   member(*res, "cancel_reason").dump());
      auto events = events_of(*res);
      if (events.empty()) continue;
      int64_t last = 0;
      for (auto& ev : events) {
        last = ev.revision();
        dispatch_->publish(std::move(ev));
      }
      dispatch_->deliver();
      {
        std::lock_guard lock(mu_);
        delivered_ = std::max(delivered_, last);
      }
      cv_.notify_all();
    }
  }

  void run_compactor() {
    std::unique_lock lock(mu_);
    while (!closed_) {
      cv_.wait_for(lock, std::chrono::milliseconds(opts_.compact_interval_ms),
                   [&] { return closed_; });
      if (closed_) return;
      lock.unlock();
      int64_t target = current_revision() - std::max<int64_t>(opts_.keep_revisions, 0);
      if (target > compacted_.load()) {
        if (auto st = compact(target); !st)
          spdlog::warn("etcd store: automatic compaction: {}", st.to_string());
      }
      lock.lock();
    }
  }

  const EtcdOptions opts_;
  etcd::Client client_;
  std::optional<Dispatcher> dispatch_;  // from open() on
  std::atomic<int64_t> compacted_{0};

  std::mutex mu_;  // guards the members below
  std::condition_variable cv_;
  int64_t delivered_ = 0;  // every event up to this revision has reached the subscribers
  int64_t awaited_ = 0;    // the newest revision a write waits to see delivered
  std::chrono::steady_clock::time_point awaited_since_;  // when awaited_ got ahead of delivered_
  bool closed_ = false;
  std::shared_ptr<etcd::WatchStream> stream_;

  std::thread watch_thread_;
  std::thread compact_thread_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_etcd_store(const EtcdOptions& opts) {
  if (opts.endpoints.empty()) return Status::invalid("etcd store: no endpoint given");
  std::vector<etcd::Endpoint> eps;
  for (const auto& u : opts.endpoints) {
    auto ep = etcd::parse_endpoint(u);
    if (!ep) return ep.status();
    eps.push_back(std::move(ep).value());
  }
  etcd::TlsContext tls;
  bool any_tls = false;
  for (const auto& ep : eps) any_tls |= ep.tls;
  if (!any_tls && !(opts.ca_file.empty() && opts.cert_file.empty() && opts.key_file.empty()))
    return Status::invalid("--etcd-cafile/--etcd-certfile/--etcd-keyfile need https:// endpoints");
  if (any_tls) {
    auto ctx = etcd::make_tls_context({opts.ca_file, opts.cert_file, opts.key_file});
    if (!ctx) return ctx.status();
    tls = std::move(ctx).value();
  }
  auto store = std::make_unique<EtcdStore>(opts, std::move(eps), std::move(tls));
  if (auto st = store->open(); !st) {
    std::string urls;
    for (const auto& u : opts.endpoints) urls += (urls.empty() ? "" : ",") + u;
    return st.with_context("open the etcd store at " + urls);
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace skiff::store
