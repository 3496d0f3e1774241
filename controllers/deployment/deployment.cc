#include "controllers/deployment/deployment.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/selector.h"

namespace skiff::controllers::deployment {

namespace {

const proto::ResourceType& deploy_type() {
  static const proto::ResourceType t = proto::deployment_resource();
  return t;
}
const proto::ResourceType& rs_type() {
  static const proto::ResourceType t = proto::replicaset_resource();
  return t;
}
const proto::ResourceType& pod_type() {
  static const proto::ResourceType t = proto::pod_resource();
  return t;
}

template <class T>
T decode_obj(const json& j) {
  proto::FieldErrors errs;
  return proto::decode<T>(j, errs);
}

std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

// The deployment's selector, parsed; nullopt when it cannot be (the API server rejects such).
std::optional<proto::LabelSelector> selector_of(const Deployment& d) {
  if (!d.spec.selector) return proto::LabelSelector();
  auto s = proto::LabelSelector::from_json(proto::encode(*d.spec.selector), "spec.selector");
  if (!s) return std::nullopt;
  return *s;
}

bool selector_empty(const Deployment& d) {
  return !d.spec.selector ||
         (d.spec.selector->match_labels.empty() && d.spec.selector->match_expressions.empty());
}

bool same_json(const auto& a, const auto& b) { return proto::encode(a) == proto::encode(b); }

// A string member of a JSON object, "" when absent or of another type (informer objects come
// validated from the API server; this keeps a handler from throwing if one does not).
std::string str_of(const json& o, const char* key) {
  if (!o.is_object()) return "";
  auto i = o.find(key);
  return i != o.end() && i->is_string() ? i->get<std::string>() : "";
}

PodInfo pod_info(const json& p) {
  PodInfo out;
  static const json empty = json::object();
  auto mi = p.is_object() ? p.find("metadata") : p.end();
  const json& m = p.is_object() && mi != p.end() && mi->is_object() ? *mi : empty;
  out.name = str_of(m, "name");
  if (auto l = m.find("labels"); l != m.end() && l->is_object())
    for (auto& [k, v] : l->items())
      if (v.is_string()) out.labels[k] = v.get<std::string>();
  if (auto o = m.find("ownerReferences"); o != m.end() && o->is_array())
    for (const auto& r : *o)
      if (r.is_object() && r.value("controller", json(false)) == json(true))
        out.controller_uid = str_of(r, "uid");
  if (p.is_object())
    if (auto s = p.find("status"); s != p.end()) out.phase = str_of(*s, "phase");
  return out;
}

// The real client: the informers' caches and the API.
class ApiDeploymentClient : public DeploymentClient {
 public:
  ApiDeploymentClient(client::Informer& d, client::Informer& rs, client::Informer& pods,
                      std::shared_ptr<client::ApiClient> api)
      : d_(d), rs_(rs), pods_(pods), api_(std::move(api)) {}

  std::optional<Deployment> get_deployment(const std::string& ns,
                                           const std::string& name) override {
    auto j = d_.get(key_of(ns, name));
    if (!j) return std::nullopt;
    return decode_obj<Deployment>(*j);
  }
  std::vector<Deployment> list_deployments(const std::string& ns) override {
    std::vector<Deployment> out;
    for (const auto& j : d_.by_namespace(ns)) out.push_back(decode_obj<Deployment>(j));
    return out;
  }
  std::vector<ReplicaSet> list_replicasets(const std::string& ns) override {
    std::vector<ReplicaSet> out;
    for (const auto& j : rs_.by_namespace(ns)) out.push_back(decode_obj<ReplicaSet>(j));
    return out;
  }
  std::vector<PodInfo> list_pods(const std::string& ns) override {
    std::vector<PodInfo> out;
    for (const auto& j : pods_.by_namespace(ns)) out.push_back(pod_info(j));
    return out;
  }
  Result<Deployment> get_deployment_live(const std::string& ns, const std::string& name) override {
    auto r = api_->get(deploy_type(), ns, name);
    if (!r) return r.status();
    return decode_obj<Deployment>(*r);
  }
  Result<ReplicaSet> create_replicaset(const ReplicaSet& rs) override {
    auto r = api_->create(rs_type(), rs.metadata.namespace_, proto::encode(rs));
    if (!r)
      return r.status().with_context("creating replica set " + rs.metadata.namespace_ + "/" +
                                     rs.metadata.name);
    return decode_obj<ReplicaSet>(*r);
  }
  Result<ReplicaSet> update_replicaset(const ReplicaSet& rs) override {
    auto r = api_->update(rs_type(), proto::encode(rs));
    if (!r)
      return r.status().with_context("updating replica set " + rs.metadata.namespace_ + "/" +
                                     rs.metadata.name);
    return decode_obj<ReplicaSet>(*r);
  }
  Status delete_replicaset(const std::string& ns, const std::string& name) override {
    auto st = api_->remove(rs_type(), ns, name, "Background");
    return st ? st : st.with_context("deleting replica set " + ns + "/" + name);
  }
  Result<Deployment> update_status(const Deployment& d) override {
    auto r = api_->update_status(deploy_type(), proto::encode(d));
    if (!r)
      return r.status().with_context("updating the status of deployment " + d.metadata.namespace_ +
                                     "/" + d.metadata.name);
    return decode_obj<Deployment>(*r);
  }
  Result<Deployment> update_annotations(const Deployment& d) override {
    // A PUT of what we read with our annotations: conditional on the resourceVersion, and
    // the spec is the one we read (the status is ignored by the main resource).
    auto r = api_->update(deploy_type(), proto::encode(d));
    if (!r)
      return r.status().with_context("updating the annotations of deployment " +
                                     d.metadata.namespace_ + "/" + d.metadata.name);
    return decode_obj<Deployment>(*r);
  }

