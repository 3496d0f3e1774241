// ContainerConfig: everything the runtime needs to start one container, as plain data.
//
// The kubelet builds it from the Pod spec, the image config, the sandbox and the volumes; the
// runtime writes it to <run-dir>/containers/<id>/config.json, where skiff-shim reads it. No
// Kubernetes type appears here, so the shim and the runtime do not depend on proto/.
// Value type; not thread-safe to mutate concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace skiff::runtime {

// A mount inside the container, applied in order after the rootfs and the default /proc, /dev,
// /sys mounts. type "bind" bind-mounts `source` (a file or directory on the host; recursive);
// any other type ("tmpfs", "mqueue", ...) mounts a new filesystem of that type with `source` as
// its device name. options: "ro", "rw", "nosuid", "nodev", "noexec", plus filesystem data
// ("size=64m", "mode=1777") passed to mount(2) as data.
struct Mount {
  std::string destination;  // absolute path inside the container
  std::string type = "bind";
  std::string source;
  std::vector<std::string> options;
};

// Labels the kubelet puts on every container so it can re-adopt it after a restart.
inline constexpr const char* kLabelPodUid = "skiff.pod.uid";
inline constexpr const char* kLabelPodName = "skiff.pod.name";
inline constexpr const char* kLabelPodNamespace = "skiff.pod.namespace";
inline constexpr const char* kLabelContainerName = "skiff.container.name";
inline constexpr const char* kLabelAttempt = "skiff.container.attempt";  // restart count
inline constexpr const char* kLabelSpecHash = "skiff.container.hash";    // spec change detection
inline constexpr const char* kLabelInit = "skiff.container.init";        // "true" for init containers

struct ContainerConfig {
  std::string id;  // empty: the runtime makes one (64 lowercase hex digits)
  std::map<std::string, std::string> labels;

  // The pod sandbox: its directory holds ns/net, ns/ipc, ns/uts (see sandbox.h).
  std::string sandbox_dir;

  // Root filesystem: an overlay of these read-only layer directories (TOP first, as overlayfs'
  // lowerdir wants them) with a fresh upper dir owned by the container. If `rootfs_path` is set
  // instead, that directory is used as it is (bench/podstart compares against crun this way).
  std::vector<std::string> image_layers;
  std::string rootfs_path;
  bool read_only_rootfs = false;

  std::vector<std::string> args;  // argv; args[0] resolved through PATH in env like execvp
  std::vector<std::string> env;   // "NAME=value"
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;

  std::vector<Mount> mounts;

  // Absolute cgroup directories the container joins before exec (one per v1 hierarchy, one on
  // v2). The shim also reads the OOM-kill counter from them (memory.events / memory.oom_control).
  std::vector<std::string> cgroup_dirs;

  // Security. Capability names as Kubernetes spells them ("NET_ADMIN"; "CAP_" optional).
  bool privileged = false;            // all capabilities, no seccomp, /sys read-write
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;  // "ALL" drops everything not in cap_add
  bool no_new_privs = true;
  bool seccomp_default = true;  // the default filter (refuses kexec, module loading, ptrace ...)

  // Logging: stdout/stderr in the CRI log format ("<RFC3339Nano> stdout F line").
  std::string log_path;
  int64_t log_max_bytes = 10 * 1024 * 1024;  // rotate when the file would exceed this
  int log_max_files = 5;                     // log_path, log_path.1, ... (oldest dropped)

  int oom_score_adj = 0;
};

}  // namespace skiff::runtime
