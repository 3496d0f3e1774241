// NodeLifecycleController: notices Nodes whose kubelet stopped renewing its Lease
// (kube-node-lease/<node>), marks them and their pods, and evicts the pods after a timeout, as
// Kubernetes' node lifecycle controller (with taint-based eviction) does.
//
// Every node_monitor_period, for each Node:
// - Health: the time this controller last saw the Lease's spec.renewTime (or the Ready
//   condition's lastHeartbeatTime) change, on its own monotonic clock (robust to clock skew
//   between machines); a Node first seen counts as just renewed.
// - Not renewed for grace_period: its Ready condition (and MemoryPressure, DiskPressure,
//   PIDPressure when present) becomes Unknown, reason NodeStatusUnknown, "Kubelet stopped
//   posting node status." (a Node that never had one: NodeStatusNeverUpdated, "Kubelet never
//   posted node status."), through the status subresource.
// - Taints: a timed-out Node gets node.kubernetes.io/unreachable NoSchedule and NoExecute; a
//   Node whose kubelet reports Ready=False gets node.kubernetes.io/not-ready (both effects).
//   A renewed Lease removes the unreachable taints (the kubelet then sets Ready=True itself);
//   Ready=True removes both. Other taints are never touched.
// - Pods: while the Node is unreachable or not ready, its pods' Ready condition is set to
//   False at once (status subresource; ContainersReady left as it is, as Kubernetes'
//   MarkPodsNotReady does), so they leave Endpoints.
// - Eviction: a pod is deleted once the Node has carried the NoExecute taint for the pod's
//   tolerationSeconds of a matching NoExecute toleration (a matching toleration without
//   tolerationSeconds: never), or pod_eviction_timeout when none matches. Deletion is the
//   normal (graceful) one with the pod's uid as precondition, so owners recreate the pod.
//   Timed on this controller's clock from when it first saw the Node unhealthy.
//
// Thread-safety: run() owns the monitor loop; monitor_once() is not reentrant (tests call it
// directly with a fake clock).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controllers/controller.h"
#include "proto/client/workqueue.h"

namespace skiff::controllers::nodelifecycle {

inline constexpr const char* kUnreachableTaint = "node.kubernetes.io/unreachable";
inline constexpr const char* kNotReadyTaint = "node.kubernetes.io/not-ready";

// What the controller reads (the informers' caches) and writes. Tests use a fake.
class NodeLifecycleClient {
 public:
  virtual ~NodeLifecycleClient() = default;
  virtual std::vector<json> nodes() = 0;
  // The Lease kube-node-lease/<node>, nullopt when absent.
  virtual std::optional<json> lease(const std::string& node) = 0;
  // Pods with spec.nodeName == node.
  virtual std::vector<json> pods_on(const std::string& node) = 0;
  // JSON merge patches (conditional when they carry metadata.resourceVersion).
  [[nodiscard]] virtual Status patch_node(const std::string& name, const json& patch) = 0;
  [[nodiscard]] virtual Status patch_node_status(const std::string& name, const json& patch) = 0;
  [[nodiscard]] virtual Status patch_pod_status(const std::string& ns, const std::string& name,
                                                const json& patch) = 0;
  // DELETE with preconditions.uid.
  [[nodiscard]] virtual Status delete_pod(const std::string& ns, const std::string& name,
                                          const std::string& uid) = 0;
};

struct NodeLifecycleOptions {
  std::chrono::milliseconds grace_period{40'000};          // --node-monitor-grace-period
  std::chrono::milliseconds pod_eviction_timeout{60'000};  // --pod-eviction-timeout
  std::chrono::milliseconds monitor_period{5'000};         // --node-monitor-period
  const client::Clock* clock = nullptr;                    // nullptr: real steady clock
  // Wall clock for timestamps written to the API (lastTransitionTime, timeAdded).
  std::function<std::chrono::system_clock::time_point()> wall_clock;
};

class NodeLifecycleController : public Controller {
 public:
  explicit NodeLifecycleController(NodeLifecycleOptions opts = {});
  ~NodeLifecycleController() override;

  std::string name() const override { return "nodelifecycle"; }
  Status init(ControllerContext& ctx) override;
  void run(std::stop_token stop) override;
  const WorkerStats& stats() const override { return stats_; }

  // --- for tests.
  void set_client(NodeLifecycleClient* c, EventSink* events = nullptr) {
    client_ = c;
    events_ = events;
  }
  // One pass over every Node (see above). An error when some write failed (retried next pass).
  [[nodiscard]] Status monitor_once();

 private:
  struct Health {
    std::string renew_seen;      // Lease spec.renewTime last seen
    std::string heartbeat_seen;  // Ready condition lastHeartbeatTime last seen
    client::Clock::time_point probe;
    std::optional<client::Clock::time_point> unhealthy_since;  // NoExecute taint "added"
  };
  Status monitor_node(const json& node);

  NodeLifecycleOptions opts_;
  const client::Clock& clock_;
  NodeLifecycleClient* client_ = nullptr;
  EventSink* events_ = nullptr;
  std::unique_ptr<NodeLifecycleClient> owned_client_;
  std::map<std::string, Health> health_;
  WorkerStats stats_;
};

}  // namespace skiff::controllers::nodelifecycle
