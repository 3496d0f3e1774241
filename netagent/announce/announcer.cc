#include "netagent/announce/announcer.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/json_path.h"
#include "proto/client/api_client.h"
#include "proto/client/informer.h"
#include "proto/client/leader_election.h"
#include "proto/endpoints.h"
#include "proto/node.h"
#include "proto/registry.h"
#include "proto/service.h"

namespace skiff::netagent::announce {

namespace {

constexpr const char* kClass = "skiff.io/lb";
constexpr const char* kExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers";

// The informers keep a reference to their type: these live for the process.
const proto::ResourceType& service_type() {
  static const proto::ResourceType t = proto::service_resource();
  return t;
}
const proto::ResourceType& endpoints_type() {
  static const proto::ResourceType t = proto::endpoints_resource();
  return t;
}
const proto::ResourceType& node_type() {
  static const proto::ResourceType t = proto::node_resource();
  return t;
}

bool handled(const json& svc) {
  if (str_at(svc, {"spec", "type"}) != "LoadBalancer") return false;
  const json* cls = find_path(svc, {"spec", "loadBalancerClass"});
  if (!cls || cls->is_null()) return true;
  return cls->is_string() && (cls->get<std::string>().empty() || *cls == kClass);
}

// Why this node may not announce at all ("" when it may).
std::string node_reason(const json* node, const std::string& node_name) {
  if (!node) return "node " + node_name + " not found";
  bool ready = false;
  const json* conds = find_path(*node, {"status", "conditions"});
  if (conds && conds->is_array())
    for (const auto& c : *conds)
      if (c.is_object() && c.value("type", json()) == "Ready" &&
          c.value("status", json()) == "True")
        ready = true;
  if (!ready) return "node " + node_name + " is not Ready";
  const json* labels = find_path(*node, {"metadata", "labels"});
  if (labels && labels->is_object() && labels->contains(kExcludeLabel))
    return "node " + node_name + " has label " + kExcludeLabel;
  return "";
}

bool has_local_ready_endpoint(const json* eps, const std::string& node_name) {
  if (!eps) return false;
  const json* subsets = find_path(*eps, {"subsets"});
  if (!subsets || !subsets->is_array()) return false;
  for (const auto& s : *subsets) {
    if (!s.is_object()) continue;
    auto a = s.find("addresses");
    if (a == s.end() || !a->is_array()) continue;
    for (const auto& addr : *a)
      if (addr.is_object() && addr.value("nodeName", json()) == node_name) return true;
  }
  return false;
}

std::string mac_text(const uint8_t m[6]) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

std::string ip_text(uint32_t net) {
  char b[INET_ADDRSTRLEN];
  in_addr a{net};
  inet_ntop(AF_INET, &a, b, sizeof b);
  return b;
}

void put16(std::vector<uint8_t>& f, uint16_t v) {
  f.push_back(static_cast<uint8_t>(v >> 8));
  f.push_back(static_cast<uint8_t>(v & 255));
}
void put_bytes(std::vector<uint8_t>& f, const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  f.insert(f.end(), b, b + n);
}

std::vector<uint8_t> arp_frame(const uint8_t eth_dst[6], const uint8_t eth_src[6], uint16_t op,
                               const uint8_t sha[6], uint32_t spa, const uint8_t tha[6],
                               uint32_t tpa) {
  std::vector<uint8_t> f;
  f.reserve(42);
  put_bytes(f, eth_dst, 6);
  put_bytes(f, eth_src, 6);
  put16(f, ETH_P_ARP);
  put16(f, 1);       // hardware: Ethernet
  put16(f, 0x0800);  // protocol: IPv4
  f.push_back(6);    // hardware address length
  f.push_back(4);    // protocol address length
  put16(f, op);
  put_bytes(f, sha, 6);
  put_bytes(f, &spa, 4);
  put_bytes(f, tha, 6);
  put_bytes(f, &tpa, 4);
  return f;
}

}  // namespace

// ---- pure parts ------------------------------------------------------------------------------

std::string lease_name_for(const std::string& ip) {
  std::string out = "skiff-lb-" + ip;
  std::replace(out.begin(), out.end(), '.', '-');
  std::replace(out.begin(), out.end(), ':', '-');
  return out;
}

std::vector<Decision> decide(const std::vector<json>& services, const std::vector<json>& endpoints,
                             const json* node, const std::string& node_name) {
  std::map<std::string, const json*> eps_by_key;
  for (const auto& e : endpoints) eps_by_key[client::object_key(e)] = &e;
  std::string node_why = node_reason(node, node_name);

  std::map<std::string, Decision> by_ip;
  std::vector<const json*> sorted;
  for (const auto& s : services) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) {
    return client::object_key(*a) < client::object_key(*b);
  });
  for (const json* s : sorted) {
    if (!handled(*s)) continue;
    const json* ingress = find_path(*s, {"status", "loadBalancer", "ingress"});
    if (!ingress || !ingress->is_array()) continue;
    std::string key = client::object_key(*s);
    std::string why = node_why;
    if (why.empty() && str_at(*s, {"spec", "externalTrafficPolicy"}) == "Local") {
      auto it = eps_by_key.find(key);
      if (!has_local_ready_endpoint(it == eps_by_key.end() ? nullptr : it->second, node_name))
        why = "no ready endpoint of " + key + " on node " + node_name +
              " (externalTrafficPolicy Local)";
    }
    for (const auto& i : *ingress) {
      std::string ip = i.is_object() ? i.value("ip", std::string()) : "";
      in_addr a;
      if (ip.empty() || inet_pton(AF_INET, ip.c_str(), &a) != 1) continue;
      auto [it, fresh] = by_ip.try_emplace(ip, Decision{ip, key, why.empty(), why});
      // Several Services on one address: eligible when eligible for any of them.
      if (!fresh && !it->second.eligible && why.empty()) it->second = Decision{ip, key, true, ""};
    }
  }
  std::vector<Decision> out;
  for (auto& [ip, d] : by_ip) out.push_back(std::move(d));
  return out;
}

