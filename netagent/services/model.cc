// The model: Services + Endpoints (core/v1 JSON) -> ServicePorts. Reads the JSON directly
// (not through proto's decoder) so that one bad field skips one port or one address, never the
// whole object, and nothing throws.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/json_path.h"
#include "netagent/services/proxier.h"

namespace skiff::services {
namespace {

using json = nlohmann::json;

const json* field(const json& j, const char* name) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integer field in [lo, hi]; `def` when absent; false when present but not such an integer.
bool int_field(const json& j, const char* name, int64_t lo, int64_t hi, int64_t def, int64_t* out) {
  const json* f = field(j, name);
  if (!f) {
    *out = def;
    return true;
  }
  if (!f->is_number_integer()) return false;
  int64_t v = f->get<int64_t>();
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool parse_protocol(std::string_view s, Protocol* out) {
  if (s.empty() || s == "TCP")
    *out = Protocol::kTcp;
  else if (s == "UDP")
    *out = Protocol::kUdp;
  else if (s == "SCTP")
    *out = Protocol::kSctp;
  else
    return false;
  return true;
}

void skip(std::vector<Skipped>* skipped, std::string object, std::string reason) {
  if (skipped) skipped->push_back({std::move(object), std::move(reason)});
}

void sort_unique(std::vector<Ipv4>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

// IPv4 addresses from a JSON list of strings (or of objects holding `key`).
std::vector<Ipv4> address_list(const json* list, const char* key, const std::string& object,
                               const char* what, std::vector<Skipped>* skipped) {
  std::vector<Ipv4> out;
  if (!list) return out;
  if (!list->is_array()) {
    skip(skipped, object, std::string(what) + " is not a list");
    return out;
  }
  for (const json& item : *list) {
    std::string text;
    if (key) {
      text = str_at(item, {key});
      if (text.empty()) continue;  // e.g. a hostname-only ingress
    } else if (item.is_string()) {
      text = item.get<std::string>();
    }
    Ipv4 a;
    if (!parse_ipv4(text, &a)) {
      skip(skipped, object,
           std::string(what) + " entry " + item.dump().substr(0, 64) + " is not an IPv4 address");
      continue;
    }
    out.push_back(a);
  }
  sort_unique(&out);
  return out;
}

struct EndpointPortView {
  std::string name;
  Protocol protocol;
  uint16_t port;
};

// The ready endpoints of the Endpoints object for a port named `port_name` with `protocol`.
std::vector<Endpoint> endpoints_for(const json& eps, const std::string& port_name,
                                    Protocol protocol, const std::string& object,
                                    const ModelOptions& opts, std::vector<Skipped>* skipped) {
  std::vector<Endpoint> out;
  const json* subsets = field(eps, "subsets");
  if (!subsets || !subsets->is_array()) return out;
  for (const json& subset : *subsets) {
    const json* ports = field(subset, "ports");
    const json* addresses = field(subset, "addresses");
    if (!ports || !ports->is_array() || !addresses || !addresses->is_array()) continue;
    int64_t port = -1;
    for (const json& p : *ports) {
      if (str_at(p, {"name"}) != port_name) continue;
      Protocol proto;
      if (!parse_protocol(str_at(p, {"protocol"}), &proto) || proto != protocol) continue;
      int64_t v;
      if (!int_field(p, "port", 1, 65535, -1, &v) || v < 0) {
        skip(skipped, object, "Endpoints port \"" + port_name + "\" has no valid port number");
        continue;
      }
      port = v;
      break;
    }
    if (port < 0) continue;
    for (const json& a : *addresses) {
      Ipv4 ip;
      std::string text = str_at(a, {"ip"});
      if (!parse_ipv4(text, &ip)) {
        skip(skipped, object, "Endpoints address \"" + text.substr(0, 64) + "\" is not IPv4");
        continue;
      }
      bool local = !opts.node_name.empty() && str_at(a, {"nodeName"}) == opts.node_name;
      out.push_back({ip, static_cast<uint16_t>(port), local});
    }
  }
  std::sort(out.begin(), out.end());
  // The same ip:port twice (two subsets): keep one, local if either says so.
  std::vector<Endpoint> uniq;
  for (const Endpoint& e : out) {
    if (!uniq.empty() && uniq.back().ip == e.ip && uniq.back().port == e.port) {
      uniq.back().local = uniq.back().local || e.local;
      continue;
    }
    uniq.push_back(e);
  }
  return uniq;
}

}  // namespace

const char* protocol_name(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kSctp:
      return "SCTP";
  }
  return "?";
}

std::string ipv4_to_string(Ipv4 a) {
  char buf[16];
  int n =
      snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  return std::string(buf, n);
}

bool parse_ipv4(std::string_view text, Ipv4* out) {
  uint32_t addr = 0;
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    if (i >= text.size() || text[i] < '0' || text[i] > '9') return false;
    uint32_t v = 0;
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i] - '0');
      if (++i - start > 3) return false;
    }
    if (v > 255 || (i - start > 1 && text[start] == '0')) return false;  // no octal look-alikes
    addr = (addr << 8) | v;
    ++parts;
    if (parts < 4) {
      if (i >= text.size() || text[i] != '.') return false;
      ++i;
    }
  }
  if (i != text.size()) return false;
  *out = addr;
  return true;
}

