// The two CgroupDriver strategies behind CgroupDriver::detect, exposed so tests can build them
// on a fake root (a temp dir of plain files standing in for cgroupfs). Private to
// kubelet/cgroups and its tests; the kubelet uses only cgroups.h.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kubelet/cgroups/cgroups.h"

namespace skiff::cgroups {

struct DriverOptions {
  // Fake cgroupfs: files are created when written, and removal deletes the plain files a
  // directory holds before rmdir (the kernel's files vanish by themselves with the directory).
  bool fake_fs = false;
  // How long remove() waits for killed processes to leave, and how often it retries rmdir on
  // EBUSY (a task that is exiting still pins the directory for a moment).
  int remove_wait_ms = 10000;
  int rmdir_retries = 100;
};

// One v1 hierarchy: where it is mounted and which controllers it carries ("cpu","cpuacct"), or
// its name ("name=systemd").
struct V1Hierarchy {
  std::string mount;
  std::vector<std::string> controllers;
  bool has(std::string_view c) const;
};

// The v1 hierarchies in /proc/self/mountinfo text mounted at or under `root`, one per
// hierarchy (a hierarchy mounted twice is listed once), controllers from the super options.
std::vector<V1Hierarchy> parse_v1_mounts(std::string_view mountinfo, const std::string& root);

// REQUIRES `root` is a cgroup2 mount (or a fake one). Creates `parent` with the cpu, memory and
// pids controllers (those the root offers) enabled down to it.
Result<std::unique_ptr<CgroupDriver>> make_v2_driver(const std::string& root,
                                                     const std::string& parent,
                                                     DriverOptions opts = {});
// Creates `parent` in every hierarchy (cpuset: cpus/mems copied from the level above).
Result<std::unique_ptr<CgroupDriver>> make_v1_driver(std::vector<V1Hierarchy> hierarchies,
                                                     const std::string& parent,
                                                     DriverOptions opts = {});

}  // namespace skiff::cgroups
