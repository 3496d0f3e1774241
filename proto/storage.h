// core/v1 PersistentVolume, PersistentVolumeClaim and storage.k8s.io/v1 StorageClass. Validation
// and Tables in storage.cc. SKELETON (lead, 2026-12-06): spec and status pass through as raw JSON
// until the owner of this file types them; names, scope and registration are final.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct PersistentVolume {
  TypeMeta type_meta;
  ObjectMeta metadata;
  json spec, status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

ResourceType persistentvolume_resource();

struct PersistentVolumeClaim {
  TypeMeta type_meta;
  ObjectMeta metadata;
  json spec, status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

ResourceType persistentvolumeclaim_resource();

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

ResourceType storageclass_resource();

}  // namespace skiff::proto
