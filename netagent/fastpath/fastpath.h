// FastPath: pod traffic between nodes around the node's IP stack (common/bpf/host_routing.h):
// one program at the ingress of the uplink (the underlay device in host-gw mode, skiff.vxlan in
// vxlan mode) that delivers packets for this node's pods straight into their namespaces, and
// one at the ingress of every pod's host-side veth on the bridge that sends packets for other
// nodes' pods straight out of the uplink.
//
// The pods map is read from the kernel: every veth on the bridge, its peer's address (in this
// node's pod CIDR) and MAC, looked up in the peer's namespace by its netns id. A thread listens
// to link changes and converges within ~100 ms (and again after 1, 3 and 10 s, for the address a
// new pod gets after its veth); sync() converges too (the agent's periodic resync).
//
// The endpoints map (replies from service endpoints stay on the netfilter path, see
// host_routing.h) is fed by the service agent before it programs the rules, so no reply of a
// translated flow is ever carried around them. An endpoint removed from every Service stays in
// the map while this node's conntrack still translates a flow from it (checked every 10 s).
//
// Everything lives in this process: programs, maps and links go when it exits, and traffic
// takes the kernel's path again (nothing is pinned, nothing is left behind).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/bpf/bpf.h"
#include "common/bpf/host_routing.h"
#include "common/netlink/ip4.h"
#include "common/status.h"

namespace skiff::fastpath {

// Host byte order.
struct Endpoint {
  uint32_t ip = 0;
  uint8_t proto = 0;  // 6 TCP, 17 UDP
  uint16_t port = 0;
  auto operator<=>(const Endpoint&) const = default;
};

struct Options {
  std::string bridge = "skiff0";
  std::string uplink;  // where routes to other nodes' pod CIDRs go
  netlink::Ip4Net cluster_cidr;
  netlink::Ip4Net pod_cidr;  // this node's
  bool operator==(const Options&) const = default;
};

struct Stats {
  size_t pods = 0;        // in the pods map
  size_t veths = 0;       // with the outbound program
  size_t endpoints = 0;   // in the endpoints map (current and lingering)
  bool attached = false;  // the uplink's program
};

class FastPath {
 public:
  // With `wait_for_endpoints` (a service proxy runs beside it) nothing is attached before the
  // first replace_endpoints(): after an agent restart the kernel still translates flows of
  // the previous run, and their replies must not be carried around netfilter.
  explicit FastPath(bool wait_for_endpoints);
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  // Loads the programs for `o` and attaches the uplink's (again when `o` changed), then syncs.
  // An error when this kernel cannot (no bpf(2), no TCX): the caller goes on without.
  // Thread-safe, as every method. Every method logs its failures itself (once per reason):
  // callers need not; the Status is for tests.
  Status configure(const Options& o);
  // Converges the pods map and the veths' programs with the kernel's links.
  Status sync();
  // The service endpoints: a full set, or a change (refcounted: an endpoint of several Service
  // ports goes when the last one drops it). Applied to the map before returning.
  Status replace_endpoints(const std::vector<Endpoint>& all);
  Status update_endpoints(const std::vector<Endpoint>& removed, const std::vector<Endpoint>& added);
  Stats stats() const;
  // Detaches everything and stops the link watcher.
  void stop();

 private:
  Status configure_locked(const Options& o);
  Status sync_locked();
  Status note_locked(Status s);
  // Closes every link (the uplink's and the veths'): traffic takes the kernel's path.
  void detach_locked();
  // Makes the endpoints map hold the current and lingering endpoints, looking at `keys` only
  // (all keys when nullptr): an incremental Service change costs O(changed endpoints).
  Status apply_endpoints_locked(const std::vector<Endpoint>* keys = nullptr);
  void watch_links(std::stop_token stop);

  mutable std::mutex mu_;
  bool endpoints_known_;
  std::optional<Options> opts_;
  std::optional<bpf::Fd> pods_map_, endpoints_map_, in_prog_, out_prog_, uplink_link_;
  int uplink_index_ = 0;
  std::map<int, bpf::Fd> veth_links_;       // host-side veth index -> link
  std::map<uint32_t, bpf::PodEntry> pods_;  // address (network order) -> what the map holds
  std::map<Endpoint, int> endpoint_refs_;   // current endpoints and their Service ports
  std::set<Endpoint> lingering_;            // dropped, while conntrack still translates
  std::set<Endpoint> in_map_;               // what the endpoints map holds
  std::chrono::steady_clock::time_point next_linger_check_{};
  std::string last_error_;  // the last failure logged, "" while working
  std::jthread watcher_;
};

}  // namespace skiff::fastpath
