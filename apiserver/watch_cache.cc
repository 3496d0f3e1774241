#include "apiserver/watch_cache.h"

#include "apiserver/metrics.h"
#include "apiserver/store/store.h"
#include "common/http/http_server.h"
#include "proto/registry.h"

namespace skiff::apiserver {

bool ObjectFilter::selects_all() const {
  return (ns.empty() || rt == nullptr || !rt->namespaced) && labels.empty() && fields.empty();
}

bool ObjectFilter::matches(const json& obj) const {
  if (!ns.empty() && rt != nullptr && rt->namespaced && meta_string(obj, "namespace") != ns)
    return false;
  if (!labels.empty()) {
    static const json kNull;
    const json* l = &kNull;
    auto m = obj.find("metadata");
    if (m != obj.end() && m->is_object()) {
      auto it = m->find("labels");
      if (it != m->end()) l = &*it;
    }
    if (!labels.matches_json(*l)) return false;
  }
  if (!fields.empty()) {
    if (rt == nullptr || !rt->field_value) return false;
    return fields.matches([&](std::string_view f) { return rt->field_value(obj, f); });
  }
  return true;
}

// One store event of a resource. It keeps the compact stored text, not parsed JSON: a parsed
// nlohmann::json is about ten times the size of its text, and the window holds thousands of
// events whether or not anyone watches. Objects are parsed when a watcher needs them (see
// Parsed); the serialized lines are made once per (type, encoding) and shared by watchers.
struct WatchCache::Event {
  bool is_delete = false;
  bool is_create = false;
  int64_t revision = 0;
  std::string value;                      // kPut: the new object; kDelete: the deleted one
  std::optional<std::string> prev_value;  // kPut update: the previous object, when known
  int64_t prev_revision = 0;              // prev_value's mod revision

  std::mutex mu;
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> lines;

  std::shared_ptr<const std::string> cached_line(const std::string& key) {
    std::lock_guard<std::mutex> g(mu);
    for (auto& [k, l] : lines)
      if (k == key) return l;
    return nullptr;
  }
  std::shared_ptr<const std::string> add_line(std::string key, std::string line) {
    std::lock_guard<std::mutex> g(mu);
    for (auto& [k, l] : lines)
      if (k == key) return l;  // another thread made it first
    auto l = std::make_shared<const std::string>(std::move(line));
    lines.emplace_back(std::move(key), l);
    return l;
  }
};

namespace {

// The parsed views of one event, made on first use and dropped after the event is delivered,
// so that one dispatch parses each object at most once however many watchers there are.
class Parsed {
 public:
  explicit Parsed(const WatchCache::Event& ev) : ev_(ev) {}
  // The object with resourceVersion = the event's revision; nullptr if unreadable.
  const json* obj() { return get(obj_, ev_.value, ev_.revision); }
  // The previous object (kPut updates) with its own resourceVersion; nullptr if unknown.
  const json* prev() {
    return ev_.prev_value ? get(prev_, *ev_.prev_value, ev_.prev_revision) : nullptr;
  }
  // The previous object with resourceVersion = the event's revision (moved-out DELETED).
  const json* prev_at_rev() {
    return ev_.prev_value ? get(prev_at_rev_, *ev_.prev_value, ev_.revision) : nullptr;
  }

 private:
  static const json* get(std::optional<json>& slot, const std::string& text, int64_t rev) {
    if (!slot) {
      auto o = read_object_at(text, rev);
      slot = o.ok() ? std::move(o.value()) : json();
    }
    return slot->is_object() ? &*slot : nullptr;
  }
  const WatchCache::Event& ev_;
  std::optional<json> obj_, prev_, prev_at_rev_;
};

// The bytes of `ev` as `type` ('A', 'M', 'D') in `enc`, made once per (type, enc).
std::shared_ptr<const std::string> event_line(WatchCache::Event& ev, Parsed& parsed,
                                              const proto::ResourceType& rt, char type,
                                              const Encoding& enc) {
  std::string key = std::string(1, type) + enc.cache_key();
  if (auto l = ev.cached_line(key)) return l;
  const json* o = type == 'D' && !ev.is_delete ? parsed.prev_at_rev() : parsed.obj();
  if (o == nullptr) return nullptr;
  const char* name = type == 'A' ? "ADDED" : type == 'M' ? "MODIFIED" : "DELETED";
  return ev.add_line(std::move(key), watch_line(rt, name, *o, enc));
}

}  // namespace

struct WatchCache::Watcher {
  uint64_t id = 0;
  const proto::ResourceType* rt = nullptr;
  std::shared_ptr<Stream> stream;
  ObjectFilter filter;
  Encoding enc;
  bool bookmarks = false;
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::time_point next_bookmark;
  std::atomic<bool> closed{false};

