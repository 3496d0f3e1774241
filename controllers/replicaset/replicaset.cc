#include "controllers/replicaset/replicaset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "controllers/api_util.h"
#include "controllers/replicaset/pod_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/replicaset.h"
#include "proto/selector.h"
#include "proto/time.h"

namespace skiff::controllers::replicaset {

namespace {

constexpr auto rs_type = &resource_type<proto::replicaset_resource>;

constexpr auto pod_type = &resource_type<proto::pod_resource>;



int32_t replicas_of(const json& rs) {
  return static_cast<int32_t>(num(at(rs, "spec", "replicas"), 1));
}

// The ReplicaSet as a pod's controller reference (metav1.NewControllerRef).
json controller_ref_to(const json& rs) {
  return {{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"name", name_of(rs)},
          {"uid", uid_of(rs)},       {"controller", true},   {"blockOwnerDeletion", true}};
}

// The object the events are about, with its type filled in.
json event_object(const json& rs) {
  json o = {{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}};
  o["metadata"] = {{"name", name_of(rs)}, {"namespace", ns_of(rs)}, {"uid", uid_of(rs)}};
  if (auto rv = at(rs, "metadata", "resourceVersion"); rv.is_string())
    o["metadata"]["resourceVersion"] = rv;
  return o;
}

// controller.GetPodFromTemplate: labels, annotations and finalizers of the template, the spec,
// generateName "<rs>-" and the controller reference.
Result<json> pod_from_template(const json& rs) {
  const json& tmpl = at(rs, "spec", "template");
  const json& labels = at(tmpl, "metadata", "labels");
  if (!labels.is_object() || labels.empty())
    return Status::invalid("unable to create pods, no labels");
  std::string name = name_of(rs);
  json meta = {{"generateName", name.size() < 253 ? name + "-" : name},
               {"namespace", ns_of(rs)},
               {"labels", labels},
               {"ownerReferences", json::array({controller_ref_to(rs)})}};
  for (const char* k : {"annotations", "finalizers"})
    if (const json& v = at(tmpl, "metadata", k); !v.is_null() && !v.empty()) meta[k] = v;
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", std::move(meta)}};
  pod["spec"] = at(tmpl, "spec").is_object() ? at(tmpl, "spec") : json::object();
  return pod;
}

// Every label of the template is on the pod (fullyLabeledReplicas).
bool has_labels(const json& pod, const json& want) {
  if (!want.is_object()) return true;
  const json& have = at(pod, "metadata", "labels");
  for (auto it = want.begin(); it != want.end(); ++it) {
    if (!have.is_object()) return false;
    auto h = have.find(it.key());
    if (h == have.end() || *h != it.value()) return false;
  }
  return true;
}

// --- production listers and pod control ---

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& rs, client::Informer& pods) : rs_(rs), pods_(pods) {}
  std::optional<json> replicaset(const std::string& key) override { return rs_.get(key); }
  std::vector<json> replicasets(const std::string& ns) override { return rs_.by_namespace(ns); }
  std::vector<json> pods(const std::string& ns) override { return pods_.by_namespace(ns); }

 private:
  client::Informer& rs_;
  client::Informer& pods_;
};

