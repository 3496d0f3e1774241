#include "controllers/scheduler/filters.h"

#include <algorithm>
#include <charconv>

namespace skiff::scheduler {

namespace {

bool parse_int64(const std::string& s, int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

bool filter_ready(const NodeInfo& node, Reasons& reasons) {
  if (node.ready) return true;
  reasons.emplace_back(kReasonNotReady);
  return false;
}

bool filter_unschedulable(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  if (!node.unschedulable) return true;
  static const proto::Taint kTaint{.key = "node.kubernetes.io/unschedulable",
                                   .value = "",
                                   .effect = "NoSchedule",
                                   .time_added = std::nullopt};
  for (const auto& t : pod.tolerations)
    if (toleration_tolerates(t, kTaint)) return true;
  reasons.emplace_back(kReasonUnschedulable);
  return false;
}

bool toleration_tolerates(const proto::Toleration& t, const proto::Taint& taint) {
  if (!t.effect.empty() && t.effect != taint.effect) return false;
  // An empty key with operator Exists matches every taint (key and value).
  if (!t.key.empty() && t.key != taint.key) return false;
  if (t.op.empty() || t.op == "Equal") return t.value == taint.value;
  return t.op == "Exists";
}

bool filter_taints(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  for (const auto& taint : node.taints) {
    // PreferNoSchedule only lowers a score in Kubernetes; it never blocks.
    if (taint.effect != "NoSchedule" && taint.effect != "NoExecute") continue;
    bool tolerated = false;
    for (const auto& t : pod.tolerations)
      if (toleration_tolerates(t, taint)) {
        tolerated = true;
        break;
      }
    if (!tolerated) {
      reasons.push_back("node(s) had untolerated taint {" + taint.key + ": " + taint.value + "}");
      return false;
    }
  }
  return true;
}

bool match_requirement(const proto::NodeSelectorRequirement& r,
                       const std::map<std::string, std::string>& labels) {
  auto it = labels.find(r.key);
  const bool has = it != labels.end();
  if (r.op == "In") return has && contains(r.values, it->second);
  if (r.op == "NotIn") return !has || !contains(r.values, it->second);
  if (r.op == "Exists") return has;
  if (r.op == "DoesNotExist") return !has;
  if (r.op == "Gt" || r.op == "Lt") {
    // Exactly one integer value, and the label must parse as an integer too.
    int64_t want, got;
    if (!has || r.values.size() != 1 || !parse_int64(r.values[0], want) ||
        !parse_int64(it->second, got))
      return false;
    return r.op == "Gt" ? got > want : got < want;
  }
  return false;  // unknown operator: matches nothing (validation should have refused it)
}

bool match_node_selector_term(const proto::NodeSelectorTerm& term, const NodeInfo& node) {
  // An empty term matches no node (Kubernetes).
  if (term.match_expressions.empty() && term.match_fields.empty()) return false;
  for (const auto& r : term.match_expressions)
    if (!match_requirement(r, node.labels)) return false;
  for (const auto& r : term.match_fields) {
    // Only metadata.name is a supported field.
    if (r.key != "metadata.name") return false;
    if (!match_requirement({.key = r.key, .op = r.op, .values = r.values},
                           {{"metadata.name", node.name}}))
      return false;
  }
  return true;
}

bool filter_node_affinity(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  bool ok = true;
  for (const auto& [k, v] : pod.node_selector) {
    auto it = node.labels.find(k);
    if (it == node.labels.end() || it->second != v) {
      ok = false;
      break;
    }
  }
  if (ok && pod.required_affinity) {
    ok = false;
    for (const auto& term : pod.required_affinity->node_selector_terms)
      if (match_node_selector_term(term, node)) {
        ok = true;
        break;
      }
  }
  if (!ok) reasons.emplace_back(kReasonAffinity);
  return ok;
}

bool filter_host_ports(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  for (const auto& want : pod.host_ports)
    for (const auto& used : node.used_ports)
      if (ports_conflict(want, used)) {
        reasons.emplace_back(kReasonPorts);
        return false;
      }
  return true;
}

bool filter_resources(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  bool ok = true;
  if (node.requested.pods + 1 > node.allocatable.pods) {
    reasons.emplace_back(kReasonTooManyPods);
    ok = false;
  }
  const Resources& want = pod.requests;
  if (want.milli_cpu > 0 &&
      want.milli_cpu > node.allocatable.milli_cpu - node.requested.milli_cpu) {
    reasons.emplace_back(kReasonCpu);
    ok = false;
  }
  if (want.memory > 0 && want.memory > node.allocatable.memory - node.requested.memory) {
    reasons.emplace_back(kReasonMemory);
    ok = false;
  }
  return ok;
}

bool run_filters(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  return filter_ready(node, reasons) && filter_unschedulable(pod, node, reasons) &&
         filter_taints(pod, node, reasons) && filter_node_affinity(pod, node, reasons) &&
         filter_host_ports(pod, node, reasons) && filter_resources(pod, node, reasons) &&
         filter_volume_binding(pod, node, reasons);
}

bool filter_volume_binding(const PodInfo& pod, const NodeInfo& node, Reasons& reasons) {
  if (pod.volume_pv_missing) {
    reasons.emplace_back(kReasonPvNotExist);
    return false;
  }
  for (const auto& sel : pod.volume_affinity) {
    if (!volume_affinity_matches(sel, node)) {
      reasons.emplace_back(kReasonVolumeAffinity);
      return false;
    }
  }
  // Unbound WaitForFirstConsumer claims: a class that provisions may put a volume anywhere;
  // otherwise an Available PV that fits must be usable on this node.
  for (const auto& claim : pod.wffc) {
    if (claim.provisionable) continue;
    bool found = false;
    for (const auto& v : claim.candidates)
      found = found || volume_affinity_matches(v.affinity, node);
    if (!found) {
      reasons.emplace_back(kReasonBindConflict);
      return false;
    }
  }
  return true;
}

bool volume_affinity_matches(const std::optional<proto::NodeSelector>& sel, const NodeInfo& node) {
  if (!sel) return true;
  for (const auto& term : sel->node_selector_terms)
    if (match_node_selector_term(term, node)) return true;
  return false;
}

void add_reasons(ReasonHistogram& h, const Reasons& reasons) {
  for (const auto& r : reasons) ++h[r];
}

std::string unschedulable_message(int num_nodes, const ReasonHistogram& h) {
  if (num_nodes == 0) return "no nodes available to schedule pods";
  std::vector<std::string> parts;
  for (const auto& [reason, n] : h) parts.push_back(std::to_string(n) + " " + reason);
  std::sort(parts.begin(), parts.end());
  std::string msg = "0/" + std::to_string(num_nodes) + " nodes are available";
  if (!parts.empty()) {
    msg += ": ";
    for (size_t i = 0; i < parts.size(); ++i) msg += (i ? ", " : "") + parts[i];
  }
  return msg + ".";
}

}  // namespace skiff::scheduler
