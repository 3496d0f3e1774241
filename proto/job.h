// batch/v1 Job: runs pods stamped from spec.template until spec.completions of them succeeded
// (or, with completions unset, until one succeeded and the rest ended: a work queue), giving up
// after backoffLimit failures or activeDeadlineSeconds. Field names and JSON omission rules are
// Kubernetes'. Defaulting (SetDefaults_Job plus the API server's generated selector), validation
// (pkg/apis/batch/validation), the Table (kubectl 1.32) live in job.cc. The controller that acts
// on it is controllers/job. Value types; functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/pod_template.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

// Labels and annotations Kubernetes puts on a Job's pods (k8s.io/api/batch/v1).
inline constexpr char kJobControllerUidLabel[] = "batch.kubernetes.io/controller-uid";
inline constexpr char kJobNameLabel[] = "batch.kubernetes.io/job-name";
inline constexpr char kLegacyJobControllerUidLabel[] = "controller-uid";
inline constexpr char kLegacyJobNameLabel[] = "job-name";
inline constexpr char kJobCompletionIndexAnnotation[] = "batch.kubernetes.io/job-completion-index";
inline constexpr char kJobTrackingFinalizer[] = "batch.kubernetes.io/job-tracking";

struct JobSpec {
  std::optional<int32_t> parallelism;  // defaulted to 1
  std::optional<int32_t> completions;  // unset = work queue (defaulted to 1 with parallelism)
  std::optional<int64_t> active_deadline_seconds;
  json pod_failure_policy;               // as JSON: validated here, acted on by controllers/job
  json success_policy;                   // passed through, not acted on
  std::optional<int32_t> backoff_limit;  // defaulted to 6 (MaxInt32 with backoffLimitPerIndex)
  std::optional<int32_t> backoff_limit_per_index;
  std::optional<int32_t> max_failed_indexes;
  std::optional<LabelSelectorSpec> selector;  // generated unless manualSelector
  std::optional<bool> manual_selector;
  PodTemplateSpec template_;
  std::optional<int32_t> ttl_seconds_after_finished;
  std::optional<std::string> completion_mode;         // "NonIndexed" (default) or "Indexed"
  std::optional<bool> suspend;                        // defaulted to false
  std::optional<std::string> pod_replacement_policy;  // "TerminatingOrFailed" or "Failed"
  std::optional<std::string> managed_by;
  template <class V>
  void visit(V& v) {
    v("parallelism", parallelism);
    v("completions", completions);
    v("activeDeadlineSeconds", active_deadline_seconds);
    v("podFailurePolicy", pod_failure_policy);
    v("successPolicy", success_policy);
    v("backoffLimit", backoff_limit);
    v("backoffLimitPerIndex", backoff_limit_per_index);
    v("maxFailedIndexes", max_failed_indexes);
    v("selector", selector);
    v("manualSelector", manual_selector);
    v("template", template_);
    v("ttlSecondsAfterFinished", ttl_seconds_after_finished);
    v("completionMode", completion_mode);
    v("suspend", suspend);
    v("podReplacementPolicy", pod_replacement_policy);
    v("managedBy", managed_by);
  }
};

struct JobCondition {
  std::string type;    // Complete, Failed, Suspended, FailureTarget, SuccessCriteriaMet
  std::string status;  // "True", "False", "Unknown"
  std::optional<Time> last_probe_time;
  std::optional<Time> last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("lastProbeTime", last_probe_time);
    v("lastTransitionTime", last_transition_time);
    v("reason", reason);
    v("message", message);
  }
};

// Pods that ended but whose finalizer the controller has not removed yet (Kubernetes'
// job tracking with finalizers): uids only.
struct UncountedTerminatedPods {
  std::vector<std::string> succeeded, failed;
  template <class V>
  void visit(V& v) {
    v("succeeded", succeeded);
    v("failed", failed);
  }
};

struct JobStatus {
  std::vector<JobCondition> conditions;
  std::optional<Time> start_time, completion_time;
  int32_t active = 0, succeeded = 0, failed = 0;
  std::optional<int32_t> terminating;
  std::string completed_indexes;              // "1,3-5,7"
  std::optional<std::string> failed_indexes;  // backoffLimitPerIndex only
  std::optional<UncountedTerminatedPods> uncounted_terminated_pods;
  std::optional<int32_t> ready;
  template <class V>
  void visit(V& v) {
    v("conditions", conditions);
    v("startTime", start_time);
    v("completionTime", completion_time);
    v("active", active);
    v("succeeded", succeeded);
    v("failed", failed);
    v("terminating", terminating);
    v("completedIndexes", completed_indexes);
    v("failedIndexes", failed_indexes);
    v("uncountedTerminatedPods", uncounted_terminated_pods);
    v("ready", ready);
  }
};

struct Job {
  TypeMeta type_meta;
  ObjectMeta metadata;
  JobSpec spec;
  JobStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// batch/v1 SetDefaults_Job, then (unless manualSelector) the API server's generateSelector:
// the template gets labels batch.kubernetes.io/controller-uid=<uid>, batch.kubernetes.io/job-name
// =<name> and the legacy controller-uid, job-name (a label already present is kept; validation
// rejects a wrong value), and spec.selector.matchLabels gets batch.kubernetes.io/controller-uid.
// Needs metadata.uid and metadata.name (the API server fills both before defaulting).
void default_job(Job& job);

// The "Complete"/"Failed"/... condition of `job` whose status is "True", or nullptr.
const JobCondition* true_job_condition(const Job& job, const std::string& type);

// ValidateJobTemplateSpec, for a CronJob's spec.jobTemplate.spec at `spec` (e.g.
// "spec.jobTemplate.spec"): the Job spec rules, and no selector nor manualSelector (the Jobs'
// selectors are generated).
void validate_job_template_spec(const JobSpec& spec_, const Path& spec, FieldErrors& errs);

ResourceType job_resource();

}  // namespace skiff::proto
