// The pure parts of Kubernetes' pkg/controller/statefulset/stateful_set_utils.go on objects as
// JSON: a pod's ordinal and identity (name `<set>-<ordinal>`, hostname, subdomain, the
// statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index labels), its storage (the
// claims `<template>-<set>-<ordinal>` of the volumeClaimTemplates and the volumes naming them),
// its revision label, pod health, the revision data of a set (getPatch) and its inverse
// (ApplyRevision), and the ownerReferences persistentVolumeClaimRetentionPolicy asks for.
// Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace skiff::controllers::statefulset {

using json = nlohmann::json;
using WallTime = std::chrono::system_clock::time_point;

inline constexpr const char* kPodNameLabel = "statefulset.kubernetes.io/pod-name";
inline constexpr const char* kPodIndexLabel = "apps.kubernetes.io/pod-index";
inline constexpr const char* kRevisionLabel = "controller-revision-hash";

// The parent name and ordinal of "<parent>-<ordinal>" (nullopt when the name has no such form).
struct ParentOrdinal {
  std::string parent;
  int ordinal = -1;
};
std::optional<ParentOrdinal> parse_pod_name(const std::string& name);
// The ordinal of a pod of `set` (-1 when its name is not "<set>-<n>").
int get_ordinal(const json& pod);
std::string pod_name(const json& set, int ordinal);
// spec.ordinals.start, and the last ordinal in range (start + replicas - 1).
int start_ordinal(const json& set);
int end_ordinal(const json& set);
int replicas_of(const json& set);
// start <= ordinal <= end.
bool in_ordinal_range(const json& pod, const json& set);
// The pod's name parses as "<set name>-<n>".
bool is_member_of(const json& set, const json& pod);

// identityMatches: ordinal, name, namespace and the pod-name and pod-index labels.
bool identity_matches(const json& set, const json& pod);
// updateIdentity: sets namespace and the two identity labels.
void update_identity(const json& set, json& pod);
// storageMatches: every claim template has a volume of that name claiming its claim.
bool storage_matches(const json& set, const json& pod);
// updateStorage: the claim volumes first (template order), then the pod's other volumes.
void update_storage(const json& set, json& pod);

// getPersistentVolumeClaims: the claims the pod of `ordinal` needs: template name -> claim
// (name `<template>-<set>-<ordinal>`, the set's namespace, labels = template labels + the
// selector's matchLabels, no status), in template order.
std::vector<std::pair<std::string, json>> claims_for(const json& set, int ordinal);

// newStatefulSetPod: the template's labels, annotations, finalizers and spec, the controller
// ownerReference, name `<set>-<ordinal>`, identity, hostname = name, subdomain =
// spec.serviceName, claim volumes.
json new_pod(const json& set, int ordinal);
// The pod's controller-revision-hash label ("" when absent) and its setter.
std::string pod_revision(const json& pod);
void set_pod_revision(json& pod, const std::string& revision);

// Pod state as the controller judges it.
bool is_terminating(const json& obj);
bool is_failed(const json& pod);     // phase Failed
bool is_succeeded(const json& pod);  // phase Succeeded
bool is_pending(const json& pod);    // phase Pending
bool is_running_and_ready(const json& pod);
// Running and ready for at least min_ready_seconds at `now` (IsPodAvailable).
bool is_running_and_available(const json& pod, int min_ready_seconds, WallTime now);
// Running, ready and not terminating.
bool is_healthy(const json& pod);
// When the pod becomes available (nullopt: not ready, or already available).
std::optional<std::chrono::nanoseconds> time_until_available(const json& pod, int min_ready_seconds,
                                                             WallTime now);

// getPatch: the revision data of a set: {"spec":{"template":{...,"$patch":"replace"}}}.
json revision_data(const json& set);
// ApplyRevision: the set with its template replaced by the revision data's.
json apply_revision(const json& set, const json& data);

// An ownerReference (apiVersion, kind, name, uid) to `owner` (optionally the controller one).
json owner_ref(const json& owner, const char* api_version, const char* kind, bool controller);

// updateClaimOwnerRefForSetAndPod: `claim` with its ownerReferences as the set's
// persistentVolumeClaimRetentionPolicy wants them for `pod` (Retain/Retain: neither the set nor
// the pod; WhenDeleted=Delete: the set; WhenScaled=Delete: the pod when its ordinal is out of
// range). Returns true when it changed `claim`.
bool update_claim_owner_refs(json& claim, const json& set, const json& pod);
// hasStaleOwnerRef: the claim names a Pod of the pod's name but another uid (the claim belongs
// to a deleted incarnation and is waiting for the garbage collector).
bool has_stale_owner_ref(const json& claim, const json& pod);

}  // namespace skiff::controllers::statefulset
