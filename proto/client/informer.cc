#include "proto/client/informer.h"

#include <algorithm>
#include <cstring>

#include "common/heap.h"

namespace skiff::client {
namespace {

const json& metadata(const json& obj) {
  static const json kEmpty = json::object();
  auto it = obj.find("metadata");
  return it != obj.end() && it->is_object() ? *it : kEmpty;
}

std::string md_str(const json& obj, const char* key) { return metadata(obj).value(key, ""); }

struct Fresh {
  std::string rv;
  json obj;
  std::shared_ptr<const void> packed;  // with compact_cache: the cache entry, obj then empty
};

// Re-creates the transformed objects once the list they were cut from is freed. Otherwise they
// stay scattered over the pages of the parsed list (a slim Endpoints keeps a few nodes in
// ten), and freeing the rest gives few whole pages back. Serialized (CBOR) into one buffer
// (its own mapping when large) and re-created after the list is gone, they are allocated
// together.
void compact(std::map<std::string, Fresh>& fresh) {
  std::vector<uint8_t> packed;
  std::vector<size_t> ends;
  ends.reserve(fresh.size());
  for (auto& [k, f] : fresh) {
    json::to_cbor(f.obj, packed);
    ends.push_back(packed.size());
    f.obj = json();
  }
  size_t begin = 0, i = 0;
  for (auto& [k, f] : fresh) {
    // Our own encoding of valid JSON: parsing it back cannot fail (no exceptions).
    f.obj = json::from_cbor(packed.begin() + begin, packed.begin() + ends[i], true, false);
    begin = ends[i++];
  }
}

}  // namespace

std::string object_key(const json& obj) {
  std::string ns = md_str(obj, "namespace");
  std::string name = md_str(obj, "name");
  return ns.empty() ? name : ns + "/" + name;
}

Informer::Informer(std::shared_ptr<ApiClient> api, const proto::ResourceType& type,
                   InformerOptions opts)
    : api_(std::move(api)), type_(type), opts_(std::move(opts)) {}

Informer::~Informer() { stop(); }

void Informer::add_handlers(InformerHandlers h) { handlers_.push_back(std::move(h)); }

void Informer::start() {
  thread_ = std::jthread([this](std::stop_token st) { run(st); });
}

void Informer::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  {
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }
  thread_.join();
}

bool Informer::has_synced() const {
  std::lock_guard lock(mu_);
  return synced_;
}

bool Informer::wait_for_sync(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return synced_; });
}

std::string Informer::resource_version() const {
  std::lock_guard lock(mu_);
  return rv_;
}

int Informer::list_count() const {
  std::lock_guard lock(mu_);
  return lists_;
}

std::optional<json> Informer::get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return decode(it->second);
}

std::vector<json> Informer::list() const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  out.reserve(cache_.size());
  for (const auto& [k, v] : cache_) out.push_back(decode(v));
  return out;
}

Informer::Entry Informer::store(const std::shared_ptr<const json>& obj) const {
  return opts_.compact_cache ? pack(*obj) : Entry(obj);
}

Informer::Entry Informer::pack(const json& obj) {
  std::vector<uint8_t> cbor = json::to_cbor(obj);
  auto n = static_cast<uint32_t>(cbor.size());
  std::shared_ptr<uint8_t[]> buf = std::make_shared_for_overwrite<uint8_t[]>(sizeof n + n);
  std::memcpy(buf.get(), &n, sizeof n);
  std::memcpy(buf.get() + sizeof n, cbor.data(), n);
  return Entry(buf, buf.get());
}

bool Informer::same_packed(const Entry& a, const Entry& b) {
  const auto* pa = static_cast<const uint8_t*>(a.get());
  const auto* pb = static_cast<const uint8_t*>(b.get());
  uint32_t na, nb;
  std::memcpy(&na, pa, sizeof na);
  std::memcpy(&nb, pb, sizeof nb);
  return na == nb && std::memcmp(pa + sizeof na, pb + sizeof nb, na) == 0;
}

json Informer::decode(const Entry& entry) const {
  if (!opts_.compact_cache) return *static_cast<const json*>(entry.get());
  const auto* p = static_cast<const uint8_t*>(entry.get());
  uint32_t n;
  std::memcpy(&n, p, sizeof n);
  // Our own encoding of valid JSON: parsing it back cannot fail (no exceptions).
  return json::from_cbor(p + sizeof n, p + sizeof n + n, true, false);
}

std::shared_ptr<const json> Informer::load(const Entry& entry) const {
  if (!opts_.compact_cache) return std::static_pointer_cast<const json>(entry);
  return std::make_shared<const json>(decode(entry));
}

std::vector<std::shared_ptr<const json>> Informer::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const json>> out;
  out.reserve(cache_.size());
  for (const auto& [k, v] : cache_) out.push_back(load(v));
  return out;
}

void Informer::for_each(const std::function<void(const json& obj)>& fn) const {
  std::lock_guard lock(mu_);
  for (const auto& [k, v] : cache_) {
    if (opts_.compact_cache)
      fn(decode(v));
    else
      fn(*static_cast<const json*>(v.get()));
  }
}

