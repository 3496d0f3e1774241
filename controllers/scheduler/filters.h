// Filters: can this pod run on this node? Pure functions of PodInfo and NodeInfo (framework.h),
// with kube-scheduler's reasons, and the aggregation of the reasons into its message
// ("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient
// cpu.").
//
// Each filter returns true when the node passes; otherwise it appends its reason(s) to
// `reasons`. run_filters() applies them in kube-scheduler's order and stops at the first that
// fails (the resource filter may give several reasons at once).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "controllers/scheduler/framework.h"

namespace skiff::scheduler {

using Reasons = std::vector<std::string>;

// Kubernetes' wording.
inline constexpr const char* kReasonNotReady = "node(s) were not ready";
inline constexpr const char* kReasonUnschedulable = "node(s) were unschedulable";
inline constexpr const char* kReasonAffinity = "node(s) didn't match Pod's node affinity/selector";
inline constexpr const char* kReasonPorts =
    "node(s) didn't have free ports for the requested pod ports";
inline constexpr const char* kReasonTooManyPods = "Too many pods";
inline constexpr const char* kReasonCpu = "Insufficient cpu";
inline constexpr const char* kReasonMemory = "Insufficient memory";
inline constexpr const char* kReasonVolumeAffinity = "node(s) had volume node affinity conflict";
inline constexpr const char* kReasonPvNotExist =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
inline constexpr const char* kReasonBindConflict =
    "node(s) didn't find available persistent volumes to bind";

// Condition Ready=True.
bool filter_ready(const NodeInfo& node, Reasons& reasons);
// spec.unschedulable unset, or the pod tolerates node.kubernetes.io/unschedulable:NoSchedule.
bool filter_unschedulable(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);
// Every NoSchedule and NoExecute taint is tolerated ("node(s) had untolerated taint {k: v}").
bool filter_taints(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);
// spec.nodeSelector and required node affinity (terms ORed, expressions ANDed).
bool filter_node_affinity(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);
// The pod's host ports are free on the node.
bool filter_host_ports(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);
// Pod count, cpu and memory requests fit allocatable minus what pods on the node request.
bool filter_resources(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);

// VolumeBinding: the node matches the required node affinity of every PV bound to the pod's
// claims (pod.volume_affinity, filled by volume_prefilter in volume_binding.h), and each unbound
// WaitForFirstConsumer claim has a fitting Available PV usable on the node or a class that
// provisions.
bool filter_volume_binding(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);

bool run_filters(const PodInfo& pod, const NodeInfo& node, Reasons& reasons);

// Helpers the filters use, exposed for tests.
bool toleration_tolerates(const proto::Toleration& t, const proto::Taint& taint);
// Whether `sel` (a PV's required node affinity; none = every node) admits the node.
bool volume_affinity_matches(const std::optional<proto::NodeSelector>& sel, const NodeInfo& node);
bool match_node_selector_term(const proto::NodeSelectorTerm& term, const NodeInfo& node);
bool match_requirement(const proto::NodeSelectorRequirement& r,
                       const std::map<std::string, std::string>& labels);

// Counts reasons over the nodes that failed: reason -> number of nodes.
using ReasonHistogram = std::map<std::string, int>;
void add_reasons(ReasonHistogram& h, const Reasons& reasons);
// "0/N nodes are available: <count> <reason>, ... ." with the "<count> <reason>" strings sorted,
// as kube-scheduler's FitError; "no nodes available to schedule pods" when there are none.
std::string unschedulable_message(int num_nodes, const ReasonHistogram& h);

}  // namespace skiff::scheduler
