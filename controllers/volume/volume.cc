#include "controllers/volume/volume.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <nlohmann/json.hpp>
#include <thread>

#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/pod.h"
#include "proto/quantity.h"
#include "proto/selector.h"
#include "proto/storage.h"
#include "proto/time.h"

namespace skiff::controllers::volume {

namespace {

constexpr auto pvc_type = &resource_type<proto::persistentvolumeclaim_resource>;
constexpr auto pv_type = &resource_type<proto::persistentvolume_resource>;
constexpr auto sc_type = &resource_type<proto::storageclass_resource>;
constexpr auto pod_type = &resource_type<proto::pod_resource>;

constexpr char kClaimPrefix[] = "pvc:";
constexpr char kVolumePrefix[] = "pv:";

std::string claim_key(const json& pvc) { return ns_of(pvc) + "/" + name_of(pvc); }
bool deleting(const json& o) { return !at(o, "metadata", "deletionTimestamp").is_null(); }
std::string phase_of(const json& o) { return str(at(o, "status", "phase")); }

std::string annotation(const json& o, const char* key) {
  return str(at(at(o, "metadata", "annotations"), key));
}
void set_annotation(json& o, const char* key, const std::string& v) {
  o["metadata"]["annotations"][key] = v;
}

bool has_finalizer(const json& o, const char* f) {
  const json& fs = at(o, "metadata", "finalizers");
  if (!fs.is_array()) return false;
  for (const auto& x : fs)
    if (x.is_string() && x.get<std::string>() == f) return true;
  return false;
}
void add_finalizer(json& o, const char* f) { o["metadata"]["finalizers"].push_back(f); }
void remove_finalizer(json& o, const char* f) {
  json kept = json::array();
  for (const auto& x : at(o, "metadata", "finalizers"))
    if (!(x.is_string() && x.get<std::string>() == f)) kept.push_back(x);
  if (kept.empty())
    o["metadata"].erase("finalizers");
  else
    o["metadata"]["finalizers"] = kept;
}

int64_t rv_of(const json& o) {
  std::string s = str(at(o, "metadata", "resourceVersion"));
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

// The storage amount at obj[a][b]["storage"], or nullopt when absent or malformed.
std::optional<proto::Quantity> storage_at(const json& list) {
  const json& q = at(list, "storage");
  if (!q.is_string()) return std::nullopt;
  auto parsed = proto::Quantity::parse(q.get<std::string>());
  if (!parsed.is_ok()) return std::nullopt;
  return *parsed;
}

std::string claim_class(const json& pvc) {
  const json& ann = at(at(pvc, "metadata", "annotations"), proto::kAnnBetaStorageClass);
  if (ann.is_string()) return ann.get<std::string>();
  return str(at(pvc, "spec", "storageClassName"));
}
bool claim_class_unset(const json& pvc) {
  return at(at(pvc, "metadata", "annotations"), proto::kAnnBetaStorageClass).is_null() &&
         at(pvc, "spec", "storageClassName").is_null();
}
std::string volume_class(const json& pv) {
  const json& ann = at(at(pv, "metadata", "annotations"), proto::kAnnBetaStorageClass);
  if (ann.is_string()) return ann.get<std::string>();
  return str(at(pv, "spec", "storageClassName"));
}
std::string volume_mode(const json& obj) {
  std::string m = str(at(obj, "spec", "volumeMode"));
  return m.empty() ? "Filesystem" : m;
}

// The PV's claimRef names this claim (by namespace and name, and uid when it has one).
bool claim_ref_names(const json& pv, const json& pvc) {
  const json& ref = at(pv, "spec", "claimRef");
  if (!ref.is_object()) return false;
  if (str(at(ref, "namespace")) != ns_of(pvc) || str(at(ref, "name")) != name_of(pvc)) return false;
  std::string uid = str(at(ref, "uid"));
  return uid.empty() || uid == uid_of(pvc);
}

bool contains_all(const json& have, const json& want) {
  if (!want.is_array()) return true;
  for (const auto& m : want) {
    bool found = false;
    if (have.is_array())
      for (const auto& h : have) found = found || h == m;
    if (!found) return false;
  }
  return true;
}

// Pod uses the claim through a persistentVolumeClaim volume.
bool pod_uses(const json& pod, const std::string& claim) {
  const json& vols = at(pod, "spec", "volumes");
  if (!vols.is_array()) return false;
  for (const auto& v : vols)
    if (str(at(at(v, "persistentVolumeClaim"), "claimName")) == claim) return true;
  return false;
}
std::vector<std::string> claims_of(const json& pod) {
  std::vector<std::string> out;
  const json& vols = at(pod, "spec", "volumes");
  if (!vols.is_array()) return out;
  for (const auto& v : vols) {
    std::string c = str(at(at(v, "persistentVolumeClaim"), "claimName"));
    if (!c.empty()) out.push_back(ns_of(pod) + "/" + c);
  }
  return out;
}
bool pod_terminated(const json& pod) {
  std::string p = str(at(pod, "status", "phase"));
  return p == "Succeeded" || p == "Failed";
}

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& pvc, client::Informer& pv, client::Informer& sc,
                  client::Informer& pods)
      : pvc_(pvc), pv_(pv), sc_(sc), pods_(pods) {}
  std::optional<json> claim(const std::string& key) override { return pvc_.get(key); }
  std::vector<json> claims() override { return pvc_.list(); }
  std::optional<json> volume(const std::string& name) override { return pv_.get(name); }
  std::vector<json> volumes() override { return pv_.list(); }
  std::optional<json> storage_class(const std::string& name) override { return sc_.get(name); }
  std::vector<json> storage_classes() override { return sc_.list(); }
  std::vector<json> pods(const std::string& ns) override { return pods_.by_namespace(ns); }