std::vector<json> Informer::by_namespace(const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  if (!opts_.indexes) {
    for (const auto& [k, v] : cache_) {
      json obj = decode(v);
      if (md_str(obj, "namespace") == ns) out.push_back(std::move(obj));
    }
    return out;
  }
  auto it = by_ns_.find(ns);
  if (it == by_ns_.end()) return out;
  for (const auto& k : it->second) out.push_back(decode(cache_.at(k)));
  return out;
}

std::vector<json> Informer::by_label(const proto::LabelSelector& sel) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  // Narrow by the first equality requirement through the index, then match fully.
  const std::set<std::string>* candidates = nullptr;
  for (const auto& r : sel.requirements()) {
    if (!opts_.indexes) break;
    if (r.op == proto::SelectorOp::kEquals && r.values.size() == 1) {
      auto it = by_label_.find(r.key + "=" + r.values[0]);
      if (it == by_label_.end()) return out;
      candidates = &it->second;
      break;
    }
  }
  auto consider = [&](const json& obj) {
    auto md = metadata(obj);
    if (sel.matches_json(md.value("labels", json()))) out.push_back(obj);
  };
  if (candidates) {
    for (const auto& k : *candidates) consider(decode(cache_.at(k)));
  } else {
    for (const auto& [k, v] : cache_) consider(decode(v));
  }
  return out;
}

std::vector<json> Informer::by_owner(const std::string& owner_uid) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  if (!opts_.indexes) {
    for (const auto& [k, v] : cache_) {
      json obj = decode(v);
      const json& md = metadata(obj);
      auto refs = md.find("ownerReferences");
      if (refs == md.end() || !refs->is_array()) continue;
      for (const auto& ref : *refs) {
        if (ref.is_object() && ref.value("uid", "") == owner_uid) {
          out.push_back(std::move(obj));
          break;
        }
      }
    }
    return out;
  }
  auto it = by_owner_.find(owner_uid);
  if (it == by_owner_.end()) return out;
  for (const auto& k : it->second) out.push_back(decode(cache_.at(k)));
  return out;
}

void Informer::index_locked(const std::string& key, const json& obj, bool add) {
  if (!opts_.indexes) return;
  auto update = [&](std::map<std::string, std::set<std::string>>& idx, const std::string& v) {
    if (add) {
      idx[v].insert(key);
    } else if (auto it = idx.find(v); it != idx.end()) {
      it->second.erase(key);
      if (it->second.empty()) idx.erase(it);
    }
  };
  const json& md = metadata(obj);
  update(by_ns_, md.value("namespace", ""));
  if (auto l = md.find("labels"); l != md.end() && l->is_object()) {
    for (const auto& [k, v] : l->items()) {
      update(by_label_, k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    }
  }
  if (auto o = md.find("ownerReferences"); o != md.end() && o->is_array()) {
    for (const auto& ref : *o) {
      if (ref.is_object() && ref.contains("uid")) update(by_owner_, ref.value("uid", ""));
    }
  }
}

void Informer::set_rv(const std::string& rv) {
  if (rv.empty()) return;
  std::lock_guard lock(mu_);
  rv_ = rv;
}

std::string Informer::prepare(json& obj, std::string* rv) const {
  // Lists and some watch events leave out apiVersion/kind; handlers expect whole objects.
  if (obj.is_object() && !obj.contains("apiVersion")) obj["apiVersion"] = type_.api_version();
  if (obj.is_object() && !obj.contains("kind")) obj["kind"] = type_.kind;
  std::string key = object_key(obj);
  *rv = md_str(obj, "resourceVersion");
  if (opts_.transform) opts_.transform(obj);
  return key;
}

void Informer::upsert(const std::string& key, const std::string& rv, json obj, Entry stored) {
  auto cur = std::make_shared<const json>(std::move(obj));
  if (!stored) stored = store(cur);
  std::shared_ptr<const json> old;
  {
    std::lock_guard lock(mu_);
    auto& slot = cache_[key];
    if (slot) {
      old = load(slot);
      index_locked(key, *old, false);
    }
    slot = stored;
    index_locked(key, *cur, true);
    if (!rv.empty()) rv_ = rv;
  }
  for (const auto& h : handlers_) {
    if (old) {
      if (h.on_update) h.on_update(*old, *cur);
    } else if (h.on_add) {
      h.on_add(*cur);
    }
  }
}

void Informer::erase(const std::string& key, const std::string& rv, const json& obj) {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (opts_.indexes) index_locked(key, *load(it->second), false);
      cache_.erase(it);
    }
    if (!rv.empty()) rv_ = rv;
  }
  for (const auto& h : handlers_) {
    if (h.on_delete) h.on_delete(obj);
  }
}

