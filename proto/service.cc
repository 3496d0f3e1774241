#include "proto/service.h"

#include <set>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {

void default_service(Service& svc) {
  ServiceSpec& s = svc.spec;
  if (s.type.empty()) s.type = "ClusterIP";
  if (s.session_affinity.empty()) s.session_affinity = "None";
  if (s.session_affinity == "ClientIP" &&
      (!s.session_affinity_config || !s.session_affinity_config->client_ip ||
       !s.session_affinity_config->client_ip->timeout_seconds)) {
    if (!s.session_affinity_config) s.session_affinity_config = SessionAffinityConfig{};
    if (!s.session_affinity_config->client_ip)
      s.session_affinity_config->client_ip = ClientIPConfig{};
    s.session_affinity_config->client_ip->timeout_seconds = 10800;  // 3 hours
  }
  for (auto& p : s.ports) {
    if (p.protocol.empty()) p.protocol = "TCP";
    if (p.target_port.unset()) p.target_port = IntOrString::from_int(p.port);
  }
  bool external = s.type == "NodePort" || s.type == "LoadBalancer";
  if (external && s.external_traffic_policy.empty()) s.external_traffic_policy = "Cluster";
  if (s.type != "ExternalName" && !s.internal_traffic_policy) s.internal_traffic_policy = "Cluster";
  if (s.type == "LoadBalancer" && !s.allocate_load_balancer_node_ports)
    s.allocate_load_balancer_node_ports = true;
}

namespace {

void validate_service(const Service& svc, const Service* old, FieldErrors& errs) {
  const Path spec("spec");
  const ServiceSpec& s = svc.spec;
  required_one_of(errs, spec.field("type"), s.type,
                  {"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"});
  bool headless = s.cluster_ip == "None";
  if (s.ports.empty() && !headless && s.type != "ExternalName")
    errs.push_back({ErrorType::kRequired, spec.field("ports").str(), "", ""});
  if (s.type == "ExternalName") {
    if (s.external_name.empty())
      errs.push_back({ErrorType::kRequired, spec.field("externalName").str(), "", ""});
    else
      add_errors(errs, spec.field("externalName"), s.external_name,
                 is_dns1123_subdomain(s.external_name));
  }
  std::set<std::string> names;
  bool node_ports_allowed = s.type == "NodePort" || s.type == "LoadBalancer";
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const ServicePort& p = s.ports[i];
    Path pp = spec.field("ports").index(i);
    if (p.name.empty()) {
      if (s.ports.size() > 1)
        errs.push_back({ErrorType::kRequired, pp.field("name").str(), "", ""});
    } else {
      add_errors(errs, pp.field("name"), p.name, is_dns1123_label(p.name));
      if (!names.insert(p.name).second)
        errs.push_back({ErrorType::kDuplicate, pp.field("name").str(), "", quote_value(p.name)});
    }
    for (const auto& m : is_valid_port_num(p.port))
      errs.push_back({ErrorType::kInvalid, pp.field("port").str(), m, std::to_string(p.port)});
    required_one_of(errs, pp.field("protocol"), p.protocol, {"SCTP", "TCP", "UDP"});
    if (p.target_port.is_string)
      add_errors(errs, pp.field("targetPort"), p.target_port.str_val,
                 is_valid_port_name(p.target_port.str_val));
    else
      for (const auto& m : is_valid_port_num(p.target_port.int_val))
        errs.push_back({ErrorType::kInvalid, pp.field("targetPort").str(), m,
                        std::to_string(p.target_port.int_val)});
    if (p.node_port != 0) {
      if (!node_ports_allowed)
        errs.push_back({ErrorType::kForbidden, pp.field("nodePort").str(),
                        "may not be used when `type` is '" + s.type + "'", ""});
      else
        for (const auto& m : is_valid_port_num(p.node_port))
          errs.push_back(
              {ErrorType::kInvalid, pp.field("nodePort").str(), m, std::to_string(p.node_port)});
    }
  }
  if (!s.cluster_ip.empty() && !headless && !is_valid_ip(s.cluster_ip).empty())
    errs.push_back({ErrorType::kInvalid, spec.field("clusterIP").str(),
                    "must be empty, 'None', or a valid IP address", quote_value(s.cluster_ip)});
  for (size_t i = 0; i < s.cluster_ips.size(); ++i)
    if (s.cluster_ips[i] != "None" && !is_valid_ip(s.cluster_ips[i]).empty())
      errs.push_back({ErrorType::kInvalid, spec.field("clusterIPs").index(i).str(),
                      "must be 'None' or a valid IP address", quote_value(s.cluster_ips[i])});
  // Kubernetes: a headless Service has no address for node ports or a load balancer to use.
  if (headless && node_ports_allowed)
    errs.push_back({ErrorType::kInvalid, spec.field("clusterIPs").index(0).str(),
                    "may not be set to 'None' for " + s.type + " services", quote_value("None")});
  if (!s.cluster_ips.empty() && !s.cluster_ip.empty() && s.cluster_ips[0] != s.cluster_ip)
    errs.push_back({ErrorType::kInvalid, spec.field("clusterIPs").index(0).str(),
                    "must be same as `clusterIP`", quote_value(s.cluster_ips[0])});
  for (size_t i = 0; i < s.external_ips.size(); ++i)
    add_errors(errs, spec.field("externalIPs").index(i), s.external_ips[i],
               is_valid_ip(s.external_ips[i]));
  required_one_of(errs, spec.field("sessionAffinity"), s.session_affinity, {"ClientIP", "None"});
  if (!s.external_traffic_policy.empty()) {
    if (!node_ports_allowed)
      errs.push_back({ErrorType::kInvalid, spec.field("externalTrafficPolicy").str(),
                      "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
                      quote_value(s.external_traffic_policy)});
    else
      not_supported(errs, spec.field("externalTrafficPolicy"), s.external_traffic_policy,
                    {"Cluster", "Local"});
  }
  if (s.internal_traffic_policy)
    not_supported(errs, spec.field("internalTrafficPolicy"), *s.internal_traffic_policy,
                  {"Cluster", "Local"});
  if (s.ip_family_policy)
    not_supported(errs, spec.field("ipFamilyPolicy"), *s.ip_family_policy,
                  {"PreferDualStack", "RequireDualStack", "SingleStack"});
  for (size_t i = 0; i < s.ip_families.size(); ++i)
    not_supported(errs, spec.field("ipFamilies").index(i), s.ip_families[i], {"IPv4", "IPv6"});
  validate_labels(s.selector, spec.field("selector"), errs);
  if (old && !old->spec.cluster_ip.empty() && s.type != "ExternalName" &&
      old->spec.type != "ExternalName")
    immutable(errs, spec.field("clusterIP"), s.cluster_ip, old->spec.cluster_ip);
}

