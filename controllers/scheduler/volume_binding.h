// kube-scheduler's VolumeBinding plugin, the parts skiff needs for local-path volumes:
//
//   PreFilter (volume_prefilter): each persistentVolumeClaim volume of the pod must name an
//   existing claim that is not being deleted (else the pod is unschedulable on every node:
//   `persistentvolumeclaim "X" not found` / `... is being deleted`). A bound claim
//   (spec.volumeName set) contributes its PV's required node affinity (checked per node by
//   filter_volume_binding in filters.h; a missing PV fails every node). An unbound claim whose
//   class is WaitForFirstConsumer is remembered for PreBind with the Available PVs that fit it:
//   it may go on any node when its class provisions, else only where one of those PVs may be
//   used (`node(s) didn't find available persistent volumes to bind`); an unbound
//   claim of any other class (no class, or a class that does not exist) makes the pod unschedulable
//   (`pod has unbound immediate PersistentVolumeClaims`) until the PV controller binds it.
//   PreBind (scheduler.cc): a remembered claim with a fitting PV usable on the chosen node gets
//   it (the PV's claimRef set, + pv.kubernetes.io/bound-by-controller; the PV controller
//   completes the bind), the others `volume.kubernetes.io/selected-node: <node>`; then the pod
//   is bound. The scheduler does not wait for the volumes.
//
// Pure functions over lookups into the scheduler's informer caches. Thread-safe.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controllers/scheduler/framework.h"

namespace skiff::scheduler {

inline constexpr const char* kReasonUnboundImmediate =
    "pod has unbound immediate PersistentVolumeClaims";

// Cache reads: claim by "ns/name", volume and StorageClass by name. nullopt = absent.
struct VolumeLookup {
  std::function<std::optional<json>(const std::string&)> claim, volume, storage_class;
  std::function<std::vector<json>()> volumes;  // every PV (static candidates); may be empty
};

// The Available PVs an unbound claim could be bound to (kube-scheduler's FindMatchingVolume
// without the node): not being deleted, no claimRef, same class and volumeMode, every requested
// access mode, the claim's selector, capacity >= request; smallest first.
std::vector<PodInfo::StaticVolume> static_candidates(const json& pvc,
                                                     const std::vector<json>& volumes);

// Fills pod.volume_affinity, pod.volume_pv_missing and pod.wffc_claims. Returns "" when the
// pod may be filtered node by node, else the PreFilter's reason (the pod fits nowhere).
std::string volume_prefilter(PodInfo& pod, const VolumeLookup& lookup);

// kube-scheduler's FitError text for a PreFilter failure: "0/3 nodes are available: <why>."
std::string prefilter_message(int num_nodes, const std::string& why);

}  // namespace skiff::scheduler