 private:
  client::Informer& d_;
  client::Informer& rs_;
  client::Informer& pods_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// One sync of one Deployment. `d` is the working copy, `server` what the API server has (as far
// as we know); commit() writes the difference (annotations, then status).

struct DeploymentController::Sync {
  DeploymentController& c;
  DeploymentClient& cl;
  Deployment d, server;
  std::vector<std::unique_ptr<ReplicaSet>> store;  // owns every RS the lists point to
  proto::Time now;

  std::string key() const { return key_of(d.metadata.namespace_, d.metadata.name); }

  void event(bool warning, const std::string& reason, const std::string& msg) {
    if (c.events_) c.events_->event(proto::encode(d), "Deployment", warning, reason, msg);
  }

  ReplicaSet* keep(ReplicaSet rs) {
    store.push_back(std::make_unique<ReplicaSet>(std::move(rs)));
    return store.back().get();
  }

  Status commit() {
    if (d.metadata.annotations != server.metadata.annotations) {
      int64_t gen_before = d.metadata.generation;
      auto r = cl.update_annotations(d);
      if (!r) return r.status();
      int64_t gen_after = r->metadata.generation;
      d.metadata = r->metadata;
      // The generation moved only because of our own annotation write (the write was
      // conditional on what we read): what we observed is still current.
      if (d.status.observed_generation == gen_before) d.status.observed_generation = gen_after;
      server = *r;
    }
    if (!same_json(d.status, server.status)) {
      auto r = cl.update_status(d);
      if (!r) return r.status();
      d.metadata = r->metadata;
      d.status = r->status;
      server = *r;
    }
    return Status::ok();
  }

  // --- adoption (ControllerRefManager).

  Result<RSList> claim_replicasets() {
    auto sel = selector_of(d);
    if (!sel) return Status::invalid("deployment " + key() + " has an invalid selector");
    RSList out;
    std::optional<Status> can_adopt;  // checked once, lazily
    Status first_err;
    for (auto& rs : cl.list_replicasets(d.metadata.namespace_)) {
      const auto* ref = controller_of(rs.metadata);
      bool match = sel->matches(rs.metadata.labels);
      if (ref) {
        if (ref->uid != d.metadata.uid) continue;
        if (match) {
          out.push_back(keep(std::move(rs)));
          continue;
        }
        if (d.metadata.deletion_timestamp) continue;
        ReplicaSet copy = rs;
        std::erase_if(copy.metadata.owner_references,
                      [&](const auto& r) { return r.uid == d.metadata.uid; });
        auto r = cl.update_replicaset(copy);
        if (r) {
          spdlog::info("deployment: {} released replica set {} (labels no longer match)", key(),
                       rs.metadata.name);
        } else if (r.status().code() != Code::kNotFound && first_err.is_ok()) {
          first_err = r.status();
        }
        continue;
      }
      if (d.metadata.deletion_timestamp || !match || rs.metadata.deletion_timestamp) continue;
      if (!can_adopt) {
        auto fresh = cl.get_deployment_live(d.metadata.namespace_, d.metadata.name);
        if (!fresh)
          can_adopt = fresh.status().with_context("can't adopt replica sets of " + key());
        else if (fresh->metadata.uid != d.metadata.uid)
          can_adopt = Status::not_found("original deployment " + key() + " is gone: got uid " +
                                        fresh->metadata.uid + ", wanted " + d.metadata.uid);
        else if (fresh->metadata.deletion_timestamp)
          can_adopt = Status::invalid(key() + " has just been deleted");
        else
          can_adopt = Status::ok();
      }
      if (!can_adopt->is_ok()) {
        if (first_err.is_ok()) first_err = *can_adopt;
        continue;
      }
      ReplicaSet copy = rs;
      proto::OwnerReference ref_new;
      ref_new.api_version = "apps/v1";
      ref_new.kind = "Deployment";
      ref_new.name = d.metadata.name;
      ref_new.uid = d.metadata.uid;
      ref_new.controller = true;
      ref_new.block_owner_deletion = true;
      copy.metadata.owner_references.push_back(ref_new);
      auto r = cl.update_replicaset(copy);
      if (r) {
        spdlog::info("deployment: {} adopted replica set {}", key(), rs.metadata.name);
        out.push_back(keep(std::move(*r)));
      } else if (r.status().code() != Code::kNotFound && first_err.is_ok()) {
        first_err = r.status();
      }
    }
    if (!first_err.is_ok()) return first_err;
    return out;
  }

