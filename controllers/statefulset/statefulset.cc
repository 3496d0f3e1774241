#include "controllers/statefulset/statefulset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "controllers/statefulset/identity.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/controllerrevision.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/selector.h"
#include "proto/statefulset.h"
#include "proto/storage.h"

namespace skiff::controllers::statefulset {

namespace {

// How many replicas past the highest live ordinal one sync may create (a Parallel set; a
// monotonic one creates one per sync): Kubernetes' burstReplicas for ReplicaSets.
constexpr int64_t kMaxNewReplicasPerSync = 500;

constexpr auto set_type = &resource_type<proto::statefulset_resource>;
constexpr auto pod_type = &resource_type<proto::pod_resource>;
constexpr auto claim_type = &resource_type<proto::persistentvolumeclaim_resource>;
constexpr auto revision_type = &resource_type<proto::controllerrevision_resource>;


json event_object(const json& set) {
  json o = {{"apiVersion", "apps/v1"}, {"kind", "StatefulSet"}};
  o["metadata"] = {{"name", name_of(set)}, {"namespace", ns_of(set)}, {"uid", uid_of(set)}};
  if (auto rv = at(set, "metadata", "resourceVersion"); rv.is_string())
    o["metadata"]["resourceVersion"] = rv;
  return o;
}

history::Parent parent_of(const json& set) {
  return {"apps/v1", "StatefulSet", ns_of(set), name_of(set), uid_of(set)};
}

std::map<std::string, std::string> template_labels(const json& set) {
  std::map<std::string, std::string> out;
  const json& l = at(at(set, "spec", "template"), "metadata");
  const json& labels = at(l, "labels");
  if (labels.is_object())
    for (auto it = labels.begin(); it != labels.end(); ++it)
      if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  return out;
}

bool is_rolling_update(const json& set) {
  std::string t = str(at(at(set, "spec", "updateStrategy"), "type"));
  return t.empty() || t == "RollingUpdate";
}

int partition_of(const json& set) {
  return static_cast<int>(
      num(at(at(at(set, "spec", "updateStrategy"), "rollingUpdate"), "partition")));
}

bool is_parallel(const json& set) {
  return str(at(set, "spec", "podManagementPolicy")) == "Parallel";
}

// --- production listers and client ---

class InformerListers : public Listers {
 public:
  InformerListers(client::Informer& sets, client::Informer& pods, client::Informer& claims)
      : sets_(sets), pods_(pods), claims_(claims) {}
  std::optional<json> statefulset(const std::string& key) override { return sets_.get(key); }
  std::vector<json> statefulsets(const std::string& ns) override { return sets_.by_namespace(ns); }
  std::vector<json> pods(const std::string& ns) override { return pods_.by_namespace(ns); }
  std::optional<json> claim(const std::string& ns, const std::string& name) override {
    return claims_.get(ns + "/" + name);
  }

 private:
  client::Informer& sets_;
  client::Informer& pods_;
  client::Informer& claims_;
};

class ApiStatefulSetClient : public StatefulSetClient {
 public:
  explicit ApiStatefulSetClient(std::shared_ptr<client::ApiClient> api) : api_(std::move(api)) {}
  Result<json> create_pod(const std::string& ns, const json& pod) override {
    return api_->create(pod_type(), ns, pod);
  }
  Status delete_pod(const std::string& ns, const std::string& name) override {
    return api_->remove(pod_type(), ns, name);
  }
  Result<json> update_pod(const json& pod) override { return api_->update(pod_type(), pod); }
  Status patch_pod(const std::string& ns, const std::string& name, const json& patch) override {
    return api_->patch(pod_type(), ns, name, patch, client::PatchType::kStrategic).status();
  }
  Result<json> create_claim(const std::string& ns, const json& claim) override {
    return api_->create(claim_type(), ns, claim);
  }
  Result<json> update_claim(const json& claim) override {
    return api_->update(claim_type(), claim);
  }
  Result<json> get_statefulset(const std::string& ns, const std::string& name) override {
    return api_->get(set_type(), ns, name);
  }
  Result<json> update_status(const json& set) override {
    return api_->update_status(set_type(), set);
  }

