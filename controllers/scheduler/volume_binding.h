// kube-scheduler's VolumeBinding plugin, the parts skiff needs for local-path volumes:
//
//   PreFilter (volume_prefilter): each persistentVolumeClaim volume of the pod must name an
//   existing claim that is not being deleted (else the pod is unschedulable on every node:
//   `persistentvolumeclaim "X" not found` / `... is being deleted`). A bound claim
//   (spec.volumeName set) contributes its PV's required node affinity (checked per node by
//   filter_volume_binding in filters.h; a missing PV fails every node). An unbound claim whose
//   class is WaitForFirstConsumer may go anywhere and is remembered for PreBind; an unbound
//   claim of any other class (no class, or a class that does not exist) makes the pod unschedulable
//   (`pod has unbound immediate PersistentVolumeClaims`) until the PV controller binds it.
//   PreBind (scheduler.cc): `volume.kubernetes.io/selected-node: <node>` is set on every
//   remembered claim before the pod is bound; the scheduler does not wait for the volume.
//
// Pure functions over lookups into the scheduler's informer caches. Thread-safe.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "controllers/scheduler/framework.h"

namespace skiff::scheduler {

inline constexpr const char* kReasonUnboundImmediate =
    "pod has unbound immediate PersistentVolumeClaims";

// Cache reads: claim by "ns/name", volume and StorageClass by name. nullopt = absent.
struct VolumeLookup {
  std::function<std::optional<json>(const std::string&)> claim, volume, storage_class;
};

// Fills pod.volume_affinity, pod.volume_pv_missing and pod.wffc_claims. Returns "" when the
// pod may be filtered node by node, else the PreFilter's reason (the pod fits nowhere).
std::string volume_prefilter(PodInfo& pod, const VolumeLookup& lookup);

// kube-scheduler's FitError text for a PreFilter failure: "0/3 nodes are available: <why>."
std::string prefilter_message(int num_nodes, const std::string& why);

}  // namespace skiff::scheduler