std::string ServicePort::key() const {
  std::string k;
  k.reserve(ns.size() + name.size() + port_name.size() + 8);
  k.append(ns).append("/").append(name).append(":").append(port_name).append("/").append(
      protocol_name(protocol));
  return k;
}

std::vector<ServicePort> service_ports(const json& service, const json* endpoints,
                                       const ModelOptions& opts, std::vector<Skipped>* skipped) {
  std::vector<ServicePort> out;
  std::string ns = str_at(service, {"metadata", "namespace"});
  std::string name = str_at(service, {"metadata", "name"});
  if (name.empty()) {
    skip(skipped, "Service " + service.dump().substr(0, 64), "no metadata.name");
    return out;
  }
  if (ns.empty()) ns = "default";
  std::string object = ns + "/" + name;
  const json* spec = field(service, "spec");
  if (!spec || !spec->is_object()) {
    skip(skipped, object, "no spec");
    return out;
  }
  std::string type = str_at(*spec, {"type"});
  if (type == "ExternalName") return out;
  std::string cluster_ip_text = str_at(*spec, {"clusterIP"});
  if (cluster_ip_text.empty() || cluster_ip_text == "None") return out;  // headless
  Ipv4 cluster_ip;
  if (!parse_ipv4(cluster_ip_text, &cluster_ip)) {
    skip(skipped, object,
         "spec.clusterIP \"" + cluster_ip_text.substr(0, 64) + "\" is not an IPv4 address");
    return out;
  }
  if (endpoints) {
    if (str_at(*endpoints, {"metadata", "name"}) != name) {
      skip(skipped, object, "Endpoints given with another name; ignored");
      endpoints = nullptr;
    }
  }

  ServicePort base;
  base.ns = ns;
  base.name = name;
  base.cluster_ip = cluster_ip;
  base.external_ips =
      address_list(field(*spec, "externalIPs"), nullptr, object, "spec.externalIPs", skipped);
  if (type == "LoadBalancer") {
    const json* status = field(service, "status");
    const json* lb = status ? field(*status, "loadBalancer") : nullptr;
    base.load_balancer_ips = address_list(lb ? field(*lb, "ingress") : nullptr, "ip", object,
                                          "status.loadBalancer.ingress", skipped);
  }
  base.external_policy_local = str_at(*spec, {"externalTrafficPolicy"}) == "Local";
  base.internal_policy_local = str_at(*spec, {"internalTrafficPolicy"}) == "Local";
  if (str_at(*spec, {"sessionAffinity"}) == "ClientIP") {
    int64_t timeout = kDefaultAffinityTimeoutSeconds;
    const json* cfg = field(*spec, "sessionAffinityConfig");
    const json* cip = cfg ? field(*cfg, "clientIP") : nullptr;
    if (cip &&
        !int_field(*cip, "timeoutSeconds", 1, 86400, kDefaultAffinityTimeoutSeconds, &timeout)) {
      skip(skipped, object,
           "spec.sessionAffinityConfig.clientIP.timeoutSeconds is not 1..86400; using 10800");
      timeout = kDefaultAffinityTimeoutSeconds;
    }
    base.affinity_timeout_seconds = static_cast<uint32_t>(timeout);
  }

  const json* ports = field(*spec, "ports");
  if (!ports || !ports->is_array()) {
    skip(skipped, object, "spec.ports is missing or not a list");
    return out;
  }
  for (const json& p : *ports) {
    ServicePort sp = base;
    sp.port_name = str_at(p, {"name"});
    std::string port_object = object + ":" + sp.port_name;
    if (!parse_protocol(str_at(p, {"protocol"}), &sp.protocol)) {
      skip(skipped, port_object,
           "protocol \"" + str_at(p, {"protocol"}).substr(0, 16) + "\" is not TCP/UDP/SCTP");
      continue;
    }
    int64_t port, node_port;
    if (!int_field(p, "port", 1, 65535, -1, &port) || port < 0) {
      skip(skipped, port_object, "port is missing or not 1..65535");
      continue;
    }
    if (!int_field(p, "nodePort", 0, 65535, 0, &node_port)) {
      skip(skipped, port_object, "nodePort is not 0..65535; no node port");
      node_port = 0;
    }
    sp.port = static_cast<uint16_t>(port);
    sp.node_port = static_cast<uint16_t>(node_port);
    if (endpoints) {
      sp.endpoints =
          endpoints_for(*endpoints, sp.port_name, sp.protocol, port_object, opts, skipped);
    }
    out.push_back(std::move(sp));
  }
  return out;
}

