// How the shim turns the container's args and env into an execve(2): the PATH comes from the
// container's environment (not the shim's), and a failure is described in the words Kubernetes
// users know from runc: exec: "nope": executable file not found in $PATH.
// Header-only and pure (the execve itself is passed in) so unit tests can drive it.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace skiff::runtime::shim {

inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The value of NAME in "NAME=value" entries (the last one wins, as a shell would see it).
inline std::string env_get(const std::vector<std::string>& env, const std::string& name,
                           const std::string& fallback) {
  std::string found = fallback;
  for (const auto& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      found = e.substr(name.size() + 1);
    }
  }
  return found;
}

// `base` with every entry of `extra` applied: same NAME replaces, new NAME appends.
inline std::vector<std::string> env_merge(std::vector<std::string> base,
                                          const std::vector<std::string>& extra) {
  for (const auto& e : extra) {
    size_t eq = e.find('=');
    std::string key = e.substr(0, eq == std::string::npos ? e.size() : eq + 1);
    bool replaced = false;
    for (auto& b : base) {
      if (b.compare(0, key.size(), key) == 0 &&
          (eq != std::string::npos || b.size() == key.size())) {
        b = e;
        replaced = true;
        break;
      }
    }
    if (!replaced) base.push_back(e);
  }
  return base;
}

// The candidate paths execvp would try for `file`, in order.
inline std::vector<std::string> exec_candidates(const std::string& file, const std::string& path) {
  if (file.find('/') != std::string::npos) return {file};
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t colon = path.find(':', start);
    std::string dir =
        path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    out.push_back(dir + "/" + file);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

// Tries every candidate with `exec(path)` (which returns only on failure, with errno set), like
// execvp: ENOENT/ENOTDIR move on, EACCES is remembered, anything else stops. Returns the
// message for the failure.
template <class Exec>
std::string exec_search(const std::string& file, const std::string& path, Exec&& exec) {
  if (file.empty()) return "exec: no command given";
  bool slash = file.find('/') != std::string::npos;
  int saved = ENOENT;
  for (const auto& cand : exec_candidates(file, path)) {
    exec(cand);
    int err = errno;
    if (err == EACCES) {
      saved = EACCES;
      continue;
    }
    if (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT) {
      continue;
    }
    return "exec: \"" + file + "\": " + strerror(err);
  }
  if (!slash && saved == ENOENT) {
    return "exec: \"" + file + "\": executable file not found in $PATH";
  }
  return "exec: \"" + file + "\": " + strerror(saved);
}

}  // namespace skiff::runtime::shim
