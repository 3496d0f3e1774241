// batch/v1 CronJob. Validation and Table in cronjob.cc.
// SKELETON (lead, 2026-12-06): spec and status pass through as raw JSON until the owner of this
// file types them; names, scope and registration are final.
#pragma once

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct CronJob {
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

ResourceType cronjob_resource();

}  // namespace skiff::proto
