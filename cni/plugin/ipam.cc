#include "cni/plugin/ipam.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace skiff::cni::plugin {

namespace {

constexpr char kLastReserved[] = "last_reserved_ip";
constexpr char kTmpPrefix[] = ".tmp-";

CniError io_error(const std::string& what, int err) {
  return CniError{kIoFailure, "IPAM store I/O failure", errno_text(what, err)};
}

CniStatus mkdir_p(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return io_error("mkdir " + cur, errno);
  }
  return {};
}

// Writes `data` to `path`.
CniStatus write_new_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("create " + path, errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return io_error("write " + path, e);
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return io_error("close " + path, errno);
  return {};
}

std::optional<std::string> read_small_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[512];
  std::string out;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > 4096) break;
  }
  ::close(fd);
  return out;
}

}  // namespace

FileIpam::FileIpam(std::string dir, Ip4Net subnet, std::chrono::milliseconds lock_timeout)
    : dir_(std::move(dir)), subnet_(subnet), lock_timeout_(lock_timeout) {}

// Holds the flock for its lifetime.
class FileIpam::Lock {
 public:
  explicit Lock(int fd) : fd_(fd) {}
  ~Lock() {
    if (fd_ >= 0) ::close(fd_);
  }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  int fd_;
};

CniResult<int> FileIpam::lock() {
  CNI_RETURN_IF_ERROR(mkdir_p(dir_));
  const std::string path = dir_ + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("open " + path, errno);
  // flock has no timeout: poll with a short back-off so a stuck holder gives "try again later"
  // instead of a plugin that hangs until the runtime kills it.
  auto deadline = std::chrono::steady_clock::now() + lock_timeout_;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    int e = errno;
    if (e == EINTR) continue;
    if (e != EWOULDBLOCK) {
      ::close(fd);
      return io_error("flock " + path, e);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return CniError{kTryAgainLater, "IPAM store is busy",
                      "lock " + path + " held by another process for more than " +
                          std::to_string(lock_timeout_.count()) + " ms"};
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
  }
}

CniResult<std::vector<FileIpam::Entry>> FileIpam::scan() {
  std::vector<Entry> out;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return io_error("opendir " + dir_, errno);
  std::vector<std::string> stale_tmp;
  while (dirent* de = ::readdir(d)) {
    std::string name = de->d_name;
    if (name.rfind(kTmpPrefix, 0) == 0) {
      // Only lock holders write temp files, and we hold the lock: this one is from a process
      // that died mid-write. Its address was never linked, so it reserves nothing.
      stale_tmp.push_back(name);
      continue;
    }
    auto ip = parse_ip4(name);
    if (!ip || !subnet_.contains(*ip)) continue;
    Entry e{*ip, "", ""};
    if (auto content = read_small_file(dir_ + "/" + name)) {
      auto nl = content->find('\n');
      e.container_id = content->substr(0, nl);
      if (nl != std::string::npos) {
        auto rest = content->substr(nl + 1);
        e.ifname = rest.substr(0, rest.find('\n'));
      }
    }
    out.push_back(std::move(e));
  }
  ::closedir(d);
  for (const auto& t : stale_tmp) ::unlink((dir_ + "/" + t).c_str());
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.ip < b.ip; });
  return out;
}

CniResult<Lease> FileIpam::allocate(const std::string& container_id, const std::string& ifname) {
  auto fd = lock();
  if (!fd) return fd.error();
  Lock held(*fd);
  auto entries = scan();
  if (!entries) return entries.error();
  std::set<uint32_t> taken;
  for (const auto& e : *entries) {
    if (e.container_id == container_id && e.ifname == ifname) return Lease{e.ip, true};
    taken.insert(e.ip.v);
  }
  const uint32_t first = subnet_.network().v + 2;  // +1 is the gateway
  const uint32_t last = subnet_.broadcast().v - 1;
  const uint32_t size = last - first + 1;
  uint32_t start = first;
  if (auto prev = read_small_file(dir_ + "/" + kLastReserved)) {
    auto ip = parse_ip4(prev->substr(0, prev->find('\n')));
    if (ip && ip->v >= first && ip->v < last) start = ip->v + 1;
  }
  const std::string content = container_id + "\n" + ifname + "\n";
  const std::string tmp = dir_ + "/" + kTmpPrefix + std::to_string(::getpid());
  for (uint32_t i = 0; i < size; ++i) {
    const Ip4 ip{first + (start - first + i) % size};
    if (taken.count(ip.v)) continue;
    CNI_RETURN_IF_ERROR(write_new_file(tmp, content));
    const std::string path = dir_ + "/" + ip.str();
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      if (e == EEXIST) continue;  // a file we could not parse the name of... or a race
      return io_error("link " + path, e);
    }
    ::unlink(tmp.c_str());
    // A hint only: losing it in a crash merely restarts the search at the first address.
    const std::string hint = dir_ + "/" + kLastReserved;
    if (write_new_file(hint + ".tmp", ip.str() + "\n").is_ok())
      ::rename((hint + ".tmp").c_str(), hint.c_str());
    return Lease{ip, false};
  }
  return CniError{kTryAgainLater, "no free address in the pod CIDR",
                  "all " + std::to_string(size) + " addresses of " + subnet_.str() + " (" +
                      Ip4{first}.str() + " - " + Ip4{last}.str() + ") are allocated (" + dir_ +
                      ")"};
}

CniResult<std::optional<Ip4>> FileIpam::find(const std::string& container_id,
                                             const std::string& ifname) {
  auto fd = lock();
  if (!fd) return fd.error();
  Lock held(*fd);
  auto entries = scan();
  if (!entries) return entries.error();
  for (const auto& e : *entries)
    if (e.container_id == container_id && e.ifname == ifname) return std::optional<Ip4>(e.ip);
  return std::optional<Ip4>();
}

CniStatus FileIpam::remove(Ip4 ip) {
  const std::string path = dir_ + "/" + ip.str();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error("unlink " + path, errno);
  return {};
}

CniStatus FileIpam::release(const std::string& container_id, const std::string& ifname) {
  struct stat st;
  if (::stat(dir_.c_str(), &st) != 0 && errno == ENOENT) return {};  // never allocated here
  auto fd = lock();
  if (!fd) return fd.error();
  Lock held(*fd);
  auto entries = scan();
  if (!entries) return entries.error();
  for (const auto& e : *entries) {
    if (e.container_id != container_id || e.ifname != ifname) continue;
    CNI_RETURN_IF_ERROR(remove(e.ip));
  }
  return {};
}

CniResult<std::vector<FileIpam::Entry>> FileIpam::gc(const std::vector<Attachment>& keep) {
  auto fd = lock();
  if (!fd) return fd.error();
  Lock held(*fd);
  auto entries = scan();
  if (!entries) return entries.error();
  std::vector<Entry> freed;
  for (const auto& e : *entries) {
    if (e.container_id.empty()) continue;  // unreadable: keep rather than guess
    bool wanted = false;
    for (const auto& k : keep)
      if (k.container_id == e.container_id && (k.ifname.empty() || k.ifname == e.ifname))
        wanted = true;
    if (wanted) continue;
    CNI_RETURN_IF_ERROR(remove(e.ip));
    freed.push_back(e);
  }
  return freed;
}

CniResult<std::vector<FileIpam::Entry>> FileIpam::list() {
  auto fd = lock();
  if (!fd) return fd.error();
  Lock held(*fd);
  return scan();
}

}  // namespace skiff::cni::plugin
