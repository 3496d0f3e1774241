// core/v1 PersistentVolume, PersistentVolumeClaim and storage.k8s.io/v1 StorageClass, with
// Kubernetes' field names and omission rules. Defaulting (PV reclaim policy Retain, volumeMode
// Filesystem, phases Pending; StorageClass reclaimPolicy Delete, volumeBindingMode Immediate),
// validation (pkg/apis/core/validation ValidatePersistentVolume[Claim][Update],
// pkg/apis/storage/validation ValidateStorageClass[Update], with their paths and messages) and
// kubectl 1.32's Table columns live in storage.cc. The controllers that act on them are in
// controllers/volume, controllers/scheduler and kubelet/localpath.
// Value types; functions are pure and thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/pod.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

// Annotations and names the storage pieces share (Kubernetes' own).
inline constexpr const char* kAnnSelectedNode = "volume.kubernetes.io/selected-node";
inline constexpr const char* kAnnStorageProvisioner = "volume.kubernetes.io/storage-provisioner";
inline constexpr const char* kAnnBetaStorageProvisioner =
    "volume.beta.kubernetes.io/storage-provisioner";
inline constexpr const char* kAnnBindCompleted = "pv.kubernetes.io/bind-completed";
inline constexpr const char* kAnnBoundByController = "pv.kubernetes.io/bound-by-controller";
inline constexpr const char* kAnnProvisionedBy = "pv.kubernetes.io/provisioned-by";
inline constexpr const char* kAnnBetaStorageClass = "volume.beta.kubernetes.io/storage-class";
inline constexpr const char* kAnnDefaultClass = "storageclass.kubernetes.io/is-default-class";
inline constexpr const char* kAnnBetaDefaultClass =
    "storageclass.beta.kubernetes.io/is-default-class";
inline constexpr const char* kPvcProtectionFinalizer = "kubernetes.io/pvc-protection";
inline constexpr const char* kPvProtectionFinalizer = "kubernetes.io/pv-protection";

struct LocalVolumeSource {
  std::string path;
  std::optional<std::string> fs_type;
  template <class V>
  void visit(V& v) {
    v("path", path, kAlways);
    v("fsType", fs_type);
  }
};

// spec.nodeAffinity of a PV: only `required` exists.
struct VolumeNodeAffinity {
  std::optional<NodeSelector> required;
  template <class V>
  void visit(V& v) {
    v("required", required);
  }
};

struct PersistentVolumeSpec {
  ResourceList capacity;
  // Volume sources: exactly one. hostPath and local are typed (skiff's kubelet mounts them);
  // the others pass through so objects written for other clusters still round-trip.
  std::optional<HostPathVolumeSource> host_path;
  std::optional<LocalVolumeSource> local;
  json nfs, csi, iscsi, fc;
  std::vector<std::string> access_modes;
  std::optional<ObjectReference> claim_ref;
  std::string persistent_volume_reclaim_policy;  // Retain (default) | Delete | Recycle
  std::string storage_class_name;
  std::vector<std::string> mount_options;
  std::optional<std::string> volume_mode;  // Filesystem (default) | Block
  std::optional<VolumeNodeAffinity> node_affinity;
  std::optional<std::string> volume_attributes_class_name;
  template <class V>
  void visit(V& v) {
    v("capacity", capacity);
    v("hostPath", host_path);
    v("local", local);
    v("nfs", nfs);
    v("csi", csi);
    v("iscsi", iscsi);
    v("fc", fc);
    v("accessModes", access_modes);
    v("claimRef", claim_ref);
    v("persistentVolumeReclaimPolicy", persistent_volume_reclaim_policy);
    v("storageClassName", storage_class_name);
    v("mountOptions", mount_options);
    v("volumeMode", volume_mode);
    v("nodeAffinity", node_affinity);
    v("volumeAttributesClassName", volume_attributes_class_name);
  }
};

struct PersistentVolumeStatus {
  std::string phase;  // Pending | Available | Bound | Released | Failed
  std::string message, reason;
  std::optional<Time> last_phase_transition_time;
  template <class V>
  void visit(V& v) {
    v("phase", phase);
    v("message", message);
    v("reason", reason);
    v("lastPhaseTransitionTime", last_phase_transition_time);
  }
};