  // Pods of the deployment's ReplicaSets, by RS uid (Recreate waits on them).
  std::map<std::string, std::vector<PodInfo>> pod_map(const RSList& rs_list) {
    std::map<std::string, std::vector<PodInfo>> out;
    auto sel = selector_of(d);
    if (!sel) return out;
    std::set<std::string> uids;
    for (auto* rs : rs_list) uids.insert(rs->metadata.uid);
    for (auto& p : cl.list_pods(d.metadata.namespace_))
      if (sel->matches(p.labels) && uids.count(p.controller_uid))
        out[p.controller_uid].push_back(std::move(p));
    return out;
  }

  // --- new and old ReplicaSets.

  ReplicaSet* find_new(RSList l) {
    sort_by_creation(l);
    for (auto* rs : l)
      if (equal_ignore_hash(rs->spec.template_, d.spec.template_)) return rs;
    return nullptr;
  }

  // getAllReplicaSetsAndSyncRevision: the new RS (created when `create`) and every old one.
  Status get_all(const RSList& rs_list, bool create, ReplicaSet** new_rs, RSList* old) {
    ReplicaSet* existing = find_new(rs_list);
    old->clear();
    for (auto* rs : rs_list)
      if (rs != existing) old->push_back(rs);
    auto r = get_new(rs_list, *old, create);
    if (!r) return r.status();
    *new_rs = *r;
    return Status::ok();
  }

  Result<ReplicaSet*> get_new(const RSList& rs_list, const RSList& old, bool create) {
    ReplicaSet* existing = find_new(rs_list);
    std::string new_revision = std::to_string(max_revision(old) + 1);
    if (existing) {
      ReplicaSet copy = *existing;
      bool ann = set_new_rs_annotations(d, copy, new_revision, true);
      if (ann || copy.spec.min_ready_seconds != d.spec.min_ready_seconds) {
        copy.spec.min_ready_seconds = d.spec.min_ready_seconds;
        auto r = cl.update_replicaset(copy);
        if (!r) return r.status();
        *existing = std::move(*r);
        // Kubernetes returns here; the revision reaches the deployment on the next sync,
        // which the RS update event triggers.
        return existing;
      }
      bool needs = set_deployment_revision(copy.metadata.annotations[kRevisionAnnotation]);
      if (has_progress_deadline(d) && !get_condition(d.status, kProgressing)) {
        set_condition(d.status,
                      new_condition(kProgressing, "True", kFoundNewRSReason,
                                    "Found new replica set \"" + copy.metadata.name + "\"", now));
        needs = true;
      }
      if (needs)
        if (auto st = commit(); !st) return st;
      return existing;
    }
    if (!create) return static_cast<ReplicaSet*>(nullptr);

    std::string hash = compute_hash(d.spec.template_, d.status.collision_count);
    ReplicaSet rs;
    rs.type_meta.api_version = "apps/v1";
    rs.type_meta.kind = "ReplicaSet";
    rs.metadata.name = d.metadata.name + "-" + hash;
    rs.metadata.namespace_ = d.metadata.namespace_;
    proto::OwnerReference ref;
    ref.api_version = "apps/v1";
    ref.kind = "Deployment";
    ref.name = d.metadata.name;
    ref.uid = d.metadata.uid;
    ref.controller = true;
    ref.block_owner_deletion = true;
    rs.metadata.owner_references.push_back(ref);
    rs.spec.template_ = d.spec.template_;
    rs.spec.template_.metadata.labels[kHashLabel] = hash;
    rs.metadata.labels = rs.spec.template_.metadata.labels;
    rs.spec.selector = d.spec.selector.value_or(proto::LabelSelectorSpec{});
    rs.spec.selector->match_labels[kHashLabel] = hash;
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
    rs.spec.replicas = 0;
    RSList all = old;
    all.push_back(&rs);
    int32_t count = new_rs_new_replicas(all, &rs);
    rs.spec.replicas = count;
    set_new_rs_annotations(d, rs, new_revision, false);

    ReplicaSet* created = nullptr;
    bool already_exists = false;
    auto r = cl.create_replicaset(rs);
    if (r) {
      created = keep(std::move(*r));
    } else if (r.status().code() == Code::kAlreadyExists) {
      already_exists = true;
      std::optional<ReplicaSet> found;
      for (auto& x : cl.list_replicasets(d.metadata.namespace_))
        if (x.metadata.name == rs.metadata.name) found = std::move(x);
      if (!found) return r.status();  // not in the cache yet: retry
      const auto* cref = controller_of(found->metadata);
      if (cref && cref->uid == d.metadata.uid &&
          equal_ignore_hash(d.spec.template_, found->spec.template_)) {
        created = keep(std::move(*found));
      } else {
        // A hash collision: another template (or owner) holds the name. Bump the collision
        // count so the next sync computes another name.
        d.status.collision_count = d.status.collision_count.value_or(0) + 1;
        if (auto st = commit(); st)
          spdlog::warn(
              "deployment: {} found a hash collision on replica set {}: collision "
              "count now {}",
              key(), rs.metadata.name, *d.status.collision_count);
        return r.status().with_context("hash collision");
      }
    } else {
      std::string msg =
          "Failed to create new replica set \"" + rs.metadata.name + "\": " + r.status().message();
      if (has_progress_deadline(d)) {
        set_condition(d.status,
                      new_condition(kProgressing, "False", kFailedRSCreateReason, msg, now));
        (void)commit();
      }
      event(true, kFailedRSCreateReason, msg);
      return r.status();
    }
    if (!already_exists && count > 0)
      event(false, "ScalingReplicaSet",
            "Scaled up replica set " + created->metadata.name + " from 0 to " +
                std::to_string(count));
    bool needs = set_deployment_revision(new_revision);
    if (!already_exists && has_progress_deadline(d)) {
      set_condition(
          d.status,
          new_condition(kProgressing, "True", kNewRSReason,
                        "Created new replica set \"" + created->metadata.name + "\"", now));
      needs = true;
    }
    if (needs)
      if (auto st = commit(); !st) return st;
    return created;
  }