class ApiPodControl : public PodControl {
 public:
  explicit ApiPodControl(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    return api_->create(pod_type(), ns, pod);
  }
  Status delete_pod(const std::string& ns, const std::string& name) override {
    return api_->remove(pod_type(), ns, name);
  }
  Status patch_pod(const std::string& ns, const std::string& name, const json& patch) override {
    auto r = api_->patch(pod_type(), ns, name, patch, client::PatchType::kStrategic);
    return r.status();
  }
  Result<json> get_replicaset(const std::string& ns, const std::string& name) override {
    return api_->get(rs_type(), ns, name);
  }
  Result<json> update_status(const json& rs) override { return api_->update_status(rs_type(), rs); }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

ReplicaSetController::ReplicaSetController(ReplicaSetOptions opts)
    : opts_(std::move(opts)),
      clock_(opts_.clock ? *opts_.clock : client::Clock::real()),
      expectations_(clock_, opts_.expectations_ttl) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (opts_.burst_replicas < 1) opts_.burst_replicas = 1;
  if (opts_.max_parallel_calls < 1) opts_.max_parallel_calls = 1;
  if (!opts_.queue.clock) opts_.queue.clock = &clock_;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

ReplicaSetController::~ReplicaSetController() { queue_->shut_down(); }

void ReplicaSetController::set_clients(Listers* listers, PodControl* pods, EventSink* events) {
  listers_ = listers;
  pods_ = pods;
  events_ = events;
}

std::chrono::system_clock::time_point ReplicaSetController::wall_now() const {
  return opts_.wall_clock ? opts_.wall_clock() : std::chrono::system_clock::now();
}

Status ReplicaSetController::init(ControllerContext& ctx) {
  auto& rs_inf = ctx.informers->informer(rs_type());
  auto& pod_inf = ctx.informers->informer(pod_type());
  owned_listers_ = std::make_unique<InformerListers>(rs_inf, pod_inf);
  owned_pods_ = std::make_unique<ApiPodControl>(ctx.api);
  set_clients(owned_listers_.get(), owned_pods_.get(), ctx.events);
  rs_inf.add_handlers({[this](const json& o) { on_rs_add(o); },
                       [this](const json& a, const json& b) { on_rs_update(a, b); },
                       [this](const json& o) { on_rs_delete(o); }});
  pod_inf.add_handlers({[this](const json& o) { on_pod_add(o); },
                        [this](const json& a, const json& b) { on_pod_update(a, b); },
                        [this](const json& o) { on_pod_delete(o); }});
  return Status::ok();
}

// --- handlers: they only enqueue (and count observed creates/deletes) ---

void ReplicaSetController::enqueue(const json& rs) { queue_->add(client::object_key(rs)); }

void ReplicaSetController::on_rs_add(const json& rs) { enqueue(rs); }

void ReplicaSetController::on_rs_update(const json& old_rs, const json& rs) {
  // Deleted and re-created under the same name between two events: the old one's
  // expectations must not hold up the new one.
  if (uid_of(old_rs) != uid_of(rs)) on_rs_delete(old_rs);
  enqueue(rs);
}

void ReplicaSetController::on_rs_delete(const json& rs) {
  expectations_.forget(client::object_key(rs));
  enqueue(rs);
}

std::optional<json> ReplicaSetController::resolve_controller(const json& pod) {
  const json* ref = controller_ref(pod);
  if (ref == nullptr || str(at(*ref, "kind")) != "ReplicaSet") return std::nullopt;
  auto rs = listers_->replicaset(ns_of(pod) + "/" + str(at(*ref, "name")));
  if (!rs || uid_of(*rs) != str(at(*ref, "uid"))) return std::nullopt;  // another one by that name
  return rs;
}

std::vector<json> ReplicaSetController::matching_replicasets(const json& pod) {
  std::vector<json> out;
  const json& labels = at(pod, "metadata", "labels");
  for (auto& rs : listers_->replicasets(ns_of(pod))) {
    auto sel = proto::LabelSelector::from_json(at(rs, "spec", "selector"), "spec.selector");
    if (!sel || sel->empty() || !sel->matches_json(labels)) continue;
    out.push_back(std::move(rs));
  }
  return out;
}

void ReplicaSetController::on_pod_add(const json& pod) {
  if (is_terminating(pod)) {
    // Seen for the first time already terminating (e.g. after a restart): it will not count.
    on_pod_delete(pod);
    return;
  }
  if (controller_ref(pod) != nullptr) {
    if (auto rs = resolve_controller(pod)) {
      std::string key = client::object_key(*rs);
      expectations_.creation_observed(key);
      queue_->add(key);
    }
    return;
  }
  for (const auto& rs : matching_replicasets(pod)) enqueue(rs);  // an orphan: maybe adopted
}

void ReplicaSetController::on_pod_update(const json& old_pod, const json& pod) {
  const json& old_rv = at(old_pod, "metadata", "resourceVersion");
  if (!old_rv.is_null() && old_rv == at(pod, "metadata", "resourceVersion")) return;
  bool labels_changed = at(old_pod, "metadata", "labels") != at(pod, "metadata", "labels");
  if (is_terminating(pod)) {
    // A graceful deletion starts: the pod stops counting now, not when the kubelet removes it.
    on_pod_delete(pod);
    if (labels_changed) on_pod_delete(old_pod);
    return;
  }
  const json* old_ref = controller_ref(old_pod);
  const json* cur_ref = controller_ref(pod);
  bool ref_changed =
      (old_ref == nullptr) != (cur_ref == nullptr) || (old_ref != nullptr && *old_ref != *cur_ref);
  if (ref_changed && old_ref != nullptr)
    if (auto rs = resolve_controller(old_pod)) enqueue(*rs);
  if (cur_ref != nullptr) {
    if (auto rs = resolve_controller(pod)) enqueue(*rs);
    return;
  }
  if (labels_changed || ref_changed) {
    for (const auto& rs : matching_replicasets(pod)) enqueue(rs);
    if (labels_changed)
      for (const auto& rs : matching_replicasets(old_pod)) enqueue(rs);
  }
}

void ReplicaSetController::on_pod_delete(const json& pod) {
  auto rs = resolve_controller(pod);
  if (!rs) return;
  std::string key = client::object_key(*rs);
  expectations_.deletion_observed(key, pod_key(pod));
  queue_->add(key);
}

// --- sync ---

Status ReplicaSetController::sync(const std::string& key) {
  auto rs = listers_->replicaset(key);
  if (!rs) {
    expectations_.forget(key);
    return Status::ok();
  }
  // Read before looking at the pods: an event that lowers them afterwards only makes the next
  // sync act, never this one act twice.
  bool needs_sync = expectations_.satisfied(key);
  auto sel = proto::LabelSelector::from_json(at(*rs, "spec", "selector"), "spec.selector");
  if (!sel) {
    // Validation keeps these out; retrying cannot fix it.
    spdlog::warn("replicaset {}: invalid selector: {}", key, sel.status().message());
    return Status::ok();
  }

  std::vector<json> active;
  for (auto& p : listers_->pods(ns_of(*rs)))
    if (is_pod_active(p)) active.push_back(std::move(p));
  auto claimed = claim_pods(*rs, active);
  if (!claimed) return claimed.status().with_context("claiming pods for replicaset " + key);

  Status manage_err;
  if (needs_sync && !is_terminating(*rs)) manage_err = manage_replicas(*rs, key, *claimed);

  auto updated = update_status(*rs, *claimed, manage_err);
  if (!updated) return updated.status().with_context("updating status of replicaset " + key);

  if (manage_err.is_ok()) {
    // Come back when the next ready pod has been ready for minReadySeconds.
    int min_ready = static_cast<int>(num(at(*updated, "spec", "minReadySeconds")));
    auto now = wall_now();
    std::optional<std::chrono::nanoseconds> next;
    for (const auto& p : *claimed)
      if (auto d = time_until_available(p, min_ready, now); d && (!next || *d < *next)) next = d;
    if (next)
      queue_->add_after(
          key, std::max(*next, std::chrono::nanoseconds(0)) + std::chrono::milliseconds(100));
  }
  return manage_err.is_ok() ? Status::ok()
                            : manage_err.with_context("managing the pods of replicaset " + key);
}

Result<std::vector<json>> ReplicaSetController::claim_pods(const json& rs,
                                                           const std::vector<json>& pods) {
  auto sel = proto::LabelSelector::from_json(at(rs, "spec", "selector"), "spec.selector");
  if (!sel) return sel.status();
  const std::string uid = uid_of(rs);
  const bool deleting = is_terminating(rs);
  std::optional<Status> can_adopt;  // checked once, before the first adoption
  std::vector<json> claimed;
  Status first_err;
  int errors = 0;
  auto fail = [&](Status st) {
    if (errors++ == 0) first_err = std::move(st);
  };

  for (const auto& pod : pods) {
    bool matches = sel->matches_json(at(pod, "metadata", "labels"));
    const json* ref = controller_ref(pod);
    if (ref != nullptr) {
      if (str(at(*ref, "uid")) != uid) continue;  // another controller's
      if (matches) {
        claimed.push_back(pod);
        continue;
      }
      if (deleting) continue;
      // Ours, but the labels no longer match: let it go.
      json patch = {{"metadata",
                     {{"ownerReferences", json::array({{{"$patch", "delete"}, {"uid", uid}}})},
                      {"uid", uid_of(pod)}}}};
      auto st = pods_->patch_pod(ns_of(pod), name_of(pod), patch);
      if (st) {
        spdlog::info("replicaset {}/{}: released pod {} (labels no longer match)", ns_of(rs),
                     name_of(rs), name_of(pod));
      } else if (st.code() != Code::kNotFound && st.code() != Code::kInvalid) {
        // NotFound: gone; Invalid: its uid changed or it is being deleted. Nothing to release.
        fail(st.with_context("releasing pod " + name_of(pod)));
      }
      continue;
    }
    if (deleting || !matches || is_terminating(pod)) continue;
    if (!can_adopt) {
      // The cache may not show yet that the ReplicaSet is being deleted: check the API server,
      // so a dying ReplicaSet never adopts (its pods would be garbage collected with it).
      auto fresh = pods_->get_replicaset(ns_of(rs), name_of(rs));
      if (!fresh)
        can_adopt = fresh.status().with_context("checking replicaset before adopting");
      else if (uid_of(*fresh) != uid)
        can_adopt = Status::conflict("original replicaset " + ns_of(rs) + "/" + name_of(rs) +
                                     " is gone: got uid " + uid_of(*fresh) + ", wanted " + uid);
      else if (is_terminating(*fresh))
        can_adopt = Status::conflict("replicaset " + ns_of(rs) + "/" + name_of(rs) +
                                     " has just been deleted at " +
                                     str(at(*fresh, "metadata", "deletionTimestamp")));
      else
        can_adopt = Status::ok();
    }
    if (!*can_adopt) {
      fail(*can_adopt);
      continue;
    }
    json patch = {
        {"metadata",
         {{"ownerReferences", json::array({controller_ref_to(rs)})}, {"uid", uid_of(pod)}}}};
    auto st = pods_->patch_pod(ns_of(pod), name_of(pod), patch);
    if (st) {
      spdlog::info("replicaset {}/{}: adopted pod {}", ns_of(rs), name_of(rs), name_of(pod));
      claimed.push_back(pod);
    } else if (st.code() != Code::kNotFound) {
      fail(st.with_context("adopting pod " + name_of(pod)));
    }
  }
  if (errors > 0)
    return errors == 1 ? first_err
                       : Status(first_err.code(), first_err.message() + " (and " +
                                                      std::to_string(errors - 1) + " more)");
  return claimed;
}

Status ReplicaSetController::manage_replicas(const json& rs, const std::string& key,
                                             const std::vector<json>& pods) {
  int diff = static_cast<int>(pods.size()) - replicas_of(rs);
  if (diff < 0) return create_pods(rs, key, std::min(-diff, opts_.burst_replicas));
  if (diff > 0) return delete_pods(rs, key, pods, std::min(diff, opts_.burst_replicas));
  return Status::ok();
}

void ReplicaSetController::parallel(int n, const std::function<void(int)>& fn) {
  int threads = std::min(n, opts_.max_parallel_calls);
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int> next{0};
  std::vector<std::jthread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i; (i = next++) < n;) fn(i);
    });
}  // the jthreads join here

