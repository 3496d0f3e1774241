// Netlink: the few rtnetlink operations the skiff plugin needs, over libmnl. One socket is bound
// to the network namespace it was opened in (the kernel fixes that at socket()), so the plugin
// opens one in the node namespace and one in the pod's, and never has to switch back and forth
// around each call.
//
// Not thread-safe (one request in flight per socket). Errors carry the errno the kernel
// returned (`err`), so callers can tell "exists" (EEXIST) and "absent" (ENODEV) apart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cni/plugin/config.h"

struct mnl_socket;
struct nlmsghdr;

namespace skiff::cni::plugin {

struct NlError {
  int err = 0;       // positive errno
  std::string what;  // "create bridge skiff0: File exists"
};

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "bridge", "veth", "" for a plain device
  std::string mac;   // "aa:bb:..."
  int mtu = 0;
  int master = 0;    // bridge index, 0 when none
  bool up = false;   // IFF_UP
  int hairpin = -1;  // IFLA_BRPORT_MODE of a bridge port; -1 when not a bridge port
};

struct AddrInfo {
  Ip4 ip;
  int prefix = 0;
};

struct RouteInfo {
  Ip4 dst;
  int dst_len = 0;
  Ip4 gw;  // 0 when none
  int oif = 0;
  int table = 0;
};

class Netlink {
 public:
  // Opens a NETLINK_ROUTE socket in the calling thread's current network namespace.
  static std::optional<Netlink> open(NlError* err);
  // Opens one in the namespace behind `netns_fd` (setns there and back).
  static std::optional<Netlink> open_in(int netns_fd, NlError* err);
  Netlink(Netlink&& o) noexcept;
  Netlink& operator=(Netlink&& o) noexcept;
  ~Netlink();

  // ENODEV when there is no such link.
  std::optional<LinkInfo> link(const std::string& name, NlError* err);
  std::optional<LinkInfo> link(int index, NlError* err);

  bool create_bridge(const std::string& name, int mtu, const std::string& mac, NlError* err);
  // Creates `name` here and its peer `peer_name` in the namespace `peer_netns_fd`.
  bool create_veth(const std::string& name, const std::string& mac, int mtu,
                   const std::string& peer_name, int peer_netns_fd, NlError* err);
  // Changes what is given: master (>0), up.
  bool set_link(int index, std::optional<int> master, std::optional<bool> up, NlError* err);
  bool set_mtu(int index, int mtu, NlError* err);
  // IFLA_BRPORT_MODE (hairpin) on a bridge port, as `bridge link set dev X hairpin on`.
  bool set_hairpin(int index, bool on, NlError* err);
  bool delete_link(int index, NlError* err);

  // EEXIST is success (already there).
  bool add_addr(int index, Ip4 ip, int prefix, NlError* err);
  std::optional<std::vector<AddrInfo>> addrs(int index, NlError* err);

  // A route in the main table; EEXIST is success.
  bool add_route(Ip4 dst, int dst_len, Ip4 gw, int oif, NlError* err);
  std::optional<std::vector<RouteInfo>> routes(NlError* err);  // IPv4 main table

 private:
  explicit Netlink(mnl_socket* s);
  // Sends one request and reads until its ACK/ERROR; dumps feed `cb` every message.
  int request(nlmsghdr* nlh, int (*cb)(const nlmsghdr*, void*), void* data);

  mnl_socket* sock_ = nullptr;
  unsigned port_ = 0;
  unsigned seq_ = 0;
  std::string last_ext_;  // the kernel's extended-ACK message for the last failed request
};

}  // namespace skiff::cni::plugin
