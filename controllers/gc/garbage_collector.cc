#include "controllers/gc/garbage_collector.h"

#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/rest_client.h"
#include "proto/registry.h"

namespace skiff::controllers::gc {

namespace {

constexpr const char* kScanKey = "scan";

std::string meta_str(const json& obj, const char* field) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}

const json& meta_list(const json& obj, const char* field) {
  static const json kEmpty = json::array();
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return kEmpty;
  auto f = m->find(field);
  return f != m->end() && f->is_array() ? *f : kEmpty;
}

bool has_finalizer(const json& obj, const char* f) {
  for (const auto& x : meta_list(obj, "finalizers"))
    if (x.is_string() && x.get<std::string>() == f) return true;
  return false;
}

bool being_deleted(const json& obj) { return !meta_str(obj, "deletionTimestamp").empty(); }

std::string ref_str(const json& ref, const char* f) {
  auto i = ref.find(f);
  return i != ref.end() && i->is_string() ? i->get<std::string>() : "";
}

bool ref_blocks(const json& ref) {
  auto i = ref.find("blockOwnerDeletion");
  return i != ref.end() && i->is_boolean() && i->get<bool>();
}

std::string describe(const Item& it) {
  std::string ns = meta_str(it.obj, "namespace");
  return it.type->plural + " " + (ns.empty() ? "" : ns + "/") + meta_str(it.obj, "name");
}

// The real client: the manager's shared informers and the API.
class ApiGcClient : public GcClient {
 public:
  ApiGcClient(std::vector<std::pair<const proto::ResourceType*, client::Informer*>> infs,
              std::shared_ptr<client::ApiClient> api)
      : infs_(std::move(infs)), api_(std::move(api)) {}

  std::vector<Item> list_all() override {
    std::vector<Item> out;
    for (auto& [t, inf] : infs_)
      for (auto& o : inf->list()) out.push_back({t, std::move(o)});
    return out;
  }
  const proto::ResourceType* type_of(const std::string& api_version,
                                     const std::string& kind) override {
    return proto::Registry::builtin().by_kind(api_version, kind);
  }
  Result<std::optional<json>> get_live(const proto::ResourceType& t, const std::string& ns,
                                       const std::string& name) override {
    auto r = api_->get(t, ns, name);
    if (r) return std::optional<json>(std::move(*r));
    if (r.status().code() == Code::kNotFound) return std::optional<json>();
    return r.status().with_context("reading " + t.plural + " " + ns + "/" + name);
  }
  Status remove(const proto::ResourceType& t, const std::string& ns, const std::string& name,
                const std::string& uid, const std::string& propagation) override {
    client::Request req;
    req.method = "DELETE";
    req.path = client::resource_path(t, ns, name);
    json opts = {{"kind", "DeleteOptions"},
                 {"apiVersion", "v1"},
                 {"propagationPolicy", propagation},
                 {"preconditions", {{"uid", uid}}}};
    req.body = opts.dump();
    req.content_type = "application/json";
    auto resp = api_->rest().request(req);
    if (!resp) return resp.status();
    if (!resp->ok()) return client::to_status(*resp);
    return Status::ok();
  }
  Status patch(const proto::ResourceType& t, const std::string& ns, const std::string& name,
               const json& merge_patch) override {
    auto r = api_->patch(t, ns, name, merge_patch, client::PatchType::kMerge);
    return r.status();
  }

 private:
  std::vector<std::pair<const proto::ResourceType*, client::Informer*>> infs_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

// The state of one pass: indexes over the caches and what this pass already changed (an
// object written once is left for the next pass, which sees its new version).
class GarbageCollector::Pass {
 public:
  explicit Pass(GcClient& c) : c_(c) {
    items_ = c_.list_all();
    for (size_t i = 0; i < items_.size(); ++i) {
      const json& o = items_[i].obj;
      std::string uid = meta_str(o, "uid");
      if (!uid.empty()) by_uid_[uid] = i;
      for (const auto& ref : meta_list(o, "ownerReferences")) {
        std::string ou = ref_str(ref, "uid");
        if (!ou.empty()) dependents_[ou].push_back(i);
      }
    }
  }

