#include "common/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

namespace skiff::files {

Result<std::string> read_file(const std::string& path, size_t limit, int open_flags) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | open_flags);
  if (fd < 0) return Status::io("open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::io("read " + path);
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) {
      ::close(fd);
      return Status::too_large(path + " is larger than " + std::to_string(limit) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  static std::atomic<uint64_t> seq{0};
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++seq);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::io("create " + tmp);
  auto fail = [&](const std::string& what) {
    Status st = Status::io(what + " " + tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  };
  // open() honours the umask; the mode of a key or cache file must not depend on it.
  if (::fchmod(fd, mode) != 0) return fail("chmod");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::io("rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return st;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

Status mkdir_p(const std::string& dir, mode_t mode) {
  for (size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    std::string cur = dir.substr(0, pos);
    if (!cur.empty() && ::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
      return Status::io("mkdir " + cur);
    if (pos == std::string::npos) return Status::ok();
  }
}

Status lock_for_process(const std::string& path, std::string_view holder) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io("open " + path);
  int rc;
  while ((rc = ::flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) return Status::io("flock " + path, err);
    std::string pid = "unknown";
    if (auto text = read_file(path, 64); text.is_ok()) {
      std::string digits = text->substr(0, text->find_first_not_of("0123456789"));
      if (!digits.empty()) pid = digits;
    }
    return Status::unavailable(path + " is locked by another " + std::string(holder) + " (pid " +
                               pid + "): only one may use this directory at a time");
  }
  // Ours until the process ends: the fd is deliberately never closed.
  std::string pid = std::to_string(::getpid()) + "\n";
  // Written over the previous holder's pid, then cut to length: never empty to a reader.
  if (::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()) ||
      ::ftruncate(fd, static_cast<off_t>(pid.size())) != 0) {
    Status st = Status::io("write the pid into " + path);
    ::close(fd);
    return st;
  }
  return Status::ok();
}

std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (int k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace skiff::files
