// Small filesystem helpers shared by the v1 and v2 drivers: one write() per value (cgroupfs
// parses each write as one command), errors that keep errno and name the file. Private.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "kubelet/cgroups/drivers.h"

namespace skiff::cgroups::fs {

std::string join(const std::string& dir, const std::string& rel);
// Invalid unless `rel` is a relative path without "." or ".." components ("" is allowed).
Status check_relative(const std::string& rel);

bool exists(const std::string& path);
// Writes `value` with one write(); `create` (fake cgroupfs) creates/truncates the file.
Status write(const std::string& path, const std::string& value, bool create);
Result<std::string> read(const std::string& path);
// A single integer; "max" reads as -1.
Result<int64_t> read_int(const std::string& path);
// The value of `key` in a flat-keyed file ("oom_kill 3"); 0 when the key is absent.
Result<int64_t> read_key(const std::string& path, const std::string& key);

// mkdir -p of base/rel, calling `created(dir)` for each directory it made, top-down (so cpuset
// can fill cpus/mems before anything joins).
Status make_dirs(const std::string& base, const std::string& rel,
                 const std::function<Status(const std::string&)>& created);
// Names of the subdirectories of `dir` (empty when it does not exist).
std::vector<std::string> subdirs(const std::string& dir);
// The pids in dir/cgroup.procs and in every descendant's.
std::vector<pid_t> procs_recursive(const std::string& dir);
// rmdir of `dir` and its descendants, deepest first, retrying EBUSY. Missing is OK.
Status remove_tree(const std::string& dir, const DriverOptions& opts);
// Sends SIGKILL to every process `list()` returns until it returns none or `wait_ms` passes.
// The caller's processes may be zombies the kernel still lists for a moment; the loop only waits.
Status kill_all(const std::function<std::vector<pid_t>()>& list, const std::string& what,
                int wait_ms);

}  // namespace skiff::cgroups::fs
