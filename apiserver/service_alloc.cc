#include "apiserver/service_alloc.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <set>

#include "proto/meta.h"
#include "proto/resource.h"

namespace skiff::apiserver {

// ---- ranges.

std::string ipv4_string(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
         std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
}

std::optional<uint32_t> parse_ipv4(const std::string& s) {
  in_addr a{};
  if (s.empty() || inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string Ipv4Cidr::str() const { return ipv4_string(network) + "/" + std::to_string(prefix); }

Result<Ipv4Cidr> parse_service_cidr(const std::string& s) {
  const std::string what = "service cluster IP range \"" + s + "\": ";
  size_t slash = s.find('/');
  if (slash == std::string::npos)
    return Status::invalid(what + "not a CIDR (expected ADDRESS/PREFIX, e.g. 10.96.0.0/16)");
  std::string addr = s.substr(0, slash), len = s.substr(slash + 1);
  if (addr.find(':') != std::string::npos)
    return Status::invalid(what +
                           "IPv6 service ranges are not supported (the cluster is "
                           "single-stack IPv4)");
  auto ip = parse_ipv4(addr);
  if (!ip) return Status::invalid(what + "\"" + addr + "\" is not an IPv4 address");
  if (len.empty() || len.size() > 2 || !std::all_of(len.begin(), len.end(), ::isdigit))
    return Status::invalid(what + "prefix length \"" + len + "\" is not a number");
  int prefix = std::stoi(len);
  if (prefix > 32) return Status::invalid(what + "prefix length must be at most 32");
  if (prefix < 12)
    return Status::invalid(what + "too large; for 32-bit addresses the mask must be >= 12");
  if (prefix > 30)
    return Status::invalid(what + "too small; it must hold at least 2 usable addresses (/30)");
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((*ip & ~mask) != 0)
    return Status::invalid(what + "host bits are set (the network is " + ipv4_string(*ip & mask) +
                           "/" + std::to_string(prefix) + ")");
  return Ipv4Cidr{*ip, prefix};
}

std::string PortRange::str() const {
  return std::to_string(base) + "-" + std::to_string(base + size - 1);
}

Result<PortRange> parse_port_range(const std::string& s) {
  const std::string what = "service node port range \"" + s + "\": ";
  auto num = [](const std::string& t) -> int {
    if (t.empty() || t.size() > 5 || !std::all_of(t.begin(), t.end(), ::isdigit)) return -1;
    return std::stoi(t);
  };
  size_t dash = s.find('-');
  int lo = num(dash == std::string::npos ? s : s.substr(0, dash));
  int hi = dash == std::string::npos ? lo : num(s.substr(dash + 1));
  if (lo < 0 || hi < 0) return Status::invalid(what + "expected FIRST-LAST, e.g. 30000-32767");
  if (lo < 1 || hi > 65535) return Status::invalid(what + "ports must be within 1-65535");
  if (lo > hi) return Status::invalid(what + "the first port is greater than the last");
  return PortRange{lo, hi - lo + 1};
}

uint64_t ip_band_offset(uint64_t cidr_size) {
  // kube-apiserver's ipallocator calculateRangeOffset: min(max(16, size/16), 256).
  if (cidr_size <= 16) return 0;
  return std::min<uint64_t>(std::max<uint64_t>(16, cidr_size / 16), 256);
}

uint64_t port_band_offset(uint64_t range_size) {
  // portallocator calculateRangeOffset: min(max(16, size/32), 128).
  if (range_size <= 16) return 0;
  return std::min<uint64_t>(std::max<uint64_t>(16, range_size / 32), 128);
}

// ---- bitmap.

BandedBitmap::BandedBitmap(uint64_t size, uint64_t offset)
    : used_(size, false), offset_(std::min(offset, size)) {}

bool BandedBitmap::set(uint64_t i) {
  if (used_[i]) return false;
  used_[i] = true;
  ++count_;
  return true;
}

void BandedBitmap::clear(uint64_t i) {
  if (!used_[i]) return;
  used_[i] = false;
  --count_;
}

std::optional<uint64_t> BandedBitmap::pick_free(std::mt19937_64& rng) const {
  // A random start in each band, scanning forward with wrap-around inside the band.
  auto scan = [&](uint64_t lo, uint64_t hi) -> std::optional<uint64_t> {
    if (hi <= lo) return std::nullopt;
    uint64_t n = hi - lo;
    uint64_t start = rng() % n;
    for (uint64_t k = 0; k < n; ++k) {
      uint64_t i = lo + (start + k) % n;
      if (!used_[i]) return i;
    }
    return std::nullopt;
  };
  if (auto i = scan(offset_, used_.size())) return i;
  return scan(0, offset_);
}

// ---- Service helpers on JSON.

namespace {

std::string str_of(const json& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

int int_of(const json& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_number_integer() ? it->get<int>() : 0;
}

const json& spec_of(const json& svc) {
  static const json empty = json::object();
  auto it = svc.find("spec");
  return it != svc.end() && it->is_object() ? *it : empty;
}

json& spec_mut(json& svc) {
  json& s = svc["spec"];
  if (!s.is_object()) s = json::object();
  return s;
}

std::string type_of(const json& svc) {
  std::string t = str_of(spec_of(svc), "type");
  return t.empty() ? "ClusterIP" : t;
}

bool needs_cluster_ip(const json& svc) { return type_of(svc) != "ExternalName"; }
bool needs_node_port(const json& svc) {
  std::string t = type_of(svc);
  return t == "NodePort" || t == "LoadBalancer";
}
bool should_allocate_node_ports(const json& svc) {
  std::string t = type_of(svc);
  if (t == "NodePort") return true;
  if (t != "LoadBalancer") return false;
  auto it = spec_of(svc).find("allocateLoadBalancerNodePorts");
  return it == spec_of(svc).end() || !it->is_boolean() || it->get<bool>();
}
bool needs_hc_node_port(const json& svc) {
  return type_of(svc) == "LoadBalancer" && str_of(spec_of(svc), "externalTrafficPolicy") == "Local";
}

const json& ports_of(const json& svc) {
  static const json empty = json::array();
  auto it = spec_of(svc).find("ports");
  return it != spec_of(svc).end() && it->is_array() ? *it : empty;
}

// The ClusterIP the allocator holds for a stored Service ("" for none).
std::string held_ip(const json& svc) {
  if (!needs_cluster_ip(svc)) return "";
  std::string ip = str_of(spec_of(svc), "clusterIP");
  return ip == "None" ? "" : ip;
}

// The node ports (nodePorts and healthCheckNodePort) the allocator holds for a Service.
std::set<int> held_ports(const json& svc) {
  std::set<int> out;
  if (needs_node_port(svc))
    for (const auto& p : ports_of(svc))
      if (p.is_object() && int_of(p, "nodePort") > 0) out.insert(int_of(p, "nodePort"));
  if (needs_hc_node_port(svc) && int_of(spec_of(svc), "healthCheckNodePort") > 0)
    out.insert(int_of(spec_of(svc), "healthCheckNodePort"));
  return out;
}

std::string name_of(const json& svc) {
  auto m = svc.find("metadata");
  return m != svc.end() && m->is_object() ? str_of(*m, "name") : "";
}

// Go's %#v of a []string: []string{"a", "b"}.
std::string go_string_slice(const json& arr) {
  std::string out = "[]string{";
  bool first = true;
  if (arr.is_array())
    for (const auto& v : arr) {
      out += (first ? "" : ", ") +
             (v.is_string() ? proto::quote_value(v.get<std::string>()) : v.dump());
      first = false;
    }
  return out + "}";
}

ApiError invalid_field(const proto::ResourceType& rt, const json& svc, const std::string& field,
                       const std::string& value, const std::string& detail) {
  return errors::invalid(rt, name_of(svc), {{proto::ErrorType::kInvalid, field, detail, value}});
}

}  // namespace

// ---- ServiceAllocator.

ServiceAllocator::ServiceAllocator(const Ipv4Cidr& cidr, const PortRange& ports, uint64_t seed)
    : cidr_(cidr),
      ports_(ports),
      // Network and broadcast addresses are never handed out: index 0 = network + 1.
      ip_bits_(cidr.size() - 2, ip_band_offset(cidr.size())),
      port_bits_(uint64_t(ports.size), port_band_offset(uint64_t(ports.size))),
      rng_(seed) {}

std::optional<uint64_t> ServiceAllocator::ip_index(const std::string& ip) const {
  auto v = parse_ipv4(ip);
  const uint32_t first = cidr_.network + 1;
  if (!v || *v < first || uint64_t(*v - first) >= ip_bits_.size()) return std::nullopt;
  return *v - first;
}

std::optional<uint64_t> ServiceAllocator::port_index(int port) const {
  if (port < ports_.base || port >= ports_.base + ports_.size) return std::nullopt;
  return uint64_t(port - ports_.base);
}

std::string ServiceAllocator::take_ip(const std::string& ip, bool dry_run,
                                      std::vector<std::string>* taken) {
  auto i = ip_index(ip);
  if (!i) return "provided IP is not in the valid range. The range of valid IPs is " + cidr_.str();
  if (ip_bits_.has(*i)) return "provided IP is already allocated";
  if (dry_run) {
    if (std::find(taken->begin(), taken->end(), ip) != taken->end())
      return "provided IP is already allocated";
  } else {
    ip_bits_.set(*i);
  }
  taken->push_back(ip);
  return "";
}

std::optional<std::string> ServiceAllocator::next_ip(bool dry_run,
                                                     std::vector<std::string>* taken) {
  for (int tries = 0; tries < 64; ++tries) {
    auto i = ip_bits_.pick_free(rng_);
    if (!i) return std::nullopt;
    std::string ip = ipv4_string(cidr_.network + 1 + uint32_t(*i));
    if (take_ip(ip, dry_run, taken).empty()) return ip;
  }
  return std::nullopt;
}

std::string ServiceAllocator::take_port(int port, bool dry_run, std::vector<int>* taken) {
  auto i = port_index(port);
  if (!i)
    return "provided port is not in the valid range. The range of valid ports is " + ports_.str();
  if (port_bits_.has(*i)) return "provided port is already allocated";
  if (dry_run) {
    if (std::find(taken->begin(), taken->end(), port) != taken->end())
      return "provided port is already allocated";
  } else {
    port_bits_.set(*i);
  }
  taken->push_back(port);
  return "";
}

std::optional<int> ServiceAllocator::next_port(bool dry_run, std::vector<int>* taken) {
  for (int tries = 0; tries < 64; ++tries) {
    auto i = port_bits_.pick_free(rng_);
    if (!i) return std::nullopt;
    int port = ports_.base + int(*i);
    if (take_port(port, dry_run, taken).empty()) return port;
  }
  return std::nullopt;
}

void ServiceAllocator::free_ip_locked(const std::string& ip) {
  if (auto i = ip_index(ip)) ip_bits_.clear(*i);
}

void ServiceAllocator::free_port_locked(int port) {
  if (auto i = port_index(port)) port_bits_.clear(*i);
}

std::optional<ApiError> ServiceAllocator::alloc_cluster_ips(const proto::ResourceType& rt,
                                                            json& svc, bool dry_run,
                                                            AllocTxn& txn) {
  if (!needs_cluster_ip(svc)) return std::nullopt;
  json& spec = spec_mut(svc);
  std::string cip = str_of(spec, "clusterIP");
  json cips = spec.value("clusterIPs", json::array());
  if (!cips.is_array()) cips = json::array();
  if (cips.empty() && !cip.empty()) cips.push_back(cip);
  if (cip.empty() && !cips.empty() && cips[0].is_string()) cip = cips[0].get<std::string>();
  const bool headless = cip == "None";
  const bool selectorless =
      !spec.contains("selector") || !spec["selector"].is_object() || spec["selector"].empty();
  if (!spec.contains("ipFamilyPolicy") || !spec["ipFamilyPolicy"].is_string())
    spec["ipFamilyPolicy"] = headless && selectorless ? "RequireDualStack" : "SingleStack";
  const std::string policy = spec["ipFamilyPolicy"].get<std::string>();
  json families = spec.value("ipFamilies", json::array());
  if (!families.is_array()) families = json::array();

  proto::FieldErrors errs;
  for (size_t i = 0; i < cips.size(); ++i)
    if (cips[i].is_string() && cips[i].get<std::string>().find(':') != std::string::npos)
      errs.push_back({proto::ErrorType::kInvalid, "spec.clusterIPs[" + std::to_string(i) + "]",
                      "IPv6 is not configured on this cluster", go_string_slice(cips)});
  if (policy == "SingleStack" && cips.size() > 1)
    errs.push_back({proto::ErrorType::kInvalid, "spec.ipFamilyPolicy",
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs "
                    "are specified",
                    proto::quote_value(policy)});
  if (!headless) {
    for (size_t i = 0; i < families.size(); ++i)
      if (families[i] != "IPv4")
        errs.push_back({proto::ErrorType::kInvalid, "spec.ipFamilies[" + std::to_string(i) + "]",
                        "not configured on this cluster", families[i].dump()});
    if (policy == "RequireDualStack")
      errs.push_back({proto::ErrorType::kInvalid, "spec.ipFamilyPolicy",
                      "this cluster is not configured for dual-stack services",
                      proto::quote_value(policy)});
  }
  if (!errs.empty()) return errors::invalid(rt, name_of(svc), errs);

  if (headless) {
    // Headless Services get no address; selectorless ones default to both families as in
    // Kubernetes (they only list endpoints).
    if (families.empty()) families.push_back("IPv4");
    if (policy != "SingleStack" && families.size() < 2) families.push_back("IPv6");
    spec["ipFamilies"] = families;
    spec["clusterIP"] = "None";
    spec["clusterIPs"] = json::array({"None"});
    return std::nullopt;
  }
  if (families.empty()) families.push_back("IPv4");
  spec["ipFamilies"] = families;
  std::string ip;
  if (cip.empty()) {
    auto next = next_ip(dry_run, &txn.ips);
    if (!next) return errors::internal("failed to allocate a serviceIP: range is full");
    ip = *next;
  } else {
    std::string err = take_ip(cip, dry_run, &txn.ips);
    if (!err.empty())
      return invalid_field(rt, svc, "spec.clusterIPs", go_string_slice(cips),
                           "failed to allocate IP " + cip + ": " + err);
    ip = cip;
  }
  spec["clusterIP"] = ip;
  spec["clusterIPs"] = json::array({ip});
  return std::nullopt;
}

std::optional<ApiError> ServiceAllocator::alloc_node_ports(const proto::ResourceType& rt, json& svc,
                                                           const json* old, bool dry_run,
                                                           AllocTxn& txn) {
  // Ports `old` holds may be kept by the new object without allocating them again (once).
  std::set<int> keepable = old ? held_ports(*old) : std::set<int>{};
  std::set<int> claimed;  // this object's ports so far
  auto claim = [&](int port, std::string* err) {
    if (keepable.count(port) && !claimed.count(port)) {
      claimed.insert(port);
      return true;
    }
    if (claimed.count(port)) {
      *err = "provided port is already allocated";
      return false;
    }
    *err = take_port(port, dry_run, &txn.ports);
    if (!err->empty()) return false;
    claimed.insert(port);
    return true;
  };
  json& spec = spec_mut(svc);
  if (needs_node_port(svc) && spec.contains("ports") && spec["ports"].is_array()) {
    json& ports = spec["ports"];
    const bool allocate = should_allocate_node_ports(svc);
    std::map<int, int> by_port;  // service port -> its node port (TCP and UDP 53 share one)
    for (size_t i = 0; i < ports.size(); ++i) {
      json& p = ports[i];
      if (!p.is_object()) continue;
      int np = int_of(p, "nodePort");
      int sp = int_of(p, "port");
      if (np == 0 && !allocate) continue;
      const std::string field = "spec.ports[" + std::to_string(i) + "].nodePort";
      auto known = by_port.find(sp);
      if (known != by_port.end()) {
        if (np == 0 || np == known->second) {
          p["nodePort"] = known->second;
          continue;
        }
        std::string err;
        if (!claim(np, &err)) return invalid_field(rt, svc, field, std::to_string(np), err);
        continue;
      }
      int requested = 0;
      for (const auto& q : ports)
        if (q.is_object() && int_of(q, "port") == sp && int_of(q, "nodePort") != 0) {
          requested = int_of(q, "nodePort");
          break;
        }
      if (requested != 0) {
        std::string err;
        if (!claim(requested, &err))
          return invalid_field(rt, svc, field, std::to_string(requested), err);
        np = requested;
      } else {
        auto next = next_port(dry_run, &txn.ports);
        if (!next) return errors::internal("failed to allocate a nodePort: range is full");
        claimed.insert(*next);
        np = *next;
      }
      p["nodePort"] = np;
      by_port[sp] = np;
    }
  }
  if (needs_hc_node_port(svc)) {
    int hc = int_of(spec, "healthCheckNodePort");
    if (hc != 0) {
      std::string err;
      if (!claim(hc, &err))
        return invalid_field(
            rt, svc, "spec.healthCheckNodePort", std::to_string(hc),
            "failed to allocate requested HealthCheck NodePort " + std::to_string(hc) + ": " + err);
    } else {
      auto next = next_port(dry_run, &txn.ports);
      if (!next)
        return errors::internal("failed to allocate a HealthCheck NodePort: range is full");
      spec["healthCheckNodePort"] = *next;
    }
  }
  return std::nullopt;
}

ApiResult<AllocTxn> ServiceAllocator::allocate_create(const proto::ResourceType& rt, json& svc,
                                                      bool dry_run) {
  std::lock_guard<std::mutex> lock(mu_);
  AllocTxn txn;
  txn.dry_run = dry_run;
  auto err = alloc_cluster_ips(rt, svc, dry_run, txn);
  if (!err) err = alloc_node_ports(rt, svc, nullptr, dry_run, txn);
  if (err) {
    undo_locked(txn);
    return *err;
  }
  return txn;
}

void ServiceAllocator::undo_locked(const AllocTxn& txn) {
  if (txn.dry_run) return;
  for (const auto& ip : txn.ips) free_ip_locked(ip);
  for (int p : txn.ports) free_port_locked(p);
}

void ServiceAllocator::prepare_update(json& svc, const json& old) {
  json& spec = spec_mut(svc);
  const json& ospec = spec_of(old);
  // dropTypeDependentFields: values the old type needed and the new type does not, unchanged
  // by the user, are cleared (so `type: ClusterIP` over a NodePort Service just works).
  if (needs_cluster_ip(old) && !needs_cluster_ip(svc) &&
      spec.value("clusterIPs", json()) == ospec.value("clusterIPs", json()) &&
      str_of(spec, "clusterIP") == str_of(ospec, "clusterIP")) {
    for (const char* k : {"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"}) spec.erase(k);
  }
  if (needs_node_port(old) && !needs_node_port(svc) && spec.contains("ports") &&
      spec["ports"].is_array()) {
    std::set<int> old_np;
    for (const auto& p : ports_of(old))
      if (p.is_object() && int_of(p, "nodePort") > 0) old_np.insert(int_of(p, "nodePort"));
    for (auto& p : spec["ports"])
      if (p.is_object() && old_np.count(int_of(p, "nodePort"))) p.erase("nodePort");
  }
  if (needs_hc_node_port(old) && !needs_hc_node_port(svc) &&
      int_of(spec, "healthCheckNodePort") == int_of(ospec, "healthCheckNodePort"))
    spec.erase("healthCheckNodePort");
  if (needs_node_port(old) && !needs_node_port(svc) &&
      str_of(spec, "externalTrafficPolicy") == str_of(ospec, "externalTrafficPolicy"))
    spec.erase("externalTrafficPolicy");
  if (type_of(old) == "LoadBalancer" && type_of(svc) != "LoadBalancer") {
    for (const char* k : {"allocateLoadBalancerNodePorts", "loadBalancerClass"})
      if (spec.value(k, json()) == ospec.value(k, json())) spec.erase(k);
  }

  // patchAllocatedValues: a manifest without the allocated values (kubectl replace / apply)
  // keeps the old ones.
  if (needs_cluster_ip(old) && needs_cluster_ip(svc)) {
    if (str_of(spec, "clusterIP").empty() && !str_of(ospec, "clusterIP").empty())
      spec["clusterIP"] = ospec["clusterIP"];
    auto cips = spec.find("clusterIPs");
    if ((cips == spec.end() || !cips->is_array() || cips->empty()) &&
        ospec.contains("clusterIPs") && ospec["clusterIPs"].is_array() &&
        !ospec["clusterIPs"].empty())
      spec["clusterIPs"] = ospec["clusterIPs"];
    if (!spec.contains("ipFamilyPolicy") && ospec.contains("ipFamilyPolicy"))
      spec["ipFamilyPolicy"] = ospec["ipFamilyPolicy"];
    if ((!spec.contains("ipFamilies") || spec["ipFamilies"].empty()) &&
        ospec.contains("ipFamilies") && spec.value("clusterIPs", json()) == ospec["clusterIPs"])
      spec["ipFamilies"] = ospec["ipFamilies"];
  }
  if (needs_node_port(old) && needs_node_port(svc) && spec.contains("ports") &&
      spec["ports"].is_array()) {
    std::set<int> old_used, new_used;
    std::map<std::string, int> by_name;
    for (const auto& p : ports_of(old))
      if (p.is_object()) {
        old_used.insert(int_of(p, "nodePort"));
        by_name[str_of(p, "name")] = int_of(p, "nodePort");
      }
    for (const auto& p : spec["ports"])
      if (p.is_object()) new_used.insert(int_of(p, "nodePort"));
    for (auto& p : spec["ports"]) {
      if (!p.is_object() || int_of(p, "nodePort") != 0) continue;
      auto it = by_name.find(str_of(p, "name"));
      if (it == by_name.end() || it->second == 0) continue;
      // Not when the user moved that value to another port of the new object.
      if (old_used.count(it->second) && new_used.count(it->second)) continue;
      p["nodePort"] = it->second;
      new_used.insert(it->second);
    }
  }
  if (needs_hc_node_port(old) && needs_hc_node_port(svc) &&
      int_of(spec, "healthCheckNodePort") == 0 && int_of(ospec, "healthCheckNodePort") != 0)
    spec["healthCheckNodePort"] = ospec["healthCheckNodePort"];
}

ApiResult<AllocTxn> ServiceAllocator::allocate_update(const proto::ResourceType& rt, json& svc,
                                                      const json& old, bool dry_run) {
  std::lock_guard<std::mutex> lock(mu_);
  AllocTxn txn;
  txn.dry_run = dry_run;
  const std::string old_ip = held_ip(old);
  const std::string want_ip = str_of(spec_of(svc), "clusterIP");
  std::optional<ApiError> err;
  if (needs_cluster_ip(svc) && !(!old_ip.empty() && want_ip == old_ip))
    err = alloc_cluster_ips(rt, svc, dry_run, txn);
  if (!err) err = alloc_node_ports(rt, svc, &old, dry_run, txn);
  if (err) {
    undo_locked(txn);
    return *err;
  }
  AllocTxn& out = txn;
  const std::string new_ip = held_ip(svc);
  if (!old_ip.empty() && old_ip != new_ip) out.release_ips.push_back(old_ip);
  std::set<int> now = held_ports(svc);
  for (int p : held_ports(old))
    if (!now.count(p)) out.release_ports.push_back(p);
  return out;
}

void ServiceAllocator::revert(const AllocTxn& txn) {
  std::lock_guard<std::mutex> lock(mu_);
  undo_locked(txn);
}

void ServiceAllocator::commit(const AllocTxn& txn) {
  if (txn.dry_run) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& ip : txn.release_ips) free_ip_locked(ip);
  for (int p : txn.release_ports) free_port_locked(p);
}

void ServiceAllocator::release_service(const json& svc) {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::string ip = held_ip(svc); !ip.empty()) free_ip_locked(ip);
  for (int p : held_ports(svc)) free_port_locked(p);
}

std::string ServiceAllocator::held_ip_of(const json& svc) { return held_ip(svc); }
std::set<int> ServiceAllocator::held_ports_of(const json& svc) { return held_ports(svc); }

void ServiceAllocator::hold(const std::vector<std::string>& ips, const std::vector<int>& ports) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& ip : ips)
    if (auto i = ip_index(ip)) ip_bits_.set(*i);
  for (int p : ports)
    if (auto i = port_index(p)) port_bits_.set(*i);
}

