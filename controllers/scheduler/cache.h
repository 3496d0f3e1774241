// Cache: the scheduler's picture of the cluster — every Node and the pods placed on it, with
// each node's summed requests, used host ports and per-owner pod counts (NodeInfo usage).
//
// Pods enter it two ways, like kube-scheduler's cache:
// - bound: the Pod informer shows spec.nodeName set (add_pod); updates replace the pod's
//   contribution, deletion or a finished phase removes it.
// - assumed: the scheduler picked a node and sent the binding, but the watch has not shown it
//   yet (assume). The usage counts at once, so a burst of scheduling does not overcommit a
//   node. The informer's add_pod confirms it; forget() undoes it when the binding failed.
// A pod may name a node the cache has not seen yet; its usage is kept and counts once the Node
// appears.
//
// Thread-safe: one mutex. with_nodes() runs a function over the registered nodes (name order)
// under it; informer handlers wait meanwhile.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "controllers/scheduler/framework.h"

namespace skiff::scheduler {

class Cache {
 public:
  // Adds or updates a Node (its usage is kept). True when it is new or a scheduling-relevant
  // field changed (NodeInfo::same_node_fields).
  bool upsert_node(const NodeInfo& node);
  void remove_node(const std::string& name);

  // A pod the API shows on pod.node_name. Confirms an assumed pod; replaces an earlier version.
  void add_pod(const PodInfo& pod);
  // The pod is gone (deleted or finished): its usage is released, assumed or not.
  void remove_pod(const std::string& key);
  // The scheduler placed `pod` on `node`; counts until add_pod confirms it or forget().
  void assume(const PodInfo& pod, const std::string& node);
  // The binding failed: drops an assumed pod. No effect on a confirmed one.
  void forget(const std::string& key);

  bool is_assumed(const std::string& key) const;
  // The node the cache has the pod on ("" when it does not have the pod).
  std::string node_of(const std::string& key) const;
  size_t num_nodes() const;
  size_t num_pods() const;
  // A copy of one node's info (tests, debugging). Empty name when unknown.
  NodeInfo node(const std::string& name) const;

  // Runs `fn` over the registered Nodes, in name order, under the cache's lock.
  void with_nodes(const std::function<void(const std::vector<const NodeInfo*>&)>& fn) const;

 private:
  struct PodEntry {
    std::string node;
    Resources requests, nonzero;
    std::vector<HostPort> ports;
    std::string owner_uid;
    bool assumed = false;
  };
  struct NodeEntry {
    NodeInfo info;
    bool registered = false;  // a Node object exists (else only pods name it)
    int pods = 0;             // pod entries on it
  };
  void add_locked(const std::string& key, PodEntry e);
  void remove_locked(const std::string& key);

  mutable std::mutex mu_;
  std::map<std::string, NodeEntry> nodes_;
  std::unordered_map<std::string, PodEntry> pods_;
  mutable std::vector<const NodeInfo*> list_;  // registered nodes; rebuilt when stale
  mutable bool list_stale_ = true;
};

}  // namespace skiff::scheduler
