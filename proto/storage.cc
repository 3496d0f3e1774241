#include "proto/storage.h"

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

json persistentvolume_row(const PersistentVolume& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

json persistentvolumeclaim_row(const PersistentVolumeClaim& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
}

json storageclass_row(const StorageClass& o, Clock::time_point now) {
  return json::array(
      {o.metadata.name, since(o.metadata.creation_timestamp.value_or(Time{}).value, now)});
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
  k.type.columns = {name_column(), age_column()};
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
  k.type.columns = {name_column(), age_column()};
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
  k.type.columns = {name_column(), age_column()};
  k.row = storageclass_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