void ServiceAllocator::free(const std::vector<std::string>& ips, const std::vector<int>& ports) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& ip : ips) free_ip_locked(ip);
  for (int p : ports) free_port_locked(p);
}

void ServiceAllocator::follow(const json* old, const json* now) {
  std::string now_ip = now ? held_ip(*now) : "";
  std::set<int> now_ports = now ? held_ports(*now) : std::set<int>{};
  std::lock_guard<std::mutex> lock(mu_);
  if (old) {
    if (std::string ip = held_ip(*old); !ip.empty() && ip != now_ip) free_ip_locked(ip);
    for (int p : held_ports(*old))
      if (!now_ports.count(p)) free_port_locked(p);
  }
  if (auto i = now_ip.empty() ? std::nullopt : ip_index(now_ip)) ip_bits_.set(*i);
  for (int p : now_ports)
    if (auto i = port_index(p)) port_bits_.set(*i);
}

std::vector<std::string> ServiceAllocator::rebuild(const std::vector<json>& services) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> problems;
  for (const auto& svc : services) {
    std::string who = "service ";
    if (auto m = svc.find("metadata"); m != svc.end() && m->is_object())
      who += str_of(*m, "namespace") + "/" + str_of(*m, "name");
    std::vector<std::string> ips;
    std::vector<int> ports;
    if (std::string ip = held_ip(svc); !ip.empty()) {
      std::string err = take_ip(ip, false, &ips);
      if (!err.empty()) problems.push_back(who + ": clusterIP " + ip + ": " + err);
    }
    for (int p : held_ports(svc)) {
      std::string err = take_port(p, false, &ports);
      if (!err.empty()) problems.push_back(who + ": node port " + std::to_string(p) + ": " + err);
    }
  }
  return problems;
}

bool ServiceAllocator::ip_allocated(const std::string& ip) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto i = ip_index(ip);
  return i && ip_bits_.has(*i);
}

bool ServiceAllocator::port_allocated(int port) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto i = port_index(port);
  return i && port_bits_.has(*i);
}

uint64_t ServiceAllocator::ips_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ip_bits_.count();
}

uint64_t ServiceAllocator::ports_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return port_bits_.count();
}

}  // namespace skiff::apiserver
