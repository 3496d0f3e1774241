// The kubelet's pure decisions about one pod, from what the runtime reports:
//   plan_pod()       which containers to start (init containers in order,
//   restarts per
//                    restartPolicy with back-off), which to kill, whether the
//                    pod is finished;
//   compute_status() the PodStatus to report: phase, conditions, container
//   states.
// As Kubernetes' kuberuntime computePodActions and kubelet getPhase /
// generateAPIPodStatus do.
//
// Pure functions over plain data; thread-safe. The Kubelet (kubelet.h) does the
// I/O.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kubelet/backoff.h"
#include "kubelet/runtime/runtime.h"
#include "proto/pod.h"

namespace skiff::kubelet {

using TimePoint = std::chrono::system_clock::time_point;

// One runtime container of a pod, identified by its labels.
struct Instance {
  std::string name;
  int attempt = 0;
  bool init = false;
  std::string hash;
  std::string image_ref;  // what the spec asked for, as given
  std::string image_id;   // "sha256:..."
  runtime::ContainerState state;
  bool running() const {
    return state.status == runtime::ContainerStatus::kRunning ||
           state.status == runtime::ContainerStatus::kCreated;
  }
  bool exited() const { return state.status == runtime::ContainerStatus::kExited; }
};

// Builds an Instance from a runtime state's labels (attempt, init, hash,
// image).
Instance instance_from(const runtime::ContainerState& s);
// Labels used by instance_from besides runtime/spec.h's.
inline constexpr const char* kLabelImageRef = "skiff.image.ref";
inline constexpr const char* kLabelImageId = "skiff.image.id";

// The newest and second-newest instance of each container name.
struct Observed {
  std::map<std::string, const Instance*> latest, previous;
  explicit Observed(const std::vector<Instance>& all);
};

struct StartAction {
  std::string name;
  bool init = false;
  int attempt = 0;
  bool restart = false;  // a previous instance exists: counts toward back-off
};

struct KillAction {
  std::string id;
  std::string name;
  std::string reason;  // for the Killing event
};

struct PodPlan {
  std::vector<StartAction> start;
  std::vector<KillAction> kill;
  // Container name -> back-off message for those waiting in CrashLoopBackOff.
  std::map<std::string, std::string> backoff;
  // When to look again (the earliest back-off end), if any.
  std::optional<TimePoint> resync_at;
  bool init_done = false;    // every init container succeeded (or there are none)
  bool init_failed = false;  // an init container failed and restartPolicy is Never
  bool finished = false;     // nothing runs and nothing will be restarted
  // spec.activeDeadlineSeconds passed (apply_active_deadline): the pod is Failed with
  // DeadlineExceeded, nothing starts, everything running stops.
  bool deadline_exceeded = false;
};

// `backoff` keys are "<pod uid>/<container name>". `hashes` maps a container
// name to the hash of its current spec; a running instance with another hash is
// killed (and restarted).
PodPlan plan_pod(const proto::Pod& pod, const std::vector<Instance>& instances,
                 const Backoff& backoff, TimePoint now);

// Kubernetes' activeDeadlineHandler: a pod may be active on the node spec.activeDeadlineSeconds
// after its status.startTime. When that ends (saturated far out), if the pod has a deadline and
// has started; nullopt otherwise.
std::optional<TimePoint> active_deadline(const proto::Pod& pod,
                                         const std::optional<proto::Time>& start_time);
// At or past the deadline: the plan starts nothing and stops every running instance; the status
// becomes Failed (compute_status). Before it: resync_at is no later than the deadline.
void apply_active_deadline(PodPlan& plan, const proto::Pod& pod,
                           const std::vector<Instance>& instances,
                           const std::optional<proto::Time>& start_time, TimePoint now);
inline constexpr const char* kDeadlineExceeded = "DeadlineExceeded";
inline constexpr const char* kDeadlineMessage =
    "Pod was active on the node longer than the specified deadline";

// A waiting reason recorded by the sync (ErrImagePull,
// CreateContainerConfigError, ...).
struct Waiting {
  std::string reason;
  std::string message;
};

struct StatusInput {
  const proto::Pod* pod = nullptr;
  const std::vector<Instance>* instances = nullptr;
  const PodPlan* plan = nullptr;
  std::map<std::string, Waiting> waiting;  // container name -> reason of the last failed step
  std::function<bool(const std::string& id)> ready;    // readiness result (no probe: true)
  std::function<bool(const std::string& id)> started;  // startup result (no probe: true)
  std::string pod_ip;
  std::string host_ip;
  std::optional<proto::Time> start_time;
  std::string pod_reason,
      pod_message;  // e.g. no network: a message kept in status.message
  TimePoint now;
};

proto::PodStatus compute_status(const StatusInput& in);

// Kubernetes' getPhase over the container statuses computed above.
std::string pod_phase(const proto::PodSpec& spec, const std::vector<proto::ContainerStatus>& init,
                      const std::vector<proto::ContainerStatus>& regular, bool init_failed);

// True when the two statuses differ in anything but heartbeat-like noise (they
// are compared as JSON).
bool status_changed(const proto::PodStatus& a, const proto::PodStatus& b);

}  // namespace skiff::kubelet
