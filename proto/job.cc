#include "proto/job.h"

#include <limits>

#include "proto/kind_util.h"
#include "proto/replicaset.h"  // label_selector_string
#include "proto/resource.h"
#include "proto/selector.h"
#include "proto/workload_util.h"

namespace skiff::proto {
namespace {
void generate_selector(Job& job);
}  // namespace

void default_job(Job& job) {
  JobSpec& s = job.spec;
  // SetDefaults_Job: a non-parallel job may leave both unset; then both are 1. Completions
  // alone unset (with parallelism) means a work queue and stays unset.
  if (!s.completions && !s.parallelism) s.completions = 1;
  if (!s.parallelism) s.parallelism = 1;
  if (!s.backoff_limit)
    s.backoff_limit = s.backoff_limit_per_index ? std::numeric_limits<int32_t>::max() : 6;
  if (!s.completion_mode) s.completion_mode = "NonIndexed";
  if (!s.suspend) s.suspend = false;
  // SetDefaults_Job: a pod failure policy's condition patterns match status True by default.
  if (s.pod_failure_policy.is_object() && s.pod_failure_policy.contains("rules") &&
      s.pod_failure_policy["rules"].is_array())
    for (auto& rule : s.pod_failure_policy["rules"])
      if (rule.is_object() && rule.contains("onPodConditions") &&
          rule["onPodConditions"].is_array())
        for (auto& pc : rule["onPodConditions"])
          if (pc.is_object() && !pc.contains("status")) pc["status"] = "True";
  if (!s.pod_replacement_policy)
    s.pod_replacement_policy = s.pod_failure_policy.is_null() ? "TerminatingOrFailed" : "Failed";
  default_pod_template(s.template_);

  // The API server's generateSelector (pkg/registry/batch/job/strategy.go). Labels the user set
  // are kept: a conflicting value is rejected by validation.
  if (!s.manual_selector.value_or(false)) generate_selector(job);
  // SetDefaults_Job: a Job without labels gets its template's. Kubernetes defaults again when it
  // reads the Job back from storage, so the generated labels show up too.
  if (job.metadata.labels.empty() && !s.template_.metadata.labels.empty())
    job.metadata.labels = s.template_.metadata.labels;
}

namespace {

void generate_selector(Job& job) {
  JobSpec& s = job.spec;
  auto& labels = s.template_.metadata.labels;
  if (!job.metadata.name.empty()) {
    labels.try_emplace(kLegacyJobNameLabel, job.metadata.name);
    labels.try_emplace(kJobNameLabel, job.metadata.name);
  }
  if (job.metadata.uid.empty()) return;  // validation reports the missing uid
  labels.try_emplace(kLegacyJobControllerUidLabel, job.metadata.uid);
  labels.try_emplace(kJobControllerUidLabel, job.metadata.uid);
  if (!s.selector) s.selector = LabelSelectorSpec{};
  s.selector->match_labels.try_emplace(kJobControllerUidLabel, job.metadata.uid);
}

}  // namespace

const JobCondition* true_job_condition(const Job& job, const std::string& type) {
  for (const auto& c : job.status.conditions)
    if (c.type == type && c.status == "True") return &c;
  return nullptr;
}

namespace {

constexpr int32_t kMaxParallelismForIndexedJob = 100000;

// apivalidation.ValidateHasLabel.
void has_label(const PodTemplateSpec& t, const Path& meta, const std::string& key,
               const std::string& want, FieldErrors& errs) {
  const Path p = meta.field("labels").key(key);
  auto it = t.metadata.labels.find(key);
  if (it == t.metadata.labels.end())
    errs.push_back({ErrorType::kRequired, p.str(), "must be '" + want + "'", ""});
  else if (it->second != want)
    errs.push_back(
        {ErrorType::kInvalid, p.str(), "must be '" + want + "'", go_string_map(t.metadata.labels)});
}

// ValidateGeneratedSelector: with a generated selector, the template carries the generated
// labels and the selector selects this Job's uid.
void validate_generated_selector(const Job& job, FieldErrors& errs) {
  if (job.spec.manual_selector.value_or(false) || !job.spec.selector) return;
  if (job.metadata.uid.empty()) errs.push_back({ErrorType::kRequired, "metadata.uid", "", ""});
  const Path meta = Path("spec").field("template").field("metadata");
  const PodTemplateSpec& t = job.spec.template_;
  has_label(t, meta, kLegacyJobControllerUidLabel, job.metadata.uid, errs);
  has_label(t, meta, kLegacyJobNameLabel, job.metadata.name, errs);
  has_label(t, meta, kJobControllerUidLabel, job.metadata.uid, errs);
  has_label(t, meta, kJobNameLabel, job.metadata.name, errs);
  auto sel = LabelSelector::from_json(encode(*job.spec.selector));
  if (sel.is_ok() && !sel->matches({{kJobControllerUidLabel, job.metadata.uid}}))
    errs.push_back({ErrorType::kInvalid, "spec.selector", "`selector` not auto-generated",
                    go_label_selector(*job.spec.selector)});
}

// validatePodFailurePolicy (the common rules): restartPolicy Never, at most 20 rules, each with a
// known action and exactly one of onExitCodes (operator In/NotIn, 1..255 sorted unique values,
// no 0 with In) and onPodConditions (types, status True/False/Unknown).
void validate_pod_failure_policy(const json& pfp, const std::string& restart_policy,
                                 const Path& spec, FieldErrors& errs) {
  const Path path = spec.field("podFailurePolicy");
  if (!pfp.is_object()) {
    errs.push_back({ErrorType::kInvalid, path.str(), "must be an object", pfp.dump()});
    return;
  }
  if (restart_policy != "Never")
    not_supported(errs, spec.field("template").field("spec").field("restartPolicy"), restart_policy,
                  {"Never"});
  const Path rules_path = path.field("rules");
  const json rules = pfp.contains("rules") ? pfp["rules"] : json::array();
  if (!rules.is_array()) {
    errs.push_back({ErrorType::kInvalid, rules_path.str(), "must be a list", rules.dump()});
    return;
  }
  if (rules.size() > 20)
    errs.push_back({ErrorType::kTooMany, rules_path.str(), "must have at most 20 items",
                    std::to_string(rules.size())});
  auto text = [](const json& o, const char* k) {
    return o.is_object() && o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : "";
  };
  for (size_t i = 0; i < rules.size(); ++i) {
    const Path rp = rules_path.index(i);
    const json& r = rules[i];
    if (!r.is_object()) {
      errs.push_back({ErrorType::kInvalid, rp.str(), "must be an object", r.dump()});
      continue;
    }
    required_one_of(errs, rp.field("action"), text(r, "action"),
                    {"FailJob", "FailIndex", "Ignore", "Count"});
    const bool codes = r.contains("onExitCodes") && !r["onExitCodes"].is_null();
    const bool conds = r.contains("onPodConditions") && !r["onPodConditions"].is_null();
    if (codes && conds)
      errs.push_back({ErrorType::kInvalid, rp.str(),
                      "specifying both OnExitCodes and OnPodConditions is not supported", ""});
    if (!codes && !conds)
      errs.push_back({ErrorType::kInvalid, rp.str(),
                      "specifying one of OnExitCodes and OnPodConditions is required", ""});
    if (codes) {
      const Path cp = rp.field("onExitCodes");
      const json& c = r["onExitCodes"];
      const std::string op = text(c, "operator");
      required_one_of(errs, cp.field("operator"), op, {"In", "NotIn"});
      const json values = c.is_object() && c.contains("values") ? c["values"] : json::array();
      if (!values.is_array() || values.empty()) {
        errs.push_back({ErrorType::kRequired, cp.field("values").str(), "", ""});
        continue;
      }
      if (values.size() > 255)
        errs.push_back({ErrorType::kTooMany, cp.field("values").str(),
                        "must have at most 255 items", std::to_string(values.size())});
      for (size_t k = 0; k < values.size(); ++k) {
        const Path vp = cp.field("values").index(k);
        if (!values[k].is_number_integer()) {
          errs.push_back({ErrorType::kInvalid, vp.str(), "must be an integer", values[k].dump()});
          continue;
        }
        const int64_t v = values[k].get<int64_t>();
        if (op == "In" && v == 0)
          errs.push_back({ErrorType::kInvalid, vp.str(), "must not be 0 for the In operator", "0"});
        if (k > 0 && values[k - 1].is_number_integer()) {
          const int64_t prev = values[k - 1].get<int64_t>();
          if (prev == v)
            errs.push_back({ErrorType::kDuplicate, vp.str(), "", std::to_string(v)});
          else if (prev > v)
            errs.push_back({ErrorType::kInvalid, vp.str(), "must be ordered", std::to_string(v)});
        }
      }
    }
    if (conds && r["onPodConditions"].is_array()) {
      const Path cp = rp.field("onPodConditions");
      const json& pcs = r["onPodConditions"];
      for (size_t k = 0; k < pcs.size(); ++k) {
        if (text(pcs[k], "type").empty())
          errs.push_back({ErrorType::kRequired, cp.index(k).field("type").str(), "", ""});
        required_one_of(errs, cp.index(k).field("status"), text(pcs[k], "status"),
                        {"True", "False", "Unknown"});
      }
    }
  }
}

// validateJobSpec: everything but the selector.
void validate_job_spec_fields(const JobSpec& s, const Path& spec, FieldErrors& errs) {
  if (s.parallelism) non_negative(errs, spec.field("parallelism"), *s.parallelism);
  if (s.completions) non_negative(errs, spec.field("completions"), *s.completions);
  if (s.active_deadline_seconds)
    non_negative(errs, spec.field("activeDeadlineSeconds"), *s.active_deadline_seconds);
  if (s.backoff_limit) non_negative(errs, spec.field("backoffLimit"), *s.backoff_limit);
  if (s.ttl_seconds_after_finished)
    non_negative(errs, spec.field("ttlSecondsAfterFinished"), *s.ttl_seconds_after_finished);
  const std::string mode = s.completion_mode.value_or("NonIndexed");
  not_supported(errs, spec.field("completionMode"), mode, {"NonIndexed", "Indexed"});
  if (mode == "Indexed") {
    if (!s.completions)
      errs.push_back({ErrorType::kRequired, spec.field("completions").str(),
                      "when completion mode is Indexed", ""});
    if (s.parallelism && *s.parallelism > kMaxParallelismForIndexedJob)
      errs.push_back({ErrorType::kInvalid, spec.field("parallelism").str(),
                      "must be less than or equal to 100000 when completion mode is Indexed",
                      std::to_string(*s.parallelism)});
  }
  if (s.backoff_limit_per_index) {
    non_negative(errs, spec.field("backoffLimitPerIndex"), *s.backoff_limit_per_index);
    if (mode != "Indexed")
      errs.push_back({ErrorType::kRequired, spec.field("completionMode").str(),
                      "when backoffLimitPerIndex is specified", ""});
  }
  if (s.max_failed_indexes) {
    non_negative(errs, spec.field("maxFailedIndexes"), *s.max_failed_indexes);
    if (!s.backoff_limit_per_index)
      errs.push_back({ErrorType::kRequired, spec.field("backoffLimitPerIndex").str(),
                      "when maxFailedIndexes is specified", ""});
    else if (s.completions && *s.max_failed_indexes > *s.completions)
      errs.push_back({ErrorType::kInvalid, spec.field("maxFailedIndexes").str(),
                      "must be less than or equal to completions",
                      std::to_string(*s.max_failed_indexes)});
  }
  if (s.pod_replacement_policy) {
    if (!s.pod_failure_policy.is_null())
      not_supported(errs, spec.field("podReplacementPolicy"), *s.pod_replacement_policy,
                    {"Failed"});
    else
      not_supported(errs, spec.field("podReplacementPolicy"), *s.pod_replacement_policy,
                    {"Failed", "TerminatingOrFailed"});
  }
  if (!s.pod_failure_policy.is_null())
    validate_pod_failure_policy(s.pod_failure_policy, s.template_.spec.restart_policy, spec, errs);

  const Path tmpl = spec.field("template");
  validate_pod_template(s.template_, tmpl, errs);
  const std::string& rp = s.template_.spec.restart_policy;
  if (rp != "OnFailure" && rp != "Never")
    not_supported(errs, tmpl.field("spec").field("restartPolicy"), rp, {"OnFailure", "Never"});
  if (s.backoff_limit_per_index && rp != "Never")
    errs.push_back({ErrorType::kInvalid, tmpl.field("spec").field("restartPolicy").str(),
                    "must be Never when backoffLimitPerIndex is specified", "\"" + rp + "\""});
}

// ValidateJobSpec: a selector is required (generated for most Jobs) and selects the template.
void validate_job_spec(const JobSpec& s, FieldErrors& errs) {
  const Path spec("spec"), tmpl = spec.field("template");
  validate_job_spec_fields(s, spec, errs);
  if (!s.selector) {
    errs.push_back({ErrorType::kRequired, spec.field("selector").str(), "", ""});
    return;
  }
  LabelSelector::validate_json(encode(*s.selector), spec.field("selector"), errs);
  auto sel = LabelSelector::from_json(encode(*s.selector));
  if (sel.is_ok() && !sel->matches(s.template_.metadata.labels))
    errs.push_back({ErrorType::kInvalid, tmpl.field("metadata").field("labels").str(),
                    "`selector` does not match template `labels`",
                    go_string_map(s.template_.metadata.labels)});
}

// The parts of a template Kubernetes lets change while a Job is suspended and has never started
// (JobMutableNodeSchedulingDirectives, 1.27+): labels, annotations, node selector, affinity,
// tolerations, scheduling gates. Everything else of the template is immutable.
json immutable_part(const PodTemplateSpec& t, bool scheduling_mutable) {
  json j = encode(t);
  if (!scheduling_mutable) return j;
  if (j.contains("metadata")) {
    j["metadata"].erase("labels");
    j["metadata"].erase("annotations");
  }
  if (j.contains("spec"))
    for (const char* k : {"nodeSelector", "affinity", "tolerations", "schedulingGates"})
      j["spec"].erase(k);
  return j;
}

std::string opt_string(const std::optional<int32_t>& v) { return v ? std::to_string(*v) : "null"; }

void validate_job_update(const Job& job, const Job& old, FieldErrors& errs) {
  const Path spec("spec");
  const JobSpec &s = job.spec, &o = old.spec;
  validate_selector_immutable(s.selector, o.selector, spec.field("selector"), errs);
  // Elastic Indexed Jobs: completions may change together with parallelism while both are equal.
  const bool elastic = s.completion_mode.value_or("") == "Indexed" && s.completions &&
                       s.parallelism && *s.completions == *s.parallelism && o.completions &&
                       o.parallelism && *o.completions == *o.parallelism;
  if (!elastic && s.completions != o.completions)
    errs.push_back({ErrorType::kInvalid, spec.field("completions").str(), "field is immutable",
                    opt_string(s.completions)});
  const bool scheduling_mutable = o.suspend.value_or(false) && !old.status.start_time;
  if (immutable_part(s.template_, scheduling_mutable) !=
      immutable_part(o.template_, scheduling_mutable))
    errs.push_back({ErrorType::kInvalid, spec.field("template").str(), "field is immutable",
                    "core.PodTemplateSpec{...}"});
  immutable(errs, spec.field("completionMode"), s.completion_mode.value_or(""),
            o.completion_mode.value_or(""));
  if (s.pod_failure_policy != o.pod_failure_policy)
    errs.push_back({ErrorType::kInvalid, spec.field("podFailurePolicy").str(), "field is immutable",
                    s.pod_failure_policy.dump()});
  if (s.backoff_limit_per_index != o.backoff_limit_per_index)
    errs.push_back({ErrorType::kInvalid, spec.field("backoffLimitPerIndex").str(),
                    "field is immutable", opt_string(s.backoff_limit_per_index)});
  immutable(errs, spec.field("managedBy"), s.managed_by.value_or(""), o.managed_by.value_or(""));
}

// ValidateJob / ValidateJobUpdate and the status counters of ValidateJobStatus.
void validate_job(const Job& job, const Job* old, FieldErrors& errs) {
  if (!old) validate_generated_selector(job, errs);
  validate_job_spec(job.spec, errs);
  if (old) validate_job_update(job, *old, errs);
  const Path status("status");
  const JobStatus& st = job.status;
  non_negative(errs, status.field("active"), st.active);
  non_negative(errs, status.field("succeeded"), st.succeeded);
  non_negative(errs, status.field("failed"), st.failed);
  if (st.ready) non_negative(errs, status.field("ready"), *st.ready);
  if (st.terminating) non_negative(errs, status.field("terminating"), *st.terminating);
}

// kubectl's printJob.
std::string job_status_cell(const Job& j) {
  if (true_job_condition(j, "Complete")) return "Complete";
  if (true_job_condition(j, "Failed")) return "Failed";
  if (j.metadata.deletion_timestamp) return "Terminating";
  if (true_job_condition(j, "Suspended")) return "Suspended";
  if (true_job_condition(j, "FailureTarget")) return "FailureTarget";
  if (true_job_condition(j, "SuccessCriteriaMet")) return "SuccessCriteriaMet";
  return "Running";
}

json job_row(const Job& j, Clock::time_point now) {
  std::string completions;
  const std::string done = std::to_string(j.status.succeeded);
  if (j.spec.completions) {
    completions = done + "/" + std::to_string(*j.spec.completions);
  } else {
    int32_t parallelism = j.spec.parallelism.value_or(0);
    completions = parallelism > 1 ? done + "/1 of " + std::to_string(parallelism) : done + "/1";
  }
  std::string duration;
  if (j.status.start_time) {
    auto end = j.status.completion_time ? j.status.completion_time->value : now;
    duration = human_duration(end - j.status.start_time->value);
  }
  std::string sel = label_selector_string(j.spec.selector);
  return json::array({j.metadata.name, job_status_cell(j), completions, duration,
                      since(j.metadata.creation_timestamp.value_or(Time{}).value, now),
                      container_names(j.spec.template_), container_images(j.spec.template_),
                      sel.empty() ? "<none>" : sel});
}

}  // namespace

void validate_job_template_spec(const JobSpec& s, const Path& spec, FieldErrors& errs) {
  validate_job_spec_fields(s, spec, errs);
  if (s.selector)
    errs.push_back({ErrorType::kInvalid, spec.field("selector").str(),
                    "`selector` will be auto-generated", go_label_selector(*s.selector)});
  if (s.manual_selector.value_or(false))
    errs.push_back({ErrorType::kNotSupported, spec.field("manualSelector").str(),
                    "supported values: \"nil\", \"false\"", "true"});
}

ResourceType job_resource() {
  KindSpec<Job> k;
  k.type.group = "batch";
  k.type.version = "v1";
  k.type.kind = "Job";
  k.type.list_kind = "JobList";
  k.type.plural = "jobs";
  k.type.singular = "job";
  k.type.namespaced = true;
  k.type.short_names = {};
  k.type.categories = {"all"};
  k.type.subresources = {"status"};
  k.type.reset_status_on_create = true;
  k.type.columns = {
      name_column(),
      column("Status", "string", "Status of the job."),
      column("Completions", "string",
             "The number of pods which reached phase Succeeded. The value increases "
             "monotonically for a given spec. However, it may decrease in reaction to scale "
             "down of elastic indexed jobs."),
      column("Duration", "string", "Time required to complete the job."),
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
  k.defaults = default_job;
  k.validate = validate_job;
  k.row = job_row;
  ResourceType rt = make_resource(std::move(k));
  // JobToSelectableFields: status.successful is strconv.Itoa(status.succeeded), "0" when the
  // (omitempty) field is absent.
  rt.field_value = [base = rt.field_value](const json& obj,
                                           std::string_view field) -> std::optional<std::string> {
    if (field != "status.successful") return base(obj, field);
    std::string v = json_field_string(obj, "status.succeeded");
    return v.empty() ? "0" : v;
  };
  return rt;
}

}  // namespace skiff::proto
