#include "controllers/nodeipam/node_ipam.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "controllers/workers.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/node.h"
#include "proto/registry.h"

namespace skiff::controllers::nodeipam {

namespace {

const proto::ResourceType& node_type() {
  static const proto::ResourceType t = proto::node_resource();
  return t;
}

std::string str_at(const json& obj, const char* a, const char* b) {
  auto i = obj.find(a);
  if (i == obj.end() || !i->is_object()) return "";
  auto j = i->find(b);
  return j != i->end() && j->is_string() ? j->get<std::string>() : "";
}

// spec.podCIDR, else the first of spec.podCIDRs.
std::string pod_cidr_of(const json& node) {
  std::string c = str_at(node, "spec", "podCIDR");
  if (!c.empty()) return c;
  auto s = node.find("spec");
  if (s == node.end() || !s->is_object()) return "";
  auto l = s->find("podCIDRs");
  if (l != s->end() && l->is_array() && !l->empty() && (*l)[0].is_string())
    return (*l)[0].get<std::string>();
  return "";
}

// The real NodeClient: the Node informer's cache and a merge patch through the API.
class ApiNodeClient : public NodeClient {
 public:
  ApiNodeClient(client::Informer& inf, std::shared_ptr<client::ApiClient> api)
      : inf_(inf), api_(std::move(api)) {}
  std::optional<json> get(const std::string& name) override { return inf_.get(name); }
  std::vector<json> list() override { return inf_.list(); }
  Status set_pod_cidr(const std::string& name, const std::string& rv,
                      const std::string& cidr) override {
    json patch = {{"metadata", {{"resourceVersion", rv}}},
                  {"spec", {{"podCIDR", cidr}, {"podCIDRs", {cidr}}}}};
    auto r = api_->patch(node_type(), "", name, patch, client::PatchType::kMerge);
    return r ? Status::ok()
             : r.status().with_context("setting pod CIDR " + cidr + " on node " + name);
  }