bool Informer::relist(std::stop_token& stop) {
  ListOptions lo;
  lo.label_selector = opts_.label_selector;
  lo.field_selector = opts_.field_selector;
  lo.limit = opts_.page_size;
  // Each item is moved out of its page and transformed at once, so the untransformed page
  // shrinks while the transformed objects grow; with pages only one page of untransformed
  // objects is held at a time. The pages of one list are a snapshot at the first page's
  // resourceVersion (the continue token carries it); an expired token fails the relist, which
  // is retried from the start.
  std::map<std::string, Fresh> fresh;
  std::string rv;
  for (bool first = true;; first = false) {
    auto page = api_->list(type_, opts_.namespace_, lo);
    if (!page) return false;
    if (auto items = page->find("items"); items != page->end() && items->is_array()) {
      for (auto& item : *items) {
        Fresh f{"", std::move(item)};
        std::string key = prepare(f.obj, &f.rv);
        fresh.insert_or_assign(std::move(key), std::move(f));
      }
    }
    std::string cont;
    if (auto md = page->find("metadata"); md != page->end() && md->is_object()) {
      if (first) rv = md->value("resourceVersion", "");
      cont = md->value("continue", "");
    }
    if (cont.empty() || lo.limit <= 0 || stop.stop_requested()) break;
    lo.continue_token = std::move(cont);
  }
  if (stop.stop_requested()) return false;
  if (opts_.compact_cache) {
    // Each object becomes its cache entry at once (a tenth of its decoded size).
    for (auto& [k, f] : fresh) {
      f.packed = pack(f.obj);
      f.obj = json();
    }
  } else if (opts_.transform) {
    compact(fresh);
  }
  std::vector<std::pair<std::string, Entry>> gone;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : cache_) {
      if (!fresh.count(k)) gone.emplace_back(k, v);
    }
  }
  // The list's resourceVersion (set below) is newer than theirs.
  for (const auto& [k, g] : gone) erase(k, "", *load(g));
  for (auto& [k, f] : fresh) {
    Entry cached;
    {
      std::lock_guard lock(mu_);
      if (auto it = cache_.find(k); it != cache_.end()) cached = it->second;
    }
    if (opts_.compact_cache) {
      // Equal objects have equal encodings: no decoding to compare.
      if (!cached || !same_packed(cached, f.packed)) upsert(k, f.rv, decode(f.packed), f.packed);
      f.packed.reset();
      continue;
    }
    const json* cur = static_cast<const json*>(cached.get());
    if (!cur || md_str(*cur, "resourceVersion") != md_str(f.obj, "resourceVersion") ||
        *cur != f.obj) {
      upsert(k, f.rv, std::move(f.obj));
    }
    f.obj = json();
  }
  {
    std::lock_guard lock(mu_);
    if (!rv.empty()) rv_ = rv;
    synced_ = true;
    ++lists_;
    cv_.notify_all();
  }
  // The pages were parsed, transformed and compacted on this thread, which goes on to watch
  // with little to allocate: give back what its allocator cache and the heap kept of them.
  release_free_heap();
  return true;
}

void Informer::sleep(std::stop_token& stop, std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stop.stop_requested(); });
}

void Informer::run(std::stop_token stop) {
  auto backoff = opts_.min_backoff;
  auto fail = [&] {
    sleep(stop, backoff);
    backoff = std::min(backoff * 2, opts_.max_backoff);
  };
  while (!stop.stop_requested()) {
    if (!relist(stop)) {
      fail();
      continue;
    }
    backoff = opts_.min_backoff;
    bool need_relist = false;
    while (!stop.stop_requested() && !need_relist) {
      ListOptions lo;
      lo.label_selector = opts_.label_selector;
      lo.field_selector = opts_.field_selector;
      lo.resource_version = resource_version();
      lo.timeout_seconds = opts_.watch_timeout_seconds;
      lo.allow_bookmarks = true;
      lo.idle_timeout = opts_.watch_idle_timeout;
      bool got_event = false;
      auto started = std::chrono::steady_clock::now();
      Status st = api_->watch(
          type_, opts_.namespace_, lo,
          [&](const json& ev) {
            std::string t = ev.value("type", "");
            const json& obj = ev.contains("object") ? ev["object"] : json();
            got_event = true;
            if (t == "ADDED" || t == "MODIFIED" || t == "DELETED") {
              json o = obj;
              std::string rv;
              std::string key = prepare(o, &rv);
              if (t == "DELETED")
                erase(key, rv, o);
              else
                upsert(key, rv, std::move(o));
            } else if (t == "BOOKMARK") {
              set_rv(md_str(obj, "resourceVersion"));
            } else if (t == "ERROR") {
              // 410 Expired/Gone: our revision left the server's window.
              if (obj.value("code", 0) == 410)
                need_relist = true;
              else
                got_event = false;
              return false;
            }
            return !stop.stop_requested();
          },
          stop);
      if (stop.stop_requested()) break;
      if (st.code() == Code::kGone) need_relist = true;
      if (need_relist) break;
      if (!st.is_ok()) {
        fail();
      } else if (got_event ||
                 std::chrono::steady_clock::now() - started > std::chrono::seconds(1)) {
        backoff = opts_.min_backoff;
      } else {
        // An empty stream that ended at once: do not spin against such a server.
        fail();
      }
    }
  }
}

}  // namespace skiff::client
