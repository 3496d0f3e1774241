#include "proto/storage.h"

#include "proto/kind_util.h"
#include "proto/resource.h"
#include "proto/selector.h"

namespace skiff::proto {

namespace {

constexpr std::initializer_list<const char*> kAccessModes = {"ReadOnlyMany", "ReadWriteMany",
                                                             "ReadWriteOnce", "ReadWriteOncePod"};
constexpr std::initializer_list<const char*> kVolumeModes = {"Block", "Filesystem"};

std::string annotation(const ObjectMeta& m, const char* key) {
  auto it = m.annotations.find(key);
  return it == m.annotations.end() ? "" : it->second;
}

}  // namespace

void default_persistentvolume(PersistentVolume& pv) {
  if (pv.status.phase.empty()) pv.status.phase = "Pending";
  if (pv.spec.persistent_volume_reclaim_policy.empty())
    pv.spec.persistent_volume_reclaim_policy = "Retain";
  if (!pv.spec.volume_mode) pv.spec.volume_mode = "Filesystem";
  // SetDefaults_HostPathVolumeSource: an unset type is HostPathUnset ("").
  if (pv.spec.host_path && !pv.spec.host_path->type) pv.spec.host_path->type = "";
}

void default_persistentvolumeclaim(PersistentVolumeClaim& pvc) {
  if (pvc.status.phase.empty()) pvc.status.phase = "Pending";
  if (!pvc.spec.volume_mode) pvc.spec.volume_mode = "Filesystem";
}

void default_storageclass(StorageClass& sc) {
  if (!sc.reclaim_policy) sc.reclaim_policy = "Delete";
  if (!sc.volume_binding_mode) sc.volume_binding_mode = "Immediate";
}

std::string access_modes_string(const std::vector<std::string>& modes) {
  auto has = [&](const char* m) {
    for (const auto& x : modes)
      if (x == m) return true;
    return false;
  };
  std::string out;
  const std::pair<const char*, const char*> order[] = {{"ReadWriteOnce", "RWO"},
                                                       {"ReadOnlyMany", "ROX"},
                                                       {"ReadWriteMany", "RWX"},
                                                       {"ReadWriteOncePod", "RWOP"}};
  for (const auto& [mode, abbrev] : order)
    if (has(mode)) out += (out.empty() ? "" : ",") + std::string(abbrev);
  return out;
}

std::string persistentvolume_class(const PersistentVolume& pv) {
  if (pv.metadata.annotations.count(kAnnBetaStorageClass))
    return annotation(pv.metadata, kAnnBetaStorageClass);
  return pv.spec.storage_class_name;
}

std::string persistentvolumeclaim_class(const PersistentVolumeClaim& pvc) {
  if (pvc.metadata.annotations.count(kAnnBetaStorageClass))
    return annotation(pvc.metadata, kAnnBetaStorageClass);
  return pvc.spec.storage_class_name.value_or("");
}

bool is_default_class(const ObjectMeta& meta) {
  return annotation(meta, kAnnDefaultClass) == "true" ||
         annotation(meta, kAnnBetaDefaultClass) == "true";
}

namespace {

// Access modes of a PV or PVC spec: supported values, ReadWriteOncePod alone.
void validate_access_modes(const std::vector<std::string>& modes, const Path& p,
                           FieldErrors& errs) {
  bool rwop = false, other = false;
  for (const auto& m : modes) {
    not_supported(errs, p, m, kAccessModes);
    if (m == "ReadWriteOncePod")
      rwop = true;
    else if (m == "ReadWriteOnce" || m == "ReadOnlyMany" || m == "ReadWriteMany")
      other = true;
  }
  if (rwop && other)
    errs.push_back({ErrorType::kForbidden, p.str(),
                    "may not use ReadWriteOncePod with other access modes", ""});
}

void validate_class_name(const std::string& name, const Path& p, FieldErrors& errs) {
  if (!name.empty()) add_errors(errs, p, name, is_dns1123_subdomain(name));
}

void validate_positive(const Quantity& q, const Path& p, FieldErrors& errs) {
  if (q <= Quantity{})
    errs.push_back(
        {ErrorType::kInvalid, p.str(), "must be greater than zero", quote_value(q.to_string())});
}

// validatePathNoBacksteps: no ".." element.
void validate_no_backsteps(const std::string& path, const Path& p, FieldErrors& errs) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0) {
      errs.push_back({ErrorType::kInvalid, p.str(), "must not contain '..'", quote_value(path)});
      return;
    }
    start = end + 1;
  }
}

