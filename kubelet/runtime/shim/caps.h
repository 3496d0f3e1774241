// Capability names and the container's capability set, computed the way containerd does for
// Kubernetes: a default set, then cap_drop (where "ALL" clears it), then cap_add ("ALL" = every
// capability the kernel knows). Names are accepted with or without "CAP_", in any case.
// Header-only and pure so the shim and the unit tests share it.
#pragma once

#include <linux/capability.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

namespace skiff::runtime::shim {

struct CapName {
  const char* name;
  int value;
};

inline constexpr CapName kCapNames[] = {
    {"CHOWN", 0},
    {"DAC_OVERRIDE", 1},
    {"DAC_READ_SEARCH", 2},
    {"FOWNER", 3},
    {"FSETID", 4},
    {"KILL", 5},
    {"SETGID", 6},
    {"SETUID", 7},
    {"SETPCAP", 8},
    {"LINUX_IMMUTABLE", 9},
    {"NET_BIND_SERVICE", 10},
    {"NET_BROADCAST", 11},
    {"NET_ADMIN", 12},
    {"NET_RAW", 13},
    {"IPC_LOCK", 14},
    {"IPC_OWNER", 15},
    {"SYS_MODULE", 16},
    {"SYS_RAWIO", 17},
    {"SYS_CHROOT", 18},
    {"SYS_PTRACE", 19},
    {"SYS_PACCT", 20},
    {"SYS_ADMIN", 21},
    {"SYS_BOOT", 22},
    {"SYS_NICE", 23},
    {"SYS_RESOURCE", 24},
    {"SYS_TIME", 25},
    {"SYS_TTY_CONFIG", 26},
    {"MKNOD", 27},
    {"LEASE", 28},
    {"AUDIT_WRITE", 29},
    {"AUDIT_CONTROL", 30},
    {"SETFCAP", 31},
    {"MAC_OVERRIDE", 32},
    {"MAC_ADMIN", 33},
    {"SYSLOG", 34},
    {"WAKE_ALARM", 35},
    {"BLOCK_SUSPEND", 36},
    {"AUDIT_READ", 37},
    {"PERFMON", 38},
    {"BPF", 39},
    {"CHECKPOINT_RESTORE", 40},
};

// containerd's default for Kubernetes pods (the Docker default set).
inline constexpr int kDefaultCaps[] = {0, 1, 4, 3, 27, 13, 6, 7, 31, 8, 10, 18, 5, 29};

// Returns the capability number, or -1 for an unknown name.
inline int cap_from_name(std::string name) {
  for (auto& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (name.rfind("CAP_", 0) == 0) name.erase(0, 4);
  for (const auto& c : kCapNames) {
    if (name == c.name) return c.value;
  }
  return -1;
}

inline bool is_all(const std::string& name) {
  std::string n = name;
  for (auto& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return n == "ALL" || n == "CAP_ALL";
}

// A bit mask of capabilities (bit n = capability n). `last_cap` is the highest capability the
// kernel knows (/proc/sys/kernel/cap_last_cap). Unknown names go to `*unknown` (first one).
inline uint64_t compute_caps(bool privileged, const std::vector<std::string>& add,
                             const std::vector<std::string>& drop, int last_cap,
                             std::string* unknown) {
  uint64_t all = last_cap >= 63 ? ~uint64_t{0} : ((uint64_t{1} << (last_cap + 1)) - 1);
  if (privileged) return all;
  uint64_t set = 0;
  for (int c : kDefaultCaps) set |= uint64_t{1} << c;
  for (const auto& name : drop) {
    if (is_all(name)) {
      set = 0;
      continue;
    }
    int c = cap_from_name(name);
    if (c < 0) {
      if (unknown && unknown->empty()) *unknown = name;
      continue;
    }
    set &= ~(uint64_t{1} << c);
  }
  for (const auto& name : add) {
    if (is_all(name)) {
      set = all;
      continue;
    }
    int c = cap_from_name(name);
    if (c < 0) {
      if (unknown && unknown->empty()) *unknown = name;
      continue;
    }
    set |= uint64_t{1} << c;
  }
  return set & all;
}

}  // namespace skiff::runtime::shim
