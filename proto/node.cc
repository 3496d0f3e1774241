#include "proto/node.h"

#include <set>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

void validate_node(const Node& node, const Node* old, FieldErrors& errs) {
  const Path spec("spec");
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < node.spec.taints.size(); ++i) {
    const Taint& t = node.spec.taints[i];
    Path tp = spec.field("taints").index(i);
    if (t.key.empty())
      errs.push_back({ErrorType::kRequired, tp.field("key").str(), "", ""});
    else
      add_errors(errs, tp.field("key"), t.key, is_qualified_name(t.key));
    if (!t.value.empty())
      add_errors(errs, tp.field("value"), t.value, is_valid_label_value(t.value));
    required_one_of(errs, tp.field("effect"), t.effect,
                    {"NoExecute", "NoSchedule", "PreferNoSchedule"});
    if (!seen.insert({t.key, t.effect}).second)
      errs.push_back({ErrorType::kDuplicate, tp.str(),
                      "taints must be unique by key and effect pair",
                      quote_value(t.key + ":" + t.effect)});
  }
  // Kubernetes validates spec.podCIDRs (spec.podCIDR is its first entry): each a CIDR, and
  // more than one only as a dual-stack pair.
  if (node.spec.pod_cidrs.empty() && !node.spec.pod_cidr.empty())
    add_errors(errs, spec.field("podCIDR"), node.spec.pod_cidr, is_valid_cidr(node.spec.pod_cidr));
  int v4 = 0, v6 = 0;
  for (size_t i = 0; i < node.spec.pod_cidrs.size(); ++i) {
    const std::string& c = node.spec.pod_cidrs[i];
    auto problems = is_valid_cidr(c);
    add_errors(errs, spec.field("podCIDRs").index(i), c, problems);
    if (problems.empty()) ++(c.find(':') == std::string::npos ? v4 : v6);
  }
  if (node.spec.pod_cidrs.size() > 2 || v4 > 1 || v6 > 1) {
    std::string all;
    for (const auto& c : node.spec.pod_cidrs) all += (all.empty() ? "" : ",") + c;
    errs.push_back({ErrorType::kInvalid, spec.field("podCIDRs").str(),
                    "may specify no more than one CIDR for each IP family", quote_value(all)});
  }
  if (!node.spec.pod_cidr.empty() && !node.spec.pod_cidrs.empty() &&
      node.spec.pod_cidrs[0] != node.spec.pod_cidr)
    errs.push_back({ErrorType::kInvalid, spec.field("podCIDRs").str(),
                    "first entry must match spec.podCIDR", quote_value(node.spec.pod_cidrs[0])});
  for (size_t i = 0; i < node.status.addresses.size(); ++i)
    if (node.status.addresses[i].type.empty())
      errs.push_back({ErrorType::kRequired,
                      Path("status").field("addresses").index(i).field("type").str(), "", ""});
  // Once allocated, a node's pod CIDR may not move: routes and pods depend on it.
  if (old && !old->spec.pod_cidr.empty())
    immutable(errs, spec.field("podCIDR"), node.spec.pod_cidr, old->spec.pod_cidr);
  if (old && !old->spec.provider_id.empty())
    immutable(errs, spec.field("providerID"), node.spec.provider_id, old->spec.provider_id);
}

std::string node_status(const Node& node) {
  std::string s = "Unknown";
  for (const auto& c : node.status.conditions)
    if (c.type == "Ready") s = c.status == "True" ? "Ready" : "NotReady";
  if (node.spec.unschedulable) s += ",SchedulingDisabled";
  return s;
}

// kubectl's findNodeRoles: node-role.kubernetes.io/<role> keys and the kubernetes.io/role value.
std::string node_roles(const Node& node) {
  std::set<std::string> roles;
  const std::string prefix = "node-role.kubernetes.io/";
  for (const auto& [k, v] : node.metadata.labels) {
    if (k.rfind(prefix, 0) == 0 && k.size() > prefix.size())
      roles.insert(k.substr(prefix.size()));
    else if (k == "kubernetes.io/role" && !v.empty())
      roles.insert(v);
  }
  if (roles.empty()) return "<none>";
  std::string out;
  for (const auto& r : roles) out += (out.empty() ? "" : ",") + r;
  return out;
}

std::string address_of(const Node& node, const char* type) {
  for (const auto& a : node.status.addresses)
    if (a.type == type) return a.address;
  return "<none>";
}

json node_row(const Node& node, Clock::time_point now) {
  const auto& info = node.status.node_info;
  return json::array({node.metadata.name, node_status(node), node_roles(node),
                      since(node.metadata.creation_timestamp.value_or(Time{}).value, now),
                      info.kubelet_version, address_of(node, "InternalIP"),
                      address_of(node, "ExternalIP"), or_none(info.os_image),
                      or_none(info.kernel_version), or_none(info.container_runtime_version)});
}

}  // namespace

ResourceType node_resource() {
  KindSpec<Node> k;
  k.type.version = "v1";
  k.type.kind = "Node";
  k.type.list_kind = "NodeList";
  k.type.plural = "nodes";
  k.type.singular = "node";
  k.type.namespaced = false;
  k.type.short_names = {"no"};
  k.type.subresources = {"status"};
  k.type.columns = {
      name_column(),
      column("Status", "string", "The status of the node"),
      column("Roles", "string", "The roles of the node"),
      age_column(),
      column("Version", "string", "Kubelet Version reported by the node."),
      column("Internal-IP", "string", "List of internal IPs of the node.", 1),
      column("External-IP", "string", "List of external IPs of the node.", 1),
      column("OS-Image", "string", "OS Image reported by the node from /etc/os-release.", 1),
      column("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r'.", 1),
      column("Container-Runtime", "string", "Container Runtime Version reported by the node.", 1),
  };
  k.validate = validate_node;
  k.row = node_row;
  k.fields = {{"spec.unschedulable", "bool:spec.unschedulable"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
