#include "controllers/scheduler/volume_binding.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "proto/codec.h"
#include "proto/quantity.h"
#include "proto/selector.h"
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

std::string volume_mode(const json& obj) {
  std::string m = str(field(field(obj, "spec"), "volumeMode"));
  return m.empty() ? "Filesystem" : m;
}

std::optional<proto::Quantity> storage_of(const json& list) {
  const json& q = field(list, "storage");
  if (!q.is_string()) return std::nullopt;
  auto parsed = proto::Quantity::parse(q.get<std::string>());
  if (!parsed.is_ok()) return std::nullopt;
  return *parsed;
}

}  // namespace

std::vector<PodInfo::StaticVolume> static_candidates(const json& pvc,
                                                     const std::vector<json>& volumes) {
  const json& spec = field(pvc, "spec");
  auto request = storage_of(field(field(spec, "resources"), "requests"));
  if (!request) return {};
  std::optional<proto::LabelSelector> selector;
  if (field(spec, "selector").is_object()) {
    auto parsed = proto::LabelSelector::from_json(field(spec, "selector"), "spec.selector");
    if (!parsed.is_ok()) return {};
    selector = *parsed;
  }
  const std::string cls = claim_class(pvc);
  std::vector<std::pair<proto::Quantity, PodInfo::StaticVolume>> found;
  for (const auto& pv : volumes) {
    const json& meta = field(pv, "metadata");
    const json& pv_spec = field(pv, "spec");
    if (!field(meta, "deletionTimestamp").is_null() || !field(pv_spec, "claimRef").is_null())
      continue;
    if (str(field(field(pv, "status"), "phase")) != "Available") continue;
    const json& ann = field(field(meta, "annotations"), proto::kAnnBetaStorageClass);
    std::string pv_cls =
        ann.is_string() ? ann.get<std::string>() : str(field(pv_spec, "storageClassName"));
    if (pv_cls != cls || volume_mode(pv) != volume_mode(pvc)) continue;
    auto size = storage_of(field(pv_spec, "capacity"));
    if (!size || *size < *request) continue;
    bool modes = true;
    for (const auto& m :
         field(spec, "accessModes").is_array() ? field(spec, "accessModes") : json::array()) {
      bool has = false;
      for (const auto& h :
           field(pv_spec, "accessModes").is_array() ? field(pv_spec, "accessModes") : json::array())
        has = has || h == m;
      modes = modes && has;
    }
    if (!modes) continue;
    if (selector && !selector->matches_json(field(meta, "labels"))) continue;
    PodInfo::StaticVolume v;
    v.name = str(field(meta, "name"));
    const json& required = field(field(pv_spec, "nodeAffinity"), "required");
    if (required.is_object()) {
      proto::FieldErrors errs;
      v.affinity = proto::decode<proto::NodeSelector>(
          required, errs, proto::DecodeOptions{.report_unknown = false});
      if (!errs.empty()) v.affinity = proto::NodeSelector{};  // matches no node
    }
    found.emplace_back(*size, std::move(v));
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<PodInfo::StaticVolume> out;
  for (auto& [size, v] : found) out.push_back(std::move(v));
  return out;
}

std::string volume_prefilter(PodInfo& pod, const VolumeLookup& lookup) {
  pod.volume_affinity.clear();
  pod.volume_pv_missing = false;
  pod.wffc_claims.clear();
  pod.wffc.clear();
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
    if (sc && str(field(*sc, "volumeBindingMode")) == "WaitForFirstConsumer") {
      pod.wffc_claims.push_back(name);
      PodInfo::DelayedClaim d;
      if (lookup.volumes) d.candidates = static_candidates(*pvc, lookup.volumes());
      d.provisionable = str(field(*sc, "provisioner")) != "kubernetes.io/no-provisioner";
      pod.wffc.push_back(std::move(d));
    } else
      unbound_immediate = true;
  }
  return unbound_immediate ? kReasonUnboundImmediate : "";
}

std::string prefilter_message(int num_nodes, const std::string& why) {
  return "0/" + std::to_string(num_nodes) + " nodes are available: " + why + ".";
}

}  // namespace skiff::scheduler