std::optional<ArpPacket> parse_arp_frame(const uint8_t* d, size_t len) {
  if (len < 42) return std::nullopt;
  auto u16 = [&](size_t off) { return static_cast<uint16_t>(d[off] << 8 | d[off + 1]); };
  if (u16(12) != ETH_P_ARP || u16(14) != 1 || u16(16) != 0x0800 || d[18] != 6 || d[19] != 4)
    return std::nullopt;
  ArpPacket p;
  p.op = u16(20);
  std::memcpy(p.sender_mac, d + 22, 6);
  std::memcpy(&p.sender_ip, d + 28, 4);
  std::memcpy(p.target_mac, d + 32, 6);
  std::memcpy(&p.target_ip, d + 38, 4);
  return p;
}

std::vector<uint8_t> build_arp_reply(const ArpPacket& req, const uint8_t our_mac[6]) {
  return arp_frame(req.sender_mac, our_mac, 2, our_mac, req.target_ip, req.sender_mac,
                   req.sender_ip);
}

std::vector<uint8_t> build_gratuitous_arp(uint32_t ip, const uint8_t our_mac[6], uint16_t op) {
  static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t zero[6] = {};
  return arp_frame(bcast, our_mac, op, our_mac, ip, op == 2 ? bcast : zero, ip);
}

// ---- the component ---------------------------------------------------------------------------

struct Announcer::Election {
  std::string ip;
  std::unique_ptr<client::LeaderElector> elector;
  std::atomic<bool> done{false};
  std::jthread thread;  // last: joined before the elector goes
};

Announcer::Announcer(std::shared_ptr<client::ApiClient> api, Options opts)
    : api_(std::move(api)), opts_(std::move(opts)) {}

Announcer::~Announcer() { stop(); }