  Status run() {
    for (size_t i = 0; i < items_.size(); ++i) {
      const json& o = items_[i].obj;
      if (!being_deleted(o)) continue;
      if (has_finalizer(o, kOrphanFinalizer))
        orphan_dependents(i);
      else if (has_finalizer(o, kForegroundFinalizer))
        delete_dependents(i);
    }
    for (size_t i = 0; i < items_.size(); ++i) {
      if (meta_list(items_[i].obj, "ownerReferences").empty()) continue;
      if (being_deleted(items_[i].obj) || touched_.count(i)) continue;
      collect_if_orphaned(i);
    }
    if (failures_ == 0) return Status::ok();
    return Status::unavailable(std::to_string(failures_) +
                               " garbage collection action(s) failed, " + "first: " + first_error_);
  }

 private:
  enum class Owner { kAlive, kWaiting, kGone, kUnresolvable };

  void fail(const std::string& what, const Status& st) {
    if (st.code() == Code::kConflict) {
      spdlog::debug("gc: {}: {} (next pass)", what, st.to_string());
    } else {
      spdlog::warn("gc: {}: {}", what, st.to_string());
    }
    if (failures_++ == 0) first_error_ = what + ": " + st.to_string();
  }

  // The owner `ref` of items_[dep]: alive, being deleted in the foreground (waiting for its
  // dependents), gone, or unresolvable (type not served, bad namespace scope).
  Result<Owner> owner_state(size_t dep, const json& ref) {
    const Item& d = items_[dep];
    const std::string uid = ref_str(ref, "uid"), name = ref_str(ref, "name");
    const proto::ResourceType* t = c_.type_of(ref_str(ref, "apiVersion"), ref_str(ref, "kind"));
    if (t == nullptr || uid.empty() || name.empty()) return Owner::kUnresolvable;
    std::string ns = meta_str(d.obj, "namespace");
    // A cluster-scoped object cannot be owned by a namespaced one (Kubernetes reports it and
    // leaves it alone).
    if (t->namespaced && ns.empty()) return Owner::kUnresolvable;
    if (!t->namespaced) ns.clear();
    auto state_of = [](const json& o) {
      return being_deleted(o) && has_finalizer(o, kForegroundFinalizer) ? Owner::kWaiting
                                                                        : Owner::kAlive;
    };
    if (auto it = by_uid_.find(uid); it != by_uid_.end() && items_[it->second].type == t)
      return state_of(items_[it->second].obj);
    std::string key = t->plural + "/" + ns + "/" + name + "/" + uid;
    if (auto it = live_.find(key); it != live_.end()) return it->second;
    auto live = c_.get_live(*t, ns, name);
    if (!live) return live.status();
    Owner s =
        !live->has_value() || meta_str(**live, "uid") != uid ? Owner::kGone : state_of(**live);
    live_[key] = s;
    return s;
  }

  // Sets items_[i]'s ownerReferences to those not matching `drop` (conditional on its
  // resourceVersion).
  bool drop_refs(size_t i, const std::function<bool(const json&)>& drop, const std::string& why) {
    const Item& it = items_[i];
    json keep = json::array();
    for (const auto& ref : meta_list(it.obj, "ownerReferences"))
      if (!drop(ref)) keep.push_back(ref);
    json patch = {{"metadata",
                   {{"resourceVersion", meta_str(it.obj, "resourceVersion")},
                    {"ownerReferences", keep.empty() ? json(nullptr) : keep}}}};
    touched_.insert(i);
    auto st = c_.patch(*it.type, meta_str(it.obj, "namespace"), meta_str(it.obj, "name"), patch);
    if (!st && st.code() != Code::kNotFound) {
      fail("removing owner references (" + why + ") from " + describe(it), st);
      return false;
    }
    if (st) spdlog::info("gc: {}: removed owner references ({})", describe(it), why);
    return true;
  }