  bool set_deployment_revision(const std::string& revision) {
    auto& a = d.metadata.annotations;
    auto it = a.find(kRevisionAnnotation);
    if (it != a.end() && it->second == revision) return false;
    a[kRevisionAnnotation] = revision;
    return true;
  }

  // NewRSNewReplicas.
  int32_t new_rs_new_replicas(const RSList& all, const ReplicaSet* new_rs) {
    int32_t replicas = replicas_of(d);
    if (!is_rolling_update(d)) return replicas;
    int32_t surge = max_surge(d);
    int32_t current = spec_replicas_sum(all);
    int32_t max_total = replicas + surge;
    if (current >= max_total) return replicas_of(*new_rs);
    int32_t up = std::min(max_total - current, replicas - replicas_of(*new_rs));
    return replicas_of(*new_rs) + up;
  }

  // --- scaling.

  Result<bool> scale_rs(ReplicaSet* rs, int32_t new_scale, const std::string& op) {
    int32_t old_scale = replicas_of(*rs);
    bool size = old_scale != new_scale;
    int32_t desired = replicas_of(d), max = desired + max_surge(d);
    bool ann = replicas_annotations_need_update(*rs, desired, max);
    if (!size && !ann) return false;
    ReplicaSet copy = *rs;
    copy.spec.replicas = new_scale;
    set_replicas_annotations(copy, desired, max);
    auto r = cl.update_replicaset(copy);
    if (!r) return r.status();
    *rs = std::move(*r);
    if (size)
      event(false, "ScalingReplicaSet",
            "Scaled " + op + " replica set " + rs->metadata.name + " from " +
                std::to_string(old_scale) + " to " + std::to_string(new_scale));
    return size;
  }

  Result<bool> scale_rs_and_record(ReplicaSet* rs, int32_t new_scale) {
    if (replicas_of(*rs) == new_scale) return false;
    return scale_rs(rs, new_scale, replicas_of(*rs) < new_scale ? "up" : "down");
  }

  // sync(): scaling without rollout progress (paused, or a scaling event).
  Status scale(ReplicaSet* new_rs, RSList old) {
    int32_t replicas = replicas_of(d);
    // One active RS (or none: the newest) takes the whole count.
    if (new_rs || !old.empty()) {
      std::stable_sort(old.begin(), old.end(), [](auto* a, auto* b) { return older(*b, *a); });
      RSList all = old;
      all.push_back(new_rs);
      RSList active = filter_active(all);
      ReplicaSet* target = nullptr;
      if (active.empty())
        target = new_rs ? new_rs : old[0];
      else if (active.size() == 1)
        target = active[0];
      if (target) {
        if (replicas_of(*target) == replicas) return Status::ok();
        auto r = scale_rs_and_record(target, replicas);
        return r ? Status::ok() : r.status();
      }
    }
    if (is_saturated(d, new_rs)) {
      for (auto* rs : filter_active(old))
        if (auto r = scale_rs_and_record(rs, 0); !r) return r.status();
      return Status::ok();
    }
    if (!is_rolling_update(d)) return Status::ok();
    // Proportional scaling: spread the difference over the active RSes by their sizes.
    RSList all = old;
    all.push_back(new_rs);
    all = filter_active(all);
    int32_t all_replicas = spec_replicas_sum(all);
    int32_t allowed = replicas > 0 ? replicas + max_surge(d) : 0;
    int32_t to_add = allowed - all_replicas;
    std::string op;
    if (to_add > 0) {
      sort_by_size_newer(all);
      op = "up";
    } else if (to_add < 0) {
      sort_by_size_older(all);
      op = "down";
    }
    int32_t added = 0;
    std::map<const ReplicaSet*, int32_t> size;
    for (auto* rs : all) {
      if (to_add != 0) {
        int32_t p = proportion(*rs, to_add, added);
        size[rs] = replicas_of(*rs) + p;
        added += p;
      } else {
        size[rs] = replicas_of(*rs);
      }
    }
    for (size_t i = 0; i < all.size(); ++i) {
      auto* rs = all[i];
      if (i == 0 && to_add != 0) size[rs] = std::max(0, size[rs] + to_add - added);
      if (auto r = scale_rs(rs, size[rs], op); !r) return r.status();
    }
    return Status::ok();
  }

