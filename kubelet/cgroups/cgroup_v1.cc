// cgroup v1: the same relative directory in every mounted hierarchy. Limits go to the cpu,
// memory and pids hierarchies; the others (cpuacct, cpuset, devices, freezer, blkio, named
// ones) are joined too so that a container is inside all of them, like runc and crun do.
#include <algorithm>
#include <set>

#include "kubelet/cgroups/cgfs.h"
#include "kubelet/cgroups/drivers.h"

namespace skiff::cgroups {
namespace {

// Above this the kernel's "unlimited" (PAGE_COUNTER_MAX pages, rounded) is what we read.
constexpr int64_t kUnlimitedFloor = int64_t{1} << 62;

class V1Driver final : public CgroupDriver {
 public:
  V1Driver(std::vector<V1Hierarchy> hs, std::string parent, DriverOptions opts)
      : hs_(std::move(hs)), parent_(std::move(parent)), opts_(opts) {}

  Status init() {
    for (const auto& h : hs_) SKIFF_RETURN_IF_ERROR(make(h, ""));
    if (const V1Hierarchy* m = find("memory")) {
      has_memsw_ = fs::exists(fs::join(m->mount, "memory.memsw.limit_in_bytes"));
    }
    return Status::ok();
  }

  int version() const override { return 1; }

  Status ensure(const std::string& path, const Resources& res) override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    for (const auto& h : hs_) SKIFF_RETURN_IF_ERROR(make(h, path));
    if (res.cpu_request_millis || res.cpu_limit_millis) {
      auto cpu_dir = dir_for("cpu", "a cpu request or limit", path);
      if (!cpu_dir) return cpu_dir.status();
      const std::string& cpu = *cpu_dir;
      if (res.cpu_request_millis) {
        int64_t shares = millis_to_shares(*res.cpu_request_millis);
        SKIFF_RETURN_IF_ERROR(put(cpu, "cpu.shares", std::to_string(shares)));
      }
      if (res.cpu_limit_millis) {
        int64_t period = res.cpu_period_us > 0 ? res.cpu_period_us : 100000;
        int64_t quota = std::max<int64_t>(*res.cpu_limit_millis * period / 1000, 1000);
        SKIFF_RETURN_IF_ERROR(put(cpu, "cpu.cfs_period_us", std::to_string(period)));
        SKIFF_RETURN_IF_ERROR(put(cpu, "cpu.cfs_quota_us", std::to_string(quota)));
      }
    }
    if (res.memory_limit_bytes) {
      auto mem_dir = dir_for("memory", "a memory limit", path);
      if (!mem_dir) return mem_dir.status();
      const std::string& mem = *mem_dir;
      SKIFF_RETURN_IF_ERROR(set_memory(mem, *res.memory_limit_bytes));
    }
    if (res.pids_limit) {
      auto pids_dir = dir_for("pids", "a pids limit", path);
      if (!pids_dir) return pids_dir.status();
      const std::string& pid_dir = *pids_dir;
      SKIFF_RETURN_IF_ERROR(put(pid_dir, "pids.max", std::to_string(*res.pids_limit)));
    }
    return Status::ok();
  }

  std::vector<std::string> dirs(const std::string& path) const override {
    std::vector<std::string> out;
    for (const auto& h : hs_) out.push_back(dir_of(h, path));
    return out;
  }

  Status add_process(const std::string& path, pid_t pid) override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    for (const auto& h : hs_) {
      SKIFF_RETURN_IF_ERROR(
          fs::write(fs::join(dir_of(h, path), "cgroup.procs"), std::to_string(pid), opts_.fake_fs));
    }
    return Status::ok();
  }

