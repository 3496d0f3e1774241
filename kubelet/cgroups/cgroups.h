// CgroupDriver: one interface over cgroup v2 and cgroup v1, picked at start.
//
// Paths given to the driver are relative to its parent ("skiff" by default): the kubelet uses
// "pod<uid>" for a pod and "pod<uid>/<container-id>" for a container. On v1 the same relative
// path exists in every hierarchy the driver uses (cpu, cpuacct, memory, pids, and the others
// mounted, so a container is fully contained); on v2 it is one directory with the cpu, memory
// and pids controllers enabled down the tree.
//
// Thread-safe (stateless beyond the filesystem).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace skiff::cgroups {

struct Resources {
  std::optional<int64_t> cpu_request_millis;  // -> cpu.shares (v1) / cpu.weight (v2)
  std::optional<int64_t> cpu_limit_millis;    // -> CFS quota over cpu_period_us
  int64_t cpu_period_us = 100000;
  std::optional<int64_t> memory_limit_bytes;  // -> memory.limit_in_bytes / memory.max (+swap 0)
  std::optional<int64_t> pids_limit;          // -> pids.max
};

// Kubernetes' conversions (pkg/kubelet/cm/helpers_linux.go).
int64_t millis_to_shares(int64_t millis);   // max(2, millis*1024/1000), at most 262144
int64_t shares_to_weight(int64_t shares);   // 1 + (shares-2)*9999/262142

struct Stats {
  int64_t memory_usage_bytes = 0;
  int64_t memory_limit_bytes = -1;  // -1: unlimited
  uint64_t cpu_usage_ns = 0;
  int64_t oom_kills = 0;            // memory.events oom_kill / memory.oom_control oom_kill
  int64_t pids = 0;
};

class CgroupDriver {
 public:
  // Picks v2 when `root` is a cgroup2 mount, else v1 with the hierarchies mounted under `root`.
  // `parent` is created if missing. Unavailable when neither works (no cgroupfs, not root).
  [[nodiscard]] static Result<std::unique_ptr<CgroupDriver>> detect(
      const std::string& parent = "skiff", const std::string& root = "/sys/fs/cgroup");
  virtual ~CgroupDriver() = default;

  virtual int version() const = 0;  // 1 or 2
  // Creates `path` (and its ancestors) and applies `res`; on an existing cgroup it updates the
  // limits (idempotent). Unset fields leave the kernel default.
  [[nodiscard]] virtual Status ensure(const std::string& path, const Resources& res) = 0;
  // The absolute directories a process must join to be in `path` (one per v1 hierarchy).
  virtual std::vector<std::string> dirs(const std::string& path) const = 0;
  [[nodiscard]] virtual Status add_process(const std::string& path, pid_t pid) = 0;
  [[nodiscard]] virtual Result<Stats> stats(const std::string& path) const = 0;
  // Every pid in `path` and below.
  virtual std::vector<pid_t> pids(const std::string& path) const = 0;
  // SIGKILLs every process in `path` and below, waits (bounded) until they are gone, then
  // removes the directories bottom-up. Idempotent: a missing cgroup is OK.
  [[nodiscard]] virtual Status remove(const std::string& path) = 0;
  // Names of the child cgroups directly under `path` ("" = the parent), for orphan cleanup.
  virtual std::vector<std::string> children(const std::string& path) const = 0;
};

}  // namespace skiff::cgroups
