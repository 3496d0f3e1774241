// Pod sandboxes: namespaces pinned by bind mounts instead of a pause process.
//
// A short-lived child unshares net/ipc/uts, sets the hostname and brings `lo` up; the parent
// bind-mounts /proc/<child>/ns/* onto files in the sandbox directory and lets the child exit.
// The mounts keep the namespaces alive with no process in them.
#include "kubelet/runtime/sandbox.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace skiff::runtime {
namespace {

namespace fs = std::filesystem;

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

bool is_ns_mount(const std::string& path) {
  struct statfs sfs;
  return statfs(path.c_str(), &sfs) == 0 &&
         sfs.f_type == static_cast<decltype(sfs.f_type)>(NSFS_MAGIC);
}

// Writes in place (not by rename): containers bind-mount these files, and a bind mount pins
// the inode, so a renamed replacement would never reach them.
Status write_in_place(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io("open " + path);
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::io("write " + path);
      close(fd);
      return st;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  close(fd);
  return Status::ok();
}

Status mkdirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return Status::io("mkdir " + path, ec.value());
  return Status::ok();
}

// The cluster domain from a Kubernetes search list ("<ns>.svc.<domain> svc.<domain> <domain>").
std::string cluster_domain(const DnsConfig& dns) {
  for (const auto& s : dns.searches) {
    if (s.rfind("svc.", 0) == 0 && s.size() > 4) return s.substr(4);
  }
  return "cluster.local";
}

std::string hosts_text(const SandboxConfig& c, const std::string& pod_ip) {
  std::ostringstream out;
  out << "# Kubernetes-managed hosts file.\n"
         "127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\n"
         "fe00::0\tip6-mcastprefix\n"
         "fe00::1\tip6-allnodes\n"
         "fe00::2\tip6-allrouters\n";
  std::string host = c.hostname.empty() ? c.pod_name : c.hostname;
  if (!pod_ip.empty()) {
    if (!c.subdomain.empty()) {
      out << pod_ip << '\t' << host << '.' << c.subdomain << '.' << c.pod_namespace << ".svc."
          << cluster_domain(c.dns) << '\t' << host << '\n';
    } else {
      out << pod_ip << '\t' << host << '\n';
    }
  }
  if (!c.host_aliases.empty()) {
    out << "\n# Entries added by HostAliases.\n";
    for (const auto& [ip, names] : c.host_aliases) {
      out << ip;
      for (const auto& n : names) out << '\t' << n;
      out << '\n';
    }
  }
  return out.str();
}

