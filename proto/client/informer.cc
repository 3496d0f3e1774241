#include "proto/client/informer.h"

#include <algorithm>

namespace skiff::client {
namespace {

const json& metadata(const json& obj) {
  static const json kEmpty = json::object();
  auto it = obj.find("metadata");
  return it != obj.end() && it->is_object() ? *it : kEmpty;
}

std::string md_str(const json& obj, const char* key) { return metadata(obj).value(key, ""); }

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
  return it->second;
}

std::vector<json> Informer::list() const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  out.reserve(cache_.size());
  for (const auto& [k, v] : cache_) out.push_back(v);
  return out;
}

std::vector<json> Informer::by_namespace(const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  auto it = by_ns_.find(ns);
  if (it == by_ns_.end()) return out;
  for (const auto& k : it->second) out.push_back(cache_.at(k));
  return out;
}

std::vector<json> Informer::by_label(const proto::LabelSelector& sel) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  // Narrow by the first equality requirement through the index, then match fully.
  const std::set<std::string>* candidates = nullptr;
  for (const auto& r : sel.requirements()) {
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
    for (const auto& k : *candidates) consider(cache_.at(k));
  } else {
    for (const auto& [k, v] : cache_) consider(v);
  }
  return out;
}

std::vector<json> Informer::by_owner(const std::string& owner_uid) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  auto it = by_owner_.find(owner_uid);
  if (it == by_owner_.end()) return out;
  for (const auto& k : it->second) out.push_back(cache_.at(k));
  return out;
}

void Informer::index_locked(const std::string& key, const json& obj, bool add) {
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

void Informer::upsert(const json& in) {
  json obj = in;
  // Lists and some watch events leave out apiVersion/kind; handlers expect whole objects.
  if (obj.is_object() && !obj.contains("apiVersion")) obj["apiVersion"] = type_.api_version();
  if (obj.is_object() && !obj.contains("kind")) obj["kind"] = type_.kind;
  std::string key = object_key(obj);
  std::optional<json> old;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      old = std::move(it->second);
      index_locked(key, *old, false);
    }
    cache_[key] = obj;
    index_locked(key, obj, true);
    std::string rv = md_str(obj, "resourceVersion");
    if (!rv.empty()) rv_ = rv;
  }
  for (const auto& h : handlers_) {
    if (old) {
      if (h.on_update) h.on_update(*old, obj);
    } else if (h.on_add) {
      h.on_add(obj);
    }
  }
}

void Informer::erase(const json& obj) {
  std::string key = object_key(obj);
  json last = obj;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      index_locked(key, it->second, false);
      cache_.erase(it);
    }
    std::string rv = md_str(obj, "resourceVersion");
    if (!rv.empty()) rv_ = rv;
  }
  for (const auto& h : handlers_) {
    if (h.on_delete) h.on_delete(last);
  }
}

bool Informer::relist(std::stop_token& stop) {
  ListOptions lo;
  lo.label_selector = opts_.label_selector;
  lo.field_selector = opts_.field_selector;
  auto list = api_->list(type_, opts_.namespace_, lo);
  if (!list) return false;
  std::map<std::string, json> fresh;
  for (auto& item : (*list)["items"]) {
    if (!item.contains("apiVersion")) item["apiVersion"] = type_.api_version();
    if (!item.contains("kind")) item["kind"] = type_.kind;
    std::string key = object_key(item);
    fresh.emplace(std::move(key), std::move(item));
  }
  std::vector<json> gone;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : cache_) {
      if (!fresh.count(k)) gone.push_back(v);
    }
  }
  for (const auto& g : gone) erase(g);
  for (const auto& [k, v] : fresh) {
    auto cur = get(k);
    if (!cur || md_str(*cur, "resourceVersion") != md_str(v, "resourceVersion") || *cur != v) {
      upsert(v);
    }
  }
  std::string rv;
  if (list->contains("metadata") && (*list)["metadata"].is_object()) {
    rv = (*list)["metadata"].value("resourceVersion", "");
  }
  std::lock_guard lock(mu_);
  if (!rv.empty()) rv_ = rv;
  synced_ = true;
  ++lists_;
  cv_.notify_all();
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
      bool got_event = false;
      auto started = std::chrono::steady_clock::now();
      Status st = api_->watch(
          type_, opts_.namespace_, lo,
          [&](const json& ev) {
            std::string t = ev.value("type", "");
            const json& obj = ev.contains("object") ? ev["object"] : json();
            got_event = true;
            if (t == "ADDED" || t == "MODIFIED") {
              upsert(obj);
            } else if (t == "DELETED") {
              erase(obj);
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