 private:
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

// One slot of the replica sequence: a pod from the cache, or one to be created.
struct StatefulSetController::Replica {
  json pod;
  bool created = false;
};

struct StatefulSetController::Revisions {
  history::Revisions all;  // sorted
  history::ControllerRevision current, update;
  int32_t collision_count = 0;
};

StatefulSetController::StatefulSetController(StatefulSetOptions opts)
    : opts_(std::move(opts)), clock_(opts_.clock ? *opts_.clock : client::Clock::real()) {
  if (opts_.workers < 1) opts_.workers = 1;
  if (!opts_.queue.clock) opts_.queue.clock = &clock_;
  queue_ = std::make_unique<client::WorkQueue>(opts_.queue);
  stats_.depth = [this] { return queue_->len(); };
}

StatefulSetController::~StatefulSetController() { queue_->shut_down(); }

void StatefulSetController::set_clients(Listers* listers, StatefulSetClient* client,
                                        history::History* history, EventSink* events) {
  listers_ = listers;
  client_ = client;
  history_ = history;
  events_ = events;
}

std::chrono::system_clock::time_point StatefulSetController::wall_now() const {
  return opts_.wall_clock ? opts_.wall_clock() : std::chrono::system_clock::now();
}

Status StatefulSetController::init(ControllerContext& ctx) {
  auto& set_inf = ctx.informers->informer(set_type());
  auto& pod_inf = ctx.informers->informer(pod_type());
  auto& claim_inf = ctx.informers->informer(claim_type());
  auto& rev_inf = ctx.informers->informer(revision_type());
  api_ = ctx.api;
  owned_listers_ = std::make_unique<InformerListers>(set_inf, pod_inf, claim_inf);
  owned_client_ = std::make_unique<ApiStatefulSetClient>(ctx.api);
  owned_history_ = std::make_unique<history::ApiHistory>(
      *api_, [&rev_inf](const std::string& ns) { return rev_inf.by_namespace(ns); });
  set_clients(owned_listers_.get(), owned_client_.get(), owned_history_.get(), ctx.events);
  set_inf.add_handlers({[this](const json& o) { on_set_add(o); },
                        [this](const json& a, const json& b) { on_set_update(a, b); },
                        [this](const json& o) { on_set_delete(o); }});
  pod_inf.add_handlers({[this](const json& o) { on_pod_add(o); },
                        [this](const json& a, const json& b) { on_pod_update(a, b); },
                        [this](const json& o) { on_pod_delete(o); }});
  return Status::ok();
}

void StatefulSetController::run(std::stop_token stop) {
  for (const auto& set : listers_->statefulsets("")) enqueue(set);
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict || st.code() == Code::kAlreadyExists)
          spdlog::debug("statefulset {}: {} (retrying)", key, st.message());
        else
          spdlog::warn("statefulset {}: {}", key, st.message());
      },
      stop);
}

// --- handlers: they only enqueue ---

void StatefulSetController::enqueue(const json& set) { queue_->add(client::object_key(set)); }
void StatefulSetController::on_set_add(const json& set) { enqueue(set); }
void StatefulSetController::on_set_update(const json&, const json& set) { enqueue(set); }
void StatefulSetController::on_set_delete(const json& set) { enqueue(set); }

std::optional<json> StatefulSetController::resolve_controller(const json& pod) {
  const json* ref = controller_ref(pod);
  if (ref == nullptr || str(at(*ref, "kind")) != "StatefulSet") return std::nullopt;
  auto set = listers_->statefulset(ns_of(pod) + "/" + str(at(*ref, "name")));
  if (!set || uid_of(*set) != str(at(*ref, "uid"))) return std::nullopt;
  return set;
}

std::vector<json> StatefulSetController::matching_sets(const json& pod) {
  std::vector<json> out;
  const json& labels = at(pod, "metadata", "labels");
  for (auto& set : listers_->statefulsets(ns_of(pod))) {
    auto sel = proto::LabelSelector::from_json(at(set, "spec", "selector"), "spec.selector");
    if (!sel || sel->empty() || !sel->matches_json(labels)) continue;
    out.push_back(std::move(set));
  }
  return out;
}