  std::mutex mu;
  bool ready = false;  // replay done: live events go straight to the stream
  std::vector<std::shared_ptr<Event>> backlog;  // live events that arrived during the replay
  int64_t last_rev = 0;  // newest revision sent (or covered by the initial list)

  // Writes `ev` as this watcher sees it. REQUIRES: mu held, or the watcher not yet ready and
  // called from the serving thread only.
  void send(Event& ev, Parsed& parsed) {
    if (ev.revision <= last_rev || closed.load()) return;
    last_rev = ev.revision;
    const bool has_prev = ev.prev_value.has_value();
    bool cur;
    bool old;
    if (filter.selects_all()) {  // no need to look inside the objects
      cur = !ev.is_delete;
      old = ev.is_delete || !ev.is_create;
    } else {
      const json* o = parsed.obj();
      if (o == nullptr) return;  // unreadable stored JSON: nothing sensible to send
      cur = !ev.is_delete && filter.matches(*o);
      const json* p = ev.is_delete || ev.is_create ? nullptr : parsed.prev();
      if (ev.is_delete) old = filter.matches(*o);
      else if (ev.is_create) old = false;
      else if (p != nullptr) old = filter.matches(*p);
      else old = cur;  // previous value unknown: no move in/out can be detected
    }
    char type;
    if (cur && !old) type = 'A';
    else if (cur && old) type = 'M';
    else if (!cur && old) type = has_prev || ev.is_delete ? 'D' : 0;
    else return;
    if (type == 0) return;
    auto line = event_line(ev, parsed, *rt, type, enc);
    if (line == nullptr) return;
    if (!stream->write(line)) closed.store(true);
  }
  void send(Event& ev) {
    Parsed parsed(ev);
    send(ev, parsed);
  }

