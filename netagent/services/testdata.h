// Test inputs shared by the unit tests (on the fake) and the kernel tests (read back from the
// kernel): reference Services + Endpoints as API JSON, built into ServiceMaps, with the table
// each must produce in `nft list table ip skiff` syntax. Header-only; tests only.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "netagent/nft/fake.h"
#include "netagent/services/proxier.h"

namespace skiff::services::testdata {

inline Endpoint ep(const std::string& ip, uint16_t port, bool local) {
  Endpoint e;
  parse_ipv4(ip, &e.ip);
  e.port = port;
  e.local = local;
  return e;
}

struct EpSpec {
  std::string ip;
  uint16_t port;
  bool local;
};

inline ServicePort port(const std::string& ns, const std::string& name,
                        const std::string& port_name, Protocol proto, const std::string& cluster_ip,
                        uint16_t port, const std::vector<EpSpec>& eps) {
  ServicePort sp;
  sp.ns = ns;
  sp.name = name;
  sp.port_name = port_name;
  sp.protocol = proto;
  parse_ipv4(cluster_ip, &sp.cluster_ip);
  sp.port = port;
  for (const EpSpec& e : eps) sp.endpoints.push_back(ep(e.ip, e.port, e.local));
  std::sort(sp.endpoints.begin(), sp.endpoints.end());
  return sp;
}

// A Service and its Endpoints (one subset, port named `port_name`) as the API serves them.
struct ApiObjects {
  std::vector<nlohmann::json> services, endpoints;

  void add(const std::string& name, nlohmann::json spec,
           std::vector<std::pair<std::string, std::string>> addresses /* ip, node */,
           const std::string& port_name, int target_port, const std::string& proto = "TCP",
           nlohmann::json status = nlohmann::json::object()) {
    using nlohmann::json;
    services.push_back(json{{"metadata", {{"namespace", "default"}, {"name", name}}},
                            {"spec", std::move(spec)},
                            {"status", std::move(status)}});
    json addrs = json::array();
    for (auto& [ip, node] : addresses) addrs.push_back(json{{"ip", ip}, {"nodeName", node}});
    json subsets = json::array();
    if (!addrs.empty()) {
      subsets.push_back(
          json{{"addresses", addrs},
               {"ports", {{{"name", port_name}, {"port", target_port}, {"protocol", proto}}}}});
    }
    endpoints.push_back(
        json{{"metadata", {{"namespace", "default"}, {"name", name}}}, {"subsets", subsets}});
  }
  ServiceMap map() const { return build_service_map(services, endpoints, {"node1"}, nullptr); }
};

struct Golden {
  std::string name;
  ServiceMap map;
  std::string listing;  // `nft list table ip skiff` (compared after nft::normalize_listing)
};

std::vector<Golden> goldens();  // defined in golden_test.cc

// A listing made comparable regardless of creation order: each top-level block (map, set,
// chain) normalised (nft::normalize_listing: whitespace, element order), the blocks sorted.
// Chain and set order in `nft list` is creation order, which differs between a table built
// incrementally and one built at once; nothing in the data path depends on it.
std::string canonical(const std::string& listing);

}  // namespace skiff::services::testdata
