#include "controllers/job/job.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/job.h"
#include "proto/pod.h"
#include "proto/time.h"

namespace skiff::controllers::job {

namespace {

constexpr auto job_type = &resource_type<proto::job_resource>;
constexpr auto pod_type = &resource_type<proto::pod_resource>;

std::string phase_of(const json& pod) { return str(at(pod, "status", "phase")); }
bool deleting(const json& o) { return !at(o, "metadata", "deletionTimestamp").is_null(); }
bool terminal(const json& pod) { return phase_of(pod) == "Succeeded" || phase_of(pod) == "Failed"; }
bool active(const json& pod) { return !terminal(pod) && !deleting(pod); }

bool has_finalizer(const json& pod) {
  const json& f = at(pod, "metadata", "finalizers");
  if (!f.is_array()) return false;
  return std::find(f.begin(), f.end(), json(proto::kJobTrackingFinalizer)) != f.end();
}

bool pod_ready(const json& pod) {
  const json& conds = at(pod, "status", "conditions");
  if (!conds.is_array()) return false;
  for (const auto& c : conds)
    if (str(at(c, "type")) == "Ready") return str(at(c, "status")) == "True";
  return false;
}

// The pod's completion index (annotation, as Kubernetes reads it), or -1.
int completion_index(const json& pod) {
  std::string s = str(at(at(pod, "metadata", "annotations"), proto::kJobCompletionIndexAnnotation));
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit)) return -1;
  if (s.size() > 1 && s[0] == '0') return -1;
  return std::stoi(s);
}

std::optional<WallTime> parse_time(const json& j) {
  if (!j.is_string()) return std::nullopt;
  auto t = proto::parse_rfc3339(j.get<std::string>());
  if (!t) return std::nullopt;
  return *t;
}

std::string rfc3339(WallTime t) { return proto::format_rfc3339(t); }

// When the pod ended: the latest container finishedAt, else `now`.
WallTime finish_time(const json& pod, WallTime now) {
  std::optional<WallTime> latest;
  const json& statuses = at(pod, "status", "containerStatuses");
  if (statuses.is_array())
    for (const auto& s : statuses)
      if (auto t = parse_time(at(at(s, "state", "terminated"), "finishedAt")))
        if (!latest || *t > *latest) latest = t;
  return latest.value_or(now);
}

// Kubernetes' pastBackoffLimitOnFailure: with restartPolicy OnFailure the kubelet restarts
// failed containers in place, so failures show up as restarts of running or pending pods.
bool past_backoff_limit_on_failure(const json& job, const std::vector<json>& pods) {
  if (str(at(at(job, "spec", "template"), "spec", "restartPolicy")) != "OnFailure") return false;
  int64_t restarts = 0;
  for (const auto& p : pods) {
    if (phase_of(p) != "Running" && phase_of(p) != "Pending") continue;
    for (const char* k : {"initContainerStatuses", "containerStatuses"})
      if (const json& s = at(p, "status", k); s.is_array())
        for (const auto& c : s) restarts += num(at(c, "restartCount"));
  }
  int64_t limit = num(at(job, "spec", "backoffLimit"), 6);
  return limit == 0 ? restarts > 0 : restarts >= limit;
}

// `a` is an older version of the object than `b`: skiff's resourceVersions are the store's
// increasing revisions. Not comparable (not numbers) counts as not older.
bool older_than(const json& a, const json& b) {
  const std::string ra = str(at(a, "metadata", "resourceVersion")),
                    rb = str(at(b, "metadata", "resourceVersion"));
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  if (!digits(ra) || !digits(rb)) return false;
  return std::stoll(ra) < std::stoll(rb);
}

// The action of the first spec.podFailurePolicy rule a Failed pod matches ("" for none: the
// failure counts) and, for FailJob, Kubernetes' message naming the match.
std::pair<std::string, std::string> match_pod_failure_policy(const json& spec, const json& pod) {
  const json& rules = at(at(spec, "podFailurePolicy"), "rules");
  if (!rules.is_array()) return {};
  const std::string who = ns_of(pod) + "/" + name_of(pod);
  for (size_t i = 0; i < rules.size(); ++i) {
    const json& r = rules[i];
    const std::string action = str(at(r, "action"));
    const std::string rule = " matching " + action + " rule at index " + std::to_string(i);
    if (const json& codes = at(r, "onExitCodes"); codes.is_object()) {
      const json& values = at(codes, "values");
      const bool in = str(at(codes, "operator")) == "In";
      const std::string only = str(at(codes, "containerName"));
      for (const char* list : {"containerStatuses", "initContainerStatuses"}) {
        const json& statuses = at(pod, "status", list);
        if (!statuses.is_array()) continue;
        for (const auto& cs : statuses) {
          const json& code = at(at(cs, "state", "terminated"), "exitCode");
          if (!code.is_number_integer() || code.get<int64_t>() == 0) continue;
          if (!only.empty() && str(at(cs, "name")) != only) continue;
          bool listed =
              values.is_array() && std::find(values.begin(), values.end(), code) != values.end();
          if (listed == in)
            return {action, "Container " + str(at(cs, "name")) + " for pod " + who +
                                " failed with exit code " + code.dump() + rule};
        }
      }
    }
    if (const json& patterns = at(r, "onPodConditions"); patterns.is_array()) {
      const json& conds = at(pod, "status", "conditions");
      for (const auto& want : patterns)
        if (conds.is_array())
          for (const auto& have : conds)
            if (str(at(have, "type")) == str(at(want, "type")) &&
                str(at(have, "status")) ==
                    (str(at(want, "status")).empty() ? "True" : str(at(want, "status"))))
              return {action, "Pod " + who + " has condition " + str(at(want, "type")) + rule};
    }
  }
  return {};
}

