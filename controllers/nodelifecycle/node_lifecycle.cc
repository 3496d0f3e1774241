#include "controllers/nodelifecycle/node_lifecycle.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>

#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/rest_client.h"
#include "proto/lease.h"
#include "proto/node.h"
#include "proto/pod.h"
#include "proto/registry.h"
#include "proto/time.h"

namespace skiff::controllers::nodelifecycle {

namespace {

constexpr const char* kLeaseNamespace = "kube-node-lease";

const proto::ResourceType& node_type() {
  static const proto::ResourceType t = proto::node_resource();
  return t;
}
const proto::ResourceType& pod_type() {
  static const proto::ResourceType t = proto::pod_resource();
  return t;
}
const proto::ResourceType& lease_type() {
  static const proto::ResourceType t = proto::lease_resource();
  return t;
}

std::string str(const json& o, const char* a, const char* b) {
  auto i = o.find(a);
  if (i == o.end() || !i->is_object()) return "";
  auto j = i->find(b);
  return j != i->end() && j->is_string() ? j->get<std::string>() : "";
}

std::string field(const json& o, const char* f) {
  auto i = o.find(f);
  return i != o.end() && i->is_string() ? i->get<std::string>() : "";
}

json array_at(const json& o, const char* a, const char* b) {
  auto i = o.find(a);
  if (i == o.end() || !i->is_object()) return json::array();
  auto j = i->find(b);
  return j != i->end() && j->is_array() ? *j : json::array();
}

const json* condition(const json& conds, const std::string& type) {
  for (const auto& c : conds)
    if (c.is_object() && field(c, "type") == type) return &c;
  return nullptr;
}

// The tolerance of `pod` for a NoExecute taint `key` (Kubernetes' getMinTolerationTime):
// nullopt = tolerated forever, else how long; `fallback` when no toleration matches.
std::optional<std::chrono::milliseconds> tolerance(const json& pod, const std::string& key,
                                                   std::chrono::milliseconds fallback) {
  bool matched = false;
  int64_t min_seconds = std::numeric_limits<int64_t>::max();
  for (const auto& t : array_at(pod, "spec", "tolerations")) {
    if (!t.is_object()) continue;
    std::string effect = field(t, "effect"), tkey = field(t, "key"), op = field(t, "operator");
    if (!effect.empty() && effect != "NoExecute") continue;
    if (op == "Exists") {
      if (!tkey.empty() && tkey != key) continue;
    } else if (tkey != key || !field(t, "value").empty()) {  // Equal: our taints have no value
      continue;
    }
    matched = true;
    auto s = t.find("tolerationSeconds");
    if (s != t.end() && s->is_number_integer())
      min_seconds = std::min<int64_t>(min_seconds, std::max<int64_t>(0, s->get<int64_t>()));
  }
  if (!matched) return fallback;
  if (min_seconds == std::numeric_limits<int64_t>::max()) return std::nullopt;
  return std::chrono::seconds(min_seconds);
}

class ApiNodeLifecycleClient : public NodeLifecycleClient {
 public:
  ApiNodeLifecycleClient(client::Informer& nodes, client::Informer& leases, client::Informer& pods,
                         std::shared_ptr<client::ApiClient> api)
      : nodes_(nodes), leases_(leases), pods_(pods), api_(std::move(api)) {}
  std::vector<json> nodes() override { return nodes_.list(); }
  std::optional<json> lease(const std::string& node) override {
    return leases_.get(std::string(kLeaseNamespace) + "/" + node);
  }
  std::vector<json> pods_on(const std::string& node) override {
    std::vector<json> out;
    for (auto& p : pods_.list())
      if (str(p, "spec", "nodeName") == node) out.push_back(std::move(p));
    return out;
  }
  Status patch_node(const std::string& name, const json& patch) override {
    return api_->patch(node_type(), "", name, patch, client::PatchType::kMerge).status();
  }
  Status patch_node_status(const std::string& name, const json& patch) override {
    return api_->patch(node_type(), "", name, patch, client::PatchType::kMerge, "status").status();
  }
  Status patch_pod_status(const std::string& ns, const std::string& name,
                          const json& patch) override {
    return api_->patch(pod_type(), ns, name, patch, client::PatchType::kMerge, "status").status();
  }
  Status delete_pod(const std::string& ns, const std::string& name,
                    const std::string& uid) override {
    client::Request req;
    req.method = "DELETE";
    req.path = client::resource_path(pod_type(), ns, name);
    req.body =
        json{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"preconditions", {{"uid", uid}}}}
            .dump();
    req.content_type = "application/json";
    auto resp = api_->rest().request(req);
    if (!resp) return resp.status();
    return resp->ok() ? Status::ok() : client::to_status(*resp);
  }

