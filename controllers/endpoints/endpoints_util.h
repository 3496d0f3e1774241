// The pure parts of the Endpoints controller, on API objects as JSON, as Kubernetes'
// pkg/controller/endpoint and pkg/api/v1/endpoints compute them: which pods belong in a
// Service's Endpoints, the address of a pod, the resolution of a target port, the repacking of
// subsets, the truncation at capacity and the last-change trigger time. Pure functions and one
// small tracker; thread-safety noted on each.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace skiff::controllers::endpoints {

using json = nlohmann::json;
using WallTime = std::chrono::system_clock::time_point;

inline constexpr char kHeadlessLabel[] = "service.kubernetes.io/headless";
inline constexpr char kTriggerTimeAnnotation[] = "endpoints.kubernetes.io/last-change-trigger-time";
inline constexpr char kOverCapacityAnnotation[] = "endpoints.kubernetes.io/over-capacity";
// Endpoints used as a leader-election lock by old components: never ours to delete.
inline constexpr char kLeaderAnnotation[] = "control-plane.alpha.kubernetes.io/leader";
// Kubernetes' maxCapacity: addresses beyond it are truncated (over-capacity annotation).
inline constexpr int kMaxCapacity = 1000;

// The Service's Endpoints are this controller's: it has a non-empty selector and is not of type
// ExternalName. (An empty selector is stored as no selector by the API server.)
bool manages_endpoints(const json& svc);
// spec.clusterIP is neither "None" nor empty (Kubernetes' IsServiceIPSet).
bool has_cluster_ip(const json& svc);
// Every selector label of the Service is on the pod (the selector must be non-empty).
bool selects(const json& svc, const json& pod);
// Its Ready condition is True.
bool is_pod_ready(const json& pod);
// ShouldPodBeInEndpoints: not Succeeded/Failed, has a pod IP, and not being deleted unless
// `include_terminating` (publishNotReadyAddresses).
bool should_be_in_endpoints(const json& pod, bool include_terminating);
// podutil.FindPort: the port number a service port's targetPort means for this pod — the number
// itself, the service port when unset, or the pod's container port (containers and restartable
// init containers) of that name and protocol; nullopt when the pod has no such named port.
std::optional<int> find_port(const json& pod, const json& service_port);
// The pod as an EndpointAddress of the Service: ip, nodeName, targetRef{kind Pod, namespace,
// name, uid}, hostname when spec.hostname is set and spec.subdomain is the Service's name.
json pod_address(const json& svc, const json& pod);

struct DesiredSubsets {
  json subsets = json::array();
  int ready = 0, not_ready = 0;  // addresses counted per pod and port, as Kubernetes logs them
};
// The subsets of the Service's Endpoints for `pods` (already selected), repacked.
DesiredSubsets desired_subsets(const json& svc, const std::vector<json>& pods);

// RepackSubsets: addresses (keyed by ip + targetRef uid) grouped by identical port sets, an
// address not ready on any port of a group is not ready in it; subsets without ports kept.
// Sorted deterministically: addresses by IP bytes then uid, ports by name, port, protocol,
// subsets by their JSON text (Kubernetes sorts ports and subsets by a Go hash that cannot be
// reproduced here; any fixed order serves, since only this controller compares them).
// Empty strings, nulls and empty lists are dropped, so it also canonicalises stored subsets.
json repack_subsets(const json& subsets);

// truncateEndpoints: when the addresses exceed `max_capacity`, keeps at most that many (ready
// ones first, proportionally per subset; not-ready ones dropped once the ready ones alone exceed
// it). true when something was cut.
bool truncate_subsets(json& subsets, int max_capacity);

// podEndpointsChanged: {pod changed (deletion timestamp, readiness, IPs, node, phase),
// membership may have changed (labels, hostname, subdomain)}.
std::pair<bool, bool> pod_endpoints_changed(const json& old_pod, const json& pod);

// TriggerTimeTracker: the time written in the last-change-trigger-time annotation — for a
// Service seen for the first time its creationTimestamp; afterwards the earliest trigger time
// among the pods (their Ready condition's lastTransitionTime) and the Service that changed since
// the last successful sync; no value when nothing changed (the annotation is then removed).
// Thread-safe for different keys; one key must not be computed concurrently (the work queue
// guarantees it).
class TriggerTimeTracker {
 public:
  struct State {
    std::map<std::string, WallTime> pods;  // pod name -> trigger time
    WallTime service{};
  };
  struct Computed {
    std::optional<WallTime> time;
    State next;  // commit() it once the Endpoints are written (or need no write)
  };
  Computed compute(const std::string& key, const json& svc, const std::vector<json>& pods) const;
  void commit(const std::string& key, State next);
  void forget(const std::string& key);

 private:
  mutable std::mutex mu_;
  std::map<std::string, State> states_;
};

}  // namespace skiff::controllers::endpoints