const json* find_condition(const json& status, const std::string& type) {
  const json& conds = at(status, "conditions");
  if (!conds.is_array()) return nullptr;
  for (const auto& c : conds)
    if (str(at(c, "type")) == type) return &c;
  return nullptr;
}

bool condition_true(const json& status, const std::string& type) {
  const json* c = find_condition(status, type);
  return c && str(at(*c, "status")) == "True";
}

// Sets (or adds) a condition; the transition time moves only when its status changes.
void set_condition(json& status, const std::string& type, const std::string& cond_status,
                   const std::string& reason, const std::string& message, WallTime now) {
  if (!status["conditions"].is_array()) status["conditions"] = json::array();
  for (auto& c : status["conditions"]) {
    if (str(at(c, "type")) != type) continue;
    if (str(at(c, "status")) == cond_status && str(at(c, "reason")) == reason) return;
    c = {{"type", type},
         {"status", cond_status},
         {"reason", reason},
         {"message", message},
         {"lastProbeTime", rfc3339(now)},
         {"lastTransitionTime", rfc3339(now)}};
    return;
  }
  status["conditions"].push_back({{"type", type},
                                  {"status", cond_status},
                                  {"reason", reason},
                                  {"message", message},
                                  {"lastProbeTime", rfc3339(now)},
                                  {"lastTransitionTime", rfc3339(now)}});
}

std::set<std::string> uid_set(const json& j) {
  std::set<std::string> out;
  if (j.is_array())
    for (const auto& u : j)
      if (u.is_string()) out.insert(u.get<std::string>());
  return out;
}

json event_object(const json& job) {
  json o = {{"apiVersion", "batch/v1"}, {"kind", "Job"}};
  o["metadata"] = {{"name", name_of(job)}, {"namespace", ns_of(job)}, {"uid", uid_of(job)}};
  if (auto rv = at(job, "metadata", "resourceVersion"); rv.is_string())
    o["metadata"]["resourceVersion"] = rv;
  return o;
}

// A pod of `job` from its template (Kubernetes' GetPodFromTemplate plus the Job's additions);
// `index` >= 0 for Indexed Jobs.
json pod_from_template(const json& job, int index) {
  const json& tmpl = at(job, "spec", "template");
  const std::string name = name_of(job);
  json meta = json::object();
  meta["generateName"] = index >= 0 ? name + "-" + std::to_string(index) + "-" : name + "-";
  meta["namespace"] = ns_of(job);
  for (const char* k : {"labels", "annotations"})
    meta[k] = at(tmpl, "metadata", k).is_object() ? at(tmpl, "metadata", k) : json::object();
  json finalizers = at(tmpl, "metadata", "finalizers").is_array()
                        ? at(tmpl, "metadata", "finalizers")
                        : json::array();
  finalizers.push_back(proto::kJobTrackingFinalizer);
  meta["finalizers"] = std::move(finalizers);
  meta["ownerReferences"] = json::array({{{"apiVersion", "batch/v1"},
                                          {"kind", "Job"},
                                          {"name", name},
                                          {"uid", uid_of(job)},
                                          {"controller", true},
                                          {"blockOwnerDeletion", true}}});
  json spec = at(tmpl, "spec").is_object() ? at(tmpl, "spec") : json::object();
  if (index >= 0) {
    const std::string ix = std::to_string(index);
    meta["annotations"][proto::kJobCompletionIndexAnnotation] = ix;
    meta["labels"][proto::kJobCompletionIndexAnnotation] = ix;
    if (str(at(spec, "hostname")).empty()) spec["hostname"] = name + "-" + ix;
    // The downward API, as Kubernetes does; the kubelet resolves the annotation fieldRef.
    const json env = {{"name", "JOB_COMPLETION_INDEX"},
                      {"valueFrom",
                       {{"fieldRef",
                         {{"fieldPath", std::string("metadata.annotations['") +
                                            proto::kJobCompletionIndexAnnotation + "']"}}}}}};
    for (const char* list : {"initContainers", "containers"}) {
      if (!spec[list].is_array()) {
        spec.erase(list);
        continue;
      }
      for (auto& c : spec[list]) {
        if (!c["env"].is_array()) c["env"] = json::array();
        bool present = std::any_of(c["env"].begin(), c["env"].end(), [](const json& e) {
          return str(at(e, "name")) == "JOB_COMPLETION_INDEX";
        });
        if (!present) c["env"].push_back(env);
      }
    }
  }
  if (meta["annotations"].empty()) meta.erase("annotations");
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", std::move(meta)}, {"spec", spec}};
}

// The order in which surplus pods go (Kubernetes' ActivePods ranking, simplified): unscheduled
// first, then Pending < Unknown < Running, not ready before ready, newest first.
bool delete_first(const json& a, const json& b) {
  auto rank = [](const json& p) {
    int scheduled = str(at(p, "spec", "nodeName")).empty() ? 0 : 1;
    std::string ph = phase_of(p);
    int phase = ph == "Pending" ? 0 : ph == "Running" ? 2 : 1;
    return std::tuple(scheduled, phase, pod_ready(p) ? 1 : 0);
  };
  if (rank(a) != rank(b)) return rank(a) < rank(b);
  return str(at(a, "metadata", "creationTimestamp")) > str(at(b, "metadata", "creationTimestamp"));
}

