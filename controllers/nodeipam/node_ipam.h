// NodeIpamController: gives every Node a pod CIDR (spec.podCIDR and spec.podCIDRs = [it]) from
// the cluster CIDR, and frees it when the Node is deleted. Kubernetes' range allocator.
//
// - At start, before it allocates anything, it occupies every valid CIDR already on a Node (a
//   Node registered with kubelet --pod-cidr keeps its CIDR). A Node whose CIDR is malformed,
//   of the wrong size or outside the cluster CIDR is left alone and reported (Warning event
//   InvalidPodCIDR, once), never reassigned.
// - sync(name) is idempotent: a Node that has a CIDR is only recorded; one without gets the next
//   free CIDR through a merge patch conditional on the resourceVersion it read (a conflict is
//   retried with the fresh Node); a Node gone from the cache frees its CIDR.
// - When the range is full the Node gets a Warning event CIDRNotAvailable (once while it waits)
//   and is retried with back-off, and at once when another Node's CIDR is freed.
//
// Thread-safety: handlers and workers may call in concurrently; the allocation state is under
// one mutex, API calls are made outside it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "controllers/nodeipam/cidr_set.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::nodeipam {

// What sync reads (the informer's cache) and writes (the API). Tests use a fake.
class NodeClient {
 public:
  virtual ~NodeClient() = default;
  virtual std::optional<json> get(const std::string& name) = 0;
  virtual std::vector<json> list() = 0;
  // Sets spec.podCIDR and spec.podCIDRs of Node `name`, conditional on `resource_version`:
  // Conflict when the Node changed since, NotFound when it is gone.
  [[nodiscard]] virtual Status set_pod_cidr(const std::string& name,
                                            const std::string& resource_version,
                                            const std::string& cidr) = 0;
};

struct NodeIpamOptions {
  std::string cluster_cidr = "10.244.0.0/16";
  int node_cidr_mask_size = 24;
  int workers = 1;
  // max_delay bounds how long a Node waits when the range is full (it is also woken at once
  // when another Node's CIDR is freed).
  client::WorkQueueOptions queue{.max_delay = std::chrono::seconds(30)};
};

class NodeIpamController : public Controller {
 public:
  // Invalid when the cluster CIDR or mask size is (see CidrSet::create).
  static Result<std::unique_ptr<NodeIpamController>> create(NodeIpamOptions opts);
  ~NodeIpamController() override;

  std::string name() const override { return "nodeipam"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- the pieces run() uses, public for tests (with a fake NodeClient and EventSink).
  void set_clients(NodeClient* nodes, EventSink* events);
  // Occupies the CIDRs already on Nodes. REQUIRES: before the first sync.
  void occupy_existing();
  [[nodiscard]] Status sync(const std::string& node_name);
  client::WorkQueue& queue() { return *queue_; }

  // The CIDR this controller has recorded for `node` ("" when none).
  std::string cidr_of(const std::string& node) const;
  size_t used() const;
  size_t capacity() const;

 private:
  NodeIpamController(NodeIpamOptions opts, CidrSet set);
  void enqueue(const json& node);
  // Records the CIDR a Node already has; an invalid one is reported once and left alone.
  void record_existing(const json& node, const std::string& name, const std::string& cidr);
  void forget_node_locked(const std::string& name);

  NodeIpamOptions opts_;
  NodeClient* nodes_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<NodeClient> owned_nodes_;
  std::unique_ptr<client::WorkQueue> queue_;
  WorkerStats stats_;

  mutable std::mutex mu_;
  CidrSet set_;
  std::map<std::string, std::string> by_node_;  // node -> the CIDR we hold for it
  std::set<std::string> waiting_;               // nodes told CIDRNotAvailable, not yet served
  std::set<std::string> reported_invalid_;      // "node/cidr" already reported
};

}  // namespace skiff::controllers::nodeipam