Status ReplicaSetController::create_pods(const json& rs, const std::string& key, int count) {
  // Expect them all before the first call: the informer may deliver an add before we return.
  expectations_.expect_creations(key, count);
  auto pod = pod_from_template(rs);
  if (!pod) {
    for (int i = 0; i < count; ++i) expectations_.creation_observed(key);
    if (events_)
      events_->event(event_object(rs), "ReplicaSet", true, "FailedCreate",
                     "Error creating: " + pod.status().message());
    return pod.status();
  }
  const std::string ns = ns_of(rs);
  enum class Outcome { kCreated, kFailed, kNamespaceGone };
  int created = 0, remaining = count;
  Status first_err;
  bool stop = false;
  // Slow start: a template that cannot be created (quota, admission, validation) costs one
  // call, then 2, 4, ... instead of `count` failing calls.
  for (int batch = std::min(remaining, 1); batch > 0 && !stop;
       batch = std::min(2 * batch, remaining)) {
    std::vector<Outcome> out(batch, Outcome::kFailed);
    std::vector<Status> errs(batch);
    parallel(batch, [&](int i) {
      auto r = pods_->create_pod(ns, *pod);
      if (r) {
        out[i] = Outcome::kCreated;
        if (events_)
          events_->event(event_object(rs), "ReplicaSet", false, "SuccessfulCreate",
                         "Created pod: " + name_of(*r));
      } else if (namespace_terminating(r.status())) {
        out[i] = Outcome::kNamespaceGone;
      } else {
        errs[i] = r.status();
        if (events_)
          events_->event(event_object(rs), "ReplicaSet", true, "FailedCreate",
                         "Error creating: " + r.status().message());
      }
    });
    for (int i = 0; i < batch; ++i) {
      if (out[i] == Outcome::kCreated) {
        ++created;
      } else {
        stop = true;
        if (out[i] == Outcome::kFailed && first_err.is_ok()) first_err = errs[i];
      }
    }
    remaining -= batch;
  }
  // The pods not created will never show up in the cache: stop waiting for them.
  for (int i = created; i < count; ++i) expectations_.creation_observed(key);
  if (created > 0 || !first_err.is_ok())
    spdlog::info("replicaset {}: created {} of {} pods{}", key, created, count,
                 first_err.is_ok() ? "" : " (" + first_err.message() + ")");
  return first_err;
}

