// Services in skiffctl, the pure parts: kubectl 1.32's Service describer and `kubectl expose`'s
// Service generator. The requests are in services.cc's run_expose and describe.cc. Pure
// functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "cli/describe_writer.h"
#include "common/status.h"

namespace skiff::cli {

// kubectl's describeService (without the events): Name, Namespace, Labels, Annotations,
// Selector, Type, IP Family Policy, IP Families, IP, IPs, External IPs, the LoadBalancer IP,
// External Name, LoadBalancer Ingress, per port Port/TargetPort/NodePort/Endpoints, Session
// Affinity, External/Internal Traffic Policy, HealthCheck NodePort, LoadBalancer Source Ranges.
// kubectl 1.32 reads the Endpoints lines from the Service's EndpointSlices (discovery.k8s.io/v1,
// label kubernetes.io/service-name): `slices` is that list's items when the server serves them;
// null when it does not (404), and then the Service's Endpoints object `endpoints` (null or {}
// when there is none) is used as kubectl <= 1.31 did.
void describe_service(DescribeWriter& w, const json& svc, const json& slices,
                      const json& endpoints);

// kubectl 1.32's formatEndpointSlices for one service port: "ip:port" of the ready (or
// unconditioned) endpoints of the slices' ports of that name (bare addresses in slices without
// ports), at most 3 then " + N more..."; "<none>" without slices.
std::string format_endpoint_slices_for_port(const json& slices, const std::string& port_name);

// kubectl's formatEndpoints for one service port: "ip:port" of the ready addresses of the
// Endpoints ports of that name (bare IPs in subsets without ports), at most 3 then
// " + N more..."; "<none>" without subsets.
std::string format_endpoints_for_port(const json& endpoints, const std::string& port_name);

struct ExposeOptions {
  std::vector<std::string> args;  // TYPE NAME or TYPE/NAME
  std::string port;               // "80"; empty: the object's container ports
  std::string protocol;           // empty: from the container ports, else TCP
  std::string target_port;        // number or name; empty: = port
  std::string type;               // ClusterIP, NodePort, LoadBalancer, ExternalName
  std::string name;               // empty: the object's name (cut at 63)
  std::string selector;           // "k=v,k2=v2"; empty: from the object
  std::string labels;             // "k=v,..."; empty: the object's labels
  std::string external_ip;
  std::string load_balancer_ip;
  std::string session_affinity;  // None or ClientIP
  std::string cluster_ip;        // an address, or None for a headless Service
};

// The Service `kubectl expose` creates for `obj` (a Pod, Deployment or ReplicaSet as JSON), or
// kubectl's error text (without "error: ").
[[nodiscard]] Result<json> service_for_expose(const json& obj, const ExposeOptions& o);

}  // namespace skiff::cli