ServiceMap build_service_map(const std::vector<json>& services, const std::vector<json>& endpoints,
                             const ModelOptions& opts, std::vector<Skipped>* skipped) {
  std::map<std::string, const json*, std::less<>> eps_by_key;
  for (const json& e : endpoints) {
    const json* meta = field(e, "metadata");
    if (!meta) continue;
    std::string ns = str_at(*meta, {"namespace"});
    if (ns.empty()) ns = "default";
    eps_by_key[ns + "/" + str_at(*meta, {"name"})] = &e;
  }
  ServiceMap map;
  for (const json& s : services) {
    std::string ns = str_at(s, {"metadata", "namespace"});
    if (ns.empty()) ns = "default";
    auto it = eps_by_key.find(ns + "/" + str_at(s, {"metadata", "name"}));
    for (ServicePort& sp :
         service_ports(s, it == eps_by_key.end() ? nullptr : it->second, opts, skipped)) {
      std::string key = sp.key();
      map.insert_or_assign(std::move(key), std::move(sp));
    }
  }
  return map;
}

bool update_service(ServiceMap* map, std::string_view ns, std::string_view name,
                    const json* service, const json* endpoints, const ModelOptions& opts,
                    std::vector<Skipped>* skipped, std::vector<std::string>* changed_keys) {
  std::vector<ServicePort> ports;
  if (service) ports = service_ports(*service, endpoints, opts, skipped);
  std::string prefix;
  prefix.append(ns).append("/").append(name).append(":");
  // The current entries of this Service: keys starting with "ns/name:".
  auto first = map->lower_bound(prefix);
  auto last = first;
  while (last != map->end() && last->first.compare(0, prefix.size(), prefix) == 0) ++last;
  bool changed = false;
  size_t current = static_cast<size_t>(std::distance(first, last));
  if (current != ports.size()) {
    changed = true;
  } else {
    for (const ServicePort& sp : ports) {
      auto it = map->find(sp.key());
      if (it == map->end() || !(it->second == sp)) {
        changed = true;
        break;
      }
    }
  }
  if (!changed) return false;
  if (changed_keys) {
    for (auto it = first; it != last; ++it) changed_keys->push_back(it->first);
  }
  map->erase(first, last);
  for (ServicePort& sp : ports) {
    if (sp.ns != ns || sp.name != name) continue;  // metadata disagrees with the key: ignore
    std::string key = sp.key();
    if (changed_keys) changed_keys->push_back(key);
    map->insert_or_assign(std::move(key), std::move(sp));
  }
  return true;
}

}  // namespace skiff::services