  Result<Stats> stats(const std::string& path) const override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    Stats s;
    if (const V1Hierarchy* m = find("memory")) {
      std::string dir = dir_of(*m, path);
      auto use = fs::read_int(fs::join(dir, "memory.usage_in_bytes"));
      if (!use) return use.status();
      s.memory_usage_bytes = *use;
      auto lim = fs::read_int(fs::join(dir, "memory.limit_in_bytes"));
      if (!lim) return lim.status();
      s.memory_limit_bytes = *lim >= kUnlimitedFloor ? -1 : *lim;
      // oom_kill appeared in memory.oom_control in 4.13; older kernels read as 0.
      auto oom = fs::read_key(fs::join(dir, "memory.oom_control"), "oom_kill");
      if (!oom) return oom.status();
      s.oom_kills = *oom;
    }
    if (const V1Hierarchy* c = find("cpuacct")) {
      auto ns = fs::read_int(fs::join(dir_of(*c, path), "cpuacct.usage"));
      if (!ns) return ns.status();
      s.cpu_usage_ns = static_cast<uint64_t>(*ns);
    }
    if (const V1Hierarchy* p = find("pids")) {
      auto n = fs::read_int(fs::join(dir_of(*p, path), "pids.current"));
      if (!n) return n.status();
      s.pids = *n;
    }
    return s;
  }

  // The union over all hierarchies: a process that joined only some (a crash between two
  // writes in add_process) must still be found and killed.
  std::vector<pid_t> pids(const std::string& path) const override {
    if (!fs::check_relative(path)) return {};
    std::set<pid_t> all;
    for (const auto& h : hs_) {
      for (pid_t p : fs::procs_recursive(dir_of(h, path))) all.insert(p);
    }
    return {all.begin(), all.end()};
  }

  Status remove(const std::string& path) override {
    SKIFF_RETURN_IF_ERROR(fs::check_relative(path));
    if (path.empty()) return Status::invalid("refusing to remove the cgroup parent itself");
    // Freeze-less kill: v1 has no cgroup.kill, so repeat SIGKILL until every hierarchy is
    // empty (a fork that raced the first round is killed in the next).
    SKIFF_RETURN_IF_ERROR(fs::kill_all([&] { return pids(path); }, "cgroup " + parent_ + "/" + path,
                                       opts_.remove_wait_ms));
    Status first;
    for (const auto& h : hs_) {
      Status st = fs::remove_tree(dir_of(h, path), opts_);
      if (!st && first.is_ok()) first = st;  // try every hierarchy, report the first failure
    }
    return first;
  }

  std::vector<std::string> children(const std::string& path) const override {
    if (!fs::check_relative(path)) return {};
    std::set<std::string> all;
    for (const auto& h : hs_) {
      for (auto& c : fs::subdirs(dir_of(h, path))) all.insert(c);
    }
    return {all.begin(), all.end()};
  }

 private:
  const V1Hierarchy* find(const char* ctrl) const {
    for (const auto& h : hs_) {
      if (h.has(ctrl)) return &h;
    }
    return nullptr;
  }

  Result<std::string> dir_for(const char* ctrl, const std::string& what,
                              const std::string& path) const {
    if (const V1Hierarchy* h = find(ctrl)) return dir_of(*h, path);
    return Status::unavailable("cannot apply " + what + " to cgroup " + parent_ + "/" + path +
                               ": no cgroup v1 " + ctrl + " hierarchy is mounted");
  }

  std::string dir_of(const V1Hierarchy& h, const std::string& path) const {
    return fs::join(fs::join(h.mount, parent_), path);
  }

  Status put(const std::string& dir, const std::string& file, const std::string& value) {
    return fs::write(fs::join(dir, file), value, opts_.fake_fs);
  }

  Status make(const V1Hierarchy& h, const std::string& path) {
    std::string rel = parent_.empty() ? path : (path.empty() ? parent_ : parent_ + "/" + path);
    if (!h.has("cpuset")) return fs::make_dirs(h.mount, rel, {});
    // A new v1 cpuset starts with empty cpus and mems, and a task cannot join it until both
    // are set: copy them from the level above, as the kernel's clone_children would.
    return fs::make_dirs(h.mount, rel, [&](const std::string& dir) -> Status {
      std::string up = dir.substr(0, dir.rfind('/'));
      for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
        auto v = fs::read(fs::join(up, f));
        if (!v) return v.status().with_context("copy " + std::string(f) + " to " + dir);
        std::string val = *v;
        while (!val.empty() && val.back() == '\n') val.pop_back();
        if (!val.empty()) SKIFF_RETURN_IF_ERROR(put(dir, f, val));
      }
      return Status::ok();
    });
  }

  // v1 requires memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every moment, so the
  // order of the two writes depends on whether the limit goes up or down: try lowering order
  // first and, when the kernel refuses (EINVAL), the raising order.
  Status set_memory(const std::string& dir, int64_t bytes) {
    std::string v = std::to_string(bytes);
    if (!has_memsw_) return put(dir, "memory.limit_in_bytes", v);
    Status st = put(dir, "memory.limit_in_bytes", v);
    if (st) return put(dir, "memory.memsw.limit_in_bytes", v);
    if (st.os_errno() != EINVAL) return st;
    SKIFF_RETURN_IF_ERROR(put(dir, "memory.memsw.limit_in_bytes", v));
    return put(dir, "memory.limit_in_bytes", v);
  }

  std::vector<V1Hierarchy> hs_;
  std::string parent_;
  DriverOptions opts_;
  bool has_memsw_ = false;
};

}  // namespace

Result<std::unique_ptr<CgroupDriver>> make_v1_driver(std::vector<V1Hierarchy> hierarchies,
                                                     const std::string& parent,
                                                     DriverOptions opts) {
  SKIFF_RETURN_IF_ERROR(fs::check_relative(parent));
  if (hierarchies.empty()) return Status::invalid("no cgroup v1 hierarchies given");
  auto d = std::make_unique<V1Driver>(std::move(hierarchies), parent, opts);
  SKIFF_RETURN_IF_ERROR(d->init());
  return std::unique_ptr<CgroupDriver>(std::move(d));
}

}  // namespace skiff::cgroups
