// StatefulSets and DaemonSets in skiffctl, after kubectl 1.32's polymorphichelpers and
// describers: the rollout status viewers (StatefulSetStatusViewer, DaemonSetStatusViewer), the
// history from ControllerRevisions (printHistory), the rollback plan (StatefulSetRollbacker,
// DaemonSetRollbacker: the revision's data re-applied as a strategic merge patch) and
// `describe statefulset`. The pure functions take the API server's JSON and are thread-safe;
// describe_statefulset_of makes the pod list request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/context.h"
#include "cli/describe_writer.h"
#include "cli/workloads.h"
#include "common/status.h"

namespace skiff::cli {

// kubectl's StatefulSetStatusViewer.Status ("Waiting for 1 pods to be ready...",
// "partitioned roll out complete: 3 new pods have been updated...", "statefulset rolling update
// complete 3 pods at revision web-x..."); an error for an OnDelete set ("rollout status is only
// available for RollingUpdate strategy type"). A missing strategy type counts as RollingUpdate
// (the server's default).
[[nodiscard]] Result<RolloutStatusView> statefulset_status_view(const json& sts);
// kubectl's DaemonSetStatusViewer.Status.
[[nodiscard]] Result<RolloutStatusView> daemonset_status_view(const json& ds);

// The ControllerRevisions in `items` controlled by `owner` (ownerReference with controller true
// and the owner's uid), by revision number.
std::vector<json> controlled_revisions(const json& owner, const json& items);
// kubectl's printHistory over revisions: revision 0 gives the REVISION/CHANGE-CAUSE table (or
// "No rollout history found."), a revision the pod template it holds (describe layout, raw
// tabs); an error "unable to find the specified revision".
[[nodiscard]] Result<std::string> revision_history(const std::vector<json>& revisions,
                                                   int64_t revision);
// kubectl's StatefulSetRollbacker / DaemonSetRollbacker without the I/O: the revision
// `to_revision` names (0: the one before the latest), and its data as the strategic merge patch
// body; skipped when the owner's template already is that revision's.
[[nodiscard]] Result<RollbackPlan> plan_revision_rollback(const json& owner,
                                                          const std::vector<json>& revisions,
                                                          int64_t to_revision);
// {"spec":{"template":{...,"$patch":"replace"}}}: what the controllers store as revision data
// (Kubernetes' getPatch).
json template_revision_data(const json& owner);

// kubectl 1.32's describeStatefulSet without the events: Name, Namespace, CreationTimestamp,
// Selector, Labels, Annotations, Replicas "N desired | M total", Update Strategy (+ Partition),
// Pods Status, Pod Template, Volume Claims.
void describe_statefulset(DescribeWriter& w, const json& sts, const PodCounts& pods,
                          const std::string& pods_error = "");
// Lists the set's pods (by its selector) and describes it; describe.cc appends the events.
void describe_statefulset_of(Context& ctx, DescribeWriter& w, const json& sts);

}  // namespace skiff::cli
