// Netlink: the rtnetlink operations skiff needs (links, addresses, routes, neighbours, the
// VXLAN FDB), over libmnl. Used by the exec'd CNI plugin, so it depends on libc and libmnl only.
//
// One socket is bound to the network namespace it was opened in (the kernel fixes that at
// socket()), so the CNI plugin opens one in the node namespace and one in the pod's, and never
// has to switch back and forth around each call.
//
// Not thread-safe (one request in flight per socket). Errors carry the errno the kernel
// returned (`err`), so callers can tell "exists" (EEXIST) and "absent" (ENODEV, ESRCH, ENOENT)
// apart, and a text naming the operation, the object and the kernel's extended-ACK message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/netlink/ip4.h"

struct mnl_socket;
struct nlmsghdr;

namespace skiff::netlink {

// The rtm_protocol skiff marks its routes with: 0x53, 'S'. Unassigned in iproute2's
// rt_protos; `ip route show proto 83` lists them. Whoever owns a route can find (and delete)
// only its own by this number.
constexpr uint8_t kRouteProtocolSkiff = 0x53;

struct NlError {
  int err = 0;       // positive errno
  std::string what;  // "create bridge skiff0: File exists"
};

// IFLA_VXLAN_* of a vxlan link, as read back or to create.
struct VxlanInfo {
  uint32_t vni = 0;
  Ip4 local;     // IFLA_VXLAN_LOCAL; 0 when unset
  int link = 0;  // IFLA_VXLAN_LINK: underlay device index; 0 when unset
  int port = 0;  // IFLA_VXLAN_PORT (UDP destination port); 0 = kernel default
  bool learning = true;
  bool operator==(const VxlanInfo&) const = default;
};

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "bridge", "veth", "vxlan", "" for a plain device
  std::string mac;   // "aa:bb:..."
  int mtu = 0;
  int master = 0;                  // bridge index, 0 when none
  bool up = false;                 // IFF_UP
  int hairpin = -1;                // IFLA_BRPORT_MODE of a bridge port; -1 when not a bridge port
  std::optional<VxlanInfo> vxlan;  // kind "vxlan" only
  int peer = 0;                    // IFLA_LINK: a veth's peer index (in peer_netnsid's namespace)
  int peer_netnsid = -1;           // IFLA_LINK_NETNSID; -1 when the peer is in this namespace
};

struct AddrInfo {
  Ip4 ip;
  int prefix = 0;
  int index = 0;  // the link holding it
};

struct RouteInfo {
  Ip4 dst;
  int dst_len = 0;
  Ip4 gw;  // 0 when none
  int oif = 0;
  int table = 0;
  int protocol = 0;     // rtm_protocol
  bool onlink = false;  // RTNH_F_ONLINK
};

// A route to add or delete in the main table.
struct RouteSpec {
  Ip4Net dst;
  Ip4 gw;  // 0: a link route (scope link)
  int oif = 0;
  bool onlink = false;  // the gateway is on the link even though no address says so
  uint8_t protocol = kRouteProtocolSkiff;
};

// A permanent IPv4 neighbour (ARP) entry.
struct NeighInfo {
  int index = 0;
  Ip4 ip;
  std::string mac;
  int state = 0;  // NUD_*
};

// A bridge/VXLAN forwarding entry ("bridge fdb ... self"): frames for `mac` go to `dst`.
struct FdbInfo {
  int index = 0;
  std::string mac;
  Ip4 dst;  // NDA_DST; 0 when none
  int state = 0;
  int flags = 0;  // NTF_*
};