  int32_t proportion(const ReplicaSet& rs, int32_t to_add, int32_t added) {
    if (replicas_of(rs) == 0 || to_add == 0 || to_add == added) return 0;
    int32_t fraction = 0;
    if (replicas_of(d) == 0) {
      fraction = -replicas_of(rs);
    } else {
      int32_t deployment_replicas = replicas_of(d) + max_surge(d);
      int32_t annotated = max_replicas_annotation(rs).value_or(d.status.replicas);
      // No basis to scale from (Kubernetes would divide by zero): the leftover step below
      // gives the difference to the largest RS.
      if (annotated > 0) {
        double n = static_cast<double>(replicas_of(rs)) * deployment_replicas / annotated;
        fraction = static_cast<int32_t>(std::lround(n)) - replicas_of(rs);
      }
    }
    int32_t allowed = to_add - added;
    return to_add > 0 ? std::min(fraction, allowed) : std::max(fraction, allowed);
  }

  bool is_scaling_event(const RSList& rs_list, Status* err) {
    ReplicaSet* new_rs = nullptr;
    RSList old;
    if (auto st = get_all(rs_list, false, &new_rs, &old); !st) {
      *err = st;
      return false;
    }
    old.push_back(new_rs);
    for (auto* rs : filter_active(old)) {
      auto desired = desired_replicas_annotation(*rs);
      if (desired && *desired != replicas_of(d)) return true;
    }
    return false;
  }

  // --- rolling update.

  Result<bool> reconcile_new(const RSList& all, ReplicaSet* new_rs) {
    int32_t replicas = replicas_of(d);
    if (replicas_of(*new_rs) == replicas) return false;
    if (replicas_of(*new_rs) > replicas) return scale_rs_and_record(new_rs, replicas);
    return scale_rs_and_record(new_rs, new_rs_new_replicas(all, new_rs));
  }

  Result<bool> reconcile_old(const RSList& all, RSList old, ReplicaSet* new_rs) {
    if (spec_replicas_sum(old) == 0) return false;
    int32_t all_pods = spec_replicas_sum(all);
    int32_t min_available = replicas_of(d) - max_unavailable(d);
    int32_t new_unavailable = replicas_of(*new_rs) - countable_available(*new_rs);
    int32_t max_scaled_down = all_pods - min_available - new_unavailable;
    if (max_scaled_down <= 0) return false;
    // Unhealthy replicas first: scaling them down costs no availability.
    auto cleaned = cleanup_unhealthy(old, max_scaled_down);
    if (!cleaned) return cleaned.status();
    RSList all2 = old;
    all2.push_back(new_rs);
    auto scaled = scale_down_old_for_rolling(all2, old);
    if (!scaled) return scaled.status();
    return *cleaned + *scaled > 0;
  }

  Result<int32_t> cleanup_unhealthy(RSList& old, int32_t max_cleanup) {
    sort_by_creation(old);
    int32_t total = 0;
    for (auto* rs : old) {
      if (total >= max_cleanup) break;
      int32_t n = replicas_of(*rs);
      // A status that has not caught up with the spec says nothing about health: leave it.
      if (n == 0 || rs->status.observed_generation < rs->metadata.generation) continue;
      int32_t available = countable_available(*rs);
      if (n == available) continue;
      int32_t down = std::min(max_cleanup - total, n - available);
      if (down <= 0) continue;
      auto r = scale_rs_and_record(rs, n - down);
      if (!r) return r.status();
      total += down;
    }
    return total;
  }

  Result<int32_t> scale_down_old_for_rolling(const RSList& all, RSList old) {
    int32_t min_available = replicas_of(d) - max_unavailable(d);
    int32_t available = countable_available_sum(all);
    if (available <= min_available) return 0;
    sort_by_creation(old);
    int32_t total = 0, want = available - min_available;
    for (auto* rs : old) {
      if (total >= want) break;
      if (replicas_of(*rs) == 0) continue;
      int32_t down = std::min(replicas_of(*rs), want - total);
      auto r = scale_rs_and_record(rs, replicas_of(*rs) - down);
      if (!r) return r.status();
      total += down;
    }
    return total;
  }

  Status rollout_rolling(const RSList& rs_list) {
    ReplicaSet* new_rs = nullptr;
    RSList old;
    if (auto st = get_all(rs_list, true, &new_rs, &old); !st) return st;
    RSList all = old;
    all.push_back(new_rs);
    auto up = reconcile_new(all, new_rs);
    if (!up) return up.status();
    if (*up) return sync_rollout_status(all, new_rs);
    auto down = reconcile_old(all, filter_active(old), new_rs);
    if (!down) return down.status();
    if (*down) return sync_rollout_status(all, new_rs);
    if (deployment_complete(d, d.status))
      if (auto st = cleanup(old); !st) return st;
    return sync_rollout_status(all, new_rs);
  }

