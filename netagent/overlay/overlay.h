// Overlay: the pod network between nodes (DESIGN.md §6), flannel's two backends.
//
// vxlan: one device `skiff.vxlan` (VNI 1, UDP 8472, local = the node's underlay IP, on the
//   underlay device, learning off, MTU = underlay MTU - 50) holding the network address of this
//   node's pod CIDR as a /32 (so node-to-remote-pod traffic has a source the peer routes back).
//   For each peer: a route `<peer podCIDR> via <peer podCIDR network addr> dev skiff.vxlan
//   onlink proto 0x53`, a permanent neighbour `<peer podCIDR network addr> lladdr <peer VTEP
//   MAC>` and an FDB entry `<peer VTEP MAC> dst <peer underlay IP> self permanent`.
// host-gw: for each peer a route `<peer podCIDR> via <peer underlay IP> dev <underlay> proto
//   0x53` (nodes must share L2); a `skiff.vxlan` left from vxlan mode is deleted.
//
// Ownership: routes are the main table's with rtm_protocol 0x53 (netlink::kRouteProtocolSkiff);
// neighbours and FDB entries are the permanent ones on skiff.vxlan. Nothing else is read as
// ours, changed or deleted. The planning (desired state, difference) is pure; the kernel is
// behind `Kernel` so tests run it against a fake.
//
// Not thread-safe: one Overlay is driven from one thread (or under the caller's lock).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/netlink/ip4.h"
#include "common/netlink/netlink.h"
#include "common/status.h"

namespace skiff::overlay {

using netlink::Ip4;
using netlink::Ip4Net;

enum class Backend { kVxlan, kHostGw };
std::optional<Backend> parse_backend(const std::string& s);  // "vxlan" | "host-gw"
const char* backend_name(Backend b);

constexpr char kVxlanDevice[] = "skiff.vxlan";
constexpr int kVxlanOverhead = 50;  // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14

struct Config {
  Backend backend = Backend::kVxlan;
  std::string device = kVxlanDevice;
  uint32_t vni = 1;
  int port = 8472;
  Ip4 underlay_ip;           // this node's
  std::string underlay_dev;  // "" = the link holding underlay_ip
  Ip4Net pod_cidr;           // this node's
};

struct Peer {
  std::string node;
  Ip4Net pod_cidr;
  Ip4 underlay;
  std::string vtep_mac;  // vxlan only
};

// What the overlay owns in the kernel (or wants there).
struct Route {
  Ip4Net dst;
  Ip4 gw;
  int oif = 0;
  bool onlink = false;
  auto operator<=>(const Route&) const = default;
};
struct Neigh {
  Ip4 ip;
  std::string mac;  // lower case
  auto operator<=>(const Neigh&) const = default;
};
struct Fdb {
  std::string mac;  // lower case
  Ip4 dst;
  auto operator<=>(const Fdb&) const = default;
};
struct State {
  std::vector<Route> routes;
  std::vector<Neigh> neighs;
  std::vector<Fdb> fdbs;
};
struct Plan {
  State del;  // applied first
  State add;
  bool empty() const;
  std::string str() const;  // one line per change, for logs
};

// The desired state for `peers` (pure). vxlan_index / underlay_index are the devices the routes
// use. Peers that cannot be routed (no pod CIDR, no underlay IP, no or a bad VTEP MAC in vxlan
// mode, a pod CIDR overlapping ours or an earlier peer's) are left out with a reason in
// `skipped` ("node b: no skiff.io/vtep-mac").
State desired_state(const Config& cfg, int vxlan_index, int underlay_index,
                    const std::vector<Peer>& peers, std::vector<std::string>* skipped);
// What to delete and add to go from `current` to `desired` (pure; order-insensitive).
Plan make_plan(const State& current, const State& desired);
// Why an existing vxlan link does not match what `want` asks for ("vni 2, want 1; ..."), or ""
// when it is compatible.
std::string vxlan_incompatibility(const netlink::VxlanInfo& have, const netlink::VxlanInfo& want);
// MAC as the kernel prints it ("aa:bb:..."), or "" when malformed.
std::string normalize_mac(const std::string& mac);

// The kernel operations the overlay uses. Errors are Status (code kIo with the errno, or
// kNotFound for absent objects).
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual Result<netlink::LinkInfo> link(const std::string& name) = 0;  // NotFound when absent
  virtual Status create_vxlan(const std::string& name, const netlink::VxlanInfo& vx, int mtu) = 0;
  virtual Status delete_link(int index) = 0;
  virtual Status set_up(int index) = 0;
  virtual Status set_mtu(int index, int mtu) = 0;
  virtual Result<std::vector<netlink::AddrInfo>> addrs(int index) = 0;  // 0: all links
  virtual Result<netlink::LinkInfo> link_by_index(int index) = 0;
  virtual Status add_addr(int index, Ip4 ip, int prefix) = 0;
  virtual Status delete_addr(int index, Ip4 ip, int prefix) = 0;
  virtual Result<std::vector<netlink::RouteInfo>> owned_routes() = 0;  // protocol 0x53
  virtual Status add_route(const netlink::RouteSpec& r) = 0;
  virtual Status delete_route(const netlink::RouteSpec& r) = 0;
  virtual Result<std::vector<netlink::NeighInfo>> neighs(int index) = 0;
  virtual Status set_neigh(int index, Ip4 ip, const std::string& mac) = 0;
  virtual Status delete_neigh(int index, Ip4 ip) = 0;
  virtual Result<std::vector<netlink::FdbInfo>> fdbs(int index) = 0;
  virtual Status set_fdb(int index, const std::string& mac, Ip4 dst) = 0;
  virtual Status delete_fdb(int index, const std::string& mac, Ip4 dst) = 0;
  // Writes `value` to /proc/sys/<key with dots as slashes> (interface names keep their dots).
  virtual Status write_sysctl(const std::string& path, const std::string& value) = 0;
};
// The real one: rtnetlink in the calling thread's network namespace.
Result<std::unique_ptr<Kernel>> make_netlink_kernel();