void StatefulSetController::on_pod_add(const json& pod) {
  if (controller_ref(pod) != nullptr) {
    if (auto set = resolve_controller(pod)) enqueue(*set);
    return;
  }
  for (const auto& set : matching_sets(pod)) enqueue(set);
}

void StatefulSetController::on_pod_update(const json& old_pod, const json& pod) {
  const json& old_rv = at(old_pod, "metadata", "resourceVersion");
  if (!old_rv.is_null() && old_rv == at(pod, "metadata", "resourceVersion")) return;
  bool labels_changed = at(old_pod, "metadata", "labels") != at(pod, "metadata", "labels");
  const json* old_ref = controller_ref(old_pod);
  const json* cur_ref = controller_ref(pod);
  bool ref_changed =
      (old_ref == nullptr) != (cur_ref == nullptr) || (old_ref != nullptr && *old_ref != *cur_ref);
  if (ref_changed && old_ref != nullptr)
    if (auto set = resolve_controller(old_pod)) enqueue(*set);
  if (cur_ref != nullptr) {
    if (auto set = resolve_controller(pod)) {
      enqueue(*set);
      // A pod that just became ready turns available minReadySeconds later: look again then.
      int min_ready = static_cast<int>(num(at(*set, "spec", "minReadySeconds")));
      if (min_ready > 0 && !is_running_and_ready(old_pod) && is_running_and_ready(pod))
        queue_->add_after(client::object_key(*set),
                          std::chrono::seconds(min_ready) + std::chrono::seconds(1));
    }
    return;
  }
  if (labels_changed || ref_changed) {
    for (const auto& set : matching_sets(pod)) enqueue(set);
    if (labels_changed)
      for (const auto& set : matching_sets(old_pod)) enqueue(set);
  }
}

void StatefulSetController::on_pod_delete(const json& pod) {
  if (auto set = resolve_controller(pod)) enqueue(*set);
}

// --- sync ---

Status StatefulSetController::sync(const std::string& key) {
  auto set = listers_->statefulset(key);
  if (!set) return Status::ok();
  auto sel = proto::LabelSelector::from_json(at(*set, "spec", "selector"), "spec.selector");
  if (!sel) {
    // Validation keeps these out; retrying cannot fix it.
    spdlog::warn("statefulset {}: invalid selector: {}", key, sel.status().message());
    return Status::ok();
  }
  const history::Parent parent = parent_of(*set);
  if (auto st = adopt_orphan_revisions(*set, parent, *sel); !st)
    return st.with_context("adopting revisions of statefulset " + key);
  auto pods = claim_pods(*set, listers_->pods(ns_of(*set)));
  if (!pods) return pods.status().with_context("claiming pods for statefulset " + key);

  auto revs = get_revisions(*set, parent, *sel);
  if (!revs) return revs.status().with_context("computing revisions of statefulset " + key);
  json status;
  Status update_err = update_set(*set, *revs, *pods, status);
  if (auto st = update_status(*set, status); !st)
    return st.with_context("updating status of statefulset " + key);
  if (!update_err) return update_err.with_context("syncing statefulset " + key);
  if (auto st = truncate_history(*set, *pods, *revs); !st)
    return st.with_context("truncating the history of statefulset " + key);

  // Come back when the next ready pod has been ready for minReadySeconds.
  int min_ready = static_cast<int>(num(at(*set, "spec", "minReadySeconds")));
  std::optional<std::chrono::nanoseconds> next;
  auto now = wall_now();
  for (const auto& p : *pods)
    if (auto d = time_until_available(p, min_ready, now); d && (!next || *d < *next)) next = d;
  if (next) queue_->add_after(key, *next + std::chrono::milliseconds(100));
  return Status::ok();
}

