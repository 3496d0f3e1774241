#include "proto/cronjob.h"

#include "common/cron.h"
#include "proto/kind_util.h"
#include "proto/pod_template.h"
#include "proto/replicaset.h"
#include "proto/resource.h"
#include "proto/workload_util.h"

namespace skiff::proto {
namespace {

const char* const kTemplate = "template";

}  // namespace

void default_cronjob(CronJob& cj) {
  CronJobSpec& s = cj.spec;
  if (s.concurrency_policy.empty()) s.concurrency_policy = "Allow";
  if (!s.suspend) s.suspend = false;
  if (!s.successful_jobs_history_limit) s.successful_jobs_history_limit = 3;
  if (!s.failed_jobs_history_limit) s.failed_jobs_history_limit = 1;
  // Kubernetes' generated defaulter reaches the pod template inside the job template (not the
  // JobSpec's own defaults, which belong to the Job object).
  json& js = s.job_template.spec;
  if (js.is_null()) js = json::object();
  if (!js.is_object()) return;
  FieldErrors type_errors;
  PodTemplateSpec t;
  if (js.contains(kTemplate))
    decode_into(js[kTemplate], t, Path(), type_errors, DecodeOptions{.report_unknown = false});
  // A template that does not decode (a string where an object belongs) is left as sent, for
  // validation to report with its path; re-encoding it would silently drop the bad field.
  if (!type_errors.empty()) return;
  default_pod_template(t);
  js[kTemplate] = encode(t);
}

namespace {

void invalid(FieldErrors& errs, const Path& p, const std::string& value, std::string detail) {
  errs.push_back({ErrorType::kInvalid, p.str(), std::move(detail), value});
}

// validateScheduleFormat: robfig's ParseStandard, and no TZ/CRON_TZ in the schedule (allowed on
// update only when the stored schedule already had one: Kubernetes' grandfather clause).
void validate_schedule(const CronJobSpec& s, const CronJobSpec* old, const Path& p,
                       FieldErrors& errs) {
  if (s.schedule.empty()) {
    errs.push_back({ErrorType::kRequired, p.str(), "", ""});
    return;
  }
  auto parsed = cron::Schedule::parse(s.schedule);
  if (!parsed.is_ok()) invalid(errs, p, quote_value(s.schedule), parsed.status().message());
  const bool allow_tz = old && old->schedule.find("TZ") != std::string::npos;
  const bool has_tz = s.schedule.find("TZ") != std::string::npos;
  if (allow_tz && has_tz && s.time_zone)
    invalid(errs, p, quote_value(s.schedule),
            "cannot use both timeZone field and TZ or CRON_TZ in schedule");
  else if (!allow_tz && has_tz)
    invalid(errs, p, quote_value(s.schedule),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
}

bool valid_zone_part(const std::string& part) {
  // ^[A-Za-z\.\-_0-9+]{1,14}$, not "." or "..", not starting with '-'.
  if (part.empty() || part.size() > 14 || part == "." || part == ".." || part[0] == '-')
    return false;
  for (char c : part)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != '+')
      return false;
  return true;
}

// validateTimeZone.
void validate_time_zone(const std::optional<std::string>& tz, const Path& p, FieldErrors& errs) {
  if (!tz) return;
  if (tz->empty()) {
    invalid(errs, p, quote_value(""), "timeZone must be nil or non-empty string");
    return;
  }
  size_t start = 0;
  while (true) {
    const size_t slash = tz->find('/', start);
    if (!valid_zone_part(tz->substr(start, slash == std::string::npos ? slash : slash - start))) {
      invalid(errs, p, quote_value(*tz), "unknown time zone " + *tz);
      return;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  std::string folded = *tz;
  for (char& c : folded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (folded == "local") {
    invalid(errs, p, quote_value(*tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones");
    return;  // Go's LoadLocation("Local") succeeds; anything else spelled so is unknown
  }
  auto zone = cron::TimeZone::load(*tz);
  if (!zone.is_ok()) invalid(errs, p, quote_value(*tz), zone.status().message());
}

void job_int_non_negative(const json& spec, const char* name, const Path& p, FieldErrors& errs) {
  auto it = spec.find(name);
  if (it != spec.end() && it->is_number_integer())
    non_negative(errs, p.field(name), it->get<int64_t>());
}

// ValidateJobTemplateSpec: the JobSpec rules that do not involve a selector (validateJobSpec)
// plus "the selector is generated". The full Job rules are proto/job.cc's.
void validate_job_template(const JobTemplateSpec& jt, const Path& p, FieldErrors& errs) {
  validate_labels(jt.metadata.labels, p.field("metadata").field("labels"), errs);
  validate_annotations(jt.metadata.annotations, p.field("metadata").field("annotations"), errs);
  const Path sp = p.field("spec");
  const json& spec = jt.spec;
  if (!spec.is_object()) {
    errs.push_back({ErrorType::kRequired, sp.field(kTemplate).str(), "", ""});
    return;
  }
  for (const char* f : {"parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                        "ttlSecondsAfterFinished"})
    job_int_non_negative(spec, f, sp, errs);
  PodTemplateSpec t;
  const Path tp = sp.field(kTemplate);
  FieldErrors type_errors;
  if (spec.contains(kTemplate))
    decode_into(spec[kTemplate], t, tp, type_errors, DecodeOptions{.report_unknown = false});
  if (!type_errors.empty()) {
    // Not defaulted (see default_cronjob): the type errors are the whole story.
    errs.insert(errs.end(), type_errors.begin(), type_errors.end());
    return;
  }
  validate_pod_template(t, tp, errs);
  const std::string& rp = t.spec.restart_policy;
  if (rp != "OnFailure" && rp != "Never")
    not_supported(errs, tp.field("spec").field("restartPolicy"), rp, {"OnFailure", "Never"});
  if (spec.contains("selector") && !spec["selector"].is_null())
    invalid(errs, sp.field("selector"), spec["selector"].dump(),
            "`selector` will be auto-generated");
  if (auto it = spec.find("manualSelector"); it != spec.end() && *it == true)
    not_supported(errs, sp.field("manualSelector"), "true", {"nil", "false"});
}

// ValidateCronJobCreate / ValidateCronJobUpdate.
void validate_cronjob(const CronJob& cj, const CronJob* old, FieldErrors& errs) {
  const Path spec("spec");
  const CronJobSpec& s = cj.spec;
  validate_schedule(s, old ? &old->spec : nullptr, spec.field("schedule"), errs);
  if (s.starting_deadline_seconds)
    non_negative(errs, spec.field("startingDeadlineSeconds"), *s.starting_deadline_seconds);
  if (!old || old->spec.time_zone != s.time_zone)
    validate_time_zone(s.time_zone, spec.field("timeZone"), errs);
  required_one_of(errs, spec.field("concurrencyPolicy"), s.concurrency_policy,
                  {"Allow", "Forbid", "Replace"});
  validate_job_template(s.job_template, spec.field("jobTemplate"), errs);
  if (s.successful_jobs_history_limit)
    non_negative(errs, spec.field("successfulJobsHistoryLimit"), *s.successful_jobs_history_limit);
  if (s.failed_jobs_history_limit)
    non_negative(errs, spec.field("failedJobsHistoryLimit"), *s.failed_jobs_history_limit);
  // The controller appends "-<11 digits at most>" to name Jobs, which must stay within 63.
  if (!old && cj.metadata.name.size() > 52)
    invalid(errs, Path("metadata").field("name"), quote_value(cj.metadata.name),
            "must be no more than 52 characters");
}

// kubectl's printCronJob.
json cronjob_row(const CronJob& cj, Clock::time_point now) {
  const CronJobSpec& s = cj.spec;
  std::string last = "<none>";
  if (cj.status.last_schedule_time) last = since(cj.status.last_schedule_time->value, now);
  std::string suspend = "<unset>";
  if (s.suspend) suspend = *s.suspend ? "True" : "False";
  PodTemplateSpec t;
  std::string selector = "<none>";
  if (s.job_template.spec.is_object()) {
    FieldErrors ignored;
    const json& js = s.job_template.spec;
    if (js.contains(kTemplate))
      decode_into(js[kTemplate], t, Path(), ignored, DecodeOptions{.report_unknown = false});
    if (js.contains("selector") && js["selector"].is_object()) {
      auto sel = decode<LabelSelectorSpec>(js["selector"], ignored,
                                           DecodeOptions{.report_unknown = false});
      selector = or_none(label_selector_string(sel));
    }
  }
  return json::array({cj.metadata.name, s.schedule, s.time_zone.value_or("<none>"), suspend,
                      static_cast<int64_t>(cj.status.active.size()), last,
                      since(cj.metadata.creation_timestamp.value_or(Time{}).value, now),
                      container_names(t), container_images(t), selector});
}

}  // namespace

ResourceType cronjob_resource() {
  KindSpec<CronJob> k;
  k.type.group = "batch";
  k.type.version = "v1";
  k.type.kind = "CronJob";
  k.type.list_kind = "CronJobList";
  k.type.plural = "cronjobs";
  k.type.singular = "cronjob";
  k.type.namespaced = true;
  k.type.short_names = {"cj"};
  k.type.categories = {"all"};
  k.type.subresources = {"status"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Schedule", "string",
             "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
      column("Timezone", "string",
             "The time zone name for the given schedule, see "
             "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, "
             "this will default to the time zone of the kube-controller-manager process."),
      column("Suspend", "boolean",
             "This flag tells the controller to suspend subsequent executions, it does not apply "
             "to already started executions.  Defaults to false."),
      column("Active", "integer", "A list of pointers to currently running jobs."),
      column("Last Schedule", "string",
             "Information when was the last time the job was successfully scheduled."),
      age_column(),
      column("Containers", "string", "Names of each container in the template.", 1),
      column("Images", "string", "Images referenced by each container in the template.", 1),
      column("Selector", "string",
             "A label query over pods that should match the pod count. Normally, the system "
             "sets this field for you. More info: "
             "https://kubernetes.io/docs/concepts/overview/working-with-objects/"
             "labels/#label-selectors",
             1),
  };
  k.defaults = default_cronjob;
  k.validate = validate_cronjob;
  k.row = cronjob_row;
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
