// apps/v1 StatefulSet. Validation and Table in statefulset.cc.
// SKELETON (lead, 2026-12-06): spec and status pass through as raw JSON until the owner of this
// file types them; names, scope and registration are final.
#pragma once

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct StatefulSet {
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

ResourceType statefulset_resource();

}  // namespace skiff::proto
