// NetAgent: skiff-netagent's control loop (see netagent/README.md). It watches every Node,
// publishes this node's overlay facts as annotations on its own Node, and keeps the overlay
// (netagent/overlay) and the masquerade rule (netagent/nft) equal to what the Nodes say.
//
// Every sync is a full, idempotent convergence: Node events only mark the state dirty (handlers
// do no work), and one worker thread syncs when dirty and every resync period, so a device,
// route or rule removed by hand comes back within one period. Stopping leaves the kernel state
// in place: a restarted agent finds it equal to what it wants and changes nothing, so traffic
// is not interrupted.
//
// Thread-safety: start/stop from one thread; metrics_text and healthy from any.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "netagent/overlay/overlay.h"

namespace skiff::fastpath {
class FastPath;
}  // namespace skiff::fastpath

namespace skiff::client {
class ApiClient;
class Informer;
}  // namespace skiff::client

namespace skiff::netagent {

inline constexpr char kAnnotationBackend[] = "skiff.io/backend";
inline constexpr char kAnnotationUnderlayIp[] = "skiff.io/underlay-ip";
inline constexpr char kAnnotationVtepMac[] = "skiff.io/vtep-mac";

struct Options {
  std::string node_name;
  overlay::Backend backend = overlay::Backend::kVxlan;
  std::string cluster_cidr = "10.244.0.0/16";
  std::string node_ip;  // "" = the Node's InternalIP
  std::string iface;    // "" = the link holding the underlay IP
  int vxlan_port = 8472;
  uint32_t vni = 1;
  std::chrono::milliseconds resync_period{30'000};
  bool masquerade = true;  // tests of the overlay alone may turn it off
  // Pod traffic between nodes around the IP stack (netagent/fastpath); nullptr: off. Shared
  // with the service agent, which feeds it the endpoints.
  std::shared_ptr<fastpath::FastPath> fast_path;
};

// The overlay facts of one Node (pure).
struct NodeFacts {
  std::string name;
  std::string pod_cidr;     // spec.podCIDR
  std::string internal_ip;  // status.addresses[type=InternalIP]
  std::string backend;      // annotations
  std::string underlay_ip;
  std::string vtep_mac;
};
NodeFacts node_facts(const nlohmann::json& node);

// The peer a Node describes for `backend`, or why it cannot be one ("no spec.podCIDR yet").
Result<overlay::Peer> peer_of(const NodeFacts& n, overlay::Backend backend);

// The merge patch that makes this node's annotations say `backend`, `underlay` and `vtep_mac`
// (removed when empty), or nullopt when they already do.
std::optional<nlohmann::json> annotation_patch(const NodeFacts& self, overlay::Backend backend,
                                               const std::string& underlay,
                                               const std::string& vtep_mac);

class NetAgent {
 public:
  // `kernel` is not owned and must outlive the agent.
  NetAgent(Options opts, std::shared_ptr<client::ApiClient> api, overlay::Kernel* kernel);
  ~NetAgent();

  // Validates the options, starts the Node informer and the worker thread. The worker waits
  // (logging) until the Node exists with spec.podCIDR and an underlay IP.
  Status start();
  // Stops the worker and the informer; the kernel state stays.
  void stop();

  std::string metrics_text() const;
  // True once the worker has run and its last sync (if any) is recent.
  bool healthy() const;
  // The underlay IPv4 in use (--node-ip, else the Node's InternalIP); "" until the Node said.
  std::string underlay_ip() const;

 private:
  void run(std::stop_token stop);
  // One full convergence; returns its status.
  Status sync_once();
  void sync_fast_path(const overlay::Device& dev, const netlink::Ip4Net& pod_cidr);
  void mark_dirty();

  Options opts_;
  std::shared_ptr<client::ApiClient> api_;
  overlay::Kernel* kernel_;
  std::unique_ptr<client::Informer> informer_;
  std::unique_ptr<overlay::Overlay> overlay_;  // re-made when its config changes
  std::set<std::string> last_skipped_;         // worker thread only

  std::mutex mu_;
  std::condition_variable_any cv_;
  bool dirty_ = true;

  mutable std::mutex stats_mu_;
  uint64_t syncs_ = 0;
  uint64_t sync_errors_ = 0;
  double last_sync_seconds_ = 0;
  double sync_seconds_sum_ = 0;
  int peers_ = 0;
  int skipped_total_ = 0;
  std::chrono::steady_clock::time_point last_loop_{};
  std::string waiting_for_;  // non-empty while the Node is not ready for us
  std::string underlay_ip_;

  std::jthread worker_;
};

}  // namespace skiff::netagent
