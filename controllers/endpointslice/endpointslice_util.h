// The pure part of the EndpointSlice controller: from a core/v1 Endpoints (and its Service, when
// it exists) and the slices that exist now, what to create, update and delete so that the
// discovery.k8s.io/v1 EndpointSlices say what the Endpoints says.
//
// Rules (Kubernetes' endpointslice / endpointslicemirroring controllers, as skiff applies them
// to every Endpoints, since its endpoints controller already turns pods into Endpoints):
// - One group per distinct port set (ports sorted by name, port, protocol); a subset's
//   `addresses` are endpoints with conditions ready=serving=true, terminating=false, its
//   `notReadyAddresses` ready=serving=terminating=false; hostname, nodeName and targetRef are
//   copied. Address type IPv4 only: IPv6 and malformed addresses are skipped, and so are the
//   addresses the EndpointSlice validation refuses (unspecified, loopback, link-local), so one
//   bad address cannot block the rest. An address listed twice in a group counts once (ready
//   wins).
// - At most `max_per_slice` (100) endpoints per slice. Endpoints stay in the slice that holds
//   them; new ones fill slices of their port set that have room, then slices no longer needed
//   for any port set (their ports rewritten), then new slices. Slices left empty are deleted.
//   An Endpoints without usable addresses keeps one empty placeholder slice (ports []), as
//   Kubernetes keeps one for a Service without endpoints.
// - Metadata: generateName `<service>-`; labels = the Endpoints' labels (which skiff's endpoints
//   controller copies from the Service) plus kubernetes.io/service-name and
//   endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io; ownerReference to
//   the Service (controller, blockOwnerDeletion) when it exists; the Endpoints'
//   endpoints.kubernetes.io/last-change-trigger-time annotation on the slices written.
// - A slice is updated only when its address type, ports, endpoints, labels or owner
//   references differ from the wanted ones (compared after the API's decoding and defaults).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace skiff::controllers::endpointslice {

using json = nlohmann::json;

inline constexpr size_t kMaxEndpointsPerSlice = 100;
inline constexpr char kTriggerTimeAnnotation[] = "endpoints.kubernetes.io/last-change-trigger-time";
inline constexpr char kLeaderAnnotation[] = "control-plane.alpha.kubernetes.io/leader";

// False for Endpoints labelled endpointslice.kubernetes.io/skip-mirror=true, for
// leader-election locks (annotated control-plane.alpha.kubernetes.io/leader) and for names too
// long to be a label value (no Service can have them).
bool should_mirror(const json& endpoints);

// True when `slice` is labelled managed-by endpointslice-controller.k8s.io.
bool managed_by_us(const json& slice);

// One port set and its endpoints (sorted by address), in the API's canonical form.
struct PortGroup {
  json ports = json::array();
  std::vector<json> endpoints;
};

struct Groups {
  std::vector<PortGroup> groups;  // sorted by ports
  size_t skipped = 0;             // addresses left out (not IPv4, or refused by validation)
};
Groups desired_groups(const json& endpoints);

struct SlicePlan {
  std::vector<json> create;         // full objects with metadata.generateName
  std::vector<json> update;         // full objects (existing metadata, resourceVersion kept)
  std::vector<std::string> remove;  // names
  size_t skipped = 0;               // as Groups::skipped
  bool empty() const { return create.empty() && update.empty() && remove.empty(); }
};

// `existing`: the slices labelled with this Service's name (those not managed by us are
// ignored). `service` may be null (no Service: no ownerReference).
SlicePlan plan_slices(const json& endpoints, const json* service, const std::vector<json>& existing,
                      size_t max_per_slice = kMaxEndpointsPerSlice);

// Every slice of `existing` managed by us: what to delete when the Endpoints is gone.
std::vector<std::string> slices_to_remove(const std::vector<json>& existing);

}  // namespace skiff::controllers::endpointslice