Result<std::vector<json>> StatefulSetController::claim_pods(const json& set,
                                                            std::vector<json> pods) {
  auto sel = proto::LabelSelector::from_json(at(set, "spec", "selector"), "spec.selector");
  if (!sel) return sel.status();
  const std::string uid = uid_of(set);
  const bool deleting = is_terminating(set);
  std::optional<Status> can_adopt;
  std::vector<json> claimed;
  for (auto& pod : pods) {
    bool matches = sel->matches_json(at(pod, "metadata", "labels"));
    const json* ref = controller_ref(pod);
    if (ref != nullptr) {
      if (str(at(*ref, "uid")) != uid) continue;
      if (matches) {
        claimed.push_back(std::move(pod));
        continue;
      }
      if (deleting) continue;
      json patch = {{"metadata",
                     {{"ownerReferences", json::array({{{"$patch", "delete"}, {"uid", uid}}})},
                      {"uid", uid_of(pod)}}}};
      auto st = client_->patch_pod(ns_of(pod), name_of(pod), patch);
      if (!st && st.code() != Code::kNotFound && st.code() != Code::kInvalid)
        return st.with_context("releasing pod " + name_of(pod));
      continue;
    }
    // Only pods named as our members are adopted (isMemberOf), as Kubernetes.
    if (deleting || !matches || is_terminating(pod) || !is_member_of(set, pod)) continue;
    if (!can_adopt) {
      auto fresh = client_->get_statefulset(ns_of(set), name_of(set));
      if (!fresh)
        can_adopt = fresh.status().with_context("checking statefulset before adopting");
      else if (uid_of(*fresh) != uid)
        can_adopt = Status::conflict("original statefulset " + ns_of(set) + "/" + name_of(set) +
                                     " is gone: got uid " + uid_of(*fresh) + ", wanted " + uid);
      else if (is_terminating(*fresh))
        can_adopt = Status::conflict("statefulset " + ns_of(set) + "/" + name_of(set) +
                                     " has just been deleted");
      else
        can_adopt = Status::ok();
    }
    if (!*can_adopt) return *can_adopt;
    json patch = {
        {"metadata",
         {{"ownerReferences", json::array({owner_ref(set, "apps/v1", "StatefulSet", true)})},
          {"uid", uid_of(pod)}}}};
    auto st = client_->patch_pod(ns_of(pod), name_of(pod), patch);
    if (st) {
      spdlog::info("statefulset {}/{}: adopted pod {}", ns_of(set), name_of(set), name_of(pod));
      json& refs = pod["metadata"]["ownerReferences"];
      if (!refs.is_array()) refs = json::array();
      refs.push_back(owner_ref(set, "apps/v1", "StatefulSet", true));
      claimed.push_back(std::move(pod));
    } else if (st.code() != Code::kNotFound) {
      return st.with_context("adopting pod " + name_of(pod));
    }
  }
  return claimed;
}

Status StatefulSetController::adopt_orphan_revisions(const json& set, const history::Parent& parent,
                                                     const proto::LabelSelector& selector) {
  if (is_terminating(set)) return Status::ok();
  auto revs = history_->list_controller_revisions(parent, selector);
  if (!revs) return revs.status();
  for (const auto& r : *revs) {
    if (!history::controller_uid(r).empty()) continue;
    auto adopted = history_->adopt_controller_revision(parent, r);
    if (!adopted && adopted.status().code() != Code::kNotFound) return adopted.status();
  }
  return Status::ok();
}

// getStatefulSetRevisions.
Result<StatefulSetController::Revisions> StatefulSetController::get_revisions(
    const json& set, const history::Parent& parent, const proto::LabelSelector& selector) {
  auto listed = history_->list_controller_revisions(parent, selector);
  if (!listed) return listed.status();
  Revisions revs;
  for (auto& r : *listed)
    if (history::controller_uid(r) == parent.uid) revs.all.push_back(std::move(r));
  history::sort_revisions(revs.all);
  revs.collision_count = static_cast<int32_t>(num(at(set, "status", "collisionCount")));

  auto candidate = history::new_revision(parent, template_labels(set), revision_data(set),
                                         history::next_revision(revs.all), revs.collision_count);
  if (!candidate) return candidate.status();
  // Kubernetes copies the set's annotations onto its revisions.
  const json& ann = at(set, "metadata", "annotations");
  if (ann.is_object())
    for (auto it = ann.begin(); it != ann.end(); ++it)
      if (it.value().is_string())
        candidate->metadata.annotations[it.key()] = it.value().get<std::string>();

  auto equal = history::find_equal_revisions(revs.all, *candidate);
  if (!equal.empty() && equal.back() == revs.all.size() - 1) {
    revs.update = revs.all.back();  // the latest already holds this template
  } else if (!equal.empty()) {
    // Back to an older template (rollback): that revision becomes the newest.
    auto renumbered =
        history_->update_controller_revision(revs.all[equal.back()], candidate->revision);
    if (!renumbered) return renumbered.status();
    revs.all[equal.back()] = *renumbered;
    revs.update = *renumbered;
  } else {
    auto created = history_->create_controller_revision(parent, *candidate, &revs.collision_count);
    if (!created) return created.status();
    revs.update = *created;
    revs.all.push_back(*created);
  }
  history::sort_revisions(revs.all);

  revs.current = revs.update;
  std::string current_name = str(at(set, "status", "currentRevision"));
  for (const auto& r : revs.all)
    if (r.metadata.name == current_name) revs.current = r;
  return revs;
}

