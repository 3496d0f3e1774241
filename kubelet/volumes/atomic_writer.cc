#include "kubelet/volumes/atomic_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <set>

#include "kubelet/volumes/fsutil.h"
#include "common/files.h"

namespace skiff::volumes {
namespace {

constexpr const char* kDataLink = "..data";
constexpr const char* kDataLinkTmp = "..data_tmp";

std::string first_element(const std::string& path) { return path.substr(0, path.find('/')); }

// Never through a symlink: the payload dir is the pod's to write into.
Result<std::string> read_file(const std::string& path) {
  return files::read_file(path, SIZE_MAX, O_NOFOLLOW);
}

// Lists the regular files below `base` (relative paths), without following symlinks.
Status collect(const std::string& base, const std::string& rel, Payload& out) {
  std::string dir = rel.empty() ? base : base + "/" + rel;
  DIR* d = opendir(dir.c_str());
  if (!d) return Status::io("open directory " + dir);
  Status result;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string r = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      result = Status::io("stat " + base + "/" + r);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      result = collect(base, r, out);
      if (!result.is_ok()) break;
    } else if (S_ISREG(st.st_mode)) {
      auto data = read_file(base + "/" + r);
      if (!data) {
        result = data.status();
        break;
      }
      out[r] = FileProjection{std::move(*data), st.st_mode & 07777};
    }
  }
  closedir(d);
  return result;
}

Status write_file(const std::string& path, const FileProjection& f) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::io("create " + path);
  size_t off = 0;
  while (off < f.data.size()) {
    ssize_t n = write(fd, f.data.data() + off, f.data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Status::io("write " + path);
      close(fd);
      return st;
    }
    off += static_cast<size_t>(n);
  }
  // fchmod, not the open mode: the umask must not change what the pod asked for.
  if (fchmod(fd, f.mode & 07777) != 0) {
    Status st = Status::io("chmod " + path);
    close(fd);
    return st;
  }
  if (close(fd) != 0) return Status::io("close " + path);
  return Status::ok();
}

bool same(const Payload& a, const Payload& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second.data != ib->second.data ||
        (ia->second.mode & 07777) != (ib->second.mode & 07777))
      return false;
  }
  return true;
}

// "..2006_01_02_15_04_05." as Kubernetes names its version directories (UTC), plus a unique suffix
// from mkdtemp.
std::string version_prefix() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "..%Y_%m_%d_%H_%M_%S.", &tm);
  return buf;
}

}  // namespace

Status validate_payload_path(const std::string& path) {
  if (path.empty()) return Status::invalid("invalid path: must not be empty");
  if (path.size() > 4096)
    return Status::invalid("invalid path: must be less than or equal to 4096 characters");
  if (path.starts_with("/"))
    return Status::invalid("invalid path " + path + ": must be relative path");
  if (path.starts_with(".."))
    return Status::invalid("invalid path " + path + ": must not start with '..'");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string el = path.substr(start, end - start);
    if (el == "..") return Status::invalid("invalid path " + path + ": must not contain '..'");
    if (el.size() > 255) return Status::invalid("invalid path " + path + ": element too long");
    start = end + 1;
  }
  return Status::ok();
}

Result<bool> atomic_write(const std::string& dir, const Payload& payload) {
  for (const auto& [path, f] : payload) SKIFF_RETURN_IF_ERROR(validate_payload_path(path));

  // 1. The current version, if any.
  std::string old_version;
  char buf[PATH_MAX];
  ssize_t n = readlink((dir + "/" + kDataLink).c_str(), buf, sizeof buf - 1);
  if (n > 0)
    old_version = std::string(buf, static_cast<size_t>(n));
  else if (errno != ENOENT)
    return Status::io("readlink " + dir + "/" + kDataLink);
  Payload old;
  if (!old_version.empty()) {
    if (old_version.find('/') != std::string::npos || !old_version.starts_with(".."))
      return Status::internal("unexpected " + dir + "/..data -> " + old_version);
    Status st = collect(dir + "/" + old_version, "", old);
    if (!st.is_ok() && st.os_errno() != ENOENT) return st;
    if (st.is_ok() && same(old, payload)) return false;
  }

  // 2. The new version, complete before anyone can see it.
  std::string tmpl = dir + "/" + version_prefix() + "XXXXXX";
  if (!mkdtemp(tmpl.data())) return Status::io("create version directory in " + dir);
  const std::string version_dir = tmpl;
  const std::string version = version_dir.substr(dir.size() + 1);
  if (chmod(version_dir.c_str(), 0755) != 0) return Status::io("chmod " + version_dir);
  for (const auto& [path, f] : payload) {
    auto slash = path.rfind('/');
    if (slash != std::string::npos)
      SKIFF_RETURN_IF_ERROR(fs::make_dirs(version_dir + "/" + path.substr(0, slash), 0755));
    Status st = write_file(version_dir + "/" + path, f);
    if (!st.is_ok()) {
      (void)fs::remove_tree(version_dir);
      return st;
    }
  }

  // 3. User-visible names for the new top-level elements (they resolve through ..data).
  std::set<std::string> top, old_top;
  for (const auto& [path, f] : payload) top.insert(first_element(path));
  for (const auto& [path, f] : old) old_top.insert(first_element(path));
  for (const auto& name : top) {
    std::string link = dir + "/" + name;
    std::string want = std::string(kDataLink) + "/" + name;
    struct stat st;
    if (lstat(link.c_str(), &st) == 0) {
      if (!S_ISLNK(st.st_mode))
        return Status::io("publish " + link + ": exists and is not a symlink", EEXIST);
      ssize_t m = readlink(link.c_str(), buf, sizeof buf - 1);
      if (m >= 0 && std::string(buf, static_cast<size_t>(m)) == want) continue;
      if (unlink(link.c_str()) != 0) return Status::io("remove " + link);
    }
    if (symlink(want.c_str(), link.c_str()) != 0) return Status::io("symlink " + link);
  }

  // 4. The swap: rename(2) replaces ..data atomically.
  std::string tmp_link = dir + "/" + kDataLinkTmp;
  if (unlink(tmp_link.c_str()) != 0 && errno != ENOENT) return Status::io("remove " + tmp_link);
  if (symlink(version.c_str(), tmp_link.c_str()) != 0) return Status::io("symlink " + tmp_link);
  if (rename(tmp_link.c_str(), (dir + "/" + kDataLink).c_str()) != 0)
    return Status::io("rename " + tmp_link + " to " + dir + "/" + kDataLink);

  // 5. Names that are gone, and every old version (also ones a crash left behind).
  for (const auto& name : old_top) {
    if (top.count(name)) continue;
    std::string link = dir + "/" + name;
    struct stat st;
    if (lstat(link.c_str(), &st) == 0 && S_ISLNK(st.st_mode) && unlink(link.c_str()) != 0)
      return Status::io("remove " + link);
  }
  DIR* d = opendir(dir.c_str());
  if (!d) return Status::io("open directory " + dir);
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 2 && name.starts_with("..") && name != kDataLink && name != version)
      stale.push_back(name);
  }
  closedir(d);
  for (const auto& name : stale) SKIFF_RETURN_IF_ERROR(fs::remove_tree(dir + "/" + name));
  return true;
}

}  // namespace skiff::volumes
