// discovery.k8s.io/v1 EndpointSlice: a piece of a Service's endpoints (at most 1000 endpoints,
// one address type, one port list). skiff-controller-manager's endpointslice controller keeps
// them in step with the core/v1 Endpoints; kubectl >= 1.31 (`describe svc`) and kube-proxy-like
// consumers read them. Defaulting, validation (pkg/apis/discovery/validation) and the Table
// (kubectl's printEndpointSlice) in endpointslice.cc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

// Optional booleans: absent means "unknown" (consumers read an absent ready as ready).
struct EndpointConditions {
  std::optional<bool> ready, serving, terminating;
  template <class V>
  void visit(V& v) {
    v("ready", ready);
    v("serving", serving);
    v("terminating", terminating);
  }
};

struct ForZone {
  std::string name;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
  }
};

struct ForNode {
  std::string name;
  template <class V>
  void visit(V& v) {
    v("name", name, kAlways);
  }
};

struct EndpointHints {
  std::vector<ForZone> for_zones;
  std::vector<ForNode> for_nodes;
  template <class V>
  void visit(V& v) {
    v("forZones", for_zones);
    v("forNodes", for_nodes);
  }
};

// discoveryv1.Endpoint. Go's optional pointers are std::optional (written whenever set).
struct SliceEndpoint {
  std::vector<std::string> addresses;
  EndpointConditions conditions;
  std::optional<std::string> hostname;
  std::optional<ObjectReference> target_ref;
  std::map<std::string, std::string> deprecated_topology;
  std::optional<std::string> node_name;
  std::optional<std::string> zone;
  std::optional<EndpointHints> hints;
  template <class V>
  void visit(V& v) {
    v("addresses", addresses, kAlways);
    v("conditions", conditions);
    v("hostname", hostname);
    v("targetRef", target_ref);
    v("deprecatedTopology", deprecated_topology);
    v("nodeName", node_name);
    v("zone", zone);
    v("hints", hints);
  }
};

// discoveryv1.EndpointPort: every field optional (a nil port means "all ports"); defaulting
// sets name "" and protocol TCP.
struct SlicePort {
  std::optional<std::string> name;
  std::optional<std::string> protocol;
  std::optional<int32_t> port;
  std::optional<std::string> app_protocol;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("protocol", protocol);
    v("port", port);
    v("appProtocol", app_protocol);
  }
};

struct EndpointSlice {
  TypeMeta type_meta;
  ObjectMeta metadata;
  std::string address_type;  // IPv4 | IPv6 | FQDN; immutable
  std::vector<SliceEndpoint> endpoints;
  std::vector<SlicePort> ports;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("addressType", address_type, kAlways);
    v("endpoints", endpoints, kAlways);
    v("ports", ports, kAlways);
  }
};

// Labels Kubernetes puts on the slices of a Service (discoveryv1.LabelServiceName,
// LabelManagedBy) and the controller name of the EndpointSlice controller.
inline constexpr const char* kLabelServiceName = "kubernetes.io/service-name";
inline constexpr const char* kLabelManagedBy = "endpointslice.kubernetes.io/managed-by";
inline constexpr const char* kEndpointSliceControllerName = "endpointslice-controller.k8s.io";
// On an Endpoints: "true" = do not mirror it into EndpointSlices (the `kubernetes` Service's).
inline constexpr const char* kLabelSkipMirror = "endpointslice.kubernetes.io/skip-mirror";

// kubectl's PORTS cell: "80", "80,443", "80,443,8080 + 1 more...", "<unset>".
std::string format_slice_ports(const EndpointSlice& s);
// kubectl's ENDPOINTS cell: the first 3 addresses, "+ N more...", or "<unset>".
std::string format_slice_endpoints(const EndpointSlice& s);
ResourceType endpointslice_resource();

}  // namespace skiff::proto
