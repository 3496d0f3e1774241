#include "kubelet/volumes/fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <sstream>

#include "common/files.h"

namespace skiff::volumes::fs {
namespace {

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : p) {
    if (c == '/') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Removes everything inside the directory `fd` (which it closes). `dev` is the device the tree must
// stay on; `where` names the directory for error messages.
Status remove_contents(int fd, dev_t dev, const std::string& where) {
  DIR* d = fdopendir(fd);
  if (!d) {
    Status st = Status::io("open directory " + where);
    close(fd);
    return st;
  }
  Status result;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = where + "/" + name;
    struct stat st;
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      result = Status::io("stat " + path);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        result = Status::io("remove " + path + ": a mount is still in place", EBUSY);
        break;
      }
      int child = openat(dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        result = Status::io("open " + path);
        break;
      }
      result = remove_contents(child, dev, path);
      if (!result.is_ok()) break;
      if (unlinkat(dirfd(d), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        result = Status::io("remove directory " + path);
        break;
      }
    } else if (unlinkat(dirfd(d), name.c_str(), 0) != 0 && errno != ENOENT) {
      result = Status::io("remove " + path);
      break;
    }
  }
  closedir(d);
  return result;
}

}  // namespace

Status make_dirs(const std::string& path, unsigned mode) {
  std::string cur = path.starts_with("/") ? "" : ".";
  for (const auto& part : split_path(path)) {
    cur += "/" + part;
    if (mkdir(cur.c_str(), mode) == 0) {
      if (chmod(cur.c_str(), mode) != 0) return Status::io("chmod " + cur);
      continue;
    }
    if (errno != EEXIST) return Status::io("mkdir " + cur);
    struct stat st;
    if (stat(cur.c_str(), &st) != 0) return Status::io("stat " + cur);
    if (!S_ISDIR(st.st_mode)) return Status::io("mkdir " + cur, ENOTDIR);
  }
  return Status::ok();
}

Status remove_tree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::io("stat " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::io("remove " + path);
    return Status::ok();
  }
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::io("open " + path);
  SKIFF_RETURN_IF_ERROR(remove_contents(fd, st.st_dev, path));
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) return Status::io("remove directory " + path);
  return Status::ok();
}

bool is_mount_point(const std::string& path) {
  struct stat self, parent;
  if (lstat(path.c_str(), &self) != 0 || !S_ISDIR(self.st_mode)) return false;
  if (stat((path + "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

std::vector<std::string> mounts_below(const std::string& dir) {
  std::vector<std::string> out;
  char buf[PATH_MAX];
  if (!realpath(dir.c_str(), buf)) return out;
  std::string root = buf;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": field 5 is the mount point.
    std::istringstream fields(line);
    std::string f[5];
    for (auto& x : f) fields >> x;
    std::string mp = files::unescape_mountinfo(f[4]);
    if (mp == root || mp.starts_with(root + "/")) out.push_back(mp);
  }
  // Deepest first; stacked mounts keep their (reverse) order of appearance.
  std::reverse(out.begin(), out.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

Result<std::string> resolve_in_root(const std::string& root_in, const std::string& rel,
                                    unsigned mode) {
  char buf[PATH_MAX];
  if (!realpath(root_in.c_str(), buf)) return Status::io("resolve " + root_in);
  const std::string root = buf;
  std::vector<std::string> done;  // resolved components below root, no symlinks among them
  auto parts = split_path(rel);
  std::deque<std::string> todo(parts.begin(), parts.end());
  int links = 0;
  int steps = 0;  // bounds the loop even if another process keeps racing with us
  auto joined = [&]() {
    std::string p = root;
    for (const auto& c : done) p += "/" + c;
    return p;
  };
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (++steps > 4096) return Status::io("resolve " + rel + " in " + root, ELOOP);
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    std::string path = joined() + "/" + c;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) return Status::io("stat " + path);
      if (mkdir(path.c_str(), mode) == 0) {
        if (chmod(path.c_str(), mode) != 0) return Status::io("chmod " + path);
      } else if (errno != EEXIST) {
        return Status::io("mkdir " + path);
      }
      todo.push_front(c);  // look again: whatever exists now decides
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40) return Status::io("resolve " + rel + " in " + root, ELOOP);
      ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
      if (n < 0) return Status::io("readlink " + path);
      std::string target(buf, static_cast<size_t>(n));
      if (target.starts_with("/")) done.clear();
      auto tparts = split_path(target);
      todo.insert(todo.begin(), tparts.begin(), tparts.end());
      continue;
    }
    if (!todo.empty() && !S_ISDIR(st.st_mode)) return Status::io("resolve " + path, ENOTDIR);
    done.push_back(c);
  }
  return joined();
}

Status pin_path(const std::string& root_in, const std::string& path, const std::string& target) {
  char buf[PATH_MAX];
  if (!realpath(root_in.c_str(), buf)) return Status::io("resolve " + root_in);
  const std::string root = buf;
  if (path != root && !path.starts_with(root + "/"))
    return Status::invalid(path + " is not inside " + root);
  int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::io("open " + root);
  struct stat st;
  for (const auto& part : split_path(path.substr(root.size()))) {
    int next = openat(fd, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(fd);
    if (next < 0) return Status::io("open " + path + " (at " + part + ")", err);
    fd = next;
    if (fstat(fd, &st) != 0 || S_ISLNK(st.st_mode)) {
      close(fd);
      return Status::io("open " + path + ": " + part + " changed into a symlink", ELOOP);
    }
  }
  auto done = [&](Status s) {
    close(fd);
    return s;
  };
  if (fstat(fd, &st) != 0) return done(Status::io("stat " + path));
  const bool dir = S_ISDIR(st.st_mode);
  Status s = make_dirs(target.substr(0, target.rfind('/')), 0750);
  if (!s.is_ok()) return done(s);
  // A container restart maps the same mount again: replace what an earlier instance pinned.
  for (int i = 0; i < 16 && !mounts_below(target).empty(); ++i) {
    if (umount2(target.c_str(), MNT_DETACH) != 0) return done(Status::io("unmount " + target));
  }
  struct stat tst;
  if (lstat(target.c_str(), &tst) == 0 && S_ISDIR(tst.st_mode) != dir) {
    s = remove_tree(target);
    if (!s.is_ok()) return done(s);
  }
  if (dir) {
    if (mkdir(target.c_str(), 0750) != 0 && errno != EEXIST)
      return done(Status::io("mkdir " + target));
  } else {
    int tfd = open(target.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (tfd < 0) return done(Status::io("create " + target));
    close(tfd);
  }
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (mount(proc.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    return done(Status::io("bind-mount " + path + " on " + target));
  return done(Status::ok());
}

}  // namespace skiff::volumes::fs
