// VolumeController: Kubernetes' PersistentVolume controller (pkg/controller/volume/
// persistentvolume) with its two protection controllers (pvcprotection, pvprotection), for
// skiff's local-path storage (the contract is in controllers/volume/README.md).
//
// One work queue, two kinds of key: "pvc:<ns>/<name>" and "pv:<name>".
//
// sync of a claim (PVC):
//   - protection: not being deleted => finalizer kubernetes.io/pvc-protection added; being
//     deleted => the finalizer removed once no scheduled, non-terminated pod of its namespace
//     uses it (then nothing else is done).
//   - no spec.storageClassName (nil) => the default class is written into it (retroactive
//     default; the newest default class when several are marked).
//   - unbound (no spec.volumeName): a PV pre-bound to it (claimRef) or, for Immediate classes,
//     the smallest Available PV that fits (class, volumeMode, access modes, selector, size) is
//     bound: PV claimRef (+ pv.kubernetes.io/bound-by-controller when we set it), PV phase
//     Bound, PVC volumeName (+ bound-by-controller, bind-completed), PVC status {Bound,
//     accessModes, capacity}. Otherwise: WaitForFirstConsumer class without
//     volume.kubernetes.io/selected-node => event WaitForFirstConsumer; a class with a
//     provisioner => the storage-provisioner annotations and event ExternalProvisioning; a
//     missing class => Warning ProvisioningFailed; no class => FailedBinding.
//   - spec.volumeName set: the PV bound to it => status Bound; PV gone after Bound => Lost
//     (Warning ClaimLost); PV bound to another claim => Lost (Warning ClaimMisbound).
// sync of a volume (PV):
//   - protection: finalizer kubernetes.io/pv-protection added; removed while deleting once the
//     PV is not Bound.
//   - no claimRef => Available. claimRef to a claim that exists (same uid) => Bound when the
//     claim names it, else the claim is queued (it completes the bind); claim to another PV =>
//     the PV is unbound (claimRef dropped if we set it, else its uid cleared) => Available.
//     Claim gone (checked with a live GET) => Released; Retain keeps it, Delete of a volume
//     provisioned by skiff.io/local-path is the node provisioner's job, Delete of any other
//     volume and Recycle => Failed (Warning VolumeFailedDelete / VolumeFailedRecycle).
//
// Start: the StorageClass local-path (provisioner skiff.io/local-path, WaitForFirstConsumer,
// Delete, the default class) is created when absent; never overwritten. Every claim and volume
// is re-synced every `resync` (as Kubernetes' 15 s), so a missed event heals.
//
// Writes go through VolumeClient (PUT with the object's resourceVersion; a conflict re-queues);
// the last object this controller wrote stands in for the cached one while the cache lags.
//
// Thread-safety: handlers and workers may run concurrently; one key is synced by one worker at
// a time (WorkQueue).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::volume {

inline constexpr const char* kLocalPathClass = "local-path";
inline constexpr const char* kLocalPathProvisioner = "skiff.io/local-path";

// Cache reads (the informers' caches in production). Objects are copies.
class Listers {
 public:
  virtual ~Listers() = default;
  virtual std::optional<json> claim(const std::string& key) = 0;  // "ns/name"
  virtual std::vector<json> claims() = 0;
  virtual std::optional<json> volume(const std::string& name) = 0;
  virtual std::vector<json> volumes() = 0;
  virtual std::optional<json> storage_class(const std::string& name) = 0;
  virtual std::vector<json> storage_classes() = 0;
  virtual std::vector<json> pods(const std::string& ns) = 0;
};

// API calls. Updates are PUTs conditional on the object's metadata.resourceVersion.
class VolumeClient {
 public:
  virtual ~VolumeClient() = default;
  [[nodiscard]] virtual Result<json> update_claim(const json& pvc) = 0;
  [[nodiscard]] virtual Result<json> update_claim_status(const json& pvc) = 0;
  [[nodiscard]] virtual Result<json> update_volume(const json& pv) = 0;
  [[nodiscard]] virtual Result<json> update_volume_status(const json& pv) = 0;
  // A live read of a claim (before a volume is released on the cache's word alone).
  [[nodiscard]] virtual Result<json> get_claim(const std::string& ns, const std::string& name) = 0;
  [[nodiscard]] virtual Result<json> create_storage_class(const json& sc) = 0;
};

struct VolumeOptions {
  int workers = 2;
  std::chrono::milliseconds resync{15'000};
  bool create_default_class = true;
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(30)};
};

class VolumeController : public Controller {
 public:
  explicit VolumeController(VolumeOptions opts = {});
  ~VolumeController() override;

  std::string name() const override { return "persistentvolume-binder"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests.
  void set_clients(Listers* listers, VolumeClient* client, EventSink* events);
  // Syncs one key ("pvc:ns/name" or "pv:name").
  [[nodiscard]] Status sync(const std::string& key);
  // Creates StorageClass local-path unless one of that name exists.
  [[nodiscard]] Status ensure_default_class();
  // Queues every claim and volume of the caches.
  void enqueue_all();
  client::WorkQueue& queue() { return *queue_; }

  void on_claim(const json& pvc);
  void on_volume(const json& pv);
  void on_class(const json& sc);
  void on_pod_update(const json& old_pod, const json& pod);
  void on_pod_delete(const json& pod);

  // The StorageClass skiff creates at start.
  static json default_class_object();

 private:
  Status sync_claim(const std::string& key);
  Status sync_volume(const std::string& name);
  // The claim of a volume is gone: Released, then its reclaim policy.
  Status release(json pv);
  Status claim_protection(json& pvc, bool& done);
  Status bind(json pv, json pvc);
  Status sync_unbound_claim(json pvc);
  Status sync_bound_claim(json pvc);
  Status set_claim_phase(json pvc, const std::string& phase);
  Status set_volume_phase(json pv, const std::string& phase, const std::string& reason = "",
                          const std::string& message = "");
  std::optional<json> find_volume_for(const json& pvc, bool delay_binding);
  bool claim_in_use(const json& pvc);
  std::optional<json> default_class();
  // Cache reads overlaid by our own newer writes.
  std::optional<json> current_claim(const std::string& key);
  std::optional<json> current_volume(const std::string& name);
  void remember(const json& written);
  // Drops what is kept about a key whose object is gone.
  void forget(const std::string& key);
  // An event once per (object uid, reason, message) until the object's state changes it.
  void event_once(const json& obj, const std::string& kind, bool warning, const std::string& reason,
                  const std::string& message);

  VolumeOptions opts_;
  Listers* listers_ = nullptr;
  VolumeClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<Listers> owned_listers_;
  std::unique_ptr<VolumeClient> owned_client_;
  std::unique_ptr<client::WorkQueue> queue_;
  std::mutex mu_;
  std::map<std::string, json> written_;      // "pvc:ns/name" / "pv:name" -> our last write
  std::map<std::string, std::string> told_;  // key -> last event "uid|reason|message"
  WorkerStats stats_;
};

}  // namespace skiff::controllers::volume