// What ensure_device found or made.
struct Device {
  int underlay_index = 0;
  std::string underlay_name;
  int underlay_mtu = 0;
  int index = 0;    // skiff.vxlan; 0 in host-gw mode
  std::string mac;  // its VTEP MAC; "" in host-gw mode
  int mtu = 0;
};

struct SyncStats {
  int peers = 0;                         // routed
  int skipped = 0;                       // left out (see desired_state)
  int changes = 0;                       // kernel objects added or deleted by the last sync
  std::vector<std::string> skipped_why;  // desired_state's reasons, last sync
};

class Overlay {
 public:
  // `kernel` is not owned and must outlive the overlay.
  Overlay(Kernel* kernel, Config cfg);

  // vxlan: creates skiff.vxlan or reuses a compatible one; an incompatible vxlan link of that
  // name is explained in the log and re-created; a non-vxlan link of that name is an error
  // (not ours). Sets its MTU, address and state up, and the forwarding sysctls. host-gw: finds
  // the underlay device, deletes a skiff.vxlan vxlan link, sets ip_forward.
  Result<Device> ensure_device();
  // ensure_device, then makes the kernel's owned routes/neighbours/FDB entries equal to the
  // desired state for `peers`: only the difference is applied; stale owned entries go.
  // Applies every change it can and returns the first error.
  Status sync(const std::vector<Peer>& peers);

  const Device& device() const { return dev_; }
  const SyncStats& stats() const { return stats_; }
  const Config& config() const { return cfg_; }

 private:
  Result<State> current_state();
  Status apply(const Plan& p);

  Kernel* k_;
  Config cfg_;
  Device dev_;
  SyncStats stats_;
};

}  // namespace skiff::overlay