 private:
  client::Informer& nodes_;
  client::Informer& leases_;
  client::Informer& pods_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

NodeLifecycleController::NodeLifecycleController(NodeLifecycleOptions opts)
    : opts_(std::move(opts)), clock_(opts_.clock ? *opts_.clock : client::Clock::real()) {
  if (!opts_.wall_clock) opts_.wall_clock = [] { return std::chrono::system_clock::now(); };
  stats_.depth = [] { return size_t{0}; };
}

NodeLifecycleController::~NodeLifecycleController() = default;

Status NodeLifecycleController::init(ControllerContext& ctx) {
  auto& nodes = ctx.informers->informer(node_type());
  auto& leases = ctx.informers->informer(lease_type());
  auto& pods = ctx.informers->informer(pod_type());
  owned_client_ = std::make_unique<ApiNodeLifecycleClient>(nodes, leases, pods, ctx.api);
  set_client(owned_client_.get(), ctx.events);
  return Status::ok();
}

Status NodeLifecycleController::monitor_once() {
  auto nodes = client_->nodes();
  std::map<std::string, Health> keep;
  Status first;
  for (const auto& n : nodes) {
    std::string name = str(n, "metadata", "name");
    if (name.empty()) continue;
    auto st = monitor_node(n);
    if (!st && first.is_ok()) first = st;
    if (auto it = health_.find(name); it != health_.end()) keep[name] = it->second;
  }
  health_.swap(keep);  // deleted Nodes are forgotten
  return first;
}

Status NodeLifecycleController::monitor_node(const json& node) {
  const std::string name = str(node, "metadata", "name");
  const auto now = clock_.now();
  const std::string wall = proto::format_rfc3339(opts_.wall_clock(), 0);
  auto [hit, first_seen] = health_.try_emplace(name);
  Health& h = hit->second;
  if (first_seen) h.probe = now;

  // 1. Health: did the kubelet renew its Lease (or post a heartbeat) since the last pass?
  if (auto lease = client_->lease(name)) {
    std::string renew = str(*lease, "spec", "renewTime");
    if (renew != h.renew_seen) {
      h.renew_seen = renew;
      h.probe = now;
    }
  }
  json conds = array_at(node, "status", "conditions");
  const json* ready = condition(conds, "Ready");
  std::string heartbeat = ready ? field(*ready, "lastHeartbeatTime") : "";
  if (heartbeat != h.heartbeat_seen) {
    h.heartbeat_seen = heartbeat;
    h.probe = now;
  }
  const bool timed_out = now - h.probe > opts_.grace_period;
  std::string ready_status = ready ? field(*ready, "status") : "";
  std::string rv = str(node, "metadata", "resourceVersion");

  // 2. Ready=Unknown on a timed-out Node.
  if (timed_out && ready_status != "Unknown") {
    json out = json::array();
    for (auto c : conds) {
      std::string t = field(c, "type");
      if (t == "Ready" || t == "MemoryPressure" || t == "DiskPressure" || t == "PIDPressure") {
        c["status"] = "Unknown";
        c["reason"] = "NodeStatusUnknown";
        c["message"] = "Kubelet stopped posting node status.";
        c["lastTransitionTime"] = wall;
      }
      out.push_back(std::move(c));
    }
    if (!ready) {
      out.push_back({{"type", "Ready"},
                     {"status", "Unknown"},
                     {"reason", "NodeStatusNeverUpdated"},
                     {"message", "Kubelet never posted node status."},
                     {"lastHeartbeatTime", str(node, "metadata", "creationTimestamp")},
                     {"lastTransitionTime", wall}});
    }
    auto st = client_->patch_node_status(
        name, {{"metadata", {{"resourceVersion", rv}}}, {"status", {{"conditions", out}}}});
    if (!st) return st.with_context("setting Ready=Unknown on node " + name);
    spdlog::warn("nodelifecycle: node {} has not renewed its lease for over {} ms: Ready=Unknown",
                 name, opts_.grace_period.count());
    if (events_)
      events_->event(node, "Node", false, "NodeNotReady",
                     "Node " + name + " status is now: NodeNotReady");
    rv.clear();  // the node changed: the taint patch below is not conditional on the old one
  }

  // 3. Taints.
  std::string bad_taint;
  if (timed_out)
    bad_taint = kUnreachableTaint;
  else if (ready_status == "False")
    bad_taint = kNotReadyTaint;
  json old_taints = array_at(node, "spec", "taints");
  json taints = json::array();
  std::map<std::string, json> had;  // "key:effect" -> our taint as it was
  for (const auto& t : old_taints) {
    std::string k = field(t, "key");
    if (k == kUnreachableTaint || k == kNotReadyTaint)
      had[k + ":" + field(t, "effect")] = t;
    else
      taints.push_back(t);
  }
  if (!bad_taint.empty()) {
    for (const char* effect : {"NoSchedule", "NoExecute"}) {
      auto it = had.find(bad_taint + ":" + effect);
      if (it != had.end()) {
        taints.push_back(it->second);
        continue;
      }
      json t = {{"key", bad_taint}, {"effect", effect}};
      if (std::string(effect) == "NoExecute") t["timeAdded"] = wall;
      taints.push_back(std::move(t));
    }
  }
  if (taints != old_taints) {
    json patch = {{"spec", {{"taints", taints.empty() ? json(nullptr) : taints}}}};
    if (!rv.empty()) patch["metadata"] = {{"resourceVersion", rv}};
    auto st = client_->patch_node(name, patch);
    if (!st) return st.with_context("updating the taints of node " + name);
    spdlog::info("nodelifecycle: node {}: {}", name,
                 bad_taint.empty() ? "healthy again, removed its unreachable/not-ready taints"
                                   : "tainted " + bad_taint + " (NoSchedule, NoExecute)");
  }
  if (bad_taint.empty()) {
    h.unhealthy_since.reset();
    return Status::ok();
  }
  if (!h.unhealthy_since) h.unhealthy_since = now;

  // 4. Its pods: not ready at once, evicted after their tolerance.
  Status first;
  for (const auto& pod : client_->pods_on(name)) {
    if (!str(pod, "metadata", "deletionTimestamp").empty()) continue;
    std::string pns = str(pod, "metadata", "namespace"), pname = str(pod, "metadata", "name");
    auto tol = tolerance(pod, bad_taint, opts_.pod_eviction_timeout);
    if (tol && now - *h.unhealthy_since >= *tol) {
      auto st = client_->delete_pod(pns, pname, str(pod, "metadata", "uid"));
      if (!st && st.code() != Code::kNotFound && st.code() != Code::kConflict) {
        if (first.is_ok()) first = st.with_context("evicting pod " + pns + "/" + pname);
        continue;
      }
      if (st) {
        spdlog::info("nodelifecycle: evicted pod {}/{} from node {} ({})", pns, pname, name,
                     bad_taint);
        if (events_)
          events_->event(pod, "Pod", false, "TaintManagerEviction",
                         "Marking for deletion Pod " + pns + "/" + pname);
      }
      continue;
    }
    json pconds = array_at(pod, "status", "conditions");
    bool changed = false;
    for (auto& c : pconds) {
      if (field(c, "type") == "Ready" && field(c, "status") != "False") {
        c["status"] = "False";
        c["lastTransitionTime"] = wall;
        changed = true;
      }
    }
    if (!changed) continue;
    auto st = client_->patch_pod_status(
        pns, pname,
        {{"metadata", {{"resourceVersion", str(pod, "metadata", "resourceVersion")}}},
         {"status", {{"conditions", pconds}}}});
    if (!st && st.code() != Code::kNotFound) {
      if (first.is_ok()) first = st.with_context("marking pod " + pns + "/" + pname + " not ready");
      continue;
    }
    if (st) spdlog::info("nodelifecycle: pod {}/{} on node {}: Ready=False", pns, pname, name);
  }
  return first;
}

void NodeLifecycleController::run(std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  while (!stop.stop_requested()) {
    auto st = timed_sync(stats_, [this] { return monitor_once(); });
    if (!st) {
      ++stats_.sync_errors;
      if (st.code() == Code::kConflict)
        spdlog::info("nodelifecycle: {} (next pass)", st.to_string());
      else
        spdlog::warn("nodelifecycle: {} (next pass)", st.to_string());
    }
    std::unique_lock lock(mu);
    cv.wait_for(lock, stop, opts_.monitor_period, [] { return false; });
  }
}

}  // namespace skiff::controllers::nodelifecycle
