#include "controllers/scheduler/scheduler.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "controllers/scheduler/algorithm.h"
#include "controllers/scheduler/filters.h"
#include "controllers/scheduler/recorder.h"
#include "controllers/scheduler/scores.h"
#include "controllers/scheduler/volume_binding.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/node.h"
#include "proto/pod.h"
#include "proto/storage.h"

namespace skiff::scheduler {

// ---- Histogram

const double Histogram::kBounds[Histogram::kBuckets] = {
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

Histogram::Histogram() {
  for (auto& c : counts_) c = 0;
}

void Histogram::observe(double seconds) {
  int i = 0;
  while (i < kBuckets && seconds > kBounds[i]) ++i;
  ++counts_[i];
  sum_micros_ += static_cast<int64_t>(seconds * 1e6);
}

std::string Histogram::text(const std::string& name) const {
  std::ostringstream o;
  int64_t cum = 0;
  for (int i = 0; i < kBuckets; ++i) {
    cum += counts_[i];
    o << name << "_bucket{le=\"" << kBounds[i] << "\"} " << cum << "\n";
  }
  cum += counts_[kBuckets];
  o << name << "_bucket{le=\"+Inf\"} " << cum << "\n";
  o << name << "_sum " << static_cast<double>(sum_micros_.load()) / 1e6 << "\n";
  o << name << "_count " << cum << "\n";
  return o.str();
}

// ---- Scheduler

Scheduler::Scheduler(std::shared_ptr<client::ApiClient> api, SchedulerOptions opts)
    : api_(std::move(api)),
      opts_(std::move(opts)),
      queue_(opts_.queue),
      recorder_(std::make_unique<Recorder>(api_, opts_.scheduler_name, opts_.identity)),
      rng_(opts_.seed ? opts_.seed : std::random_device{}()) {}

Scheduler::~Scheduler() = default;

void Scheduler::handle_pod_add(const json& obj) {
  auto p = pod_info_from_json(obj);
  if (!p.is_ok()) {
    spdlog::warn("{}", p.status().to_string());
    return;
  }
  if (!p->node_name.empty()) {
    if (p->phase == "Succeeded" || p->phase == "Failed") {
      // A finished pod frees its node's resources and ports.
      bool placed = !cache_.node_of(p->key).empty();
      cache_.remove_pod(p->key);
      if (placed) queue_.move_all_on_event();
    } else {
      cache_.add_pod(*p);
    }
    queue_.remove(p->key);
    return;
  }
  if (needs_scheduling(*p, opts_.scheduler_name))
    queue_.add(p->key, p->priority);
  else
    queue_.remove(p->key);
}

namespace {
// Whether a change can alter where a pod fits: its spec or the metadata filters read. Status
// updates (our own PodScheduled patch among them) cannot, as kube-scheduler's isPodUpdated.
bool scheduling_relevant_change(const json& a, const json& b) {
  static const json kNull;
  auto field = [](const json& o, const char* f) -> const json& {
    auto it = o.find(f);
    return it == o.end() ? kNull : *it;
  };
  if (field(a, "spec") != field(b, "spec")) return true;
  const json& ma = field(a, "metadata");
  const json& mb = field(b, "metadata");
  if (!ma.is_object() || !mb.is_object()) return true;
  for (const char* f : {"labels", "annotations", "ownerReferences", "deletionTimestamp"})
    if (field(ma, f) != field(mb, f)) return true;
  return false;
}
}  // namespace

void Scheduler::handle_pod_update(const json& old_obj, const json& obj) {
  // A pod that got its node is confirmed in the cache, one that finished frees its node; a
  // pending one is queued again only when something that decides its placement changed.
  auto spec = obj.find("spec");
  bool pending =
      spec != obj.end() && spec->is_object() && spec->value("nodeName", std::string()).empty();
  if (pending && !scheduling_relevant_change(old_obj, obj)) return;
  handle_pod_add(obj);
}

void Scheduler::handle_pod_delete(const json& obj) {
  std::string key = client::object_key(obj);
  bool placed = !cache_.node_of(key).empty();
  cache_.remove_pod(key);
  queue_.remove(key);
  if (placed) queue_.move_all_on_event();  // its resources and ports are free now
}

void Scheduler::handle_node(const json& obj) {
  auto n = node_info_from_json(obj);
  if (!n.is_ok()) {
    spdlog::warn("{}", n.status().to_string());
    return;
  }
  // Only a change that can make a pod fit wakes the parked pods (kubelets update their Node's
  // heartbeat every few seconds).
  if (cache_.upsert_node(*n)) queue_.move_all_on_event();
}

void Scheduler::handle_node_delete(const json& obj) { cache_.remove_node(client::object_key(obj)); }

void Scheduler::handle_storage_change() { queue_.move_all_on_event(); }

Scheduler::Result Scheduler::find_node(const PodInfo& pod) {
  Result res;
  cache_.with_nodes([&](const std::vector<const NodeInfo*>& nodes) {
    Placement p =
        scheduler::find_node(pod, nodes, opts_.percentage_of_nodes_to_score, next_start_, rng_);
    res.node = std::move(p.node);
    res.message = std::move(p.message);
  });
  return res;
}

void Scheduler::schedule_one(const QueuedPod& qp) {
  auto obj = pods_->get(qp.key);
  if (!obj) {
    queue_.done(qp.key);  // deleted meanwhile
    return;
  }
  auto p = pod_info_from_json(*obj);
  if (!p.is_ok()) {
    spdlog::warn("{}", p.status().to_string());
    queue_.done(qp.key);
    return;
  }
  PodInfo& pod = *p;
  // Bound meanwhile, or assumed with its binding still in flight (an update to the pod may
  // have queued it again).
  if (!needs_scheduling(pod, opts_.scheduler_name) || !cache_.node_of(pod.key).empty()) {
    queue_.done(qp.key);
    return;
  }
  // The pod's PodScheduled condition as it stands (null when it has none).
  json scheduled_cond;
  if (auto st = obj->find("status"); st != obj->end() && st->is_object())
    if (auto conds = st->find("conditions"); conds != st->end() && conds->is_array())
      for (const auto& cond : *conds)
        if (cond.is_object() && cond.value("type", "") == "PodScheduled") scheduled_cond = cond;
  Result r;
  std::string volume_reason = volume_prefilter(
      pod, VolumeLookup{.claim = [this](const std::string& k) { return claims_->get(k); },
                        .volume = [this](const std::string& n) { return volumes_->get(n); },
                        .storage_class = [this](const std::string& n) { return classes_->get(n); },
                        .volumes = [this] { return volumes_->list(); }});
  if (!volume_reason.empty())
    r.message = prefilter_message(static_cast<int>(cache_.num_nodes()), volume_reason);
  else
    r = find_node(pod);
  if (r.node.empty()) {
    ++unschedulable_;
    queue_.unschedulable(qp.key);
    spdlog::debug("pod {} is unschedulable: {}", pod.key, r.message);
    // Write the condition only when it says something new (a parked pod retried on every
    // event would otherwise rewrite it each time); the event is posted on each attempt, as
    // kube-scheduler does.
    bool same = scheduled_cond.is_object() && scheduled_cond.value("status", "") == "False" &&
                scheduled_cond.value("reason", "") == "Unschedulable" &&
                scheduled_cond.value("message", "") == r.message;
    if (!same) recorder_->pod_unschedulable(pod.ns, pod.name, r.message);
    recorder_->pod_event(*obj, true, "FailedScheduling", r.message);
    return;
  }
  cache_.assume(pod, r.node);
  queue_.done(qp.key);
  // Kubernetes' binding sets PodScheduled=True; skiff's API server leaves conditions alone, so a
  // pod we had marked False is set True here (the kubelet sets it for every pod it runs).
  bool clear_false = scheduled_cond.is_object() && scheduled_cond.value("status", "") == "False";
  bind(pod, r.node, qp.first_seen, clear_false, static_bindings(pod, r.node));
}

std::map<std::string, std::string> Scheduler::static_bindings(const PodInfo& pod,
                                                              const std::string& node) {
  std::map<std::string, std::string> out;
  if (pod.wffc.empty()) return out;
  cache_.with_nodes([&](const std::vector<const NodeInfo*>& nodes) {
    const NodeInfo* info = nullptr;
    for (const auto* n : nodes)
      if (n->name == node) info = n;
    if (!info) return;
    std::set<std::string> taken;  // one PV per claim of this pod
    for (size_t i = 0; i < pod.wffc.size() && i < pod.wffc_claims.size(); ++i)
      for (const auto& v : pod.wffc[i].candidates)
        if (!taken.count(v.name) && volume_affinity_matches(v.affinity, *info)) {
          taken.insert(v.name);
          out[pod.wffc_claims[i]] = v.name;
          break;
        }
  });
  return out;
}

void Scheduler::bind(const PodInfo& pod, const std::string& node, Clock::time_point first_seen,
                     bool set_scheduled_true,
                     const std::map<std::string, std::string>& static_pvs) {
  {
    std::unique_lock lock(bind_mu_);
    bind_cv_.wait(lock, [&] { return binds_in_flight_ < opts_.max_binds_in_flight; });
    ++binds_in_flight_;
  }
  // PreBind: static PVs get their claimRef (the PV controller completes the bind), the claims
  // left to the provisioner get selected-node.
  auto reqs = std::make_shared<std::vector<client::Request>>();
  for (const auto& c : pod.wffc_claims) {
    auto pvc = claims_->get(pod.ns + "/" + c);
    if (!pvc || !pvc->contains("metadata")) continue;  // gone meanwhile: the kubelet will say
    const json& meta = (*pvc)["metadata"];
    client::Request req;
    if (auto it = static_pvs.find(c); it != static_pvs.end()) {
      auto pv = volumes_->get(it->second);
      if (!pv) continue;
      (*pv)["spec"]["claimRef"] = {{"kind", "PersistentVolumeClaim"},
                                   {"namespace", pod.ns},
                                   {"name", c},
                                   {"uid", meta.value("uid", "")},
                                   {"apiVersion", "v1"},
                                   {"resourceVersion", meta.value("resourceVersion", "")}};
      (*pv)["metadata"]["annotations"][proto::kAnnBoundByController] = "yes";
      req.method = "PUT";
      req.path = "/api/v1/persistentvolumes/" + it->second;
      req.content_type = "application/json";
      req.body = pv->dump();
    } else {
      std::string selected;
      if (auto ann = meta.find("annotations"); ann != meta.end() && ann->is_object())
        selected = ann->value(proto::kAnnSelectedNode, std::string());
      if (selected == node) continue;
      req.method = "PATCH";
      req.path = "/api/v1/namespaces/" + pod.ns + "/persistentvolumeclaims/" + c;
      req.content_type = "application/merge-patch+json";
      req.body = json{{"metadata", {{"annotations", {{proto::kAnnSelectedNode, node}}}}}}.dump();
    }
    reqs->push_back(std::move(req));
  }
  if (reqs->empty()) {
    post_binding(pod, node, first_seen, set_scheduled_true);
    return;
  }
  run_prebind(reqs, 0, [this, pod, node, first_seen, set_scheduled_true](Status st) {
    if (st.is_ok())
      post_binding(pod, node, first_seen, set_scheduled_true);
    else
      binding_failed(pod.key, node, "running PreBind plugin \"VolumeBinding\": " + st.message());
  });
}

void Scheduler::run_prebind(std::shared_ptr<std::vector<client::Request>> reqs, size_t i,
                            std::function<void(Status)> then) {
  if (i == reqs->size()) {
    then(Status::ok());
    return;
  }
  client::Request req = (*reqs)[i];
  api_->rest().request_async(std::move(req), [this, reqs, i, then = std::move(then)](
                                                 skiff::Result<client::Response> r) mutable {
    if (!r.is_ok()) return then(r.status());
    if (!r->ok()) return then(client::to_status(*r));
    run_prebind(std::move(reqs), i + 1, std::move(then));
  });
}

void Scheduler::binding_failed(const std::string& key, const std::string& node,
                               const std::string& why) {
  ++errors_;
  spdlog::warn("binding pod {} to node {}: {}", key, node, why);
  cache_.forget(key);
  // Conflict "already assigned" / NotFound: the watch will tell; a retry finds out.
  queue_.backoff(key);
  std::lock_guard lock(bind_mu_);
  --binds_in_flight_;
  bind_cv_.notify_all();
}

void Scheduler::post_binding(const PodInfo& pod, const std::string& node,
                             Clock::time_point first_seen, bool set_scheduled_true) {
  client::Request req;
  req.method = "POST";
  req.path = "/api/v1/namespaces/" + pod.ns + "/pods/" + pod.name + "/binding";
  req.content_type = "application/json";
  json body = {{"apiVersion", "v1"},
               {"kind", "Binding"},
               {"metadata", {{"name", pod.name}, {"namespace", pod.ns}}},
               {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}}}};
  if (!pod.uid.empty()) body["metadata"]["uid"] = pod.uid;
  req.body = body.dump();
  // Runs on the client's I/O thread: only cache, queue and recorder calls (none blocks on
  // the API).
  api_->rest().request_async(
      std::move(req), [this, key = pod.key, ns = pod.ns, name = pod.name, uid = pod.uid, node,
                       first_seen, set_scheduled_true](skiff::Result<client::Response> r) {
        bool ok = r.is_ok() && r->ok();
        if (!ok) {
          binding_failed(key, node,
                         r.is_ok() ? client::to_status(*r).to_string() : r.status().to_string());
          return;
        }
        ++scheduled_;
        e2e_.observe(std::chrono::duration<double>(Clock::real().now() - first_seen).count());
        json ref = {{"metadata", {{"name", name}, {"namespace", ns}, {"uid", uid}}}};
        recorder_->pod_event(ref, false, "Scheduled",
                             "Successfully assigned " + ns + "/" + name + " to " + node);
        if (set_scheduled_true) recorder_->pod_scheduled(ns, name);
        std::lock_guard lock(bind_mu_);
        --binds_in_flight_;
        bind_cv_.notify_all();
      });
}

