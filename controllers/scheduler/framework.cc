#include "controllers/scheduler/framework.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "proto/codec.h"

namespace skiff::scheduler {

namespace {

int64_t quantity_milli(const proto::ResourceList& l, const char* name) {
  auto it = l.find(name);
  return it == l.end() ? 0 : it->second.milli_value();
}
int64_t quantity_value(const proto::ResourceList& l, const char* name) {
  auto it = l.find(name);
  return it == l.end() ? 0 : it->second.value();
}

Resources container_requests(const proto::Container& c, bool nonzero) {
  const auto& req = c.resources.requests;
  Resources r;
  bool has_cpu = req.count("cpu") != 0, has_mem = req.count("memory") != 0;
  r.milli_cpu = quantity_milli(req, "cpu");
  r.memory = quantity_value(req, "memory");
  // Kubernetes' GetNonzeroRequests: a request that is not set counts the default; an explicit
  // zero stays zero.
  if (nonzero && !has_cpu) r.milli_cpu = kDefaultMilliCpuRequest;
  if (nonzero && !has_mem) r.memory = kDefaultMemoryRequest;
  return r;
}

std::string name_of(const json& obj) {
  if (!obj.is_object()) return "<not an object>";
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "<no metadata>";
  auto n = m->find("name");
  return n != m->end() && n->is_string() ? n->get<std::string>() : "<no name>";
}

}  // namespace

bool ports_conflict(const HostPort& a, const HostPort& b) {
  if (a.port != b.port || a.protocol != b.protocol) return false;
  return a.ip == b.ip || a.ip == "0.0.0.0" || b.ip == "0.0.0.0";
}

Resources effective_requests(const proto::PodSpec& spec, bool nonzero) {
  Resources sum;
  for (const auto& c : spec.containers) {
    Resources r = container_requests(c, nonzero);
    sum.milli_cpu += r.milli_cpu;
    sum.memory += r.memory;
  }
  // Init containers run one at a time before the app containers: the pod needs the largest of
  // them, or the sum of the app containers, whichever is more (per resource).
  for (const auto& c : spec.init_containers) {
    Resources r = container_requests(c, nonzero);
    sum.milli_cpu = std::max(sum.milli_cpu, r.milli_cpu);
    sum.memory = std::max(sum.memory, r.memory);
  }
  if (spec.overhead.is_object()) {
    proto::ResourceList overhead;
    for (auto it = spec.overhead.begin(); it != spec.overhead.end(); ++it)
      if (it.value().is_string())
        if (auto q = proto::Quantity::parse(it.value().get<std::string>()); q.is_ok())
          overhead[it.key()] = *q;
    sum.milli_cpu += quantity_milli(overhead, "cpu");
    sum.memory += quantity_value(overhead, "memory");
  }
  sum.pods = 1;
  return sum;
}

PodInfo pod_info(const proto::Pod& pod) {
  PodInfo p;
  p.ns = pod.metadata.namespace_;
  p.name = pod.metadata.name;
  p.key = p.ns.empty() ? p.name : p.ns + "/" + p.name;
  p.uid = pod.metadata.uid;
  p.priority = pod.spec.priority.value_or(0);
  for (const auto& o : pod.metadata.owner_references)
    if (o.controller.value_or(false)) {
      p.owner_uid = o.uid;
      break;
    }
  p.node_name = pod.spec.node_name;
  p.scheduler_name = pod.spec.scheduler_name;
  p.phase = pod.status.phase;
  p.terminating = pod.metadata.deletion_timestamp.has_value();
  p.requests = effective_requests(pod.spec, false);
  p.nonzero = effective_requests(pod.spec, true);
  p.node_selector = pod.spec.node_selector;
  if (pod.spec.affinity && pod.spec.affinity->node_affinity)
    p.required_affinity = pod.spec.affinity->node_affinity->required;
  p.tolerations = pod.spec.tolerations;
  auto add_ports = [&](const std::vector<proto::Container>& cs) {
    for (const auto& c : cs)
      for (const auto& port : c.ports) {
        if (port.host_port <= 0) continue;
        p.host_ports.push_back({port.protocol.empty() ? "TCP" : port.protocol,
                                port.host_ip.empty() ? "0.0.0.0" : port.host_ip, port.host_port});
      }
  };
  add_ports(pod.spec.init_containers);
  add_ports(pod.spec.containers);
  for (const auto& v : pod.spec.volumes)
    if (v.persistent_volume_claim) p.claims.push_back(v.persistent_volume_claim->claim_name);
  return p;
}

Result<PodInfo> pod_info_from_json(const json& obj) {
  proto::FieldErrors errs;
  auto pod = proto::decode<proto::Pod>(obj, errs, proto::DecodeOptions{.report_unknown = false});
  if (!errs.empty())
    return Status::invalid("decoding pod " + name_of(obj) + ": " + errs.front().field + ": " +
                           errs.front().message());
  return pod_info(pod);
}

bool needs_scheduling(const PodInfo& pod, const std::string& scheduler_name) {
  if (!pod.node_name.empty() || pod.terminating) return false;
  if (pod.phase == "Succeeded" || pod.phase == "Failed") return false;
  return pod.scheduler_name.empty() || pod.scheduler_name == scheduler_name;
}

bool NodeInfo::same_node_fields(const NodeInfo& o) const {
  if (name != o.name || labels != o.labels || !(allocatable == o.allocatable) || ready != o.ready ||
      unschedulable != o.unschedulable || taints.size() != o.taints.size())
    return false;
  for (size_t i = 0; i < taints.size(); ++i)
    if (taints[i].key != o.taints[i].key || taints[i].value != o.taints[i].value ||
        taints[i].effect != o.taints[i].effect)
      return false;
  return true;
}

NodeInfo node_info(const proto::Node& node) {
  NodeInfo n;
  n.name = node.metadata.name;
  n.labels = node.metadata.labels;
  const auto& alloc =
      node.status.allocatable.empty() ? node.status.capacity : node.status.allocatable;
  n.allocatable.milli_cpu = quantity_milli(alloc, "cpu");
  n.allocatable.memory = quantity_value(alloc, "memory");
  n.allocatable.pods = quantity_value(alloc, "pods");
  for (const auto& c : node.status.conditions)
    if (c.type == "Ready") n.ready = c.status == "True";
  n.unschedulable = node.spec.unschedulable;
  n.taints = node.spec.taints;
  return n;
}

Result<NodeInfo> node_info_from_json(const json& obj) {
  proto::FieldErrors errs;
  auto node = proto::decode<proto::Node>(obj, errs, proto::DecodeOptions{.report_unknown = false});
  if (!errs.empty())
    return Status::invalid("decoding node " + name_of(obj) + ": " + errs.front().field + ": " +
                           errs.front().message());
  return node_info(node);
}

}  // namespace skiff::scheduler