std::vector<json> ReplicaSetController::related_pods(const json& rs) {
  const json* ref = controller_ref(rs);
  if (ref == nullptr) return {};
  const std::string owner = str(at(*ref, "uid"));
  std::vector<json> out;
  std::set<std::string> seen;
  auto all_pods = listers_->pods(ns_of(rs));
  for (const auto& other : listers_->replicasets(ns_of(rs))) {
    const json* oref = controller_ref(other);
    if (oref == nullptr || str(at(*oref, "uid")) != owner) continue;
    auto sel = proto::LabelSelector::from_json(at(other, "spec", "selector"), "spec.selector");
    if (!sel) continue;
    for (const auto& p : all_pods)
      if (sel->matches_json(at(p, "metadata", "labels")) && seen.insert(uid_of(p)).second)
        out.push_back(p);
  }
  return out;
}

Status ReplicaSetController::delete_pods(const json& rs, const std::string& key,
                                         const std::vector<json>& pods, int count) {
  auto victims = pods_to_delete(pods, related_pods(rs), count, wall_now());
  std::vector<std::string> keys;
  for (const auto& p : victims) keys.push_back(pod_key(p));
  expectations_.expect_deletions(key, keys);
  std::vector<Status> errs(victims.size());
  parallel(static_cast<int>(victims.size()), [&](int i) {
    const json& p = victims[i];
    auto st = pods_->delete_pod(ns_of(p), name_of(p));
    if (st) {
      if (events_)
        events_->event(event_object(rs), "ReplicaSet", false, "SuccessfulDelete",
                       "Deleted pod: " + name_of(p));
      return;
    }
    // The informer will not see this deletion (or it was already seen): stop waiting for it.
    expectations_.deletion_observed(key, keys[i]);
    if (st.code() == Code::kNotFound) return;
    errs[i] = st;
    if (events_)
      events_->event(event_object(rs), "ReplicaSet", true, "FailedDelete",
                     "Error deleting: " + st.message());
  });
  int deleted = 0;
  Status first_err;
  for (const auto& st : errs) {
    if (st.is_ok())
      ++deleted;
    else if (first_err.is_ok())
      first_err = st;
  }
  spdlog::info("replicaset {}: deleted {} of {} surplus pods{}", key, deleted, count,
               first_err.is_ok() ? "" : " (" + first_err.message() + ")");
  return first_err;
}