  // --- recreate.

  Status rollout_recreate(const RSList& rs_list) {
    ReplicaSet* new_rs = nullptr;
    RSList old;
    if (auto st = get_all(rs_list, false, &new_rs, &old); !st) return st;
    RSList all = old;
    all.push_back(new_rs);
    bool scaled_down = false;
    for (auto* rs : filter_active(old)) {
      auto r = scale_rs_and_record(rs, 0);
      if (!r) return r.status();
      scaled_down = scaled_down || *r;
    }
    if (scaled_down) return sync_rollout_status(all, new_rs);
    if (old_pods_running(new_rs, old, pod_map(rs_list))) return sync_rollout_status(all, new_rs);
    if (!new_rs) {
      if (auto st = get_all(rs_list, true, &new_rs, &old); !st) return st;
      all = old;
      all.push_back(new_rs);
    }
    if (auto r = scale_rs_and_record(new_rs, replicas_of(d)); !r) return r.status();
    if (deployment_complete(d, d.status))
      if (auto st = cleanup(old); !st) return st;
    return sync_rollout_status(all, new_rs);
  }

  static bool old_pods_running(const ReplicaSet* new_rs, const RSList& old,
                               const std::map<std::string, std::vector<PodInfo>>& pods) {
    if (actual_replicas_sum(old) > 0) return true;
    for (const auto& [uid, list] : pods) {
      if (new_rs && new_rs->metadata.uid == uid) continue;
      for (const auto& p : list)
        if (p.phase != "Failed" && p.phase != "Succeeded") return true;
    }
    return false;
  }

  // --- history.

  Status cleanup(const RSList& old) {
    if (!has_revision_history_limit(d)) return Status::ok();
    RSList alive;
    for (auto* rs : old)
      if (rs && !rs->metadata.deletion_timestamp) alive.push_back(rs);
    int32_t diff = static_cast<int32_t>(alive.size()) - *d.spec.revision_history_limit;
    if (diff <= 0) return Status::ok();
    sort_by_revision(alive);
    for (int32_t i = 0; i < diff; ++i) {
      auto* rs = alive[i];
      // Never delete an RS that still has (or may still have) pods.
      if (rs->status.replicas != 0 || replicas_of(*rs) != 0 ||
          rs->metadata.generation > rs->status.observed_generation ||
          rs->metadata.deletion_timestamp)
        continue;
      spdlog::info("deployment: {} deletes old replica set {} (revision {}, history limit {})",
                   key(), rs->metadata.name, revision_of(*rs), *d.spec.revision_history_limit);
      auto st = cl.delete_replicaset(rs->metadata.namespace_, rs->metadata.name);
      if (!st && st.code() != Code::kNotFound) return st;
    }
    return Status::ok();
  }

  // --- status.

  proto::DeploymentStatus calculate_status(const RSList& all, const ReplicaSet* new_rs) {
    int32_t available = available_replicas_sum(all);
    int32_t total = spec_replicas_sum(all);
    proto::DeploymentStatus s;
    s.observed_generation = d.metadata.generation;
    s.replicas = actual_replicas_sum(all);
    s.updated_replicas = new_rs ? new_rs->status.replicas : 0;
    s.ready_replicas = ready_replicas_sum(all);
    s.available_replicas = available;
    s.unavailable_replicas = std::max(0, total - available);
    s.collision_count = d.status.collision_count;
    s.conditions = d.status.conditions;
    if (available >= replicas_of(d) - max_unavailable(d))
      set_condition(s, new_condition(kAvailable, "True", kMinAvailableReason,
                                     "Deployment has minimum availability.", now));
    else
      set_condition(s, new_condition(kAvailable, "False", kMinUnavailableReason,
                                     "Deployment does not have minimum availability.", now));
    return s;
  }

  Status write_status(proto::DeploymentStatus s) {
    if (same_json(s, d.status)) return Status::ok();
    d.status = std::move(s);
    return commit();
  }

  Status sync_status(const RSList& all, const ReplicaSet* new_rs) {
    return write_status(calculate_status(all, new_rs));
  }

