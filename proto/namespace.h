// core/v1 Namespace (cluster-scoped). Defaulting, validation and Table in namespace.cc.
#pragma once

#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct NamespaceSpec {
  std::vector<std::string> finalizers;
  template <class V>
  void visit(V& v) {
    v("finalizers", finalizers);
  }
};

using NamespaceCondition = WorkloadCondition;  // meta.h: the same fields

struct NamespaceStatus {
  std::string phase;  // Active, Terminating
  std::vector<NamespaceCondition> conditions;
  template <class V>
  void visit(V& v) {
    v("phase", phase);
    v("conditions", conditions, merge_by("type"));
  }
};

struct Namespace {
  TypeMeta type_meta;
  ObjectMeta metadata;
  NamespaceSpec spec;
  NamespaceStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

ResourceType namespace_resource();

}  // namespace skiff::proto