namespace {

// updateStatus: counts over the pods (nullptr slots skipped).
void count_status(json& status, const std::vector<const json*>& pods, int min_ready,
                  const std::string& current, const std::string& update, WallTime now) {
  int replicas = 0, ready = 0, available = 0, cur = 0, upd = 0;
  for (const json* p : pods) {
    ++replicas;
    if (is_running_and_ready(*p)) {
      ++ready;
      if (is_running_and_available(*p, min_ready, now)) ++available;
    }
    if (!is_terminating(*p)) {
      std::string rev = pod_revision(*p);
      if (rev == current) ++cur;
      if (rev == update) ++upd;
    }
  }
  status["replicas"] = replicas;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["currentReplicas"] = cur;
  status["updatedReplicas"] = upd;
}

}  // namespace

// updateStatefulSet (stateful_set_control.go) without MaxUnavailableStatefulSet.
Status StatefulSetController::update_set(const json& set, Revisions& revs,
                                         const std::vector<json>& pods, json& status) {
  const json current_set = apply_revision(set, revs.current.data);
  const json update_set = apply_revision(set, revs.update.data);
  const std::string cur_name = revs.current.metadata.name;
  const std::string upd_name = revs.update.metadata.name;
  const int min_ready = static_cast<int>(num(at(set, "spec", "minReadySeconds")));
  const auto now = wall_now();
  status = {{"observedGeneration", num(at(set, "metadata", "generation"))},
            {"currentRevision", cur_name},
            {"updateRevision", upd_name},
            {"collisionCount", revs.collision_count}};

  const int start = start_ordinal(set), count = std::max(0, replicas_of(set));
  // Kubernetes allocates one slot per replica; spec.replicas may be as large as int32 allows, so
  // here the slots end after the highest live ordinal plus kMaxNewReplicasPerSync: ordinals past
  // that are created by later syncs (a monotonic set creates one per sync anyway). With slots
  // cut short the slot after the highest live ordinal is empty, so first_unhealthy below is set
  // just as with every slot.
  int64_t highest = -1;
  for (const auto& p : pods) {
    int64_t o = get_ordinal(p);
    if (o >= start && o < int64_t{start} + count) highest = std::max(highest, o - start);
  }
  const int slots =
      static_cast<int>(std::min<int64_t>(count, highest + 1 + kMaxNewReplicasPerSync));
  std::vector<Replica> replicas(static_cast<size_t>(slots));
  std::vector<json> condemned;
  for (const auto& p : pods) {
    int64_t o = get_ordinal(p);
    if (o >= start && o < int64_t{start} + count)
      replicas[static_cast<size_t>(o - start)] = Replica{p, true};
    else if (o >= 0)
      condemned.push_back(p);
  }
  // The live pods counted before anything is done (Kubernetes' first updateStatus).
  auto recount = [&] {
    std::vector<const json*> live;
    for (const auto& r : replicas)
      if (r.created) live.push_back(&r.pod);
    for (const auto& c : condemned) live.push_back(&c);
    count_status(status, live, min_ready, cur_name, upd_name, now);
  };
  recount();
  for (int i = 0; i < slots; ++i) {
    if (replicas[i].created) continue;
    int ordinal = start + i;
    // newVersionedStatefulSetPod: below the partition pods stay at the current revision.
    bool at_current = is_rolling_update(current_set) && ordinal < start + partition_of(current_set);
    replicas[i].pod = new_pod(at_current ? current_set : update_set, ordinal);
    set_pod_revision(replicas[i].pod, at_current ? cur_name : upd_name);
  }
  std::sort(condemned.begin(), condemned.end(),
            [](const json& a, const json& b) { return get_ordinal(a) > get_ordinal(b); });
  const json* first_unhealthy = nullptr;
  for (const auto& r : replicas)
    if (!r.created || !is_healthy(r.pod)) {
      if (!first_unhealthy) first_unhealthy = &r.pod;
    }
  for (auto it = condemned.rbegin(); it != condemned.rend(); ++it)
    if (!is_healthy(*it) && !first_unhealthy) first_unhealthy = &*it;

  if (is_terminating(set)) return Status::ok();
  const bool monotonic = !is_parallel(set);

  // processReplica for each replica, in ordinal order.
  Status first_err;
  for (auto& r : replicas) {
    json& pod = r.pod;
    bool exit = false;
    Status st;
    if (r.created && (is_failed(pod) || is_succeeded(pod))) {
      // A pod that finished is deleted and recreated on a later sync.
      if (!is_terminating(pod)) st = delete_stateful_pod(set, pod);
      exit = true;
    } else if (!r.created) {
      if (pod_claim_is_stale(set, pod)) {
        exit = true;  // the old incarnation's claim is waiting for the garbage collector
      } else {
        st = create_stateful_pod(set, pod);
        exit = !st || monotonic;
      }
    } else {
      if (is_pending(pod)) st = create_claims(set, pod);
      if (!st) {
        exit = true;
      } else if (monotonic && (is_terminating(pod) || !is_running_and_ready(pod) ||
                               !is_running_and_available(pod, min_ready, now))) {
        exit = true;  // wait for it before touching the next ordinal
      } else if (!identity_matches(set, pod) || !storage_matches(set, pod) ||
                 !claims_match_policy(update_set, pod)) {
        st = update_stateful_pod(update_set, pod);
        exit = !st;
      }
    }
    if (!st && first_err) first_err = st;
    if (exit && monotonic) {
      recount();
      return first_err;
    }
  }
  if (!first_err) {
    recount();
    return first_err;
  }

  // The claims of condemned pods get the owners the retention policy wants (WhenScaled=Delete
  // makes the pod their owner, so the garbage collector removes them with it).
  for (const auto& c : condemned) {
    if (claims_match_policy(update_set, c)) continue;
    if (auto st = update_claims_for_policy(update_set, c); !st) {
      if (monotonic) {
        recount();
        return st;
      }
      if (first_err) first_err = st;
    }
  }

  // processCondemned, highest ordinal first.
  for (const auto& c : condemned) {
    if (is_terminating(c)) {
      if (monotonic) break;
      continue;
    }
    if (monotonic && &c != first_unhealthy &&
        (!is_running_and_ready(c) || !is_running_and_available(c, min_ready, now)))
      break;
    Status st = delete_stateful_pod(set, c);
    if (!st && first_err) first_err = st;
    if (monotonic) break;
  }
  recount();
  if (!first_err) return first_err;
  // Scaling down is not over yet: updates wait (Kubernetes returns after processCondemned
  // blocked, which here is whenever a condemned pod remains).
  if (monotonic && !condemned.empty()) return Status::ok();

  if (!is_rolling_update(set)) return Status::ok();  // OnDelete
  // Rolling update: from the highest ordinal down to the partition, one pod at a time.
  int update_min = partition_of(set);
  if (slots < count) return Status::ok();  // replicas still to create: updates wait for them
  for (int target = count - 1; target >= update_min; --target) {
    Replica& r = replicas[static_cast<size_t>(target)];
    if (!r.created) return Status::ok();
    if (pod_revision(r.pod) != upd_name && !is_terminating(r.pod)) {
      spdlog::info("statefulset {}/{}: deleting pod {} to update it to revision {}", ns_of(set),
                   name_of(set), name_of(r.pod), upd_name);
      Status st = delete_stateful_pod(set, r.pod);
      if (st || st.code() == Code::kNotFound)
        status["currentReplicas"] = num(status["currentReplicas"]) - 1;
      return st.code() == Code::kNotFound ? Status::ok() : st;
    }
    if (!is_healthy(r.pod)) return Status::ok();  // wait for the updated pod
  }
  return Status::ok();
}

