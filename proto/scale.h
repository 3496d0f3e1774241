// autoscaling/v1 Scale: the view of a workload's replica count that the `scale` subresource of
// deployments and replicasets serves (`kubectl scale`, HPA). The API server converts between a
// parent object (JSON) and its Scale with the functions here. Value types; pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ScaleSpec {
  int32_t replicas = 0;
  template <class V>
  void visit(V& v) {
    v("replicas", replicas);
  }
};

struct ScaleStatus {
  int32_t replicas = 0;  // always written
  std::string selector;  // the label selector in string form, "app=web"
  template <class V>
  void visit(V& v) {
    v("replicas", replicas, kAlways);
    v("selector", selector);
  }
};

struct Scale {
  TypeMeta type_meta{"autoscaling/v1", "Scale"};
  ObjectMeta metadata;
  ScaleSpec spec;
  ScaleStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// The Scale of a Deployment or ReplicaSet (JSON, as stored): the parent's name, namespace, uid,
// resourceVersion and creationTimestamp; spec.replicas; status.replicas; status.selector from
// spec.selector.
Scale scale_of(const json& parent);

// Kubernetes' ValidateScale: spec.replicas >= 0 (metadata is the parent's, checked there).
FieldErrors validate_scale(const Scale& s);

}  // namespace skiff::proto
