#include "kubelet/cgroups/cgroups.h"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/files.h"
#include "kubelet/cgroups/cgfs.h"
#include "kubelet/cgroups/drivers.h"

namespace skiff::cgroups {

// Kubernetes' constants (pkg/kubelet/cm/helpers_linux.go).
constexpr int64_t kMinShares = 2;
constexpr int64_t kMaxShares = 262144;
constexpr int64_t kMaxWeight = 10000;

int64_t millis_to_shares(int64_t millis) {
  if (millis <= 0) return kMinShares;
  int64_t shares = millis * 1024 / 1000;
  return std::clamp(shares, kMinShares, kMaxShares);
}

int64_t shares_to_weight(int64_t shares) {
  shares = std::clamp(shares, kMinShares, kMaxShares);
  return 1 + (shares - 2) * (kMaxWeight - 1) / (kMaxShares - 2);
}

bool V1Hierarchy::has(std::string_view c) const {
  return std::find(controllers.begin(), controllers.end(), c) != controllers.end();
}

namespace {

// The v1 subsystems a super-option may name; anything else there (rw, xattr, noprefix,
// release_agent=..., clone_children, ...) is a mount flag.
bool is_subsystem(const std::string& opt) {
  static const char* kKnown[] = {"cpu",     "cpuacct", "cpuset",   "memory", "devices",
                                 "freezer", "net_cls", "net_prio", "blkio",  "perf_event",
                                 "hugetlb", "pids",    "rdma",     "misc",   "debug"};
  if (opt.rfind("name=", 0) == 0) return true;
  return std::find(std::begin(kKnown), std::end(kKnown), opt) != std::end(kKnown);
}

}  // namespace

std::vector<V1Hierarchy> parse_v1_mounts(std::string_view mountinfo, const std::string& root) {
  std::vector<V1Hierarchy> out;
  std::string prefix = root;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint opts [optional...] - fstype source superopts
    std::istringstream ls(line);
    std::vector<std::string> f;
    std::string w;
    while (ls >> w) f.push_back(w);
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || std::distance(dash, f.end()) < 4) continue;
    if (*(dash + 1) != "cgroup") continue;
    std::string mount = files::unescape_mountinfo(f[4]);
    if (mount != prefix && mount.rfind(prefix + "/", 0) != 0) continue;
    V1Hierarchy h;
    h.mount = mount;
    std::stringstream opts(*(dash + 3));
    std::string o;
    while (std::getline(opts, o, ',')) {
      if (is_subsystem(o)) h.controllers.push_back(o);
    }
    if (h.controllers.empty()) continue;
    bool dup = std::any_of(out.begin(), out.end(),
                           [&](const V1Hierarchy& x) { return x.controllers == h.controllers; });
    if (!dup) out.push_back(std::move(h));
  }
  return out;
}

Result<std::unique_ptr<CgroupDriver>> CgroupDriver::detect(const std::string& parent,
                                                           const std::string& root) {
  SKIFF_RETURN_IF_ERROR(fs::check_relative(parent));
  struct statfs sfs;
  if (::statfs(root.c_str(), &sfs) != 0) return Status::io("statfs cgroup root " + root);
  if (sfs.f_type == CGROUP2_SUPER_MAGIC) return make_v2_driver(root, parent);
  auto text = fs::read("/proc/self/mountinfo");
  if (!text) return text.status();
  auto hs = parse_v1_mounts(*text, root);
  if (hs.empty()) {
    return Status::unavailable("no cgroup2 mount at " + root +
                               " and no cgroup v1 hierarchy mounted under it");
  }
  return make_v1_driver(std::move(hs), parent);
}

}  // namespace skiff::cgroups