 private:
  client::Informer &pvc_, &pv_, &sc_, &pods_;
};

class ApiVolumeClient : public VolumeClient {
 public:
  explicit ApiVolumeClient(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> update_claim(const json& pvc) override { return api_->update(pvc_type(), pvc); }
  Result<json> update_claim_status(const json& pvc) override {
    return api_->update_status(pvc_type(), pvc);
  }
  Result<json> update_volume(const json& pv) override { return api_->update(pv_type(), pv); }
  Result<json> update_volume_status(const json& pv) override {
    return api_->update_status(pv_type(), pv);
  }
  Result<json> get_claim(const std::string& ns, const std::string& name) override {
    return api_->get(pvc_type(), ns, name);
  }
  Result<json> create_storage_class(const json& sc) override {
    return api_->create(sc_type(), "", sc);
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

VolumeController::VolumeController(VolumeOptions opts) : opts_(std::move(opts)) {
  if (opts_.workers < 1) opts_.workers = 1;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

VolumeController::~VolumeController() { queue_->shut_down(); }

void VolumeController::set_clients(Listers* listers, VolumeClient* client, EventSink* events) {
  listers_ = listers;
  client_ = client;
  events_ = events;
}

json VolumeController::default_class_object() {
  return {{"apiVersion", "storage.k8s.io/v1"},
          {"kind", "StorageClass"},
          {"metadata",
           {{"name", kLocalPathClass}, {"annotations", {{proto::kAnnDefaultClass, "true"}}}}},
          {"provisioner", kLocalPathProvisioner},
          {"reclaimPolicy", "Delete"},
          {"volumeBindingMode", "WaitForFirstConsumer"}};
}

Status VolumeController::init(ControllerContext& ctx) {
  auto& pvc_inf = ctx.informers->informer(pvc_type());
  auto& pv_inf = ctx.informers->informer(pv_type());
  auto& sc_inf = ctx.informers->informer(sc_type());
  auto& pod_inf = ctx.informers->informer(pod_type());
  owned_listers_ = std::make_unique<InformerListers>(pvc_inf, pv_inf, sc_inf, pod_inf);
  owned_client_ = std::make_unique<ApiVolumeClient>(ctx.api);
  set_clients(owned_listers_.get(), owned_client_.get(), ctx.events);
  pvc_inf.add_handlers({[this](const json& o) { on_claim(o); },
                        [this](const json&, const json& o) { on_claim(o); },
                        [this](const json& o) { on_claim(o); }});
  pv_inf.add_handlers({[this](const json& o) { on_volume(o); },
                       [this](const json&, const json& o) { on_volume(o); },
                       [this](const json& o) { on_volume(o); }});
  sc_inf.add_handlers({[this](const json& o) { on_class(o); },
                       [this](const json&, const json& o) { on_class(o); }, nullptr});
  pod_inf.add_handlers({nullptr, [this](const json& a, const json& b) { on_pod_update(a, b); },
                        [this](const json& o) { on_pod_delete(o); }});
  return Status::ok();
}

void VolumeController::run(std::stop_token stop) {
  bool class_ok = !opts_.create_default_class;
  auto try_class = [&] {
    if (class_ok) return;
    Status st = ensure_default_class();
    if (st.is_ok())
      class_ok = true;
    else
      spdlog::warn("volume: creating the default StorageClass {}: {}", kLocalPathClass,
                   st.message());
  };
  try_class();
  enqueue_all();
  // Kubernetes' PV controller re-syncs everything every 15 s: a missed event heals.
  std::jthread resync([&](std::stop_token st) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    while (true) {
      // Returns on timeout or at a stop request (the predicate never holds).
      cv.wait_for(lock, st, opts_.resync, [] { return false; });
      if (st.stop_requested()) return;
      try_class();
      enqueue_all();
    }
  });
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& k) { return sync(k); },
      [](const std::string& k, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::debug("volume: sync {}: {}", k, st.message());
        else
          spdlog::warn("volume: sync {}: {}", k, st.message());
      },
      stop);
  resync.request_stop();
}

Status VolumeController::ensure_default_class() {
  if (listers_->storage_class(kLocalPathClass)) return Status::ok();
  auto r = client_->create_storage_class(default_class_object());
  if (r.is_ok() || r.status().code() == Code::kAlreadyExists) {
    if (r.is_ok()) spdlog::info("volume: created the default StorageClass {}", kLocalPathClass);
    return Status::ok();
  }
  return r.status();
}

void VolumeController::enqueue_all() {
  for (const auto& pvc : listers_->claims()) queue_->add(kClaimPrefix + claim_key(pvc));
  for (const auto& pv : listers_->volumes()) queue_->add(kVolumePrefix + name_of(pv));
}

// --- handlers: they only enqueue ---

void VolumeController::on_claim(const json& pvc) {
  queue_->add(kClaimPrefix + claim_key(pvc));
  std::string vol = str(at(pvc, "spec", "volumeName"));
  if (!vol.empty()) queue_->add(kVolumePrefix + vol);
  // Volumes pre-bound to it (by the node provisioner) learn of a deletion at once.
  for (const auto& pv : listers_->volumes())
    if (claim_ref_names(pv, pvc)) queue_->add(kVolumePrefix + name_of(pv));
}

void VolumeController::on_volume(const json& pv) {
  queue_->add(kVolumePrefix + name_of(pv));
  const json& ref = at(pv, "spec", "claimRef");
  if (ref.is_object())
    queue_->add(kClaimPrefix + str(at(ref, "namespace")) + "/" + str(at(ref, "name")));
}

void VolumeController::on_class(const json&) {
  for (const auto& pvc : listers_->claims())
    if (str(at(pvc, "spec", "volumeName")).empty()) queue_->add(kClaimPrefix + claim_key(pvc));
}

void VolumeController::on_pod_update(const json& old_pod, const json& pod) {
  // Only a pod that stops using its claims matters (pvc-protection).
  if (pod_terminated(pod) != pod_terminated(old_pod) || deleting(pod) != deleting(old_pod))
    for (const auto& k : claims_of(pod)) queue_->add(kClaimPrefix + k);
}

void VolumeController::on_pod_delete(const json& pod) {
  for (const auto& k : claims_of(pod)) queue_->add(kClaimPrefix + k);
}

// --- state ---

std::optional<json> VolumeController::current_claim(const std::string& key) {
  auto cached = listers_->claim(key);
  std::lock_guard lock(mu_);
  auto it = written_.find(kClaimPrefix + key);
  if (!cached) {
    if (it != written_.end()) written_.erase(it);
    return cached;
  }
  if (it != written_.end() && uid_of(it->second) == uid_of(*cached) &&
      rv_of(it->second) > rv_of(*cached))
    return it->second;
  if (it != written_.end()) written_.erase(it);
  return cached;
}

std::optional<json> VolumeController::current_volume(const std::string& name) {
  auto cached = listers_->volume(name);
  std::lock_guard lock(mu_);
  auto it = written_.find(kVolumePrefix + name);
  if (!cached) {
    if (it != written_.end()) written_.erase(it);
    return cached;
  }
  if (it != written_.end() && uid_of(it->second) == uid_of(*cached) &&
      rv_of(it->second) > rv_of(*cached))
    return it->second;
  if (it != written_.end()) written_.erase(it);
  return cached;
}

void VolumeController::remember(const json& written) {
  // Claims are namespaced, volumes are not.
  std::string key =
      ns_of(written).empty() ? kVolumePrefix + name_of(written) : kClaimPrefix + claim_key(written);
  std::lock_guard lock(mu_);
  written_[key] = written;
}

void VolumeController::event_once(const json& obj, const std::string& kind, bool warning,
                                  const std::string& reason, const std::string& message) {
  {
    // Keyed by the object's queue key (dropped when the object is gone), so the map stays as
    // large as the cluster; the uid tells a re-created object of the same name apart.
    std::string key =
        ns_of(obj).empty() ? kVolumePrefix + name_of(obj) : kClaimPrefix + claim_key(obj);
    std::string said = uid_of(obj) + "|" + reason + "|" + message;
    std::lock_guard lock(mu_);
    std::string& last = told_[key];
    if (last == said) return;
    last = said;
  }
  if (events_) events_->event(obj, kind, warning, reason, message);
}

std::optional<json> VolumeController::default_class() {
  std::optional<json> best;
  for (const auto& sc : listers_->storage_classes()) {
    if (annotation(sc, proto::kAnnDefaultClass) != "true" &&
        annotation(sc, proto::kAnnBetaDefaultClass) != "true")
      continue;
    // Several defaults: the newest wins (Kubernetes 1.26+); RFC 3339 strings sort by time.
    auto created = [](const json& o) { return str(at(o, "metadata", "creationTimestamp")); };
    if (!best || created(sc) > created(*best) ||
        (created(sc) == created(*best) && name_of(sc) < name_of(*best)))
      best = sc;
  }
  return best;
}

bool VolumeController::claim_in_use(const json& pvc) {
  for (const auto& pod : listers_->pods(ns_of(pvc))) {
    // The kubelet only starts pods bound to a node; it refuses a claim being deleted.
    if (str(at(pod, "spec", "nodeName")).empty() || pod_terminated(pod)) continue;
    if (pod_uses(pod, name_of(pvc))) return true;
  }
  return false;
}

// --- sync ---

Status VolumeController::sync(const std::string& key) {
  if (key.rfind(kClaimPrefix, 0) == 0) return sync_claim(key.substr(sizeof(kClaimPrefix) - 1));
  if (key.rfind(kVolumePrefix, 0) == 0) return sync_volume(key.substr(sizeof(kVolumePrefix) - 1));
  return Status::ok();  // not ours; dropped
}

Status VolumeController::claim_protection(json& pvc, bool& done) {
  done = false;
  if (deleting(pvc)) {
    done = true;
    if (!has_finalizer(pvc, proto::kPvcProtectionFinalizer) || claim_in_use(pvc))
      return Status::ok();
    remove_finalizer(pvc, proto::kPvcProtectionFinalizer);
    auto r = client_->update_claim(pvc);
    if (!r.is_ok()) return r.status().code() == Code::kNotFound ? Status::ok() : r.status();
    remember(*r);
    return Status::ok();
  }
  if (has_finalizer(pvc, proto::kPvcProtectionFinalizer)) return Status::ok();
  add_finalizer(pvc, proto::kPvcProtectionFinalizer);
  auto r = client_->update_claim(pvc);
  if (!r.is_ok()) return r.status();
  remember(*r);
  pvc = *r;
  return Status::ok();
}

void VolumeController::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  told_.erase(key);
  written_.erase(key);
}

Status VolumeController::sync_claim(const std::string& key) {
  auto cur = current_claim(key);
  if (!cur) {
    forget(kClaimPrefix + key);
    return Status::ok();
  }
  json pvc = *cur;
  bool done = false;
  if (Status st = claim_protection(pvc, done); !st.is_ok() || done) return st;

  // Only unbound claims get the default class (Kubernetes' syncUnboundClaim): a claim the user
  // bound by spec.volumeName keeps matching class-less volumes.
  if (claim_class_unset(pvc) && str(at(pvc, "spec", "volumeName")).empty()) {
    if (auto def = default_class()) {
      // Retroactive default class (Kubernetes 1.28+): the API server allows setting a nil
      // storageClassName once.
      pvc["spec"]["storageClassName"] = name_of(*def);
      auto r = client_->update_claim(pvc);
      if (!r.is_ok()) return r.status();
      remember(*r);
      pvc = *r;
    }
  }
  if (str(at(pvc, "spec", "volumeName")).empty()) return sync_unbound_claim(std::move(pvc));
  return sync_bound_claim(std::move(pvc));
}

std::optional<json> VolumeController::find_volume_for(const json& pvc, bool delay_binding) {
  auto request = storage_at(at(at(pvc, "spec", "resources"), "requests"));
  if (!request) return std::nullopt;
  std::optional<proto::LabelSelector> selector;
  const json& sel = at(pvc, "spec", "selector");
  if (sel.is_object()) {
    auto parsed = proto::LabelSelector::from_json(sel, "spec.selector");
    if (!parsed.is_ok()) return std::nullopt;
    selector = *parsed;
  }
  std::optional<json> best;
  std::optional<proto::Quantity> best_size;
  for (const auto& listed : listers_->volumes()) {
    auto pv = current_volume(name_of(listed));
    if (!pv || deleting(*pv)) continue;
    const bool prebound = claim_ref_names(*pv, pvc);
    if (!at(*pv, "spec", "claimRef").is_null() && !prebound) continue;
    // Delayed binding leaves the choice of a static volume to the scheduler; only volumes
    // already meant for this claim are taken.
    if (!prebound && (delay_binding || phase_of(*pv) != "Available")) continue;
    auto size = storage_at(at(*pv, "spec", "capacity"));
    if (!size || *size < *request) continue;
    if (volume_class(*pv) != claim_class(pvc)) continue;
    if (volume_mode(*pv) != volume_mode(pvc)) continue;
    if (!contains_all(at(*pv, "spec", "accessModes"), at(pvc, "spec", "accessModes"))) continue;
    if (!prebound && selector && !selector->matches_json(at(*pv, "metadata", "labels"))) continue;
    if (prebound) return pv;
    if (!best || *size < *best_size) {
      best = pv;
      best_size = size;
    }
  }
  return best;
}

Status VolumeController::sync_unbound_claim(json pvc) {
  if (auto pv = find_volume_for(pvc, false /* decided below */); pv) {
    // A pre-bound volume is always taken; others only for Immediate classes (checked next).
    bool prebound = claim_ref_names(*pv, pvc);
    if (prebound) return bind(std::move(*pv), std::move(pvc));
  }
  const std::string cls = claim_class(pvc);
  std::optional<json> sc;
  if (!cls.empty()) sc = listers_->storage_class(cls);
  const bool delay = sc && str(at(*sc, "volumeBindingMode")) == "WaitForFirstConsumer";
  if (auto pv = find_volume_for(pvc, delay)) return bind(std::move(*pv), std::move(pvc));

  if (phase_of(pvc) != "Pending")
    if (Status st = set_claim_phase(pvc, "Pending"); !st.is_ok()) return st;
  if (cls.empty()) {
    event_once(pvc, "PersistentVolumeClaim", false, "FailedBinding",
               "no persistent volumes available for this claim and no storage class is set");
    return Status::ok();
  }
  if (!sc) {
    event_once(pvc, "PersistentVolumeClaim", true, "ProvisioningFailed",
               "storageclass.storage.k8s.io \"" + cls + "\" not found");
    return Status::ok();
  }
  if (delay && annotation(pvc, proto::kAnnSelectedNode).empty()) {
    event_once(pvc, "PersistentVolumeClaim", false, "WaitForFirstConsumer",
               "waiting for first consumer to be created before binding");
    return Status::ok();
  }
  const std::string provisioner = str(at(*sc, "provisioner"));
  if (annotation(pvc, proto::kAnnStorageProvisioner) != provisioner ||
      annotation(pvc, proto::kAnnBetaStorageProvisioner) != provisioner) {
    set_annotation(pvc, proto::kAnnStorageProvisioner, provisioner);
    set_annotation(pvc, proto::kAnnBetaStorageProvisioner, provisioner);
    auto r = client_->update_claim(pvc);
    if (!r.is_ok()) return r.status();
    remember(*r);
    pvc = *r;
  }
  event_once(pvc, "PersistentVolumeClaim", false, "ExternalProvisioning",
             "Waiting for a volume to be created either by the external provisioner '" +
                 provisioner +
                 "' or manually by the system administrator. If volume creation is delayed, "
                 "please verify that the provisioner is running and correctly registered.");
  return Status::ok();
}

Status VolumeController::sync_bound_claim(json pvc) {
  const std::string vol = str(at(pvc, "spec", "volumeName"));
  auto pv = current_volume(vol);
  // Kubernetes' syncBoundClaim: a claim whose bind was completed once.
  const bool was_bound = annotation(pvc, proto::kAnnBindCompleted) == "yes";
  if (!pv) {
    if (was_bound) {
      if (phase_of(pvc) != "Lost") {
        if (Status st = set_claim_phase(pvc, "Lost"); !st.is_ok()) return st;
      }
      event_once(pvc, "PersistentVolumeClaim", true, "ClaimLost",
                 "Bound claim has lost its PersistentVolume. Data on the volume is lost!");
      return Status::ok();
    }
    // Pre-bound by the user to a volume that does not exist (yet).
    return phase_of(pvc) == "Pending" ? Status::ok() : set_claim_phase(pvc, "Pending");
  }
  if (at(*pv, "spec", "claimRef").is_null() || claim_ref_names(*pv, pvc))
    return bind(std::move(*pv), std::move(pvc));
  // The volume belongs to another claim.
  if (annotation(pvc, proto::kAnnBindCompleted) == "yes") {
    if (phase_of(pvc) != "Lost")
      if (Status st = set_claim_phase(pvc, "Lost"); !st.is_ok()) return st;
    event_once(pvc, "PersistentVolumeClaim", true, "ClaimMisbound",
               "Two claims are bound to the same volume, this one is bound incorrectly");
    return Status::ok();
  }
  return phase_of(pvc) == "Pending" ? Status::ok() : set_claim_phase(pvc, "Pending");
}

Status VolumeController::bind(json pv, json pvc) {
  const std::string pv_name = name_of(pv);
  // The volume points at the claim.
  const json& ref = at(pv, "spec", "claimRef");
  if (!ref.is_object() || str(at(ref, "uid")) != uid_of(pvc) ||
      str(at(ref, "namespace")) != ns_of(pvc) || str(at(ref, "name")) != name_of(pvc)) {
    if (!ref.is_object()) set_annotation(pv, proto::kAnnBoundByController, "yes");
    pv["spec"]["claimRef"] = {{"kind", "PersistentVolumeClaim"},
                              {"namespace", ns_of(pvc)},
                              {"name", name_of(pvc)},
                              {"uid", uid_of(pvc)},
                              {"apiVersion", "v1"},
                              {"resourceVersion", str(at(pvc, "metadata", "resourceVersion"))}};
    auto r = client_->update_volume(pv);
    if (!r.is_ok()) return r.status();
    remember(*r);
    pv = *r;
  }
  if (phase_of(pv) != "Bound")
    if (Status st = set_volume_phase(pv, "Bound"); !st.is_ok()) return st;

  // The claim points at the volume.
  bool changed = false;
  if (str(at(pvc, "spec", "volumeName")) != pv_name) {
    pvc["spec"]["volumeName"] = pv_name;
    set_annotation(pvc, proto::kAnnBoundByController, "yes");
    changed = true;
  }
  if (annotation(pvc, proto::kAnnBindCompleted) != "yes") {
    set_annotation(pvc, proto::kAnnBindCompleted, "yes");
    changed = true;
  }
  if (changed) {
    auto r = client_->update_claim(pvc);
    if (!r.is_ok()) return r.status();
    remember(*r);
    pvc = *r;
  }
  const json modes = at(pv, "spec", "accessModes");
  const json capacity = at(pv, "spec", "capacity");
  if (phase_of(pvc) != "Bound" || at(pvc, "status", "accessModes") != modes ||
      at(pvc, "status", "capacity") != capacity) {
    pvc["status"]["phase"] = "Bound";
    pvc["status"]["accessModes"] = modes;
    pvc["status"]["capacity"] = capacity;
    auto r = client_->update_claim_status(pvc);
    if (!r.is_ok()) return r.status();
    remember(*r);
    spdlog::info("volume: claim {} bound to volume {}", claim_key(pvc), pv_name);
  }
  return Status::ok();
}

Status VolumeController::set_claim_phase(json pvc, const std::string& phase) {
  pvc["status"]["phase"] = phase;
  auto r = client_->update_claim_status(pvc);
  if (!r.is_ok()) return r.status();
  remember(*r);
  return Status::ok();
}

Status VolumeController::set_volume_phase(json pv, const std::string& phase,
                                          const std::string& reason, const std::string& message) {
  if (phase_of(pv) != phase)
    pv["status"]["lastPhaseTransitionTime"] = proto::Time::now().to_string();
  pv["status"]["phase"] = phase;
  if (reason.empty())
    pv["status"].erase("reason");
  else
    pv["status"]["reason"] = reason;
  if (message.empty())
    pv["status"].erase("message");
  else
    pv["status"]["message"] = message;
  auto r = client_->update_volume_status(pv);
  if (!r.is_ok()) return r.status();
  remember(*r);
  return Status::ok();
}

Status VolumeController::sync_volume(const std::string& name) {
  auto cur = current_volume(name);
  if (!cur) {
    forget(kVolumePrefix + name);
    return Status::ok();
  }
  json pv = *cur;

  if (deleting(pv)) {
    if (has_finalizer(pv, proto::kPvProtectionFinalizer) && phase_of(pv) != "Bound") {
      remove_finalizer(pv, proto::kPvProtectionFinalizer);
      auto r = client_->update_volume(pv);
      if (!r.is_ok()) return r.status().code() == Code::kNotFound ? Status::ok() : r.status();
      remember(*r);
      return Status::ok();
    }
  } else if (!has_finalizer(pv, proto::kPvProtectionFinalizer)) {
    add_finalizer(pv, proto::kPvProtectionFinalizer);
    auto r = client_->update_volume(pv);
    if (!r.is_ok()) return r.status();
    remember(*r);
    pv = *r;
  }

  const json ref = at(pv, "spec", "claimRef");
  if (!ref.is_object())
    return phase_of(pv) == "Available" ? Status::ok() : set_volume_phase(pv, "Available");
  const std::string cns = str(at(ref, "namespace")), cname = str(at(ref, "name"));
  const std::string cuid = str(at(ref, "uid"));
  auto claim = current_claim(cns + "/" + cname);
  if (cuid.empty()) {
    // Pre-bound by the user to a claim by name only: available for that claim.
    if (claim) queue_->add(kClaimPrefix + cns + "/" + cname);
    return phase_of(pv) == "Available" ? Status::ok() : set_volume_phase(pv, "Available");
  }
  if (claim && uid_of(*claim) != cuid) claim.reset();
  if (!claim) {
    // The cache may lag behind a claim just created; ask the API server before releasing.
    auto live = client_->get_claim(cns, cname);
    if (live.is_ok() && uid_of(*live) == cuid)
      claim = *live;
    else if (!live.is_ok() && live.status().code() != Code::kNotFound)
      return live.status();
  }
  if (!claim) return release(pv);

  const std::string claim_vol = str(at(*claim, "spec", "volumeName"));
  if (claim_vol.empty()) {
    queue_->add(kClaimPrefix + cns + "/" + cname);  // the claim's sync completes the bind
    return Status::ok();
  }
  if (claim_vol == name)
    return phase_of(pv) == "Bound" ? Status::ok() : set_volume_phase(pv, "Bound");

  // The claim is bound to another volume: undo our half of the bind.
  if (annotation(pv, proto::kAnnBoundByController) == "yes") {
    pv["spec"].erase("claimRef");
    pv["metadata"]["annotations"].erase(proto::kAnnBoundByController);
  } else {
    pv["spec"]["claimRef"].erase("uid");
  }
  auto r = client_->update_volume(pv);
  if (!r.is_ok()) return r.status();
  remember(*r);
  return set_volume_phase(*r, "Available");
}

Status VolumeController::release(json pv) {
  if (phase_of(pv) != "Released" && phase_of(pv) != "Failed") {
    if (Status st = set_volume_phase(pv, "Released"); !st.is_ok()) return st;
    auto again = current_volume(name_of(pv));
    if (again) pv = *again;
  }
  if (phase_of(pv) == "Failed") return Status::ok();
  const std::string policy = str(at(pv, "spec", "persistentVolumeReclaimPolicy"));
  if (policy == "Delete") {
    // Our own provisioner's volumes are deleted by the node that holds them (kubelet/localpath).
    if (annotation(pv, proto::kAnnProvisionedBy) == kLocalPathProvisioner) return Status::ok();
    std::string msg = "error getting deleter volume plugin for volume \"" + name_of(pv) +
                      "\": no deletable volume plugin matched";
    event_once(pv, "PersistentVolume", true, "VolumeFailedDelete", msg);
    return set_volume_phase(pv, "Failed", "", msg);
  }
  if (policy == "Recycle") {
    std::string msg = "No recycler plugin found for the volume!";
    event_once(pv, "PersistentVolume", true, "VolumeFailedRecycle", msg);
    return set_volume_phase(pv, "Failed", "", msg);
  }
  return Status::ok();  // Retain: the administrator decides
}

}  // namespace skiff::controllers::volume
