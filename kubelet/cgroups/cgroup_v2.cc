// cgroup v2: one directory per cgroup, controllers enabled top-down through
// cgroup.subtree_control (the "no internal processes" rule means only leaves hold processes, so
// the kubelet puts processes in container cgroups, never in the pod or parent directories).
#include <signal.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "kubelet/cgroups/cgfs.h"
#include "kubelet/cgroups/drivers.h"

namespace skiff::cgroups {
namespace {

class V2Driver final : public CgroupDriver {
 public:
  V2Driver(std::string root, std::string parent, DriverOptions opts)
      : root_(std::move(root)), parent_(std::move(parent)), opts_(opts) {}

  // Reads what the root offers, enables it down to the parent, probes optional files.
  Status init() {
    auto offered = fs::read(fs::join(root_, "cgroup.controllers"));
    if (!offered) return offered.status().with_context("cgroup v2 root " + root_);
    std::istringstream in(*offered);
    std::string c;
    while (in >> c) {
      if (c == "cpu" || c == "memory" || c == "pids") controllers_.insert(c);
    }
    SKIFF_RETURN_IF_ERROR(ensure_dirs(""));
    std::string pdir = fs::join(root_, parent_);
    has_kill_ = fs::exists(fs::join(pdir, "cgroup.kill"));
    has_swap_ = fs::exists(fs::join(pdir, "memory.swap.max"));
    return Status::ok();
  }

  int version() const override { return 2; }

  Status ensure(const std::string& path, const Resources& res) override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    SKIFF_RETURN_IF_ERROR(ensure_dirs(path));
    std::string dir = dir_of(path);
    if (res.cpu_request_millis) {
      SKIFF_RETURN_IF_ERROR(need("cpu", "a cpu request", dir));
      int64_t w = shares_to_weight(millis_to_shares(*res.cpu_request_millis));
      SKIFF_RETURN_IF_ERROR(put(dir, "cpu.weight", std::to_string(w)));
    }
    if (res.cpu_limit_millis) {
      SKIFF_RETURN_IF_ERROR(need("cpu", "a cpu limit", dir));
      SKIFF_RETURN_IF_ERROR(put(dir, "cpu.max", cpu_max(res)));
    }
    if (res.memory_limit_bytes) {
      SKIFF_RETURN_IF_ERROR(need("memory", "a memory limit", dir));
      SKIFF_RETURN_IF_ERROR(put(dir, "memory.max", std::to_string(*res.memory_limit_bytes)));
      // No swap: a limit that can spill to swap is not the limit the pod asked for.
      if (has_swap_) SKIFF_RETURN_IF_ERROR(put(dir, "memory.swap.max", "0"));
    }
    if (res.pids_limit) {
      SKIFF_RETURN_IF_ERROR(need("pids", "a pids limit", dir));
      SKIFF_RETURN_IF_ERROR(put(dir, "pids.max", std::to_string(*res.pids_limit)));
    }
    return Status::ok();
  }

  std::vector<std::string> dirs(const std::string& path) const override { return {dir_of(path)}; }

  Status add_process(const std::string& path, pid_t pid) override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    return fs::write(fs::join(dir_of(path), "cgroup.procs"), std::to_string(pid), opts_.fake_fs);
  }