  Status sync_rollout_status(const RSList& all, const ReplicaSet* new_rs) {
    auto s = calculate_status(all, new_rs);
    if (!has_progress_deadline(d)) remove_condition(s, kProgressing);
    const auto* cur = get_condition(d.status, kProgressing);
    bool complete = s.replicas == s.updated_replicas && cur && cur->reason == kNewRSAvailableReason;
    if (has_progress_deadline(d) && !complete) {
      std::string name = new_rs ? new_rs->metadata.name : "";
      if (deployment_complete(d, s)) {
        set_condition(
            s, new_condition(kProgressing, "True", kNewRSAvailableReason,
                             new_rs ? "ReplicaSet \"" + name + "\" has successfully progressed."
                                    : "Deployment has successfully progressed.",
                             now));
      } else if (deployment_progressing(d, s)) {
        auto c = new_condition(
            kProgressing, "True", kRSUpdatedReason,
            new_rs ? "ReplicaSet \"" + name + "\" is progressing." : "Deployment is progressing.",
            now);
        if (cur) {
          if (cur->status == "True") c.last_transition_time = cur->last_transition_time;
          remove_condition(s, kProgressing);
        }
        set_condition(s, c);
      } else if (deployment_timed_out(d, s, now.value)) {
        set_condition(
            s, new_condition(kProgressing, "False", kTimedOutReason,
                             new_rs ? "ReplicaSet \"" + name + "\" has timed out progressing."
                                    : "Deployment has timed out progressing.",
                             now));
      }
    }
    // The first ReplicaFailure of the new RS (else of any RS) becomes the deployment's.
    std::optional<proto::DeploymentCondition> failure;
    auto scan = [&](const ReplicaSet* rs) {
      if (!rs || failure) return;
      for (const auto& c : rs->status.conditions)
        if (c.type == kReplicaFailure && !failure) {
          proto::DeploymentCondition dc;
          dc.type = c.type;
          dc.status = c.status;
          dc.reason = c.reason;
          dc.message = c.message;
          dc.last_update_time = dc.last_transition_time = c.last_transition_time;
          failure = dc;
        }
    };
    scan(new_rs);
    for (auto* rs : all) scan(rs);
    if (failure)
      set_condition(s, *failure);
    else
      remove_condition(s, kReplicaFailure);

    if (same_json(s, d.status)) {
      requeue_stuck(s);
      return Status::ok();
    }
    return write_status(std::move(s));
  }

  // A rollout that makes no progress is looked at again when its deadline passes.
  void requeue_stuck(const proto::DeploymentStatus& s) {
    const auto* cur = get_condition(d.status, kProgressing);
    if (!has_progress_deadline(d) || !cur) return;
    if (deployment_complete(d, s) || cur->reason == kTimedOutReason) return;
    auto due =
        cur->last_update_time.value + std::chrono::seconds(*d.spec.progress_deadline_seconds);
    auto after = due - now.value;
    if (after < std::chrono::seconds(1))
      c.queue_->add_rate_limited(key());
    else
      c.queue_->add_after(key(), after + std::chrono::seconds(1));
  }

  Status check_paused_conditions() {
    if (!has_progress_deadline(d)) return Status::ok();
    const auto* cond = get_condition(d.status, kProgressing);
    if (cond && cond->reason == kTimedOutReason) return Status::ok();
    bool paused_cond = cond && cond->reason == kPausedReason;
    if (d.spec.paused && !paused_cond)
      set_condition(d.status, new_condition(kProgressing, "Unknown", kPausedReason,
                                            "Deployment is paused", now));
    else if (!d.spec.paused && paused_cond)
      set_condition(d.status, new_condition(kProgressing, "Unknown", kResumedReason,
                                            "Deployment is resumed", now));
    else
      return Status::ok();
    return commit();
  }

  // sync (sync.go): scale only; paused deployments also clean up their history.
  Status sync_scale(const RSList& rs_list) {
    ReplicaSet* new_rs = nullptr;
    RSList old;
    if (auto st = get_all(rs_list, false, &new_rs, &old); !st) return st;
    if (auto st = scale(new_rs, old); !st) return st;
    if (d.spec.paused)
      if (auto st = cleanup(old); !st) return st;
    RSList all = old;
    all.push_back(new_rs);
    return sync_status(all, new_rs);
  }