void validate_node_selector(const NodeSelector& ns, const Path& p, FieldErrors& errs) {
  if (ns.node_selector_terms.empty()) {
    errs.push_back({ErrorType::kRequired, p.field("nodeSelectorTerms").str(),
                    "must have at least one node selector term", ""});
    return;
  }
  for (size_t i = 0; i < ns.node_selector_terms.size(); ++i) {
    const auto& term = ns.node_selector_terms[i];
    for (size_t j = 0; j < term.match_expressions.size(); ++j) {
      const auto& r = term.match_expressions[j];
      Path rp = p.field("nodeSelectorTerms").index(i).field("matchExpressions").index(j);
      add_errors(errs, rp.field("key"), r.key, is_qualified_name(r.key));
      if (r.op == "In" || r.op == "NotIn") {
        if (r.values.empty())
          errs.push_back({ErrorType::kRequired, rp.field("values").str(),
                          "must be specified when `operator` is 'In' or 'NotIn'", ""});
      } else if (r.op == "Exists" || r.op == "DoesNotExist") {
        if (!r.values.empty())
          errs.push_back({ErrorType::kForbidden, rp.field("values").str(),
                          "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                          ""});
      } else if (r.op == "Gt" || r.op == "Lt") {
        if (r.values.size() != 1)
          errs.push_back({ErrorType::kRequired, rp.field("values").str(),
                          "must be specified single value when `operator` is 'Lt' or 'Gt'", ""});
      } else {
        not_supported(errs, rp.field("operator"), r.op,
                      {"DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"});
      }
    }
  }
}

json sources_of(const PersistentVolumeSpec& s) {
  json j = encode(s);
  json out = json::object();
  for (const char* k : {"hostPath", "local", "nfs", "csi", "iscsi", "fc"})
    if (j.contains(k)) out[k] = j[k];
  return out;
}

// ValidatePersistentVolumeSpec (not inline) and ValidatePersistentVolumeStatus's phase.
void validate_persistentvolume_spec(const PersistentVolume& pv, FieldErrors& errs) {
  const Path spec("spec");
  const PersistentVolumeSpec& s = pv.spec;
  if (s.access_modes.empty())
    errs.push_back({ErrorType::kRequired, spec.field("accessModes").str(), "", ""});
  validate_access_modes(s.access_modes, spec.field("accessModes"), errs);

  const Path cap = spec.field("capacity");
  if (s.capacity.empty()) errs.push_back({ErrorType::kRequired, cap.str(), "", ""});
  if (!s.capacity.count("storage") || s.capacity.size() > 1) {
    std::string have;
    for (const auto& [k, q] : s.capacity)
      have += (have.empty() ? "" : " ") + k + ":" + q.to_string();
    errs.push_back({ErrorType::kNotSupported, cap.str(), "supported values: \"storage\"",
                    "map[" + have + "]"});
  }
  for (const auto& [k, q] : s.capacity) validate_positive(q, cap.key(k), errs);

  if (!s.persistent_volume_reclaim_policy.empty())
    not_supported(errs, spec.field("persistentVolumeReclaimPolicy"),
                  s.persistent_volume_reclaim_policy, {"Delete", "Recycle", "Retain"});
  validate_class_name(s.storage_class_name, spec.field("storageClassName"), errs);
  if (s.volume_mode) not_supported(errs, spec.field("volumeMode"), *s.volume_mode, kVolumeModes);

  if (s.node_affinity) {
    const Path na = spec.field("nodeAffinity");
    if (!s.node_affinity->required)
      errs.push_back({ErrorType::kRequired, na.field("required").str(),
                      "must specify required node constraints", ""});
    else
      validate_node_selector(*s.node_affinity->required, na.field("required"), errs);
  }

  // Exactly one source; Kubernetes reports each extra one as Forbidden in its field order.
  int seen = 0;
  auto source = [&](bool present, const char* name) {
    if (!present) return false;
    if (seen++ > 0) {
      errs.push_back({ErrorType::kForbidden, spec.field(name).str(),
                      "may not specify more than 1 volume type", ""});
      return false;
    }
    return true;
  };
  if (source(s.host_path.has_value(), "hostPath")) {
    const Path hp = spec.field("hostPath");
    if (s.host_path->path.empty())
      errs.push_back({ErrorType::kRequired, hp.field("path").str(), "", ""});
    else
      validate_no_backsteps(s.host_path->path, hp.field("path"), errs);
    if (s.host_path->type)
      not_supported(errs, hp.field("type"), *s.host_path->type,
                    {"", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                     "FileOrCreate", "Socket"});
  }
  if (source(!s.nfs.is_null(), "nfs")) {
  }
  if (source(!s.iscsi.is_null(), "iscsi")) {
  }
  if (source(!s.fc.is_null(), "fc")) {
  }
  if (source(s.local.has_value(), "local")) {
    const Path lp = spec.field("local");
    if (s.local->path.empty())
      errs.push_back({ErrorType::kRequired, lp.field("path").str(), "", ""});
    else
      validate_no_backsteps(s.local->path, lp.field("path"), errs);
    if (!s.node_affinity || !s.node_affinity->required)
      errs.push_back({ErrorType::kRequired, spec.field("nodeAffinity").str(),
                      "Local volume requires node affinity", ""});
  }
  if (source(!s.csi.is_null(), "csi")) {
  }
  if (seen == 0)
    errs.push_back({ErrorType::kRequired, spec.str(), "must specify a volume type", ""});
  if (s.host_path && s.host_path->path == "/" && s.persistent_volume_reclaim_policy == "Recycle")
    errs.push_back({ErrorType::kForbidden, spec.field("persistentVolumeReclaimPolicy").str(),
                    "may not be 'recycle' for a hostPath mount of '/'", ""});

  if (!pv.status.phase.empty())
    not_supported(errs, Path("status").field("phase"), pv.status.phase,
                  {"Available", "Bound", "Failed", "Pending", "Released"});
}

// ValidatePersistentVolume and, on update, ValidatePersistentVolumeUpdate.
void validate_persistentvolume(const PersistentVolume& pv, const PersistentVolume* old,
                               FieldErrors& errs) {
  validate_persistentvolume_spec(pv, errs);
  if (!old) return;
  PersistentVolume stored = *old;  // read with its defaults, as Kubernetes reads etcd
  default_persistentvolume(stored);
  old = &stored;
  if (sources_of(pv.spec) != sources_of(old->spec))
    errs.push_back({ErrorType::kForbidden, "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation", ""});
  // Kubernetes reports these two at the root ("volumeMode", "nodeAffinity"), not under spec.
  if (pv.spec.volume_mode != old->spec.volume_mode)
    errs.push_back({ErrorType::kInvalid, "volumeMode", "field is immutable",
                    quote_value(pv.spec.volume_mode.value_or(""))});
  if (old->spec.node_affinity && encode(pv.spec.node_affinity.value_or(VolumeNodeAffinity{})) !=
                                     encode(*old->spec.node_affinity))
    errs.push_back({ErrorType::kInvalid, "nodeAffinity", "field is immutable", ""});
}

// ValidatePersistentVolumeClaim(Spec) and, on update, ValidatePersistentVolumeClaimUpdate.
void validate_persistentvolumeclaim(const PersistentVolumeClaim& pvc,
                                    const PersistentVolumeClaim* old, FieldErrors& errs) {
  const Path spec("spec");
  const PersistentVolumeClaimSpec& s = pvc.spec;
  if (s.access_modes.empty())
    errs.push_back({ErrorType::kRequired, spec.field("accessModes").str(),
                    "at least 1 access mode is required", ""});
  if (s.selector) LabelSelector::validate_json(encode(*s.selector), spec.field("selector"), errs);
  validate_access_modes(s.access_modes, spec.field("accessModes"), errs);
  const Path storage = spec.field("resources").key("storage");
  auto req = s.resources.requests.find("storage");
  if (req == s.resources.requests.end())
    errs.push_back({ErrorType::kRequired, storage.str(), "", ""});
  else
    validate_positive(req->second, storage, errs);
  if (s.storage_class_name)
    validate_class_name(*s.storage_class_name, spec.field("storageClassName"), errs);
  if (s.volume_mode) not_supported(errs, spec.field("volumeMode"), *s.volume_mode, kVolumeModes);
  if (!pvc.status.phase.empty())
    not_supported(errs, Path("status").field("phase"), pvc.status.phase,
                  {"Bound", "Lost", "Pending"});
  if (!old) return;
  // Kubernetes reads stored objects with their defaults applied; objects stored before a
  // default existed must not look changed.
  PersistentVolumeClaim stored = *old;
  default_persistentvolumeclaim(stored);
  old = &stored;

  // The spec is immutable except: volumeName may be set once (by the binder), a nil
  // storageClassName may be set (retroactive default class), and the storage request of a
  // bound claim may grow.
  PersistentVolumeClaimSpec before = old->spec, after = s;
  if (before.volume_name.empty()) before.volume_name = after.volume_name;
  if (!before.storage_class_name && !old->metadata.annotations.count(kAnnBetaStorageClass) &&
      after.storage_class_name && !after.storage_class_name->empty())
    before.storage_class_name = after.storage_class_name;
  if (pvc.status.phase == "Bound") {
    auto it = before.resources.requests.find("storage");
    if (it != before.resources.requests.end())
      after.resources.requests["storage"] = it->second;
    else
      after.resources.requests.erase("storage");
  }
  if (encode(before) != encode(after))
    errs.push_back({ErrorType::kForbidden, "spec",
                    "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                    ""});
  auto old_req = old->spec.resources.requests.find("storage");
  if (req != s.resources.requests.end() && old_req != old->spec.resources.requests.end() &&
      req->second < old_req->second)
    errs.push_back({ErrorType::kForbidden, "spec.resources.requests.storage",
                    "field can not be less than previous value", ""});
  if (annotation(pvc.metadata, kAnnBetaStorageClass) !=
      annotation(old->metadata, kAnnBetaStorageClass))
    errs.push_back(
        {ErrorType::kInvalid, std::string("metadata.annotations[") + kAnnBetaStorageClass + "]",
         "field is immutable", quote_value(annotation(pvc.metadata, kAnnBetaStorageClass))});
}

// pkg/apis/storage/validation ValidateStorageClass and ValidateStorageClassUpdate.
void validate_storageclass(const StorageClass& sc, const StorageClass* old, FieldErrors& errs) {
  if (sc.provisioner.empty()) {
    errs.push_back({ErrorType::kRequired, "provisioner", "", ""});
  } else {
    std::string lower = sc.provisioner;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    add_errors(errs, Path("provisioner"), lower, is_qualified_name(lower));
  }
  if (sc.parameters.size() > 512)
    errs.push_back(
        {ErrorType::kTooLong, "parameters", "Provisioner Parameters exceeded max size", ""});
  size_t total = 0;
  for (const auto& [k, v] : sc.parameters) {
    if (k.empty())
      errs.push_back({ErrorType::kInvalid, "parameters", "field can not be empty.", ""});
    total += k.size() + v.size();
  }
  if (total > 256 * 1024)
    errs.push_back(
        {ErrorType::kTooLong, "parameters", "Provisioner Parameters exceeded max size", ""});
  if (sc.reclaim_policy && !sc.reclaim_policy->empty())
    not_supported(errs, Path("reclaimPolicy"), *sc.reclaim_policy, {"Delete", "Retain"});
  if (!sc.volume_binding_mode)
    errs.push_back({ErrorType::kRequired, "volumeBindingMode", "", ""});
  else
    not_supported(errs, Path("volumeBindingMode"), *sc.volume_binding_mode,
                  {"Immediate", "WaitForFirstConsumer"});
  if (!old) return;
  StorageClass stored = *old;  // read with its defaults, as Kubernetes reads etcd
  default_storageclass(stored);
  old = &stored;
  if (sc.parameters != old->parameters)
    errs.push_back(
        {ErrorType::kForbidden, "parameters", "updates to parameters are forbidden.", ""});
  if (sc.provisioner != old->provisioner)
    errs.push_back(
        {ErrorType::kForbidden, "provisioner", "updates to provisioner are forbidden.", ""});
  if (sc.reclaim_policy.value_or("") != old->reclaim_policy.value_or(""))
    errs.push_back(
        {ErrorType::kForbidden, "reclaimPolicy", "updates to reclaimPolicy are forbidden.", ""});
  immutable(errs, Path("volumeBindingMode"), sc.volume_binding_mode.value_or(""),
            old->volume_binding_mode.value_or(""));
}

std::string age(const ObjectMeta& m, Clock::time_point now) {
  return since(m.creation_timestamp.value_or(Time{}).value, now);
}

std::string storage_of(const ResourceList& l) {
  auto it = l.find("storage");
  return it == l.end() ? "0" : it->second.to_string();
}

// kubectl's printPersistentVolume.
json persistentvolume_row(const PersistentVolume& o, Clock::time_point now) {
  std::string claim;
  if (o.spec.claim_ref) claim = o.spec.claim_ref->namespace_ + "/" + o.spec.claim_ref->name;
  std::string phase = o.metadata.deletion_timestamp ? "Terminating" : o.status.phase;
  return json::array(
      {o.metadata.name, storage_of(o.spec.capacity), access_modes_string(o.spec.access_modes),
       o.spec.persistent_volume_reclaim_policy, phase, claim, persistentvolume_class(o),
       o.spec.volume_attributes_class_name.value_or("<unset>"), o.status.reason,
       age(o.metadata, now), o.spec.volume_mode.value_or("<unset>")});
}

// kubectl's printPersistentVolumeClaim: capacity and modes only once a volume is named.
json persistentvolumeclaim_row(const PersistentVolumeClaim& o, Clock::time_point now) {
  std::string phase = o.metadata.deletion_timestamp ? "Terminating" : o.status.phase;
  std::string capacity, modes;
  if (!o.spec.volume_name.empty()) {
    modes = access_modes_string(o.status.access_modes);
    capacity = storage_of(o.status.capacity);
  }
  return json::array({o.metadata.name, phase, o.spec.volume_name, capacity, modes,
                      persistentvolumeclaim_class(o),
                      o.spec.volume_attributes_class_name.value_or("<unset>"), age(o.metadata, now),
                      o.spec.volume_mode.value_or("<unset>")});
}

// kubectl's printStorageClass.
json storageclass_row(const StorageClass& o, Clock::time_point now) {
  std::string name = o.metadata.name;
  if (is_default_class(o.metadata)) name += " (default)";
  return json::array({name, o.provisioner, o.reclaim_policy.value_or("Delete"),
                      o.volume_binding_mode.value_or("Immediate"),
                      o.allow_volume_expansion.value_or(false), age(o.metadata, now)});
}

}  // namespace

ResourceType persistentvolume_resource() {
  KindSpec<PersistentVolume> k;
  k.type.group = "";
  k.type.version = "v1";
  k.type.kind = "PersistentVolume";
  k.type.list_kind = "PersistentVolumeList";
  k.type.plural = "persistentvolumes";
  k.type.singular = "persistentvolume";
  k.type.namespaced = false;
  k.type.short_names = {"pv"};
  k.type.categories = {};
  k.type.subresources = {"status"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Capacity", "string",
             "capacity is the description of the persistent volume's resources and capacity. "
             "More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"),
      column("Access Modes", "string",
             "accessModes contains all ways the volume can be mounted. More info: "
             "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"),
      column("Reclaim Policy", "string",
             "persistentVolumeReclaimPolicy defines what happens to a persistent volume when "
             "released from its claim. Valid options are Retain (default for manually created "
             "PersistentVolumes), Delete (default for dynamically provisioned "
             "PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the "
             "volume plugin underlying this PersistentVolume. More info: "
             "https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"),
      column("Status", "string",
             "phase indicates if a volume is available, bound to a claim, or released by a "
             "claim. More info: "
             "https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"),
      column("Claim", "string",
             "claimRef is part of a bi-directional binding between PersistentVolume and "
             "PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the "
             "authoritative bind between PV and PVC. More info: "
             "https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"),
      column("StorageClass", "string", "StorageClass of the pv"),
      column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
      column("Reason", "string",
             "reason is a brief CamelCase string that describes any failure and is meant for "
             "machine parsing and tidy display in the CLI."),
      age_column(),
      column("VolumeMode", "string",
             "volumeMode defines if a volume is intended to be used with a formatted filesystem "
             "or to remain in raw block state. Value of Filesystem is implied when not included "
             "in spec.",
             1),
  };
  k.defaults = default_persistentvolume;
  k.validate = validate_persistentvolume;
  k.row = persistentvolume_row;
  return make_resource(std::move(k));
}

ResourceType persistentvolumeclaim_resource() {
  KindSpec<PersistentVolumeClaim> k;
  k.type.group = "";
  k.type.version = "v1";
  k.type.kind = "PersistentVolumeClaim";
  k.type.list_kind = "PersistentVolumeClaimList";
  k.type.plural = "persistentvolumeclaims";
  k.type.singular = "persistentvolumeclaim";
  k.type.namespaced = true;
  k.type.short_names = {"pvc"};
  k.type.categories = {};
  k.type.subresources = {"status"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
      column("Volume", "string",
             "volumeName is the binding reference to the PersistentVolume backing this claim."),
      column("Capacity", "string",
             "capacity represents the actual resources of the underlying volume."),
      column("Access Modes", "string",
             "accessModes contains the actual access modes the volume backing the PVC has. "
             "More info: "
             "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
      column("StorageClass", "string", "StorageClass of the pvc"),
      column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
      age_column(),
      column("VolumeMode", "string",
             "volumeMode defines what type of volume is required by the claim. Value of "
             "Filesystem is implied when not included in claim spec.",
             1),
  };
  k.defaults = default_persistentvolumeclaim;
  k.validate = validate_persistentvolumeclaim;
  k.row = persistentvolumeclaim_row;
  return make_resource(std::move(k));
}

ResourceType storageclass_resource() {
  KindSpec<StorageClass> k;
  k.type.group = "storage.k8s.io";
  k.type.version = "v1";
  k.type.kind = "StorageClass";
  k.type.list_kind = "StorageClassList";
  k.type.plural = "storageclasses";
  k.type.singular = "storageclass";
  k.type.has_spec = false;
  k.type.namespaced = false;
  k.type.short_names = {"sc"};
  k.type.categories = {};
  k.type.subresources = {};
  k.type.columns = {
      name_column(),
      column("Provisioner", "string", "provisioner indicates the type of the provisioner."),
      column("ReclaimPolicy", "string",
             "reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
             "PersistentVolumes of this storage class. Defaults to Delete."),
      column("VolumeBindingMode", "string",
             "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and "
             "bound.  When unset, VolumeBindingImmediate is used. This field is only honored by "
             "servers that enable the VolumeScheduling feature."),
      column("AllowVolumeExpansion", "string",
             "allowVolumeExpansion shows whether the storage class allow volume expand."),
      age_column(),
  };
  k.defaults = default_storageclass;
  k.validate = validate_storageclass;
  k.row = storageclass_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