  bool remove(size_t i, const std::string& propagation, const std::string& why) {
    const Item& it = items_[i];
    touched_.insert(i);
    auto st = c_.remove(*it.type, meta_str(it.obj, "namespace"), meta_str(it.obj, "name"),
                        meta_str(it.obj, "uid"), propagation);
    if (!st && st.code() != Code::kNotFound && st.code() != Code::kConflict) {
      fail("deleting " + describe(it), st);
      return false;
    }
    // Kubernetes only logs these (no Event): a deleted owner can have many dependents.
    if (st) spdlog::info("gc: deleted {} ({}, {})", describe(it), why, propagation);
    return true;
  }

  void remove_finalizer(size_t i, const char* finalizer) {
    const Item& it = items_[i];
    json keep = json::array();
    for (const auto& f : meta_list(it.obj, "finalizers"))
      if (!(f.is_string() && f.get<std::string>() == finalizer)) keep.push_back(f);
    json patch = {{"metadata",
                   {{"resourceVersion", meta_str(it.obj, "resourceVersion")},
                    {"finalizers", keep.empty() ? json(nullptr) : keep}}}};
    touched_.insert(i);
    auto st = c_.patch(*it.type, meta_str(it.obj, "namespace"), meta_str(it.obj, "name"), patch);
    if (!st && st.code() != Code::kNotFound) {
      fail("removing finalizer " + std::string(finalizer) + " from " + describe(it), st);
      return;
    }
    if (st) spdlog::info("gc: {}: dependents done, removed finalizer {}", describe(it), finalizer);
  }

  const std::vector<size_t>& dependents_of(size_t owner) {
    static const std::vector<size_t> kNone;
    auto it = dependents_.find(meta_str(items_[owner].obj, "uid"));
    return it == dependents_.end() ? kNone : it->second;
  }

  // Orphan: every dependent loses its references to the owner, then the finalizer goes.
  void orphan_dependents(size_t owner) {
    const std::string uid = meta_str(items_[owner].obj, "uid");
    bool all = true;
    for (size_t d : dependents_of(owner)) {
      if (touched_.count(d)) {
        all = false;  // written this pass already: its new version is handled next pass
        continue;
      }
      all &= drop_refs(
          d, [&](const json& r) { return ref_str(r, "uid") == uid; },
          "orphaned by " + describe(items_[owner]));
    }
    if (all && !touched_.count(owner)) remove_finalizer(owner, kOrphanFinalizer);
  }

  // Foreground: delete the dependents; the owner goes once no blocking dependent is left.
  void delete_dependents(size_t owner) {
    const std::string uid = meta_str(items_[owner].obj, "uid");
    size_t blocking = 0;
    for (size_t d : dependents_of(owner)) {
      const json& dep = items_[d].obj;
      bool blocks = false;
      for (const auto& r : meta_list(dep, "ownerReferences"))
        if (ref_str(r, "uid") == uid && ref_blocks(r)) blocks = true;
      if (being_deleted(dep) || touched_.count(d)) {
        blocking += blocks;
        continue;
      }
      // Another owner that is alive keeps the dependent: it only loses this reference.
      bool other_alive = false, error = false;
      for (const auto& r : meta_list(dep, "ownerReferences")) {
        if (ref_str(r, "uid") == uid) continue;
        auto s = owner_state(d, r);
        if (!s) {
          fail("checking the owners of " + describe(items_[d]), s.status());
          error = true;
        } else if (*s == Owner::kAlive || *s == Owner::kUnresolvable) {
          other_alive = true;
        }
      }
      if (error) {
        ++blocking;
        continue;
      }
      if (other_alive) {
        if (!drop_refs(
                d, [&](const json& r) { return ref_str(r, "uid") == uid; },
                "owner " + describe(items_[owner]) + " deleted in the foreground"))
          blocking += blocks;
        continue;
      }
      bool has_own = dependents_.count(meta_str(dep, "uid")) > 0;
      remove(d, has_own ? "Foreground" : "Background",
             "owner " + describe(items_[owner]) + " is deleted in the foreground");
      blocking += blocks;  // gone only once the cache sees it gone
    }
    if (blocking == 0 && !touched_.count(owner)) remove_finalizer(owner, kForegroundFinalizer);
  }

