// ContainerRuntime: starts containers through skiff-shim, reports their state, signals,
// removes and execs into them. All state lives on disk under the run dir, so a new kubelet
// process (after kill -9) sees exactly what the old one started.
//
// On-disk layout (the contract with skiff-shim, see shim/README.md):
//   <run-dir>/containers/<id>/config.json   ContainerConfig as written by start()
//   <run-dir>/containers/<id>/state.json    {"shim_pid","pid","started_at"} once running
//   <run-dir>/containers/<id>/exit.json     {"exit_code","signal","finished_at","oom_killed",
//                                            "reason","message"} once the process ended, or
//                                            when it could not be started (reason StartError)
//   <run-dir>/containers/<id>/rootfs/       the overlay mount point
//   <data-dir>/containers/<id>/{upper,work} the container's writable layer
//
// Thread-safe: every method may be called from any thread; operations on one container are
// not serialized against each other (the kubelet's pod worker does that).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kubelet/runtime/spec.h"

namespace skiff::runtime {

enum class ContainerStatus { kCreated, kRunning, kExited, kUnknown };

struct ContainerState {
  std::string id;
  std::map<std::string, std::string> labels;
  ContainerStatus status = ContainerStatus::kUnknown;
  pid_t pid = 0;       // the container's init process, in the host PID namespace
  pid_t shim_pid = 0;
  int64_t created_at_ns = 0;   // unix nanoseconds
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;
  int exit_code = 0;           // 128+signal when killed by a signal, as Kubernetes reports it
  int signal = 0;
  bool oom_killed = false;
  std::string reason;          // "Completed", "Error", "OOMKilled", "StartError"
  std::string message;         // e.g. exec: "nope": executable file not found in $PATH
  std::string log_path;
};

struct ExecOptions {
  std::vector<std::string> args;
  std::vector<std::string> env;  // added to the container's environment
  bool tty = false;              // allocate a pty: stdout_fd is its master, stderr_fd is -1
  bool stdin = false;            // stdin_fd is valid (else the process gets /dev/null)
};

// A process started inside a running container. The caller owns the fds and must call wait().
struct ExecProcess {
  pid_t pid = 0;  // the skiff-shim exec helper on the host; its exit status is the command's
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

class ContainerRuntime {
 public:
  struct Options {
    std::string run_dir;   // e.g. /run/skiff
    std::string data_dir;  // e.g. /var/lib/skiff
    std::string shim_path; // the skiff-shim binary
  };
  virtual ~ContainerRuntime() = default;

  // Creates the container's directories and rootfs, spawns a detached skiff-shim and returns
  // once the container process has exec'd (status kRunning) or failed to start (status kExited,
  // reason "StartError", message saying why: bad executable, mount failure, ...). A start
  // failure is a successful call; only errors of the runtime itself return a Status.
  [[nodiscard]] virtual Result<ContainerState> start(const ContainerConfig& config) = 0;
  // Sends `sig` to the container's init process. OK if it has already exited.
  [[nodiscard]] virtual Status signal(const std::string& id, int sig) = 0;
  [[nodiscard]] virtual Result<ContainerState> inspect(const std::string& id) const = 0;
  // Every container under the run dir, in any state.
  virtual std::vector<ContainerState> list() const = 0;
  // Kills the container if it still runs (SIGKILL, waits up to `wait`), unmounts the rootfs and
  // deletes its directories (the log file stays). Idempotent: NotFound is not an error.
  [[nodiscard]] virtual Status remove(const std::string& id,
                                      std::chrono::milliseconds wait = std::chrono::seconds(10)) = 0;
  // Starts a process in the running container's namespaces, cgroup, user and security settings.
  [[nodiscard]] virtual Result<ExecProcess> exec(const std::string& id, const ExecOptions& opts) = 0;
  // Waits for an exec'd process (or kills it after `timeout`, returning Timeout) and returns its
  // exit code (128+signal when killed). Closes nothing: the caller closes its fds.
  [[nodiscard]] virtual Result<int> wait_exec(const ExecProcess& p,
                                              std::chrono::milliseconds timeout) = 0;
  // Calls `cb(id)` from a runtime thread soon after any container's exit.json appears.
  virtual void on_exit(std::function<void(const std::string& id)> cb) = 0;
};

// The real runtime: spawns `Options::shim_path`.
std::unique_ptr<ContainerRuntime> make_shim_runtime(ContainerRuntime::Options opts);

}  // namespace skiff::runtime
