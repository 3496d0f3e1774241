// core/v1 Service: a stable virtual IP and ports in front of the pods its selector picks.
// Defaulting, validation, Table columns and field-selector fields live in service.cc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/intstr.h"
#include "proto/meta.h"

namespace skiff::proto {

struct ResourceType;

struct ServicePort {
  std::string name;
  std::string protocol;
  std::optional<std::string> app_protocol;
  int32_t port = 0;
  IntOrString target_port;
  int32_t node_port = 0;
  template <class V>
  void visit(V& v) {
    v("name", name);
    v("protocol", protocol);
    v("appProtocol", app_protocol);
    v("port", port, kAlways);
    v("targetPort", target_port);
    v("nodePort", node_port);
  }
};

struct ClientIPConfig {
  std::optional<int32_t> timeout_seconds;
  template <class V>
  void visit(V& v) {
    v("timeoutSeconds", timeout_seconds);
  }
};

struct SessionAffinityConfig {
  std::optional<ClientIPConfig> client_ip;
  template <class V>
  void visit(V& v) {
    v("clientIP", client_ip);
  }
};

struct ServiceSpec {
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
  std::string cluster_ip;
  std::vector<std::string> cluster_ips;
  std::string type;
  std::vector<std::string> external_ips;
  std::string session_affinity;
  std::string load_balancer_ip;
  std::vector<std::string> load_balancer_source_ranges;
  std::string external_name;
  std::string external_traffic_policy;
  int32_t health_check_node_port = 0;
  bool publish_not_ready_addresses = false;
  std::optional<SessionAffinityConfig> session_affinity_config;
  std::vector<std::string> ip_families;
  std::optional<std::string> ip_family_policy;
  std::optional<bool> allocate_load_balancer_node_ports;
  std::optional<std::string> load_balancer_class;
  std::optional<std::string> internal_traffic_policy;
  template <class V>
  void visit(V& v) {
    v("ports", ports, merge_by("port"));
    v("selector", selector);
    v("clusterIP", cluster_ip);
    v("clusterIPs", cluster_ips);
    v("type", type);
    v("externalIPs", external_ips);
    v("sessionAffinity", session_affinity);
    v("loadBalancerIP", load_balancer_ip);
    v("loadBalancerSourceRanges", load_balancer_source_ranges);
    v("externalName", external_name);
    v("externalTrafficPolicy", external_traffic_policy);
    v("healthCheckNodePort", health_check_node_port);
    v("publishNotReadyAddresses", publish_not_ready_addresses);
    v("sessionAffinityConfig", session_affinity_config);
    v("ipFamilies", ip_families);
    v("ipFamilyPolicy", ip_family_policy);
    v("allocateLoadBalancerNodePorts", allocate_load_balancer_node_ports);
    v("loadBalancerClass", load_balancer_class);
    v("internalTrafficPolicy", internal_traffic_policy);
  }
};

struct PortStatus {
  int32_t port = 0;
  std::string protocol;
  std::optional<std::string> error;
  template <class V>
  void visit(V& v) {
    v("port", port, kAlways);
    v("protocol", protocol, kAlways);
    v("error", error);
  }
};

struct LoadBalancerIngress {
  std::string ip, hostname;
  std::optional<std::string> ip_mode;
  std::vector<PortStatus> ports;
  template <class V>
  void visit(V& v) {
    v("ip", ip);
    v("hostname", hostname);
    v("ipMode", ip_mode);
    v("ports", ports);
  }
};

struct LoadBalancerStatus {
  std::vector<LoadBalancerIngress> ingress;
  template <class V>
  void visit(V& v) {
    v("ingress", ingress);
  }
};

struct ServiceStatus {
  LoadBalancerStatus load_balancer;
  json conditions;  // metav1.Condition list, passed through
  template <class V>
  void visit(V& v) {
    v("loadBalancer", load_balancer);
    v("conditions", conditions);
  }
};

struct Service {
  TypeMeta type_meta;
  ObjectMeta metadata;
  ServiceSpec spec;
  ServiceStatus status;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("spec", spec);
    v("status", status);
  }
};

void default_service(Service& svc);
ResourceType service_resource();

}  // namespace skiff::proto