struct PersistentVolume {
  TypeMeta type_meta;
  ObjectMeta metadata;
  PersistentVolumeSpec spec;
  PersistentVolumeStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// core/v1 VolumeResourceRequirements (a PVC has no `claims`).
struct VolumeResourceRequirements {
  ResourceList limits, requests;
  template <class V>
  void visit(V& v) {
    v("limits", limits);
    v("requests", requests);
  }
};

struct PersistentVolumeClaimSpec {
  std::vector<std::string> access_modes;
  std::optional<LabelSelectorSpec> selector;
  VolumeResourceRequirements resources;
  std::string volume_name;
  std::optional<std::string> storage_class_name;  // nil = the default class (retroactively)
  std::optional<std::string> volume_mode;         // Filesystem (default) | Block
  json data_source, data_source_ref;              // passed through
  std::optional<std::string> volume_attributes_class_name;
  template <class V>
  void visit(V& v) {
    v("accessModes", access_modes);
    v("selector", selector);
    v("resources", resources);
    v("volumeName", volume_name);
    v("storageClassName", storage_class_name);
    v("volumeMode", volume_mode);
    v("dataSource", data_source);
    v("dataSourceRef", data_source_ref);
    v("volumeAttributesClassName", volume_attributes_class_name);
  }
};

struct PersistentVolumeClaimCondition {
  std::string type, status;
  Time last_probe_time, last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("lastProbeTime", last_probe_time);
    v("lastTransitionTime", last_transition_time);
    v("reason", reason);
    v("message", message);
  }
};

struct PersistentVolumeClaimStatus {
  std::string phase;  // Pending | Bound | Lost
  std::vector<std::string> access_modes;
  ResourceList capacity;
  std::vector<PersistentVolumeClaimCondition> conditions;
  ResourceList allocated_resources;
  std::map<std::string, std::string> allocated_resource_statuses;
  std::optional<std::string> current_volume_attributes_class_name;
  json modify_volume_status;
  template <class V>
  void visit(V& v) {
    v("phase", phase);
    v("accessModes", access_modes);
    v("capacity", capacity);
    v("conditions", conditions, merge_by("type"));
    v("allocatedResources", allocated_resources);
    v("allocatedResourceStatuses", allocated_resource_statuses);
    v("currentVolumeAttributesClassName", current_volume_attributes_class_name);
    v("modifyVolumeStatus", modify_volume_status);
  }
};

struct PersistentVolumeClaim {
  TypeMeta type_meta;
  ObjectMeta metadata;
  PersistentVolumeClaimSpec spec;
  PersistentVolumeClaimStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// storage.k8s.io/v1 StorageClass: no spec/status; its fields are top-level.
struct StorageClass {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::string provisioner;
  std::map<std::string, std::string> parameters;
  std::optional<std::string> reclaim_policy;       // Delete (default) | Retain
  std::optional<std::string> volume_binding_mode;  // Immediate (default) | WaitForFirstConsumer
  std::optional<bool> allow_volume_expansion;
  std::vector<std::string> mount_options;
  json allowed_topologies;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("provisioner", provisioner, kAlways);
    v("parameters", parameters);
    v("reclaimPolicy", reclaim_policy);
    v("volumeBindingMode", volume_binding_mode);
    v("allowVolumeExpansion", allow_volume_expansion);
    v("mountOptions", mount_options);
    v("allowedTopologies", allowed_topologies);
  }
};

// SetDefaults_PersistentVolume / _PersistentVolumeClaim(+Spec) / storage SetDefaults_StorageClass.
void default_persistentvolume(PersistentVolume& pv);
void default_persistentvolumeclaim(PersistentVolumeClaim& pvc);
void default_storageclass(StorageClass& sc);

// "RWO,ROX,RWX,RWOP" for the modes present, in that order (helper.GetAccessModesAsString).
std::string access_modes_string(const std::vector<std::string>& modes);
// The class a PV / PVC belongs to: the beta annotation, else spec.storageClassName
// (helper.GetPersistentVolume[Claim]Class); "" = no class.
std::string persistentvolume_class(const PersistentVolume& pv);
std::string persistentvolumeclaim_class(const PersistentVolumeClaim& pvc);
// storageclass.kubernetes.io/is-default-class (or the beta one) is "true".
bool is_default_class(const ObjectMeta& meta);

ResourceType persistentvolume_resource();
ResourceType persistentvolumeclaim_resource();
ResourceType storageclass_resource();

}  // namespace skiff::proto
