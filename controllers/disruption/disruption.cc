#include "controllers/disruption/disruption.h"

#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "controllers/api_util.h"
#include "controllers/disruption/disruption_util.h"
#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/deployment.h"
#include "proto/pod.h"
#include "proto/poddisruptionbudget.h"
#include "proto/replicaset.h"
#include "proto/selector.h"
#include "proto/statefulset.h"
#include "proto/time.h"

namespace skiff::controllers::disruption {

namespace {

const proto::ResourceType& pdb_type() {
  return resource_type<proto::poddisruptionbudget_resource>();
}
const proto::ResourceType& pod_type() { return resource_type<proto::pod_resource>(); }
const proto::ResourceType& rs_type() { return resource_type<proto::replicaset_resource>(); }
const proto::ResourceType& deploy_type() { return resource_type<proto::deployment_resource>(); }
const proto::ResourceType& sts_type() { return resource_type<proto::statefulset_resource>(); }

class ApiDisruptionClient : public DisruptionClient {
 public:
  ApiDisruptionClient(client::Informer& pdbs, client::Informer& pods, client::Informer& rss,
                      client::Informer& deploys, client::Informer& stss,
                      std::shared_ptr<client::ApiClient> api)
      : pdbs_(pdbs), pods_(pods), rss_(rss), deploys_(deploys), stss_(stss), api_(std::move(api)) {}
  std::optional<json> get_pdb(const std::string& key) override { return pdbs_.get(key); }
  std::vector<json> list_pdbs(const std::string& ns) override {
    return ns.empty() ? pdbs_.list() : pdbs_.by_namespace(ns);
  }
  std::vector<json> list_pods(const std::string& ns) override { return pods_.by_namespace(ns); }
  std::optional<json> get_owner(const std::string& kind, const std::string& ns,
                                const std::string& name) override {
    const std::string key = ns + "/" + name;
    if (kind == "ReplicaSet") return rss_.get(key);
    if (kind == "Deployment") return deploys_.get(key);
    if (kind == "StatefulSet") return stss_.get(key);
    return std::nullopt;
  }
  Status update_status(const json& pdb) override {
    auto r = api_->update_status(pdb_type(), pdb);
    return r ? Status::ok() : r.status();
  }

 private:
  client::Informer &pdbs_, &pods_, &rss_, &deploys_, &stss_;
  std::shared_ptr<client::ApiClient> api_;
};

bool pod_ready(const json& pod) {
  const json& conds = at(pod, "status", "conditions");
  if (!conds.is_array()) return false;
  for (const auto& c : conds)
    if (str(at(c, "type")) == "Ready") return str(at(c, "status")) == "True";
  return false;
}

bool being_deleted(const json& obj) { return !at(obj, "metadata", "deletionTimestamp").is_null(); }

// intstr.GetScaledValueFromIntOrPercent(v, total, roundUp=true); an int as it is.
int32_t scaled(const json& v, int32_t total) {
  if (v.is_number_integer()) return static_cast<int32_t>(v.get<int64_t>());
  std::string s = str(v);
  if (s.size() < 2 || s.back() != '%') return 0;  // validation refuses anything else
  int64_t pct = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return 0;
    pct = pct * 10 + (s[i] - '0');
    if (pct > 1000) return 0;
  }
  return static_cast<int32_t>((pct * total + 99) / 100);
}

// Expected pods counted by the scale of their controllers (each counted once) plus one per pod
// without a supported controller.
int32_t expected_by_scale(const std::vector<json>& pods, const ScaleLookup& scale) {
  std::map<std::string, int32_t> owners;
  int32_t unmanaged = 0;
  for (const auto& p : pods) {
    auto o = scale ? scale(p) : std::nullopt;
    if (o)
      owners[o->uid] = o->scale;
    else
      ++unmanaged;
  }
  int64_t total = unmanaged;
  for (const auto& [uid, n] : owners) total += n;
  return static_cast<int32_t>(std::min<int64_t>(total, INT32_MAX));
}

}  // namespace

namespace {

// The budget's selector; nullopt when it selects nothing (nil in policy/v1, or malformed).
std::optional<proto::LabelSelector> selector_of(const json& pdb) {
  const json& sel = at(pdb, "spec", "selector");
  if (!sel.is_object()) return std::nullopt;
  auto parsed = proto::LabelSelector::from_json(sel);
  if (!parsed.is_ok()) return std::nullopt;
  return std::move(*parsed);
}

bool selects(const proto::LabelSelector& sel, const json& pod) {
  return sel.matches_json(at(pod, "metadata", "labels"));
}

}  // namespace

