// Conntrack: deleting connection-tracking entries over ctnetlink (NFNL_SUBSYS_CTNETLINK, libmnl
// only), as kube-proxy does for UDP Services.
//
// UDP has no connection end: a client that keeps sending to a Service IP:port keeps its
// conntrack entry alive, and with it the DNAT to the endpoint chosen by the first packet. When
// that endpoint goes away, the client's packets keep going to the dead address until the entry
// is deleted; when a Service without endpoints (packets rejected, or sent before any rule
// existed) gets its first endpoint, the un-NATed entries must go too. `Conntrack::cleanup`
// dumps the IPv4 entries of one protocol, selects those a `CleanupSpec` names (pure:
// `matches`) and deletes them by original tuple and id.
//
// Addresses and ports are in host byte order. Pure parts (message building and parsing,
// `matches`) are thread-safe; a `Conntrack` is one netlink socket in the network namespace it
// was opened in and must be used from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

struct mnl_socket;
struct nlmsghdr;

namespace skiff::conntrack {

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

// One direction of a flow.
struct Tuple {
  uint32_t src = 0;
  uint32_t dst = 0;
  uint16_t sport = 0;
  uint16_t dport = 0;
  bool operator==(const Tuple&) const = default;
};

// One conntrack entry (IPv4).
struct Entry {
  uint8_t proto = 0;
  Tuple orig;   // as the first packet was (before DNAT)
  Tuple reply;  // as replies come (after DNAT: src is the endpoint)
  uint16_t zone = 0;
  uint32_t id = 0;  // CTA_ID; 0 when the kernel did not say
  bool operator==(const Entry&) const = default;
};
// "udp 10.0.0.1:1234 -> 10.96.0.5:53 reply 10.244.1.7:53 -> 10.0.0.1:1234"
std::string to_string(const Entry& e);

struct IpPort {
  uint32_t ip = 0;
  uint16_t port = 0;
  auto operator<=>(const IpPort&) const = default;
};
// "10.96.0.5:53" / "A.B.C.D" to a host-order address (nullopt when not a dotted quad).
std::string to_string(IpPort a);
std::optional<uint32_t> parse_ip(const std::string& s);
std::string ip_string(uint32_t ip);

// What to delete; every rule concerns entries of `proto` only.
struct CleanupSpec {
  uint8_t proto = kProtoUdp;
  // An endpoint removed from a Service address (ClusterIP, external or LoadBalancer IP):
  // entries whose original destination is `service` and whose reply source is `endpoint`.
  struct ServiceEndpoint {
    IpPort service;
    IpPort endpoint;
    auto operator<=>(const ServiceEndpoint&) const = default;
  };
  std::vector<ServiceEndpoint> service_endpoints;
  // The same through a node port: original destination port `node_port` (any node address),
  // reply source `endpoint`.
  struct NodePortEndpoint {
    uint16_t node_port = 0;
    IpPort endpoint;
    auto operator<=>(const NodePortEndpoint&) const = default;
  };
  std::vector<NodePortEndpoint> node_port_endpoints;
  // A Service address that just got its first endpoint: every entry whose original destination
  // is it (they were rejected or never NATed).
  std::vector<IpPort> services;
  // The same for node ports: every entry whose original destination port is it.
  std::vector<uint16_t> node_ports;

  bool empty() const {
    return service_endpoints.empty() && node_port_endpoints.empty() && services.empty() &&
           node_ports.empty();
  }
};

// True when `spec` selects `e` (pure).
bool matches(const CleanupSpec& spec, const Entry& e);

// ---- messages (pure; exposed for tests) ------------------------------------------------------

// A dump request of the IPv4 entries (the kernel filters the address family; the protocol is
// filtered by the caller).
std::vector<uint8_t> dump_request(uint32_t seq);
// A delete request for `e`: its original tuple, zone and id (the id makes the kernel refuse to
// delete a newer entry that reused the tuple).
std::vector<uint8_t> delete_request(const Entry& e, uint32_t seq);
// A message in the layout of the kernel's IPCTNL_MSG_CT_NEW (both tuples, zone, id): what the
// kernel sends in a dump. For tests of the parser.
std::vector<uint8_t> entry_message(const Entry& e, uint32_t seq);
// The entry a ctnetlink message describes; nullopt when it is not an IPv4 entry.
std::optional<Entry> parse_entry(const nlmsghdr* nlh);

// ---- the kernel ------------------------------------------------------------------------------

struct CleanupResult {
  int scanned = 0;  // entries of the protocol seen
  int matched = 0;
  int deleted = 0;  // matched minus those already gone and those that failed
};

class Conntrack {
 public:
  // A ctnetlink socket in the calling thread's network namespace.
  static Result<std::unique_ptr<Conntrack>> open();
  ~Conntrack();
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  // Every IPv4 entry of `proto`.
  Result<std::vector<Entry>> dump(uint8_t proto);
  // Deletes one entry; an entry already gone (ENOENT) is not an error.
  Status remove(const Entry& e);
  // dump + matches + remove. An entry whose delete fails is reported in the Status (the first
  // failure) after the others were tried; `out` (optional) gets the counts either way.
  Status cleanup(const CleanupSpec& spec, CleanupResult* out = nullptr);

 private:
  explicit Conntrack(mnl_socket* s);
  // Sends `msg` and reads answers until the ack (or the end of a dump); `on_entry` sees each
  // entry of a dump. Returns 0 or a positive errno.
  int transact(std::vector<uint8_t>& msg, void (*on_entry)(const Entry&, void*), void* data);

  mnl_socket* sock_;
  uint32_t port_;
  uint32_t seq_ = 0;
};

}  // namespace skiff::conntrack