// "aa:bb:cc:dd:ee:ff" (any case) to bytes; false when malformed.
bool parse_mac(const std::string& s, uint8_t out[6]);

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
  // Every link; with `netnsid` >= 0, those of the namespace with that id as seen from this one
  // (IFLA_TARGET_NETNSID, e.g. a veth's peer_netnsid).
  std::optional<std::vector<LinkInfo>> links(NlError* err, int netnsid = -1);

  bool create_bridge(const std::string& name, int mtu, const std::string& mac, NlError* err);
  // Creates `name` here and its peer `peer_name` in the namespace `peer_netns_fd`.
  bool create_veth(const std::string& name, const std::string& mac, int mtu,
                   const std::string& peer_name, int peer_netns_fd, NlError* err);
  // Creates a vxlan link (down). EEXIST when the name is taken.
  bool create_vxlan(const std::string& name, const VxlanInfo& vx, int mtu, NlError* err);
  // Creates a dummy link (down), e.g. to hold an address every local socket can bind (the
  // cluster DNS address). EEXIST when the name is taken.
  bool create_dummy(const std::string& name, NlError* err);
  // Changes what is given: master (>0), up.
  bool set_link(int index, std::optional<int> master, std::optional<bool> up, NlError* err);
  bool set_mtu(int index, int mtu, NlError* err);
  // IFLA_BRPORT_MODE (hairpin) on a bridge port, as `bridge link set dev X hairpin on`.
  bool set_hairpin(int index, bool on, NlError* err);
  bool delete_link(int index, NlError* err);

  // EEXIST is success (already there).
  bool add_addr(int index, Ip4 ip, int prefix, NlError* err);
  // EADDRNOTAVAIL when absent.
  bool delete_addr(int index, Ip4 ip, int prefix, NlError* err);
  // IPv4 addresses of link `index`, or of every link when `index` is 0.
  std::optional<std::vector<AddrInfo>> addrs(int index, NlError* err);
  // The IPv4 addresses of the namespace with that id as seen from this one (IFA_TARGET_NETNSID).
  std::optional<std::vector<AddrInfo>> addrs_in(int netnsid, NlError* err);

  // A route in the main table with protocol boot; EEXIST is success.
  bool add_route(Ip4 dst, int dst_len, Ip4 gw, int oif, NlError* err);
  // A route in the main table as `r` says. EEXIST (a route to that prefix exists, whoever made
  // it) is an error here: the caller decides.
  bool add_route(const RouteSpec& r, NlError* err);
  // Deletes the main-table route matching dst, gateway, device and protocol. ESRCH when absent.
  bool delete_route(const RouteSpec& r, NlError* err);
  std::optional<std::vector<RouteInfo>> routes(NlError* err);  // IPv4 main table
  // IPv4 main-table routes with rtm_protocol == `protocol`.
  std::optional<std::vector<RouteInfo>> routes_by_protocol(uint8_t protocol, NlError* err);

  // Adds or replaces a NUD_PERMANENT neighbour `ip lladdr mac` on link `index`.
  bool set_neigh(int index, Ip4 ip, const std::string& mac, NlError* err);
  // ENOENT when absent.
  bool delete_neigh(int index, Ip4 ip, NlError* err);
  // IPv4 neighbours on link `index`.
  std::optional<std::vector<NeighInfo>> neighs(int index, NlError* err);

  // Adds or replaces the FDB entry `mac dst <dst> self permanent` on link `index` (a vxlan).
  bool set_fdb(int index, const std::string& mac, Ip4 dst, NlError* err);
  // ENOENT when absent.
  bool delete_fdb(int index, const std::string& mac, Ip4 dst, NlError* err);
  // FDB entries of link `index` (AF_BRIDGE dump filtered here).
  std::optional<std::vector<FdbInfo>> fdbs(int index, NlError* err);

 private:
  explicit Netlink(mnl_socket* s);
  // Sends one request and reads until its ACK/ERROR; dumps feed `cb` every message.
  int request(nlmsghdr* nlh, int (*cb)(const nlmsghdr*, void*), void* data);

  mnl_socket* sock_ = nullptr;
  unsigned port_ = 0;
  unsigned seq_ = 0;
  std::string last_ext_;  // the kernel's extended-ACK message for the last failed request
};

}  // namespace skiff::netlink