std::vector<json> select_pods(const json& pdb, const std::vector<json>& pods) {
  auto sel = selector_of(pdb);
  if (!sel) return {};
  std::vector<json> out;
  for (const auto& p : pods)
    if (selects(*sel, p)) out.push_back(p);
  return out;
}

Computed compute_status(const json& pdb, const std::vector<json>& pods, const ScaleLookup& scale,
                        Clock::time_point now) {
  Computed c;
  const json& spec = at(pdb, "spec");
  const json& min_available = at(spec, "minAvailable");
  const json& max_unavailable = at(spec, "maxUnavailable");
  int32_t expected = 0, desired = 0;
  if (!max_unavailable.is_null()) {
    expected = expected_by_scale(pods, scale);
    desired = std::max(0, expected - scaled(max_unavailable, expected));
  } else if (min_available.is_number_integer()) {
    desired = scaled(min_available, 0);
    expected = static_cast<int32_t>(pods.size());
  } else if (min_available.is_string()) {
    expected = expected_by_scale(pods, scale);
    desired = scaled(min_available, expected);
  }

  // buildDisruptedPodMap: entries of pods still here, not being deleted and not expired.
  const json& old_disrupted = at(pdb, "status", "disruptedPods");
  json disrupted = json::object();
  std::set<std::string> held;  // pods still held out of currentHealthy
  if (old_disrupted.is_object()) {
    for (const auto& p : pods) {
      if (being_deleted(p)) continue;
      const std::string name = name_of(p);
      auto it = old_disrupted.find(name);
      if (it == old_disrupted.end()) continue;
      auto t = proto::parse_rfc3339(str(*it));
      if (!t) continue;
      Clock::time_point expiry = *t + kDeletionTimeout;
      if (expiry < now) {
        spdlog::info("disruption: pod {}/{} was expected to be deleted by {} but it was not",
                     ns_of(p), name, proto::format_rfc3339(expiry));
        continue;
      }
      if (!c.recheck || expiry < *c.recheck) c.recheck = expiry;
      disrupted[name] = *it;
      held.insert(name);
    }
  }

  int32_t current = 0;
  for (const auto& p : pods)
    if (!being_deleted(p) && !held.count(name_of(p)) && pod_ready(p)) ++current;

  int32_t allowed = current - desired;
  if (expected <= 0 || allowed <= 0) allowed = 0;
  const int64_t generation = num(at(pdb, "metadata", "generation"));

  const json& old = at(pdb, "status");
  json old_cond;
  if (at(old, "conditions").is_array())
    for (const auto& cond : old["conditions"])
      if (str(at(cond, "type")) == proto::kDisruptionAllowedCondition) old_cond = cond;
  const char* want_status = allowed > 0 ? "True" : "False";
  const char* want_reason =
      allowed > 0 ? proto::kSufficientPodsReason : proto::kInsufficientPodsReason;

  const bool up_to_date =
      num(at(old, "currentHealthy")) == current && num(at(old, "desiredHealthy")) == desired &&
      num(at(old, "expectedPods")) == expected && num(at(old, "disruptionsAllowed")) == allowed &&
      (old_disrupted.is_object() ? old_disrupted : json::object()) == disrupted &&
      num(at(old, "observedGeneration")) == generation && old_cond.is_object() &&
      str(at(old_cond, "status")) == want_status && str(at(old_cond, "reason")) == want_reason;
  c.changed = !up_to_date;

  // SetStatusCondition: the transition time moves only when the status flips.
  json cond = {{"type", proto::kDisruptionAllowedCondition},
               {"status", want_status},
               {"reason", want_reason},
               {"message", ""},
               {"lastTransitionTime", proto::format_rfc3339(now)}};
  if (generation > 0) cond["observedGeneration"] = generation;
  if (old_cond.is_object() && str(at(old_cond, "status")) == want_status &&
      at(old_cond, "lastTransitionTime").is_string())
    cond["lastTransitionTime"] = old_cond["lastTransitionTime"];
  json conditions = json::array();
  if (at(old, "conditions").is_array())
    for (const auto& oc : old["conditions"])
      if (str(at(oc, "type")) != proto::kDisruptionAllowedCondition) conditions.push_back(oc);
  conditions.push_back(cond);

  c.status = {{"disruptionsAllowed", allowed},
              {"currentHealthy", current},
              {"desiredHealthy", desired},
              {"expectedPods", expected},
              {"conditions", conditions}};
  if (generation > 0) c.status["observedGeneration"] = generation;
  if (!disrupted.empty()) c.status["disruptedPods"] = disrupted;
  return c;
}

DisruptionController::DisruptionController(DisruptionOptions opts)
    : opts_(std::move(opts)), queue_(std::make_unique<client::WorkQueue>(opts_.queue)) {
  stats_.depth = [this] { return queue_->len(); };
}