std::string external_ip(const Service& svc) {
  const ServiceSpec& s = svc.spec;
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
    return out;
  };
  if (s.type == "ClusterIP" || s.type == "NodePort")
    return s.external_ips.empty() ? "<none>" : join(s.external_ips);
  if (s.type == "LoadBalancer") {
    std::vector<std::string> all;
    for (const auto& in : svc.status.load_balancer.ingress) {
      if (!in.ip.empty())
        all.push_back(in.ip);
      else if (!in.hostname.empty())
        all.push_back(in.hostname);
    }
    all.insert(all.end(), s.external_ips.begin(), s.external_ips.end());
    return all.empty() ? "<pending>" : join(all);
  }
  if (s.type == "ExternalName") return s.external_name;
  return "<unknown>";
}

json service_row(const Service& svc, Clock::time_point now) {
  std::string ports;
  for (const auto& p : svc.spec.ports) {
    ports += ports.empty() ? "" : ",";
    ports += std::to_string(p.port);
    if (p.node_port > 0) ports += ":" + std::to_string(p.node_port);
    ports += "/" + p.protocol;
  }
  return json::array({svc.metadata.name, svc.spec.type, or_none(svc.spec.cluster_ip),
                      external_ip(svc), or_none(ports),
                      since(svc.metadata.creation_timestamp.value_or(Time{}).value, now),
                      format_labels(svc.spec.selector)});
}

}  // namespace

ResourceType service_resource() {
  KindSpec<Service> k;
  k.type.version = "v1";
  k.type.kind = "Service";
  k.type.list_kind = "ServiceList";
  k.type.plural = "services";
  k.type.singular = "service";
  k.type.short_names = {"svc"};
  k.type.categories = {"all"};
  k.type.subresources = {"status"};
  k.type.columns = {
      name_column(),
      column("Type", "string", "The type of the service."),
      column("Cluster-IP", "string", "The cluster-internal IP of the service."),
      column("External-IP", "string", "The external IPs of the service."),
      column("Port(s)", "string", "The ports exposed by the service."),
      age_column(),
      column("Selector", "string",
             "Route service traffic to pods with label keys and values "
             "matching this selector.",
             1),
  };
  k.name_rule = is_dns1035_label;
  k.defaults = default_service;
  k.validate = validate_service;
  k.row = service_row;
  k.fields = {{"spec.clusterIP", "spec.clusterIP"}, {"spec.type", "spec.type"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
