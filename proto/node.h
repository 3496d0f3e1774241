// core/v1 Node (cluster-scoped): a machine running the kubelet. Validation and Table in
// node.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/quantity.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct Taint {
  std::string key, value, effect;
  std::optional<Time> time_added;
  template <class V>
  void visit(V& v) {
    v("key", key, kAlways);
    v("value", value);
    v("effect", effect, kAlways);
    v("timeAdded", time_added);
  }
};

struct NodeSpec {
  std::string pod_cidr;
  std::vector<std::string> pod_cidrs;
  std::string provider_id;
  bool unschedulable = false;
  std::vector<Taint> taints;
  template <class V>
  void visit(V& v) {
    v("podCIDR", pod_cidr);
    v("podCIDRs", pod_cidrs, kMergeSet);
    v("providerID", provider_id);
    v("unschedulable", unschedulable);
    v("taints", taints);
  }
};

struct NodeCondition {
  std::string type, status;
  Time last_heartbeat_time, last_transition_time;
  std::string reason, message;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("status", status, kAlways);
    v("lastHeartbeatTime", last_heartbeat_time);
    v("lastTransitionTime", last_transition_time);
    v("reason", reason);
    v("message", message);
  }
};

struct NodeAddress {
  std::string type, address;
  template <class V>
  void visit(V& v) {
    v("type", type, kAlways);
    v("address", address, kAlways);
  }
};

struct DaemonEndpoint {
  int32_t port = 0;
  template <class V>
  void visit(V& v) {
    v("Port", port, kAlways);
  }
};

struct NodeDaemonEndpoints {
  DaemonEndpoint kubelet_endpoint;
  template <class V>
  void visit(V& v) {
    v("kubeletEndpoint", kubelet_endpoint);
  }
};

struct NodeSystemInfo {
  std::string machine_id, system_uuid, boot_id, kernel_version, os_image, container_runtime_version,
      kubelet_version, kube_proxy_version, operating_system, architecture;
  template <class V>
  void visit(V& v) {
    v("machineID", machine_id, kAlways);
    v("systemUUID", system_uuid, kAlways);
    v("bootID", boot_id, kAlways);
    v("kernelVersion", kernel_version, kAlways);
    v("osImage", os_image, kAlways);
    v("containerRuntimeVersion", container_runtime_version, kAlways);
    v("kubeletVersion", kubelet_version, kAlways);
    v("kubeProxyVersion", kube_proxy_version, kAlways);
    v("operatingSystem", operating_system, kAlways);
    v("architecture", architecture, kAlways);
  }
};

struct ContainerImage {
  std::vector<std::string> names;
  int64_t size_bytes = 0;
  template <class V>
  void visit(V& v) {
    v("names", names);
    v("sizeBytes", size_bytes);
  }
};

struct NodeStatus {
  std::map<std::string, Quantity> capacity, allocatable;
  std::string phase;
  std::vector<NodeCondition> conditions;
  std::vector<NodeAddress> addresses;
  NodeDaemonEndpoints daemon_endpoints;
  NodeSystemInfo node_info;
  std::vector<ContainerImage> images;
  template <class V>
  void visit(V& v) {
    v("capacity", capacity);
    v("allocatable", allocatable);
    v("phase", phase);
    v("conditions", conditions, merge_by("type"));
    v("addresses", addresses, merge_by("type"));
    v("daemonEndpoints", daemon_endpoints);
    v("nodeInfo", node_info);
    v("images", images);
  }
};

struct Node {
  TypeMeta type_meta;
  ObjectMeta metadata;
  NodeSpec spec;
  NodeStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

ResourceType node_resource();

}  // namespace skiff::proto
