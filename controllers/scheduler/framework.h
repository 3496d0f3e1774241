// The scheduler's view of pods and nodes: what filters and scores need, extracted once from the
// API objects so that evaluating a node is integer comparisons and a few map lookups.
//
// PodInfo holds a pod's effective requests computed as Kubernetes does
// (max(any init container, sum of containers) per resource, plus pod overhead), the "non-zero"
// requests used for scoring (a container without a cpu/memory request counts 100m / 200Mi, as
// kube-scheduler's NodeResourcesFit scorer does), its node constraints and host ports.
// NodeInfo holds a node's allocatable resources, readiness, taints and labels, plus the usage
// of the pods the scheduler's cache has put on it (see cache.h).
//
// Value types; the functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "proto/node.h"
#include "proto/pod.h"

namespace skiff::scheduler {

using json = nlohmann::json;

// Kubernetes' defaults for a container without a request, used only for scoring.
inline constexpr int64_t kDefaultMilliCpuRequest = 100;
inline constexpr int64_t kDefaultMemoryRequest = 200LL * 1024 * 1024;

struct Resources {
  int64_t milli_cpu = 0;
  int64_t memory = 0;  // bytes
  int64_t pods = 0;
  bool operator==(const Resources&) const = default;
};

// One hostPort a container asks for. protocol "TCP"/"UDP"/"SCTP" (default TCP); ip "0.0.0.0"
// when not given (all addresses).
struct HostPort {
  std::string protocol;
  std::string ip;
  int32_t port = 0;
  bool operator==(const HostPort&) const = default;
};
// Two ports conflict on the same protocol and port when their IPs are equal or either is
// 0.0.0.0 (Kubernetes' HostPortInfo).
bool ports_conflict(const HostPort& a, const HostPort& b);

struct PodInfo {
  std::string key;  // "namespace/name"
  std::string ns, name, uid;
  std::string owner_uid;  // uid of the controller ownerReference ("" when none)
  std::string node_name, scheduler_name, phase;
  bool terminating = false;  // deletionTimestamp set
  Resources requests;        // effective requests; pods = 1
  Resources nonzero;         // for scoring (defaults for missing cpu/memory requests)
  std::map<std::string, std::string> node_selector;
  std::optional<proto::NodeSelector> required_affinity;
  std::vector<proto::Toleration> tolerations;
  std::vector<HostPort> host_ports;
  std::vector<std::string> claims;  // spec.volumes[].persistentVolumeClaim.claimName, in order
  int32_t priority = 0;             // spec.priority (set by the API server's Priority admission)

  // Filled per attempt from the PVC/PV/StorageClass caches by volume_prefilter
  // (volume_binding.h); empty until then.
  std::vector<proto::NodeSelector> volume_affinity;  // required node affinity of bound PVs
  bool volume_pv_missing = false;                    // a bound PVC names a PV that does not exist
  std::vector<std::string> wffc_claims;  // unbound WaitForFirstConsumer claims: PreBind names
                                         // the chosen node on them (or binds a static PV)
  // Per entry of wffc_claims: the Available PVs that fit it, smallest first, and whether its
  // class can provision (provisioner not kubernetes.io/no-provisioner).
  struct StaticVolume {
    std::string name;
    std::optional<proto::NodeSelector> affinity;  // spec.nodeAffinity.required
  };
  struct DelayedClaim {
    std::vector<StaticVolume> candidates;
    bool provisionable = true;
  };
  std::vector<DelayedClaim> wffc;
};

// Effective requests of a pod spec (Kubernetes' computePodResourceRequest): per resource the
// larger of the sum over containers and the largest init container, plus spec.overhead.
// `nonzero` applies the scoring defaults per container first.
Resources effective_requests(const proto::PodSpec& spec, bool nonzero);

PodInfo pod_info(const proto::Pod& pod);
// Decodes a Pod object (as the informer holds it). Invalid when it does not decode.
Result<PodInfo> pod_info_from_json(const json& obj);

// Whether a pod is this scheduler's to place: unassigned, not being deleted, not finished, and
// schedulerName empty or `scheduler_name`.
bool needs_scheduling(const PodInfo& pod, const std::string& scheduler_name);

struct NodeInfo {
  // From the Node object.
  std::string name;
  std::map<std::string, std::string> labels;
  Resources allocatable;
  bool ready = false;  // condition Ready=True
  bool unschedulable = false;
  std::vector<proto::Taint> taints;
  // Usage of the pods placed on it (bound or assumed), kept by the cache.
  Resources requested;
  Resources nonzero_requested;
  std::vector<HostPort> used_ports;  // one entry per pod port (a multiset)
  std::unordered_map<std::string, int> owner_counts;

  // True when the Node-derived fields (not the usage) are equal: an update that changes none of
  // them cannot make a pod schedulable.
  bool same_node_fields(const NodeInfo& o) const;
};

NodeInfo node_info(const proto::Node& node);
Result<NodeInfo> node_info_from_json(const json& obj);

}  // namespace skiff::scheduler