Result<json> ReplicaSetController::update_status(const json& rs, const std::vector<json>& pods,
                                                 const Status& manage_err) {
  const json& tmpl_labels = at(at(rs, "spec", "template"), "metadata", "labels");
  int min_ready = static_cast<int>(num(at(rs, "spec", "minReadySeconds")));
  auto now = wall_now();
  int64_t fully_labeled = 0, ready = 0, available = 0;
  for (const auto& p : pods) {
    if (has_labels(p, tmpl_labels)) ++fully_labeled;
    if (is_pod_ready(p)) {
      ++ready;
      if (is_pod_available(p, min_ready, now)) ++available;
    }
  }

  const json& old = at(rs, "status");
  json conditions = at(old, "conditions").is_array() ? at(old, "conditions") : json::array();
  auto failure = std::find_if(conditions.begin(), conditions.end(),
                              [](const json& c) { return str(at(c, "type")) == "ReplicaFailure"; });
  if (!manage_err.is_ok() && failure == conditions.end()) {
    int diff = static_cast<int>(pods.size()) - replicas_of(rs);
    json cond = {{"type", "ReplicaFailure"},
                 {"status", "True"},
                 {"lastTransitionTime", proto::format_rfc3339(now)},
                 {"message", manage_err.message()}};
    if (diff != 0) cond["reason"] = diff < 0 ? "FailedCreate" : "FailedDelete";
    conditions.push_back(std::move(cond));
  } else if (manage_err.is_ok() && failure != conditions.end()) {
    conditions.erase(failure);
  }

  const int64_t generation = num(at(rs, "metadata", "generation"));
  auto same = [&](const json& s) {
    const json& c = at(s, "conditions");
    return num(at(s, "replicas")) == static_cast<int64_t>(pods.size()) &&
           num(at(s, "fullyLabeledReplicas")) == fully_labeled &&
           num(at(s, "readyReplicas")) == ready && num(at(s, "availableReplicas")) == available &&
           num(at(s, "observedGeneration")) == generation &&
           (c.is_array() ? c : json::array()) == conditions;
  };
  if (same(old)) return rs;

  json status = old.is_object() ? old : json::object();
  status["replicas"] = pods.size();
  status["fullyLabeledReplicas"] = fully_labeled;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["observedGeneration"] = generation;
  if (conditions.empty())
    status.erase("conditions");
  else
    status["conditions"] = conditions;

  json target = rs;
  target["status"] = status;
  auto r = pods_->update_status(target);
  if (r) return r;
  // Stale resourceVersion (someone scaled it meanwhile): once more on a fresh read, as
  // Kubernetes does; a further failure is retried by the queue.
  auto fresh = pods_->get_replicaset(ns_of(rs), name_of(rs));
  if (!fresh) {
    if (fresh.status().code() == Code::kNotFound) return rs;  // deleted: nothing to report
    return r.status();
  }
  if (uid_of(*fresh) != uid_of(rs)) return rs;
  (*fresh)["status"] = status;
  (*fresh)["status"]["observedGeneration"] = generation;
  return pods_->update_status(*fresh);
}

// --- workers ---

void ReplicaSetController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("replicaset: {} (retrying)", st.to_string());
        else
          spdlog::warn("replicaset: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::replicaset