void Scheduler::wait_binds(std::chrono::milliseconds timeout) {
  std::unique_lock lock(bind_mu_);
  bind_cv_.wait_for(lock, timeout, [&] { return binds_in_flight_ == 0; });
}

bool Scheduler::run(std::stop_token stop) {
  static const proto::ResourceType pod_type = proto::pod_resource();
  static const proto::ResourceType node_type = proto::node_resource();
  static const proto::ResourceType pvc_type = proto::persistentvolumeclaim_resource();
  static const proto::ResourceType pv_type = proto::persistentvolume_resource();
  static const proto::ResourceType sc_type = proto::storageclass_resource();
  pods_ = std::make_unique<client::Informer>(api_, pod_type);
  nodes_ = std::make_unique<client::Informer>(api_, node_type);
  claims_ = std::make_unique<client::Informer>(api_, pvc_type);
  volumes_ = std::make_unique<client::Informer>(api_, pv_type);
  classes_ = std::make_unique<client::Informer>(api_, sc_type);
  for (auto* inf : {claims_.get(), volumes_.get(), classes_.get()})
    inf->add_handlers({[this](const json&) { handle_storage_change(); },
                       [this](const json&, const json&) { handle_storage_change(); },
                       [this](const json&) { handle_storage_change(); }});
  pods_->add_handlers({[this](const json& o) { handle_pod_add(o); },
                       [this](const json& a, const json& b) { handle_pod_update(a, b); },
                       [this](const json& o) { handle_pod_delete(o); }});
  nodes_->add_handlers({[this](const json& o) { handle_node(o); },
                        [this](const json&, const json& b) { handle_node(b); },
                        [this](const json& o) { handle_node_delete(o); }});
  auto all = {nodes_.get(), pods_.get(), claims_.get(), volumes_.get(), classes_.get()};
  for (auto* inf : all) inf->start();
  auto end = std::chrono::steady_clock::now() + opts_.informer_sync_timeout;
  for (auto* inf : all) {
    while (!inf->wait_for_sync(std::chrono::milliseconds(200))) {
      if (stop.stop_requested() || std::chrono::steady_clock::now() > end) {
        if (!stop.stop_requested())
          spdlog::error("informers not synced after {} ms", opts_.informer_sync_timeout.count());
        for (auto* i : all) i->stop();
        recorder_->stop();
        return stop.stop_requested();
      }
    }
  }
  spdlog::info("caches synced: {} nodes, {} pods placed, {} pending", cache_.num_nodes(),
               cache_.num_pods(), queue_.num_active());
  while (auto qp = queue_.pop(stop)) schedule_one(*qp);
  queue_.shut_down();
  wait_binds(std::chrono::seconds(10));
  for (auto* inf : all) inf->stop();
  recorder_->stop();
  return true;
}