  Status run() {
    if (selector_empty(d)) {
      event(true, "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.");
      if (d.status.observed_generation < d.metadata.generation) {
        d.status.observed_generation = d.metadata.generation;
        return commit();
      }
      return Status::ok();
    }
    auto claimed = claim_replicasets();
    if (!claimed) return claimed.status();
    const RSList& rs_list = *claimed;
    if (d.metadata.deletion_timestamp) {
      ReplicaSet* new_rs = nullptr;
      RSList old;
      if (auto st = get_all(rs_list, false, &new_rs, &old); !st) return st;
      old.push_back(new_rs);
      return sync_status(old, new_rs);
    }
    if (auto st = check_paused_conditions(); !st) return st;
    if (d.spec.paused) return sync_scale(rs_list);
    Status err;
    bool scaling = is_scaling_event(rs_list, &err);
    if (!err.is_ok()) return err;
    if (scaling) return sync_scale(rs_list);
    if (d.spec.strategy.type == "Recreate") return rollout_recreate(rs_list);
    if (is_rolling_update(d)) return rollout_rolling(rs_list);
    return Status::invalid("deployment " + key() + ": unexpected strategy type \"" +
                           d.spec.strategy.type + "\"");
  }
};

// ---------------------------------------------------------------------------------------------

DeploymentController::DeploymentController(DeploymentOptions opts)
    : opts_(std::move(opts)), queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  if (opts_.workers < 1) opts_.workers = 1;
  stats_.depth = [this] { return queue_->len(); };
}

DeploymentController::~DeploymentController() { queue_->shut_down(); }

void DeploymentController::set_clients(DeploymentClient* c, EventSink* events) {
  client_ = c;
  events_ = events;
}

Status DeploymentController::init(ControllerContext& ctx) {
  auto& d = ctx.informers->informer(deploy_type());
  auto& rs = ctx.informers->informer(rs_type());
  auto& pods = ctx.informers->informer(pod_type());
  owned_client_ = std::make_unique<ApiDeploymentClient>(d, rs, pods, ctx.api);
  set_clients(owned_client_.get(), ctx.events);
  d.add_handlers({[this](const json& o) { on_deployment(o); },
                  [this](const json&, const json& o) { on_deployment(o); },
                  [this](const json& o) { on_deployment(o); }});
  rs.add_handlers({[this](const json& o) { on_rs_add(o); },
                   [this](const json& a, const json& b) { on_rs_update(a, b); },
                   [this](const json& o) { on_rs_delete(o); }});
  pods.add_handlers({nullptr, nullptr, [this](const json& o) { on_pod_delete(o); }});
  return Status::ok();
}

void DeploymentController::enqueue_key(const std::string& key) { queue_->add(key); }

void DeploymentController::on_deployment(const json& d) { enqueue_key(client::object_key(d)); }

// The owning Deployment of `rs` (when its controllerRef resolves), else, when `orphan_too`,
// every Deployment whose selector matches it.
void DeploymentController::enqueue_for_rs(const ReplicaSet& rs, bool orphan_too) {
  if (!client_) return;
  const auto& ns = rs.metadata.namespace_;
  if (const auto* ref = controller_of(rs.metadata)) {
    if (ref->kind != "Deployment") return;
    auto d = client_->get_deployment(ns, ref->name);
    if (d && d->metadata.uid == ref->uid) enqueue_key(key_of(ns, ref->name));
    return;
  }
  if (!orphan_too) return;
  for (const auto& d : client_->list_deployments(ns)) {
    if (selector_empty(d)) continue;
    auto sel = selector_of(d);
    if (sel && sel->matches(rs.metadata.labels)) enqueue_key(key_of(ns, d.metadata.name));
  }
}

void DeploymentController::on_rs_add(const json& j) {
  auto rs = decode_obj<ReplicaSet>(j);
  if (rs.metadata.deletion_timestamp) return on_rs_delete(j);
  enqueue_for_rs(rs, true);
}

void DeploymentController::on_rs_update(const json& old_j, const json& cur_j) {
  auto old_rs = decode_obj<ReplicaSet>(old_j);
  auto cur = decode_obj<ReplicaSet>(cur_j);
  if (old_rs.metadata.resource_version == cur.metadata.resource_version) return;
  const auto* oref = controller_of(old_rs.metadata);
  const auto* cref = controller_of(cur.metadata);
  bool ref_changed = (oref == nullptr) != (cref == nullptr) || (oref && oref->uid != cref->uid);
  if (ref_changed && oref) enqueue_for_rs(old_rs, false);
  if (cref) return enqueue_for_rs(cur, false);
  bool labels_changed = old_rs.metadata.labels != cur.metadata.labels;
  if (labels_changed || ref_changed) enqueue_for_rs(cur, true);
}

void DeploymentController::on_rs_delete(const json& j) {
  enqueue_for_rs(decode_obj<ReplicaSet>(j), false);
}

// Recreate waits for the old pods to be gone: a pod deletion may unblock it.
void DeploymentController::on_pod_delete(const json& j) {
  if (!client_) return;
  PodInfo p = pod_info(j);
  if (p.controller_uid.empty()) return;
  std::string ns =
      j.is_object() && j.contains("metadata") ? str_of(j["metadata"], "namespace") : "";
  for (const auto& rs : client_->list_replicasets(ns)) {
    if (rs.metadata.uid != p.controller_uid) continue;
    const auto* ref = controller_of(rs.metadata);
    if (!ref || ref->kind != "Deployment") return;
    auto d = client_->get_deployment(ns, ref->name);
    if (d && d->metadata.uid == ref->uid && d->spec.strategy.type == "Recreate")
      enqueue_key(key_of(ns, ref->name));
    return;
  }
}

Status DeploymentController::sync(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return Status::invalid("bad deployment key \"" + key + "\"");
  std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  auto d = client_->get_deployment(ns, name);
  if (!d) return Status::ok();  // deleted: its ReplicaSets go with it (garbage collector)
  Sync s{*this, *client_, *d,
         *d,    {},       proto::Time::at(std::chrono::floor<std::chrono::seconds>(opts_.now()))};
  return s.run();
}

void DeploymentController::run(std::stop_token stop) {
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict || st.code() == Code::kAlreadyExists)
          spdlog::debug("deployment: {}: {} (retrying)", key, st.to_string());
        else
          spdlog::warn("deployment: syncing {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::deployment