// updateStatefulSetStatus: completeRollingUpdate, then a write only when something changed.
Status StatefulSetController::update_status(const json& set, json status) {
  if (is_rolling_update(set) && status["updatedReplicas"] == status["replicas"] &&
      status["readyReplicas"] == status["replicas"]) {
    status["currentReplicas"] = status["updatedReplicas"];
    status["currentRevision"] = status["updateRevision"];
  }
  const json& old = at(set, "status");
  bool same = true;
  for (const char* k : {"observedGeneration", "replicas", "readyReplicas", "updatedReplicas",
                        "currentReplicas", "availableReplicas"})
    same = same && num(at(old, k)) == num(status[k]);
  for (const char* k : {"currentRevision", "updateRevision"})
    same = same && str(at(old, k)) == str(status[k]);
  // Kubernetes' inconsistentStatus leaves collisionCount out; a raised count must be kept.
  same = same && num(at(old, "collisionCount")) == num(status["collisionCount"]);
  if (same) return Status::ok();
  json updated = set;
  json& s = updated["status"];
  if (!s.is_object()) s = json::object();
  for (auto it = status.begin(); it != status.end(); ++it) s[it.key()] = it.value();
  auto r = client_->update_status(updated);
  if (r) return Status::ok();
  if (r.status().code() != Code::kConflict) return r.status();
  // Stale: write the same counts onto a fresh copy once (Kubernetes' RetryOnConflict).
  auto fresh = client_->get_statefulset(ns_of(set), name_of(set));
  if (!fresh) return fresh.status();
  json& fs = (*fresh)["status"];
  if (!fs.is_object()) fs = json::object();
  for (auto it = status.begin(); it != status.end(); ++it) fs[it.key()] = it.value();
  return client_->update_status(*fresh).status();
}

