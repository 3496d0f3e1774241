// Validation and printing shared by the workload kinds (replicaset.cc, deployment.cc).
// Private to proto/: not part of any contract.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "proto/codec.h"
#include "proto/intstr.h"
#include "proto/meta.h"
#include "proto/pod_template.h"

namespace skiff::proto {

// Go's %#v of a map[string]string, as Kubernetes prints a bad value:
// map[string]string{"app":"web"} (keys sorted; "map[string]string(nil)" when empty).
std::string go_string_map(const std::map<std::string, std::string>& m);
// Go's %#v of a v1.LabelSelector, as in Kubernetes' "field is immutable" message.
std::string go_label_selector(const LabelSelectorSpec& s);

// spec.selector of a ReplicaSet or Deployment: required, a valid label selector, not empty.
void validate_workload_selector(const std::optional<LabelSelectorSpec>& sel, const Path& path,
                                FieldErrors& errs);
// Kubernetes' ValidatePodTemplateSpecForReplicaSet: the selector matches the template labels,
// the template is a valid pod template, restartPolicy is Always, no activeDeadlineSeconds.
// `spec` is the path of the workload's spec ("spec"); errors go under spec.template.
void validate_template_for_replicas(const PodTemplateSpec& t,
                                    const std::optional<LabelSelectorSpec>& sel, const Path& spec,
                                    FieldErrors& errs);
// apps/v1 forbids changing spec.selector after creation.
void validate_selector_immutable(const std::optional<LabelSelectorSpec>& now,
                                 const std::optional<LabelSelectorSpec>& before, const Path& path,
                                 FieldErrors& errs);
// Status counters of a ReplicaSet or Deployment: `status.<field>` (value `v`) may not exceed
// `limit`; `why` is Kubernetes' message ("cannot be greater than status.replicas").
void validate_status_at_most(const Path& status, const char* field, int32_t v, int32_t limit,
                             const char* why, FieldErrors& errs);
// Go's %#v of an intstr.IntOrString, as Kubernetes prints it in these messages.
std::string go_int_or_string(const IntOrString& v);
// "25%" -> 25; nullopt when `v` is not a percentage string (validation's getPercentValue).
std::optional<int> percent_value(const IntOrString& v);
// getIntOrPercentValue: a percentage's number, an int's value, and (Go's IntValue of a
// non-numeric string) 0 otherwise.
int int_or_percent_value(const IntOrString& v);
// ValidatePositiveIntOrPercent: a non-negative int or a "[0-9]+%" string.
void validate_positive_int_or_percent(const IntOrString& v, const Path& p, FieldErrors& errs);
// IsNotMoreThan100Percent: "must not be greater than 100%" for a percentage above 100.
void not_more_than_100_percent(const IntOrString& v, const Path& p, FieldErrors& errs);

// The Containers and Images cells of kubectl's wide workload rows ("a,b", "nginx,busybox").
std::string container_names(const PodTemplateSpec& t);
std::string container_images(const PodTemplateSpec& t);

}  // namespace skiff::proto
