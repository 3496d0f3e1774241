// Probes: one check (exec, httpGet, tcpSocket, grpc is not done) and the Prober that runs
// liveness, readiness and startup probes on their schedules with Kubernetes' semantics.
//
// Network probes open their socket inside the pod's network namespace (so they work with any
// CNI setup) and connect to `host` or the pod IP (127.0.0.1 if the pod has none yet).
//
// Prober is thread-safe; it runs a timer thread and a few worker threads (a check may block for
// up to its timeoutSeconds without delaying the others) and calls the change callback from a
// worker thread, never while holding its lock (the callback may call back into the Prober).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
// exit code, or an error: Code::kTimeout when the command ran out of time (the probe fails with
// "command timed out"), anything else (container gone) makes the result Unknown, which the
// Prober ignores as Kubernetes does. netns_path "" means the caller's own network namespace.
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

// The Prober's time source; tests use FakeClock and ProberOptions::manual.
class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  static const Clock& real();  // std::chrono::steady_clock
};

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  time_point now() const override;
  void advance(std::chrono::nanoseconds d);

 private:
  mutable std::mutex mu_;
  time_point now_{std::chrono::hours(1)};
};

// The check a Prober runs; run_once unless a test replaces it.
using CheckFn = std::function<Outcome(const proto::Probe&, const proto::Container&, const Target&)>;

struct ProberOptions {
  const Clock* clock = nullptr;  // nullptr: Clock::real(); must outlive the Prober
  int workers = 4;               // checks running at the same time
  // Tests: no threads at all; run_due() runs every due check on the calling thread.
  bool manual = false;
  CheckFn check;  // empty: run_once
};

class Prober {
 public:
  // Called whenever a probe's *result* (after thresholds) changes, and on every liveness or
  // startup failure that crossed failureThreshold (the kubelet then restarts the container).
  using OnChange = std::function<void(const std::string& pod_uid, const std::string& container,
                                      Kind kind, Result result, const std::string& message)>;
  explicit Prober(OnChange on_change, ProberOptions options = {});
  ~Prober();  // stops the threads; waits for checks in flight (at most their timeout)

  // Starts probing one container instance (identified by container_id; a new instance after a
  // restart is a new add). initialDelaySeconds counts from now. Readiness starts as Failure,
  // liveness and startup as Success; liveness and readiness wait until startup succeeded.
  void add(const std::string& pod_uid, const std::string& container_id,
           const proto::Container& container, const Target& target);
  void remove_container(const std::string& container_id);
  void remove_pod(const std::string& pod_uid);
  // Current results for a container instance; kSuccess when the container has no such probe.
  Result result(const std::string& container_id, Kind kind) const;

  // ProberOptions::manual only: runs every check that is due now (and those that become due by
  // it, such as liveness right after startup succeeded), on the calling thread.
  void run_due();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skiff::probes
