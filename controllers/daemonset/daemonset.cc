#include "controllers/daemonset/daemonset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/controllerrevision.h"
#include "proto/daemonset.h"
#include "proto/node.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/selector.h"

namespace skiff::controllers::daemonset {

namespace {

constexpr auto ds_type = &resource_type<proto::daemonset_resource>;
constexpr auto pod_type = &resource_type<proto::pod_resource>;
constexpr auto node_type = &resource_type<proto::node_resource>;
constexpr auto revision_type = &resource_type<proto::controllerrevision_resource>;

int min_ready_seconds(const json& ds) {
  const json& v = at(ds, "spec", "minReadySeconds");
  return v.is_number_integer() ? v.get<int>() : 0;
}

history::Parent parent_of(const json& ds) {
  return {"apps/v1", "DaemonSet", ns_of(ds), name_of(ds), uid_of(ds)};
}

json event_object(const json& ds) {
  json o = {{"apiVersion", "apps/v1"}, {"kind", "DaemonSet"}};
  o["metadata"] = {{"name", name_of(ds)}, {"namespace", ns_of(ds)}, {"uid", uid_of(ds)}};
  return o;
}

// getPatch: the DaemonSet's template under spec.template with "$patch": "replace", which is
// what a revision stores and what tells the current revision from the old ones.
json revision_patch(const json& ds) {
  json t = at(ds, "spec", "template").is_object() ? at(ds, "spec", "template") : json::object();
  t["$patch"] = "replace";
  return {{"spec", {{"template", t}}}};
}

std::map<std::string, std::string> string_map(const json& j) {
  std::map<std::string, std::string> m;
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it->is_string()) m[it.key()] = it->get<std::string>();
  return m;
}

// findUpdatedPodsOnNode: at most one updated and one old non-terminating pod; false when there
// are more (the manage step cleans that node up first).
bool updated_pods_on_node(const std::vector<json>& pods, const std::string& hash,
                          std::optional<int64_t> gen, const json** new_pod, const json** old_pod) {
  *new_pod = *old_pod = nullptr;
  for (const auto& p : pods) {
    if (is_terminating(p)) continue;
    const json** slot = is_pod_updated(p, hash, gen) ? new_pod : old_pod;
    if (*slot) return false;
    *slot = &p;
  }
  return true;
}

bool allows_surge(const json& ds) {
  int surge, unavailable;
  resolve_surge_unavailable(ds, 1, &surge, &unavailable);
  return surge > 0;
}

// --- production listers and control ---

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& ds, client::Informer& pods, client::Informer& nodes)
      : ds_(ds), pods_(pods), nodes_(nodes) {}
  std::optional<json> daemonset(const std::string& key) override { return ds_.get(key); }
  std::vector<json> daemonsets() override { return ds_.list(); }
  std::vector<json> pods(const std::string& ns) override { return pods_.by_namespace(ns); }
  std::vector<json> nodes() override { return nodes_.list(); }

 private:
  client::Informer& ds_;
  client::Informer& pods_;
  client::Informer& nodes_;
};

class ApiDaemonControl : public DaemonControl {
 public:
  explicit ApiDaemonControl(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    return api_->create(pod_type(), ns, pod);
  }
  Status delete_pod(const std::string& ns, const std::string& name) override {
    return api_->remove(pod_type(), ns, name);
  }
  Status patch_pod(const std::string& ns, const std::string& name, const json& patch) override {
    return api_->patch(pod_type(), ns, name, patch, client::PatchType::kStrategic).status();
  }
  Result<json> get_daemonset(const std::string& ns, const std::string& name) override {
    return api_->get(ds_type(), ns, name);
  }
  Result<json> update_status(const json& ds) override { return api_->update_status(ds_type(), ds); }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

// --- expectations ---

void Expectations::expect(const std::string& key, int adds, int dels) {
  std::lock_guard lock(mu_);
  entries_[key] = {adds, dels, clock_.now()};
}
void Expectations::creation_observed(const std::string& key) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) --it->second.adds;
}
void Expectations::deletion_observed(const std::string& key) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) --it->second.dels;
}
bool Expectations::satisfied(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return true;
  if (it->second.adds <= 0 && it->second.dels <= 0) return true;
  return clock_.now() - it->second.at > ttl_;
}
void Expectations::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  entries_.erase(key);
}

