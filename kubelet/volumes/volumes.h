// VolumeManager: makes a pod's volumes exist on the node and turns a container's volumeMounts
// into runtime mounts.
//
// Layout: <pods-dir>/<pod-uid>/volumes/<plugin>/<volume-name>, plugin one of empty-dir,
// configmap, secret (hostPath and persistentVolumeClaim volumes point at a host path itself).
// emptyDir with `medium: Memory` and every secret volume are tmpfs mounts (sizeLimit honoured);
// configMap and secret contents are written atomically (a timestamped data dir and a `..data`
// symlink swap, as the kubelet's AtomicWriter does) with `items` (key -> path), `defaultMode` and
// per-item `mode`, and `optional`. Kubernetes' fsGroup handling is not done.
//
// Thread-safe for different pods; calls for one pod are serialized by the caller.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "kubelet/runtime/spec.h"
#include "proto/pod.h"

namespace skiff::volumes {

// Where a persistentVolumeClaim volume lives on this node, as the caller resolved it (claim ->
// bound PersistentVolume -> its hostPath or local source).
struct ClaimVolume {
  std::string volume_name;  // the PersistentVolume, for messages
  std::string path;         // absolute host path
  // hostPath type checks applied to `path` (see hostPath below): the PV's hostPath.type;
  // "Directory" for a local volume (it must exist).
  std::string type;
};

// What the volume manager needs from the API, resolved by the caller (the kubelet), so that this
// library makes no API calls itself.
// config_map/secret: key -> bytes (secrets already base64-decoded); NotFound when the object does
// not exist (an `optional` volume then stays empty).
// persistent_volume_claim: (namespace, claimName) -> the bound volume's host path; its error is
// the volume's error as is (`persistentvolumeclaim "x" not bound`), and setup is retried later.
struct Sources {
  std::function<Result<std::map<std::string, std::string>>(const std::string& ns,
                                                           const std::string& name)>
      config_map;
  std::function<Result<std::map<std::string, std::string>>(const std::string& ns,
                                                           const std::string& name)>
      secret;
  std::function<Result<ClaimVolume>(const std::string& ns, const std::string& claim_name)>
      persistent_volume_claim;
};

struct PreparedVolume {
  std::string host_path;  // what gets bind-mounted
  // configMap/secret volumes are always mounted read-only; a persistentVolumeClaim volume when
  // its `readOnly` says so.
  bool read_only = false;
};

class VolumeManager {
 public:
  explicit VolumeManager(std::string pods_dir);

  // Sets up every volume of `pod` (idempotent; configMap/secret contents refreshed). Errors say
  // which volume and why ("configmap \"cfg\" not found", "hostPath /x: not a directory").
  [[nodiscard]] Result<std::map<std::string, PreparedVolume>> setup(const proto::Pod& pod,
                                                                    const Sources& sources);
  // The mounts for one container: volumeMounts with subPath (created when missing, refusing
  // ".." escapes) and readOnly. Invalid when a mount names an unknown volume.
  [[nodiscard]] Result<std::vector<runtime::Mount>> container_mounts(
      const proto::Container& container, const std::map<std::string, PreparedVolume>& volumes);
  // Unmounts every tmpfs of the pod and deletes <pods-dir>/<uid>. Idempotent.
  [[nodiscard]] Status teardown(const std::string& pod_uid);
  // Pod UIDs with a directory under <pods-dir>.
  std::vector<std::string> list() const;

 private:
  std::string pods_dir_;
};

}  // namespace skiff::volumes