 private:
  client::Informer& inf_;
  std::shared_ptr<client::ApiClient> api_;
};

}  // namespace

Result<std::unique_ptr<NodeIpamController>> NodeIpamController::create(NodeIpamOptions opts) {
  auto set = CidrSet::create(opts.cluster_cidr, opts.node_cidr_mask_size);
  if (!set) return set.status().with_context("node IPAM");
  if (opts.workers < 1) opts.workers = 1;
  return std::unique_ptr<NodeIpamController>(new NodeIpamController(opts, std::move(*set)));
}

NodeIpamController::NodeIpamController(NodeIpamOptions opts, CidrSet set)
    : opts_(std::move(opts)),
      queue_(std::make_unique<client::WorkQueue>(opts_.queue)),
      set_(std::move(set)) {
  stats_.depth = [this] { return queue_->len(); };
}

NodeIpamController::~NodeIpamController() { queue_->shut_down(); }

void NodeIpamController::set_clients(NodeClient* nodes, EventSink* events) {
  nodes_ = nodes;
  events_ = events;
}

Status NodeIpamController::init(ControllerContext& ctx) {
  auto& inf = ctx.informers->informer(node_type());
  owned_nodes_ = std::make_unique<ApiNodeClient>(inf, ctx.api);
  set_clients(owned_nodes_.get(), ctx.events);
  inf.add_handlers({[this](const json& n) { enqueue(n); },
                    [this](const json&, const json& n) { enqueue(n); },
                    [this](const json& n) { enqueue(n); }});
  return Status::ok();
}

void NodeIpamController::enqueue(const json& node) { queue_->add(client::object_key(node)); }

std::string NodeIpamController::cidr_of(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = by_node_.find(node);
  return it == by_node_.end() ? "" : it->second;
}

size_t NodeIpamController::used() const {
  std::lock_guard lock(mu_);
  return set_.used();
}

size_t NodeIpamController::capacity() const {
  std::lock_guard lock(mu_);
  return set_.capacity();
}

void NodeIpamController::occupy_existing() {
  size_t n = 0;
  for (const auto& node : nodes_->list()) {
    std::string name = str_at(node, "metadata", "name");
    std::string cidr = pod_cidr_of(node);
    if (name.empty() || cidr.empty()) continue;
    record_existing(node, name, cidr);
    ++n;
  }
  std::lock_guard lock(mu_);
  spdlog::info("nodeipam: {} of {} node CIDRs in {} already in use ({} nodes had one)", set_.used(),
               set_.capacity(), set_.cluster().to_string(), n);
}

void NodeIpamController::forget_node_locked(const std::string& name) {
  auto it = by_node_.find(name);
  if (it == by_node_.end()) return;
  std::string cidr = it->second;
  by_node_.erase(it);
  // Two Nodes may claim one CIDR (set by hand): free it only when nobody else holds it.
  for (const auto& [n, c] : by_node_)
    if (c == cidr) return;
  (void)set_.release(cidr);
}

void NodeIpamController::record_existing(const json& node, const std::string& name,
                                         const std::string& cidr) {
  std::string duplicate_of;
  Status st;
  {
    std::lock_guard lock(mu_);
    waiting_.erase(name);
    auto it = by_node_.find(name);
    if (it != by_node_.end() && it->second == cidr) return;  // known: nothing to do
    forget_node_locked(name);  // the Node's CIDR changed (or we had reserved another one)
    st = set_.check(cidr);
    if (st) {
      for (const auto& [n, c] : by_node_)
        if (c == cidr) duplicate_of = n;
      (void)set_.occupy(cidr);
      by_node_[name] = cidr;
    } else if (!reported_invalid_.insert(name + "/" + cidr).second) {
      return;  // reported before
    }
  }
  if (st) {
    if (!duplicate_of.empty())
      spdlog::warn("nodeipam: node {} has pod CIDR {}, which node {} has too", name, cidr,
                   duplicate_of);
    return;
  }
  std::string msg = "node " + name + " has pod CIDR " + cidr +
                    " that this controller does not manage (" + st.message() + "); left unchanged";
  spdlog::warn("nodeipam: {}", msg);
  if (events_) events_->event(node, "Node", true, "InvalidPodCIDR", msg);
}

Status NodeIpamController::sync(const std::string& name) {
  auto node = nodes_->get(name);
  if (!node) {
    // Deleted: free its CIDR and wake the Nodes waiting for one.
    std::vector<std::string> wake;
    {
      std::lock_guard lock(mu_);
      waiting_.erase(name);
      auto it = by_node_.find(name);
      if (it == by_node_.end()) return Status::ok();
      spdlog::info("nodeipam: node {} deleted, released pod CIDR {}", name, it->second);
      forget_node_locked(name);
      wake.assign(waiting_.begin(), waiting_.end());
    }
    for (const auto& w : wake) queue_->add(w);
    return Status::ok();
  }

  if (std::string have = pod_cidr_of(*node); !have.empty()) {
    record_existing(*node, name, have);
    return Status::ok();
  }

  // No CIDR yet: reuse what we reserved for it on an earlier, failed attempt, else allocate.
  std::string cidr;
  bool first_full_report = false;
  Status full;
  {
    std::lock_guard lock(mu_);
    auto it = by_node_.find(name);
    if (it != by_node_.end()) {
      cidr = it->second;
    } else if (auto c = set_.allocate_next(); c) {
      cidr = *c;
      by_node_[name] = cidr;
    } else {
      full = c.status();
      first_full_report = waiting_.insert(name).second;
    }
  }
  if (!full.is_ok()) {
    if (first_full_report) {
      std::string msg =
          "Node " + name + " status is now: CIDRNotAvailable (" + full.message() + ")";
      spdlog::warn("nodeipam: {}", msg);
      if (events_) events_->event(*node, "Node", true, "CIDRNotAvailable", msg);
    }
    return full.with_context("allocating a pod CIDR for node " + name);
  }

  std::string rv = str_at(*node, "metadata", "resourceVersion");
  auto st = nodes_->set_pod_cidr(name, rv, cidr);
  if (st) {
    std::lock_guard lock(mu_);
    waiting_.erase(name);
    spdlog::info("nodeipam: node {} gets pod CIDR {}", name, cidr);
    return Status::ok();
  }
  if (st.code() == Code::kNotFound) {
    std::lock_guard lock(mu_);
    forget_node_locked(name);
    return Status::ok();  // deleted meanwhile: the delete event syncs it again
  }
  // Conflict (the Node changed: retry with the fresh one) or a transient error: the
  // reservation stays, so the retry hands the same CIDR to this Node.
  return st;
}

void NodeIpamController::run(std::stop_token stop) {
  occupy_existing();
  run_workers(
      *queue_, opts_.workers, stats_, [this](const std::string& key) { return sync(key); },
      [](const std::string& key, const Status& st) {
        if (st.code() == Code::kConflict)
          spdlog::info("nodeipam: {} (retrying)", st.to_string());
        else if (st.code() != Code::kUnavailable)
          spdlog::warn("nodeipam: syncing node {}: {} (retrying)", key, st.to_string());
      },
      stop);
}

}  // namespace skiff::controllers::nodeipam