DisruptionController::~DisruptionController() { queue_->shut_down(); }

void DisruptionController::on_pdb(const json& pdb) {
  std::string ns = ns_of(pdb), name = name_of(pdb);
  if (!ns.empty() && !name.empty()) queue_->add(ns + "/" + name);
}

void DisruptionController::on_pod(const json* old_pod, const json& pod) {
  const std::string ns = ns_of(pod);
  if (ns.empty() || client_ == nullptr) return;
  // A resync (same resourceVersion) changes nothing.
  if (old_pod && str(at(*old_pod, "metadata", "resourceVersion")) ==
                     str(at(pod, "metadata", "resourceVersion")))
    return;
  // Matched in place: this runs for every pod event, so no copies of the pods.
  for (const auto& pdb : client_->list_pdbs(ns)) {
    auto sel = selector_of(pdb);
    if (sel && (selects(*sel, pod) || (old_pod && selects(*sel, *old_pod)))) on_pdb(pdb);
  }
}

std::optional<OwnerScale> DisruptionController::owner_scale(const json& pod) {
  const json* ref = controller_ref(pod);
  if (ref == nullptr || client_ == nullptr) return std::nullopt;
  const std::string ns = ns_of(pod), kind = str(at(*ref, "kind")),
                    api = str(at(*ref, "apiVersion"));
  if (api != "apps/v1") return std::nullopt;
  if (kind != "ReplicaSet" && kind != "StatefulSet") return std::nullopt;
  auto owner = client_->get_owner(kind, ns, str(at(*ref, "name")));
  if (!owner || uid_of(*owner) != str(at(*ref, "uid"))) return std::nullopt;
  if (kind == "ReplicaSet") {
    // A ReplicaSet of a Deployment counts by the Deployment's scale.
    if (const json* dref = controller_ref(*owner); dref && str(at(*dref, "kind")) == "Deployment" &&
                                                   str(at(*dref, "apiVersion")) == "apps/v1") {
      auto d = client_->get_owner("Deployment", ns, str(at(*dref, "name")));
      if (d && uid_of(*d) == str(at(*dref, "uid")))
        return OwnerScale{uid_of(*d), static_cast<int32_t>(num(at(*d, "spec", "replicas"), 1))};
      return std::nullopt;
    }
  }
  return OwnerScale{uid_of(*owner), static_cast<int32_t>(num(at(*owner, "spec", "replicas"), 1))};
}

Status DisruptionController::init(ControllerContext& ctx) {
  auto& pdbs = ctx.informers->informer(pdb_type());
  auto& pods = ctx.informers->informer(pod_type());
  auto& rss = ctx.informers->informer(rs_type());
  auto& deploys = ctx.informers->informer(deploy_type());
  auto& stss = ctx.informers->informer(sts_type());
  owned_client_ = std::make_unique<ApiDisruptionClient>(pdbs, pods, rss, deploys, stss, ctx.api);
  set_client(owned_client_.get());
  pdbs.add_handlers({[this](const json& p) { on_pdb(p); },
                     [this](const json&, const json& p) { on_pdb(p); }, nullptr});
  pods.add_handlers({[this](const json& p) { on_pod(nullptr, p); },
                     [this](const json& o, const json& p) { on_pod(&o, p); },
                     [this](const json& p) { on_pod(nullptr, p); }});
  return Status::ok();
}

Status DisruptionController::sync(const std::string& key) {
  auto pdb = client_->get_pdb(key);
  if (!pdb) return Status::ok();
  const Clock::time_point now = opts_.now();
  auto pods = select_pods(*pdb, client_->list_pods(ns_of(*pdb)));
  Computed c = compute_status(
      *pdb, pods, [this](const json& p) { return owner_scale(p); }, now);
  if (c.recheck) queue_->add_after(key, *c.recheck - now + std::chrono::seconds(1));
  if (!c.changed) return Status::ok();
  json updated = *pdb;
  updated["status"] = c.status;
  Status st = client_->update_status(updated);
  if (!st) {
    if (st.code() == Code::kNotFound) return Status::ok();  // deleted meanwhile
    return st.with_context("updating the status of PodDisruptionBudget " + key);
  }
  ++writes_;
  spdlog::debug("disruption: {} status {}", key, c.status.dump());
  return Status::ok();
}

void DisruptionController::run(std::stop_token stop) {
  for (const auto& ns_pdb : client_->list_pdbs("")) on_pdb(ns_pdb);
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        // A conflict is an eviction racing with us: the next sync uses its write.
        if (st.code() == Code::kConflict)
          spdlog::debug("disruption: {}: {} (retrying)", key, st.to_string());
        else
          spdlog::warn("disruption: {} (retrying)", st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::disruption
