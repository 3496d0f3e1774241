// Provisioner: the node's local-path volume provisioner (storage class provisioner
// `skiff.io/local-path`), one per kubelet. It turns a PersistentVolumeClaim that the scheduler
// placed on this node into a directory <storage-root>/pvc-<claim uid> and a PersistentVolume
// (hostPath, node affinity to this node, claimRef to the claim), and deletes the directory and
// the PersistentVolume again once the volume is Released with reclaim policy Delete. This is the
// part of an external provisioner (sig-storage-lib-external-provisioner) that decides and acts;
// the PV controller (controllers/volume) does the binding.
//
// Both syncs are idempotent and restart-safe: a PV that already exists is success, a directory
// that already exists is reused, a directory already gone is success. Objects are JSON (the
// wire form), so the provisioner does not depend on the typed PV/PVC structs.
//
// Thread-compatible: the controller calls it from one worker thread.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "common/status.h"

namespace skiff::localpath {

using json = nlohmann::json;

inline constexpr char kProvisionerName[] = "skiff.io/local-path";
inline constexpr char kAnnSelectedNode[] = "volume.kubernetes.io/selected-node";
inline constexpr char kAnnStorageProvisioner[] = "volume.kubernetes.io/storage-provisioner";
inline constexpr char kAnnBetaStorageProvisioner[] =
    "volume.beta.kubernetes.io/storage-provisioner";
inline constexpr char kAnnProvisionedBy[] = "pv.kubernetes.io/provisioned-by";
inline constexpr char kLabelHostname[] = "kubernetes.io/hostname";

// The API calls the provisioner makes. The kubelet implements it over ApiClient and informer
// caches (controller.h); unit tests use a fake.
class StorageApi {
 public:
  virtual ~StorageApi() = default;
  // The storage.k8s.io/v1 StorageClass `name`; NotFound when it does not exist.
  virtual Result<json> storage_class(const std::string& name) = 0;
  // The PersistentVolume `name` as last seen (cache); nullopt when it does not exist.
  virtual std::optional<json> volume(const std::string& name) = 0;
  // Creates the PersistentVolume; AlreadyExists when one of that name exists.
  [[nodiscard]] virtual Status create_volume(const json& pv) = 0;
  // Deletes the PersistentVolume `name` whose uid is `uid`; NotFound when it is gone.
  [[nodiscard]] virtual Status delete_volume(const std::string& name, const std::string& uid) = 0;
  // Records a core/v1 Event about `object` (a PVC or a PV); best effort.
  virtual void event(const json& object, bool warning, const std::string& reason,
                     const std::string& message) = 0;
};

struct ProvisionerOptions {
  std::string node_name;
  // Absolute directory holding the volumes (<kubelet data dir>/storage by default).
  std::string storage_root;
};

// True when `pvc` waits for this node's provisioner: selected-node is `node`, the storage
// provisioner annotation (GA or beta) is skiff.io/local-path, no spec.volumeName, not being
// deleted.
bool claim_wants_volume(const json& pvc, const std::string& node);

// True when `pv` was provisioned by skiff.io/local-path for `node` (its node affinity names the
// node), is Released and its reclaim policy is Delete: the provisioner must delete it.
bool volume_needs_delete(const json& pv, const std::string& node);

// "pvc-<claim uid>".
std::string volume_name_for(const json& pvc);

// The PersistentVolume for `pvc` (see the contract in kubelet/localpath/README.md). `storage_class`
// is null when the claim names no class. Invalid when the claim cannot be provisioned here (no
// uid, no storage request, block volume mode, a class of another provisioner).
[[nodiscard]] Result<json> build_volume(const json& pvc, const json* storage_class,
                                        const ProvisionerOptions& opts);

class Provisioner {
 public:
  Provisioner(ProvisionerOptions opts, StorageApi* api);

  // Provisions a volume for `pvc` when claim_wants_volume(); OK when there is nothing to do or
  // it is done. Errors are retried by the caller; a ProvisioningFailed event says why.
  [[nodiscard]] Status sync_claim(const json& pvc);
  // Removes the directory of `pv` and deletes it when volume_needs_delete(); OK otherwise.
  [[nodiscard]] Status sync_volume(const json& pv);

  const ProvisionerOptions& options() const { return opts_; }

 private:
  ProvisionerOptions opts_;
  StorageApi* api_;
};

// The directory helpers, fd-relative below the storage root. Exposed for tests.
namespace fs {
// Creates <root>/<name> with mode 0777 (umask bypassed); `root` is created (0755) when missing.
// OK when the directory exists already; an error when <root>/<name> is anything but a
// directory (a symlink included). `name` must be one path element.
[[nodiscard]] Status ensure_volume_dir(const std::string& root, const std::string& name);
// Removes <root>/<name> and everything below it, reached with openat/unlinkat from a handle on
// `root`: never follows a symlink (a symlink is unlinked, not its target), never crosses into
// another filesystem (EBUSY: a mount left in place), never leaves `root`. OK when absent.
[[nodiscard]] Status remove_volume_dir(const std::string& root, const std::string& name);
}  // namespace fs

}  // namespace skiff::localpath