  void deliver(const std::shared_ptr<Event>& ev, Parsed& parsed) {
    std::lock_guard<std::mutex> g(mu);
    if (closed.load()) return;
    if (!ready) {
      backlog.push_back(ev);
      return;
    }
    send(*ev, parsed);
  }
};

struct WatchCache::Resource {
  const proto::ResourceType* rt = nullptr;
  std::mutex mu;
  std::deque<std::shared_ptr<Event>> window;
  int64_t complete_after = 0;  // the window holds every event with revision > this
  std::vector<std::shared_ptr<Watcher>> watchers;
};

namespace {

// Builds the cached form of a store event.
std::shared_ptr<WatchCache::Event> make_event(const store::Event& se) {
  auto ev = std::make_shared<WatchCache::Event>();
  ev->is_delete = se.type == store::EventType::kDelete;
  ev->is_create = se.is_create;
  ev->revision = se.revision();
  ev->value = se.kv.value;
  // A delete's prev is the deleted value itself (already in `value`): keep one copy.
  if (se.prev && !ev->is_delete) {
    ev->prev_value = se.prev->value;
    ev->prev_revision = se.prev->mod_revision;
  }
  return ev;
}

}  // namespace

WatchCache::WatchCache(store::Store* store, int64_t window_events, int bookmark_interval_ms)
    : store_(store),
      window_events_(window_events < 1 ? 1 : window_events),
      bookmark_interval_(bookmark_interval_ms < 10 ? 10 : bookmark_interval_ms) {}

WatchCache::~WatchCache() { shutdown(); }

Status WatchCache::start(const proto::Registry& registry) {
  for (const auto& rt : registry.all()) {
    auto r = std::make_unique<Resource>();
    r->rt = &rt;
    resources_.emplace(resource_prefix(rt), std::move(r));
  }
  subscription_ = store_->subscribe([this](const store::Event& ev) { on_store_event(ev); });
  // Every event after this revision reaches on_store_event; older ones come from the store.
  int64_t rev = store_->current_revision();
  for (auto& [_, r] : resources_) r->complete_after = rev;
  dispatched_rev_.store(rev);
  started_ = true;
  dispatcher_ = std::thread([this] { dispatch_loop(); });
  housekeeper_ = std::thread([this] { housekeeping_loop(); });
  return Status::ok();
}

void WatchCache::shutdown() {
  if (shut_down_.exchange(true)) return;
  if (!started_) return;
  store_->unsubscribe(subscription_);
  {
    std::lock_guard<std::mutex> g(queue_mu_);
    stopping_ = true;
  }
  queue_cv_->notify_all();
  stop_cv_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  if (housekeeper_.joinable()) housekeeper_.join();
  for (auto& [_, r] : resources_) {
    std::vector<std::shared_ptr<Watcher>> ws;
    {
      std::lock_guard<std::mutex> g(r->mu);
      ws.swap(r->watchers);
    }
    for (auto& w : ws) w->stream->close();
  }
}

size_t WatchCache::watcher_count() {
  size_t n = 0;
  for (auto& [_, r] : resources_) {
    std::lock_guard<std::mutex> g(r->mu);
    for (auto& w : r->watchers) n += w->closed.load() ? 0 : 1;
  }
  return n;
}

void WatchCache::on_store_event(const store::Event& ev) {
  // The commit thread: copy and hand over, nothing else.
  bool others_waiting;
  {
    std::lock_guard<std::mutex> g(queue_mu_);
    others_waiting = !queue_.empty();
    queue_.push_back(ev);
  }
  // Earlier events still wait (a handler writing many objects, such as a deletecollection, or a
  // busy dispatcher): wake it now, so at most one event waits for an answer.
  if (others_waiting) {
    queue_cv_->notify_one();
    return;
  }
  // On an API I/O thread (a write handled inline) the dispatcher is woken once the write's
  // answer has gone to the socket: woken first, its run (and on a VM the other vCPU's way out
  // of halt) came before the client's, ~5% of a lone client's create on SQLite. The wake is the
  // deleter of `wake`, so it happens however the deferred task ends: run, dropped at server
  // stop, or never queued (any other thread: at once).
  std::shared_ptr<void> wake(nullptr, [cv = queue_cv_](void*) { cv->notify_one(); });
  web::run_after_answer([wake = std::move(wake)] {});
}

void WatchCache::dispatch_loop() {
  std::deque<store::Event> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(queue_mu_);
      queue_cv_->wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      batch.swap(queue_);
    }
    for (const auto& ev : batch) {
      dispatch(ev);
      dispatched_rev_.store(ev.revision());
    }
    batch.clear();
  }
}

WatchCache::Resource* WatchCache::resource_for_key(const std::string& key) {
  // "/registry/<group>/<plural>/..." -> "/registry/<group>/<plural>/"
  size_t p = 0;
  for (int i = 0; i < 4; ++i) {
    p = key.find('/', p + (i == 0 ? 0 : 1));
    if (p == std::string::npos) return nullptr;
  }
  auto it = resources_.find(key.substr(0, p + 1));
  return it == resources_.end() ? nullptr : it->second.get();
}

void WatchCache::dispatch(const store::Event& se) {
  Resource* r = resource_for_key(se.kv.key);
  if (r == nullptr) return;
  auto ev = make_event(se);
  Parsed parsed(*ev);  // shared by this event's watchers; freed when it has been delivered
  std::lock_guard<std::mutex> g(r->mu);
  r->window.push_back(ev);
  while (static_cast<int64_t>(r->window.size()) > window_events_) {
    r->complete_after = r->window.front()->revision;
    r->window.pop_front();
  }
  for (auto& w : r->watchers) w->deliver(ev, parsed);
}