  // Background: delete a dependent whose owners are all gone; drop dangling references when
  // some remain.
  void collect_if_orphaned(size_t i) {
    size_t gone = 0, total = 0;
    std::set<std::string> gone_uids;
    for (const auto& r : meta_list(items_[i].obj, "ownerReferences")) {
      ++total;
      auto s = owner_state(i, r);
      if (!s) {
        fail("checking the owners of " + describe(items_[i]), s.status());
        return;
      }
      if (*s == Owner::kGone) {
        ++gone;
        gone_uids.insert(ref_str(r, "uid"));
      }
    }
    if (gone == 0) return;
    if (gone == total) {
      remove(i, "Background", "all owners are gone");
      return;
    }
    drop_refs(
        i, [&](const json& r) { return gone_uids.count(ref_str(r, "uid")) > 0; },
        "dangling: owner gone");
  }

  GcClient& c_;
  std::vector<Item> items_;
  std::map<std::string, size_t> by_uid_;
  std::map<std::string, std::vector<size_t>> dependents_;  // owner uid -> dependents
  std::map<std::string, Owner> live_;                      // live GETs made this pass
  std::set<size_t> touched_;
  int failures_ = 0;
  std::string first_error_;
};

GarbageCollector::GarbageCollector(GcOptions opts)
    : opts_(std::move(opts)), queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  if (opts_.types.empty())
    for (const auto& t : proto::Registry::builtin().all()) opts_.types.push_back(&t);
  stats_.depth = [this] { return queue_->len(); };
}

GarbageCollector::~GarbageCollector() { queue_->shut_down(); }

bool GarbageCollector::relevant(const json* old_obj, const json& obj) {
  auto interesting = [](const json& o) {
    return !meta_list(o, "ownerReferences").empty() || being_deleted(o);
  };
  if (old_obj == nullptr) return interesting(obj);
  auto m = [](const json& o, const char* f) {
    auto md = o.find("metadata");
    return md != o.end() && md->is_object() ? md->value(f, json()) : json();
  };
  for (const char* f : {"ownerReferences", "finalizers", "deletionTimestamp"})
    if (m(*old_obj, f) != m(obj, f)) return true;
  return false;
}

Status GarbageCollector::init(ControllerContext& ctx) {
  std::vector<std::pair<const proto::ResourceType*, client::Informer*>> infs;
  for (const auto* t : opts_.types) {
    auto& inf = ctx.informers->informer(*t);
    infs.emplace_back(t, &inf);
    inf.add_handlers({[this](const json& o) {
                        if (relevant(nullptr, o)) queue_->add(kScanKey);
                      },
                      [this](const json& a, const json& b) {
                        if (relevant(&a, b)) queue_->add(kScanKey);
                      },
                      // A deletion may leave dependents without an owner.
                      [this](const json&) { queue_->add(kScanKey); }});
  }
  owned_client_ = std::make_unique<ApiGcClient>(std::move(infs), ctx.api);
  set_client(owned_client_.get(), ctx.events);
  return Status::ok();
}

Status GarbageCollector::sync() { return Pass(*client_).run(); }

void GarbageCollector::run(std::stop_token stop) {
  queue_->add(kScanKey);
  // One worker: a pass covers every object. After a good pass, the next periodic one is due.
  run_workers(
      *queue_, 1, stats_,
      [this](const std::string& key) {
        Status st = sync();
        if (st.is_ok()) queue_->add_after(key, opts_.resync_period);
        return st;
      },
      nullptr, stop);
}

}  // namespace skiff::controllers::gc