Status StatefulSetController::truncate_history(const json& set, const std::vector<json>& pods,
                                               Revisions& revs) {
  std::set<std::string> live = {revs.current.metadata.name, revs.update.metadata.name};
  for (const auto& p : pods) live.insert(pod_revision(p));
  std::vector<const history::ControllerRevision*> old;
  for (const auto& r : revs.all)
    if (!live.count(r.metadata.name)) old.push_back(&r);
  int limit = static_cast<int>(num(at(set, "spec", "revisionHistoryLimit"), 10));
  if (static_cast<int>(old.size()) <= limit) return Status::ok();
  for (size_t i = 0; i < old.size() - static_cast<size_t>(std::max(limit, 0)); ++i) {
    Status st = history_->delete_controller_revision(*old[i]);
    if (!st && st.code() != Code::kNotFound) return st;
  }
  return Status::ok();
}

// --- stateful_pod_control.go ---

void StatefulSetController::pod_event(const json& set, const json& pod, const char* verb,
                                      const Status& st) {
  if (!events_) return;
  std::string v = verb;
  std::string reason = v == "create" ? "Create" : v == "delete" ? "Delete" : "Update";
  if (st)
    events_->event(event_object(set), "StatefulSet", false, "Successful" + reason,
                   v + " Pod " + name_of(pod) + " in StatefulSet " + name_of(set) + " successful");
  else
    events_->event(event_object(set), "StatefulSet", true, "Failed" + reason,
                   v + " Pod " + name_of(pod) + " in StatefulSet " + name_of(set) +
                       " failed error: " + st.message());
}

