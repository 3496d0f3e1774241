// Probes: one check (exec, httpGet, tcpSocket, grpc is not done) and the Prober that runs
// liveness, readiness and startup probes on their schedules with Kubernetes' semantics.
//
// Network probes open their socket inside the pod's network namespace (so they work with any
// CNI setup) and connect to `host` or the pod IP (127.0.0.1 if the pod has none yet).
//
// Prober is thread-safe; it runs its own timer thread and calls the change callback from it.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "proto/pod.h"

namespace skiff::probes {

enum class Kind { kLiveness, kReadiness, kStartup };
enum class Result { kSuccess, kFailure, kUnknown };
const char* kind_name(Kind k);  // "Liveness", "Readiness", "Startup"

struct Outcome {
  Result result = Result::kUnknown;
  std::string message;  // for events: "HTTP probe failed with statuscode: 500", ...
};

// How to reach a container: its pod's netns and IP, and a way to exec in it (argv, timeout) ->
// exit code (or an error: timeout, container gone).
struct Target {
  std::string netns_path;
  std::string pod_ip;
  std::function<skiff::Result<int>(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout)>
      exec;
};

// Runs `probe` once (timeoutSeconds honoured). Named ports resolve through `container`.
Outcome run_once(const proto::Probe& probe, const proto::Container& container,
                 const Target& target);

class Prober {
 public:
  // Called whenever a probe's *result* (after thresholds) changes, and on every liveness or
  // startup failure that crossed failureThreshold (the kubelet then restarts the container).
  using OnChange = std::function<void(const std::string& pod_uid, const std::string& container,
                                      Kind kind, Result result, const std::string& message)>;
  explicit Prober(OnChange on_change);
  ~Prober();

  // Starts probing one container instance (identified by container_id; a new instance after a
  // restart is a new add). initialDelaySeconds counts from now. Readiness starts as Failure,
  // liveness and startup as Success; liveness and readiness wait until startup succeeded.
  void add(const std::string& pod_uid, const std::string& container_id,
           const proto::Container& container, const Target& target);
  void remove_container(const std::string& container_id);
  void remove_pod(const std::string& pod_uid);
  // Current results for a container instance; kSuccess when the container has no such probe.
  Result result(const std::string& container_id, Kind kind) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::probes