std::string Scheduler::metrics_text() const {
  std::ostringstream o;
  o << "# HELP scheduler_schedule_attempts_total Scheduling attempts by result.\n"
       "# TYPE scheduler_schedule_attempts_total counter\n"
    << "scheduler_schedule_attempts_total{result=\"scheduled\"} " << scheduled_ << "\n"
    << "scheduler_schedule_attempts_total{result=\"unschedulable\"} " << unschedulable_ << "\n"
    << "scheduler_schedule_attempts_total{result=\"error\"} " << errors_ << "\n";
  o << "# HELP scheduler_pending_pods Pods waiting to be scheduled, by queue.\n"
       "# TYPE scheduler_pending_pods gauge\n"
    << "scheduler_pending_pods{queue=\"active\"} " << queue_.num_active() << "\n"
    << "scheduler_pending_pods{queue=\"backoff\"} " << queue_.num_backoff() << "\n"
    << "scheduler_pending_pods{queue=\"unschedulable\"} " << queue_.num_unschedulable() << "\n";
  o << "# HELP scheduler_pod_scheduling_duration_seconds From a pod's first queueing to its "
       "successful binding.\n"
       "# TYPE scheduler_pod_scheduling_duration_seconds histogram\n"
    << e2e_.text("scheduler_pod_scheduling_duration_seconds");
  o << "# HELP scheduler_cache_size Nodes and pods (bound or assumed) in the cache.\n"
       "# TYPE scheduler_cache_size gauge\n"
    << "scheduler_cache_size{type=\"nodes\"} " << cache_.num_nodes() << "\n"
    << "scheduler_cache_size{type=\"pods\"} " << cache_.num_pods() << "\n";
  {
    o << "# HELP scheduler_api_writes_dropped_total Events and status patches dropped (queue "
         "full).\n"
         "# TYPE scheduler_api_writes_dropped_total counter\n"
      << "scheduler_api_writes_dropped_total " << recorder_->dropped() << "\n";
  }
  return o.str();
}

}  // namespace skiff::scheduler