Status StatefulSetController::create_claims(const json& set, const json& pod) {
  Status first;
  for (auto& [tname, claim] : claims_for(set, get_ordinal(pod))) {
    const std::string cname = str(at(claim, "metadata", "name"));
    auto existing = listers_->claim(ns_of(set), cname);
    if (existing) {
      if (is_terminating(*existing) && first)
        first = Status::conflict("pvc " + cname + " is being deleted");
      continue;
    }
    json want = claim;
    update_claim_owner_refs(want, set, pod);
    auto r = client_->create_claim(ns_of(set), want);
    if (!r && r.status().code() == Code::kAlreadyExists) continue;  // the cache lags
    if (events_) {
      if (r)
        events_->event(event_object(set), "StatefulSet", false, "SuccessfulCreate",
                       "create Claim " + cname + " Pod " + name_of(pod) + " in StatefulSet " +
                           name_of(set) + " success");
      else
        events_->event(event_object(set), "StatefulSet", true, "FailedCreate",
                       "create Claim " + cname + " for Pod " + name_of(pod) + " in StatefulSet " +
                           name_of(set) + " failed error: " + r.status().message());
    }
    if (!r && first)
      first =
          Status(r.status().code(), "failed to create PVC " + cname + ": " + r.status().message());
  }
  return first;
}

Status StatefulSetController::create_stateful_pod(const json& set, const json& pod) {
  // The claims come first: the pod must never start without its storage.
  if (Status st = create_claims(set, pod); !st) {
    pod_event(set, pod, "create", st);
    return st;
  }
  auto created = client_->create_pod(ns_of(set), pod);
  if (!created && created.status().code() == Code::kAlreadyExists) return created.status();
  Status st = created.status();
  if (created) {
    // Owners that need the pod's uid (WhenScaled=Delete for an out-of-range ordinal) are set
    // on a later sync; the set's own reference is settled now.
    if (auto ust = update_claims_for_policy(set, *created); !ust) {
      pod_event(set, pod, "update", ust);
      return ust;
    }
  }
  pod_event(set, pod, "create", st);
  return st;
}

Status StatefulSetController::delete_stateful_pod(const json& set, const json& pod) {
  Status st = client_->delete_pod(ns_of(pod), name_of(pod));
  if (st.code() == Code::kNotFound) return st;  // already gone: no event
  pod_event(set, pod, "delete", st);
  return st;
}

Status StatefulSetController::update_stateful_pod(const json& set, json pod) {
  bool dirty = false;
  if (!identity_matches(set, pod)) {
    update_identity(set, pod);
    dirty = true;
  }
  // A running pod's volumes cannot change (its spec is immutable); the missing claims are
  // created so a recreated pod finds them.
  if (!storage_matches(set, pod))
    if (Status st = create_claims(set, pod); !st) return st;
  if (!claims_match_policy(set, pod))
    if (Status st = update_claims_for_policy(set, pod); !st) return st;
  if (!dirty) return Status::ok();
  auto r = client_->update_pod(pod);
  Status st = r.status();
  pod_event(set, pod, "update", st);
  return st;
}

bool StatefulSetController::claims_match_policy(const json& set, const json& pod) {
  for (auto& [tname, claim] : claims_for(set, get_ordinal(pod))) {
    auto existing = listers_->claim(ns_of(set), str(at(claim, "metadata", "name")));
    if (!existing) continue;
    json c = *existing;
    if (update_claim_owner_refs(c, set, pod)) return false;
  }
  return true;
}

Status StatefulSetController::update_claims_for_policy(const json& set, const json& pod) {
  for (auto& [tname, claim] : claims_for(set, get_ordinal(pod))) {
    auto existing = listers_->claim(ns_of(set), str(at(claim, "metadata", "name")));
    if (!existing) continue;
    json c = *existing;
    if (!update_claim_owner_refs(c, set, pod)) continue;
    auto r = client_->update_claim(c);
    if (!r && r.status().code() != Code::kNotFound)
      return r.status().with_context("updating the owners of claim " + name_of(c));
  }
  return Status::ok();
}

bool StatefulSetController::pod_claim_is_stale(const json& set, const json& pod) {
  std::string scaled =
      str(at(at(set, "spec", "persistentVolumeClaimRetentionPolicy"), "whenScaled"));
  if (scaled != "Delete") return false;  // claims are meant to be reused
  for (auto& [tname, claim] : claims_for(set, get_ordinal(pod))) {
    auto existing = listers_->claim(ns_of(set), str(at(claim, "metadata", "name")));
    if (existing && has_stale_owner_ref(*existing, pod)) return true;
  }
  return false;
}

}  // namespace skiff::controllers::statefulset
