// apps/v1 ControllerRevision: an immutable snapshot of a StatefulSet's or DaemonSet's template
// (`data` is the patch the controller can re-apply; `revision` orders them). Validation and
// Table in controllerrevision.cc.
#pragma once

#include <cstdint>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct ControllerRevision {
  TypeMeta type_meta;
  ObjectMeta metadata;
  json data;  // runtime.RawExtension: any JSON object
  int64_t revision = 0;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("data", data);
    v("revision", revision, kAlways);
  }
};

ResourceType controllerrevision_resource();

}  // namespace skiff::proto