Status Announcer::start() {
  if (started_) return Status::ok();
  if (opts_.node_name.empty()) return Status::invalid("LB announcer: no node name");
  if (!api_) return Status::invalid("LB announcer: no API client");
  SKIFF_RETURN_IF_ERROR(
      client::validate_durations(opts_.lease_duration, opts_.renew_deadline, opts_.retry_period)
          .with_context("LB announcer"));
  if (opts_.garp_interval <= std::chrono::milliseconds(0))
    return Status::invalid("LB announcer: gratuitous ARP interval must be positive");
  if (!opts_.services != !opts_.endpoints)
    return Status::invalid(
        "LB announcer: share both the Service and the Endpoints informer, or neither");

  std::string iface = opts_.interface;
  if (iface.empty()) {
    in_addr want;
    if (opts_.underlay_ip.empty() || inet_pton(AF_INET, opts_.underlay_ip.c_str(), &want) != 1)
      return Status::invalid("LB announcer: neither an interface nor a valid underlay IP (\"" +
                             opts_.underlay_ip + "\") given");
    ifaddrs* ifs = nullptr;
    if (getifaddrs(&ifs) != 0) return Status::io("LB announcer: listing interfaces");
    for (ifaddrs* i = ifs; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
          reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == want.s_addr) {
        iface = i->ifa_name;
        break;
      }
    freeifaddrs(ifs);
    if (iface.empty())
      return Status::not_found("LB announcer: no interface holds the underlay IP " +
                               opts_.underlay_ip);
  }
  ifindex_ = static_cast<int>(if_nametoindex(iface.c_str()));
  if (ifindex_ == 0) return Status::io("LB announcer: interface " + iface);
  opts_.interface = iface;

  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd < 0) return Status::io("LB announcer: opening an ARP packet socket (needs CAP_NET_RAW)");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
    Status st = Status::io("LB announcer: reading the MAC address of " + iface);
    close(fd);
    return st;
  }
  if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */) {
    close(fd);
    return Status::invalid("LB announcer: interface " + iface + " is not Ethernet");
  }
  std::memcpy(mac_, ifr.ifr_hwaddr.sa_data, 6);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ARP);
  sll.sll_ifindex = ifindex_;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    Status st = Status::io("LB announcer: binding the ARP socket to " + iface);
    close(fd);
    return st;
  }
  fd_ = fd;

  if (opts_.services) {
    services_ = opts_.services;
    endpoints_ = opts_.endpoints;
  } else {
    own_services_ = std::make_unique<client::Informer>(api_, service_type());
    own_endpoints_ = std::make_unique<client::Informer>(api_, endpoints_type());
    services_ = own_services_.get();
    endpoints_ = own_endpoints_.get();
  }
  // Only this node's Node is read: watching every Node would reconcile on each kubelet status
  // update anywhere in the cluster.
  client::InformerOptions own_node;
  own_node.field_selector = "metadata.name=" + opts_.node_name;
  nodes_ = std::make_unique<client::Informer>(api_, node_type(), own_node);
  for (auto* inf : {own_services_.get(), own_endpoints_.get(), nodes_.get()}) {
    if (!inf) continue;
    inf->add_handlers({[this](const json&) { kick(); },
                       [this](const json&, const json&) { kick(); },
                       [this](const json&) { kick(); }});
    inf->start();
  }
  arp_thread_ = std::jthread([this](std::stop_token st) { arp_loop(st); });
  reconciler_ = std::jthread([this](std::stop_token st) { reconcile_loop(st); });
  started_ = true;
  spdlog::info("LB announcer: node {} answers ARP for held LoadBalancer addresses on {} ({})",
               opts_.node_name, iface, mac_text(mac_));
  return Status::ok();
}

void Announcer::stop() {
  if (!started_) return;
  started_ = false;
  reconciler_.request_stop();
  if (reconciler_.joinable()) reconciler_.join();
  std::map<std::string, std::unique_ptr<Election>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(elections_);
  }
  // Stop all at once (each releases its Lease), then wait for them.
  for (auto& [ip, e] : all) e->thread.request_stop();
  all.clear();
  arp_thread_.request_stop();
  if (arp_thread_.joinable()) arp_thread_.join();
  for (auto* inf : {own_services_.get(), own_endpoints_.get(), nodes_.get()})
    if (inf) inf->stop();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Announcer::kick() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void Announcer::reconcile_loop(std::stop_token stop) {
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(mu_);
      // Also every retry period: an elector that lost its Lease has ended and is restarted.
      cv_.wait_for(lock, stop, opts_.retry_period, [this] { return dirty_; });
      dirty_ = false;
    }
    if (stop.stop_requested()) return;
    if (!services_->has_synced() || !endpoints_->has_synced() || !nodes_->has_synced()) continue;
    reconcile();
  }
}

