#include "kubelet/localpath/controller.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "proto/event.h"
#include "proto/storage.h"
#include "proto/time.h"

namespace skiff::localpath {
namespace {

const proto::ResourceType& pvc_type() {
  static const proto::ResourceType t = proto::persistentvolumeclaim_resource();
  return t;
}
const proto::ResourceType& pv_type() {
  static const proto::ResourceType t = proto::persistentvolume_resource();
  return t;
}
const proto::ResourceType& sc_type() {
  static const proto::ResourceType t = proto::storageclass_resource();
  return t;
}
const proto::ResourceType& event_type() {
  static const proto::ResourceType t = proto::event_resource();
  return t;
}

constexpr char kPvcPrefix[] = "pvc/";
constexpr char kPvPrefix[] = "pv/";

}  // namespace

// StorageApi over the API server: the PV cache for reads, ApiClient for writes.
class LocalPathController::ApiStorage : public StorageApi {
 public:
  ApiStorage(std::shared_ptr<client::ApiClient> api, client::Informer* pvs, std::string node)
      : api_(std::move(api)), pvs_(pvs), node_(std::move(node)) {}

  Result<json> storage_class(const std::string& name) override {
    return api_->get(sc_type(), "", name);
  }
  std::optional<json> volume(const std::string& name) override {
    if (auto v = pvs_->get(name)) return v;
    // The cache may lag our own create (restart before the watch caught up): ask the server.
    auto r = api_->get(pv_type(), "", name);
    if (r) return std::move(*r);
    return std::nullopt;
  }
  Status create_volume(const json& pv) override {
    auto r = api_->create(pv_type(), "", pv);
    return r ? Status::ok() : r.status();
  }
  Status delete_volume(const std::string& name, const std::string& uid) override {
    // The object of that name must still be the one we looked at: a PV re-created under the
    // same name meanwhile is not ours to delete.
    auto cur = api_->get(pv_type(), "", name);
    if (!cur) return cur.status();
    if (!uid.empty() && cur->value("metadata", json::object()).value("uid", "") != uid)
      return Status::ok();
    return api_->remove(pv_type(), "", name);
  }
  void event(const json& object, bool warning, const std::string& reason,
             const std::string& message) override {
    const json meta = object.value("metadata", json::object());
    std::string ns = meta.value("namespace", "");
    // Events about cluster-scoped objects (PVs) live in "default", as Kubernetes' recorder
    // puts them.
    std::string event_ns = ns.empty() ? "default" : ns;
    auto now = std::chrono::system_clock::now();
    char suffix[40];
    auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch());
    std::snprintf(suffix, sizeof suffix, ".%llx%llx",
                  static_cast<unsigned long long>(nanos.count()),
                  static_cast<unsigned long long>(++seq_ & 0xfff));
    std::string ts =
        proto::Time::at(std::chrono::time_point_cast<std::chrono::seconds>(now)).to_string();
    const std::string component = std::string(kProvisionerName) + "_" + node_;
    json involved = {{"kind", object.value("kind", "")},
                     {"apiVersion", object.value("apiVersion", "v1")},
                     {"name", meta.value("name", "")},
                     {"uid", meta.value("uid", "")},
                     {"resourceVersion", meta.value("resourceVersion", "")}};
    if (!ns.empty()) involved["namespace"] = ns;
    json ev = {{"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"name", meta.value("name", "") + suffix}, {"namespace", event_ns}}},
               {"involvedObject", involved},
               {"reason", reason},
               {"message", message},
               {"source", {{"component", component}, {"host", node_}}},
               {"firstTimestamp", ts},
               {"lastTimestamp", ts},
               {"count", 1},
               {"type", warning ? "Warning" : "Normal"},
               {"reportingComponent", component},
               {"reportingInstance", node_}};
    if (auto r = api_->create(event_type(), event_ns, ev); !r)
      spdlog::debug("local-path: posting event {} about {}: {}", reason, meta.value("name", ""),
                    r.status().to_string());
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
  client::Informer* pvs_;
  std::string node_;
  uint64_t seq_ = 0;  // only the worker thread posts
};

LocalPathController::LocalPathController(std::shared_ptr<client::ApiClient> api,
                                         ControllerOptions opts)
    : api_(std::move(api)), opts_(std::move(opts)) {}

LocalPathController::~LocalPathController() { stop(); }

void LocalPathController::start() {
  client::WorkQueueOptions qo;
  qo.max_delay = std::chrono::minutes(5);
  queue_ = std::make_unique<client::WorkQueue>(qo);
  pvcs_ = std::make_unique<client::Informer>(api_, pvc_type());
  pvs_ = std::make_unique<client::Informer>(api_, pv_type());
  storage_ = std::make_unique<ApiStorage>(api_, pvs_.get(), opts_.provisioner.node_name);
  provisioner_ = std::make_unique<Provisioner>(opts_.provisioner, storage_.get());
  auto* q = queue_.get();
  auto add = [q](const char* prefix) {
    return [q, prefix](const json& o) { q->add(prefix + client::object_key(o)); };
  };
  auto pvc_add = add(kPvcPrefix), pv_add = add(kPvPrefix);
  pvcs_->add_handlers({pvc_add, [pvc_add](const json&, const json& o) { pvc_add(o); }, {}});
  pvs_->add_handlers({pv_add, [pv_add](const json&, const json& o) { pv_add(o); }, {}});
  pvcs_->start();
  pvs_->start();
  worker_ = std::jthread([this](std::stop_token st) { run(st); });
  resync_ = std::jthread([this](std::stop_token st) { resync_loop(st); });
  spdlog::info("local-path provisioner {} started for node {} (storage root {})", kProvisionerName,
               opts_.provisioner.node_name, provisioner_->options().storage_root);
}

void LocalPathController::stop() {
  if (!queue_) return;
  queue_->shut_down();
  resync_ = {};
  worker_ = {};
  if (pvcs_) pvcs_->stop();
  if (pvs_) pvs_->stop();
}

void LocalPathController::enqueue_all() {
  for (const auto& o : pvcs_->list()) queue_->add(kPvcPrefix + client::object_key(o));
  for (const auto& o : pvs_->list()) queue_->add(kPvPrefix + client::object_key(o));
}

void LocalPathController::resync_loop(std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  while (!stop.stop_requested()) {
    std::unique_lock lock(mu);
    if (cv.wait_for(lock, stop, opts_.resync_period, [] { return false; })) break;
    if (stop.stop_requested()) break;
    enqueue_all();
  }
}

void LocalPathController::run(std::stop_token stop) {
  // Deciding on a PV that is not in the cache yet would provision it twice: wait for both
  // first lists.
  while (!stop.stop_requested() && !(pvcs_->wait_for_sync(std::chrono::milliseconds(500)) &&
                                     pvs_->wait_for_sync(std::chrono::milliseconds(500)))) {
  }
  while (!stop.stop_requested()) {
    auto key = queue_->get();
    if (!key) break;
    Status s;
    if (key->starts_with(kPvcPrefix)) {
      if (auto o = pvcs_->get(key->substr(sizeof kPvcPrefix - 1))) s = provisioner_->sync_claim(*o);
    } else if (key->starts_with(kPvPrefix)) {
      if (auto o = pvs_->get(key->substr(sizeof kPvPrefix - 1))) s = provisioner_->sync_volume(*o);
    }
    if (s) {
      queue_->forget(*key);
    } else {
      spdlog::warn("local-path: sync {}: {} (retrying)", *key, s.to_string());
      queue_->add_rate_limited(*key);
    }
    queue_->done(*key);
  }
}

}  // namespace skiff::localpath