// --- production listers and control ---

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& jobs, client::Informer* pods) : jobs_(jobs), pods_(pods) {}
  std::optional<json> job(const std::string& key) override { return jobs_.get(key); }
  std::vector<json> pods(const std::string& ns) override {
    return pods_ ? pods_->by_namespace(ns) : std::vector<json>{};
  }

 private:
  client::Informer& jobs_;
  client::Informer* pods_;
};

class ApiJobControl : public JobControl {
 public:
  explicit ApiJobControl(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    return api_->create(pod_type(), ns, pod);
  }
  Status delete_pod(const std::string& ns, const std::string& name) override {
    return api_->remove(pod_type(), ns, name);
  }
  Status patch_pod(const std::string& ns, const std::string& name, const json& patch) override {
    return api_->patch(pod_type(), ns, name, patch, client::PatchType::kStrategic).status();
  }
  Result<json> get_job(const std::string& ns, const std::string& name) override {
    return api_->get(job_type(), ns, name);
  }
  Result<json> update_status(const json& job) override {
    return api_->update_status(job_type(), job);
  }
  Status delete_job(const std::string& ns, const std::string& name) override {
    return api_->remove(job_type(), ns, name, "Background");
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

std::chrono::nanoseconds pod_failure_backoff(int failures, std::chrono::nanoseconds base,
                                             std::chrono::nanoseconds max) {
  if (failures <= 0) return std::chrono::nanoseconds(0);
  auto d = base;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

std::string format_indexes(const std::set<int>& indexes) {
  std::string out;
  for (auto it = indexes.begin(); it != indexes.end();) {
    int first = *it, last = first;
    for (++it; it != indexes.end() && *it == last + 1; ++it) last = *it;
    if (!out.empty()) out += ",";
    out += std::to_string(first);
    if (last > first) out += "-" + std::to_string(last);
  }
  return out;
}

// Kubernetes' limit on an Indexed Job's parallelism; here the most completed indexes kept.
constexpr size_t kMaxParsedIndexes = 100000;

std::set<int> parse_indexes(const std::string& s, int completions) {
  std::set<int> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    std::string part = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? s.size() : comma + 1;
    size_t dash = part.find('-');
    try {
      int a = std::stoi(part.substr(0, dash));
      int b = dash == std::string::npos ? a : std::stoi(part.substr(dash + 1));
      // A status may claim any range ("0-2147483646"): at most kMaxParsedIndexes are kept, so
      // neither the set nor this loop can grow with what a client wrote.
      for (int i = std::max(a, 0); i <= b && i < completions && out.size() < kMaxParsedIndexes;
           ++i)
        out.insert(i);
    } catch (const std::exception&) {
      // Kubernetes skips what it cannot parse.
    }
  }
  return out;
}

// The state of one sync of one Job.
struct JobController::Ctx {
  std::string key, ns, name, uid;
  json job;                // as last read or written (its status is what the API server holds)
  json status;             // the status being computed
  std::vector<json> pods;  // controlled by this Job
  WallTime now;
  bool indexed = false;
  int completions = -1;  // -1: unset (work queue)
  int parallelism = 1;
  int64_t backoff_limit = 6;
  std::set<int> completed;  // Indexed: completed indexes
  // Expectations were met when the sync began, before the pods were listed (Kubernetes reads
  // them first too): a pod created by the previous sync whose add event lands while this sync
  // writes status would otherwise meet them too late for `pods`, which lack it: one too many.
  bool satisfied = true;
};

JobController::JobController(JobOptions opts)
    : opts_(std::move(opts)), clock_(opts_.clock ? *opts_.clock : client::Clock::real()) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (opts_.max_pods_per_sync < 1) opts_.max_pods_per_sync = 1;
  if (!opts_.queue.clock) opts_.queue.clock = &clock_;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

JobController::~JobController() { queue_->shut_down(); }

void JobController::set_clients(Listers* listers, JobControl* control, EventSink* events) {
  listers_ = listers;
  control_ = control;
  events_ = events;
}

WallTime JobController::wall_now() const {
  return opts_.wall_clock ? opts_.wall_clock() : std::chrono::system_clock::now();
}

Status JobController::init(ControllerContext& ctx) {
  auto& job_inf = ctx.informers->informer(job_type());
  auto& pod_inf = ctx.informers->informer(pod_type());
  owned_listers_ = std::make_unique<InformerListers>(job_inf, &pod_inf);
  owned_control_ = std::make_unique<ApiJobControl>(ctx.api);
  set_clients(owned_listers_.get(), owned_control_.get(), ctx.events);
  job_inf.add_handlers({[this](const json& o) { on_job_add(o); },
                        [this](const json& a, const json& b) { on_job_update(a, b); },
                        [this](const json& o) { on_job_delete(o); }});
  pod_inf.add_handlers({[this](const json& o) { on_pod_add(o); },
                        [this](const json& a, const json& b) { on_pod_update(a, b); },
                        [this](const json& o) { on_pod_delete(o); }});
  return Status::ok();
}

void JobController::event(const json& job, bool warning, const std::string& reason,
                          const std::string& msg) {
  if (events_) events_->event(event_object(job), "Job", warning, reason, msg);
}

// --- handlers: they only enqueue (and settle expectations) ---

void JobController::enqueue(const json& job) { queue_->add(client::object_key(job)); }

void JobController::on_job_add(const json& job) { enqueue(job); }

void JobController::on_job_update(const json& old_job, const json& job) {
  if (uid_of(old_job) != uid_of(job)) on_job_delete(old_job);
  enqueue(job);
}

void JobController::on_job_delete(const json& job) {
  {
    std::lock_guard lock(mu_);
    expect_.erase(client::object_key(job));
    backoff_.erase(client::object_key(job));
    written_.erase(client::object_key(job));
  }
  enqueue(job);  // the sync removes the finalizers of its pods
}

std::string JobController::owner_key(const json& pod) {
  const json* ref = controller_ref(pod);
  if (ref == nullptr || str(at(*ref, "kind")) != "Job") return "";
  return ns_of(pod) + "/" + str(at(*ref, "name"));
}

void JobController::on_pod_add(const json& pod) {
  std::string key = owner_key(pod);
  if (key.empty()) return;
  {
    std::lock_guard lock(mu_);
    auto it = expect_.find(key);
    if (it != expect_.end() && it->second.adds > 0) --it->second.adds;
    if (deleting(pod) && it != expect_.end()) it->second.deletes.erase(uid_of(pod));
  }
  queue_->add(key);
}

void JobController::on_pod_update(const json& old_pod, const json& pod) {
  if (str(at(old_pod, "metadata", "resourceVersion")) ==
      str(at(pod, "metadata", "resourceVersion")))
    return;
  std::string key = owner_key(pod), old_key = owner_key(old_pod);
  if (!key.empty()) {
    std::lock_guard lock(mu_);
    auto it = expect_.find(key);
    if (it != expect_.end()) {
      if (deleting(pod)) it->second.deletes.erase(uid_of(pod));
      if (!has_finalizer(pod)) it->second.finalizers_removed.erase(uid_of(pod));
    }
  }
  if (!old_key.empty() && old_key != key) queue_->add(old_key);
  if (!key.empty()) queue_->add(key);
}

void JobController::on_pod_delete(const json& pod) {
  std::string key = owner_key(pod);
  if (key.empty()) return;
  {
    std::lock_guard lock(mu_);
    auto it = expect_.find(key);
    if (it != expect_.end()) {
      it->second.deletes.erase(uid_of(pod));
      it->second.finalizers_removed.erase(uid_of(pod));
    }
  }
  queue_->add(key);
}

bool JobController::expectations_met(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = expect_.find(key);
  if (it == expect_.end()) return true;
  if (it->second.adds <= 0 && it->second.deletes.empty()) return true;
  return clock_.now() - it->second.since > opts_.expectations_ttl;
}

// --- sync ---

Status JobController::sync(const std::string& key) {
  auto slash = key.find('/');
  const std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  auto job = listers_->job(key);

  Ctx c;
  c.key = key;
  c.ns = ns;
  c.name = name;
  c.now = wall_now();
  if (!job || deleting(*job)) {
    // Gone or going: nothing is counted any more; its pods must not keep the finalizer (they
    // would never go away). Kubernetes' cleanupOrphanPods.
    if (!job) {
      std::lock_guard lock(mu_);
      expect_.erase(key);
      backoff_.erase(key);
      written_.erase(key);
    }
    Status first;
    for (const auto& p : listers_->pods(ns)) {
      const json* ref = controller_ref(p);
      if (ref == nullptr || str(at(*ref, "kind")) != "Job" || str(at(*ref, "name")) != name ||
          (job && str(at(*ref, "uid")) != uid_of(*job)) || !has_finalizer(p))
        continue;
      if (auto st = remove_finalizer(c, p); !st && first.is_ok()) first = st;
    }
    return first;
  }

  c.job = *job;
  c.uid = uid_of(*job);
  {
    // The cache may not show our last status write yet (its watch event can come after the pod
    // events that write caused): counting from an older status would count again or create
    // too many pods. Kubernetes has the same race; a newer write of ours wins over the cache.
    std::lock_guard lock(mu_);
    auto it = written_.find(key);
    if (it != written_.end()) {
      if (uid_of(it->second) == c.uid && older_than(*job, it->second))
        c.job = it->second;
      else
        written_.erase(it);
    }
  }
  c.status = at(c.job, "status").is_object() ? at(c.job, "status") : json::object();
  c.satisfied = expectations_met(key);  // before the pods are listed (see Ctx::satisfied)
  const json& spec = at(c.job, "spec");
  c.indexed = str(at(spec, "completionMode")) == "Indexed";
  c.completions = at(spec, "completions").is_number_integer()
                      ? static_cast<int>(num(at(spec, "completions")))
                      : -1;
  c.parallelism = static_cast<int>(num(at(spec, "parallelism"), 1));
  c.backoff_limit = num(at(spec, "backoffLimit"), 6);
  if (c.indexed)
    c.completed = parse_indexes(str(at(c.status, "completedIndexes")), std::max(c.completions, 0));
  for (auto& p : listers_->pods(ns)) {
    const json* ref = controller_ref(p);
    if (ref != nullptr && str(at(*ref, "uid")) == c.uid) c.pods.push_back(std::move(p));
  }

  if (condition_true(c.status, "Complete") || condition_true(c.status, "Failed")) {
    // Finished: only stragglers' finalizers are left to remove.
    Status first;
    for (const auto& p : c.pods)
      if (has_finalizer(p))
        if (auto st = remove_finalizer(c, p); !st && first.is_ok()) first = st;
    return first;
  }

  if (auto st = track_pods(c); !st) return st.with_context("counting the pods of job " + key);
  if (auto st = manage(c); !st) {
    (void)write_status(c);  // keep what was counted
    return st.with_context("managing the pods of job " + key);
  }
  auto w = write_status(c);
  if (!w) return w.status().with_context("updating status of job " + key);
  return Status::ok();
}

// Job tracking with finalizers (Kubernetes' trackJobStatusAndRemoveFinalizers): record newly
// ended pods in uncountedTerminatedPods, remove their finalizers, then count them.
Status JobController::track_pods(Ctx& c) {
  json& unc = c.status["uncountedTerminatedPods"];
  if (!unc.is_object()) unc = json::object();
  std::set<std::string> succ = uid_set(at(unc, "succeeded")), fail = uid_set(at(unc, "failed"));
  std::set<std::string> removed;
  {
    std::lock_guard lock(mu_);
    removed = expect_[c.key].finalizers_removed;
  }
  const bool replace_terminating = str(at(at(c.job, "spec"), "podReplacementPolicy")) != "Failed";

  std::vector<json> to_remove;
  std::vector<std::pair<WallTime, bool>> newly_ended;  // finish time, succeeded
  bool recorded = false;
  for (const auto& p : c.pods) {
    if (!has_finalizer(p) || removed.count(uid_of(p))) continue;
    const std::string uid = uid_of(p);
    const bool succeeded = phase_of(p) == "Succeeded";
    // Deleted before succeeding counts as a failure (orphans that never reach Failed).
    const bool failed =
        phase_of(p) == "Failed" || (!succeeded && deleting(p) && replace_terminating);
    if (!succeeded && !failed) continue;
    to_remove.push_back(p);
    if (succ.count(uid) || fail.count(uid)) continue;  // recorded by an earlier sync
    if (succeeded) {
      if (c.indexed) {
        int ix = completion_index(p);
        if (ix < 0 || ix >= c.completions || c.completed.count(ix)) continue;  // not counted
        c.completed.insert(ix);
      }
      succ.insert(uid);
    } else {
      if (c.indexed) {
        int ix = completion_index(p);
        if (ix < 0 || ix >= c.completions) continue;
      }
      if (phase_of(p) == "Failed") {
        auto [action, message] = match_pod_failure_policy(at(c.job, "spec"), p);
        if (action == "Ignore") continue;  // neither a failure nor a reason to back off
        if (action == "FailJob" && !condition_true(c.status, "FailureTarget")) {
          // In the same write as the uncounted pod: the match must not be lost in a crash.
          set_condition(c.status, "FailureTarget", "True", "PodFailurePolicy", message, c.now);
          event(c.job, true, "PodFailurePolicy", message);
        }
      }
      fail.insert(uid);
    }
    recorded = true;
    newly_ended.push_back({finish_time(p, c.now), succeeded});
  }
  if (!newly_ended.empty()) {
    std::sort(newly_ended.begin(), newly_ended.end());
    std::lock_guard lock(mu_);
    Backoff& b = backoff_[c.key];
    for (const auto& [t, ok] : newly_ended) {
      if (ok) {
        b.failures = 0;
      } else {
        ++b.failures;
        b.last_failure = std::max(b.last_failure, t);
      }
    }
  }
  auto set_uncounted = [&] {
    unc["succeeded"] = json(std::vector<std::string>(succ.begin(), succ.end()));
    unc["failed"] = json(std::vector<std::string>(fail.begin(), fail.end()));
    if (succ.empty()) unc.erase("succeeded");
    if (fail.empty()) unc.erase("failed");
  };
  set_uncounted();
  if (recorded) {
    // Durable before any finalizer goes: a crash after the removal must still count the pod.
    auto w = write_status(c);
    if (!w) return w.status();
  }

  Status first;
  std::set<std::string> gone;  // finalizer removed (or pod gone)
  for (const auto& p : to_remove) {
    auto st = remove_finalizer(c, p);
    if (st)
      gone.insert(uid_of(p));
    else if (first.is_ok())
      first = st;
  }
  // Uncounted pods whose finalizer is gone (now, earlier, or with the pod) are counted.
  std::set<std::string> present;
  for (const auto& p : c.pods)
    if (has_finalizer(p) && !removed.count(uid_of(p))) present.insert(uid_of(p));
  int64_t add_succ = 0, add_fail = 0;
  for (auto it = succ.begin(); it != succ.end();) {
    if (gone.count(*it) || !present.count(*it)) {
      ++add_succ;
      it = succ.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = fail.begin(); it != fail.end();) {
    if (gone.count(*it) || !present.count(*it)) {
      ++add_fail;
      it = fail.erase(it);
    } else {
      ++it;
    }
  }
  c.status["succeeded"] = num(at(c.status, "succeeded")) + add_succ;
  c.status["failed"] = num(at(c.status, "failed")) + add_fail;
  set_uncounted();
  if (c.indexed) {
    std::string s = format_indexes(c.completed);
    if (s.empty())
      c.status.erase("completedIndexes");
    else
      c.status["completedIndexes"] = s;
  }
  return first;
}

Status JobController::remove_finalizer(Ctx& c, const json& pod) {
  // Expected before the call: the informer's update may arrive before the patch returns, and
  // it is what clears the expectation.
  const bool track = !c.key.empty() && !c.uid.empty();
  if (track) {
    std::lock_guard lock(mu_);
    expect_[c.key].finalizers_removed.insert(uid_of(pod));
  }
  json patch = {
      {"metadata",
       {{"$deleteFromPrimitiveList/finalizers", json::array({proto::kJobTrackingFinalizer})}}}};
  auto st = control_->patch_pod(ns_of(pod), name_of(pod), patch);
  if (st || st.code() == Code::kNotFound) return Status::ok();
  if (track) {
    std::lock_guard lock(mu_);
    expect_[c.key].finalizers_removed.erase(uid_of(pod));
  }
  return st.with_context("removing the finalizer of pod " + name_of(pod));
}

Status JobController::delete_pods(Ctx& c, const std::vector<json>& pods, int* deleted) {
  *deleted = 0;
  Status first;
  std::set<std::string> in_flight;
  {
    std::lock_guard lock(mu_);
    in_flight = expect_[c.key].deletes;
  }
  for (const auto& p : pods) {
    // Deleted already; the cache has not shown it yet.
    if (in_flight.count(uid_of(p))) continue;
    // Pods the controller deletes are not failures: the finalizer goes first.
    Status st = has_finalizer(p) ? remove_finalizer(c, p) : Status::ok();
    if (st) {
      {
        std::lock_guard lock(mu_);
        Expect& e = expect_[c.key];
        if (e.adds <= 0 && e.deletes.empty()) e.since = clock_.now();
        e.deletes.insert(uid_of(p));
      }
      st = control_->delete_pod(ns_of(p), name_of(p));
      if (st || st.code() == Code::kNotFound) {
        if (!st) {
          std::lock_guard lock(mu_);
          expect_[c.key].deletes.erase(uid_of(p));
        }
        ++*deleted;
        event(c.job, false, "SuccessfulDelete", "Deleted pod: " + name_of(p));
        continue;
      }
      std::lock_guard lock(mu_);
      expect_[c.key].deletes.erase(uid_of(p));
    }
    event(c.job, true, "FailedDelete", "Error deleting: " + st.message());
    if (first.is_ok()) first = st;
  }
  return first;
}

Status JobController::create_pods(Ctx& c, const std::vector<int>& indexes) {
  const int count = static_cast<int>(indexes.size());
  {
    std::lock_guard lock(mu_);
    Expect& e = expect_[c.key];
    if (e.adds <= 0 && e.deletes.empty()) e.since = clock_.now();
    e.adds += count;
  }
  int created = 0, next = 0;
  bool stop = false;
  Status first;
  // Slow start, as Kubernetes: a template the API refuses costs 1 call, then 2, 4, ...
  for (int batch = std::min(count, 1); batch > 0 && !stop;
       batch = std::min(2 * batch, count - next)) {
    for (int i = 0; i < batch && !stop; ++i) {
      auto r = control_->create_pod(c.ns, pod_from_template(c.job, indexes[next++]));
      if (r) {
        ++created;
        event(c.job, false, "SuccessfulCreate", "Created pod: " + name_of(*r));
        continue;
      }
      stop = true;
      // A namespace being deleted is neither reported nor retried.
      if (namespace_terminating(r.status())) continue;
      event(c.job, true, "FailedCreate", "Error creating: " + r.status().message());
      first = r.status();
    }
  }
  {
    // The pods not created never show up in the cache: stop waiting for them.
    std::lock_guard lock(mu_);
    Expect& e = expect_[c.key];
    e.adds = std::max(0, e.adds - (count - created));
  }
  if (created > 0) spdlog::info("job {}: created {} of {} pods", c.key, created, count);
  return first;
}

Status JobController::manage(Ctx& c) {
  json& st = c.status;
  const json& spec = at(c.job, "spec");
  const bool suspended = at(spec, "suspend").is_boolean() && at(spec, "suspend").get<bool>();
  std::vector<json> active_pods;
  for (const auto& p : c.pods)
    if (active(p)) active_pods.push_back(p);
  const auto& unc = at(st, "uncountedTerminatedPods");
  const int64_t succeeded =
      num(at(st, "succeeded")) + static_cast<int64_t>(uid_set(at(unc, "succeeded")).size());
  const int64_t failed =
      num(at(st, "failed")) + static_cast<int64_t>(uid_set(at(unc, "failed")).size());

  // Resume / start: startTime counts from when the Job (last) started running.
  if (!suspended) {
    if (condition_true(st, "Suspended")) {
      set_condition(st, "Suspended", "False", "JobResumed", "Job resumed", c.now);
      st["startTime"] = rfc3339(c.now);
      event(c.job, false, "Resumed", "Job resumed");
    }
    if (!st.contains("startTime")) st["startTime"] = rfc3339(c.now);
  }

  // Failure and success criteria, in Kubernetes' order.
  if (!condition_true(st, "FailureTarget") && !condition_true(st, "SuccessCriteriaMet")) {
    std::string reason, message;
    if (failed > c.backoff_limit || past_backoff_limit_on_failure(c.job, c.pods)) {
      reason = "BackoffLimitExceeded";
      message = "Job has reached the specified backoff limit";
    } else if (auto start = parse_time(at(st, "startTime"));
               !suspended && start && at(spec, "activeDeadlineSeconds").is_number_integer()) {
      auto deadline = proto::plus_seconds(*start, num(at(spec, "activeDeadlineSeconds")));
      if (c.now >= deadline) {
        reason = "DeadlineExceeded";
        message = "Job was active longer than specified deadline";
      } else {
        queue_->add_after(c.key, deadline - c.now);
      }
    }
    if (!reason.empty()) {
      set_condition(st, "FailureTarget", "True", reason, message, c.now);
      event(c.job, true, reason, message);
    } else {
      bool complete = false;
      if (c.indexed)
        complete = static_cast<int>(c.completed.size()) >= c.completions;
      else if (c.completions >= 0)
        complete = succeeded >= c.completions;
      else
        complete = succeeded > 0 && active_pods.empty();
      if (complete)
        set_condition(st, "SuccessCriteriaMet", "True", "CompletionsReached",
                      "Reached expected number of succeeded pods", c.now);
    }
  }

  // Finishing: no new pods; the remaining ones go; the final condition once none is left.
  for (const char* target : {"FailureTarget", "SuccessCriteriaMet"}) {
    if (!condition_true(st, target)) continue;
    int deleted = 0;
    Status del = delete_pods(c, active_pods, &deleted);
    bool busy = !del.is_ok() || !active_pods.empty() || !uid_set(at(unc, "succeeded")).empty() ||
                !uid_set(at(unc, "failed")).empty();
    for (const auto& p : c.pods)
      if (deleting(p) && !terminal(p)) busy = true;  // Kubernetes waits for terminating pods
    if (busy) return del;
    const json& cond = *find_condition(st, target);
    if (std::string(target) == "FailureTarget") {
      set_condition(st, "Failed", "True", str(at(cond, "reason")), str(at(cond, "message")), c.now);
    } else {
      set_condition(st, "Complete", "True", str(at(cond, "reason")), str(at(cond, "message")),
                    c.now);
      st["completionTime"] = rfc3339(c.now);
      event(c.job, false, "Completed", "Job completed");
    }
    return Status::ok();
  }

  if (suspended) {
    int deleted = 0;
    Status del = delete_pods(c, active_pods, &deleted);
    if (!condition_true(st, "Suspended")) {
      set_condition(st, "Suspended", "True", "JobSuspended", "Job suspended", c.now);
      event(c.job, false, "Suspended", "Job suspended");
    }
    return del;
  }
  if (!c.satisfied) return Status::ok();

  // Which pods should run: min(parallelism, what remains to complete).
  std::vector<json> surplus;
  std::vector<int> to_create;  // indexes (-1 for NonIndexed)
  // At most max_pods_per_sync new pods per sync: completions and parallelism may be as large as
  // int32 allows, and neither a loop nor a list may follow them.
  const auto cap = static_cast<size_t>(opts_.max_pods_per_sync);  // >= 1 (constructor)
  int64_t want;
  if (c.indexed) {
    want =
        std::min<int64_t>(c.parallelism, c.completions - static_cast<int64_t>(c.completed.size()));
    std::map<int, std::vector<json>> by_index;
    for (const auto& p : active_pods) {
      int ix = completion_index(p);
      if (ix < 0 || ix >= c.completions || c.completed.count(ix))
        surplus.push_back(p);  // no use (any more)
      else
        by_index[ix].push_back(p);
    }
    for (auto& [ix, ps] : by_index)  // one pod per index
      for (size_t i = 1; i < ps.size(); ++i) surplus.push_back(ps[i]);
    int64_t running = static_cast<int64_t>(by_index.size());
    for (auto it = by_index.rbegin(); running > want && it != by_index.rend(); ++it, --running)
      surplus.push_back(it->second[0]);  // highest indexes go first
    for (int ix = 0; ix < c.completions && running < want && to_create.size() < cap; ++ix)
      if (!c.completed.count(ix) && !by_index.count(ix)) {
        to_create.push_back(ix);
        ++running;
      }
  } else {
    if (c.completions < 0)
      want = succeeded > 0 ? static_cast<int64_t>(active_pods.size()) : c.parallelism;
    else
      want = std::min<int64_t>(c.parallelism, c.completions - succeeded);
    want = std::max<int64_t>(want, 0);
    int64_t n = static_cast<int64_t>(active_pods.size());
    if (n > want) {
      std::sort(active_pods.begin(), active_pods.end(), delete_first);
      surplus.assign(active_pods.begin(), active_pods.begin() + (n - want));
    }
    for (int64_t i = n; i < want && to_create.size() < cap; ++i) to_create.push_back(-1);
  }
  if (static_cast<int>(surplus.size()) > opts_.max_pods_per_sync)
    surplus.resize(opts_.max_pods_per_sync);

  int deleted = 0;
  Status first = delete_pods(c, surplus, &deleted);
  if (!to_create.empty()) {
    // Back-off after failed pods: 10 s, 20 s, 40 s, ... (at most 6 min) since the last one.
    std::chrono::nanoseconds wait{0};
    {
      std::lock_guard lock(mu_);
      auto it = backoff_.find(c.key);
      if (it != backoff_.end() && it->second.failures > 0) {
        auto until = it->second.last_failure +
                     std::chrono::duration_cast<WallTime::duration>(pod_failure_backoff(
                         it->second.failures, opts_.backoff_base, opts_.backoff_max));
        if (until > c.now) wait = until - c.now;
      }
    }
    if (wait > std::chrono::nanoseconds(0)) {
      queue_->add_after(c.key, wait);
    } else if (auto st = create_pods(c, to_create); !st && first.is_ok()) {
      first = st;
    }
  }
  return first;
}

Result<json> JobController::write_status(Ctx& c) {
  json& st = c.status;
  int64_t active_n = 0, ready = 0, terminating = 0;
  for (const auto& p : c.pods) {
    if (terminal(p)) continue;
    if (deleting(p)) {
      ++terminating;
    } else {
      ++active_n;
      if (pod_ready(p)) ++ready;
    }
  }
  st["active"] = active_n;
  st["ready"] = ready;
  st["terminating"] = terminating;
  for (const char* k : {"active", "succeeded", "failed"})
    if (num(at(st, k)) == 0) st.erase(k);  // omitempty
  if (!st["uncountedTerminatedPods"].is_object()) st["uncountedTerminatedPods"] = json::object();
  if (at(c.job, "status") == st) return c.job;

  json target = c.job;
  target["status"] = st;
  auto r = control_->update_status(target);
  // A conflict is not retried on a fresh read with this status: the status accumulates counts,
  // and someone else's write (another status writer) must not be overwritten. The key is synced
  // again; what this sync did is safe to redo (uncounted pods whose finalizer is gone are
  // counted by the next sync).
  if (!r && r.status().code() == Code::kNotFound) return c.job;  // deleted: nothing to report
  if (!r) return r.status();
  c.job = *r;
  std::lock_guard lock(mu_);
  written_[c.key] = c.job;
  return c.job;
}

// --- workers ---

void JobController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("job: {} (retrying)", st.to_string());
        else
          spdlog::warn("job: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

// --- TTL after finished ---

TtlAfterFinishedController::TtlAfterFinishedController(TtlOptions opts)
    : opts_(std::move(opts)), clock_(opts_.clock ? *opts_.clock : client::Clock::real()) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (!opts_.queue.clock) opts_.queue.clock = &clock_;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

TtlAfterFinishedController::~TtlAfterFinishedController() { queue_->shut_down(); }

void TtlAfterFinishedController::set_clients(Listers* listers, JobControl* control) {
  listers_ = listers;
  control_ = control;
}

Status TtlAfterFinishedController::init(ControllerContext& ctx) {
  auto& job_inf = ctx.informers->informer(job_type());
  owned_listers_ = std::make_unique<InformerListers>(job_inf, nullptr);
  owned_control_ = std::make_unique<ApiJobControl>(ctx.api);
  set_clients(owned_listers_.get(), owned_control_.get());
  job_inf.add_handlers({[this](const json& o) { on_job(o); },
                        [this](const json&, const json& b) { on_job(b); }, nullptr});
  return Status::ok();
}

void TtlAfterFinishedController::on_job(const json& job) {
  if (deleting(job) || !time_left(job)) return;
  queue_->add(client::object_key(job));
}

std::optional<std::chrono::nanoseconds> TtlAfterFinishedController::time_left(
    const json& job) const {
  const json& ttl = at(at(job, "spec"), "ttlSecondsAfterFinished");
  if (!ttl.is_number_integer()) return std::nullopt;
  const json& st = at(job, "status");
  const json* cond = nullptr;
  for (const char* type : {"Complete", "Failed"})
    if (condition_true(st, type)) cond = find_condition(st, type);
  if (cond == nullptr) return std::nullopt;
  auto finished = parse_time(at(*cond, "lastTransitionTime"));
  if (!finished) return std::nullopt;  // Kubernetes: "unable to find the time when ..."
  auto now = opts_.wall_clock ? opts_.wall_clock() : std::chrono::system_clock::now();
  return *finished + std::chrono::seconds(ttl.get<int64_t>()) - now;
}

Status TtlAfterFinishedController::sync(const std::string& key) {
  auto job = listers_->job(key);
  if (!job || deleting(*job)) return Status::ok();
  auto left = time_left(*job);
  if (!left) return Status::ok();
  if (*left > std::chrono::nanoseconds(0)) {
    queue_->add_after(key, *left);
    return Status::ok();
  }
  // The cache may lag (the TTL or the Job may have changed): decide on a fresh read.
  auto fresh = control_->get_job(ns_of(*job), name_of(*job));
  if (!fresh) return fresh.status().code() == Code::kNotFound ? Status::ok() : fresh.status();
  if (uid_of(*fresh) != uid_of(*job)) return Status::ok();
  left = time_left(*fresh);
  if (!left) return Status::ok();
  if (*left > std::chrono::nanoseconds(0)) {
    queue_->add_after(key, *left);
    return Status::ok();
  }
  spdlog::info("ttl-after-finished: deleting job {}", key);
  auto st = control_->delete_job(ns_of(*job), name_of(*job));
  if (!st && st.code() != Code::kNotFound) return st.with_context("deleting expired job " + key);
  return Status::ok();
}

void TtlAfterFinishedController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        spdlog::warn("ttl-after-finished: {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::job
