// core/v1 Endpoints: the addresses behind a Service, grouped in subsets that share ports.
// Validation and Table in endpoints.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct EndpointAddress {
  std::string ip;
  std::string hostname;
  std::optional<std::string> node_name;
  std::optional<ObjectReference> target_ref;
  template <class V>
  void visit(V& v) {
    v("ip", ip, kAlways);
    v("hostname", hostname);
    v("nodeName", node_name);
    v("targetRef", target_ref);
  }
};

struct EndpointPort {
  std::string name;
  int32_t port = 0;
  std::string protocol;
  std::optional<std::string> app_protocol;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("port", port, kAlways);
    v("protocol", protocol);
    v("appProtocol", app_protocol);
  }
};

struct EndpointSubset {
  std::vector<EndpointAddress> addresses, not_ready_addresses;
  std::vector<EndpointPort> ports;
  template <class V>
  void visit(V& v) {
    v("addresses", addresses);
    v("notReadyAddresses", not_ready_addresses);
    v("ports", ports);
  }
};

struct Endpoints {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::vector<EndpointSubset> subsets;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("subsets", subsets);
  }
};

// kubectl's ENDPOINTS cell: "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...".
std::string format_endpoints(const Endpoints& ep);
ResourceType endpoints_resource();

}  // namespace skiff::proto