std::string resolv_text(const DnsConfig& dns) {
  if (dns.nameservers.empty() && dns.searches.empty() && dns.options.empty()) {
    // No DNS policy given: the node's own resolver configuration (dnsPolicy: Default).
    std::ifstream in("/etc/resolv.conf");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::ostringstream out;
  if (!dns.searches.empty()) {
    out << "search";
    for (const auto& s : dns.searches) out << ' ' << s;
    out << '\n';
  }
  for (const auto& n : dns.nameservers) out << "nameserver " << n << '\n';
  if (!dns.options.empty()) {
    out << "options";
    for (const auto& o : dns.options) out << ' ' << o;
    out << '\n';
  }
  return out.str();
}

// Creates the namespaces and pins them on the three files in info. Only syscalls between fork
// and _exit: the kubelet is multi-threaded.
Status create_namespaces(const SandboxInfo& info, const std::string& hostname) {
  int to_parent[2], to_child[2];
  if (pipe2(to_parent, O_CLOEXEC) != 0) return Status::io("pipe");
  if (pipe2(to_child, O_CLOEXEC) != 0) {
    Status st = Status::io("pipe");
    close(to_parent[0]);
    close(to_parent[1]);
    return st;
  }
  pid_t pid = fork();
  if (pid < 0) {
    Status st = Status::io("fork the sandbox namespace holder");
    for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) close(fd);
    return st;
  }
  if (pid == 0) {
    close(to_parent[0]);
    close(to_child[1]);  // else the read below never sees EOF
    // The answer byte: 0 ok, else the step that failed and its errno.
    char answer[2] = {0, 0};
    if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
      answer[0] = 1;
    } else if (sethostname(hostname.data(), hostname.size()) != 0) {
      answer[0] = 2;
    } else {
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, "lo", 3);
      if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
        answer[0] = 3;
      } else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) answer[0] = 3;
      }
    }
    if (answer[0] != 0) answer[1] = static_cast<char>(errno);
    if (write(to_parent[1], answer, 2) != 2) _exit(1);
    // Wait until the parent has pinned the namespaces: it sends one byte. Not EOF: holders made
    // by other threads' forks at the same moment inherit this pipe's write end (fork without
    // exec keeps even O_CLOEXEC fds), so EOF could wait for them — and they for us. The poll
    // bound keeps a holder from outliving a kubelet that died mid-way.
    struct pollfd pfd = {to_child[0], POLLIN, 0};
    while (poll(&pfd, 1, 30000) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(to_parent[1]);
  close(to_child[0]);
  char answer[2] = {9, 0};
  ssize_t n = -1;
  // Bounded for the same reason: a holder that died before answering may not give us EOF.
  struct pollfd pfd = {to_parent[0], POLLIN, 0};
  int pr;
  while ((pr = poll(&pfd, 1, 30000)) < 0 && errno == EINTR) {
  }
  if (pr > 0) {
    do {
      n = read(to_parent[0], answer, 2);
    } while (n < 0 && errno == EINTR);
  } else {
    kill(pid, SIGKILL);
  }
  close(to_parent[0]);
  Status st;
  if (n != 2) {
    st = Status::internal("sandbox namespace holder died before reporting");
  } else if (answer[0] != 0) {
    std::string step = answer[0] == 1   ? "unshare net/ipc/uts"
                       : answer[0] == 2 ? "sethostname " + hostname
                                        : "bring lo up";
    st = Status::io(step, answer[1]);
  } else {
    std::string base = "/proc/" + std::to_string(pid) + "/ns/";
    const std::pair<const char*, const std::string*> kPins[] = {
        {"net", &info.netns}, {"ipc", &info.ipcns}, {"uts", &info.utsns}};
    for (const auto& [name, target] : kPins) {
      if (is_ns_mount(*target)) umount2(target->c_str(), MNT_DETACH);  // a half-made sandbox
      int fd = open(target->c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
      if (fd < 0) {
        st = Status::io("create " + *target);
        break;
      }
      close(fd);
      std::string src = base + name;
      if (mount(src.c_str(), target->c_str(), nullptr, MS_BIND, nullptr) != 0) {
        st = Status::io("bind mount " + src + " on " + *target);
        break;
      }
    }
  }
  char go = 1;  // lets the child exit
  while (write(to_child[1], &go, 1) < 0 && errno == EINTR) {
  }
  close(to_child[1]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return st;
}

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

Sandboxes::Sandboxes(std::string run_dir) : run_dir_(std::move(run_dir)) {}

SandboxInfo Sandboxes::info(const std::string& pod_uid) const {
  SandboxInfo i;
  i.dir = run_dir_ + "/pods/" + pod_uid;
  i.netns = i.dir + "/ns/net";
  i.ipcns = i.dir + "/ns/ipc";
  i.utsns = i.dir + "/ns/uts";
  i.etc_hosts = i.dir + "/etc/hosts";
  i.etc_hostname = i.dir + "/etc/hostname";
  i.etc_resolv = i.dir + "/etc/resolv.conf";
  return i;
}

Result<SandboxInfo> Sandboxes::ensure(const SandboxConfig& config) {
  if (config.pod_uid.empty() || config.pod_uid.find('/') != std::string::npos ||
      config.pod_uid == "." || config.pod_uid == "..") {
    return Status::invalid("sandbox: bad pod uid \"" + config.pod_uid + "\"");
  }
  SandboxInfo i = info(config.pod_uid);
  std::string hostname = config.hostname.empty() ? config.pod_name : config.hostname;
  if (hostname.size() > 63) hostname.resize(63);
  bool ns_ok = is_ns_mount(i.netns) && is_ns_mount(i.ipcns) && is_ns_mount(i.utsns);
  bool etc_ok = access(i.etc_hosts.c_str(), F_OK) == 0 &&
                access(i.etc_hostname.c_str(), F_OK) == 0 &&
                access(i.etc_resolv.c_str(), F_OK) == 0;
  if (ns_ok && etc_ok) return i;

  SKIFF_RETURN_IF_ERROR(mkdirs(i.dir + "/ns"));
  SKIFF_RETURN_IF_ERROR(mkdirs(i.dir + "/etc"));
  if (!ns_ok) {
    Status st = create_namespaces(i, hostname);
    if (!st) return st.with_context("sandbox " + config.pod_uid);
  }
  if (!etc_ok) {
    SKIFF_RETURN_IF_ERROR(write_in_place(i.etc_hostname, hostname + "\n"));
    SKIFF_RETURN_IF_ERROR(write_in_place(i.etc_resolv, resolv_text(config.dns)));
    SKIFF_RETURN_IF_ERROR(write_in_place(i.etc_hosts, hosts_text(config, "")));
    nlohmann::json meta = {{"uid", config.pod_uid},
                           {"namespace", config.pod_namespace},
                           {"name", config.pod_name},
                           {"hostname", hostname},
                           {"created_at", now_ns()}};
    SKIFF_RETURN_IF_ERROR(write_in_place(i.dir + "/sandbox.json", meta.dump() + "\n"));
  }
  return i;
}

Status Sandboxes::write_hosts(const SandboxConfig& config, const std::string& pod_ip) {
  SandboxInfo i = info(config.pod_uid);
  return write_in_place(i.etc_hosts, hosts_text(config, pod_ip));
}

Status Sandboxes::remove(const std::string& pod_uid) {
  if (pod_uid.empty() || pod_uid.find('/') != std::string::npos || pod_uid == "." ||
      pod_uid == "..") {
    return Status::invalid("sandbox: bad pod uid \"" + pod_uid + "\"");
  }
  SandboxInfo i = info(pod_uid);
  for (const std::string* p : {&i.netns, &i.ipcns, &i.utsns}) {
    // Several mounts may be stacked on one file if an earlier ensure() raced: unmount them all.
    for (int k = 0; k < 8 && is_ns_mount(*p); ++k) {
      if (umount2(p->c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
        return Status::io("unmount " + *p);
      }
    }
    if (is_ns_mount(*p)) return Status::internal("sandbox: " + *p + " is still mounted");
  }
  std::error_code ec;
  fs::remove_all(i.dir, ec);
  if (ec) return Status::io("remove " + i.dir, ec.value());
  return Status::ok();
}

std::vector<std::string> Sandboxes::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir_ + "/pods", ec)) {
    if (e.is_directory(ec)) out.push_back(e.path().filename().string());
  }
  return out;
}

}  // namespace skiff::runtime
