#include "controllers/scheduler/volume_binding.h"

#include <nlohmann/json.hpp>

#include "proto/codec.h"
#include "proto/storage.h"

namespace skiff::scheduler {

namespace {

const json& field(const json& o, const char* a) {
  static const json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(a);
  return it == o.end() ? kNull : *it;
}
std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : ""; }

// The claim's class: the beta annotation wins over spec.storageClassName (Kubernetes).
std::string claim_class(const json& pvc) {
  const json& ann =
      field(field(field(pvc, "metadata"), "annotations"), proto::kAnnBetaStorageClass);
  if (ann.is_string()) return ann.get<std::string>();
  return str(field(field(pvc, "spec"), "storageClassName"));
}

}  // namespace

std::string volume_prefilter(PodInfo& pod, const VolumeLookup& lookup) {
  pod.volume_affinity.clear();
  pod.volume_pv_missing = false;
  pod.wffc_claims.clear();
  bool unbound_immediate = false;
  for (const auto& name : pod.claims) {
    auto pvc = lookup.claim(pod.ns + "/" + name);
    if (!pvc) return "persistentvolumeclaim \"" + name + "\" not found";
    if (!field(field(*pvc, "metadata"), "deletionTimestamp").is_null())
      return "persistentvolumeclaim \"" + name + "\" is being deleted";
    std::string volume = str(field(field(*pvc, "spec"), "volumeName"));
    if (!volume.empty()) {
      auto pv = lookup.volume(volume);
      if (!pv) {
        pod.volume_pv_missing = true;
        continue;
      }
      const json& required = field(field(field(*pv, "spec"), "nodeAffinity"), "required");
      if (required.is_object()) {
        proto::FieldErrors errs;
        auto sel = proto::decode<proto::NodeSelector>(
            required, errs, proto::DecodeOptions{.report_unknown = false});
        // A selector that does not decode matches no node, as an empty one.
        if (!errs.empty()) sel = proto::NodeSelector{};
        pod.volume_affinity.push_back(std::move(sel));
      }
      continue;
    }
    std::string cls = claim_class(*pvc);
    // A class that does not exist counts as Immediate (IsDelayBindingMode).
    std::optional<json> sc;
    if (!cls.empty()) sc = lookup.storage_class(cls);
    if (sc && str(field(*sc, "volumeBindingMode")) == "WaitForFirstConsumer")
      pod.wffc_claims.push_back(name);
    else
      unbound_immediate = true;
  }
  return unbound_immediate ? kReasonUnboundImmediate : "";
}

std::string prefilter_message(int num_nodes, const std::string& why) {
  return "0/" + std::to_string(num_nodes) + " nodes are available: " + why + ".";
}

}  // namespace skiff::scheduler
