#include "proto/pod_template.h"

#include "proto/registry.h"
#include "proto/validation.h"

namespace skiff::proto {

ResourceType pod_resource();  // pod.cc

void default_pod_template(PodTemplateSpec& t) {
  Pod pod;
  pod.spec = std::move(t.spec);
  default_pod(pod);  // also sets pod-only status fields, which a template does not have
  t.spec = std::move(pod.spec);
}

void validate_pod_template(const PodTemplateSpec& t, const Path& path, FieldErrors& errs) {
  // Kubernetes validates template labels and annotations at "<path>.labels" (not
  // "<path>.metadata.labels"); its ValidatePodTemplateSpec does so.
  validate_labels(t.metadata.labels, path.field("labels"), errs);
  validate_annotations(t.metadata.annotations, path.field("annotations"), errs);

  // The pod rules are the Pod kind's own: run them on a pod with this spec and a placeholder
  // name, keep what they say about spec.*, and re-root those paths under the template.
  static const ResourceType* pods = new ResourceType(pod_resource());
  Pod pod;
  pod.type_meta = {"v1", "Pod"};
  pod.metadata.name = "template";
  pod.metadata.namespace_ = "default";
  pod.spec = t.spec;
  const std::string base = path.field("spec").str();
  for (FieldError& e : pods->validate(encode(pod), nullptr)) {
    if (e.field == "spec")
      e.field = base;
    else if (e.field.starts_with("spec.") || e.field.starts_with("spec["))
      e.field = base + e.field.substr(4);
    else
      continue;  // metadata of the placeholder pod
    errs.push_back(std::move(e));
  }
}

}  // namespace skiff::proto