// --- controller ---

DaemonSetController::DaemonSetController(DaemonSetOptions opts)
    : opts_(std::move(opts)),
      clock_(opts_.clock ? *opts_.clock : client::Clock::real()),
      expectations_(clock_),
      backoff_(opts_.failed_pod_backoff_initial, opts_.failed_pod_backoff_max) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (opts_.burst_replicas < 1) opts_.burst_replicas = 1;
  if (!opts_.queue.clock) opts_.queue.clock = &clock_;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

DaemonSetController::~DaemonSetController() { queue_->shut_down(); }

void DaemonSetController::set_clients(Listers* listers, DaemonControl* control,
                                      history::History* hist, EventSink* events) {
  listers_ = listers;
  control_ = control;
  history_ = hist;
  events_ = events;
}

WallTime DaemonSetController::wall_now() const {
  return opts_.wall_clock ? opts_.wall_clock() : std::chrono::system_clock::now();
}

Status DaemonSetController::init(ControllerContext& ctx) {
  auto& ds_inf = ctx.informers->informer(ds_type());
  auto& pod_inf = ctx.informers->informer(pod_type());
  auto& node_inf = ctx.informers->informer(node_type());
  auto& rev_inf = ctx.informers->informer(revision_type());
  owned_listers_ = std::make_unique<InformerListers>(ds_inf, pod_inf, node_inf);
  owned_control_ = std::make_unique<ApiDaemonControl>(ctx.api);
  owned_history_ = std::make_unique<history::ApiHistory>(
      *ctx.api, [&rev_inf](const std::string& ns) { return rev_inf.by_namespace(ns); });
  set_clients(owned_listers_.get(), owned_control_.get(), owned_history_.get(), ctx.events);
  ds_inf.add_handlers({[this](const json& o) { on_ds_add(o); },
                       [this](const json& a, const json& b) { on_ds_update(a, b); },
                       [this](const json& o) { on_ds_delete(o); }});
  pod_inf.add_handlers({[this](const json& o) { on_pod_add(o); },
                        [this](const json& a, const json& b) { on_pod_update(a, b); },
                        [this](const json& o) { on_pod_delete(o); }});
  node_inf.add_handlers({[this](const json& o) { on_node_add(o); },
                         [this](const json& a, const json& b) { on_node_update(a, b); },
                         [this](const json& o) { on_node_delete(o); }});
  return Status::ok();
}

