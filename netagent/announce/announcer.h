// Announcer: makes LoadBalancer addresses reachable on the LAN (MetalLB's L2 mode) from
// skiff-netagent. For every IPv4 address in a handled Service's status.loadBalancer.ingress
// (type LoadBalancer, spec.loadBalancerClass absent or "skiff.io/lb"):
//
// - This node is eligible when its Node is Ready (condition Ready=True), it does not carry the
//   label node.kubernetes.io/exclude-from-external-load-balancers, and — for
//   externalTrafficPolicy Local — the Service's Endpoints have a ready address with
//   nodeName == this node.
// - Eligible nodes compete for the Lease kube-system/skiff-lb-<ip with dashes> (client-go's
//   algorithm, proto/client/leader_election.h; identity = node name). Ineligible nodes never
//   run an elector for it.
// - The holder answers ARP requests for the address on the underlay interface (AF_PACKET,
//   ETH_P_ARP; reply with the interface's MAC) and sends gratuitous ARP (a request and a reply)
//   on takeover and every garp_interval. The address is NOT added to any interface: traffic
//   arrives at the holder and the service proxy's nftables map DNATs it.
// - When the node stops being eligible, or the address goes away, it stops answering and
//   releases the Lease (holder cleared) so another node takes over at its next retry. A holder
//   that dies is replaced lease_duration (+ one retry period) after its last renewal.
// - stop() releases every Lease it holds.
//
// Thread-safety: start()/stop() from one thread; metrics_text() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace skiff::client {
class ApiClient;
class Informer;
}  // namespace skiff::client

namespace skiff::netagent::announce {

using json = nlohmann::json;

struct Options {
  std::string node_name;    // required: this node's Node and the Lease identity
  std::string interface;    // underlay device; "" = the one holding underlay_ip
  std::string underlay_ip;  // this node's underlay IPv4 (used to find the interface)
  std::string lease_namespace = "kube-system";
  // Election timing: a dead holder is replaced within lease_duration + retry_period.
  std::chrono::milliseconds lease_duration{5000};
  std::chrono::milliseconds renew_deadline{3000};
  std::chrono::milliseconds retry_period{1000};
  std::chrono::milliseconds garp_interval{30000};
  // Lease requests go through this client when set (give it short timeouts, e.g.
  // daemon::make_lease_client(cc, renew_deadline)); else through the main client.
  std::shared_ptr<client::ApiClient> lease_api;
  // Service and Endpoints informers shared with the agent's other components (not owned; both
  // or neither; they outlive the Announcer). They may be running already, so no handler is added
  // to them: their owner calls kick() on each of their events. Null: the announcer runs its own.
  client::Informer* services = nullptr;
  client::Informer* endpoints = nullptr;
};

// ---- pure parts (tested in announce_test.cc) -------------------------------------------------

// "skiff-lb-10-250-0-200".
std::string lease_name_for(const std::string& ip);

struct Decision {
  std::string ip;
  std::string service;  // "namespace/name" (the first one when several share the address)
  bool eligible = false;
  std::string reason;  // why not eligible ("" when eligible)
  bool operator==(const Decision&) const = default;
};

// One Decision per announced address, sorted by ip. `node` is this node's Node (nullptr when
// absent: nothing is eligible). Endpoints are matched to Services by namespace/name.
std::vector<Decision> decide(const std::vector<json>& services, const std::vector<json>& endpoints,
                             const json* node, const std::string& node_name);

// ARP over Ethernet for IPv4 (28 bytes after a 14-byte Ethernet header).
struct ArpPacket {
  uint16_t op = 0;  // 1 request, 2 reply
  uint8_t sender_mac[6]{}, target_mac[6]{};
  uint32_t sender_ip = 0, target_ip = 0;  // network byte order
};
// Parses an Ethernet frame; nullopt unless it is an IPv4-over-Ethernet ARP packet.
std::optional<ArpPacket> parse_arp_frame(const uint8_t* data, size_t len);
// The reply to `req` announcing that `our_mac` has req.target_ip (unicast to the requester).
std::vector<uint8_t> build_arp_reply(const ArpPacket& req, const uint8_t our_mac[6]);
// Gratuitous ARP for `ip` (network order): broadcast, sender = target = ip; op 1 or 2.
std::vector<uint8_t> build_gratuitous_arp(uint32_t ip, const uint8_t our_mac[6], uint16_t op);

// ---- the component ---------------------------------------------------------------------------

class Announcer {
 public:
  Announcer(std::shared_ptr<client::ApiClient> api, Options opts);
  ~Announcer();  // stop()
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  // Checks the options, finds the interface and its MAC, opens the ARP socket (needs
  // CAP_NET_RAW), starts the informers (Services, Endpoints, Nodes) and the threads. Returns
  // without waiting for the informers to sync.
  [[nodiscard]] Status start();
  // Stops answering, releases held Leases, stops the threads. Idempotent.
  void stop();

  // Prometheus text: skiff_netagent_lb_addresses_held, skiff_netagent_lb_addresses_eligible,
  // skiff_netagent_lb_takeovers_total, skiff_netagent_lb_arp_replies_total,
  // skiff_netagent_lb_gratuitous_arp_total, skiff_netagent_lb_errors_total.
  std::string metrics_text() const;

  // Addresses this node announces now (sorted).
  std::vector<std::string> held() const;

  // Asks for a reconcile soon (a Service, Endpoints or Node changed). Any thread.
  void kick();

 private:
  struct Election;
  void reconcile_loop(std::stop_token stop);
  void reconcile();
  void arp_loop(std::stop_token stop);
  void garp(uint32_t ip_net);
  void send_frame(const std::vector<uint8_t>& frame);
  void set_held(const std::string& ip, bool held);

  std::shared_ptr<client::ApiClient> api_;
  Options opts_;
  int ifindex_ = 0;
  uint8_t mac_[6]{};
  int fd_ = -1;

  std::unique_ptr<client::Informer> own_services_, own_endpoints_;  // when none are shared
  client::Informer* services_ = nullptr;
  client::Informer* endpoints_ = nullptr;
  std::unique_ptr<client::Informer> nodes_;

  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  bool dirty_ = true;
  std::set<uint32_t> held_;                                     // network byte order
  std::map<std::string, std::unique_ptr<Election>> elections_;  // by ip

  std::atomic<int64_t> takeovers_{0}, arp_replies_{0}, garps_{0}, errors_{0};
  std::atomic<int64_t> eligible_{0};
  std::jthread reconciler_, arp_thread_;
  bool started_ = false;
};

}  // namespace skiff::netagent::announce
