// batch/v1 CronJob: creates a Job from spec.jobTemplate at each time spec.schedule (cron syntax,
// common/cron.h) names, in spec.timeZone (default: the controller-manager's local zone).
// Field names and JSON omission rules are Kubernetes'. Defaulting (concurrencyPolicy Allow,
// suspend false, successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1, the job template's pod
// defaults), validation (pkg/apis/batch/validation ValidateCronJobCreate/Update with its paths
// and messages), the kubectl 1.32 Table and the field selectors live in cronjob.cc. The
// controller is controllers/cronjob. Value types; functions are pure and thread-safe.
//
// The job template's spec is kept as JSON (a batch/v1 JobSpec, proto/job.h owns its type) so
// that every Job field the API server accepts reaches the created Jobs unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

// batch/v1 JobTemplateSpec.
struct JobTemplateSpec {
  ObjectMeta metadata;
  json spec;  // a batch/v1 JobSpec
  template <class V>
  void visit(V& v) {
    v("metadata", metadata);
    v("spec", spec);
  }
};

struct CronJobSpec {
  std::string schedule;
  std::optional<std::string> time_zone;
  std::optional<int64_t> starting_deadline_seconds;
  std::string concurrency_policy;  // Allow (default) | Forbid | Replace
  std::optional<bool> suspend;     // defaulted to false
  JobTemplateSpec job_template;
  std::optional<int32_t> successful_jobs_history_limit;  // defaulted to 3
  std::optional<int32_t> failed_jobs_history_limit;      // defaulted to 1
  template <class V>
  void visit(V& v) {
    v("schedule", schedule);
    v("timeZone", time_zone);
    v("startingDeadlineSeconds", starting_deadline_seconds);
    v("concurrencyPolicy", concurrency_policy);
    v("suspend", suspend);
    v("jobTemplate", job_template);
    v("successfulJobsHistoryLimit", successful_jobs_history_limit);
    v("failedJobsHistoryLimit", failed_jobs_history_limit);
  }
};

struct CronJobStatus {
  std::vector<ObjectReference> active;  // Jobs running now
  std::optional<Time> last_schedule_time;
  std::optional<Time> last_successful_time;
  template <class V>
  void visit(V& v) {
    v("active", active);
    v("lastScheduleTime", last_schedule_time);
    v("lastSuccessfulTime", last_successful_time);
  }
};

struct CronJob {
  TypeMeta type_meta;
  ObjectMeta metadata;
  CronJobSpec spec;
  CronJobStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

// batch/v1 SetDefaults_CronJob plus the pod defaults of spec.jobTemplate.spec.template.
void default_cronjob(CronJob& cj);

ResourceType cronjob_resource();

}  // namespace skiff::proto
