// core/v1 PodTemplateSpec: the pod a workload (ReplicaSet, Deployment) stamps out, with the
// defaulting and validation Kubernetes gives a template: a pod's spec defaults, and a pod's
// validation reported under the template's own path ("spec.template.spec.containers[0].image").
// Value types; functions are pure and thread-safe.
#pragma once

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/pod.h"

namespace skiff::proto {

struct PodTemplateSpec {
  ObjectMeta metadata;
  PodSpec spec;
  template <class V>
  void visit(V& v) {
    v("metadata", metadata);
    v("spec", spec);
  }
};

// The pod spec defaults of default_pod() (restartPolicy Always, dnsPolicy ClusterFirst,
// imagePullPolicy, ports' protocol, probe timings, ...), without the pod-only status ones.
void default_pod_template(PodTemplateSpec& t);

// Kubernetes' ValidatePodTemplateSpec: template labels and annotations, and the pod spec rules
// of a Pod, each error's field under `path` (e.g. "spec.template").
void validate_pod_template(const PodTemplateSpec& t, const Path& path, FieldErrors& errs);

}  // namespace skiff::proto
