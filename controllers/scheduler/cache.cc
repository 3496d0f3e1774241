#include "controllers/scheduler/cache.h"

#include <algorithm>

namespace skiff::scheduler {

bool Cache::upsert_node(const NodeInfo& node) {
  std::lock_guard lock(mu_);
  auto& e = nodes_[node.name];
  bool changed = !e.registered || !e.info.same_node_fields(node);
  if (!e.registered) list_stale_ = true;
  e.registered = true;
  // Keep the usage the cache computed; take everything else from the Node.
  NodeInfo merged = node;
  merged.requested = e.info.requested;
  merged.nonzero_requested = e.info.nonzero_requested;
  merged.used_ports = std::move(e.info.used_ports);
  merged.owner_counts = std::move(e.info.owner_counts);
  e.info = std::move(merged);
  return changed;
}

void Cache::remove_node(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  list_stale_ = true;
  // Pods still on it keep their usage until they go, in case the Node comes back.
  if (it->second.pods == 0) {
    nodes_.erase(it);
  } else {
    it->second.registered = false;
  }
}

void Cache::add_locked(const std::string& key, PodEntry e) {
  auto& n = nodes_[e.node];
  if (n.info.name.empty()) n.info.name = e.node;
  NodeInfo& info = n.info;
  info.requested.milli_cpu += e.requests.milli_cpu;
  info.requested.memory += e.requests.memory;
  info.requested.pods += 1;
  info.nonzero_requested.milli_cpu += e.nonzero.milli_cpu;
  info.nonzero_requested.memory += e.nonzero.memory;
  info.used_ports.insert(info.used_ports.end(), e.ports.begin(), e.ports.end());
  if (!e.owner_uid.empty()) ++info.owner_counts[e.owner_uid];
  ++n.pods;
  pods_[key] = std::move(e);
}

void Cache::remove_locked(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  const PodEntry& e = it->second;
  auto nit = nodes_.find(e.node);
  if (nit != nodes_.end()) {
    NodeInfo& info = nit->second.info;
    info.requested.milli_cpu -= e.requests.milli_cpu;
    info.requested.memory -= e.requests.memory;
    info.requested.pods -= 1;
    info.nonzero_requested.milli_cpu -= e.nonzero.milli_cpu;
    info.nonzero_requested.memory -= e.nonzero.memory;
    for (const auto& p : e.ports) {
      auto pit = std::find(info.used_ports.begin(), info.used_ports.end(), p);
      if (pit != info.used_ports.end()) info.used_ports.erase(pit);
    }
    if (!e.owner_uid.empty()) {
      auto oit = info.owner_counts.find(e.owner_uid);
      if (oit != info.owner_counts.end() && --oit->second <= 0) info.owner_counts.erase(oit);
    }
    if (--nit->second.pods == 0 && !nit->second.registered) nodes_.erase(nit);
  }
  pods_.erase(it);
}

void Cache::add_pod(const PodInfo& pod) {
  std::lock_guard lock(mu_);
  remove_locked(pod.key);
  add_locked(pod.key,
             {pod.node_name, pod.requests, pod.nonzero, pod.host_ports, pod.owner_uid, false});
}

void Cache::remove_pod(const std::string& key) {
  std::lock_guard lock(mu_);
  remove_locked(key);
}

void Cache::assume(const PodInfo& pod, const std::string& node) {
  std::lock_guard lock(mu_);
  remove_locked(pod.key);
  add_locked(pod.key, {node, pod.requests, pod.nonzero, pod.host_ports, pod.owner_uid, true});
}

void Cache::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(key);
  if (it != pods_.end() && it->second.assumed) remove_locked(key);
}

bool Cache::is_assumed(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(key);
  return it != pods_.end() && it->second.assumed;
}

std::string Cache::node_of(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(key);
  return it == pods_.end() ? "" : it->second.node;
}

size_t Cache::num_nodes() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [name, e] : nodes_) n += e.registered ? 1 : 0;
  return n;
}

size_t Cache::num_pods() const {
  std::lock_guard lock(mu_);
  return pods_.size();
}

NodeInfo Cache::node(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(name);
  return it == nodes_.end() ? NodeInfo{} : it->second.info;
}

void Cache::with_nodes(const std::function<void(const std::vector<const NodeInfo*>&)>& fn) const {
  std::lock_guard lock(mu_);
  if (list_stale_) {
    list_.clear();
    for (const auto& [name, e] : nodes_)
      if (e.registered) list_.push_back(&e.info);
    list_stale_ = false;
  }
  fn(list_);
}

}  // namespace skiff::scheduler
