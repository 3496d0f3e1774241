// Pure helpers of the Deployment controller, Kubernetes' pkg/controller/deployment/util in
// C++: the pod-template hash, template equality ignoring that hash, maxSurge/maxUnavailable
// fenceposts, the revision and replicas annotations, conditions, and the orderings the
// controller sorts ReplicaSets by. No I/O; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/deployment.h"
#include "proto/replicaset.h"

namespace skiff::controllers::deployment {

inline constexpr const char* kHashLabel = "pod-template-hash";
inline constexpr const char* kRevisionAnnotation = "deployment.kubernetes.io/revision";
inline constexpr const char* kRevisionHistoryAnnotation =
    "deployment.kubernetes.io/revision-history";
inline constexpr const char* kDesiredReplicasAnnotation =
    "deployment.kubernetes.io/desired-replicas";
inline constexpr const char* kMaxReplicasAnnotation = "deployment.kubernetes.io/max-replicas";
// Revision history is capped at this many characters (Kubernetes' default).
inline constexpr size_t kMaxRevisionHistoryChars = 2000;

// Condition types and reasons (kubectl rollout status reads ProgressDeadlineExceeded).
inline constexpr const char* kAvailable = "Available";
inline constexpr const char* kProgressing = "Progressing";
inline constexpr const char* kReplicaFailure = "ReplicaFailure";
inline constexpr const char* kNewRSReason = "NewReplicaSetCreated";
inline constexpr const char* kFoundNewRSReason = "FoundNewReplicaSet";
inline constexpr const char* kRSUpdatedReason = "ReplicaSetUpdated";
inline constexpr const char* kNewRSAvailableReason = "NewReplicaSetAvailable";
inline constexpr const char* kTimedOutReason = "ProgressDeadlineExceeded";
inline constexpr const char* kPausedReason = "DeploymentPaused";
inline constexpr const char* kResumedReason = "DeploymentResumed";
inline constexpr const char* kFailedRSCreateReason = "ReplicaSetCreateError";
inline constexpr const char* kMinAvailableReason = "MinimumReplicasAvailable";
inline constexpr const char* kMinUnavailableReason = "MinimumReplicasUnavailable";

using proto::Deployment;
using proto::ReplicaSet;
using RSList = std::vector<ReplicaSet*>;

// FNV-32a over the template's canonical JSON (keys sorted) and, when set, the collision count
// as 8 little-endian bytes; the decimal sum rendered with SafeEncodeString's alphabet.
// Stable across runs; not byte-equal to Kubernetes' (which hashes Go's spew dump).
std::string compute_hash(const proto::PodTemplateSpec& t, std::optional<int32_t> collision_count);
uint32_t fnv32a(const std::string& data, uint32_t h = 2166136261u);
std::string safe_encode_string(const std::string& s);

// Template equality ignoring the pod-template-hash label.
bool equal_ignore_hash(const proto::PodTemplateSpec& a, const proto::PodTemplateSpec& b);

// intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of total rounded up or down.
// nullopt when a string is not a percentage.
std::optional<int32_t> scaled_value(const proto::IntOrString& v, int32_t total, bool round_up);

int32_t replicas_of(const Deployment& d);  // spec.replicas, 1 when unset
int32_t replicas_of(const ReplicaSet& rs);
bool is_rolling_update(const Deployment& d);
// ResolveFenceposts on the deployment's strategy; both zero => unavailable 1.
void resolve_fenceposts(const Deployment& d, int32_t* surge, int32_t* unavailable);
int32_t max_surge(const Deployment& d);
int32_t max_unavailable(const Deployment& d);  // capped at replicas; 0 for Recreate

int64_t revision_of(const ReplicaSet& rs);  // 0 when missing or malformed
int64_t max_revision(const RSList& l);

// Sets desired-replicas / max-replicas; true when changed.
bool set_replicas_annotations(ReplicaSet& rs, int32_t desired, int32_t max);
bool replicas_annotations_need_update(const ReplicaSet& rs, int32_t desired, int32_t max);
std::optional<int32_t> desired_replicas_annotation(const ReplicaSet& rs);
std::optional<int32_t> max_replicas_annotation(const ReplicaSet& rs);
// Kubernetes' annotationsToSkip (not copied between Deployment and ReplicaSet).
bool skip_copy_annotation(const std::string& key);
// SetNewReplicaSetAnnotations: copies the deployment's annotations, raises the revision (and
// records the previous one in revision-history), and for a new RS the replicas annotations.
bool set_new_rs_annotations(const Deployment& d, ReplicaSet& rs, const std::string& new_revision,
                            bool exists);

// Conditions.
proto::DeploymentCondition new_condition(const std::string& type, const std::string& status,
                                         const std::string& reason, const std::string& message,
                                         proto::Time now);
const proto::DeploymentCondition* get_condition(const proto::DeploymentStatus& s,
                                                const std::string& type);
// Kubernetes' SetDeploymentCondition: no-op when status and reason are unchanged; keeps
// lastTransitionTime when only the reason changes.
void set_condition(proto::DeploymentStatus& s, proto::DeploymentCondition c);
void remove_condition(proto::DeploymentStatus& s, const std::string& type);
bool has_progress_deadline(const Deployment& d);
bool has_revision_history_limit(const Deployment& d);

// Sums over ReplicaSets.
int32_t spec_replicas_sum(const RSList& l);
int32_t actual_replicas_sum(const RSList& l);
int32_t ready_replicas_sum(const RSList& l);
int32_t available_replicas_sum(const RSList& l);
// The available replicas a rolling update may count on: 0 while the ReplicaSet controller has not
// yet observed the latest spec (status.observedGeneration < metadata.generation), else at most
// spec.replicas. A just-scaled-down ReplicaSet still reports the pods it is deleting as
// available; counting them let an immediate rollback scale the other side down past
// maxUnavailable. Being conservative only slows a rollout until the status catches up (its
// update re-queues the Deployment).
int32_t countable_available(const ReplicaSet& rs);
int32_t countable_available_sum(const RSList& l);
RSList filter_active(const RSList& l);  // spec.replicas > 0

// Orderings (stable tie-breaks by name).
bool older(const ReplicaSet& a, const ReplicaSet& b);  // creation time, then name
void sort_by_creation(RSList& l);
void sort_by_revision(RSList& l);
void sort_by_size_newer(RSList& l);  // larger first, newer first on ties
void sort_by_size_older(RSList& l);  // larger first, older first on ties

bool deployment_complete(const Deployment& d, const proto::DeploymentStatus& s);
bool deployment_progressing(const Deployment& d, const proto::DeploymentStatus& s);
bool deployment_timed_out(const Deployment& d, const proto::DeploymentStatus& s,
                          proto::Clock::time_point now);
bool is_saturated(const Deployment& d, const ReplicaSet* rs);

// The controllerRef of an object, if any.
const proto::OwnerReference* controller_of(const proto::ObjectMeta& m);

}  // namespace skiff::controllers::deployment