void Announcer::reconcile() {
  auto node = nodes_->get(opts_.node_name);
  // Only Services with a LoadBalancer ingress matter, with their Endpoints: the others are
  // not decoded out of the (compact) caches.
  std::vector<json> lbs, eps;
  services_->for_each([&](const json& s) {
    const json* ingress = find_path(s, {"status", "loadBalancer", "ingress"});
    if (!ingress || !ingress->is_array() || ingress->empty()) return;
    if (auto e = endpoints_->get(client::object_key(s))) eps.push_back(std::move(*e));
    lbs.push_back(s);
  });
  auto decisions = decide(lbs, eps, node ? &*node : nullptr, opts_.node_name);
  std::set<std::string> want;
  for (const auto& d : decisions)
    if (d.eligible) want.insert(d.ip);
  eligible_ = static_cast<int64_t>(want.size());

  std::vector<std::unique_ptr<Election>> ending;
  std::vector<std::string> starting;
  {
    std::lock_guard lock(mu_);
    for (auto it = elections_.begin(); it != elections_.end();) {
      if (!want.count(it->first) || it->second->done) {
        ending.push_back(std::move(it->second));
        it = elections_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& ip : want)
      if (!elections_.count(ip)) starting.push_back(ip);
  }
  for (auto& e : ending) {
    if (!want.count(e->ip)) {
      std::string why = "address gone";
      for (const auto& d : decisions)
        if (d.ip == e->ip) why = d.reason;
      spdlog::info("LB announcer: leaving the election for {}: {}", e->ip, why);
    }
    e->thread.request_stop();
  }
  ending.clear();  // joins: each leader stops answering, then releases its Lease

  for (const auto& ip : starting) {
    in_addr a;
    inet_pton(AF_INET, ip.c_str(), &a);
    uint32_t ip_net = a.s_addr;
    auto e = std::make_unique<Election>();
    e->ip = ip;
    client::LeaderElectionConfig cfg;
    cfg.lock = std::make_shared<client::ApiLeaseLock>(opts_.lease_api ? opts_.lease_api : api_,
                                                      opts_.lease_namespace, lease_name_for(ip));
    cfg.identity = opts_.node_name;
    cfg.lease_duration = opts_.lease_duration;
    cfg.renew_deadline = opts_.renew_deadline;
    cfg.retry_period = opts_.retry_period;
    cfg.release_on_cancel = true;
    cfg.callbacks.on_started_leading = [this, ip, ip_net](std::stop_token st) {
      spdlog::info("LB announcer: node {} now announces {}", opts_.node_name, ip);
      ++takeovers_;
      set_held(ip, true);
      garp(ip_net);
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      while (!cv.wait_for(lock, st, opts_.garp_interval, [] { return false; }) &&
             !st.stop_requested())
        garp(ip_net);
      set_held(ip, false);
      spdlog::info("LB announcer: node {} stopped announcing {}", opts_.node_name, ip);
    };
    auto el = client::LeaderElector::create(std::move(cfg));
    if (!el) {
      ++errors_;
      spdlog::error("LB announcer: {}: {}", ip, el.status().to_string());
      continue;
    }
    e->elector = std::move(*el);
    Election* raw = e.get();
    e->thread = std::jthread([raw](std::stop_token st) {
      raw->elector->run(st);
      raw->done = true;
    });
    std::lock_guard lock(mu_);
    elections_[ip] = std::move(e);
  }
}

void Announcer::set_held(const std::string& ip, bool held) {
  in_addr a;
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1) return;
  std::lock_guard lock(mu_);
  if (held)
    held_.insert(a.s_addr);
  else
    held_.erase(a.s_addr);
}

void Announcer::send_frame(const std::vector<uint8_t>& frame) {
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex_;
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, frame.data(), 6);
  if (sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    ++errors_;
    spdlog::warn("LB announcer: sending ARP on {}: {}", opts_.interface, std::strerror(errno));
  }
}

void Announcer::garp(uint32_t ip_net) {
  // Both forms: some hosts update their caches only from requests, others only from replies.
  send_frame(build_gratuitous_arp(ip_net, mac_, 1));
  send_frame(build_gratuitous_arp(ip_net, mac_, 2));
  ++garps_;
}

void Announcer::arp_loop(std::stop_token stop) {
  uint8_t buf[256];
  while (!stop.stop_requested()) {
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r <= 0) continue;
    sockaddr_ll from{};
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
    auto a = parse_arp_frame(buf, static_cast<size_t>(n));
    if (!a || a->op != 1) continue;
    // Someone announcing its own address (gratuitous ARP) is not asking.
    if (a->sender_ip == a->target_ip) continue;
    {
      std::lock_guard lock(mu_);
      if (!held_.count(a->target_ip)) continue;
    }
    send_frame(build_arp_reply(*a, mac_));
    ++arp_replies_;
    spdlog::debug("LB announcer: answered ARP who-has {} from {} ({})", ip_text(a->target_ip),
                  ip_text(a->sender_ip), mac_text(a->sender_mac));
  }
}

std::vector<std::string> Announcer::held() const {
  std::vector<std::string> out;
  std::lock_guard lock(mu_);
  for (uint32_t ip : held_) out.push_back(ip_text(ip));
  std::sort(out.begin(), out.end());
  return out;
}

std::string Announcer::metrics_text() const {
  size_t held;
  {
    std::lock_guard lock(mu_);
    held = held_.size();
  }
  std::string out;
  auto add = [&](const char* name, const char* type, const char* help, int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  add("skiff_netagent_lb_addresses_held", "gauge",
      "LoadBalancer addresses this node announces (holds the Lease of).",
      static_cast<int64_t>(held));
  add("skiff_netagent_lb_addresses_eligible", "gauge",
      "LoadBalancer addresses this node may announce (competes for).", eligible_.load());
  add("skiff_netagent_lb_takeovers_total", "counter",
      "Times this node started announcing an address.", takeovers_.load());
  add("skiff_netagent_lb_arp_replies_total", "counter", "ARP replies sent for held addresses.",
      arp_replies_.load());
  add("skiff_netagent_lb_gratuitous_arp_total", "counter",
      "Gratuitous ARP rounds sent (a request and a reply each).", garps_.load());
  add("skiff_netagent_lb_errors_total", "counter", "Errors sending ARP or starting an election.",
      errors_.load());
  return out;
}

}  // namespace skiff::netagent::announce
