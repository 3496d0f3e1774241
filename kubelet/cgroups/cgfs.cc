#include "kubelet/cgroups/cgfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "common/files.h"

namespace skiff::cgroups::fs {

std::string join(const std::string& dir, const std::string& rel) {
  if (rel.empty()) return dir;
  if (dir.empty() || dir.back() == '/') return dir + rel;
  return dir + "/" + rel;
}

Status check_relative(const std::string& rel) {
  if (!rel.empty() && rel.front() == '/') {
    return Status::invalid("cgroup path \"" + rel + "\" must be relative to the parent");
  }
  std::stringstream ss(rel);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part == "." || part == "..") {
      return Status::invalid("cgroup path \"" + rel + "\" must not contain . or ..");
    }
  }
  return Status::ok();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

Status write(const std::string& path, const std::string& value, bool create) {
  int flags = O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return Status::io("open " + path + " to write \"" + value + "\"");
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return Status::io("write \"" + value + "\" to " + path, err);
  if (static_cast<size_t>(n) != value.size()) {
    return Status::io("write \"" + value + "\" to " + path + " (short write)", EIO);
  }
  return Status::ok();
}

Result<std::string> read(const std::string& path) { return files::read_file(path); }

static Result<int64_t> parse_int(const std::string& text, const std::string& path) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t == "max") return int64_t{-1};
  int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size()) {
    return Status::invalid("parse " + path + ": \"" + t + "\" is not an integer");
  }
  return v;
}

Result<int64_t> read_int(const std::string& path) {
  auto text = read(path);
  if (!text) return text.status();
  return parse_int(*text, path);
}

Result<int64_t> read_key(const std::string& path, const std::string& key) {
  auto text = read(path);
  if (!text) return text.status();
  std::istringstream in(*text);
  std::string k, v;
  while (in >> k >> v) {
    if (k == key) return parse_int(v, path + " key " + key);
  }
  return int64_t{0};
}

Status make_dirs(const std::string& base, const std::string& rel,
                 const std::function<Status(const std::string&)>& created) {
  std::string dir = base;
  std::stringstream ss(rel);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    dir = join(dir, part);
    if (::mkdir(dir.c_str(), 0755) == 0) {
      if (created) SKIFF_RETURN_IF_ERROR(created(dir));
    } else if (errno != EEXIST) {
      return Status::io("mkdir " + dir);
    }
  }
  return Status::ok();
}

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = ::stat(join(dir, name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

static void collect_procs(const std::string& dir, std::set<pid_t>& out, int depth) {
  if (depth > 64) return;  // cgroup trees are shallow; this only guards a symlink loop in a fake
  if (auto text = read(join(dir, "cgroup.procs"))) {
    std::istringstream in(*text);
    pid_t pid;
    while (in >> pid) out.insert(pid);
  }
  for (const auto& c : subdirs(dir)) collect_procs(join(dir, c), out, depth + 1);
}

std::vector<pid_t> procs_recursive(const std::string& dir) {
  std::set<pid_t> s;
  collect_procs(dir, s, 0);
  return {s.begin(), s.end()};
}

static void unlink_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type == DT_REG) ::unlinkat(dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

Status remove_tree(const std::string& dir, const DriverOptions& opts) {
  for (const auto& c : subdirs(dir)) SKIFF_RETURN_IF_ERROR(remove_tree(join(dir, c), opts));
  if (opts.fake_fs) unlink_files(dir);
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return Status::ok();
    // EBUSY: a killed task has not finished exiting, or (v1) a css is still being released.
    if (errno != EBUSY || attempt >= opts.rmdir_retries) {
      return Status::io("rmdir " + dir + " (after " + std::to_string(attempt + 1) + " tries)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status kill_all(const std::function<std::vector<pid_t>()>& list, const std::string& what,
                int wait_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    auto pids = list();
    if (pids.empty()) return Status::ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::timeout("kill processes in " + what + ": " + std::to_string(pids.size()) +
                             " still present after " + std::to_string(wait_ms) + " ms (first " +
                             std::to_string(pids.front()) + ")");
    }
    // Kill again every round: a process may have forked between the read and the kill.
    for (pid_t p : pids) {
      if (p > 0) ::kill(p, SIGKILL);  // never 0 or -1: those mean "my group" / "everyone"
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace skiff::cgroups::fs