void WatchCache::housekeeping_loop() {
  const auto tick = std::min<std::chrono::milliseconds>(bookmark_interval_,
                                                        std::chrono::milliseconds(100));
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(queue_mu_);
      if (stop_cv_.wait_for(lk, tick, [&] { return stopping_; })) return;
    }
    auto now = std::chrono::steady_clock::now();
    for (auto& [_, r] : resources_) {
      std::lock_guard<std::mutex> g(r->mu);
      auto& ws = r->watchers;
      for (auto& w : ws) {
        if (w->closed.load()) continue;
        if (now >= w->deadline) {
          w->stream->close();  // on_close marks it closed
          w->closed.store(true);
          continue;
        }
        if (w->bookmarks && now >= w->next_bookmark) {
          w->next_bookmark = now + bookmark_interval_;
          std::lock_guard<std::mutex> wg(w->mu);
          if (!w->ready) continue;
          // Every event up to dispatched_rev_ has been delivered to this (ready) watcher.
          int64_t rev = std::max(w->last_rev, dispatched_rev_.load());
          auto line = std::make_shared<const std::string>(bookmark_line(*r->rt, rev));
          if (!w->stream->write(line)) w->closed.store(true);
        }
      }
      std::erase_if(ws, [](const std::shared_ptr<Watcher>& w) { return w->closed.load(); });
    }
  }
}

void WatchCache::serve(std::shared_ptr<Stream> stream, WatchRequest req) {
  auto w = std::make_shared<Watcher>();
  w->id = next_watcher_id_++;
  w->rt = req.rt;
  w->stream = stream;
  w->filter = std::move(req.filter);
  w->enc = req.enc;
  w->bookmarks = req.bookmarks;
  auto now = std::chrono::steady_clock::now();
  w->deadline = now + req.timeout;
  w->next_bookmark = now + bookmark_interval_;
  const std::string resource_name = req.rt->plural;

  auto fail = [&](const ApiError& err) {
    stream->write(std::make_shared<const std::string>(error_line(err)));
    stream->close();
  };
  auto it = resources_.find(resource_prefix(*req.rt));
  if (shut_down_.load() || it == resources_.end()) {
    stream->close();
    return;
  }
  Resource* r = it->second.get();

  metrics::watch_opened(resource_name);
  // A weak reference: the stream owns this callback, and the watcher owns the stream.
  std::weak_ptr<Watcher> weak = w;
  stream->on_close([weak, resource_name] {
    if (auto sw = weak.lock()) sw->closed.store(true);
    metrics::watch_closed(resource_name);
  });

  int64_t from = req.from_revision.value_or(0);
  std::vector<std::shared_ptr<Event>> replay;
  bool in_window = false;
  if (from > 0) {
    int64_t compacted = store_->compacted_revision();
    if (from < compacted) {
      fail(errors::expired("too old resource version: " + std::to_string(from) + " (" +
                           std::to_string(compacted) + ")"));
      return;
    }
  }
  {
    // Registering and taking the window under one lock makes replay + live exactly complete.
    std::lock_guard<std::mutex> g(r->mu);
    if (shut_down_.load()) {  // shutdown() already closed the registered ones
      stream->close();
      return;
    }
    r->watchers.push_back(w);
    if (from > 0 && from >= r->complete_after) {
      in_window = true;
      for (auto& ev : r->window)
        if (ev->revision > from) replay.push_back(ev);
    }
  }

  if (from > 0 && in_window) {
    w->last_rev = from;
    for (auto& ev : replay) w->send(*ev);
  } else if (from > 0) {
    w->last_rev = from;
    auto evs = store_->events_since(list_prefix(*req.rt, w->filter.ns), from);
    if (!evs.is_ok()) {
      w->closed.store(true);
      if (evs.status().code() == Code::kGone) {
        fail(errors::expired("too old resource version: " + std::to_string(from) + " (" +
                             std::to_string(store_->compacted_revision()) + ")"));
      } else {
        fail(errors::internal(evs.status().to_string()));
      }
      return;
    }
    for (const auto& se : *evs) w->send(*make_event(se));
  } else {
    auto list = store_->list(list_prefix(*req.rt, w->filter.ns), 0, 0, "");
    if (!list.is_ok()) {
      w->closed.store(true);
      fail(errors::internal(list.status().to_string()));
      return;
    }
    for (const auto& kv : list->items) {
      auto obj = read_object(kv);
      if (!obj.ok() || !w->filter.matches(obj.value())) continue;
      auto line = watch_line(*req.rt, "ADDED", obj.value(), w->enc);
      if (!stream->write(std::make_shared<const std::string>(std::move(line)))) {
        w->closed.store(true);
        return;
      }
    }
    w->last_rev = list->revision;
  }

  std::lock_guard<std::mutex> g(w->mu);
  for (auto& ev : w->backlog) w->send(*ev);
  w->backlog.clear();
  w->ready = true;
}

}  // namespace skiff::apiserver