void DaemonSetController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("daemonset: {} (retrying)", st.to_string());
        else
          spdlog::warn("daemonset: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

void DaemonSetController::event(const json& ds, bool warning, const std::string& reason,
                                const std::string& msg) {
  if (events_) events_->event(event_object(ds), "DaemonSet", warning, reason, msg);
}

// --- handlers ---

void DaemonSetController::enqueue(const json& ds) { queue_->add(client::object_key(ds)); }

void DaemonSetController::enqueue_all() {
  for (const auto& ds : listers_->daemonsets()) enqueue(ds);
}

void DaemonSetController::on_ds_add(const json& ds) { enqueue(ds); }

void DaemonSetController::on_ds_update(const json& old_ds, const json& ds) {
  if (uid_of(old_ds) != uid_of(ds)) on_ds_delete(old_ds);
  enqueue(ds);
}

void DaemonSetController::on_ds_delete(const json& ds) {
  expectations_.forget(client::object_key(ds));
  enqueue(ds);
}

std::optional<json> DaemonSetController::resolve_controller(const json& pod) {
  const json* ref = controller_ref(pod);
  if (ref == nullptr || str(at(*ref, "kind")) != "DaemonSet") return std::nullopt;
  auto ds = listers_->daemonset(ns_of(pod) + "/" + str(at(*ref, "name")));
  if (!ds || uid_of(*ds) != str(at(*ref, "uid"))) return std::nullopt;
  return ds;
}

std::vector<json> DaemonSetController::matching_daemonsets(const json& pod) {
  std::vector<json> out;
  for (auto& ds : listers_->daemonsets()) {
    if (ns_of(ds) != ns_of(pod)) continue;
    auto sel = proto::LabelSelector::from_json(at(ds, "spec", "selector"), "spec.selector");
    if (!sel || sel->empty() || !sel->matches_json(at(pod, "metadata", "labels"))) continue;
    out.push_back(std::move(ds));
  }
  return out;
}

void DaemonSetController::on_pod_add(const json& pod) {
  if (is_terminating(pod)) {
    on_pod_delete(pod);
    return;
  }
  if (controller_ref(pod) != nullptr) {
    if (auto ds = resolve_controller(pod)) {
      std::string key = client::object_key(*ds);
      expectations_.creation_observed(key);
      queue_->add(key);
    }
    return;
  }
  for (const auto& ds : matching_daemonsets(pod)) enqueue(ds);
}

void DaemonSetController::on_pod_update(const json& old_pod, const json& pod) {
  const json& old_rv = at(old_pod, "metadata", "resourceVersion");
  if (!old_rv.is_null() && old_rv == at(pod, "metadata", "resourceVersion")) return;
  if (is_terminating(pod)) {
    // A graceful deletion has begun: for the expectations it is deleted now (the kubelet
    // removes the object only later, or never when the node is gone).
    if (!is_terminating(old_pod)) on_pod_delete(pod);
    return;
  }
  const json* old_ref = controller_ref(old_pod);
  const json* cur_ref = controller_ref(pod);
  bool ref_changed =
      (old_ref == nullptr) != (cur_ref == nullptr) || (old_ref != nullptr && *old_ref != *cur_ref);
  if (ref_changed && old_ref != nullptr)
    if (auto ds = resolve_controller(old_pod)) enqueue(*ds);
  if (cur_ref != nullptr) {
    if (auto ds = resolve_controller(pod)) enqueue(*ds);
    return;
  }
  bool labels_changed = at(old_pod, "metadata", "labels") != at(pod, "metadata", "labels");
  if (labels_changed || ref_changed)
    for (const auto& ds : matching_daemonsets(pod)) enqueue(ds);
}

void DaemonSetController::on_pod_delete(const json& pod) {
  auto ds = resolve_controller(pod);
  if (!ds) return;
  std::string key = client::object_key(*ds);
  expectations_.deletion_observed(key);
  queue_->add(key);
}

void DaemonSetController::on_node_add(const json&) { enqueue_all(); }

void DaemonSetController::on_node_update(const json& old_node, const json& node) {
  // shouldIgnoreNodeUpdate: heartbeats (condition times, resourceVersion) change nothing.
  auto conds = [](const json& n) {
    std::set<std::pair<std::string, std::string>> s;
    const json& c = at(n, "status", "conditions");
    if (c.is_array())
      for (const auto& x : c) s.insert({str(at(x, "type")), str(at(x, "status"))});
    return s;
  };
  if (at(old_node, "metadata", "labels") == at(node, "metadata", "labels") &&
      at(old_node, "spec") == at(node, "spec") && conds(old_node) == conds(node))
    return;
  enqueue_all();
}

void DaemonSetController::on_node_delete(const json&) { enqueue_all(); }

// --- sync ---

Status DaemonSetController::sync(const std::string& key) {
  auto cached = listers_->daemonset(key);
  if (!cached) {
    expectations_.forget(key);
    return Status::ok();
  }
  json ds = *cached;
  auto sel = proto::LabelSelector::from_json(at(ds, "spec", "selector"), "spec.selector");
  if (!sel || sel->empty()) {
    event(ds, true, "SelectingAll",
          "This daemon set is selecting all pods. A non-empty selector is required.");
    return Status::ok();
  }
  if (is_terminating(ds)) return Status::ok();

  std::vector<json> nodes = listers_->nodes();
  auto revs = construct_history(ds);
  if (!revs) return revs.status();
  // A revision someone else made may lack the label: Kubernetes labels it with its name.
  auto label = revs->cur.metadata.labels.find(kRevisionHashLabel);
  std::string hash =
      label != revs->cur.metadata.labels.end() ? label->second : revs->cur.metadata.name;

  // Read before the pods are listed, as Kubernetes does: a pod created by the previous sync whose
  // add event lands while this one adopts pods would meet the expectations too late for the
  // list, which lacks it, and the node would get a second daemon pod.
  const bool satisfied = expectations_.satisfied(key);
  auto pods = claim_pods(ds);
  if (!pods) return pods.status();
  NodePods by_node = group_by_node(*pods);

  Status err;
  if (satisfied) {
    err = manage(ds, key, nodes, by_node, hash);
    if (err.is_ok() && expectations_.satisfied(key)) {
      std::string type = str(at(at(ds, "spec", "updateStrategy"), "type"));
      if (type.empty() || type == "RollingUpdate")
        err = rolling_update(ds, key, nodes, by_node, hash);
    }
    if (err.is_ok()) err = cleanup_history(ds, revs->old, by_node);
  }
  Status st = update_status(ds, key, nodes, by_node, hash);
  return err.is_ok() ? st : err;
}

Result<DaemonSetController::Revisions> DaemonSetController::construct_history(json& ds) {
  history::Parent parent = parent_of(ds);
  auto sel = proto::LabelSelector::from_json(at(ds, "spec", "selector"), "spec.selector");
  if (!sel) return sel.status();
  auto listed = history_->list_controller_revisions(parent, *sel);
  if (!listed) return listed.status();
  json patch = revision_patch(ds);
  std::vector<history::ControllerRevision> current;
  Revisions out;
  for (auto& r : *listed) {
    if (history::controller_uid(r).empty()) {
      auto adopted = history_->adopt_controller_revision(parent, r);
      if (!adopted) {
        if (adopted.status().code() == Code::kNotFound) continue;
        return adopted.status();
      }
      r = std::move(*adopted);
    }
    (r.data == patch ? current : out.old).push_back(std::move(r));
  }
  int64_t next = history::next_revision(out.old);
  if (current.empty()) {
    auto snap = snapshot(ds, next);
    if (!snap) return snap.status();
    out.cur = std::move(*snap);
    return out;
  }
  // dedupCurHistories: keep the highest revision, delete the duplicates.
  history::sort_revisions(current);
  out.cur = current.back();
  for (size_t i = 0; i + 1 < current.size(); ++i) {
    Status st = history_->delete_controller_revision(current[i]);
    if (!st && st.code() != Code::kNotFound) return st;
  }
  if (out.cur.revision < next) {
    // A rollback to an older template: its revision becomes the newest.
    auto up = history_->update_controller_revision(out.cur, next);
    if (!up) return up.status();
    out.cur = std::move(*up);
  }
  return out;
}

Result<history::ControllerRevision> DaemonSetController::snapshot(json& ds, int64_t revision) {
  std::optional<int32_t> collision;
  if (const json& c = at(ds, "status", "collisionCount"); c.is_number_integer())
    collision = c.get<int32_t>();
  std::string hash = history::compute_template_hash(at(ds, "spec", "template"), collision);
  history::ControllerRevision r;
  r.type_meta.api_version = "apps/v1";
  r.type_meta.kind = "ControllerRevision";
  r.metadata.name = name_of(ds) + "-" + hash;
  r.metadata.namespace_ = ns_of(ds);
  r.metadata.labels = string_map(at(at(at(ds, "spec", "template"), "metadata"), "labels"));
  r.metadata.labels[kRevisionHashLabel] = hash;
  r.metadata.annotations = string_map(at(ds, "metadata", "annotations"));
  proto::OwnerReference ref;
  ref.api_version = "apps/v1";
  ref.kind = "DaemonSet";
  ref.name = name_of(ds);
  ref.uid = uid_of(ds);
  ref.controller = true;
  ref.block_owner_deletion = true;
  r.metadata.owner_references.push_back(ref);
  r.data = revision_patch(ds);
  r.revision = revision;
  auto created = history_->create_exact(r);
  if (created) return created;
  if (created.status().code() != Code::kAlreadyExists)
    return created.status().with_context("snapshot of daemonset " + client::object_key(ds));
  auto existing = history_->get_controller_revision(r.metadata.namespace_, r.metadata.name);
  if (!existing) return existing.status();
  if (existing->data == r.data) return existing;
  // A hash collision: bump status.collisionCount on a fresh read (unless the count we hashed
  // with was already stale) and retry the sync with the new name.
  auto fresh = control_->get_daemonset(ns_of(ds), name_of(ds));
  if (!fresh) return fresh.status();
  const json& fc = at(*fresh, "status", "collisionCount");
  std::optional<int32_t> fresh_count;
  if (fc.is_number_integer()) fresh_count = fc.get<int32_t>();
  if (fresh_count != collision)
    return Status::conflict("found a stale collision count of DaemonSet " + client::object_key(ds) +
                            "; will retry until it is updated");
  (*fresh)["status"]["collisionCount"] = fresh_count.value_or(0) + 1;
  auto up = control_->update_status(*fresh);
  if (!up) return up.status();
  return Status::conflict("controllerrevision " + r.metadata.namespace_ + "/" + r.metadata.name +
                          " exists with other data (hash collision); collisionCount of " +
                          client::object_key(ds) + " bumped to " +
                          std::to_string(fresh_count.value_or(0) + 1));
}

Result<std::vector<json>> DaemonSetController::claim_pods(const json& ds) {
  auto sel = proto::LabelSelector::from_json(at(ds, "spec", "selector"), "spec.selector");
  if (!sel) return sel.status();
  std::string uid = uid_of(ds);
  std::vector<json> out;
  for (auto& pod : listers_->pods(ns_of(ds))) {
    bool matches = sel->matches_json(at(pod, "metadata", "labels"));
    const json* ref = controller_ref(pod);
    if (ref != nullptr) {
      if (str(at(*ref, "uid")) != uid) continue;
      if (matches) {
        out.push_back(std::move(pod));
        continue;
      }
      // Ours but no longer selected: release it.
      json patch = {{"metadata",
                     {{"ownerReferences", json::array({{{"$patch", "delete"}, {"uid", uid}}})},
                      {"uid", uid_of(pod)}}}};
      Status st = control_->patch_pod(ns_of(pod), name_of(pod), patch);
      if (!st && st.code() != Code::kNotFound && st.code() != Code::kInvalid)
        return st.with_context("release pod " + client::object_key(pod));
      continue;
    }
    if (!matches || is_terminating(pod)) continue;
    json patch = {{"metadata",
                   {{"ownerReferences", json::array({{{"apiVersion", "apps/v1"},
                                                      {"kind", "DaemonSet"},
                                                      {"name", name_of(ds)},
                                                      {"uid", uid},
                                                      {"controller", true},
                                                      {"blockOwnerDeletion", true}}})},
                    {"uid", uid_of(pod)}}}};
    Status st = control_->patch_pod(ns_of(pod), name_of(pod), patch);
    if (!st) {
      if (st.code() == Code::kNotFound) continue;
      return st.with_context("adopt pod " + client::object_key(pod));
    }
    out.push_back(std::move(pod));
  }
  return out;
}

DaemonSetController::NodePods DaemonSetController::group_by_node(const std::vector<json>& pods) {
  NodePods out;
  for (const auto& p : pods)
    if (auto n = target_node_name(p)) out[*n].push_back(p);
  return out;
}

Status DaemonSetController::manage(const json& ds, const std::string& key,
                                   const std::vector<json>& nodes, const NodePods& by_node,
                                   const std::string& hash) {
  std::vector<std::string> to_create, to_delete;
  std::set<std::string> node_names;
  bool surge = allows_surge(ds);
  auto now = clock_.now();
  for (const auto& node : nodes) {
    std::string node_name = name_of(node);
    node_names.insert(node_name);
    auto it = by_node.find(node_name);
    static const std::vector<json> kNone;
    const std::vector<json>& pods = it == by_node.end() ? kNone : it->second;
    ShouldRun sr = node_should_run_daemon_pod(node, ds);
    if (sr.should_run && pods.empty()) {
      to_create.push_back(node_name);
    } else if (sr.should_continue) {
      std::vector<json> running;
      for (const auto& pod : pods) {
        if (is_terminating(pod)) continue;
        std::string phase = str(at(pod, "status", "phase"));
        if (phase == "Failed") {
          // The kubelet may keep refusing the pod: delete and recreate with back-off rather
          // than in a hot loop.
          std::string bkey = uid_of(ds) + "/" + node_name;
          if (backoff_.in_backoff(bkey, now)) {
            queue_->add_after(key, backoff_.get(bkey));
            continue;
          }
          backoff_.next(bkey, now);
          event(ds, true, "FailedDaemonPod",
                "Found failed daemon pod " + ns_of(pod) + "/" + name_of(pod) + " on node " +
                    node_name + ", will try to kill it");
          to_delete.push_back(name_of(pod));
        } else if (phase == "Succeeded") {
          to_delete.push_back(name_of(pod));
        } else {
          running.push_back(pod);
        }
      }
      if (running.size() <= 1) continue;
      std::sort(running.begin(), running.end(), pod_less);
      if (!surge) {
        for (size_t i = 1; i < running.size(); ++i) to_delete.push_back(name_of(running[i]));
        continue;
      }
      // With surge one updated and one old pod may share a node; the oldest of each stays.
      bool have_new = false, have_old = false;
      auto gen = template_generation(ds);
      for (const auto& pod : running) {
        bool* have = is_pod_updated(pod, hash, gen) ? &have_new : &have_old;
        if (!*have) {
          *have = true;
          continue;
        }
        to_delete.push_back(name_of(pod));
      }
    } else {
      for (const auto& pod : pods)
        if (!is_terminating(pod)) to_delete.push_back(name_of(pod));
    }
  }
  // Pods aimed at nodes that no longer exist (Kubernetes deletes the unscheduled ones here and
  // leaves bound ones to the pod GC, which skiff does not have).
  for (const auto& [node_name, pods] : by_node) {
    if (node_names.count(node_name)) continue;
    for (const auto& pod : pods)
      if (!is_terminating(pod)) to_delete.push_back(name_of(pod));
  }
  backoff_.gc(now);
  return sync_nodes(ds, key, std::move(to_delete), std::move(to_create), hash);
}

Status DaemonSetController::sync_nodes(const json& ds, const std::string& key,
                                       std::vector<std::string> to_delete,
                                       std::vector<std::string> to_create,
                                       const std::string& hash) {
  int create_n = std::min<int>(static_cast<int>(to_create.size()), opts_.burst_replicas);
  int delete_n = std::min<int>(static_cast<int>(to_delete.size()), opts_.burst_replicas);
  if (create_n == 0 && delete_n == 0) return Status::ok();
  expectations_.expect(key, create_n, delete_n);
  Status first_err;

  json tmpl = pod_template_for(ds, template_generation(ds), hash);
  // Slow start: batches of 1, 2, 4, ...; a batch with a failure ends the creations, and the
  // ones not attempted are taken off the expectations.
  int pos = 0;
  for (int batch = 1; pos < create_n; batch *= 2) {
    int end = std::min(create_n, pos + batch);
    bool failed = false;
    for (; pos < end; ++pos) {
      json pod = new_daemon_pod(ds, tmpl, to_create[pos]);
      auto created = control_->create_pod(ns_of(ds), pod);
      if (created) {
        event(ds, false, "SuccessfulCreate", "Created pod: " + name_of(*created));
        continue;
      }
      expectations_.creation_observed(key);
      if (namespace_terminating(created.status())) continue;
      failed = true;
      event(ds, true, "FailedCreate", "Error creating: " + created.status().message());
      if (first_err.is_ok())
        first_err = created.status().with_context("create daemon pod for node " + to_create[pos]);
    }
    if (failed) {
      for (; pos < create_n; ++pos) expectations_.creation_observed(key);
      break;
    }
  }

  for (int i = 0; i < delete_n; ++i) {
    Status st = control_->delete_pod(ns_of(ds), to_delete[i]);
    if (st) {
      event(ds, false, "SuccessfulDelete", "Deleted pod: " + to_delete[i]);
      continue;
    }
    expectations_.deletion_observed(key);
    if (st.code() == Code::kNotFound) continue;
    event(ds, true, "FailedDelete", "Error deleting: " + st.message());
    if (first_err.is_ok()) first_err = st.with_context("delete daemon pod " + to_delete[i]);
  }
  return first_err;
}

Status DaemonSetController::rolling_update(const json& ds, const std::string& key,
                                           const std::vector<json>& nodes, const NodePods& by_node,
                                           const std::string& hash) {
  // updatedDesiredNodeCounts: every node that should run the pod is considered, with or
  // without pods.
  NodePods all = by_node;
  std::map<std::string, const json*> node_by_name;
  int desired = 0;
  for (const auto& node : nodes) {
    node_by_name[name_of(node)] = &node;
    if (!node_should_run_daemon_pod(node, ds).should_run) continue;
    ++desired;
    all[name_of(node)];
  }
  int max_surge, max_unavailable;
  resolve_surge_unavailable(ds, desired, &max_surge, &max_unavailable);
  auto gen = template_generation(ds);
  int min_ready = min_ready_seconds(ds);
  WallTime now = wall_now();
  std::vector<std::string> to_delete, to_create;

  if (max_surge == 0) {
    int unavailable = 0;
    std::vector<std::string> replace, candidates;
    for (const auto& [node, pods] : all) {
      const json *np, *op;
      if (!updated_pods_on_node(pods, hash, gen, &np, &op)) {
        ++unavailable;  // the manage step cleans this node up first
        continue;
      }
      if ((np == nullptr) == (op == nullptr)) {
        ++unavailable;  // nothing there yet, or the manage step still has to delete one
      } else if (np != nullptr) {
        if (!is_pod_available(*np, min_ready, now)) ++unavailable;
      } else if (!is_pod_available(*op, min_ready, now)) {
        replace.push_back(name_of(*op));  // not serving anyway: replace it at once
      } else if (unavailable < max_unavailable) {
        candidates.push_back(name_of(*op));
      }
    }
    int room = std::clamp(max_unavailable - unavailable, 0, static_cast<int>(candidates.size()));
    to_delete = replace;
    to_delete.insert(to_delete.end(), candidates.begin(), candidates.begin() + room);
    return sync_nodes(ds, key, std::move(to_delete), {}, hash);
  }

  int surged = 0;
  for (const auto& [node, pods] : all) {
    const json *np, *op;
    if (!updated_pods_on_node(pods, hash, gen, &np, &op)) {
      ++surged;
      continue;
    }
    if (op == nullptr) continue;  // the manage step handles it
    if (np == nullptr) {
      if (!is_pod_available(*op, min_ready, now)) {
        auto n = node_by_name.find(node);
        if (n == node_by_name.end() || !node_should_run_daemon_pod(*n->second, ds).should_run)
          to_delete.push_back(name_of(*op));
        else
          to_create.push_back(node);
      } else if (surged < max_surge) {
        ++surged;
        to_create.push_back(node);
      }
      continue;
    }
    if (!is_pod_available(*np, min_ready, now)) {
      ++surged;  // waiting for the new pod
      continue;
    }
    to_delete.push_back(name_of(*op));
  }
  return sync_nodes(ds, key, std::move(to_delete), std::move(to_create), hash);
}

Status DaemonSetController::cleanup_history(const json& ds,
                                            const std::vector<history::ControllerRevision>& old,
                                            const NodePods& by_node) {
  const json& limit_j = at(ds, "spec", "revisionHistoryLimit");
  int limit = limit_j.is_number_integer() ? limit_j.get<int>() : 10;
  int to_kill = static_cast<int>(old.size()) - limit;
  if (to_kill <= 0) return Status::ok();
  std::set<std::string> live;
  for (const auto& [node, pods] : by_node)
    for (const auto& p : pods)
      if (auto h = str(at(at(p, "metadata", "labels"), kRevisionHashLabel)); !h.empty())
        live.insert(h);
  auto sorted = old;
  history::sort_revisions(sorted);
  for (const auto& r : sorted) {
    if (to_kill <= 0) break;
    auto it = r.metadata.labels.find(kRevisionHashLabel);
    if (it != r.metadata.labels.end() && live.count(it->second)) continue;
    Status st = history_->delete_controller_revision(r);
    if (!st && st.code() != Code::kNotFound) return st;
    --to_kill;
  }
  return Status::ok();
}

Status DaemonSetController::update_status(const json& ds, const std::string& key,
                                          const std::vector<json>& nodes, const NodePods& by_node,
                                          const std::string& hash) {
  int desired = 0, current = 0, misscheduled = 0, ready = 0, available = 0, updated = 0;
  int min_ready = min_ready_seconds(ds);
  WallTime now = wall_now();
  auto gen = template_generation(ds);
  std::optional<std::chrono::nanoseconds> requeue;
  for (const auto& node : nodes) {
    auto it = by_node.find(name_of(node));
    bool scheduled = it != by_node.end() && !it->second.empty();
    if (!node_should_run_daemon_pod(node, ds).should_run) {
      if (scheduled) ++misscheduled;
      continue;
    }
    ++desired;
    if (!scheduled) continue;
    ++current;
    std::vector<json> pods = it->second;
    std::sort(pods.begin(), pods.end(), pod_less);
    const json& pod = pods.front();
    if (is_pod_ready(pod)) {
      ++ready;
      if (is_pod_available(pod, min_ready, now))
        ++available;
      else if (auto d = time_until_available(pod, min_ready, now); d && (!requeue || *d < *requeue))
        requeue = d;
    }
    if (is_pod_updated(pod, hash, gen)) ++updated;
  }
  json status = at(ds, "status").is_object() ? at(ds, "status") : json::object();
  json want = status;
  want["desiredNumberScheduled"] = desired;
  want["currentNumberScheduled"] = current;
  want["numberMisscheduled"] = misscheduled;
  want["numberReady"] = ready;
  want["numberAvailable"] = available;
  want["updatedNumberScheduled"] = updated;
  want["numberUnavailable"] = desired - available;
  want["observedGeneration"] = at(ds, "metadata", "generation").is_number_integer()
                                   ? at(ds, "metadata", "generation")
                                   : json(0);
  // Zero-valued omitempty fields compare equal to absent ones.
  auto normalized = [](json s) {
    for (const char* f :
         {"observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable"})
      if (s.contains(f) && s[f] == 0) s.erase(f);
    return s;
  };
  if (requeue) queue_->add_after(key, *requeue + std::chrono::milliseconds(100));
  if (normalized(want) == normalized(status)) return Status::ok();
  json obj = ds;
  obj["status"] = want;
  auto up = control_->update_status(obj);
  if (up) return Status::ok();
  if (up.status().code() != Code::kConflict)
    return up.status().with_context("update status of daemonset " + key);
  // storeDaemonSetStatus: one more try on a fresh read.
  auto fresh = control_->get_daemonset(ns_of(ds), name_of(ds));
  if (!fresh) return fresh.status().with_context("re-read daemonset " + key);
  json fs = at(*fresh, "status");
  for (auto it2 = want.begin(); it2 != want.end(); ++it2)
    if (it2.key() != "collisionCount" && it2.key() != "conditions") fs[it2.key()] = it2.value();
  (*fresh)["status"] = fs;
  auto again = control_->update_status(*fresh);
  if (!again) return again.status().with_context("update status of daemonset " + key);
  return Status::ok();
}

}  // namespace skiff::controllers::daemonset