  Result<Stats> stats(const std::string& path) const override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    std::string dir = dir_of(path);
    Stats s;
    if (controllers_.count("memory")) {
      auto cur = fs::read_int(fs::join(dir, "memory.current"));
      if (!cur) return cur.status();
      s.memory_usage_bytes = *cur;
      auto max = fs::read_int(fs::join(dir, "memory.max"));
      if (!max) return max.status();
      s.memory_limit_bytes = *max;
      auto oom = fs::read_key(fs::join(dir, "memory.events"), "oom_kill");
      if (!oom) return oom.status();
      s.oom_kills = *oom;
    }
    // cpu.stat's usage_usec is there even without the cpu controller (it is core accounting).
    auto usec = fs::read_key(fs::join(dir, "cpu.stat"), "usage_usec");
    if (!usec) return usec.status();
    s.cpu_usage_ns = static_cast<uint64_t>(*usec) * 1000;
    if (controllers_.count("pids")) {
      auto n = fs::read_int(fs::join(dir, "pids.current"));
      if (!n) return n.status();
      s.pids = *n;
    }
    return s;
  }

  std::vector<pid_t> pids(const std::string& path) const override {
    if (!fs::check_relative(path)) return {};
    return fs::procs_recursive(dir_of(path));
  }

  Status remove(const std::string& path) override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    if (path.empty()) return Status::invalid("refusing to remove the cgroup parent itself");
    std::string dir = dir_of(path);
    if (!fs::exists(dir)) return Status::ok();
    // cgroup.kill (5.14+) kills the whole subtree atomically, forks included; the SIGKILL loop
    // below then only waits. Without it the loop races forks, which is why it repeats.
    if (has_kill_) {
      Status st = fs::write(fs::join(dir, "cgroup.kill"), "1", opts_.fake_fs);
      if (!st && st.os_errno() != ENOENT) return st;
    }
    SKIFF_RETURN_IF_ERROR(
        fs::kill_all([&] { return fs::procs_recursive(dir); }, dir, opts_.remove_wait_ms));
    return fs::remove_tree(dir, opts_);
  }

  std::vector<std::string> children(const std::string& path) const override {
    if (!fs::check_relative(path)) return {};
    return fs::subdirs(dir_of(path));
  }

 private:
  std::string dir_of(const std::string& path) const {
    return fs::join(fs::join(root_, parent_), path);
  }

  Status need(const std::string& ctrl, const std::string& what, const std::string& dir) const {
    if (controllers_.count(ctrl)) return Status::ok();
    return Status::unavailable("cannot apply " + what + " to " + dir + ": the cgroup v2 root " +
                               root_ + " does not offer the " + ctrl + " controller");
  }

  Status put(const std::string& dir, const std::string& file, const std::string& value) {
    return fs::write(fs::join(dir, file), value, opts_.fake_fs);
  }

  static std::string cpu_max(const Resources& res) {
    int64_t period = res.cpu_period_us > 0 ? res.cpu_period_us : 100000;
    // The kernel refuses quotas under 1 ms; Kubernetes clamps the same way.
    int64_t quota = std::max<int64_t>(*res.cpu_limit_millis * period / 1000, 1000);
    return std::to_string(quota) + " " + std::to_string(period);
  }

  // Makes parent/path, enabling our controllers in the subtree_control of the root and of
  // every directory above the leaf, so the leaf gets cpu.*, memory.*, pids.* files.
  Status ensure_dirs(const std::string& path) {
    std::string rel = parent_.empty() ? path : (path.empty() ? parent_ : parent_ + "/" + path);
    std::vector<std::string> parts;
    std::stringstream ss(rel);
    std::string part;
    while (std::getline(ss, part, '/')) {
      if (!part.empty()) parts.push_back(part);
    }
    std::string cur = root_;
    for (const auto& p : parts) {
      SKIFF_RETURN_IF_ERROR(enable_controllers(cur));
      SKIFF_RETURN_IF_ERROR(fs::make_dirs(cur, p, {}));
      cur = fs::join(cur, p);
    }
    return Status::ok();
  }

  Status enable_controllers(const std::string& dir) {
    std::string file = fs::join(dir, "cgroup.subtree_control");
    std::set<std::string> on;
    if (auto text = fs::read(file)) {
      std::istringstream in(*text);
      std::string c;
      while (in >> c) on.insert(c[0] == '+' ? c.substr(1) : c);
    }
    std::string missing;
    for (const auto& c : controllers_) {
      if (!on.count(c)) missing += (missing.empty() ? "+" : " +") + c;
    }
    if (missing.empty()) return Status::ok();
    // One write for all: the kernel takes a space-separated list, and it keeps the fake simple.
    return fs::write(file, missing, opts_.fake_fs);
  }

  std::string root_, parent_;
  DriverOptions opts_;
  std::set<std::string> controllers_;
  bool has_kill_ = false, has_swap_ = false;
};

}  // namespace

Result<std::unique_ptr<CgroupDriver>> make_v2_driver(const std::string& root,
                                                     const std::string& parent,
                                                     DriverOptions opts) {
  SKIFF_RETURN_IF_ERROR(fs::check_relative(parent));
  auto d = std::make_unique<V2Driver>(root, parent, opts);
  SKIFF_RETURN_IF_ERROR(d->init());
  return std::unique_ptr<CgroupDriver>(std::move(d));
}

}  // namespace skiff::cgroups
