#include "cli/cronjob.h"

#include <nlohmann/json.hpp>
#include <ostream>

#include "proto/client/rest_client.h"
#include "proto/selector.h"

namespace skiff::cli {

namespace {

constexpr char kInstantiateAnnotation[] = "cronjob.kubernetes.io/instantiate";

// A limit or deadline: the number (with `suffix`) or <unset>, as kubectl prints pointers.
std::string int_or_unset(const json& o, const char* key, const char* suffix = "") {
  const json& v = child(o, key);
  if (!v.is_number_integer()) return "<unset>";
  return std::to_string(v.get<int64_t>()) + suffix;
}

}  // namespace

json job_from_cronjob(const std::string& name, const std::string& ns, const json& cronjob) {
  const json& md = child(cronjob, "metadata");
  const json& tmpl = child(child(cronjob, "spec"), "jobTemplate");
  const json& tmd = child(tmpl, "metadata");
  json annotations = {{kInstantiateAnnotation, "manual"}};
  if (child(tmd, "annotations").is_object())
    for (const auto& [k, v] : tmd["annotations"].items()) annotations[k] = v;
  json meta = {{"name", name}, {"annotations", annotations}};
  if (!ns.empty()) meta["namespace"] = ns;
  if (child(tmd, "labels").is_object() && !tmd["labels"].empty()) meta["labels"] = tmd["labels"];
  // Not NewControllerRef: kubectl leaves blockOwnerDeletion out (it would need the
  // cronjobs/finalizers permission).
  meta["ownerReferences"] = json::array({{{"apiVersion", "batch/v1"},
                                          {"kind", "CronJob"},
                                          {"name", str_of(md, "name")},
                                          {"uid", str_of(md, "uid")},
                                          {"controller", true}}});
  json job = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", meta}};
  const json& spec = child(tmpl, "spec");
  job["spec"] = spec.is_object() ? spec : json::object();
  return job;
}

json job_from_image(const std::string& name, const std::string& ns, const std::string& image,
                    const std::vector<std::string>& command) {
  json container = {{"name", name}, {"image", image}, {"resources", json::object()}};
  if (!command.empty()) container["command"] = command;
  json meta = {{"name", name}};
  if (!ns.empty()) meta["namespace"] = ns;
  json pod_spec = {{"containers", json::array({container})}, {"restartPolicy", "Never"}};
  json tmpl = {{"metadata", json::object()}, {"spec", pod_spec}};
  json job = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", meta}};
  job["spec"] = {{"template", tmpl}};
  return job;
}

int run_create_job(Context& ctx, const CreateJobOptions& o) {
  std::vector<std::string> command;
  std::string name;
  if (!o.args.empty()) {
    name = o.args[0];
    command.assign(o.args.begin() + 1, o.args.end());
  }
  if (name.empty()) {
    *ctx.err << "error: exactly one NAME is required, got 0\n";
    return 1;
  }
  if (o.image.empty() == o.from.empty()) {
    *ctx.err << "error: either --image or --from must be specified\n";
    return 1;
  }
  if (!o.from.empty() && !command.empty()) {
    *ctx.err << "error: cannot specify --from and command\n";
    return 1;
  }
  json job;
  if (!o.image.empty()) {
    job = job_from_image(name, ctx.namespace_, o.image, command);
  } else {
    const size_t slash = o.from.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == o.from.size()) {
      *ctx.err << "error: from must be of the form <resource>/<name>\n";
      return 1;
    }
    const proto::ResourceType* t = ctx.resolve(o.from.substr(0, slash));
    if (!t) return 1;
    if (t->kind != "CronJob" || t->group != "batch") {
      *ctx.err << "error: from must be an existing cronjob: a " << t->kind
               << " cannot be instantiated as a Job\n";
      return 1;
    }
    auto r = ctx.rest->request("GET",
                               client::resource_path(*t, ctx.namespace_, o.from.substr(slash + 1)));
    if (!r) {
      ctx.print_error(r.status());
      return 1;
    }
    if (!r->ok()) {
      ctx.print_error(*r);
      return 1;
    }
    json cj = json::parse(r->body, nullptr, false);
    if (!cj.is_object()) {
      *ctx.err << "error: the server's answer for cronjob " << o.from.substr(slash + 1)
               << " is not a JSON object\n";
      return 1;
    }
    job = job_from_cronjob(name, ctx.namespace_, cj);
  }
  const proto::ResourceType* jt = proto::Registry::builtin().by_kind("batch/v1", "Job");
  if (!jt) {
    *ctx.err << "error: this skiffctl does not know batch/v1 Job\n";
    return 1;
  }
  auto cr = ctx.rest->request("POST", client::resource_path(*jt, ctx.namespace_),
                              {{"fieldManager", "kubectl-create"}}, job.dump(), "application/json");
  if (!cr) {
    ctx.print_error(cr.status());
    return 1;
  }
  if (!cr->ok()) {
    ctx.print_error(*cr);
    return 1;
  }
  *ctx.out << "job.batch/" << name << " created\n";
  return 0;
}

void describe_cronjob(DescribeWriter& w, const json& cj) {
  const json& md = child(cj, "metadata");
  const json& spec = child(cj, "spec");
  const json& status = child(cj, "status");
  w.kv(0, "Name", str_of(md, "name"));
  w.kv(0, "Namespace", str_of(md, "namespace"));
  write_labels(w, "Labels", child(md, "labels"));
  write_annotations(w, "Annotations", child(md, "annotations"));
  w.kv(0, "Schedule", str_of(spec, "schedule"));
  w.kv(0, "Concurrency Policy", str_of(spec, "concurrencyPolicy"));
  const json& suspend = child(spec, "suspend");
  w.kv(0, "Suspend", suspend.is_boolean() ? (suspend.get<bool>() ? "True" : "False") : "<unset>");
  w.kv(0, "Successful Job History Limit", int_or_unset(spec, "successfulJobsHistoryLimit"));
  w.kv(0, "Failed Job History Limit", int_or_unset(spec, "failedJobsHistoryLimit"));
  w.kv(0, "Starting Deadline Seconds", int_or_unset(spec, "startingDeadlineSeconds", "s"));
  // describeJobTemplate.
  const json& js = child(child(spec, "jobTemplate"), "spec");
  const json& sel = child(js, "selector");
  if (sel.is_object()) {
    auto parsed = proto::LabelSelector::from_json(sel);
    w.kv(0, "Selector", parsed.is_ok() ? parsed->to_string() : "<error>");
  } else {
    w.kv(0, "Selector", "<unset>");
  }
  w.kv(0, "Parallelism", int_or_unset(js, "parallelism"));
  w.kv(0, "Completions", int_or_unset(js, "completions"));
  if (child(js, "activeDeadlineSeconds").is_number_integer())
    w.kv(0, "Active Deadline Seconds", int_or_unset(js, "activeDeadlineSeconds", "s"));
  describe_pod_template(w, child(js, "template"));
  const std::string last = str_of(status, "lastScheduleTime");
  w.kv(0, "Last Schedule Time", last.empty() ? "<unset>" : format_describe_time(last));
  std::string active;
  const json& refs = child(status, "active");
  if (refs.is_array())
    for (const auto& r : refs) active += (active.empty() ? "" : ", ") + str_of(r, "name");
  w.kv(0, "Active Jobs", active.empty() ? "<none>" : active);
}

}  // namespace skiff::cli
